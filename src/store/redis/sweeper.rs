//! The expiry sweeper: one task per store that runs the `sweep` script every
//! `sweep_interval` (at once again while a sweep found a full batch). The
//! script claims due entries of the shared deadline set inside one atomic
//! step, so every node sweeps and each deadline is handled exactly once,
//! with no leader; a node that dies loses nothing, the others sweep on.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::scripts::Outcome;
use super::Shared;

/// The longest pause between sweeps while Redis cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Sweeps until `stop` turns true (or the store is gone).
pub(super) async fn run(shared: Weak<Shared>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        let pause = match shared.upgrade() {
            None => return,
            Some(shared) => {
                let interval = shared.config.sweep_interval;
                let batch = shared.config.sweep_batch.to_string();
                match shared.run(&shared.scripts.sweep, &[batch.as_str()]).await {
                    Ok(Outcome::Ok(reply)) => {
                        failures = 0;
                        let handled = reply.num(0).unwrap_or(0);
                        if handled >= shared.config.sweep_batch as u64 {
                            Duration::ZERO // more are due
                        } else {
                            interval
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
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
