//! Server functions about the session itself, used by the navigation bar.

use crate::error::AppError;
use leptos::prelude::*;

/// The signed-in username, if any.
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<String>, AppError> {
    Ok(super::ssr::session().await?.map(|p| p.username))
}

/// Ends the web session: its token is revoked on the server and the cookie
/// cleared. Other sessions and device tokens stay valid.
#[server(endpoint = "log_out")]
pub async fn log_out() -> Result<(), AppError> {
    use super::ssr;
    if let Some(who) = ssr::session().await? {
        crate::service::accounts::log_out(&*ssr::state()?, &who).await?;
    }
    ssr::clear_session_cookie()?;
    leptos_axum::redirect("/login");
    Ok(())
}
