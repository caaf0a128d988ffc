//! One module per page, each with the server functions it calls.
//!
//! Layering: a transport: server functions use `transport/` and
//! `service/`, never `api/`.

pub mod account;
pub mod dashboard;
pub mod files;
pub mod home;
pub mod login;
pub mod not_found;
pub mod onboarding;
pub mod register;
pub mod reset;
pub mod session;

/// What server functions share: the app state, the session cookie, the client address.
#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::error::{AppError, AppResult};
    use crate::service::{accounts, tokens::TokenKind, Principal};
    use crate::state::AppState;
    use axum::http::{header, HeaderValue};
    use leptos::prelude::*;

    pub const SESSION_COOKIE: &str = "peervault_session";

    pub fn state() -> AppResult<AppState> {
        use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
    }

    async fn request_parts() -> AppResult<http::request::Parts> {
        leptos_axum::extract::<http::request::Parts>().await.map_err(AppError::internal)
    }

    /// True for a browser's own form submission (no JavaScript): it asks for HTML.
    pub async fn is_plain_form_post() -> AppResult<bool> {
        let parts = request_parts().await?;
        Ok(parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html")))
    }

    pub async fn client_addr() -> AppResult<String> {
        let parts = request_parts().await?;
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
        Ok(crate::transport::client_addr(&parts.headers, peer, state()?.settings.trust_proxy_headers))
    }

    fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The signed-in user, from the session cookie; `None` when there is no
    /// valid user session (a missing, expired or revoked token).
    pub async fn session() -> AppResult<Option<Principal>> {
        let parts = request_parts().await?;
        let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else { return Ok(None) };
        match accounts::authenticate(&*state()?, &token).await {
            Ok(p) if p.kind == TokenKind::User => Ok(Some(p)),
            Ok(_) => Ok(None),
            Err(e) if e.status == 401 => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_cookie(value: String) -> AppResult<()> {
        let response = expect_context::<leptos_axum::ResponseOptions>();
        let value = HeaderValue::from_str(&value).map_err(AppError::internal)?;
        response.append_header(header::SET_COOKIE, value);
        Ok(())
    }

    /// HttpOnly, SameSite=Lax, whole site, as long as the token lives.
    pub fn set_session_cookie(token: &str) -> AppResult<()> {
        let s = state()?;
        let secure = if s.settings.cookie_secure { "; Secure" } else { "" };
        set_cookie(format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            s.settings.user_token_ttl_secs
        ))
    }

    pub fn clear_session_cookie() -> AppResult<()> {
        set_cookie(format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"))
    }
}
