//! Update intents: who may take or renew an item's update lock, for how long,
//! and the total hold that no run of renewals can pass. Plain rules over
//! times; the store keeps the intent on its item under the item's lock.

use std::time::Duration;

use tokio::time::Instant;

use super::time::{self, Now};
use super::types::random128;
use super::StoreError;
use crate::protocol::time::UnixMillis;

/// An update lock on one item.
#[derive(Debug)]
pub(crate) struct Intent {
    pub(crate) id: u128,
    /// Random bits of the key that took it.
    pub(crate) holder: u128,
    /// When this holder's run of renewals began; no lock of the run lasts
    /// past `held_since + max_hold`.
    held_since: Instant,
    pub(crate) expires: Instant,
    pub(crate) expires_at: UnixMillis,
}

/// How long intents lock and how long one holder may keep renewing them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IntentRules {
    /// One intent's lock (the store's `intent_lifetime`).
    pub(crate) lifetime: Duration,
    /// The longest run of renewals by one key (the store's `intent_max_hold`).
    pub(crate) max_hold: Duration,
}

impl Intent {
    /// Whether the lock is still in force at `now`.
    pub(crate) fn in_force(&self, now: &Now) -> bool {
        self.expires > now.instant
    }

    /// Ends the lock at `now` (an update went through) but keeps the run, so
    /// that updating between renewals does not restart the holder's total hold.
    pub(crate) fn lapse(&mut self, now: &Now) {
        self.expires = self.expires.min(now.instant);
        self.expires_at = self.expires_at.min(now.wall);
    }
}

impl IntentRules {
    /// A new intent for `holder` on an item whose current intent is `held`:
    ///
    /// - another key's intent in force: 423 until it lapses;
    /// - `holder`'s own intent, in force or lapsed, before its run's total
    ///   hold has passed: a renewal, part of the same run, whose lock ends at
    ///   the run's total hold at the latest;
    /// - `holder`'s run after its total hold: 423 until one `lifetime` after
    ///   its last lock ended (at the hold, or earlier by its own update), so
    ///   that others can take the item: a holder that updates and takes the
    ///   item again at once cannot start over just after the hold;
    /// - otherwise (none, another key's lapsed intent, or the holder's run
    ///   that let go at least one `lifetime` ago): a new run.
    pub(crate) fn take(
        &self,
        held: Option<&Intent>,
        holder: u128,
        now: &Now,
    ) -> Result<Intent, StoreError> {
        let held_since = match held {
            Some(held) if held.holder != holder => {
                if held.in_force(now) {
                    return Err(locked(held.expires, now));
                }
                now.instant
            }
            Some(held) => {
                let hold_end = time::add(held.held_since, self.max_hold);
                let cooled = time::add(held.expires, self.lifetime);
                if now.instant < hold_end {
                    held.held_since
                } else if now.instant < cooled {
                    return Err(locked(cooled, now));
                } else {
                    now.instant
                }
            }
            None => now.instant,
        };
        let expires =
            time::add(now.instant, self.lifetime).min(time::add(held_since, self.max_hold));
        Ok(Intent {
            id: random128(),
            holder,
            held_since,
            expires,
            expires_at: now.wall_at(expires),
        })
    }
}

/// 423 until `until`.
pub(crate) fn locked(until: Instant, now: &Now) -> StoreError {
    StoreError::Locked {
        seconds_left: seconds_left(until, now),
    }
}

/// Seconds from `now` to `until`, rounded up to the millisecond.
fn seconds_left(until: Instant, now: &Now) -> f64 {
    let left = until.saturating_duration_since(now.instant).as_secs_f64();
    (left * 1000.0).ceil() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: IntentRules = IntentRules {
        lifetime: Duration::from_secs(10),
        max_hold: Duration::from_secs(25),
    };

    fn at(start: Instant, secs: u64) -> Now {
        Now {
            instant: start + Duration::from_secs(secs),
            wall: UnixMillis::from_millis(1_000_000 + secs * 1000),
        }
    }

    #[test]
    fn renewals_stop_at_the_total_hold_then_the_holder_waits_one_lifetime() {
        let t0 = Instant::now();
        let first = RULES.take(None, 1, &at(t0, 0)).unwrap();
        assert_eq!(first.expires, t0 + Duration::from_secs(10));
        let second = RULES.take(Some(&first), 1, &at(t0, 9)).unwrap();
        assert_eq!(second.expires, t0 + Duration::from_secs(19));
        let third = RULES.take(Some(&second), 1, &at(t0, 18)).unwrap();
        assert_eq!(third.expires, t0 + Duration::from_secs(25), "capped");
        // Another key: locked out while it is in force.
        assert_eq!(
            RULES.take(Some(&third), 2, &at(t0, 24)).unwrap_err().code(),
            423
        );
        // The holder after its hold: 423 until one lifetime after the hold ended.
        match RULES.take(Some(&third), 1, &at(t0, 26)) {
            Err(StoreError::Locked { seconds_left }) => assert_eq!(seconds_left, 9.0),
            other => panic!("expected 423, got {other:?}"),
        }
        let others = RULES.take(Some(&third), 2, &at(t0, 26)).unwrap();
        assert_eq!(others.expires, t0 + Duration::from_secs(36));
        let fresh = RULES.take(Some(&third), 1, &at(t0, 35)).unwrap();
        assert_eq!(fresh.expires, t0 + Duration::from_secs(45), "a new run");
    }

    #[test]
    fn a_lapsed_intent_taken_again_within_the_hold_continues_the_run() {
        let t0 = Instant::now();
        let mut first = RULES.take(None, 1, &at(t0, 0)).unwrap();
        first.lapse(&at(t0, 3)); // the holder updated
        assert!(!first.in_force(&at(t0, 3)));
        let again = RULES.take(Some(&first), 1, &at(t0, 12)).unwrap();
        assert_eq!(again.expires, t0 + Duration::from_secs(22));
        let renewed = RULES.take(Some(&again), 1, &at(t0, 21)).unwrap();
        assert_eq!(renewed.expires, t0 + Duration::from_secs(25), "capped");
    }

    #[test]
    fn an_update_just_before_the_hold_does_not_start_a_new_run_after_it() {
        let t0 = Instant::now();
        let first = RULES.take(None, 1, &at(t0, 0)).unwrap();
        let mut second = RULES.take(Some(&first), 1, &at(t0, 9)).unwrap();
        second.lapse(&at(t0, 18)); // the holder updated, then reads again late
        match RULES.take(Some(&second), 1, &at(t0, 26)) {
            Err(StoreError::Locked { seconds_left }) => assert_eq!(seconds_left, 2.0),
            other => panic!("expected 423 until one lifetime after the update, got {other:?}"),
        }
        let fresh = RULES.take(Some(&second), 1, &at(t0, 28)).unwrap();
        assert_eq!(fresh.expires, t0 + Duration::from_secs(38), "a new run");
    }

    #[test]
    fn a_run_that_let_go_before_its_hold_starts_again_after_it() {
        let t0 = Instant::now();
        let first = RULES.take(None, 1, &at(t0, 0)).unwrap();
        let fresh = RULES.take(Some(&first), 1, &at(t0, 26)).unwrap();
        assert_eq!(fresh.expires, t0 + Duration::from_secs(36));
    }
}
