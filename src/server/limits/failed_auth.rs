//! [`FailedAuth`]: the penalty for failed authentication from one client
//! address (an unknown or expired key on HTTP, a refused `pass`): a burst of
//! failures is allowed, then an escalating lockout. It must not check
//! credentials itself.
//!
//! # The rule
//!
//! - Every failure takes one cell of the address's
//!   [`Rate`] (`failed_auth_burst` at once, then one per `failed_auth_period`).
//! - A failure that finds no cell locks the address out: for
//!   `failed_auth_period` the first time, twice as long each further time
//!   (a *strike*), at most `failed_auth_max_lockout`. Failures while locked
//!   out do not extend the lockout (they are refused before any check).
//! - While locked out, every authenticated request from the address is
//!   refused with 429 and the time left (`Retry-After`, `retryAfter`),
//!   without checking its credentials.
//! - The strikes are forgotten once the address has stayed out of lockout for
//!   `failed_auth_max_lockout`; so are the address's records.
//!
//! In the long run an address gets at most `failed_auth_burst` guesses per
//! lockout, whose length doubles up to the maximum (with the defaults: 50
//! guesses per 15 minutes).
//!
//! At most `max_tracked_clients` addresses are tracked; past that, new ones
//! share one entry (one rate, one lockout) until pruning frees room, so a
//! flood from very many addresses is slowed down as a whole.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use super::answer::Limited;
use super::hits::Hits;
use super::rate::{KeyedRate, Rate};
use crate::server::client_addr::ClientKey;

/// An address's lockout and how many it had in a row.
#[derive(Debug, Clone, Copy)]
struct Lockout {
    until: Instant,
    strikes: u32,
}

/// Failures per address and the lockouts they earned.
pub(crate) struct FailedAuth {
    failures: KeyedRate<ClientKey>,
    /// `None` is the shared entry of the addresses past the cap. Read on
    /// every request, written only on a lockout and by pruning.
    lockouts: RwLock<HashMap<Option<ClientKey>, Lockout>>,
    first_lockout: Duration,
    max_lockout: Duration,
    cap: usize,
    /// Requests and passes refused during a lockout (`effex_rate_limited_total`).
    pub(crate) hits: Hits,
}

impl FailedAuth {
    /// `rate` of failures per address; lockouts from `rate.period` doubling
    /// to `max_lockout`; at most `cap` addresses.
    pub(crate) fn new(rate: Rate, max_lockout: Duration, cap: usize) -> Self {
        Self {
            failures: KeyedRate::new(
                rate,
                cap,
                "client addresses (failed authentication)",
                "too many failed authentications",
            ),
            lockouts: RwLock::new(HashMap::new()),
            first_lockout: rate.period.min(max_lockout),
            max_lockout,
            cap: cap.max(1),
            hits: Hits::default(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<Option<ClientKey>, Lockout>> {
        // Plain data: still consistent after a panic elsewhere.
        self.lockouts.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<Option<ClientKey>, Lockout>> {
        self.lockouts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The map key of `client`: itself, or the shared entry past the cap.
    fn entry_key(
        &self,
        lockouts: &HashMap<Option<ClientKey>, Lockout>,
        client: ClientKey,
    ) -> Option<ClientKey> {
        let key = Some(client);
        if lockouts.contains_key(&key) || lockouts.len() < self.cap {
            key
        } else {
            None
        }
    }

    /// `Err` with the time left while `client` is locked out.
    pub(crate) fn check(&self, client: ClientKey) -> Result<(), Limited> {
        let lockouts = self.read();
        let key = self.entry_key(&lockouts, client);
        let Some(lockout) = lockouts.get(&key) else {
            return Ok(());
        };
        let now = Instant::now();
        if lockout.until <= now {
            return Ok(());
        }
        self.hits.hit();
        let mut limited = Limited {
            retry_after: lockout.until - now,
            message: String::new(),
        };
        limited.message = format!(
            "too many failed authentications from your address: retry after {} s \
             with a valid key or passphrase",
            limited.retry_after_secs()
        );
        Err(limited)
    }

    /// Counts a failure of `client`; past its rate, locks it out.
    pub(crate) fn record_failure(&self, client: ClientKey) {
        if self.failures.check(&client).is_ok() {
            return;
        }
        let now = Instant::now();
        let mut lockouts = self.write();
        if !lockouts.contains_key(&Some(client)) && lockouts.len() >= self.cap {
            self.forget_lapsed(&mut lockouts, now);
        }
        let key = self.entry_key(&lockouts, client);
        let lockout = lockouts.entry(key).or_insert(Lockout {
            until: now,
            strikes: 0,
        });
        if lockout.until > now {
            // Already locked out (a failure that raced the lockout).
            return;
        }
        if now.duration_since(lockout.until) >= self.max_lockout {
            lockout.strikes = 0;
        }
        let doublings = lockout.strikes.min(31);
        let length = self
            .first_lockout
            .saturating_mul(1 << doublings)
            .min(self.max_lockout);
        lockout.strikes = lockout.strikes.saturating_add(1);
        lockout.until = now + length;
        match key {
            Some(client) => log::warn!(
                "client {client}: too many failed authentications, locked out for {length:?} \
                 (strike {})",
                lockout.strikes
            ),
            None => log::warn!(
                "too many failed authentications from untracked addresses (the table is full): \
                 all of them locked out for {length:?}"
            ),
        }
    }

    /// Drops the lockouts whose strikes have lapsed.
    fn forget_lapsed(&self, lockouts: &mut HashMap<Option<ClientKey>, Lockout>, now: Instant) {
        lockouts.retain(|_, l| now.saturating_duration_since(l.until) < self.max_lockout);
    }

    /// Forgets idle addresses (full buckets, lapsed strikes).
    pub(crate) fn prune(&self) {
        self.failures.prune();
        let mut lockouts = self.write();
        self.forget_lapsed(&mut lockouts, Instant::now());
        lockouts.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn client(last: u8) -> ClientKey {
        ClientKey::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    #[test]
    fn lockouts_follow_the_burst_and_double() {
        let period = Duration::from_secs(60);
        let auth = FailedAuth::new(Rate { burst: 2, period }, Duration::from_secs(3600), 10);
        let a = client(1);
        auth.record_failure(a);
        auth.record_failure(a);
        assert!(auth.check(a).is_ok(), "the burst is allowed");
        auth.record_failure(a);
        let first = auth.check(a).unwrap_err();
        assert!(first.retry_after > Duration::from_secs(50));
        assert!(first.retry_after <= period);
        assert!(
            auth.check(client(2)).is_ok(),
            "other addresses are not locked"
        );
        // A failure during the lockout does not extend it.
        auth.record_failure(a);
        assert!(auth.check(a).unwrap_err().retry_after <= period);
        // The next lockout (the lockout ended, no cell came back) is twice as long.
        {
            let mut lockouts = auth.write();
            let l = lockouts.get_mut(&Some(a)).unwrap();
            l.until = Instant::now();
        }
        auth.record_failure(a);
        let second = auth.check(a).unwrap_err();
        assert!(second.retry_after > Duration::from_secs(110));
        assert!(second.retry_after <= 2 * period);
    }

    #[test]
    fn the_lockout_is_capped() {
        let auth = FailedAuth::new(
            Rate {
                burst: 1,
                period: Duration::from_secs(60),
            },
            Duration::from_secs(90),
            10,
        );
        let a = client(1);
        for strike in 0..4 {
            auth.record_failure(a);
            auth.record_failure(a);
            assert!(auth.check(a).unwrap_err().retry_after <= Duration::from_secs(90));
            let mut lockouts = auth.write();
            let l = lockouts.get_mut(&Some(a)).unwrap();
            assert_eq!(l.strikes, strike + 1);
            l.until = Instant::now();
        }
    }

    #[test]
    fn past_the_cap_new_addresses_share_one_entry() {
        let auth = FailedAuth::new(
            Rate {
                burst: 1,
                period: Duration::from_secs(60),
            },
            Duration::from_secs(600),
            2,
        );
        for last in 1..=2 {
            auth.record_failure(client(last));
            auth.record_failure(client(last));
        }
        assert!(auth.check(client(1)).is_err());
        assert!(auth.check(client(3)).is_ok());
        // 3 and 4 are untracked: their failures share a bucket and a lockout.
        auth.record_failure(client(3));
        auth.record_failure(client(4));
        assert!(auth.check(client(5)).is_err());
        assert!(auth.read().len() <= 3);
    }
}
