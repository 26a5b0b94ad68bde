//! The live-session registry and the server's counters: which sessions exist,
//! which push id belongs to which session, and the shutdown flag. Shared by all
//! actix workers; it must not do I/O or hold its lock across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

pub(crate) use super::outlet::{send_command, Command, Mailbox, SessionId};

/// Counters behind [`ServerStats`](super::ServerStats).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_opened: AtomicU64,
    pub(crate) passes_ok: AtomicU64,
    pub(crate) passes_failed: AtomicU64,
}

#[derive(Default)]
struct Inner {
    next_id: SessionId,
    shutting_down: bool,
    /// The hub died: no new session could watch anything.
    hub_failed: bool,
    sessions: HashMap<SessionId, Mailbox>,
    push_ids: HashMap<String, SessionId>,
}

/// Every live session's mailbox, and the push id → session map.
///
/// A `Mutex` is fine: it is taken when a socket opens, passes or ends, never
/// on the push path, and never across an await.
pub(crate) struct Registry {
    inner: Mutex<Inner>,
    /// The number of live sessions; `stop` waits for it to reach 0.
    active: watch::Sender<usize>,
    pub(crate) counters: Counters,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            active: watch::Sender::new(0),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain maps behind,
        // still consistent enough to keep serving.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new session; `None` once the server is shutting down
    /// or its hub has failed.
    pub(crate) fn open(&self, mailbox: Mailbox) -> Option<SessionId> {
        let mut inner = self.lock();
        if inner.shutting_down || inner.hub_failed {
            return None;
        }
        inner.next_id += 1;
        let id = inner.next_id;
        inner.sessions.insert(id, mailbox);
        self.active.send_modify(|n| *n += 1);
        self.counters
            .connections_opened
            .fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Makes `id` the owner of `push_id`; returns the mailbox of the session
    /// that owned it before (to be told it was replaced), if any.
    pub(crate) fn claim_push_id(&self, push_id: &str, id: SessionId) -> Option<Mailbox> {
        let mut inner = self.lock();
        let previous = inner.push_ids.insert(push_id.to_owned(), id)?;
        if previous == id {
            return None;
        }
        inner.sessions.get(&previous).cloned()
    }

    /// Forgets a session that ended, and its push id if it still owns it.
    pub(crate) fn close(&self, id: SessionId, push_id: Option<&str>) {
        let mut inner = self.lock();
        if inner.sessions.remove(&id).is_none() {
            return;
        }
        if let Some(push_id) = push_id {
            if inner.push_ids.get(push_id) == Some(&id) {
                inner.push_ids.remove(push_id);
            }
        }
        self.active.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Refuses new sessions from now on and returns every live mailbox.
    pub(crate) fn begin_shutdown(&self) -> Vec<Mailbox> {
        let mut inner = self.lock();
        inner.shutting_down = true;
        inner.sessions.values().cloned().collect()
    }

    /// Refuses new sessions from now on (the hub died) and returns every
    /// live mailbox.
    pub(crate) fn hub_failed(&self) -> Vec<Mailbox> {
        let mut inner = self.lock();
        inner.hub_failed = true;
        inner.sessions.values().cloned().collect()
    }

    /// Whether [`Registry::begin_shutdown`] was called.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.lock().shutting_down
    }

    /// The number of live sessions.
    pub(crate) fn active(&self) -> usize {
        *self.active.borrow()
    }

    /// Waits until no session is live, at most `timeout`; true if none is.
    pub(crate) async fn wait_idle(&self, timeout: Duration) -> bool {
        let mut rx = self.active.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_ids_follow_the_latest_pass() {
        let registry = Registry::new();
        let (a_tx, _a_rx) = super::super::outlet::mailbox();
        let (b_tx, _b_rx) = super::super::outlet::mailbox();
        let a = registry.open(a_tx).unwrap();
        let b = registry.open(b_tx).unwrap();
        assert!(registry.claim_push_id("p", a).is_none());
        assert!(registry.claim_push_id("p", a).is_none());
        assert!(registry.claim_push_id("p", b).is_some());
        // The replaced session ending does not free b's push id.
        registry.close(a, Some("p"));
        assert!(registry.claim_push_id("p", b).is_none());
        assert_eq!(registry.active(), 1);
        assert_eq!(registry.begin_shutdown().len(), 1);
        let (c_tx, _c_rx) = super::super::outlet::mailbox();
        assert!(registry.open(c_tx).is_none());
        registry.close(b, Some("p"));
        assert_eq!(registry.active(), 0);
    }
}
