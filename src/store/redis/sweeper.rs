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
//! Idle nodes still look only once per interval.
//!
//! The pauses wake on time ([`on_time`](crate::store::on_time)): tokio's
//! timer alone woke the sweeper about a millisecond after each deadline.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::scripts::{Op, Outcome, Reply};
use super::Shared;
use crate::store::on_time;

/// The longest pause between sweeps while Redis cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The shortest pause after a sweep that left nothing due: deadlines are in
/// whole milliseconds of Redis's clock, so sooner finds nothing new.
const MIN_PAUSE: Duration = Duration::from_millis(1);

/// Sweeps until `stop` turns true (or the store is gone).
pub(super) async fn run(shared: Weak<Shared>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        let pause = match shared.upgrade() {
            None => return,
            Some(shared) => {
                let interval = shared.config.sweep_interval;
                let batch = shared.config.sweep_batch;
                let batch_arg = batch.to_string();
                match shared.run(Op::Sweep, &[batch_arg.as_str()]).await {
                    Ok(Outcome::Ok(reply)) => {
                        if failures > 0 {
                            shared.metrics.redis_reconnected();
                        }
                        failures = 0;
                        pause_after(&Swept::from_reply(&reply), batch, interval)
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
        };
        tokio::select! {
            _ = on_time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// What one sweep reported: `{'ok', handled, next deadline or -1, now}`,
/// both times in Redis's unix ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Swept {
    handled: u64,
    /// The earliest deadline left in the set, if any.
    next_due: Option<i64>,
    /// Redis's clock when the sweep ran (`None` if the reply lacks it).
    now: Option<i64>,
}

impl Swept {
    fn from_reply(reply: &Reply) -> Self {
        Swept {
            handled: reply.num(0).unwrap_or(0),
            next_due: reply.int(1).ok().filter(|at| *at >= 0),
            now: reply.int(2).ok(),
        }
    }
}

/// How long to wait after a sweep: nothing after a full batch (more are
/// due); otherwise until the next deadline, but at most `interval` (another
/// node may write an earlier one) and at least [`MIN_PAUSE`].
fn pause_after(swept: &Swept, batch: usize, interval: Duration) -> Duration {
    if swept.handled >= batch as u64 {
        return Duration::ZERO;
    }
    let (Some(next_due), Some(now)) = (swept.next_due, swept.now) else {
        return interval;
    };
    let until_due = u64::try_from(next_due.saturating_sub(now)).unwrap_or(0);
    // The upper bound is at least the lower one, so `clamp` cannot panic.
    Duration::from_millis(until_due).clamp(MIN_PAUSE, interval.max(MIN_PAUSE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(5);

    fn swept(handled: u64, next_due: Option<i64>, now: i64) -> Swept {
        Swept {
            handled,
            next_due,
            now: Some(now),
        }
    }

    #[test]
    fn a_full_batch_sweeps_again_at_once() {
        let pause = pause_after(&swept(1000, Some(1_000), 1_000), 1000, INTERVAL);
        assert_eq!(pause, Duration::ZERO);
    }

    #[test]
    fn a_deadline_within_the_interval_is_waited_for_exactly() {
        let pause = pause_after(&swept(3, Some(1_002), 1_000), 1000, INTERVAL);
        assert_eq!(pause, Duration::from_millis(2));
    }

    #[test]
    fn a_later_or_no_deadline_waits_one_interval() {
        assert_eq!(
            pause_after(&swept(0, Some(60_000), 1_000), 1000, INTERVAL),
            INTERVAL
        );
        assert_eq!(
            pause_after(&swept(0, None, 1_000), 1000, INTERVAL),
            INTERVAL
        );
    }

    #[test]
    fn a_deadline_already_due_never_spins() {
        let pause = pause_after(&swept(2, Some(990), 1_000), 1000, INTERVAL);
        assert_eq!(pause, MIN_PAUSE);
    }

    #[test]
    fn a_reply_without_the_clock_waits_one_interval() {
        let old = Swept {
            handled: 1,
            next_due: Some(1_001),
            now: None,
        };
        assert_eq!(pause_after(&old, 1000, INTERVAL), INTERVAL);
    }
}
