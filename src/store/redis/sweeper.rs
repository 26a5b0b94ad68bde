//! The expiry sweeper: one task per store that runs the `sweep` script,
//! again at once while a sweep found a full batch, otherwise when the next
//! deadline in the shared set falls due, but at least every `sweep_interval`
//! (a deadline written meanwhile by another node may come sooner). The
//! script claims due entries of the shared deadline set inside one atomic
//! step, so every node sweeps and each deadline is handled exactly once,
//! with no leader; a node that dies loses nothing, the others sweep on.
//!
//! Waking for the next deadline, not only every interval, keeps expiry
//! lateness near Redis's own latency: a fixed interval alone makes an item
//! up to one interval late (the interval since the last sweep of any node).
//! Idle nodes still look only once per interval. The pauses are timed to the
//! µs of Redis's clock and wake on time ([`on_time`](crate::store::on_time)).
//!
//! **On time or backup.** Nodes that all wake when a deadline falls due all
//! call Redis, and all but the first find nothing: with three nodes, two of
//! every three sweeps were empty (`bench_cluster --quick`), each a round
//! trip Redis pays for. So a node whose sweep for a due deadline found it
//! already handled becomes a *backup*: it waits [`BACKUP_DELAY`] past each
//! deadline, and skips its sweep when the event stream has meanwhile shown
//! another node's sweep covering that deadline (a sweep's entry says up to
//! which deadline it handled everything, and the next deadline: see
//! `lua/sweep.lua`, [`Coverage`]). A backup whose own sweep finds work (the
//! node that swept on time died, or fell behind) sweeps on time again. No
//! leader is chosen and none is needed: each node decides from what it
//! sees, and at worst two nodes sweep on time, as before.

use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::scripts::{Op, Outcome, Reply};
use super::Shared;
use crate::store::on_time;

/// The longest pause between sweeps while Redis cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The pause after a sweep whose reply names no later deadline to wait for
/// (one already due, which a sweep that claimed less than a full batch
/// cannot leave; or a reply without Redis's clock): deadlines are in whole
/// milliseconds of Redis's clock, so sooner finds nothing new.
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// How long past a deadline a backup waits for another node's sweep of it
/// to show in the event stream before it sweeps itself: what an expiry is
/// late by when the node sweeping on time has died.
const BACKUP_DELAY: Duration = Duration::from_millis(2);

/// What the nodes' sweeps have covered, as this node's event reader learns
/// it from their stream entries (Redis's unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Covered {
    /// Every deadline up to this one is handled.
    pub(super) through: i64,
    /// The earliest deadline left then, if any.
    pub(super) next: Option<i64>,
}

/// The latest [`Covered`]: written by the event reader, read by the sweeper.
#[derive(Debug, Default)]
pub(super) struct Coverage(Mutex<Option<Covered>>);

impl Coverage {
    /// Keeps `covered`, the latest sweep's: the reader reads the stream in
    /// order, so a later entry is a later sweep even if Redis's clock went
    /// back meanwhile (keeping the highest `through` instead would then
    /// have let backups skip deadlines nobody swept).
    pub(super) fn record(&self, covered: Covered) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(covered);
    }

    fn latest(&self) -> Option<Covered> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether this node sweeps when a deadline falls due, or as a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    OnTime,
    Backup,
}

/// Sweeps until `stop` turns true (or the store is gone).
pub(super) async fn run(shared: Weak<Shared>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut role = Role::OnTime;
    // The deadline this node waits for, and Redis's clock (µs) as the last
    // sweep read it, with the local instant taken for that reading.
    let mut target: Option<i64> = None;
    let mut clock: Option<(Instant, i64)> = None;
    loop {
        let pause = match shared.upgrade() {
            None => return,
            Some(shared) => {
                let interval = shared.config.sweep_interval;
                let covered = shared.coverage.latest();
                if let Some(skip) = backup_skip(role, target, covered, clock, interval) {
                    target = skip.target;
                    skip.pause
                } else {
                    let batch = shared.config.sweep_batch;
                    let batch_arg = batch.to_string();
                    let sent = Instant::now();
                    match shared.run(Op::Sweep, &[batch_arg.as_str()]).await {
                        Ok(Outcome::Ok(reply)) => {
                            if failures > 0 {
                                shared.metrics.redis_reconnected();
                            }
                            failures = 0;
                            let swept = Swept::from_reply(&reply);
                            role = next_role(role, target, &swept);
                            // Redis read its clock between the call's send
                            // and its reply: the middle is the best guess,
                            // and the pause counts from there.
                            let half_trip = sent.elapsed() / 2;
                            clock = swept.now_us.map(|us| (sent + half_trip, us));
                            target = swept.next_due.filter(|_| swept.handled < batch as u64);
                            let pause = pause_after(&swept, batch, interval);
                            match role {
                                Role::Backup if !pause.is_zero() => {
                                    (pause + BACKUP_DELAY).min(interval)
                                }
                                _ if target.is_some() => pause.saturating_sub(half_trip),
                                _ => pause,
                            }
                        }
                        Ok(Outcome::Refused(r)) => {
                            log::error!("effex: the Redis expiry sweep refused: {r:?}");
                            interval
                        }
                        Err(e) => {
                            failures = failures.saturating_add(1);
                            if failures == 1 {
                                log::warn!("effex: expiry sweep failed: {e}; retrying");
                            }
                            (interval * failures.min(400)).min(MAX_BACKOFF)
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = on_time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// A backup's skipped sweep: the deadline it waits for next, and how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Skip {
    target: Option<i64>,
    pause: Duration,
}

/// Whether a backup skips this sweep: when another node's sweep covered the
/// deadline it waits for. It then waits for the next deadline that sweep
/// saw, plus [`BACKUP_DELAY`] (at most `interval`), by Redis's clock as
/// `clock` (Redis's µs as its last sweep read them, and when) tells it.
fn backup_skip(
    role: Role,
    target: Option<i64>,
    covered: Option<Covered>,
    clock: Option<(Instant, i64)>,
    interval: Duration,
) -> Option<Skip> {
    let (Role::Backup, Some(target), Some(covered)) = (role, target, covered) else {
        return None;
    };
    if covered.through < target {
        return None;
    }
    let next = covered.next.filter(|next| *next > covered.through);
    let pause = match (next, clock) {
        (Some(next), Some((at, redis_us))) => {
            let redis_now = redis_us.saturating_add(at.elapsed().as_micros() as i64);
            let until =
                u64::try_from(next.saturating_mul(1000).saturating_sub(redis_now)).unwrap_or(0);
            (Duration::from_micros(until) + BACKUP_DELAY).min(interval)
        }
        _ => interval,
    };
    Some(Skip {
        target: next,
        pause,
    })
}

/// The role after a sweep: on time once a sweep found work; a backup once a
/// sweep for a deadline that had fallen due found it handled already (by
/// another node, as a rule).
fn next_role(role: Role, target: Option<i64>, swept: &Swept) -> Role {
    if swept.handled > 0 {
        return Role::OnTime;
    }
    let was_due = match (target, swept.now_us) {
        (Some(target), Some(now_us)) => target.saturating_mul(1000) <= now_us,
        _ => false,
    };
    if was_due {
        Role::Backup
    } else {
        role
    }
}

/// What one sweep reported: `{'ok', handled, next deadline or -1, now, now
/// in µs}`, the deadline and `now` in Redis's unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Swept {
    handled: u64,
    /// The earliest deadline left in the set, if any.
    next_due: Option<i64>,
    /// Redis's clock when the sweep ran, in unix µs (`None` if the reply
    /// lacks it; a reply from an effex version before it has `now` in ms
    /// only, and its sweeper waits one interval).
    now_us: Option<i64>,
}

impl Swept {
    fn from_reply(reply: &Reply) -> Self {
        Swept {
            handled: reply.num(0).unwrap_or(0),
            next_due: reply.int(1).ok().filter(|at| *at >= 0),
            now_us: reply.int(3).ok(),
        }
    }
}

/// How long to wait after a sweep: nothing after a full batch (more are
/// due); otherwise until the next deadline's millisecond begins on Redis's
/// clock (to the µs: waiting whole milliseconds from a `now` truncated to
/// one woke the sweeper half a millisecond late on average), but at most
/// `interval` (another node may write an earlier one).
fn pause_after(swept: &Swept, batch: usize, interval: Duration) -> Duration {
    if swept.handled >= batch as u64 {
        return Duration::ZERO;
    }
    let (Some(next_due), Some(now_us)) = (swept.next_due, swept.now_us) else {
        return interval;
    };
    let until_due = next_due.saturating_mul(1000).saturating_sub(now_us);
    match u64::try_from(until_due) {
        Ok(us) if us > 0 => Duration::from_micros(us).min(interval),
        // Already due: see MIN_PAUSE.
        _ => MIN_PAUSE.min(interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(5);

    /// A sweep at `now_ms` and `us` µs into that millisecond.
    fn swept(handled: u64, next_due: Option<i64>, now_ms: i64, us: i64) -> Swept {
        Swept {
            handled,
            next_due,
            now_us: Some(now_ms * 1000 + us),
        }
    }

    #[test]
    fn a_full_batch_sweeps_again_at_once() {
        let pause = pause_after(&swept(1000, Some(1_000), 1_000, 0), 1000, INTERVAL);
        assert_eq!(pause, Duration::ZERO);
    }

    #[test]
    fn a_deadline_within_the_interval_is_waited_for_to_the_microsecond() {
        // 700 µs into ms 1,000: ms 1,002 begins 1.3 ms later, not 2.
        let pause = pause_after(&swept(3, Some(1_002), 1_000, 700), 1000, INTERVAL);
        assert_eq!(pause, Duration::from_micros(1_300));
        let pause = pause_after(&swept(3, Some(1_001), 1_000, 999), 1000, INTERVAL);
        assert_eq!(pause, Duration::from_micros(1));
    }

    #[test]
    fn a_later_or_no_deadline_waits_one_interval() {
        assert_eq!(
            pause_after(&swept(0, Some(60_000), 1_000, 0), 1000, INTERVAL),
            INTERVAL
        );
        assert_eq!(
            pause_after(&swept(0, None, 1_000, 0), 1000, INTERVAL),
            INTERVAL
        );
    }

    #[test]
    fn a_deadline_already_due_never_spins() {
        let pause = pause_after(&swept(2, Some(990), 1_000, 0), 1000, INTERVAL);
        assert_eq!(pause, MIN_PAUSE);
        let pause = pause_after(&swept(2, Some(1_000), 1_000, 500), 1000, INTERVAL);
        assert_eq!(pause, MIN_PAUSE);
    }

    #[test]
    fn a_reply_without_the_clock_waits_one_interval() {
        let old = Swept {
            handled: 1,
            next_due: Some(1_001),
            now_us: None,
        };
        assert_eq!(pause_after(&old, 1000, INTERVAL), INTERVAL);
    }

    #[test]
    fn a_sweep_that_finds_its_due_deadline_handled_makes_a_backup() {
        // Waited for ms 1,002; at 1,002.1 nothing was there: another node swept it.
        let empty = swept(0, Some(1_005), 1_002, 100);
        assert_eq!(next_role(Role::OnTime, Some(1_002), &empty), Role::Backup);
        // An interval's look (no deadline waited for, or one not due) changes nothing.
        assert_eq!(next_role(Role::OnTime, None, &empty), Role::OnTime);
        assert_eq!(next_role(Role::OnTime, Some(1_003), &empty), Role::OnTime);
        assert_eq!(next_role(Role::Backup, Some(1_002), &empty), Role::Backup);
    }

    #[test]
    fn a_sweep_that_finds_work_is_on_time() {
        let found = swept(3, Some(1_005), 1_002, 100);
        assert_eq!(next_role(Role::Backup, Some(1_002), &found), Role::OnTime);
        assert_eq!(next_role(Role::OnTime, Some(1_002), &found), Role::OnTime);
    }

    #[test]
    fn a_backup_skips_a_deadline_another_sweep_covered_and_waits_for_the_next() {
        let clock = Some((Instant::now(), 1_000_000));
        let covered = Some(Covered {
            through: 1_002,
            next: Some(1_004),
        });
        let skip = backup_skip(Role::Backup, Some(1_002), covered, clock, INTERVAL)
            .expect("covered: skipped");
        assert_eq!(skip.target, Some(1_004));
        // ms 1,004 begins at most 4 ms after the clock's reading, then the delay.
        assert!(skip.pause <= INTERVAL, "{:?}", skip.pause);
        assert!(skip.pause > BACKUP_DELAY, "{:?}", skip.pause);
        let far = Some(Covered {
            through: 1_002,
            next: Some(60_000),
        });
        let skip = backup_skip(Role::Backup, Some(1_001), far, clock, INTERVAL).expect("skipped");
        assert_eq!((skip.target, skip.pause), (Some(60_000), INTERVAL));
        let none_left = Some(Covered {
            through: 1_002,
            next: None,
        });
        let skip = backup_skip(Role::Backup, Some(1_002), none_left, clock, INTERVAL);
        assert_eq!(
            skip,
            Some(Skip {
                target: None,
                pause: INTERVAL
            })
        );
    }

    #[test]
    fn a_backup_sweeps_when_nothing_covered_its_deadline() {
        let clock = Some((Instant::now(), 1_000_000));
        let behind = Some(Covered {
            through: 1_001,
            next: Some(1_002),
        });
        assert_eq!(
            backup_skip(Role::Backup, Some(1_002), behind, clock, INTERVAL),
            None
        );
        assert_eq!(
            backup_skip(Role::Backup, Some(1_002), None, clock, INTERVAL),
            None
        );
        assert_eq!(
            backup_skip(Role::Backup, None, behind, clock, INTERVAL),
            None
        );
        // A node on time never skips.
        let covered = Some(Covered {
            through: 1_005,
            next: None,
        });
        assert_eq!(
            backup_skip(Role::OnTime, Some(1_002), covered, clock, INTERVAL),
            None
        );
    }

    #[test]
    fn coverage_keeps_the_latest_sweep_even_when_redis_s_clock_went_back() {
        let coverage = Coverage::default();
        assert_eq!(coverage.latest(), None);
        let at = |through| Covered {
            through,
            next: Some(through + 1),
        };
        coverage.record(at(10));
        assert_eq!(coverage.latest(), Some(at(10)));
        coverage.record(at(8));
        assert_eq!(coverage.latest(), Some(at(8)));
        // A backup waiting for ms 9 then sweeps: nothing covered it.
        let clock = Some((Instant::now(), 8_000));
        assert_eq!(
            backup_skip(Role::Backup, Some(9), coverage.latest(), clock, INTERVAL),
            None
        );
    }

    #[test]
    fn the_reply_is_read_with_its_clock_in_microseconds() {
        use redis::Value;
        let raw = Value::Array(vec![
            Value::SimpleString("ok".to_owned()),
            Value::Int(3),
            Value::Int(1_002),
            Value::Int(1_000),
            Value::Int(1_000_700),
        ]);
        let Ok(Outcome::Ok(reply)) = Outcome::decode(raw) else {
            panic!("an ok reply");
        };
        assert_eq!(Swept::from_reply(&reply), swept(3, Some(1_002), 1_000, 700));
    }
}
