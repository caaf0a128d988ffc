//! Uptime and coins. The server measures uptime itself from the gaps
//! between accepted heartbeats; what the device claims cannot inflate it.

use super::Principal;
use crate::error::{AppError, AppResult};
use super::Services;

/// The largest `active_time` a heartbeat may carry, seconds.
pub const MAX_ACTIVE_TIME_SECS: f64 = 86_400.0;

/// Milliseconds a heartbeat at `now` credits: nothing for the first one,
/// else the time since the previous one, capped at `max_gap_ms` (a device
/// silent for longer was offline for the rest).
pub fn credited_ms(previous: Option<i64>, now: i64, max_gap_ms: i64) -> i64 {
    match previous {
        None => 0,
        Some(prev) => (now - prev).clamp(0, max_gap_ms),
    }
}

/// Coins for `credited_ms` of uptime with `storage_rented_mb` pledged, at
/// `coin_rate` coins per GB-hour.
pub fn coins(credited_ms: i64, storage_rented_mb: f64, coin_rate: f64) -> f64 {
    credited_ms as f64 / 3_600_000.0 * (storage_rented_mb / 1024.0) * coin_rate
}

/// Checks the claimed `active_time` (seconds): a positive number up to a day.
pub fn validate_active_time(seconds: f64) -> AppResult<()> {
    if !seconds.is_finite() {
        Err(AppError::bad_request("active_time must be a number"))
    } else if seconds <= 0.0 {
        Err(AppError::bad_request("active_time must be greater than 0"))
    } else if seconds > MAX_ACTIVE_TIME_SECS {
        Err(AppError::bad_request("active_time must be at most 86400"))
    } else {
        Ok(())
    }
}

/// Records a heartbeat and credits the interval since the previous one.
pub async fn heartbeat(state: &Services, who: &Principal, claimed_seconds: f64) -> AppResult<()> {
    validate_active_time(claimed_seconds)?;
    let max_gap_ms = state.settings.heartbeat_max_gap_secs.saturating_mul(1000);
    let rate = state.settings.coin_rate;
    // Compare-and-set loop: a concurrent heartbeat that wins makes us re-read,
    // so each interval is credited once.
    for _ in 0..16 {
        let current = state
            .db
            .heartbeat_state(who.user_id)
            .await
            .map_err(db_failure)?
            .ok_or_else(AppError::token_invalid)?;
        let now = state.clock.now_ms().max(current.last_heartbeat_at.unwrap_or(0));
        let credit = credited_ms(current.last_heartbeat_at, now, max_gap_ms);
        let earned = coins(credit, current.storage_rented_mb, rate);
        let recorded = state
            .db
            .record_heartbeat(who.user_id, current.last_heartbeat_at, now, credit, current.storage_rented_mb, rate, earned)
            .await
            .map_err(db_failure)?;
        if recorded {
            return Ok(());
        }
    }
    Err(storage_failure("heartbeat contention did not settle"))
}

/// A database failure: out of reach (503) or out of space (507) as
/// everywhere; any other is the seed's message.
fn db_failure(e: sqlx::Error) -> AppError {
    let error = AppError::from(e);
    match error.status {
        503 | 507 => error,
        _ => storage_failure(error.message),
    }
}

fn storage_failure(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "active_time update failed");
    AppError::new(500, "Error Occured while updating active time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_heartbeat_credits_nothing() {
        assert_eq!(credited_ms(None, 1_000_000, 900_000), 0);
    }

    #[test]
    fn gap_is_credited_up_to_the_cap() {
        assert_eq!(credited_ms(Some(0), 600_000, 900_000), 600_000);
        assert_eq!(credited_ms(Some(0), 5_000_000, 900_000), 900_000);
        // a clock that went backwards credits nothing
        assert_eq!(credited_ms(Some(10), 5, 900_000), 0);
    }

    #[test]
    fn coin_formula_is_coins_per_gb_hour() {
        // one hour with 1 GB pledged at 0.01/GB-hour
        assert!((coins(3_600_000, 1024.0, 0.01) - 0.01).abs() < 1e-15);
        // ten minutes with 2 GB
        assert!((coins(600_000, 2048.0, 0.01) - 0.01 * 2.0 / 6.0).abs() < 1e-15);
        assert_eq!(coins(3_600_000, 0.0, 0.01), 0.0);
    }

    #[test]
    fn active_time_bounds() {
        assert!(validate_active_time(1.0).is_ok());
        assert!(validate_active_time(86_400.0).is_ok());
        assert_eq!(validate_active_time(0.0).unwrap_err().message, "active_time must be greater than 0");
        assert_eq!(validate_active_time(-3.0).unwrap_err().status, 400);
        assert_eq!(validate_active_time(86_400.5).unwrap_err().message, "active_time must be at most 86400");
        assert_eq!(validate_active_time(f64::NAN).unwrap_err().message, "active_time must be a number");
    }
}
