use crate::components::form_error::FormError;
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::components::A;

/// Creates the account, then sends the visitor to log in.
#[server(endpoint = "register_account")]
pub async fn register_account(username: String, email: String, password: String) -> Result<(), AppError> {
    let state = super::ssr::state()?;
    let client = super::ssr::client_addr().await?;
    crate::service::accounts::register(&state, &username, &password, &email, &client).await?;
    leptos_axum::redirect("/login?registered=1");
    Ok(())
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let register = ServerAction::<RegisterAccount>::new();
    let error = Signal::derive(move || register.value().get().and_then(Result::err));
    view! {
        <section class="narrow">
            <h1>"Create an account"</h1>
            <ActionForm action=register attr:class="form">
                <label for="register-username">"Username"</label>
                <input id="register-username" name="username" type="text" autocomplete="username"
                    required minlength="3" maxlength="32" pattern="[A-Za-z0-9_.\\-]{3,32}"/>
                <p class="hint">"3 to 32 letters, digits, '_', '.' or '-'."</p>
                <label for="register-email">"Email"</label>
                <input id="register-email" name="email" type="email" autocomplete="email" required/>
                <label for="register-password">"Password"</label>
                <input id="register-password" name="password" type="password" autocomplete="new-password"
                    required minlength="8"/>
                <p class="hint">"At least 8 characters."</p>
                <FormError error/>
                <button type="submit" class="button" disabled=move || register.pending().get()>
                    {move || if register.pending().get() { "Registering…" } else { "Register" }}
                </button>
            </ActionForm>
            <p>"Already registered? " <A href="/login">"Log in"</A></p>
        </section>
    }
}
