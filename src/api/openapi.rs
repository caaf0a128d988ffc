//! The OpenAPI document, generated from the handlers' annotations.

use super::*;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "peervault JSON API", description = "The routes the Android client calls. Prose: docs/API.md."),
    paths(healthz, register, login, android_auth, dashboard, onboarding, active_time, rateinout,
        files::upload_file, files::get_file_list, files::download_file, files::delete_file, gateway::ipfs,
        reset::send_reset_email, reset::verify_otp),
    components(schemas(Message, TokenResponse, Health, RegisterRequest, LoginRequest, AndroidAuthRequest,
        DashboardResponse, OnboardingRequest, ActiveTimeRequest, RateInOutRequest,
        files::UploadResponse, files::Web3, files::UploadForm, files::FileEntry, files::CidRequest, files::UrlResponse,
        reset::StatusMessage, reset::StatusCapitalMessage, reset::SendResetRequest, reset::VerifyOtpRequest)),
    modifiers(&TokenAuth),
)]
pub struct ApiDoc;

struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The JWT from /login or /android_auth, raw or as `Bearer <JWT>`.",
            ))),
        );
    }
}

pub async fn serve() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
