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
/// first `X-Forwarded-For` hop when `trust_proxy` is on (if it is an IP
/// address). An IPv6 client is its /64, which one subscriber usually has
/// whole: spreading requests over its addresses gains it nothing.
pub fn client_addr(parts_headers: &HeaderMap, peer: Option<SocketAddr>, trust_proxy: bool) -> String {
    let forwarded = || {
        parts_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
    };
    let ip = trust_proxy.then(forwarded).flatten().or(peer.map(|p| p.ip()));
    match ip {
        Some(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
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
    fn client_addresses() {
        let peer: SocketAddr = "10.0.0.7:4000".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(client_addr(&headers, Some(peer), true), "10.0.0.7");
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.1".parse().unwrap());
        assert_eq!(client_addr(&headers, Some(peer), true), "203.0.113.9");
        assert_eq!(client_addr(&headers, Some(peer), false), "10.0.0.7");
        // not an address: the peer's
        headers.insert("x-forwarded-for", "node 5".parse().unwrap());
        assert_eq!(client_addr(&headers, Some(peer), true), "10.0.0.7");
        // IPv6: its /64; IPv4 mapped into IPv6: the IPv4 address
        headers.insert("x-forwarded-for", "2001:db8:1:2:aaaa::1".parse().unwrap());
        assert_eq!(client_addr(&headers, Some(peer), true), "2001:db8:1:2::/64");
        let mapped: SocketAddr = "[::ffff:192.0.2.4]:80".parse().unwrap();
        assert_eq!(client_addr(&HeaderMap::new(), Some(mapped), false), "192.0.2.4");
        assert_eq!(client_addr(&HeaderMap::new(), None, false), "unknown");
    }

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
