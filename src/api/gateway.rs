//! `GET`/`HEAD /ipfs/{cid}`: the target of signed download links, following
//! the IPFS trustless gateway for `?format=car` / `?format=raw`.

use crate::error::{AppError, AppResult};
use crate::service::download::{self, Format};
use crate::service::files;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct GatewayQuery {
    token: Option<String>,
    filename: Option<String>,
    format: Option<String>,
}

const CAR_TYPE: &str = "application/vnd.ipld.car";
const RAW_TYPE: &str = "application/vnd.ipld.raw";
/// Content anyone may fetch (shared files, identity CIDs) never changes under its CID.
const PUBLIC_CACHE: &str = "public, max-age=29030400, immutable";

fn format_of(query: &GatewayQuery, headers: &HeaderMap) -> AppResult<Format> {
    match query.format.as_deref() {
        Some("car") => return Ok(Format::Car),
        Some("raw") => return Ok(Format::Raw),
        Some(other) if !other.is_empty() => {
            return Err(AppError::bad_request(format!("Unsupported format {other:?}: use car or raw")))
        }
        _ => {}
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let wants = |mime: &str| accept.split(',').any(|part| part.split(';').next().is_some_and(|m| m.trim() == mime));
    Ok(if wants(CAR_TYPE) {
        Format::Car
    } else if wants(RAW_TYPE) {
        Format::Raw
    } else {
        Format::Bytes
    })
}

/// `attachment` with an ASCII fallback name and the exact name in UTF-8.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let value = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", crate::util::percent_encode(name));
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag))
}

/// A single byte range of a `size`-byte body: `None` to ignore the header
/// (absent, malformed or several ranges: the whole body is sent),
/// `Some(Err)` when it cannot be satisfied.
fn parse_range(headers: &HeaderMap, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size - n.min(size), size - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() { u64::MAX } else { b.parse().ok()? };
        if end < start {
            return None;
        }
        if start >= size {
            return Some(Err(()));
        }
        (start, end.min(size - 1))
    };
    Some(Ok(range))
}

#[utoipa::path(get, path = "/ipfs/{cid}", tag = "files",
    params(
        ("cid" = String, Path, description = "Root CID of a stored file; with `format=raw`, any block of its DAG; an identity CID (`bafkqaaa`, the probe) needs no token"),
        ("token" = Option<String>, Query, description = "The signature from /download_file; none for a shared file (`/share_file`)"),
        ("filename" = Option<String>, Query, description = "Name for Content-Disposition"),
        ("format" = Option<String>, Query, description = "`car` (the CAR, as ipfs-car writes it) or `raw` (the root block); also chosen by `Accept: application/vnd.ipld.car` / `application/vnd.ipld.raw`"),
    ),
    responses(
        (status = 200, description = "The file's bytes, with Content-Type, Content-Disposition, Content-Length, ETag and Accept-Ranges; HEAD gives the headers only"),
        (status = 206, description = "One byte range (`Range: bytes=a-b`)"),
        (status = 304, description = "`If-None-Match` matched the ETag"),
        (status = 400, description = "Invalid CID or format", body = super::Message),
        (status = 403, description = "Missing, forged or expired link", body = super::Message, example = json!({"message": "Download link is invalid or has expired"})),
        (status = 404, description = "The owner no longer stores this file", body = super::Message, example = json!({"message": "File not found"})),
        (status = 416, description = "Range outside the file", body = super::Message),
    ))]
pub async fn ipfs(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    query: Result<Query<GatewayQuery>, axum::extract::rejection::QueryRejection>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Ok(Query(query)) = query else {
        return AppError::bad_request("Malformed query string").into_response();
    };
    match serve(&state, &cid, query, &method, &headers).await {
        Ok(response) => response,
        Err(e) => super::ApiError(e).into_response(),
    }
}

/// An identity CID holds its content: served to anyone (`/ipfs/bafkqaaa`,
/// the empty block, is how trustless clients probe a gateway). As a CAR it
/// is only a header naming it: identity blocks are never put in a CAR.
fn identity(cid: &str, data: Vec<u8>, binary: &[u8], format: Format, method: &Method) -> AppResult<Response> {
    let (body, content_type, etag) = match format {
        Format::Car => (crate::content::car_header_of(binary), format!("{CAR_TYPE}; version=1; order=dfs; dups=n"), format!("\"{cid}.car\"")),
        Format::Raw => (data, RAW_TYPE.to_owned(), format!("\"{cid}.raw\"")),
        Format::Bytes => (data, "application/octet-stream".to_owned(), format!("\"{cid}\"")),
    };
    let response = Response::builder()
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::CACHE_CONTROL, PUBLIC_CACHE)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, etag)
        .header(header::VARY, "Accept")
        .header(header::CONTENT_LENGTH, body.len())
        .header("x-ipfs-path", format!("/ipfs/{cid}"));
    let body = if method == Method::HEAD { Body::empty() } else { Body::from(body) };
    response.body(body).map_err(AppError::internal)
}

async fn serve(state: &AppState, cid: &str, query: GatewayQuery, method: &Method, headers: &HeaderMap) -> AppResult<Response> {
    let format = format_of(&query, headers)?;
    if let Some((data, binary)) = crate::content::identity_raw(cid) {
        return identity(cid.trim(), data, &binary, format, method);
    }
    // Without a token: a shared file. Else a file's link opens its root in
    // any format, and each block of its DAG raw.
    let shared = match query.token.as_deref() {
        None => files::open_public(state, cid).await?,
        Some(_) => None,
    };
    let public = shared.is_some();
    let link = match shared {
        Some(link) => link,
        None => files::open_download(state, cid, query.token.as_deref(), format == Format::Raw).await?,
    };
    let file = &link.file;
    let name = query.filename.as_deref().map(files::clean_name).filter(|n| !n.is_empty()).unwrap_or(file.name.clone());
    let size = file.size.max(0) as u64;
    let served = link.block.as_ref().map_or(file.cid.clone(), |b| b.to_string());

    let mut response = Response::builder()
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::CACHE_CONTROL, if public { PUBLIC_CACHE } else { "private, no-cache" })
        .header("x-ipfs-path", format!("/ipfs/{served}"));

    let (etag, content_type, filename) = match format {
        Format::Bytes => (format!("\"{}\"", file.cid), file.mime.clone(), name),
        Format::Car => (format!("\"{}.car\"", file.cid), format!("{CAR_TYPE}; version=1; order=unk; dups=y"), format!("{name}.car")),
        Format::Raw if link.block.is_some() => (format!("\"{served}.raw\""), RAW_TYPE.to_owned(), format!("{served}.bin")),
        Format::Raw => (format!("\"{}.raw\"", file.cid), RAW_TYPE.to_owned(), format!("{name}.bin")),
    };
    response = response.header(header::ETAG, &etag).header(header::CONTENT_TYPE, &content_type).header(header::VARY, "Accept");
    if etag_matches(headers, &etag) {
        return response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(AppError::internal);
    }
    response = response.header(header::CONTENT_DISPOSITION, disposition(&filename));

    let mut range = None;
    let mut status = StatusCode::OK;
    if format == Format::Bytes {
        response = response.header(header::ACCEPT_RANGES, "bytes");
        match parse_range(headers, size) {
            None => {}
            Some(Err(())) => {
                return Response::builder()
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(r#"{"message":"Range not satisfiable"}"#))
                    .map_err(AppError::internal);
            }
            Some(Ok((start, end))) => {
                response = response.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
                status = StatusCode::PARTIAL_CONTENT;
                range = Some((start, end));
            }
        }
    } else if format == Format::Car {
        response = response.header(header::ACCEPT_RANGES, "none");
    }
    let content = download::open(state, &link, format, range, method != Method::HEAD).await?;
    response = response.status(status).header(header::CONTENT_LENGTH, content.len);
    let body = content.body.map_or_else(Body::empty, Body::from_stream);
    response.body(body).map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(h: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(h).unwrap());
        parse_range(&headers, size)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(range("bytes=-1000", 100), Some(Ok((0, 99))));
        assert_eq!(range("bytes=50-1000", 100), Some(Ok((50, 99))));
        assert_eq!(range("bytes=100-", 100), Some(Err(())));
        assert_eq!(range("bytes=0-1,5-6", 100), None);
        assert_eq!(range("items=0-1", 100), None);
        assert_eq!(range("bytes=5-1", 100), None);
        assert_eq!(range("bytes=0-0", 0), Some(Err(())));
    }
}
