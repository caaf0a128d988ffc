//! What both transports (the JSON routes in `api/` and the server functions
//! in `pages/`) need of HTTP: the client's address, numbers sent as text,
//! reading an upload's multipart body, and the server itself (the accept
//! loop and the layers every request passes).
//!
//! Layering: shared by `api/` and `pages/`; calls `service/`.

pub mod multipart;
pub mod server;

use axum::http::{header, HeaderMap};
use std::net::SocketAddr;

/// The name of the web session's cookie (an HttpOnly user token).
pub const SESSION_COOKIE: &str = "peervault_session";

/// The value of cookie `name` in `headers`.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The token of the web session's cookie, if the request carries one.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The client's address, for throttling and the log: the TCP peer, or the
/// first `X-Forwarded-For` hop when `trust_proxy` is on.
pub fn client_addr(parts_headers: &HeaderMap, peer: Option<SocketAddr>, trust_proxy: bool) -> String {
    if trust_proxy {
        if let Some(first) = parts_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return first.to_owned();
        }
    }
    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// Parses a decimal number written as a string: digits, an optional sign,
/// fraction and exponent. Rejects `inf`, `NaN`, hex and empty strings.
pub fn parse_numeric(s: &str) -> Option<f64> {
    let s = s.trim();
    let plausible = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
        && s.chars().any(|c| c.is_ascii_digit());
    if !plausible {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_strings() {
        assert_eq!(parse_numeric("2048"), Some(2048.0));
        assert_eq!(parse_numeric(" 1.5 "), Some(1.5));
        assert_eq!(parse_numeric("-3"), Some(-3.0));
        for bad in ["", "abc", "inf", "NaN", "0x10", "1e400", "--", "."] {
            assert_eq!(parse_numeric(bad), None, "{bad}");
        }
    }

}
