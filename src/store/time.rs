//! Clock helpers for the store: one reading of the wall clock
//! ([`UnixMillis`], for replies and events) together with the tokio
//! `Instant` it corresponds to (for deadlines). Owns no state.

use std::time::Duration;

use tokio::time::Instant;

use crate::protocol::time::UnixMillis;

pub(crate) use crate::protocol::time::whole_millis as duration_ms;

/// One reading of both clocks, taken together so that a deadline and the unix
/// time reported for it agree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Monotonic time, for deadlines (never jumps).
    pub(crate) instant: Instant,
    /// Wall time, for what the API reports.
    pub(crate) wall: UnixMillis,
}

impl Now {
    /// Reads both clocks.
    pub(crate) fn read() -> Self {
        Now {
            instant: Instant::now(),
            wall: UnixMillis::now(),
        }
    }

    /// The wall time that corresponds to `deadline` (a deadline in the past maps to now).
    pub(crate) fn wall_at(&self, deadline: Instant) -> UnixMillis {
        self.wall
            .saturating_add(deadline.saturating_duration_since(self.instant))
    }
}

/// `instant + d`, saturating far in the future instead of overflowing.
pub(crate) fn add(instant: Instant, d: Duration) -> Instant {
    instant.checked_add(d).unwrap_or_else(|| {
        // About 30 years ahead: later than any lifetime the store accepts.
        instant + Duration::from_secs(30 * 365 * 86_400)
    })
}
