//! Password reset for the Android client: `/send_reset_email`, `/verify_otp`.
//! Their answers carry `"status"` as the seed document has them.

use super::extract::{ClientAddr, JsonObject};
use crate::error::AppError;
use crate::error::ErrorKind;
use crate::service::reset;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

/// An error as these routes answer it: `{"status":"failure","message":…}`
/// (`"Message"` for a failed code, as the seed spells it).
pub struct Failure(AppError);

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let key = if self.0.kind == ErrorKind::CodeRejected { "Message" } else { "message" };
        (self.0.status_code(), Json(json!({ "status": "failure", key: self.0.message }))).into_response()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusMessage {
    /// `success`, `Passed` or `failure`.
    pub status: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[allow(non_snake_case)]
pub struct StatusCapitalMessage {
    pub status: String,
    pub Message: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SendResetRequest {
    pub email: String,
}

#[utoipa::path(post, path = "/send_reset_email", tag = "accounts",
    request_body(content = SendResetRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "A 6-digit code was mailed (valid 10 minutes; replaces any earlier one)", body = StatusMessage,
            example = json!({"status": "success", "message": "Email sent successfully"})),
        (status = 400, description = "Missing or mistyped email", body = StatusMessage,
            example = json!({"status": "failure", "message": "Missing email field in request body"})),
        (status = 404, description = "No account has this email", body = StatusMessage,
            example = json!({"status": "failure", "message": "Email not found, Please register first"})),
        (status = 429, description = "Too many requests for this email or address", body = StatusMessage,
            example = json!({"status": "failure", "message": "Too many attempts, please try again later"})),
        (status = 503, description = "The mail could not be sent; no code is left usable", body = StatusMessage,
            example = json!({"status": "failure", "message": "Unable to send otp at this time, Please try again later"})),
    ))]
pub async fn send_reset_email(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Result<JsonObject, AppError>,
) -> Result<Json<StatusMessage>, Failure> {
    let body = body?;
    let email = body.string("email")?;
    reset::send_code(&state, email, &client).await.map_err(|e| {
        super::in_contract_words(e, |kind| match kind {
            ErrorKind::EmailUnknown => Some("Email not found, Please register first"),
            ErrorKind::MailFailed => Some("Unable to send otp at this time, Please try again later"),
            _ => None,
        })
    })?;
    Ok(Json(StatusMessage { status: "success".into(), message: "Email sent successfully".into() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct VerifyOtpRequest {
    pub email: String,
    /// The 6-digit code (a string, or a number).
    #[schema(value_type = String)]
    pub otp: Value,
    /// The new password (`newPassword` is accepted too).
    pub password: Option<String>,
    pub newPassword: Option<String>,
}

/// A required field of /verify_otp: absent or null gives the seed's message.
fn required<'a>(body: &'a JsonObject, names: &[&str], missing: &str) -> Result<&'a Value, AppError> {
    names
        .iter()
        .find_map(|n| body.0.get(*n).filter(|v| !v.is_null()))
        .ok_or_else(|| AppError::bad_request(missing))
}

fn text(value: &Value, name: &str) -> Result<String, AppError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        _ => Err(AppError::bad_request(format!("{name} must be a string"))),
    }
}

#[utoipa::path(post, path = "/verify_otp", tag = "accounts",
    request_body(content = VerifyOtpRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Password changed, code consumed, every older token revoked", body = StatusCapitalMessage,
            example = json!({"status": "Passed", "Message": "OTP verification successfully"})),
        (status = 400, description = "Wrong, expired, replaced or used code; a missing field; a password breaking the rules", body = StatusCapitalMessage,
            example = json!({"status": "failure", "Message": "OTP verification Failed"})),
        (status = 404, description = "No account has this email", body = StatusMessage,
            example = json!({"status": "failure", "message": "User email or username incorrect or does not exist"})),
        (status = 429, description = "Too many wrong codes", body = StatusMessage,
            example = json!({"status": "failure", "message": "Too many attempts, please try again later"})),
    ))]
pub async fn verify_otp(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Result<JsonObject, AppError>,
) -> Result<Json<StatusCapitalMessage>, Failure> {
    let body = body?;
    let email = text(required(&body, &["email"], "Email not found")?, "email")?;
    let otp = match required(&body, &["otp"], "otp not found")? {
        Value::Number(n) if n.is_u64() => format!("{:06}", n.as_u64().unwrap_or_default()),
        other => text(other, "otp")?,
    };
    let password = text(required(&body, &["password", "newPassword"], "password not found")?, "password")?;
    reset::verify(&state, &email, &otp, &password, &client).await.map_err(|e| {
        super::in_contract_words(e, |kind| match kind {
            ErrorKind::EmailUnknown => Some("User email or username incorrect or does not exist"),
            ErrorKind::CodeRejected => Some("OTP verification Failed"),
            _ => None,
        })
    })?;
    Ok(Json(StatusCapitalMessage { status: "Passed".into(), Message: "OTP verification successfully".into() }))
}
