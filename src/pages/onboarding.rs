//! `/onboarding`: pledge storage to rent out, in GB or MB.

use crate::components::form_error::FormError;
use crate::error::AppError;
use crate::model::human_megabytes;
use leptos::prelude::*;
use crate::components::session::{load_failed, ToLogin};

/// The current pledge in MB; `None` when nobody is signed in.
#[server(endpoint = "current_pledge")]
pub async fn current_pledge() -> Result<Option<f64>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    Ok(Some(crate::service::accounts::dashboard(&*ssr::state()?, &who).await?.storage_rented_mb))
}

/// Sets the pledge through the same service as `POST /onboarding`.
#[server(endpoint = "pledge_storage")]
pub async fn pledge_storage(amount: String, unit: String) -> Result<String, AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    let value = crate::transport::parse_numeric(&amount)
        .ok_or_else(|| AppError::bad_request("Storage to rent must be a positive number"))?;
    let mb = match unit.as_str() {
        "GB" => value * 1024.0,
        "MB" => value,
        _ => return Err(AppError::bad_request("Choose GB or MB")),
    };
    crate::service::devices::onboard(&*ssr::state()?, &who, mb).await
}

#[component]
pub fn OnboardingPage() -> impl IntoView {
    let pledge = ServerAction::<PledgeStorage>::new();
    let current = Resource::new(move || pledge.version().get(), |_| current_pledge());
    let error = Signal::derive(move || pledge.value().get().and_then(Result::err));
    view! {
        <section class="narrow">
            <h1>"Rent out storage"</h1>
            <p>"Pledge the storage your Android device offers to the network. It earns coins for every GB-hour it stays online."</p>
            <Suspense fallback=|| view! { <p class="loading">"Loading your pledge…"</p> }>
                <ErrorBoundary fallback=load_failed("Your pledge")>
                {move || Suspend::new(async move {
                    current.await.map(|found| match found {
                        Some(mb) => view! {
                            <p class="current-pledge" data-testid="current-pledge">
                                "Current pledge: " <strong>{if mb > 0.0 { human_megabytes(mb) } else { "none yet".to_string() }}</strong>
                            </p>
                        }.into_any(),
                        None => view! { <ToLogin/> }.into_any(),
                    })
                })}
                </ErrorBoundary>
            </Suspense>
            <ActionForm action=pledge attr:class="form">
                <label for="pledge-amount">"Storage to rent"</label>
                <div class="amount">
                    <input id="pledge-amount" name="amount" type="number" min="0" step="any" inputmode="decimal" required/>
                    <label for="pledge-unit" class="sr-only">"Unit"</label>
                    <select id="pledge-unit" name="unit">
                        <option value="GB" selected>"GB"</option>
                        <option value="MB">"MB"</option>
                    </select>
                </div>
                <FormError error/>
                {move || pledge.value().get().and_then(Result::ok).map(|m| view! { <p class="notice" role="status">{m}</p> })}
                <button type="submit" class="button" disabled=move || pledge.pending().get()>
                    {move || if pledge.pending().get() { "Saving…" } else { "Onboard" }}
                </button>
            </ActionForm>
        </section>
    }
}
