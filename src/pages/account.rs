//! `/account`: the peerId (copy, rotate), the password, account deletion.
//! Only a user login can do these; device tokens are refused.

use crate::components::copy_button::CopyButton;
use crate::components::form_error::FormError;
use crate::error::AppError;
use leptos::prelude::*;
use crate::components::session::{load_failed, ToLogin};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub username: String,
    pub email: String,
    pub peer_id: String,
}

#[server(endpoint = "account_info")]
pub async fn account_info() -> Result<Option<AccountView>, AppError> {
    use super::ssr;
    let Some(who) = ssr::session().await? else { return Ok(None) };
    let (username, email, peer_id) = crate::service::accounts::account(&*ssr::state()?, &who).await?;
    Ok(Some(AccountView { username, email, peer_id }))
}

#[server(endpoint = "rotate_peer_id")]
pub async fn rotate_peer_id() -> Result<String, AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    crate::service::accounts::rotate_peer_id(&*ssr::state()?, &who).await
}

/// Changes the password; this session gets a fresh cookie, every other token is revoked.
#[server(endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    let client = ssr::client_addr().await?;
    let token = crate::service::accounts::change_password(&*ssr::state()?, &who, &current_password, &new_password, &client).await?;
    ssr::set_session_cookie(&token)
}

#[server(endpoint = "delete_account")]
pub async fn delete_account(confirm: String) -> Result<(), AppError> {
    use super::ssr;
    let who = ssr::require_user().await?;
    let client = ssr::client_addr().await?;
    crate::service::accounts::delete_account(&*ssr::state()?, &who, &confirm, &client).await?;
    ssr::clear_session_cookie()?;
    leptos_axum::redirect("/?deleted=1");
    Ok(())
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let rotate = ServerAction::<RotatePeerId>::new();
    let password = ServerAction::<ChangePassword>::new();
    let delete = ServerAction::<DeleteAccount>::new();
    crate::components::session::SessionEpoch::after(delete);
    let info = Resource::new(move || rotate.version().get(), |_| account_info());
    let rotate_error = Signal::derive(move || rotate.value().get().and_then(Result::err));
    let password_error = Signal::derive(move || password.value().get().and_then(Result::err));
    let delete_error = Signal::derive(move || delete.value().get().and_then(Result::err));
    view! {
        <section class="narrow">
            <h1>"Account"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading your account…"</p> }>
                <ErrorBoundary fallback=load_failed("Your account")>
                {move || Suspend::new(async move {
                    info.await.map(|found| match found {
                        Some(a) => {
                            let copy = a.peer_id.clone();
                            view! {
                                <dl class="figures single">
                                    <div class="figure"><dt>"Username"</dt><dd>{a.username}</dd></div>
                                    <div class="figure"><dt>"Email"</dt><dd>{a.email}</dd></div>
                                    <div class="figure" data-figure="peerId">
                                        <dt>"Peer ID"</dt>
                                        <dd class="peer-id"><code>{a.peer_id}</code><CopyButton text=copy label="Copy peer ID"/></dd>
                                    </div>
                                </dl>
                            }.into_any()
                        }
                        None => view! { <ToLogin/> }.into_any(),
                    })
                })}
                </ErrorBoundary>
            </Suspense>

            <h2>"Peer ID"</h2>
            <p>"A new peer ID signs your Android device out: it must authenticate again with the new one."</p>
            <ActionForm action=rotate attr:class="form">
                <FormError error=rotate_error/>
                <button type="submit" class="button secondary" disabled=move || rotate.pending().get()>
                    {move || if rotate.pending().get() { "Rotating…" } else { "Rotate peer ID" }}
                </button>
            </ActionForm>

            <h2>"Password"</h2>
            <ActionForm action=password attr:class="form">
                <label for="current-password">"Current password"</label>
                <input id="current-password" name="current_password" type="password" autocomplete="current-password" required/>
                <label for="new-password">"New password"</label>
                <input id="new-password" name="new_password" type="password" autocomplete="new-password" minlength="8" required/>
                <p class="hint">"At least 8 characters. Other sessions and devices are signed out."</p>
                <FormError error=password_error/>
                {move || matches!(password.value().get(), Some(Ok(()))).then(|| view! { <p class="notice" role="status">"Password changed."</p> })}
                <button type="submit" class="button" disabled=move || password.pending().get()>
                    {move || if password.pending().get() { "Changing…" } else { "Change password" }}
                </button>
            </ActionForm>

            <h2>"Delete account"</h2>
            <p>"Deletes your files, your figures and your account. This cannot be undone."</p>
            <ActionForm action=delete attr:class="form danger">
                <label for="delete-confirm">"Type your username to confirm"</label>
                <input id="delete-confirm" name="confirm" type="text" autocomplete="off" required/>
                <FormError error=delete_error/>
                <button type="submit" class="button danger" disabled=move || delete.pending().get()>
                    {move || if delete.pending().get() { "Deleting…" } else { "Delete account" }}
                </button>
            </ActionForm>
        </section>
    }
}
