//! `/reset-password`: ask for a code by mail, then set a new password with it.

use crate::components::form_error::FormError;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_query_map};

/// Mails a code, then shows the second step for that address.
#[server(endpoint = "request_reset_code")]
pub async fn request_reset_code(email: String) -> Result<(), AppError> {
    use super::ssr;
    let state = ssr::state()?;
    crate::service::reset::send_code(&state, &email, &ssr::client_addr().await?).await?;
    leptos_axum::redirect(&format!("/reset-password?sent=1&email={}", crate::util::percent_encode(email.trim())));
    Ok(())
}

/// Sets the new password with the mailed code, then sends the visitor to log in.
#[server(endpoint = "reset_with_code")]
pub async fn reset_with_code(email: String, code: String, new_password: String) -> Result<(), AppError> {
    use super::ssr;
    let state = ssr::state()?;
    crate::service::reset::verify(&state, &email, &code, &new_password, &ssr::client_addr().await?).await?;
    leptos_axum::redirect("/login?reset=1");
    Ok(())
}

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let query = use_query_map();
    let sent = move || query.read().get("sent").is_some();
    let email = move || query.read().get("email").unwrap_or_default();
    let request = ServerAction::<RequestResetCode>::new();
    let reset = ServerAction::<ResetWithCode>::new();
    let request_error = Signal::derive(move || request.value().get().and_then(Result::err));
    let reset_error = Signal::derive(move || reset.value().get().and_then(Result::err));
    view! {
        <section class="narrow">
            <h1>"Reset your password"</h1>
            <Show
                when=sent
                fallback=move || view! {
                    <p>"We will mail you a 6-digit code."</p>
                    <ActionForm action=request attr:class="form">
                        <label for="reset-email">"Email"</label>
                        <input id="reset-email" name="email" type="email" autocomplete="email" required/>
                        <FormError error=request_error/>
                        <button type="submit" class="button" disabled=move || request.pending().get()>
                            {move || if request.pending().get() { "Sending…" } else { "Send code" }}
                        </button>
                    </ActionForm>
                }
            >
                <p class="notice" role="status">{move || format!("We sent a code to {}. It is valid for a few minutes.", email())}</p>
                <ActionForm action=reset attr:class="form">
                    <input type="hidden" name="email" value=email/>
                    <label for="reset-code">"Code"</label>
                    <input id="reset-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                        pattern="[0-9]{6}" maxlength="6" required/>
                    <label for="reset-password">"New password"</label>
                    <input id="reset-password" name="new_password" type="password" autocomplete="new-password" minlength="8" required/>
                    <p class="hint">"At least 8 characters."</p>
                    <FormError error=reset_error/>
                    <button type="submit" class="button" disabled=move || reset.pending().get()>
                        {move || if reset.pending().get() { "Resetting…" } else { "Reset password" }}
                    </button>
                </ActionForm>
                <p><A href="/reset-password">"Send a new code"</A></p>
            </Show>
        </section>
    }
}
