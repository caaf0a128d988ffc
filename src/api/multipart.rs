//! Reading an upload's multipart body: the `file` part streamed straight
//! into the importer, `name` (or `filename`) wherever it comes. Shared by
//! `POST /upload_file` and the web page's upload server function.

use crate::error::{AppError, AppResult};
use crate::service::{files, Principal};
use crate::state::AppState;
use futures::StreamExt;
use multer::{Constraints, Multipart, SizeLimit};

/// The limits every upload body is parsed with (the file part's own limit
/// is enforced while it streams, with the contract's 413 messages).
pub fn constraints() -> Constraints {
    Constraints::new().size_limit(SizeLimit::new().for_field("name", 4096).for_field("filename", 4096))
}

fn no_file() -> AppError {
    AppError::bad_request("No file Selected")
}

fn malformed(e: multer::Error) -> AppError {
    match e {
        multer::Error::FieldSizeExceeded { .. } => AppError::bad_request("The name field is too long"),
        _ => AppError::bad_request("Malformed multipart body"),
    }
}

/// How much of a refused body is still read so the client gets the answer.
const DRAIN_MAX_BYTES: u64 = 256 * 1024 * 1024;
const DRAIN_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Uploads from `parts` (see [`upload_parts`]). A body refused as too large
/// is read on (up to 256 MiB or 30 s more, then dropped) before the answer
/// goes out: a client still sending when the server closes the connection
/// sees a reset instead of the 413 and its message, and a browser's plain
/// form post would show its own error page.
pub async fn upload(state: &AppState, who: &Principal, mut parts: Multipart<'_>) -> AppResult<files::Uploaded> {
    let result = upload_parts(state, who, &mut parts).await;
    if matches!(&result, Err(e) if e.status == 413) {
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

/// Walks the parts, ingests the file, then commits it under its name.
async fn upload_parts(state: &AppState, who: &Principal, parts: &mut Multipart<'_>) -> AppResult<files::Uploaded> {
    let mut ingested = None;
    let mut part_name = String::new();
    let mut mime = None;
    let mut name = None;
    while let Some(field) = parts.next_field().await.map_err(malformed)? {
        match field.name() {
            Some("file") => {
                if ingested.is_some() {
                    return Err(AppError::bad_request("Only one file per upload"));
                }
                part_name = files::clean_name(field.file_name().unwrap_or_default());
                if part_name.is_empty() {
                    return Err(no_file());
                }
                mime = field.content_type().map(|m| m.essence_str().to_owned());
                ingested = Some(files::ingest(state, who, field.map(|piece| piece.map_err(malformed))).await?);
            }
            Some("name") | Some("filename") => {
                let text = field.text().await.map_err(malformed)?;
                let cleaned = files::clean_name(&text);
                if !cleaned.is_empty() {
                    name = Some(cleaned);
                }
            }
            _ => {
                // Unknown parts are read and ignored.
                let mut field = field;
                while field.chunk().await.map_err(malformed)?.is_some() {}
            }
        }
    }
    let ingested = ingested.ok_or_else(no_file)?;
    let name = name.unwrap_or(part_name);
    let mime = files::mime_for(mime.as_deref(), &name);
    files::commit(state, who, ingested, &name, &mime).await
}
