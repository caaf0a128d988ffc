//! Files for the Android client: upload, list, download link, delete.

use super::extract::{Auth, JsonObject};
use super::Message;
use crate::error::AppError;
use crate::service::files;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Web3 {
    /// CIDv1 of the CAR, exactly what `ipfs-car hash` prints for it.
    #[serde(rename = "carCid")]
    pub car_cid: String,
    /// Root CID of the file, exactly what `ipfs-car pack --no-wrap` prints.
    pub cid: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    pub message: String,
    pub web3: Web3,
}

/// The multipart body of an upload (for the OpenAPI document).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file (required); its file name is the default name. Several
    /// `file` parts (at most 10,000), or one whose file name is a path
    /// (`dir/sub/a.txt`), upload a folder: each file name is the file's path
    /// in it, and the root is the UnixFS directory `ipfs-car pack <dir>` makes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The name to store (optional; `filename` is accepted too).
    name: Option<String>,
}

#[utoipa::path(post, path = "/upload_file", tag = "files", security(("token" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Stored; the CIDs ipfs-car gives the same bytes", body = UploadResponse),
        (status = 400, description = "No file part, a file part without a file name, a malformed body, or a part other than the file \
            over 4 KiB, part headers over 8 KiB, more than 32 parts", body = Message, example = json!({"message": "No file Selected"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
        (status = 408, description = "The body stopped arriving (nothing for the body timeout); nothing is kept", body = Message,
            example = json!({"message": "Request body timed out"})),
        (status = 413, description = "Over the size limit or the account's quota; nothing is kept", body = Message,
            example = json!({"message": "File too large"})),
        (status = 415, description = "Not multipart/form-data with a boundary", body = Message,
            example = json!({"message": "Content-Type must be multipart/form-data"})),
    ))]
pub async fn upload_file(State(state): State<AppState>, Auth(who): Auth, req: Request) -> super::ApiResult<Json<UploadResponse>> {
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| AppError::new(415, "Content-Type must be multipart/form-data"))?;
    let body = crate::transport::multipart::guard(req.into_body().into_data_stream(), &boundary);
    let parts = multer::Multipart::new(body, boundary);
    let up = crate::transport::multipart::upload(&state, &who, parts).await?;
    Ok(Json(UploadResponse { message: "File uploaded successfully".into(), web3: Web3 { car_cid: up.car_cid, cid: up.cid } }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileEntry {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub cid: String,
    #[serde(rename = "carCid")]
    pub car_cid: String,
    /// MIME type.
    #[serde(rename = "type")]
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// RFC 3339.
    pub uploaded_at: String,
    /// For a folder (`type` `inode/directory`): how many files it holds; absent for a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<i64>,
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[utoipa::path(post, path = "/get_file_list", tag = "files", security(("token" = [])),
    responses(
        (status = 200, description = "The account's files, newest first", body = [FileEntry]),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
    ))]
pub async fn get_file_list(State(state): State<AppState>, Auth(who): Auth) -> super::ApiResult<Json<Vec<FileEntry>>> {
    let rows = files::list(&state, &who).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| FileEntry {
                id: r.id.to_string(),
                name: r.name,
                cid: r.cid,
                car_cid: r.car_cid,
                mime: r.mime,
                size: r.size,
                uploaded_at: rfc3339(r.uploaded_at),
                files: r.folder_files,
            })
            .collect(),
    ))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct CidRequest {
    /// A CID this account stores.
    pub cid: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UrlResponse {
    /// `<public base>/ipfs/<cid>?filename=<name>&token=<signed, expiring>`
    pub url: String,
}

#[utoipa::path(post, path = "/download_file", tag = "files", security(("token" = [])),
    request_body(content = CidRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A signed link, valid one hour by default", body = UrlResponse),
        (status = 400, description = "Missing or syntactically invalid CID", body = Message, example = json!({"message": "Missing cid field in request body"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
        (status = 404, description = "This account does not store that CID", body = Message, example = json!({"message": "Invalid Credentials"})),
    ))]
pub async fn download_file(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> super::ApiResult<Json<UrlResponse>> {
    let cid = body.string("cid")?;
    Ok(Json(UrlResponse { url: files::download_link(&state, &who, cid).await? }))
}

#[derive(Debug, serde::Deserialize, ToSchema)]
pub struct ShareRequest {
    /// A CID this account stores.
    pub cid: String,
    /// `true`: served to anyone at `/ipfs/{cid}`; `false`: behind signed links again.
    pub public: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShareResponse {
    pub cid: String,
    pub public: bool,
    /// The share link (while shared): `<public base>/ipfs/<cid>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[utoipa::path(post, path = "/share_file", tag = "files", security(("token" = [])),
    description = "Turns sharing of this account's file on or off. Shared, its content is served to anyone at \
        `/ipfs/{cid}` without a token (with public cache headers, within a request budget per content); \
        turned off, at once only signed links open it again. Sharing is of the content: the name and type \
        served are this account's; another account's files of the same content stay private.",
    request_body(content = ShareRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Sharing is as asked", body = ShareResponse),
        (status = 400, description = "Missing or invalid CID, `public` not a boolean", body = Message, example = json!({"message": "public must be true or false"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
        (status = 404, description = "This account does not store that CID", body = Message, example = json!({"message": "File not found"})),
    ))]
pub async fn share_file(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> super::ApiResult<Json<ShareResponse>> {
    let cid = body.string("cid")?;
    let public = body.boolean("public")?;
    let (cid, url) = files::share(&state, &who, cid, public).await?;
    Ok(Json(ShareResponse { cid, public, url }))
}

#[utoipa::path(post, path = "/delete_file", tag = "files", security(("token" = [])),
    request_body(content = CidRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Deleted; links handed out stop working", body = Message, example = json!({"message": "File deleted successfully"})),
        (status = 400, description = "Missing or syntactically invalid CID", body = Message, example = json!({"message": "Invalid CID: not a valid CID"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
        (status = 404, description = "This account does not store that CID", body = Message, example = json!({"message": "Invalid Credentials"})),
    ))]
pub async fn delete_file(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> super::ApiResult<Json<Message>> {
    let cid = body.string("cid")?;
    files::delete(&state, &who, cid).await?;
    Ok(Json(Message { message: "File deleted successfully".into() }))
}

#[derive(Debug, serde::Deserialize)]
pub struct InFolder {
    cid: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    car: bool,
}

#[utoipa::path(get, path = "/files/folder/download", tag = "files", security(("token" = []), ("session cookie" = [])),
    params(
        ("cid" = String, Query, description = "A folder this account stores"),
        ("path" = Option<String>, Query, description = "A file in it (`sub/a.txt`); the folder itself when empty"),
        ("car" = Option<bool>, Query, description = "`true`: the folder (or file) as a CAR"),
    ),
    responses(
        (status = 303, description = "To a fresh signed link (`/ipfs/{cid}/{path}?token=…`)"),
        (status = 400, description = "Invalid CID or query", body = Message),
        (status = 401, description = "Not signed in", body = Message),
        (status = 404, description = "This account does not store that folder", body = Message),
    ))]
/// `GET /files/folder/download?cid=…&path=…[&car=true]`, for the folder
/// page (signed in by its session cookie, or a token): sends the browser to
/// a fresh signed link to the file at `path` in the account's folder (or
/// to the folder as a CAR). A plain link, so the page needs no script for it.
pub async fn folder_download(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    query: Result<axum::extract::Query<InFolder>, axum::extract::rejection::QueryRejection>,
) -> super::ApiResult<axum::response::Redirect> {
    let axum::extract::Query(q) = query.map_err(|_| AppError::bad_request("Malformed query string"))?;
    let who = super::tus::caller(&state, &headers).await?;
    let url = files::download_link_at(&state, &who, &q.cid, &q.path, q.car).await?;
    Ok(axum::response::Redirect::to(&url))
}
