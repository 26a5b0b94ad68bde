//! Clock helpers for the store: wall time as unix ms for replies and events,
//! tokio `Instant`s for deadlines. Owns no state.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// One reading of both clocks, taken together so that a deadline and the unix
/// time reported for it agree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Monotonic time, for deadlines (never jumps).
    pub(crate) instant: Instant,
    /// Wall time in unix milliseconds, for what the API reports.
    pub(crate) unix_ms: u64,
}

impl Now {
    /// Reads both clocks.
    pub(crate) fn read() -> Self {
        Now {
            instant: Instant::now(),
            unix_ms: unix_ms(),
        }
    }

    /// The unix ms that corresponds to `deadline` (a deadline in the past maps to now).
    pub(crate) fn unix_ms_at(&self, deadline: Instant) -> u64 {
        self.unix_ms.saturating_add(duration_ms(
            deadline.saturating_duration_since(self.instant),
        ))
    }
}

/// Wall time in unix milliseconds (0 if the system clock is before 1970).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(duration_ms)
        .unwrap_or(0)
}

/// Whole milliseconds of `d`, saturating at `u64::MAX`.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `instant + d`, saturating far in the future instead of overflowing.
pub(crate) fn add(instant: Instant, d: Duration) -> Instant {
    instant.checked_add(d).unwrap_or_else(|| {
        // About 30 years ahead: later than any lifetime the store accepts.
        instant + Duration::from_secs(30 * 365 * 86_400)
    })
}
