//! The raw JSON routes the Android client calls (see docs/API.md and
//! `/openapi.json`). Each handler parses, calls one service, formats.
//!
//! Layering: a transport: uses `transport/` and `service/`, never `pages/`.

pub mod extract;
pub mod files;
pub mod gateway;
pub mod node;
pub mod openapi;
pub mod reset;
pub mod testing;
pub mod tus;

use crate::error::{AppError, ErrorKind};
use crate::service::{accounts, bandwidth, devices, uptime};
use crate::state::AppState;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use extract::{Auth, ClientAddr, JsonObject, Numeric};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::serve))
        .route("/register", post(register))
        .route("/login", post(login))
        .route("/android_auth", post(android_auth))
        .route("/dashboard", post(dashboard))
        .route("/onboarding", post(onboarding))
        .route("/active_time", post(active_time))
        .route("/rateinout", post(rateinout))
        // The upload's own limits (size, quota) apply while it streams.
        .route("/upload_file", post(files::upload_file).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/get_file_list", post(files::get_file_list))
        .route("/download_file", post(files::download_file))
        .route("/delete_file", post(files::delete_file))
        .route("/share_file", post(files::share_file))
        .route("/ipfs/{cid}", get(gateway::ipfs))
        .route("/ipfs/{cid}/{*path}", get(gateway::ipfs_path))
        .route("/files/folder/download", get(files::folder_download))
        .route("/file_status", post(node::file_status))
        .route("/node/work", post(node::work))
        .route("/node/done", post(node::done))
        .route("/node/failed", post(node::failed))
        .route("/node/content/{cid}", get(node::content))
        .route("/node/proof/{id}", post(node::proof))
        .route("/node/deliver/{id}", post(node::deliver).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/node_status", post(node::node_status))
        .route("/send_reset_email", post(reset::send_reset_email))
        .route("/verify_otp", post(reset::verify_otp))
        .merge(tus::router())
}

/// An error as the JSON routes answer it: the contract's exact message for
/// the kinds it words its own way, otherwise the error's message, as
/// `{"message": ...}`.
pub struct ApiError(pub AppError);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

/// The contract's wording of an error of `kind`, where it has its own.
pub fn contract_message(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::NotStored => Some("Invalid Credentials"),
        ErrorKind::Taken => Some("User already exist"),
        _ => None,
    }
}

/// `e` with the contract's wording of its kind (`worded` for the kinds a
/// route words itself, else [`contract_message`]).
pub fn in_contract_words(mut e: AppError, worded: impl Fn(ErrorKind) -> Option<&'static str>) -> AppError {
    if let Some(text) = worded(e.kind).or_else(|| contract_message(e.kind)) {
        e.message = text.to_owned();
    }
    e
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        in_contract_words(self.0, |_| None).into_response_json()
    }
}

/// `{"message": ...}`: every error, and most successes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub message: String,
}

fn message(text: impl Into<String>) -> Json<Message> {
    Json(Message { message: text.into() })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// An HS256 JWT; send it back as `Authorization: <token>` or `Authorization: Bearer <token>`.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency is out of reach.
    pub status: String,
    /// When unavailable: `ok` or `unavailable`, for the database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// When unavailable: `ok` or `unavailable`, for the file store (local files or the S3 bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses(
        (status = 200, description = "Serving; database and file store reachable", body = Health, example = json!({"status": "ok"})),
        (status = 503, description = "A dependency is out of reach; says which (with Retry-After)", body = Health,
            example = json!({"status": "unavailable", "database": "unavailable", "storage": "ok"})),
    ))]
pub async fn healthz(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wait = std::time::Duration::from_secs(state.settings.dependency_timeout_secs);
    let database = match tokio::time::timeout(wait, state.db.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer in time".to_owned()),
    };
    // A lookup of an object that does not exist: the store answers "no" when it is there.
    let blobs = state.blobs.clone();
    let probe = tokio::time::timeout(wait * 2, tokio::task::spawn_blocking(move || blobs.contains("healthprobe")));
    let storage = match probe.await {
        Ok(Ok(Ok(_))) => None,
        Ok(Ok(Err(e))) => Some(e.to_string()),
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer in time".to_owned()),
    };
    if database.is_none() && storage.is_none() {
        return (axum::http::StatusCode::OK, Json(Health { status: "ok".into(), database: None, storage: None })).into_response();
    }
    tracing::error!(database = ?database, storage = ?storage, "health check failed");
    let word = |failed: &Option<String>| if failed.is_some() { "unavailable" } else { "ok" }.to_owned();
    let body = Health { status: "unavailable".into(), database: Some(word(&database)), storage: Some(word(&storage)) };
    let mut res = (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    crate::error::retry_after(&mut res);
    res
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// 3-32 characters of `[A-Za-z0-9_.-]`, unique case-insensitively.
    pub username: String,
    /// At least 8 characters.
    pub password: String,
    pub email: String,
}

#[utoipa::path(post, path = "/register", tag = "accounts",
    request_body(content = RegisterRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Account created", body = Message, example = json!({"message": "User registered successfully"})),
        (status = 400, description = "Missing field, invalid username, email or password, malformed body", body = Message,
            example = json!({"message": "Missing username field in request body"})),
        (status = 409, description = "Username or email taken", body = Message, example = json!({"message": "User already exist"})),
        (status = 429, description = "Too many registrations from this address (or for this email) in the throttle window", body = Message,
            example = json!({"message": "Too many attempts, please try again later"})),
        (status = 413, description = "Body too large", body = Message, example = json!({"message": "Request body too large"})),
        (status = 415, description = "Body is not JSON", body = Message, example = json!({"message": "Content-Type must be application/json"})),
    ))]
pub async fn register(State(state): State<AppState>, ClientAddr(client): ClientAddr, body: JsonObject) -> ApiResult<Json<Message>> {
    let username = body.string("username")?;
    let password = body.string("password")?;
    let email = body.string("email")?;
    accounts::register(&state, username, password, email, &client).await?;
    Ok(message("User registered successfully"))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username or the email.
    pub username: String,
    pub password: String,
}

#[utoipa::path(post, path = "/login", tag = "accounts",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A user token (24 h by default)", body = TokenResponse),
        (status = 400, description = "Missing field or malformed body", body = Message, example = json!({"message": "Missing password field in request body"})),
        (status = 401, description = "Unknown user or wrong password", body = Message, example = json!({"message": "Invalid username or password"})),
        (status = 429, description = "Too many failed attempts for this account or address", body = Message,
            example = json!({"message": "Too many attempts, please try again later"})),
    ))]
pub async fn login(State(state): State<AppState>, ClientAddr(client): ClientAddr, body: JsonObject) -> ApiResult<Json<TokenResponse>> {
    let username = body.string("username")?;
    let password = body.string("password")?;
    let token = accounts::login(&state, username, password, &client).await?;
    Ok(Json(TokenResponse { token }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AndroidAuthRequest {
    pub username: String,
    /// The account's peerId, shown on the web dashboard.
    #[serde(rename = "peerId")]
    pub peer_id: String,
}

#[utoipa::path(post, path = "/android_auth", tag = "devices",
    request_body(content = AndroidAuthRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A device token (30 days by default)", body = TokenResponse),
        (status = 400, description = "Missing field or malformed body", body = Message, example = json!({"message": "Missing peerId field in request body"})),
        (status = 401, description = "Unknown user or wrong peerId", body = Message, example = json!({"message": "Invalid username or PeerID"})),
        (status = 429, description = "Too many failed attempts", body = Message, example = json!({"message": "Too many attempts, please try again later"})),
    ))]
pub async fn android_auth(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: JsonObject,
) -> ApiResult<Json<TokenResponse>> {
    let username = body.string("username")?;
    let peer_id = body.string("peerId")?;
    let token = accounts::device_login(&state, username, peer_id, &client).await?;
    Ok(Json(TokenResponse { token }))
}

/// Writes a whole number without a fraction (`2048`, not `2048.0`) so
/// clients that read integers keep working; other values as they are.
fn shortest<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardResponse {
    pub username: String,
    #[serde(rename = "peerId")]
    pub peer_id: String,
    /// MB pledged at onboarding (0 before).
    #[serde(serialize_with = "shortest")]
    pub storage_rented: f64,
    /// Sum of the coin ledger, unrounded.
    pub coins_earned: f64,
    /// `data_uploaded + data_downloaded`, bytes.
    pub bandwidth_used: i64,
    /// Accepted uploads plus the peer node's reported outbound total, bytes.
    pub data_uploaded: i64,
    /// Bytes served for download links plus the peer node's reported inbound total.
    pub data_downloaded: i64,
    /// Bytes of distinct content stored.
    pub space_used: i64,
}

#[utoipa::path(post, path = "/dashboard", tag = "accounts", security(("token" = [])),
    responses(
        (status = 200, description = "The account's figures, from stored facts", body = DashboardResponse),
        (status = 401, description = "Token missing, invalid, expired or revoked", body = Message, example = json!({"message": "Token is missing"})),
    ))]
pub async fn dashboard(State(state): State<AppState>, Auth(who): Auth) -> ApiResult<Json<DashboardResponse>> {
    let d = accounts::dashboard(&state, &who).await?;
    Ok(Json(DashboardResponse {
        username: d.username,
        peer_id: d.peer_id,
        storage_rented: d.storage_rented_mb,
        coins_earned: d.coins_earned,
        bandwidth_used: d.bandwidth_used,
        data_uploaded: d.data_uploaded,
        data_downloaded: d.data_downloaded,
        space_used: d.space_used,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OnboardingRequest {
    /// MB to rent out: a number or a numeric string (GB x 1024).
    #[serde(rename = "storageRented")]
    #[schema(value_type = f64)]
    pub storage_rented: serde_json::Value,
}

#[utoipa::path(post, path = "/onboarding", tag = "devices", security(("token" = [])),
    request_body(content = OnboardingRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Pledge stored (or updated)", body = Message,
            example = json!({"message": "alice has been onboarded! with 2048 MB of storage"})),
        (status = 400, description = "Missing, not a positive number, or above the maximum", body = Message,
            example = json!({"message": "Missing storageRented field in request body"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is invalid"})),
    ))]
pub async fn onboarding(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<Message>> {
    let mb = match body.number("storageRented") {
        Numeric::Missing => return Err(AppError::missing_field("storageRented").into()),
        Numeric::NotANumber => return Err(AppError::bad_request("storageRented must be a positive number").into()),
        Numeric::Value(v) => v,
    };
    Ok(message(devices::onboard(&state, &who, mb).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ActiveTimeRequest {
    /// Seconds the device claims (the shipped client sends "1"); 0 < value <= 86400.
    /// The server measures the credited uptime itself.
    #[schema(value_type = f64)]
    pub active_time: serde_json::Value,
}

#[utoipa::path(post, path = "/active_time", tag = "devices", security(("token" = [])),
    request_body(content = ActiveTimeRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Heartbeat recorded", body = Message, example = json!({"message": "alice active time has been updated!"})),
        (status = 400, description = "Missing, not a number, <= 0 or > 86400", body = Message,
            example = json!({"message": "Missing active_time field in request body"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
        (status = 500, description = "Storage failure", body = Message, example = json!({"message": "Error Occured while updating active time"})),
    ))]
pub async fn active_time(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<Message>> {
    let seconds = match body.number("active_time") {
        Numeric::Missing => return Err(AppError::missing_field("active_time").into()),
        Numeric::NotANumber => return Err(AppError::bad_request("active_time must be a number").into()),
        Numeric::Value(v) => v,
    };
    uptime::heartbeat(&state, &who, seconds).await?;
    Ok(message(format!("{} active time has been updated!", who.username)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct RateInOutRequest {
    /// Cumulative bytes received by the peer node (number or numeric string).
    #[schema(value_type = f64)]
    pub TotalIn: serde_json::Value,
    /// Cumulative bytes sent by the peer node.
    #[schema(value_type = f64)]
    pub TotalOut: serde_json::Value,
    /// Current inbound rate, bytes/s.
    #[schema(value_type = f64)]
    pub RateIn: serde_json::Value,
    /// Current outbound rate, bytes/s.
    #[schema(value_type = f64)]
    pub RateOut: serde_json::Value,
}

/// Largest total (and rate) accepted: 1 PiB (2^50 bytes), more than any
/// device has moved. Larger claims are refused; the sums built from the
/// accepted ones stop at 2^53 - 1, so no report can overflow the dashboard.
pub const MAX_TOTAL_BYTES: f64 = 1_125_899_906_842_624.0;

#[utoipa::path(post, path = "/rateinout", tag = "devices", security(("token" = [])),
    request_body(content = RateInOutRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Report stored", body = Message, example = json!({"message": "Data updated successfully"})),
        (status = 400, description = "A field missing or not a non-negative number, or absurdly large", body = Message,
            example = json!({"message": "Data missing"})),
        (status = 401, description = "Token missing or invalid", body = Message, example = json!({"message": "Token is missing"})),
    ))]
pub async fn rateinout(State(state): State<AppState>, Auth(who): Auth, body: JsonObject) -> ApiResult<Json<Message>> {
    let mut values = [0f64; 4];
    let names = ["TotalIn", "TotalOut", "RateIn", "RateOut"];
    for (slot, name) in values.iter_mut().zip(names) {
        *slot = match body.number(name) {
            Numeric::Value(v) if v >= 0.0 => v,
            _ => return Err(AppError::bad_request("Data missing").into()),
        };
    }
    for (value, name) in values.iter().zip(names) {
        if *value > MAX_TOTAL_BYTES {
            return Err(AppError::bad_request(format!("{name} is too large")).into());
        }
    }
    let [total_in, total_out, rate_in, rate_out] = values;
    let report = bandwidth::Report { total_in: total_in as i64, total_out: total_out as i64, rate_in, rate_out };
    bandwidth::report(&state, &who, report).await?;
    Ok(message("Data updated successfully"))
}
