//! Request parsing for the JSON routes: the body rules of the contract,
//! the bearer token and the client address.

use crate::error::{AppError, AppResult};
use crate::transport::{client_addr, parse_numeric};
use crate::service::{accounts, Principal};
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use serde_json::{Map, Value};
use std::net::SocketAddr;

/// A JSON object body. An empty body reads as `{}`.
pub struct JsonObject(pub Map<String, Value>);

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

fn too_large() -> AppError {
    AppError::too_large("Request body too large")
}

impl FromRequest<AppState> for JsonObject {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> AppResult<Self> {
        let limit = state.settings.max_json_body_bytes;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let json_type = is_json(req.headers());
        let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|e| read_error(&e))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        if !json_type {
            return Err(AppError::new(415, "Content-Type must be application/json"));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| AppError::bad_request("Request body is not valid UTF-8"))?;
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(AppError::bad_request("Request body must be a JSON object")),
            Err(_) => Err(AppError::bad_request("Malformed JSON in request body")),
        }
    }
}

/// Why a body could not be read: too long (413), stalled (408), or cut off.
fn read_error(e: &axum::Error) -> AppError {
    body_error(e, "Request body too large")
}

/// Why a body read with a limit failed: past the limit (413 `too_large`),
/// stalled (408), or cut off.
pub fn body_error(e: &axum::Error, too_large: &str) -> AppError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return AppError::too_large(too_large);
        }
        cur = err.source();
    }
    crate::transport::multipart::body_error(e).unwrap_or_else(|| AppError::bad_request("The request body could not be read"))
}

/// What a numeric field held.
pub enum Numeric {
    Missing,
    NotANumber,
    Value(f64),
}

impl JsonObject {
    /// A field that is present and not `null`.
    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn string(&self, name: &str) -> AppResult<&str> {
        match self.present(name) {
            None => Err(AppError::missing_field(name)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(AppError::bad_request(format!("{name} must be a string"))),
        }
    }

    /// A JSON `true` or `false`.
    pub fn boolean(&self, name: &str) -> AppResult<bool> {
        match self.present(name) {
            None => Err(AppError::missing_field(name)),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(AppError::bad_request(format!("{name} must be true or false"))),
        }
    }

    /// A number, or a string holding one (what the Android client sends).
    pub fn number(&self, name: &str) -> Numeric {
        match self.present(name) {
            None => Numeric::Missing,
            Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()).map_or(Numeric::NotANumber, Numeric::Value),
            Some(Value::String(s)) => parse_numeric(s).map_or(Numeric::NotANumber, Numeric::Value),
            Some(_) => Numeric::NotANumber,
        }
    }
}

/// The caller of a JSON route, from `Authorization: <JWT>` or `Authorization: Bearer <JWT>`.
pub struct Auth(pub Principal);

/// The token in an Authorization header value, without a `Bearer ` prefix.
pub fn bearer_token(value: &str) -> &str {
    let value = value.trim();
    if value.eq_ignore_ascii_case("bearer") {
        return "";
    }
    match value.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => value[7..].trim(),
        _ => value,
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let raw = match parts.headers.get(header::AUTHORIZATION) {
            None => return Err(AppError::token_missing()),
            Some(v) => v.to_str().map_err(|_| AppError::token_invalid())?,
        };
        let token = bearer_token(raw);
        if token.is_empty() {
            return Err(AppError::token_missing());
        }
        accounts::authenticate(state, token).await.map(Auth)
    }
}

/// The client's address, for throttling: the TCP peer, or the first
/// `X-Forwarded-For` hop when `trust_proxy_headers` is on.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        Ok(Self(client_addr(&parts.headers, peer, state.settings.trust_proxy_headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_prefix_is_optional() {
        assert_eq!(bearer_token("Bearer abc"), "abc");
        assert_eq!(bearer_token("bearer  abc "), "abc");
        assert_eq!(bearer_token("abc"), "abc");
        assert_eq!(bearer_token("Bearer "), "");
    }
}
