//! `GET`/`HEAD /ipfs/{cid}`: the target of signed download links, following
//! the IPFS trustless gateway for `?format=car` / `?format=raw`.

use crate::content::{self, CarWriter, ContentCid, Importer, Params, CODEC_RAW};
use crate::error::{AppError, AppResult};
use crate::service::files::{self, Download};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

#[derive(Debug, Deserialize)]
pub struct GatewayQuery {
    token: Option<String>,
    filename: Option<String>,
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Bytes,
    Car,
    Raw,
}

const CAR_TYPE: &str = "application/vnd.ipld.car";
const RAW_TYPE: &str = "application/vnd.ipld.raw";

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

/// A `Write` whose bytes become the response body, sent in 256 KiB pieces.
struct BodyWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

const PIECE: usize = 256 * 1024;

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
            self.tx.blocking_send(Ok(piece)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        }
        Ok(())
    }
}

/// The body produced by `produce` on the blocking pool; bytes actually
/// sent are added to the owner's `data_downloaded` when the body ends or
/// the client goes away.
fn blocking_body(
    state: &AppState,
    owner_id: i64,
    produce: impl FnOnce(&mut BodyWriter) -> io::Result<()> + Send + 'static,
) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = BodyWriter { tx: tx.clone(), buf: Vec::with_capacity(PIECE) };
        if let Err(e) = produce(&mut writer).and_then(|()| writer.flush()) {
            if e.kind() != io::ErrorKind::BrokenPipe {
                tracing::error!(error = %e, "reading a stored object failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let db = state.db.clone();
    Body::from_stream(Counted {
        rx,
        served: 0,
        on_end: Some(Box::new(move |served| {
            if served > 0 {
                tokio::spawn(async move {
                    if let Err(e) = db.add_downloaded(owner_id, served as i64).await {
                        tracing::error!(error = %e, "could not count downloaded bytes");
                    }
                });
            }
        })),
    })
}

struct Counted {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    served: u64,
    on_end: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl Stream for Counted {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.served += bytes.len() as u64;
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.served);
        }
    }
}

fn missing_object() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "object missing from the blob store")
}

/// Feeds the whole stored file through `sink`.
fn read_whole(state: &AppState, cid: &str, size: u64, mut sink: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut reader = state.blobs.open_range(cid, 0, size)?.ok_or_else(missing_object)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sink(&buf[..n])?;
    }
}

/// The root block of a stored file (its bytes if it is a single raw leaf,
/// else its dag-pb root node, recomputed from the content).
fn root_block(state: &AppState, root: &ContentCid, size: u64) -> io::Result<Vec<u8>> {
    let mut importer = Importer::new(Params::IPFS_CAR, false);
    let mut last = Vec::new();
    read_whole(state, &root.to_string(), size, |piece| {
        importer.write(piece, &mut |_| {});
        Ok(())
    })?;
    let imported = importer.finish(&mut |b| {
        last = match b {
            content::Block::Leaf { data, .. } => data.to_vec(),
            content::Block::Node { bytes, .. } => bytes.to_vec(),
        }
    });
    if &imported.root != root {
        return Err(io::Error::other("stored object does not match its CID"));
    }
    Ok(last)
}

#[utoipa::path(get, path = "/ipfs/{cid}", tag = "files",
    params(
        ("cid" = String, Path, description = "Root CID of a stored file"),
        ("token" = String, Query, description = "The signature from /download_file"),
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
        Err(e) => e.into_response(),
    }
}

async fn serve(state: &AppState, cid: &str, query: GatewayQuery, method: &Method, headers: &HeaderMap) -> AppResult<Response> {
    let format = format_of(&query, headers)?;
    let Download { owner_id, file } = files::open_download(state, cid, query.token.as_deref()).await?;
    let root = files::parse_cid(&file.cid)?;
    let name = query.filename.as_deref().map(files::clean_name).filter(|n| !n.is_empty()).unwrap_or(file.name.clone());
    let size = file.size as u64;
    let head = method == Method::HEAD;

    let mut response = Response::builder()
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::CACHE_CONTROL, "private, no-cache")
        .header("x-ipfs-path", format!("/ipfs/{}", file.cid));

    let (etag, content_type) = match format {
        Format::Bytes => (format!("\"{}\"", file.cid), file.mime.clone()),
        Format::Car => (format!("\"{}.car\"", file.cid), format!("{CAR_TYPE}; version=1; order=unk; dups=y")),
        Format::Raw => (format!("\"{}.raw\"", file.cid), RAW_TYPE.to_owned()),
    };
    response = response.header(header::ETAG, &etag).header(header::CONTENT_TYPE, &content_type).header(header::VARY, "Accept");
    if etag_matches(headers, &etag) {
        return response.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(AppError::internal);
    }

    match format {
        Format::Bytes => {
            response = response.header(header::CONTENT_DISPOSITION, disposition(&name)).header(header::ACCEPT_RANGES, "bytes");
            let (status, start, len) = match parse_range(headers, size) {
                None => (StatusCode::OK, 0, size),
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
                    (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
                }
            };
            response = response.status(status).header(header::CONTENT_LENGTH, len);
            if head {
                return response.body(Body::empty()).map_err(AppError::internal);
            }
            // Opened before the status line goes out: a store that cannot
            // be read is a plain 503 (or 500), not a response cut short.
            let blobs = state.blobs.clone();
            let key = file.cid.clone();
            let mut reader = tokio::task::spawn_blocking(move || blobs.open_range(&key, start, len)?.ok_or_else(missing_object))
                .await
                .map_err(AppError::internal)?
                .map_err(AppError::storage)?;
            let body = blocking_body(state, owner_id, move |out| io::copy(&mut reader, out).map(|_| ()));
            response.body(body).map_err(AppError::internal)
        }
        Format::Car => {
            response = response
                .status(StatusCode::OK)
                .header(header::CONTENT_DISPOSITION, disposition(&format!("{name}.car")))
                .header(header::ACCEPT_RANGES, "none");
            if head {
                return response.body(Body::empty()).map_err(AppError::internal);
            }
            let st = state.clone();
            let body = blocking_body(state, owner_id, move |out| {
                // The CAR is made again from the content, block by block, the
                // same way it was made (and hashed) at upload.
                let mut car = CarWriter::new(&root, out)?;
                let mut importer = Importer::new(Params::IPFS_CAR, false);
                let mut failed = None;
                read_whole(&st, &root.to_string(), size, |piece| {
                    importer.write(piece, &mut |b| {
                        if let Err(e) = car.importer_block(b) {
                            failed.get_or_insert(e);
                        }
                    });
                    failed.take().map_or(Ok(()), Err)
                })?;
                let imported = importer.finish(&mut |b| {
                    if let Err(e) = car.importer_block(b) {
                        failed.get_or_insert(e);
                    }
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                if imported.root != root {
                    return Err(io::Error::other("stored object does not match its CID"));
                }
                Ok(())
            });
            response.body(body).map_err(AppError::internal)
        }
        Format::Raw => {
            let block = if root.codec() == CODEC_RAW {
                None
            } else {
                let st = state.clone();
                let root = root.clone();
                Some(
                    tokio::task::spawn_blocking(move || root_block(&st, &root, size))
                        .await
                        .map_err(AppError::internal)?
                        .map_err(AppError::storage)?,
                )
            };
            let len = block.as_ref().map_or(size, |b| b.len() as u64);
            response = response
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, len)
                .header(header::CONTENT_DISPOSITION, disposition(&format!("{name}.bin")));
            if head {
                return response.body(Body::empty()).map_err(AppError::internal);
            }
            let blobs = state.blobs.clone();
            let key = file.cid.clone();
            let body = blocking_body(state, owner_id, move |out| match block {
                Some(bytes) => out.write_all(&bytes),
                None => {
                    let mut reader = blobs.open_range(&key, 0, size)?.ok_or_else(missing_object)?;
                    io::copy(&mut reader, out).map(|_| ())
                }
            });
            response.body(body).map_err(AppError::internal)
        }
    }
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
