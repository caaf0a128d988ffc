//! One error type for the whole app: an HTTP status plus a message that is
//! safe to show. JSON routes render it as `{"message": ...}`; server
//! functions carry it to the browser unchanged.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub status: u16,
    pub message: String,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
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
    /// A failure the client cannot fix. The cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        #[cfg(feature = "ssr")]
        tracing::error!(%cause, "internal error");
        #[cfg(not(feature = "ssr"))]
        let _ = cause;
        Self::new(500, "Internal server error")
    }
}

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
            (status, axum::Json(serde_json::json!({ "message": self.message }))).into_response()
        }
    }

    impl IntoResponse for AppError {
        fn into_response(self) -> Response {
            self.into_response_json()
        }
    }

    impl From<sqlx::Error> for AppError {
        fn from(e: sqlx::Error) -> Self {
            AppError::internal(format_args!("database: {e}"))
        }
    }
}
