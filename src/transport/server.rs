//! HTTP around the routes, for both transports: the accept loop (with the
//! header-read and body timeouts axum::serve does not set) and the layers
//! every request passes — security headers and the page's CSP nonce, the
//! cross-site check on server functions, real statuses for server-function
//! errors, JSON for 405, and the bounded multipart body of the upload
//! server function.

use crate::error::AppError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;
use tower::ServiceExt;

/// How long the server waits on a client, each way.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To send a request's headers (an idle kept-alive connection as long
    /// to start the next one).
    pub header_read: Duration,
    /// A request body that sends nothing this long fails with 408.
    pub body: Duration,
    /// A response the client reads nothing of this long is cut (the
    /// connection closed).
    pub send: Duration,
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish, with `timeouts` on every connection: a few
/// thousand sockets that never finish sending, or never read, cannot hold
/// the server's file descriptors and threads for ever.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, timeouts: Timeouts, shutdown: impl Future<Output = ()>) {
    let Timeouts { header_read: header_read_timeout, body: body_timeout, send: send_timeout } = timeouts;
    // HTTP/1 only: detecting HTTP/2 first waits for the client's first bytes
    // with no timeout at all, so a socket that sends nothing would stay open.
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app.clone().map_request(move |req: Request<hyper::body::Incoming>| {
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(ConnectInfo(peer));
            Request::from_parts(parts, Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, body)))
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper times a request's headers from their first byte on: a
            // socket that never sends one is closed here.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await, Ok(Ok(1..))) {
                return;
            }
            let stream = SendTimeout { inner: stream, limit: send_timeout, stalled: None };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection whose writes fail once the client has taken none of the
/// response for `limit`: hyper then closes it and drops the response body,
/// so what was producing it (a download's thread and slot) is freed. A
/// client that reads, however slowly, is never cut.
struct SendTimeout {
    inner: tokio::net::TcpStream,
    limit: Duration,
    /// Running since a write first could not go on.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl SendTimeout {
    fn watch<T>(&mut self, cx: &mut std::task::Context<'_>, polled: std::task::Poll<std::io::Result<T>>) -> std::task::Poll<std::io::Result<T>> {
        use std::task::Poll;
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let timer = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client read nothing for too long"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for SendTimeout {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SendTimeout {
    fn poll_write(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The CSP nonce of one response, made before the page renders.
#[derive(Clone)]
pub struct CspNonce(pub String);

/// Gives the page renderer this request's nonce (as leptos' own), so every
/// script it writes carries the nonce the header names.
pub fn provide_csp_nonce() {
    use leptos::prelude::use_context;
    if let Some(nonce) = use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<CspNonce>().cloned()) {
        leptos::prelude::provide_context(leptos::nonce::Nonce::from_value(nonce.0));
    }
}

/// The Content-Security-Policy of a page: scripts only from this site or
/// with this response's nonce (and WebAssembly), nothing inline otherwise,
/// never framed, forms posted only here (and to `public_url`, where the
/// no-JavaScript download form is sent).
fn page_policy(nonce: &str, form_extra: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'{form_extra}; frame-ancestors 'none'"
    )
}

/// Security headers on every response: no sniffing, no framing, no
/// referrer to other sites (a same-origin one stays: a browser's plain form
/// post is sent back to it, and without it the browser's `Origin` would
/// read `null`); a CSP (with this response's nonce on pages); `no-store` on
/// pages and JSON (they show the signed-in user's data) unless the route
/// chose its own caching.
pub async fn security_headers(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let nonce = crate::util::random_hex(16);
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut res = next.run(req).await;
    let kind = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let (html, json) = (kind.starts_with("text/html"), kind.starts_with("application/json"));
    let form_extra = public_origin(&state).map(|o| format!(" {o}")).unwrap_or_default();
    let h = res.headers_mut();
    let policy = if html { page_policy(&nonce, &form_extra) } else { "default-src 'none'; frame-ancestors 'none'".to_owned() };
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        (header::X_FRAME_OPTIONS, "DENY".to_owned()),
        (header::REFERRER_POLICY, "same-origin".to_owned()),
        (header::CONTENT_SECURITY_POLICY, policy),
    ];
    for (name, value) in defaults {
        if let (false, Ok(value)) = (h.contains_key(&name), HeaderValue::from_str(&value)) {
            h.insert(name, value);
        }
    }
    if (html || json) && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// The origin of `public_url`, when one is set.
fn public_origin(state: &AppState) -> Option<String> {
    let url = url::Url::parse(state.settings.public_url.trim()).ok()?;
    Some(url.origin().ascii_serialization()).filter(|o| o != "null")
}

/// True when a state-changing request comes from another site: its `Origin`
/// is not this server's own (the `Host` it was sent to, or `public_url`),
/// or, without an `Origin`, the browser says `Sec-Fetch-Site: cross-site`
/// or `same-site`. Requests that carry neither (curl, the Android app) are
/// not from a browser and carry no ambient cookie to abuse.
fn cross_site(headers: &HeaderMap, state: &AppState) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match text("origin") {
        Some(origin) => {
            let Ok(url) = url::Url::parse(origin) else { return true };
            let origin = url.origin().ascii_serialization();
            if origin == "null" {
                return true;
            }
            if public_origin(state).is_some_and(|o| o == origin) {
                return false;
            }
            let host = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            let forwarded = if state.settings.trust_proxy_headers { text("x-forwarded-host") } else { None };
            let served = forwarded.or_else(|| text("host")).unwrap_or_default();
            !served.eq_ignore_ascii_case(&host)
        }
        None => matches!(text("sec-fetch-site"), Some("cross-site" | "same-site")),
    }
}

/// Server functions (the web UI's calls, authenticated by the session
/// cookie) refuse a state-changing request from another site with 403:
/// SameSite=Lax alone lets some cross-site posts through. So do resumable
/// uploads (`/uploads`) that rely on the cookie (no `Authorization`), on
/// top of the `Tus-Resumable` header they need.
pub async fn refuse_cross_site(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let path = req.uri().path();
    let server_fn = path.starts_with("/api/");
    let cookie_upload = (path == "/uploads" || path.starts_with("/uploads/")) && !req.headers().contains_key(header::AUTHORIZATION);
    if unsafe_method && (server_fn || cookie_upload) && cross_site(req.headers(), &state) {
        tracing::warn!(target: "security", path = %path, "cross-site request refused");
        let refused = AppError::forbidden("Cross-site request refused");
        return if server_fn { server_fn_error(refused) } else { refused.into_response_json() };
    }
    next.run(req).await
}

/// An error as a server function answers it: the status, and `{"status", "message"}`.
fn server_fn_error(e: AppError) -> Response {
    (e.status_code(), axum::Json(serde_json::json!({ "status": e.status, "message": e.message }))).into_response()
}

/// Server-function errors go out with their own status (leptos answers
/// every error with 500 and the real status only in the body).
pub async fn server_fn_status(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    let json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if res.status() != StatusCode::INTERNAL_SERVER_ERROR || !json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return AppError::internal("server function error body unreadable").into_response();
    };
    let status = serde_json::from_slice::<AppError>(&bytes).ok().and_then(|e| StatusCode::from_u16(e.status).ok());
    if let Some(status) = status.filter(|s| s.is_client_error() || s.is_server_error()) {
        parts.status = status;
    }
    let mut res = Response::from_parts(parts, Body::from(bytes));
    crate::error::retry_after(&mut res);
    res
}

/// A 405 (a known path, another method) says so in JSON, keeping `Allow`.
pub async fn json_method_not_allowed(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if res.status() != StatusCode::METHOD_NOT_ALLOWED || res.headers().contains_key(header::CONTENT_TYPE) {
        return res;
    }
    let allow = res.headers().get(header::ALLOW).cloned();
    let mut json = AppError::new(405, "Method not allowed").into_response_json();
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
}

/// The upload server function's body: refused (415, not a panic in the
/// framework) without a multipart boundary, and read through the same
/// guard as `POST /upload_file`, so no part header can be of any length.
pub async fn guard_upload_fn(req: Request, next: Next) -> Response {
    if req.method() != Method::POST || req.uri().path() != UPLOAD_FN_PATH {
        return next.run(req).await;
    }
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        return server_fn_error(AppError::new(415, "Content-Type must be multipart/form-data"));
    };
    let (parts, body) = req.into_parts();
    let guarded = super::multipart::guard(body.into_data_stream(), &boundary);
    next.run(Request::from_parts(parts, Body::from_stream(guarded))).await
}

const UPLOAD_FN_PATH: &str = <crate::pages::files::UploadMyFile as leptos::server_fn::ServerFn>::PATH;

/// The request's id: the client's `X-Request-Id` when it is a plain token,
/// else a new one; sent back on the response, and on every log line of the
/// request (the trace span below carries it).
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| {
        (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let id = given.map(str::to_owned).unwrap_or_else(|| crate::util::random_hex(8));
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, value);
    res
}

const REQUEST_ID: &str = "x-request-id";

/// One span per request: id, method and route (the route's pattern, never
/// the query, which may hold a download token); the response's status and
/// latency are logged when it goes out.
fn request_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().chars().take(128).collect());
    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
    tracing::info_span!("request", id = %id, method = %req.method(), route = %route)
}

/// The routes with every layer above, outermost first as a request meets them.
pub fn with_layers(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    use axum::middleware::{from_fn, from_fn_with_state};
    use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, DefaultOnResponse, TraceLayer};
    let trace = TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_request(DefaultOnRequest::new().level(tracing::Level::DEBUG))
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(tower_http::LatencyUnit::Millis))
        .on_failure(DefaultOnFailure::new().level(tracing::Level::ERROR));
    router
        .layer(from_fn(guard_upload_fn))
        .layer(from_fn(server_fn_status))
        .layer(from_fn(json_method_not_allowed))
        .layer(from_fn_with_state(state.clone(), refuse_cross_site))
        .layer(from_fn_with_state(state.clone(), security_headers))
        .layer(trace)
        .layer(from_fn(request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_policy_names_the_nonce() {
        let p = page_policy("abc", "");
        assert!(p.contains("'nonce-abc'") && p.contains("frame-ancestors 'none'") && !p.contains("unsafe-inline"));
    }
}
