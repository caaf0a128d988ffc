//! The one clock every stored timestamp, token and window uses: the
//! system's, plus an offset that only a test setup can move
//! (`PEERVAULT_TEST_CLOCK=1` and the loopback-only `POST /test/clock`).
//! Depends on nothing else in the crate.

use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
    movable: bool,
}

impl Clock {
    /// Real time, never moved.
    pub fn system() -> Self {
        Self { offset_ms: AtomicI64::new(0), movable: false }
    }

    /// Real time that [`Clock::advance`] may move forward (tests only).
    pub fn movable() -> Self {
        Self { offset_ms: AtomicI64::new(0), movable: true }
    }

    pub fn is_movable(&self) -> bool {
        self.movable
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        system_ms().saturating_add(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves a movable clock forward by `ms` (at most a year at a time) and
    /// returns the new time; `None` for the system clock or a bad amount.
    pub fn advance(&self, ms: i64) -> Option<i64> {
        if !self.movable || !(0..=YEAR_MS).contains(&ms) {
            return None;
        }
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        Some(self.now_ms())
    }
}

const YEAR_MS: i64 = 366 * 86_400_000;

fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_movable_clock_moves() {
        let fixed = Clock::system();
        assert_eq!(fixed.advance(1000), None);
        let clock = Clock::movable();
        let before = clock.now_ms();
        let after = clock.advance(3_600_000).expect("movable");
        assert!(after >= before + 3_600_000 && after < before + 3_700_000);
        assert_eq!(clock.advance(-1), None);
        assert_eq!(clock.advance(YEAR_MS + 1), None);
    }
}
