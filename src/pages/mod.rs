//! One module per page, each with the server functions it calls.
//!
//! Layering: a transport: server functions use `transport/` and
//! `service/`, never `api/`.

pub mod account;
pub mod dashboard;
pub mod files;
pub mod folder;
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

    pub use crate::transport::SESSION_COOKIE;
    use crate::transport::cookie_value;

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

    /// A request's session, worked out once by [`session_layer`] and read
    /// by every server function the request runs (a page rendered on the
    /// server runs several).
    #[derive(Clone)]
    pub struct Session(pub Option<Principal>);

    /// The user session the cookie in `headers` names; `None` when there is
    /// no valid one (a missing, expired or revoked token, a device token).
    async fn resolve(state: &AppState, headers: &http::HeaderMap) -> AppResult<Option<Principal>> {
        let Some(token) = cookie_value(headers, SESSION_COOKIE) else { return Ok(None) };
        match accounts::authenticate(state, &token).await {
            Ok(p) if p.kind == TokenKind::User => Ok(Some(p)),
            Ok(_) => Ok(None),
            Err(e) if e.kind == crate::error::ErrorKind::Unauthorized => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The signed-in user: as [`session_layer`] found it, else from the cookie.
    pub async fn session() -> AppResult<Option<Principal>> {
        let parts = request_parts().await?;
        if let Some(Session(found)) = parts.extensions.get::<Session>() {
            return Ok(found.clone());
        }
        resolve(&state()?, &parts.headers).await
    }

    /// A layer in front of the pages and server functions: a request that
    /// carries the session cookie has its session looked up once, here.
    /// (Static files and download links are left alone; a lookup that fails
    /// is left for the server function to report.)
    pub async fn session_layer(
        axum::extract::State(state): axum::extract::State<AppState>,
        mut req: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        let path = req.uri().path();
        let skip = path.starts_with("/pkg/") || path.starts_with("/ipfs/") || cookie_value(req.headers(), SESSION_COOKIE).is_none();
        if !skip {
            if let Ok(found) = resolve(&state, req.headers()).await {
                req.extensions_mut().insert(Session(found));
            }
        }
        next.run(req).await
    }

    /// The signed-in user, or 401 "Please log in again": what every server
    /// function that acts for the user starts with.
    pub async fn require_user() -> AppResult<Principal> {
        session().await?.ok_or_else(|| AppError::unauthorized("Please log in again"))
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
