//! Onboarding: the storage an account pledges to rent out.

use super::Principal;
use crate::error::{AppError, AppResult};
use super::Services;

/// The smallest pledge: 1 MB (anything less is no storage to rent out, and
/// tiny fractions like 1e-320 would echo as 300-character numbers).
pub const MIN_STORAGE_RENTED_MB: f64 = 1.0;

/// Checks a pledge in MB: finite, at least 1 MB, at most the configured maximum.
pub fn validate_storage_rented(mb: f64, max_mb: f64) -> AppResult<()> {
    if !mb.is_finite() || mb <= 0.0 {
        Err(AppError::bad_request("storageRented must be a positive number"))
    } else if mb < MIN_STORAGE_RENTED_MB {
        Err(AppError::bad_request("storageRented must be at least 1 MB"))
    } else if mb > max_mb {
        Err(AppError::bad_request(format!("storageRented must be at most {max_mb} MB")))
    } else {
        Ok(())
    }
}

/// Sets (or updates) the pledge and returns the confirmation message.
pub async fn onboard(state: &Services, who: &Principal, storage_rented_mb: f64) -> AppResult<String> {
    validate_storage_rented(storage_rented_mb, state.settings.max_storage_rented_mb)?;
    state.db.set_storage_rented(who.user_id, storage_rented_mb, state.clock.now_ms()).await?;
    // f64's Display is the shortest form that reads back the same: 2048, 1.5.
    Ok(format!("{} has been onboarded! with {storage_rented_mb} MB of storage", who.username))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pledge_bounds_and_shortest_form() {
        assert!(validate_storage_rented(1.5, 100.0).is_ok());
        assert!(validate_storage_rented(0.0, 100.0).is_err());
        assert_eq!(validate_storage_rented(1e-320, 100.0).unwrap_err().message, "storageRented must be at least 1 MB");
        assert_eq!(validate_storage_rented(0.999, 100.0).unwrap_err().message, "storageRented must be at least 1 MB");
        assert!(validate_storage_rented(1.0, 100.0).is_ok());
        assert!(validate_storage_rented(f64::INFINITY, 100.0).is_err());
        assert_eq!(validate_storage_rented(101.0, 100.0).unwrap_err().message, "storageRented must be at most 100 MB");
        assert_eq!(format!("{}", 2048.0_f64), "2048");
        assert_eq!(format!("{}", 1.5_f64), "1.5");
    }
}
