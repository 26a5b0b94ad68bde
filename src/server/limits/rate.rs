//! [`KeyedRate`]: one governor GCRA limiter per key (client address, access
//! key) over a [`BoundedStore`], answering with [`Limited`]. It must not know
//! what its keys are.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock};
use governor::{Quota, RateLimiter};

use super::answer::Limited;
use super::bounded_store::BoundedStore;
use super::hits::Hits;

/// A sustained rate with a burst: `burst` at once, then one more each
/// `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    /// The most cells at once.
    pub(crate) burst: u32,
    /// How long one cell takes to come back.
    pub(crate) period: Duration,
}

impl Rate {
    /// `per_second` a second, `burst` at once. Over a billion a second is
    /// one a nanosecond (governor's finest period), i.e. no limit at all.
    pub(crate) fn per_second(per_second: u32, burst: u32) -> Self {
        Self {
            burst,
            period: (Duration::from_secs(1) / per_second.max(1)).max(Duration::from_nanos(1)),
        }
    }

    /// The governor quota. The config's validation keeps both numbers
    /// positive; a zero would become the smallest rate instead.
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst)
    }

    /// "N per second, M at once" (or "one per P" for slow rates).
    fn describe(self) -> String {
        if self.period > Duration::from_secs(1) {
            format!("{} at once, then one per {:?}", self.burst, self.period)
        } else {
            let per_second = Duration::from_secs(1).as_nanos() / self.period.as_nanos().max(1);
            format!("{per_second} per second, {} at once", self.burst)
        }
    }
}

/// A rate per key; at most `cap` keys tracked (see [`BoundedStore`]).
pub(crate) struct KeyedRate<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, BoundedStore<K>, MonotonicClock>,
    clock: MonotonicClock,
    /// "too many requests from your address", for the 429 message.
    too_many: &'static str,
    /// The rate in words, for the 429 message.
    rate: String,
    /// Keys refused so far (`effex_rate_limited_total`).
    pub(crate) hits: Hits,
}

impl<K: Hash + Eq + Clone> KeyedRate<K> {
    /// A limiter of `rate` per key, tracking at most `cap` keys (`what` they
    /// are, for the log), refusing with "`too_many` (the rate): retry after".
    pub(crate) fn new(rate: Rate, cap: usize, what: &'static str, too_many: &'static str) -> Self {
        Self {
            limiter: RateLimiter::new(rate.quota(), BoundedStore::new(cap, what), MonotonicClock),
            clock: MonotonicClock,
            too_many,
            rate: rate.describe(),
            hits: Hits::default(),
        }
    }

    /// Takes one cell for `key`, or says how long to wait.
    pub(crate) fn check(&self, key: &K) -> Result<(), Limited> {
        self.limiter.check_key(key).map_err(|not_until| {
            self.hits.hit();
            let retry_after = not_until.wait_time_from(self.clock.now());
            let mut limited = Limited {
                retry_after,
                message: String::new(),
            };
            limited.message = format!(
                "{} (at most {}): retry after {} s",
                self.too_many,
                self.rate,
                limited.retry_after_secs()
            );
            limited
        })
    }

    /// Forgets the keys whose buckets are full again (as if never seen).
    pub(crate) fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// The number of keys tracked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_burst_and_says_when() {
        let rate = KeyedRate::new(Rate::per_second(1, 2), 10, "test keys", "too many tests");
        assert!(rate.check(&"a").is_ok());
        assert!(rate.check(&"a").is_ok());
        let limited = rate.check(&"a").unwrap_err();
        assert!(limited.retry_after <= Duration::from_secs(1));
        assert_eq!(
            limited.message,
            "too many tests (at most 1 per second, 2 at once): retry after 1 s"
        );
        assert!(rate.check(&"b").is_ok());
        assert_eq!(rate.len(), 2);
    }

    #[test]
    fn huge_rates_lift_the_limit() {
        // Not 0 ns (no quota, which would fall back to the smallest rate).
        let rate = Rate::per_second(u32::MAX, 1);
        assert_eq!(rate.quota().replenish_interval(), Duration::from_nanos(1));
    }

    #[test]
    fn slow_rates_read_well() {
        let rate = Rate {
            burst: 20,
            period: Duration::from_secs(2),
        };
        assert_eq!(rate.describe(), "20 at once, then one per 2s");
    }
}
