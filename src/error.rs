//! One error type for the whole app: what went wrong (its kind), an HTTP
//! status and a message that is safe to show, in the pages' words. The
//! JSON routes turn the kinds the contract words differently into its exact
//! messages (`api::ApiError`) and render `{"message": ...}`; server
//! functions carry the error to the browser, which shows the message.

use serde::{Deserialize, Serialize};

/// What went wrong, for a transport to word as it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ErrorKind {
    #[default]
    Other,
    /// Bad input: the message says which field and why.
    Invalid,
    /// No credentials, or wrong or revoked ones.
    Unauthorized,
    Forbidden,
    NotFound,
    /// The account does not store the file a request names.
    NotStored,
    /// The username or email is already registered.
    Taken,
    /// No account has the email a reset was asked for.
    EmailUnknown,
    /// A reset code that is wrong, used up or expired.
    CodeRejected,
    /// The reset mail could not be sent.
    MailFailed,
    Conflict,
    TooLarge,
    /// The account's storage quota would be exceeded.
    Quota,
    Throttled,
    Unavailable,
    NoSpace,
    Internal,
}

impl ErrorKind {
    /// The kind an HTTP status stands for when nothing more precise is said.
    fn of_status(status: u16) -> Self {
        match status {
            400 => Self::Invalid,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            409 => Self::Conflict,
            413 => Self::TooLarge,
            429 => Self::Throttled,
            503 => Self::Unavailable,
            507 => Self::NoSpace,
            500 => Self::Internal,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub status: u16,
    pub message: String,
    #[serde(default)]
    pub kind: ErrorKind,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind: ErrorKind::of_status(status) }
    }
    /// The same error, of a more precise kind.
    pub fn of_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = kind;
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, message)
    }
    pub fn too_many_attempts() -> Self {
        Self::new(429, "Too many attempts, please try again later")
    }
    pub fn missing_field(field: &str) -> Self {
        Self::bad_request(format!("Missing {field} field in request body"))
    }
    pub fn token_missing() -> Self {
        Self::unauthorized("Token is missing")
    }
    pub fn token_invalid() -> Self {
        Self::unauthorized("Token is invalid")
    }
    /// A dependency (the database, the object store) is out of reach: 503
    /// with `Retry-After`. The cause is logged, never sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self::logged(503, UNAVAILABLE, "dependency unavailable", cause)
    }
    /// The server's disk (or bucket) is full: 507. The cause (the OS error
    /// and the path) is logged, never sent.
    pub fn no_space(cause: impl std::fmt::Display) -> Self {
        Self::logged(507, "Not enough storage space on the server", "out of storage space", cause)
    }
    /// A failure the client cannot fix. The cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::logged(500, "Internal server error", "internal error", cause)
    }
    /// An error whose cause goes to the log (on the server) under `what`.
    fn logged(status: u16, message: &str, what: &str, cause: impl std::fmt::Display) -> Self {
        #[cfg(feature = "ssr")]
        tracing::error!(%cause, "{what}");
        #[cfg(not(feature = "ssr"))]
        let _ = (what, cause);
        Self::new(status, message)
    }
}

/// What a 503 says.
pub const UNAVAILABLE: &str = "Service temporarily unavailable";
/// Seconds a 503 asks the client to wait before trying again.
pub const RETRY_AFTER_SECS: u32 = 5;

/// How the body timeout's error reads (tower-http's `TimeoutError`).
const BODY_TIMED_OUT_CAUSE: &str = "data was not received within the designated timeout";
/// A multipart body whose part headers (or preamble) pass their limit.
pub const PART_HEADERS_TOO_LARGE: &str = "Part headers too large";

impl leptos::server_fn::error::FromServerFnError for AppError {
    type Encoder = leptos::server_fn::codec::JsonEncoding;

    fn from_server_fn_error(value: leptos::server_fn::error::ServerFnErrorErr) -> Self {
        use leptos::server_fn::error::ServerFnErrorErr as E;
        match value {
            E::Request(_) => Self::new(503, "The server could not be reached. Check your connection."),
            E::Args(_) | E::MissingArg(_) => Self::bad_request("The form was incomplete. Please try again."),
            // A request body that failed while a server function read it
            // (the framework keeps only its text): say why when it is ours
            // to say, a stalled body or a multipart limit.
            E::Deserialization(text) if text == BODY_TIMED_OUT_CAUSE => Self::new(408, "Request body timed out"),
            E::Deserialization(text) if text == PART_HEADERS_TOO_LARGE => Self::bad_request(text),
            // A framework error: logged (on the server), never shown verbatim.
            other => Self::internal(format_args!("server function: {other}")),
        }
    }
}

#[cfg(feature = "ssr")]
pub use ssr::retry_after;

#[cfg(feature = "ssr")]
mod ssr {
    use super::AppError;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    impl AppError {
        pub fn status_code(&self) -> StatusCode {
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }

    impl AppError {
        pub fn into_response_json(self) -> Response {
            let status = self.status_code();
            let mut res = (status, axum::Json(serde_json::json!({ "message": self.message }))).into_response();
            retry_after(&mut res);
            res
        }

        /// A storage failure: a full disk is 507, an unreachable store 503,
        /// anything else 500; the OS error is logged.
        pub fn storage(e: std::io::Error) -> Self {
            use std::io::ErrorKind as K;
            match e.kind() {
                K::StorageFull | K::QuotaExceeded | K::FileTooLarge => AppError::no_space(e),
                K::ConnectionRefused | K::ConnectionReset | K::ConnectionAborted | K::NotConnected | K::TimedOut | K::BrokenPipe
                | K::HostUnreachable | K::NetworkUnreachable => AppError::unavailable(format_args!("object store: {e}")),
                _ => AppError::internal(format_args!("storage: {e}")),
            }
        }
    }

    /// A 503 says when to try again.
    pub fn retry_after(res: &mut Response) {
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(super::RETRY_AFTER_SECS));
        }
    }

    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            self.into_response_json()
        }
    }

    impl From<sqlx::Error> for AppError {
        /// The database out of reach (no connection within the acquire
        /// timeout, a dropped connection, a server shutting down) is 503; a
        /// full disk under it is 507; anything else 500.
        fn from(e: sqlx::Error) -> Self {
            use sqlx::Error as E;
            let db = e.as_database_error();
            let code = db.and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_default();
            let on_sqlite = db.is_some_and(|d| d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some());
            // SQLITE_FULL (13) and its extended codes.
            let sqlite_full = on_sqlite && code.parse::<i32>().is_ok_and(|c| c & 0xff == 13);
            let pg_code = if db.is_some() && !on_sqlite { code.as_str() } else { "" };
            match &e {
                E::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => AppError::no_space(format_args!("database: {e}")),
                _ if sqlite_full || pg_code == "53100" => AppError::no_space(format_args!("database: {e}")),
                E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                    AppError::unavailable(format_args!("database: {e}"))
                }
                // PostgreSQL: connection exceptions (08…), the server shutting down or starting (57P…).
                _ if pg_code.starts_with("08") || pg_code.starts_with("57P") => AppError::unavailable(format_args!("database: {e}")),
                _ => AppError::internal(format_args!("database: {e}")),
            }
        }
    }
}
