//! Reading an upload's multipart body: the `file` part streamed straight
//! into the importer, `name` (or `filename`) wherever it comes. Shared by
//! `POST /upload_file` and the web page's upload server function.
//!
//! Everything but the file's bytes is bounded: a part's headers and the
//! preamble ([`guard`], enforced on the raw bytes before the multipart
//! parser buffers them), every other part (4 KiB each, known or not) and
//! the number of parts.

use crate::error::{AppError, AppResult, PART_HEADERS_TOO_LARGE};
use crate::service::{files, Principal};
use crate::state::AppState;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use multer::Multipart;

/// Largest part other than the file (`name`, `filename`, or any other).
pub const MAX_FIELD_BYTES: usize = 4096;
/// Largest header block of one part, and largest preamble.
pub const MAX_PART_HEADER_BYTES: usize = 8192;
/// Most parts one upload may have.
pub const MAX_PARTS: usize = 32;

fn no_file() -> AppError {
    AppError::bad_request("No file Selected")
}

/// What a failed read of a request body means for the client: a body that
/// stalled (408), a multipart limit ([`PartLimit`], 400), or else a body that
/// is not well-formed multipart (400).
pub fn malformed(e: multer::Error) -> AppError {
    body_error(&e).unwrap_or_else(|| AppError::bad_request("Malformed multipart body"))
}

/// The client's share of a body read error, if the chain holds one: a
/// stalled body (the server's body timeout) or a multipart limit.
pub fn body_error(e: &(dyn std::error::Error + 'static)) -> Option<AppError> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return Some(AppError::new(408, "Request body timed out"));
        }
        if let Some(limit) = err.downcast_ref::<PartLimit>() {
            return Some(AppError::bad_request(limit.0));
        }
        // The upload server function's body reaches us through the framework,
        // which carries a read error as an AppError already.
        if let Some(wrapped) = err.downcast_ref::<leptos::server_fn::error::ServerFnErrorWrapper<AppError>>() {
            return matches!(wrapped.0.status, 400 | 408).then(|| wrapped.0.clone());
        }
        cur = err.source();
    }
    None
}

/// A multipart limit that the raw bytes broke.
#[derive(Debug)]
pub struct PartLimit(&'static str);

impl std::fmt::Display for PartLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for PartLimit {}

/// Where the guard is in the body.
enum Region {
    /// Part content (or the preamble, counted): looking for the next delimiter.
    Content { counted: Option<usize> },
    /// After a delimiter: the part's headers, up to the blank line.
    Headers { len: usize },
}

/// Watches a multipart body's raw bytes and fails it as soon as a part's
/// header block, or the preamble, passes [`MAX_PART_HEADER_BYTES`]: the
/// multipart parser would otherwise buffer a header line of any length.
/// It looks only for the delimiters (`CRLF--boundary`, which part content
/// cannot hold) and the blank line that ends a header block, keeping the
/// last few bytes of each chunk so a pattern split between chunks is found.
pub fn guard<S, E>(body: S, boundary: &str) -> impl Stream<Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    // The body is read as if it began with CRLF, so the first delimiter
    // (which has no CRLF before it) is found like the others.
    let state = (body, Region::Content { counted: Some(0) }, b"\r\n".to_vec(), delimiter, false);
    futures::stream::unfold(state, |(mut body, mut region, mut tail, delimiter, failed)| async move {
        if failed {
            return None;
        }
        let chunk = match body.next().await? {
            Ok(chunk) => chunk,
            Err(e) => return Some((Err(e.into()), (body, region, tail, delimiter, true))),
        };
        match scan(&mut region, &mut tail, &delimiter, &chunk) {
            Ok(()) => Some((Ok(chunk), (body, region, tail, delimiter, false))),
            Err(limit) => {
                // Read on (and drop) what the client is still sending, so it
                // gets the answer instead of a reset connection.
                let _ = tokio::time::timeout(DRAIN_MAX_TIME, async {
                    let mut read = 0u64;
                    while let Some(Ok(piece)) = body.next().await {
                        read += piece.len() as u64;
                        if read > DRAIN_MAX_BYTES {
                            break;
                        }
                    }
                })
                .await;
                Some((Err(Box::new(limit) as _), (body, region, tail, delimiter, true)))
            }
        }
    })
}

/// Advances the guard over one chunk.
fn scan(region: &mut Region, tail: &mut Vec<u8>, delimiter: &[u8], chunk: &[u8]) -> Result<(), PartLimit> {
    const BLANK_LINE: &[u8] = b"\r\n\r\n";
    let mut window = std::mem::take(tail);
    window.extend_from_slice(chunk);
    let mut pos = 0;
    loop {
        match region {
            Region::Content { counted } => match memchr::memmem::find(&window[pos..], delimiter) {
                Some(i) => {
                    if counted.is_some_and(|n| n + i > MAX_PART_HEADER_BYTES) {
                        return Err(PartLimit(PART_HEADERS_TOO_LARGE));
                    }
                    pos += i + delimiter.len();
                    *region = Region::Headers { len: 0 };
                }
                None => {
                    if let Some(n) = counted {
                        *n += window.len() - pos;
                        if *n > MAX_PART_HEADER_BYTES {
                            return Err(PartLimit(PART_HEADERS_TOO_LARGE));
                        }
                    }
                    let keep = (delimiter.len() - 1).min(window.len() - pos);
                    *tail = window[window.len() - keep..].to_vec();
                    // The kept bytes are counted again next time: only an overcount.
                    if let Some(n) = counted {
                        *n -= keep;
                    }
                    return Ok(());
                }
            },
            Region::Headers { len } => match memchr::memmem::find(&window[pos..], BLANK_LINE) {
                Some(i) => {
                    if *len + i > MAX_PART_HEADER_BYTES {
                        return Err(PartLimit(PART_HEADERS_TOO_LARGE));
                    }
                    pos += i + BLANK_LINE.len();
                    *region = Region::Content { counted: None };
                }
                None => {
                    let keep = (BLANK_LINE.len() - 1).min(window.len() - pos);
                    *len += window.len() - pos - keep;
                    if *len > MAX_PART_HEADER_BYTES {
                        return Err(PartLimit(PART_HEADERS_TOO_LARGE));
                    }
                    *tail = window[window.len() - keep..].to_vec();
                    return Ok(());
                }
            },
        }
    }
}

/// How much of a refused body is still read so the client gets the answer.
const DRAIN_MAX_BYTES: u64 = 256 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Uploads from `parts` (see [`upload_parts`]). A body refused (too large,
/// a part over its limit, no space left) is read on (up to 256 MiB or 30 s more, then dropped) before the answer
/// goes out: a client still sending when the server closes the connection
/// sees a reset instead of the 413 and its message, and a browser's plain
/// form post would show its own error page.
pub async fn upload(state: &AppState, who: &Principal, mut parts: Multipart<'_>) -> AppResult<files::Uploaded> {
    let result = upload_parts(state, who, &mut parts).await;
    if result.is_err() {
        let _ = tokio::time::timeout(DRAIN_MAX_TIME, drain(&mut parts)).await;
    }
    result
}

async fn drain(parts: &mut Multipart<'_>) {
    let mut read = 0u64;
    while let Ok(Some(mut field)) = parts.next_field().await {
        while let Ok(Some(chunk)) = field.chunk().await {
            read += chunk.len() as u64;
            if read > DRAIN_MAX_BYTES {
                return;
            }
        }
    }
}

/// A part's name as an error message may show it.
fn shown_name(name: Option<&str>) -> String {
    match name {
        Some(n) if !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) => n.to_owned(),
        _ => "unnamed".to_owned(),
    }
}

/// Reads a part other than the file, at most [`MAX_FIELD_BYTES`].
async fn small_field(mut field: multer::Field<'_>) -> AppResult<String> {
    let shown = shown_name(field.name());
    let too_long = || AppError::bad_request(format!("The {shown} field is too long"));
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(malformed)? {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(too_long());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Walks the parts, takes in the file (or a folder's files: several
/// `file` parts, or one whose file name is a path), then commits it under
/// its name.
async fn upload_parts(state: &AppState, who: &Principal, parts: &mut Multipart<'_>) -> AppResult<files::Uploaded> {
    let mut intake: Option<files::Intake> = None;
    let mut mime = None;
    let mut name = None;
    let mut count = 0;
    while let Some(field) = parts.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("file") => {
                let raw = field.file_name().unwrap_or_default().to_owned();
                // No name, or one that is only a directory (`dir/`): no file.
                if files::clean_name(&raw).is_empty() {
                    // A form's file input left empty (`filename=""`, no bytes;
                    // the page without JavaScript sends both of its inputs).
                    if raw.is_empty() && field.file_name().is_some() && small_field(field).await?.is_empty() {
                        continue;
                    }
                    return Err(no_file());
                }
                if intake.is_none() {
                    mime = field.content_type().map(|m| m.essence_str().to_owned());
                    intake = Some(files::Intake::begin(state, who).await?);
                }
                if let Some(intake) = intake.as_mut() {
                    intake.add(&raw, field.map(|piece| piece.map_err(malformed))).await?;
                }
            }
            other => {
                count += 1;
                if count > MAX_PARTS {
                    return Err(AppError::bad_request("Too many fields in the upload"));
                }
                if matches!(other, Some("name") | Some("filename")) {
                    let cleaned = files::clean_name(&small_field(field).await?);
                    if !cleaned.is_empty() {
                        name = Some(cleaned);
                    }
                } else {
                    // Other parts are read (within the same limits) and ignored.
                    small_field(field).await?;
                }
            }
        }
    }
    let intake = intake.ok_or_else(no_file)?;
    let part_name = intake.single_name();
    if part_name.as_ref().is_some_and(String::is_empty) {
        return Err(no_file());
    }
    let (ingested, folder) = intake.finish().await?;
    match folder {
        None => {
            let name = name.or(part_name).unwrap_or_default();
            let mime = files::mime_for(mime.as_deref(), &name);
            files::commit(state, who, ingested, &name, &mime, None).await
        }
        Some(folder) => {
            let name = name.or(folder.name.clone()).unwrap_or_else(|| format!("{} files", folder.files));
            files::commit(state, who, ingested, &name, files::FOLDER_MIME, Some(&folder)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Result<(), PartLimit> {
        let delimiter = b"\r\n--XyZ".to_vec();
        let mut region = Region::Content { counted: Some(0) };
        let mut tail = b"\r\n".to_vec();
        for c in chunks {
            scan(&mut region, &mut tail, &delimiter, c)?;
        }
        Ok(())
    }

    #[test]
    fn guard_passes_normal_bodies_split_anywhere() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nhello\r\n--XyZ\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
            .to_vec();
        let mut whole = body.clone();
        whole.extend(std::iter::repeat_n(b'x', 100_000));
        whole.extend_from_slice(b"\r\n--XyZ--\r\n");
        for split in [1, 2, 3, 7, 64, 4096] {
            let chunks: Vec<&[u8]> = whole.chunks(split).collect();
            run(&chunks).unwrap();
        }
    }

    #[test]
    fn guard_refuses_long_headers_and_preambles() {
        let mut long = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_PART_HEADER_BYTES + 10));
        assert!(run(&[&long]).is_err());
        let chunks: Vec<&[u8]> = long.chunks(1000).collect();
        assert!(run(&chunks).is_err());
        let preamble = vec![b'p'; MAX_PART_HEADER_BYTES + 10];
        assert!(run(&[&preamble]).is_err());
        // a part's content may be as long as it likes
        let mut ok = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n".to_vec();
        ok.extend(std::iter::repeat_n(b'z', 3 * MAX_PART_HEADER_BYTES));
        run(&[&ok]).unwrap();
    }
}
