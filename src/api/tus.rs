//! Resumable uploads: the tus 1.0.0 protocol (https://tus.io/protocols/resumable-upload)
//! at `/uploads`, with the extensions creation, creation-with-upload,
//! creation-defer-length, termination, expiration and checksum (sha1,
//! sha256). Headers are parsed and written here; what an upload does is
//! `service::uploads`.
//!
//! Authentication: `Authorization` as every JSON route, or the web
//! session's cookie. Every request but OPTIONS must carry
//! `Tus-Resumable: 1.0.0`: a header a cross-site form cannot send (and a
//! cross-site script could only after a CORS preflight this server never
//! allows), so the cookie cannot be ridden from another site.

use super::{ApiError, ApiResult, Message};
use crate::error::AppError;
use crate::service::files;
use crate::service::uploads::{self, Checksum, NewUploadRequest, Progress};
use crate::service::{accounts, Principal};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine;
use futures::StreamExt;

pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Longest `Upload-Metadata` taken.
const MAX_METADATA: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/uploads", post(create).options(options).layer(axum::extract::DefaultBodyLimit::disable()))
        .route(
            "/uploads/{id}",
            axum::routing::head(head)
                .patch(patch)
                .post(overridden)
                .delete(terminate)
                .options(options)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .layer(axum::middleware::from_fn(protocol))
}

/// Every response says `Tus-Resumable`; a request (but OPTIONS) that does
/// not speak 1.0.0 is refused with 412 and the versions spoken.
async fn protocol(req: Request, next: Next) -> Response {
    let speaks = req.headers().get("tus-resumable").is_some_and(|v| v.as_bytes() == VERSION.as_bytes());
    let mut res = if req.method() == Method::OPTIONS || speaks {
        next.run(req).await
    } else {
        let mut res = ApiError(AppError::new(412, "Tus-Resumable: 1.0.0 is required")).into_response();
        res.headers_mut().insert("tus-version", HeaderValue::from_static(VERSION));
        res
    };
    let headers = res.headers_mut();
    headers.insert("tus-resumable", HeaderValue::from_static(VERSION));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The caller: the `Authorization` header, else the web session's cookie
/// (a user token only).
pub(super) async fn caller(state: &AppState, headers: &HeaderMap) -> ApiResult<Principal> {
    if let Some(raw) = headers.get(header::AUTHORIZATION) {
        let token = super::extract::bearer_token(raw.to_str().map_err(|_| AppError::token_invalid())?);
        if token.is_empty() {
            return Err(AppError::token_missing().into());
        }
        return Ok(accounts::authenticate(state, token).await?);
    }
    let token = crate::transport::session_token(headers).ok_or_else(AppError::token_missing)?;
    let who = accounts::authenticate(state, &token).await?;
    if who.kind != crate::service::tokens::TokenKind::User {
        return Err(AppError::token_invalid().into());
    }
    Ok(who)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| AppError::bad_request(format!("{name} is not readable")).into()),
    }
}

/// A non-negative integer header (digits only, as the protocol has them).
fn number(headers: &HeaderMap, name: &str) -> ApiResult<Option<u64>> {
    match header_str(headers, name)? {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| AppError::bad_request(format!("{name} must be a non-negative integer")).into())
        }
        Some(_) => Err(AppError::bad_request(format!("{name} must be a non-negative integer")).into()),
    }
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs (or a key alone).
fn metadata(raw: &str) -> ApiResult<Vec<(String, Vec<u8>)>> {
    if raw.len() > MAX_METADATA {
        return Err(AppError::bad_request("Upload-Metadata is too long").into());
    }
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = match item.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (item, ""),
        };
        let bad = || AppError::bad_request("Upload-Metadata must be comma-separated keys, each with an optional base64 value");
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic() && b != b',') || pairs.iter().any(|(k, _)| k == key) {
            return Err(bad().into());
        }
        let value = base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| bad())?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn text(pairs: &[(String, Vec<u8>)], keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| pairs.iter().find(|(k, _)| k == key)).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
fn checksum(headers: &HeaderMap) -> ApiResult<Option<Checksum>> {
    let Some(raw) = header_str(headers, "upload-checksum")? else { return Ok(None) };
    let bad = || AppError::bad_request("Upload-Checksum must be an algorithm (sha1 or sha256) and a base64 digest");
    let (algorithm, digest) = raw.split_once(' ').ok_or_else(bad)?;
    let digest = base64::engine::general_purpose::STANDARD.decode(digest.trim()).map_err(|_| bad())?;
    match algorithm {
        "sha1" if digest.len() == 20 => Ok(Some(Checksum::Sha1(digest))),
        "sha256" if digest.len() == 32 => Ok(Some(Checksum::Sha256(digest))),
        "sha1" | "sha256" => Err(bad().into()),
        _ => Err(AppError::bad_request("Unsupported checksum algorithm: sha1 and sha256 are").into()),
    }
}

fn expires(ms: i64) -> HeaderValue {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    HeaderValue::from_str(&httpdate::fmt_http_date(when)).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn set(res: &mut Response, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        res.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// The body, as the upload service reads it (a failure mid-way is a dropped link).
fn body_stream(body: Body) -> impl futures::Stream<Item = crate::error::AppResult<bytes::Bytes>> + Unpin + Send {
    body.into_data_stream().map(|r| r.map_err(|e| AppError::bad_request(format!("the body could not be read: {e}"))))
}

/// A PATCH body's content type must say it is bytes at an offset.
fn require_offset_stream(headers: &HeaderMap) -> ApiResult<()> {
    match header_str(headers, "content-type")? {
        Some(t) if t.eq_ignore_ascii_case(OFFSET_OCTET_STREAM) => Ok(()),
        _ => Err(AppError::new(415, "Content-Type must be application/offset+octet-stream").into()),
    }
}

/// The headers of where an upload stands (and what it became, once stored).
fn with_progress(mut res: Response, p: &Progress) -> Response {
    set(&mut res, "upload-offset", p.offset);
    res.headers_mut().insert("upload-expires", expires(p.expires_at));
    if let Some(stored) = &p.stored {
        set(&mut res, "peervault-cid", &stored.cid);
        set(&mut res, "peervault-car-cid", &stored.car_cid);
    }
    res
}

fn status(code: StatusCode) -> Response {
    code.into_response()
}

#[utoipa::path(options, path = "/uploads", tag = "uploads",
    description = "tus discovery (no token needed): the versions, extensions, size limit and checksum algorithms.",
    responses(
        (status = 204, description = "What this server speaks", headers(
            ("Tus-Version" = String, description = "1.0.0"),
            ("Tus-Extension" = String, description = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"),
            ("Tus-Max-Size" = u64, description = "The largest file, bytes (PEERVAULT_MAX_FILE_BYTES)"),
            ("Tus-Checksum-Algorithm" = String, description = "sha1,sha256"))),
    ))]
/// `OPTIONS /uploads`: what this server speaks.
pub async fn options(State(state): State<AppState>) -> Response {
    let mut res = status(StatusCode::NO_CONTENT);
    set(&mut res, "tus-version", VERSION);
    set(&mut res, "tus-extension", EXTENSIONS);
    set(&mut res, "tus-max-size", state.settings.max_file_bytes.max(0));
    set(&mut res, "tus-checksum-algorithm", "sha1,sha256");
    res
}

#[utoipa::path(post, path = "/uploads", tag = "uploads", security(("token" = []), ("session cookie" = [])),
    description = "tus creation. Every tus request but OPTIONS carries `Tus-Resumable: 1.0.0` (else 412 with `Tus-Version`). \
        With `Content-Type: application/offset+octet-stream` the body is the upload's first bytes (creation-with-upload). \
        A length of 0 stores the (empty) file at once.",
    params(
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Length" = Option<u64>, Header, description = "The file's size in bytes; or send `Upload-Defer-Length: 1` instead"),
        ("Upload-Defer-Length" = Option<String>, Header, description = "1: the length comes with a later PATCH"),
        ("Upload-Metadata" = String, Header, description = "Comma-separated `key base64(value)` pairs; `filename` (or `name`) names the file, `filetype` (or `type`) is its MIME type"),
    ),
    responses(
        (status = 201, description = "Created", headers(
            ("Location" = String, description = "/uploads/{id}"),
            ("Upload-Expires" = String, description = "When an unfinished upload is removed (HTTP date)"),
            ("Upload-Offset" = u64, description = "creation-with-upload: the bytes taken"),
            ("Peervault-Cid" = String, description = "Once the file is stored: its CID (as /upload_file's web3.cid)"),
            ("Peervault-Car-Cid" = String, description = "Once the file is stored: its CAR's CID"))),
        (status = 400, description = "Neither or both of Upload-Length and Upload-Defer-Length, a malformed header, no file name", body = Message,
            example = json!({"message": "Upload-Metadata must name the file (filename)"})),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Message, example = json!({"message": "Tus-Resumable: 1.0.0 is required"})),
        (status = 413, description = "Longer than the size limit, or than the account's room (its quota less its files and its other unfinished uploads)", body = Message,
            example = json!({"message": "Storage quota exceeded"})),
    ))]
/// `POST /uploads`: creates an upload (`Upload-Length`, or
/// `Upload-Defer-Length: 1`), optionally with its first bytes.
pub async fn create(State(state): State<AppState>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let who = caller(&state, headers).await?;
    let length = number(headers, "upload-length")?;
    let deferred = match header_str(headers, "upload-defer-length")? {
        None => false,
        Some("1") => true,
        Some(_) => return Err(AppError::bad_request("Upload-Defer-Length must be 1").into()),
    };
    if length.is_some() == deferred {
        return Err(AppError::bad_request("Send either Upload-Length or Upload-Defer-Length: 1").into());
    }
    let raw_metadata = header_str(headers, "upload-metadata")?.unwrap_or("");
    let pairs = metadata(raw_metadata)?;
    let name = files::clean_name(&text(&pairs, &["filename", "name"]).unwrap_or_default());
    if name.is_empty() {
        return Err(AppError::bad_request("Upload-Metadata must name the file (filename)").into());
    }
    // Only a well-formed media type is kept (the value is free bytes); else a guess from the name.
    let declared = text(&pairs, &["filetype", "type"]).and_then(|t| t.trim().parse::<mime_guess::mime::Mime>().ok());
    let mime = files::mime_for(declared.as_ref().map(|m| m.essence_str()), &name);
    // creation-with-upload: a body with the offset content type is the first PATCH.
    let with_body = header_str(headers, "content-type")?.is_some_and(|t| t.eq_ignore_ascii_case(OFFSET_OCTET_STREAM));
    let checksum = if with_body { checksum(headers)? } else { None };
    let request = NewUploadRequest { length, metadata: raw_metadata, name: &name, mime: &mime };
    let (id, expires_at) = uploads::create(&state, &who, &request).await?;
    let mut progress = Progress { offset: 0, expires_at, stored: None };
    if with_body {
        progress = uploads::append(&state, &who, &id, 0, None, checksum, body_stream(body)).await?;
    } else if length == Some(0) {
        // An empty file is complete as soon as it exists.
        progress = uploads::append(&state, &who, &id, 0, None, None, futures::stream::empty()).await?;
    }
    let mut res = with_progress(status(StatusCode::CREATED), &progress);
    set(&mut res, "location", format!("/uploads/{id}"));
    Ok(res)
}

#[utoipa::path(head, path = "/uploads/{id}", tag = "uploads", security(("token" = []), ("session cookie" = [])),
    params(("id" = String, Path, description = "The upload's id (from Location)"), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 200, description = "Where the upload stands (`Cache-Control: no-store`)", headers(
            ("Upload-Offset" = u64, description = "Bytes received and kept: resume from here"),
            ("Upload-Length" = u64, description = "The file's size, once known"),
            ("Upload-Defer-Length" = String, description = "1 while the length is not known"),
            ("Upload-Metadata" = String, description = "As sent at creation"),
            ("Upload-Expires" = String, description = "HTTP date"),
            ("Peervault-Cid" = String, description = "Once stored"),
            ("Peervault-Car-Cid" = String, description = "Once stored"))),
        (status = 401, description = "Token missing or invalid"),
        (status = 404, description = "No such upload of this account"),
        (status = 410, description = "The upload expired"),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`"),
    ))]
/// `HEAD /uploads/{id}`: where the upload stands.
pub async fn head(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let who = caller(&state, &headers).await?;
    let row = uploads::status(&state, &who, &id).await?;
    let mut res = with_progress(status(StatusCode::OK), &uploads::standing(&row));
    match row.length {
        Some(l) => set(&mut res, "upload-length", l),
        None => set(&mut res, "upload-defer-length", 1),
    }
    if !row.metadata.is_empty() {
        set(&mut res, "upload-metadata", &row.metadata);
    }
    Ok(res)
}

#[utoipa::path(patch, path = "/uploads/{id}", tag = "uploads", security(("token" = []), ("session cookie" = [])),
    description = "The next bytes of the upload, at its offset. A dropped link keeps what arrived (HEAD says how much), \
        unless an Upload-Checksum was sent. The PATCH that brings the last byte stores the file as `POST /upload_file` does.",
    params(
        ("id" = String, Path, description = "The upload's id"),
        ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("Upload-Offset" = u64, Header, description = "Where these bytes go: the offset HEAD (or the last PATCH) gave"),
        ("Upload-Length" = Option<u64>, Header, description = "A deferred upload's length (once)"),
        ("Upload-Checksum" = Option<String>, Header, description = "`sha1 <base64>` or `sha256 <base64>` of this PATCH's body"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Taken", headers(
            ("Upload-Offset" = u64, description = "The new offset"),
            ("Upload-Expires" = String, description = "HTTP date"),
            ("Peervault-Cid" = String, description = "When this PATCH completed the upload: the file's CID"),
            ("Peervault-Car-Cid" = String, description = "When this PATCH completed the upload: its CAR's CID"))),
        (status = 400, description = "A malformed header, a length that changes or is less than received, a checksum body cut short", body = Message),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 404, description = "No such upload of this account", body = Message, example = json!({"message": "Upload not found"})),
        (status = 409, description = "Upload-Offset is not the upload's offset", body = Message,
            example = json!({"message": "Upload-Offset does not match the upload's offset"})),
        (status = 410, description = "The upload expired", body = Message, example = json!({"message": "Upload expired"})),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Message),
        (status = 413, description = "Past Upload-Length, the size limit or the account's room: nothing of this PATCH is kept", body = Message),
        (status = 415, description = "Not application/offset+octet-stream", body = Message),
        (status = 460, description = "The body does not match Upload-Checksum: nothing of it is kept", body = Message, example = json!({"message": "Checksum mismatch"})),
    ))]
/// `PATCH /uploads/{id}`: the next bytes, at `Upload-Offset`.
pub async fn patch(State(state): State<AppState>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let who = caller(&state, headers).await?;
    require_offset_stream(headers)?;
    let offset = number(headers, "upload-offset")?.ok_or_else(|| AppError::bad_request("Upload-Offset is required"))?;
    let length = number(headers, "upload-length")?;
    let checksum = checksum(headers)?;
    let progress = uploads::append(&state, &who, &id, offset, length, checksum, body_stream(body)).await?;
    Ok(with_progress(status(StatusCode::NO_CONTENT), &progress))
}

#[utoipa::path(post, path = "/uploads/{id}", tag = "uploads", security(("token" = []), ("session cookie" = [])),
    description = "For clients that can send only GET and POST: the request is taken as the PATCH, DELETE or HEAD that \
        `X-HTTP-Method-Override` names, with that method's headers, body and answers.",
    params(("id" = String, Path, description = "The upload's id"), ("Tus-Resumable" = String, Header, description = "1.0.0"),
        ("X-HTTP-Method-Override" = String, Header, description = "PATCH, DELETE or HEAD")),
    responses(
        (status = 204, description = "As PATCH or DELETE"),
        (status = 200, description = "As HEAD"),
        (status = 400, description = "No or another override", body = Message,
            example = json!({"message": "X-HTTP-Method-Override must be PATCH, DELETE or HEAD"})),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 404, description = "No such upload of this account", body = Message),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Message),
    ))]
/// `POST /uploads/{id}` with `X-HTTP-Method-Override: PATCH|DELETE|HEAD`:
/// that method (tus asks a server to honour it, for clients that can send
/// only GET and POST).
async fn overridden(state: State<AppState>, id: Path<String>, req: Request) -> ApiResult<Response> {
    let method = req.headers().get("x-http-method-override").map(|v| v.as_bytes().to_ascii_uppercase());
    match method.as_deref() {
        Some(b"PATCH") => patch(state, id, req).await,
        Some(b"DELETE") => terminate(state, id, req.headers().clone()).await,
        Some(b"HEAD") => head(state, id, req.headers().clone()).await,
        _ => Err(AppError::bad_request("X-HTTP-Method-Override must be PATCH, DELETE or HEAD").into()),
    }
}

#[utoipa::path(delete, path = "/uploads/{id}", tag = "uploads", security(("token" = []), ("session cookie" = [])),
    params(("id" = String, Path, description = "The upload's id"), ("Tus-Resumable" = String, Header, description = "1.0.0")),
    responses(
        (status = 204, description = "The upload and what it received are gone (a stored file stays)"),
        (status = 401, description = "Token missing or invalid", body = Message),
        (status = 404, description = "No such upload of this account", body = Message),
        (status = 410, description = "The upload expired", body = Message),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = Message),
    ))]
/// `DELETE /uploads/{id}`: the upload and what it received are gone.
pub async fn terminate(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let who = caller(&state, &headers).await?;
    uploads::terminate(&state, &who, &id).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs() {
        let pairs = metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==, is_confidential").ok().expect("valid");
        assert_eq!(text(&pairs, &["filename"]).as_deref(), Some("world_domination_plan.pdf"));
        assert_eq!(pairs[1], ("is_confidential".to_owned(), Vec::new()));
        assert!(metadata("").ok().expect("empty").is_empty());
        for bad in ["filename !!", "a 1,a 2", "k\u{7f} YQ==", "filename YQ"] {
            assert!(metadata(bad).is_err(), "{bad}");
        }
    }
}
