//! Bandwidth reports of an account's peer node.

use super::Principal;
use crate::error::AppResult;
use super::Services;

/// One report: cumulative totals in bytes, current rates in bytes/s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub total_in: i64,
    pub total_out: i64,
    pub rate_in: f64,
    pub rate_out: f64,
}

/// Stores the report. The latest totals replace the previous ones; a total
/// lower than the stored one means the node restarted, so the stored one is
/// banked rather than lost.
pub async fn report(state: &Services, who: &Principal, r: Report) -> AppResult<()> {
    let now = state.clock.now_ms();
    state.db.record_bandwidth(who.user_id, r.total_in, r.total_out, r.rate_in, r.rate_out, now).await?;
    Ok(())
}
