//! [`Hits`]: how many times one limit refused something, for
//! `effex_rate_limited_total` (read at scrape time). It must not decide
//! what is limited.

use std::sync::atomic::{AtomicU64, Ordering};

/// A count of refusals by one limit (relaxed atomics: a figure, not a guard).
#[derive(Debug, Default)]
pub(crate) struct Hits(AtomicU64);

impl Hits {
    /// Counts one refusal.
    pub(crate) fn hit(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The refusals so far.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
