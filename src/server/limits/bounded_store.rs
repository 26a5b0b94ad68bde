//! [`BoundedStore`]: a governor keyed state store with a cap on the number of
//! keys it tracks, so that a flood of new client addresses (or made-up access
//! keys) cannot grow it without end. It must not decide what is limited.

use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};

/// A keyed state store of at most about `cap` keys (concurrent first
/// requests may pass it by a few, one per worker).
///
/// At the cap, a key that is not tracked yet is limited in one shared
/// *overflow* state: every such key draws from the same bucket, so the
/// newcomers are limited together (fail closed) until pruning
/// ([`ShrinkableKeyedStateStore::retain_recent`], run periodically by the
/// `limits` module) drops the keys whose buckets are full again. A warning is
/// logged once each time the cap is reached.
pub(crate) struct BoundedStore<K: Hash + Eq + Clone> {
    tracked: DashMapStateStore<K>,
    overflow: InMemoryState,
    cap: usize,
    /// What the keys are, for the warning ("client addresses", "access keys").
    what: &'static str,
    /// The cap was reached and logged since the last prune.
    warned: AtomicBool,
}

impl<K: Hash + Eq + Clone> BoundedStore<K> {
    /// An empty store that tracks at most `cap` keys (at least 1).
    pub(crate) fn new(cap: usize, what: &'static str) -> Self {
        Self {
            tracked: DashMapStateStore::default(),
            overflow: InMemoryState::default(),
            cap: cap.max(1),
            what,
            warned: AtomicBool::new(false),
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if self.tracked.contains_key(key) || self.tracked.len() < self.cap {
            return self.tracked.measure_and_replace(key, f);
        }
        if !self.warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                "rate limits: {} {} tracked, the cap: new ones share one limit until idle ones are pruned",
                self.cap,
                self.what
            );
        }
        self.overflow.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.tracked.retain_recent(drop_below);
        if self.tracked.len() < self.cap {
            self.warned.store(false, Ordering::Relaxed);
        }
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.tracked);
    }

    fn len(&self) -> usize {
        self.tracked.len()
    }

    fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use governor::clock::MonotonicClock;
    use governor::{Quota, RateLimiter};

    use super::*;

    #[test]
    fn keys_past_the_cap_share_one_bucket() {
        let quota = Quota::per_second(NonZeroU32::MIN).allow_burst(NonZeroU32::MIN);
        let store = BoundedStore::<u32>::new(2, "test keys");
        let limiter: RateLimiter<u32, _, _> = RateLimiter::new(quota, store, MonotonicClock);
        assert!(limiter.check_key(&1).is_ok());
        assert!(limiter.check_key(&2).is_ok());
        assert_eq!(limiter.len(), 2);
        // 3 and 4 are past the cap: one shared bucket of burst 1.
        assert!(limiter.check_key(&3).is_ok());
        assert!(limiter.check_key(&4).is_err());
        assert_eq!(limiter.len(), 2);
        // Tracked keys keep their own buckets.
        assert!(limiter.check_key(&1).is_err());
    }
}
