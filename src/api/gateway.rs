//! `GET`/`HEAD /ipfs/{cid}`: the target of signed download links and of
//! share links, and the IPFS trustless gateway (`format=raw` / `car` and
//! the CAR parameters, by query or `Accept`).

use crate::error::{AppError, AppResult};
use crate::content::{CarOptions, EntityBytes, Scope};
use crate::service::download::{self, Format};
use crate::service::files;
use crate::state::AppState;
use super::extract::ClientAddr;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct GatewayQuery {
    token: Option<String>,
    filename: Option<String>,
    format: Option<String>,
    #[serde(rename = "dag-scope")]
    dag_scope: Option<String>,
    #[serde(rename = "entity-bytes")]
    entity_bytes: Option<String>,
    #[serde(rename = "car-version")]
    car_version: Option<String>,
    #[serde(rename = "car-order")]
    car_order: Option<String>,
    #[serde(rename = "car-dups")]
    car_dups: Option<String>,
}

impl GatewayQuery {
    /// An empty format or CAR parameter (`format=`) is as if absent.
    fn without_empty(mut self) -> Self {
        for value in [&mut self.format, &mut self.dag_scope, &mut self.entity_bytes, &mut self.car_version, &mut self.car_order, &mut self.car_dups] {
            if value.as_deref() == Some("") {
                *value = None;
            }
        }
        self
    }
}

const CAR_TYPE: &str = "application/vnd.ipld.car";
const RAW_TYPE: &str = "application/vnd.ipld.raw";
/// Content anyone may fetch (shared files, identity CIDs) never changes under its CID.
const PUBLIC_CACHE: &str = "public, max-age=29030400, immutable";

/// What a request asks for, and which of its choices came from `Accept`
/// rather than the query (those go into `Content-Location`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Negotiated {
    format: Format,
    /// Query parameters the response's `Content-Location` adds.
    implied: Vec<(&'static str, String)>,
}

/// The CAR parameters of one `Accept` media range: `None` when it asks for
/// one this gateway cannot give.
fn accept_car(params: &[(String, String)]) -> Option<(Option<bool>, Option<bool>)> {
    let (mut dfs, mut dups) = (None, None);
    for (key, value) in params {
        match key.as_str() {
            "version" if value != "1" => return None,
            "order" => dfs = Some(order_of(value)?),
            "dups" => dups = Some(dups_of(value)?),
            _ => {}
        }
    }
    Some((dfs, dups))
}

fn order_of(value: &str) -> Option<bool> {
    match value {
        "dfs" => Some(true),
        "unk" => Some(false),
        _ => None,
    }
}

fn dups_of(value: &str) -> Option<bool> {
    match value {
        "y" => Some(true),
        "n" => Some(false),
        _ => None,
    }
}

enum Wanted {
    Car(Option<bool>, Option<bool>),
    Raw,
    Bytes,
}

/// The `Accept` header's choice: the first acceptable CAR or raw media
/// range by quality, else the bytes; an error when it names only CAR
/// variants this gateway cannot give.
fn from_accept(headers: &HeaderMap) -> AppResult<Wanted> {
    let accept = headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let mut ranges: Vec<(f32, String, Vec<(String, String)>)> = Vec::new();
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        if mime.is_empty() {
            continue;
        }
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_ascii_lowercase()))
            .collect();
        let q = params.iter().find(|(k, _)| k == "q").and_then(|(_, v)| v.parse::<f32>().ok()).unwrap_or(1.0);
        if q > 0.0 {
            ranges.push((q, mime, params));
        }
    }
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut refused = false;
    for (_, mime, params) in &ranges {
        match mime.as_str() {
            CAR_TYPE => match accept_car(params) {
                Some((dfs, dups)) => return Ok(Wanted::Car(dfs, dups)),
                None => refused = true,
            },
            RAW_TYPE => return Ok(Wanted::Raw),
            _ => {}
        }
    }
    if refused && ranges.iter().all(|(_, mime, _)| mime == CAR_TYPE) {
        return Err(AppError::new(406, "Not Acceptable: this gateway gives CARs of version 1, order dfs or unk, dups y or n"));
    }
    Ok(Wanted::Bytes)
}

/// The response format: `format` and the CAR parameters of the query
/// first, then the `Accept` header.
fn negotiate(query: &GatewayQuery, headers: &HeaderMap) -> AppResult<Negotiated> {
    // With `format` given, `Accept` only adds CAR parameters it can: it
    // never turns the request into a 406.
    let wanted = match query.format {
        Some(_) => from_accept(headers).unwrap_or(Wanted::Bytes),
        None => from_accept(headers)?,
    };
    let mut implied = Vec::new();
    let car = match query.format.as_deref() {
        Some("car") => true,
        Some("raw") => return Ok(Negotiated { format: Format::Raw, implied }),
        Some(other) => return Err(AppError::bad_request(format!("Unsupported format {other:?}: use car or raw"))),
        None => match wanted {
            Wanted::Car(..) => {
                implied.push(("format", "car".to_owned()));
                true
            }
            Wanted::Raw => {
                implied.push(("format", "raw".to_owned()));
                return Ok(Negotiated { format: Format::Raw, implied });
            }
            Wanted::Bytes => false,
        },
    };
    if !car {
        return Ok(Negotiated { format: Format::Bytes, implied });
    }
    let (accept_dfs, accept_dups) = match wanted {
        Wanted::Car(dfs, dups) => (dfs, dups),
        _ => (None, None),
    };
    let bad = |name: &str, value: &str, allowed: &str| AppError::bad_request(format!("Unsupported {name} {value:?}: use {allowed}"));
    if let Some(version) = query.car_version.as_deref() {
        if version != "1" {
            return Err(bad("car-version", version, "1"));
        }
    } else {
        implied.push(("car-version", "1".to_owned()));
    }
    let dfs = match query.car_order.as_deref() {
        Some(value) => order_of(value).ok_or_else(|| bad("car-order", value, "dfs or unk"))?,
        None => accept_dfs.unwrap_or(true),
    };
    let dups = match query.car_dups.as_deref() {
        Some(value) => dups_of(value).ok_or_else(|| bad("car-dups", value, "y or n"))?,
        None => accept_dups.unwrap_or(false),
    };
    if query.car_order.is_none() {
        implied.push(("car-order", if dfs { "dfs" } else { "unk" }.to_owned()));
    }
    if query.car_dups.is_none() {
        implied.push(("car-dups", if dups { "y" } else { "n" }.to_owned()));
    }
    let scope = match query.dag_scope.as_deref() {
        None | Some("all") => Scope::All,
        Some("entity") => Scope::Entity,
        Some("block") => Scope::Block,
        Some(other) => return Err(bad("dag-scope", other, "block, entity or all")),
    };
    let bytes = match query.entity_bytes.as_deref() {
        None => None,
        Some(text) => Some(
            EntityBytes::parse(text)
                .ok_or_else(|| AppError::bad_request(format!("Invalid entity-bytes {text:?}: use from:to (integers, to may be *)")))?,
        ),
    };
    // Content-Location names the variant only when the client did not.
    if implied.iter().all(|(k, _)| *k != "format") && query.format.is_some() && (accept_dfs.is_none() && accept_dups.is_none()) {
        implied.clear();
    }
    Ok(Negotiated { format: Format::Car(CarOptions { scope, dfs, dups, bytes }), implied })
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
        ("cid" = String, Path, description = "Root CID of a stored file; with `format=raw` or `car`, any block of its DAG; an identity CID (`bafkqaaa`, the probe) needs no token"),
        ("token" = Option<String>, Query, description = "The signature from /download_file; none for shared content (`/share_file`)"),
        ("filename" = Option<String>, Query, description = "Name for Content-Disposition (in a signed link, the file's: a block other than its root is then named by its CID)"),
        ("format" = Option<String>, Query, pattern = "^(car|raw)?$", description = "`car` (a CAR of the block and what is below it) or `raw` (the block); also chosen by `Accept: application/vnd.ipld.car` / `application/vnd.ipld.raw`. Empty, like every parameter below: as if absent"),
        ("dag-scope" = Option<String>, Query, pattern = "^(block|entity|all)?$", description = "CAR only: `block`, `entity` or `all` (the default)"),
        ("entity-bytes" = Option<String>, Query, pattern = "^(-?[0-9]{1,18}:(\\*|-?[0-9]{1,18}))?$", description = "CAR only: `from:to`, the blocks that verify that byte range (`to` may be `*`, negative counts from the end)"),
        ("car-version" = Option<String>, Query, pattern = "^1?$", description = "CAR only: `1`"),
        ("car-order" = Option<String>, Query, pattern = "^(dfs|unk)?$", description = "CAR only: `dfs` (the default) or `unk` (with `car-dups=y`: the CAR as ipfs-car writes it)"),
        ("car-dups" = Option<String>, Query, pattern = "^(y|n)?$", description = "CAR only: `n` (the default, each block once) or `y`"),
    ),
    responses(
        (status = 200, description = "The file's bytes, with Content-Type, Content-Disposition, Content-Length, ETag, Accept-Ranges, X-Ipfs-Path and X-Ipfs-Roots; a CAR (`application/vnd.ipld.car; version=1; order=…; dups=…`) or a raw block; Content-Location when the variant came from Accept; HEAD gives the headers only"),
        (status = 206, description = "One byte range (`Range: bytes=a-b`)"),
        (status = 304, description = "`If-None-Match` matched the ETag"),
        (status = 400, description = "Invalid CID, format or CAR parameter; entity-bytes past the end", body = super::Message),
        (status = 403, description = "Forged, expired or revoked link", body = super::Message, example = json!({"message": "Download link is invalid or has expired"})),
        (status = 404, description = "Not shared and no token, unknown content, the owner no longer stores the file, or a block outside the link's DAG", body = super::Message, example = json!({"message": "File not found"})),
        (status = 406, description = "Accept names only CAR variants this gateway cannot give", body = super::Message),
        (status = 412, description = "`Cache-Control: only-if-cached` for content this gateway does not serve", body = super::Message),
        (status = 416, description = "Range outside the file", body = super::Message),
        (status = 429, description = "A shared file asked for too often, or too many downloads at once from this address", body = super::Message),
        (status = 503, description = "Too many downloads at once", body = super::Message),
    ))]
pub async fn ipfs(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    query: Result<Query<GatewayQuery>, axum::extract::rejection::QueryRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ClientAddr(client): ClientAddr,
) -> Response {
    answer(&state, &cid, &[], query, Request { method: &method, headers: &headers, uri: &uri, client: &client }).await
}

/// The gateway's answer to a request for `cid` and `path` below it.
async fn answer(
    state: &AppState,
    cid: &str,
    path: &[&str],
    query: Result<Query<GatewayQuery>, axum::extract::rejection::QueryRejection>,
    request: Request<'_>,
) -> Response {
    let Ok(Query(query)) = query else {
        return AppError::bad_request("Malformed query string").into_response();
    };
    match serve(state, cid, path, query.without_empty(), &request).await {
        Ok(response) => response,
        Err(e) => super::ApiError(e).into_response(),
    }
}

#[utoipa::path(get, path = "/ipfs/{cid}/{path}", tag = "files",
    params(
        ("cid" = String, Path, description = "Root CID of a stored folder (or a block of its DAG)"),
        ("path" = String, Path, description = "Names inside the folder, `/`-separated (`sub/dir/file.txt`)"),
        ("token" = Option<String>, Query, description = "The signature from /download_file; none for shared content"),
        ("filename" = Option<String>, Query, description = "Name for Content-Disposition without a token; with one (the folder's name) ignored: the file is named by its path"),
        ("format" = Option<String>, Query, pattern = "^(car|raw)?$", description = "As for /ipfs/{cid}; a CAR carries the folder's nodes on the way first"),
    ),
    responses(
        (status = 200, description = "The file at that path (bytes, a CAR or its block), as /ipfs/{cid}"),
        (status = 206, description = "One byte range"),
        (status = 304, description = "`If-None-Match` matched the ETag"),
        (status = 400, description = "Invalid CID, format or parameter; a folder's bytes", body = super::Message),
        (status = 403, description = "Forged, expired or revoked link, or a link to another path of the folder", body = super::Message),
        (status = 404, description = "No such path in this folder, or not found as /ipfs/{cid}", body = super::Message, example = json!({"message": "No such path in this folder"})),
        (status = 406, description = "Accept names only CAR variants this gateway cannot give", body = super::Message),
        (status = 412, description = "`Cache-Control: only-if-cached` for content this gateway does not serve", body = super::Message),
        (status = 416, description = "Range outside the file", body = super::Message),
        (status = 429, description = "A shared folder asked for too often, or too many downloads at once from this address", body = super::Message),
        (status = 503, description = "Too many downloads at once", body = super::Message),
    ))]
pub async fn ipfs_path(
    State(state): State<AppState>,
    Path((cid, path)): Path<(String, String)>,
    query: Result<Query<GatewayQuery>, axum::extract::rejection::QueryRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ClientAddr(client): ClientAddr,
) -> Response {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    answer(&state, &cid, &segments, query, Request { method: &method, headers: &headers, uri: &uri, client: &client }).await
}

/// An identity CID holds its content: served to anyone (`/ipfs/bafkqaaa`,
/// the empty block, is how trustless clients probe a gateway). As a CAR it
/// is only a header naming it: identity blocks are never put in a CAR.
fn identity(cid: &str, data: Vec<u8>, binary: &[u8], format: Format, method: &Method) -> AppResult<Response> {
    let (body, content_type, etag) = match format {
        Format::Car(options) => (crate::content::car_header_of(binary), car_type(options, false), car_etag(cid, options, false)),
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
        .header("x-ipfs-path", format!("/ipfs/{cid}"))
        .header("x-ipfs-roots", cid);
    let body = if method == Method::HEAD { Body::empty() } else { Body::from(body) };
    response.body(body).map_err(AppError::internal)
}

/// The CAR's `Content-Type`: the order and duplicates it really has.
fn car_type(options: CarOptions, ipfs_car: bool) -> String {
    let order = if ipfs_car { "unk" } else { "dfs" };
    let dups = if options.dups { "y" } else { "n" };
    format!("{CAR_TYPE}; version=1; order={order}; dups={dups}")
}

/// A CAR's ETag: one per block, scope, order, duplicates and byte range.
fn car_etag(cid: &str, options: CarOptions, ipfs_car: bool) -> String {
    let order = if ipfs_car { "unk" } else { "dfs" };
    let dups = if options.dups { "y" } else { "n" };
    let scope = if options.bytes.is_some() { Scope::Entity } else { options.scope };
    let range = options.bytes.map_or(String::new(), |b| {
        format!(".{}:{}", b.from, b.to.map_or("*".to_owned(), |t| t.to_string()))
    });
    format!("\"{cid}.car.{}.{order}.{dups}{range}\"", scope.name())
}

/// A short tag of a path inside a folder, for ETags (which must differ
/// per path: a CAR of a path carries the nodes on the way).
fn path_tag(path: &[&str]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.join("/").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The request's own URL with the choices made from `Accept` added.
fn content_location(uri: &Uri, implied: &[(&'static str, String)]) -> Option<String> {
    if implied.is_empty() {
        return None;
    }
    // The request's parameters but those made explicit here (an empty `format=`).
    let mut query = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !implied.iter().any(|(key, _)| pair.split('=').next() == Some(*key)))
        .collect::<Vec<_>>()
        .join("&");
    for (key, value) in implied {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("{key}={value}"));
    }
    Some(format!("{}?{query}", uri.path()))
}

/// A name as the client gave it, ending in `ext`.
fn with_extension(name: &str, ext: &str) -> String {
    if name.to_ascii_lowercase().ends_with(ext) { name.to_owned() } else { format!("{name}{ext}") }
}

async fn serve(state: &AppState, cid: &str, path: &[&str], query: GatewayQuery, request: &Request<'_>) -> AppResult<Response> {
    let Request { method, headers, uri, client } = *request;
    let Negotiated { format, implied } = negotiate(&query, headers)?;
    if let Some((data, binary)) = crate::content::identity_raw(cid) {
        if !path.is_empty() {
            return Err(AppError::not_found("No such path in this folder"));
        }
        return identity(cid.trim(), data, &binary, format, method);
    }
    // A block of a DAG other than its root is served raw or as a CAR.
    let any_block = format != Format::Bytes;
    // Without a token: shared content (404 for anything else, which does
    // not tell private content from unknown). With one: the link's file.
    let link = match query.token.as_deref() {
        None => match files::open_public(state, cid, any_block, client).await? {
            Some(link) => link,
            None if only_if_cached(headers) => return Err(AppError::new(412, "Not in this gateway's store")),
            None => return Err(AppError::not_found("File not found")),
        },
        Some(token) => files::open_download(state, cid, Some(token), any_block).await?,
    };
    // A link to one path in a folder opens that path only.
    if let Some(only) = link.path.as_deref() {
        if link.block.is_some() || path.join("/") != only {
            return Err(AppError::forbidden("This link is for another path in the folder"));
        }
    }
    let public = query.token.is_none();
    let file = &link.file;
    let located = download::locate(state, &link, path).await?;
    if located.directory && format == Format::Bytes {
        return Err(AppError::bad_request("This is a folder: ask for a file in it (/ipfs/<cid>/<path>) or for format=car"));
    }
    // `filename` names the response. In a signed link it is the file's
    // name: a block other than its root, or a file in a folder, reached
    // through that link is named by its CID or its path instead. Without a
    // token the client chose it, and it names whatever is asked for.
    let inside = link.block.is_some() || !path.is_empty();
    let given = query.filename.as_deref().map(files::clean_name).filter(|n| !n.is_empty() && (public || !inside));
    let size = located.size;
    let target = located.target.to_string();
    let asked = link.block.as_ref().map_or(file.cid.clone(), |b| b.to_string());
    let full_path = if path.is_empty() {
        format!("/ipfs/{asked}")
    } else {
        format!("/ipfs/{asked}/{}", path.iter().map(|p| crate::util::percent_encode(p)).collect::<Vec<_>>().join("/"))
    };

    let mut response = Response::builder()
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::CACHE_CONTROL, if public { PUBLIC_CACHE } else { "private, no-cache" })
        .header("x-ipfs-path", &full_path)
        .header("x-ipfs-roots", located.roots.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));

    let last = path.last().map(|n| files::clean_name(n)).filter(|n| !n.is_empty());
    let (etag, content_type, filename) = match format {
        Format::Bytes if path.is_empty() => (format!("\"{}\"", file.cid), file.mime.clone(), given.unwrap_or(file.name.clone())),
        Format::Bytes => {
            // The type is the file's (from its name in the folder), whatever it is called.
            let own = last.unwrap_or_else(|| target.clone());
            (format!("\"{target}\""), files::mime_for(None, &own), given.unwrap_or(own))
        }
        Format::Car(options) => {
            let ipfs_car = options.ipfs_car_order(link.block.is_none()) && path.is_empty();
            let named = if path.is_empty() { asked.clone() } else { format!("{asked}.{}", path_tag(path)) };
            let name = given.map_or(format!("{target}.car"), |n| with_extension(&n, ".car"));
            (car_etag(&named, options, ipfs_car), car_type(options, ipfs_car), name)
        }
        Format::Raw => (format!("\"{target}.raw\""), RAW_TYPE.to_owned(), given.map_or(format!("{target}.bin"), |n| with_extension(&n, ".bin"))),
    };
    response = response.header(header::ETAG, &etag).header(header::CONTENT_TYPE, &content_type).header(header::VARY, "Accept");
    if let Some(location) = content_location(uri, &implied) {
        response = response.header(header::CONTENT_LOCATION, location);
    }
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
    } else if matches!(format, Format::Car(_)) {
        response = response.header(header::ACCEPT_RANGES, "none");
    }
    let reader = (method != Method::HEAD).then_some(client);
    let content = download::open(state, &link, &located, path, format, range, reader).await?;
    response = response.status(status).header(header::CONTENT_LENGTH, content.len);
    let body = content.body.map_or_else(Body::empty, Body::from_stream);
    response.body(body).map_err(AppError::internal)
}

/// `Cache-Control: only-if-cached`: the client wants a 412, not a 404,
/// for content this gateway does not hold.
fn only_if_cached(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case("only-if-cached")))
}

/// The parts of the request the gateway reads besides the CID and query.
struct Request<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    uri: &'a Uri,
    /// The client's address (download slots are counted per address).
    client: &'a str,
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
