//! [`StoreMetrics`]: the figures a store keeps about its own work (how late
//! its expiries fire; with Redis, how long its scripts take and how often
//! its connections came back), for the server's `GET /metrics`. The store counts;
//! the server only registers these collectors in its own registry and reads
//! them at scrape time, so the store stays independent of the server (and
//! one store shared by several servers shows the same figures in each). It
//! must not know about HTTP or the other series.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts};
#[cfg(feature = "redis")]
use prometheus::{HistogramVec, IntCounter};

use super::StoreError;

/// The buckets of `effex_expiry_lateness_seconds`: from 1 ms (the clock's
/// own granularity) to 10 s (a stalled runtime or sweeper).
const LATENESS_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The buckets of `effex_redis_command_duration_seconds`: 0.1 ms (a script
/// on a local Redis) to 5 s (past the default command timeout).
#[cfg(feature = "redis")]
const REDIS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The Redis store's own series.
#[cfg(feature = "redis")]
#[derive(Clone)]
struct RedisSeries {
    /// `effex_redis_command_duration_seconds{command}`: one label value per
    /// function of the store's Redis library (a fixed set), so the label stays
    /// bounded.
    command_duration: HistogramVec,
    /// `effex_redis_reconnects_total`.
    reconnects: IntCounter,
}

/// A store's own metrics: cheap to clone (every clone counts into the same
/// series). Obtained from [`Store::metrics`](super::Store::metrics); a
/// custom store may return none.
#[derive(Clone)]
pub struct StoreMetrics {
    /// `effex_expiry_lateness_seconds`: how long after its deadline each
    /// expiry fired.
    expiry_lateness: Histogram,
    /// The Redis store's series (`None` for other stores).
    #[cfg(feature = "redis")]
    redis: Option<RedisSeries>,
}

/// The error of a series that cannot be defined (a bug: the names are constants).
fn undefined(e: prometheus::Error) -> StoreError {
    StoreError::Backend(format!("cannot define the store's metrics: {e}"))
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
        .map_err(undefined)?;
        Ok(StoreMetrics {
            expiry_lateness,
            #[cfg(feature = "redis")]
            redis: None,
        })
    }

    /// The metrics of a Redis store: the expiry lateness and the Redis
    /// series.
    #[cfg(feature = "redis")]
    pub(crate) fn with_redis() -> Result<Self, StoreError> {
        let command_duration = HistogramVec::new(
            HistogramOpts::new(
                "effex_redis_command_duration_seconds",
                "How long each Redis script took, round trip included, by script, in seconds.",
            )
            .buckets(REDIS_BUCKETS.to_vec()),
            &["command"],
        )
        .map_err(undefined)?;
        let reconnects = IntCounter::new(
            "effex_redis_reconnects_total",
            "Times a connection to Redis worked again after failing (the event reader's, \
             and the commands' as the expiry sweeper meets it).",
        )
        .map_err(undefined)?;
        Ok(StoreMetrics {
            redis: Some(RedisSeries {
                command_duration,
                reconnects,
            }),
            ..Self::new()?
        })
    }

    /// Records one Redis script `command` that took `took`.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_command(&self, command: &str, took: std::time::Duration) {
        if let Some(redis) = &self.redis {
            redis
                .command_duration
                .with_label_values(&[command])
                .observe(took.as_secs_f64());
        }
    }

    /// Counts a connection to Redis that works again after failing.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_reconnected(&self) {
        if let Some(redis) = &self.redis {
            redis.reconnects.inc();
        }
    }

    /// Records one expiry that fired `late` after its deadline.
    pub(crate) fn expired_late(&self, late: std::time::Duration) {
        self.expiry_lateness.observe(late.as_secs_f64());
    }

    /// The collectors for a server's registry.
    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        let lateness: Box<dyn Collector> = Box::new(self.expiry_lateness.clone());
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return vec![
                lateness,
                Box::new(redis.command_duration.clone()),
                Box::new(redis.reconnects.clone()),
            ];
        }
        vec![lateness]
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
