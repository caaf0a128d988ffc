//! Server functions about the session itself, used by the navigation bar.

use crate::error::AppError;
use leptos::prelude::*;

/// The signed-in username, if any.
#[server]
pub async fn whoami() -> Result<Option<String>, AppError> {
    Ok(super::ssr::session().await?.map(|p| p.username))
}

/// Ends the web session: the cookie is cleared. Device tokens stay valid.
#[server]
pub async fn log_out() -> Result<(), AppError> {
    super::ssr::clear_session_cookie()?;
    leptos_axum::redirect("/login");
    Ok(())
}
