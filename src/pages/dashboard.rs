use crate::components::copy_button::CopyButton;
use crate::error::AppError;
use crate::model::{human_bytes, human_megabytes, trim_float, Dashboard};
use leptos::prelude::*;
use leptos_router::components::Redirect;

/// The signed-in user's figures; `None` when nobody is signed in.
#[server]
pub async fn get_dashboard() -> Result<Option<Dashboard>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    crate::service::accounts::dashboard(&ssr::state()?, &who).await.map(Some)
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_dashboard());
    view! {
        <section>
            <h1>"Dashboard"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading your figures…"</p> }>
                <ErrorBoundary fallback=|errors| view! {
                    <div class="form-error" role="alert">
                        <p>"The dashboard could not be loaded:"</p>
                        <ul>
                            {move || errors.get().into_iter().map(|(_, e)| view! { <li>{e.to_string()}</li> }).collect_view()}
                        </ul>
                    </div>
                }>
                    {move || Suspend::new(async move {
                        data.await.map(|found| match found {
                            Some(d) => view! { <Figures d/> }.into_any(),
                            None => view! { <Redirect path="/login?next=/dashboard"/> }.into_any(),
                        })
                    })}
                </ErrorBoundary>
            </Suspense>
        </section>
    }
}

#[component]
fn Figures(d: Dashboard) -> impl IntoView {
    let figure = |label: &'static str, value: String, id: &'static str| {
        view! {
            <div class="figure" data-figure=id>
                <dt>{label}</dt>
                <dd>{value}</dd>
            </div>
        }
    };
    let peer_id = d.peer_id.clone();
    view! {
        <dl class="figures">
            {figure("Username", d.username.clone(), "username")}
            <div class="figure wide" data-figure="peerId">
                <dt>"Peer ID"</dt>
                <dd class="peer-id">
                    <code>{d.peer_id.clone()}</code>
                    <CopyButton text=peer_id label="Copy peer ID"/>
                </dd>
            </div>
            {figure("Storage rented", human_megabytes(d.storage_rented_mb), "storage_rented")}
            {figure("Coins earned", format!("{} coins", trim_float(d.coins_earned, 4)), "coins_earned")}
            {figure("Bandwidth used", human_bytes(d.bandwidth_used), "bandwidth_used")}
            {figure("Data uploaded", human_bytes(d.data_uploaded), "data_uploaded")}
            {figure("Data downloaded", human_bytes(d.data_downloaded), "data_downloaded")}
            {figure("Space used", human_bytes(d.space_used), "space_used")}
            {figure("Uptime", format!("{:.1} h", d.uptime_seconds as f64 / 3600.0), "uptime")}
        </dl>
        <p class="hint">
            "Your Android device signs in with your username and this peer ID. "
            "Keep it private: anyone who has it can report as your device."
        </p>
    }
}
