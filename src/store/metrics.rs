//! [`StoreMetrics`]: the figures a store keeps about its own work (how late
//! its expiries fire), for the server's `GET /metrics`. The store counts;
//! the server only registers these collectors in its own registry and reads
//! them at scrape time, so the store stays independent of the server (and
//! one store shared by several servers shows the same figures in each). It
//! must not know about HTTP or the other series.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts};

use super::StoreError;

/// The buckets of `effex_expiry_lateness_seconds`: from 1 ms (the clock's
/// own granularity) to 10 s (a stalled runtime or sweeper).
const LATENESS_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A store's own metrics: cheap to clone (every clone counts into the same
/// series). Obtained from [`Store::metrics`](super::Store::metrics); a
/// custom store may return none.
#[derive(Clone)]
pub struct StoreMetrics {
    /// `effex_expiry_lateness_seconds`: how long after its deadline each
    /// expiry fired.
    expiry_lateness: Histogram,
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMetrics")
            .field("expiries", &self.expiry_lateness.get_sample_count())
            .finish_non_exhaustive()
    }
}

impl StoreMetrics {
    /// New, empty metrics. Fails (500) only if a series could not be
    /// defined, which would be a bug in effex: report it.
    pub fn new() -> Result<Self, StoreError> {
        let expiry_lateness = Histogram::with_opts(
            HistogramOpts::new(
                "effex_expiry_lateness_seconds",
                "How late each item's expiry fired after its deadline, in seconds \
                 (the expiry clock, or an access that found the item due first).",
            )
            .buckets(LATENESS_BUCKETS.to_vec()),
        )
        .map_err(|e| StoreError::Backend(format!("cannot define the store's metrics: {e}")))?;
        Ok(StoreMetrics { expiry_lateness })
    }

    /// Records one expiry that fired `late` after its deadline.
    pub(crate) fn expired_late(&self, late: std::time::Duration) {
        self.expiry_lateness.observe(late.as_secs_f64());
    }

    /// The collectors for a server's registry.
    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![Box::new(self.expiry_lateness.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_observed_in_seconds() {
        let metrics = StoreMetrics::new().unwrap();
        metrics.expired_late(std::time::Duration::from_millis(3));
        let families = metrics.collectors()[0].collect();
        let histogram = families[0].get_metric()[0].get_histogram();
        assert_eq!(histogram.get_sample_count(), 1);
        assert!((histogram.get_sample_sum() - 0.003).abs() < 1e-9);
    }
}
