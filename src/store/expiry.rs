//! The expiry clock: ONE tokio task per store that sleeps until the soonest
//! deadline (waking on time: [`on_time`](super::on_time)), is woken early
//! when a sooner one is scheduled, and asks the store to expire what is due.
//! Owns no items: the store keeps its own ordered deadline sets and does the
//! expiring in [`Expire::tick`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::Instant;

/// What the clock drives.
pub(crate) trait Expire: Send + Sync + 'static {
    /// Expires everything due at `now` and returns the next deadline, if any.
    /// Must not block for long: it runs on the runtime.
    fn tick(&self, now: Instant) -> Option<Instant>;
}

/// How a store and its clock talk: the store calls [`Wake::scheduled`] after
/// adding a deadline, and [`Wake::shutdown`] when it is dropped.
#[derive(Debug)]
pub(crate) struct Wake {
    notify: Notify,
    /// The deadline the clock sleeps until, in ns since `epoch`; `u64::MAX`
    /// while it scans or has nothing to wait for, so that every new deadline
    /// then wakes it (no deadline slips in between a scan and the sleep).
    next: AtomicU64,
    epoch: Instant,
}

impl Wake {
    pub(crate) fn new() -> Self {
        Wake {
            notify: Notify::new(),
            next: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// Tells the clock about a new deadline; wakes it only when the deadline is
    /// sooner than the one it sleeps until. Call after the deadline is in the
    /// store's deadline set (and its lock released).
    pub(crate) fn scheduled(&self, deadline: Instant) {
        if self.nanos(deadline) < self.next.load(Ordering::SeqCst) {
            self.notify.notify_one();
        }
    }

    /// Wakes the clock so that it sees the store is gone and ends.
    pub(crate) fn shutdown(&self) {
        self.notify.notify_one();
    }
}

/// The clock task. Holds the store only weakly (and only during a tick), so
/// it ends as soon as the store is dropped.
pub(crate) async fn run<T: Expire>(store: Weak<T>, wake: Arc<Wake>) {
    loop {
        let next = {
            let Some(store) = store.upgrade() else {
                return;
            };
            wake.next.store(u64::MAX, Ordering::SeqCst);
            store.tick(Instant::now())
        };
        match next {
            Some(deadline) => {
                wake.next.store(wake.nanos(deadline), Ordering::SeqCst);
                tokio::select! {
                    _ = super::on_time::sleep_until(deadline) => {}
                    _ = wake.notify.notified() => {}
                }
            }
            // `next` stays u64::MAX: the first deadline scheduled wakes us.
            None => wake.notify.notified().await,
        }
    }
}
