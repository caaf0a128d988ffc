//! Routes that exist only when a test turned them on (`test_clock`): never
//! part of the public API, never mounted in production, and answered only
//! to a loopback peer even then.

use super::extract::JsonObject;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use axum::extract::{ConnectInfo, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use std::net::SocketAddr;

/// The test-only routes, for `main` to merge when `test_clock` is on.
pub fn test_router() -> Router<AppState> {
    Router::new().route("/test/clock", post(advance_clock))
}

#[derive(Debug, Serialize)]
pub struct ClockNow {
    /// The server's time after the move, in ms since the Unix epoch.
    pub now_ms: i64,
}

/// `POST /test/clock {"advance_ms": n}`: moves the server's clock forward
/// by `n` ms (0 ..= one year). 403 from anywhere but loopback (the socket's
/// peer; forwarded headers are not believed) or when the clock is not movable.
async fn advance_clock(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: JsonObject,
) -> AppResult<Json<ClockNow>> {
    let loopback = peer.ip().is_loopback();
    if !loopback || !state.clock.is_movable() {
        tracing::warn!(%peer, "test clock call refused");
        return Err(AppError::forbidden("The test clock is not available"));
    }
    let ms = advance_ms(&body)?;
    let now_ms = state.clock.advance(ms).ok_or_else(|| AppError::bad_request("advance_ms must be 0 to 31622400000"))?;
    tracing::info!(advanced_ms = ms, now_ms, "test clock moved");
    Ok(Json(ClockNow { now_ms }))
}

fn advance_ms(body: &JsonObject) -> AppResult<i64> {
    match body.0.get("advance_ms") {
        None => Err(AppError::missing_field("advance_ms")),
        Some(v) => v.as_i64().ok_or_else(|| AppError::bad_request("advance_ms must be a whole number of milliseconds")),
    }
}
