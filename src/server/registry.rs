//! The live-session registry and the server's counters: which sessions exist,
//! which push id belongs to which session, and the shutdown flag. Shared by all
//! actix workers; it must not do I/O or hold its lock across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::hub::Outgoing;
use crate::protocol::messages::Ended;

/// A session's mailbox (see [`Command`] for why it is unbounded).
pub(crate) type Mailbox = mpsc::UnboundedSender<Command>;

/// What the server tells a session from outside (its mailbox's messages);
/// the session's `select!` loop is the one place that receives them.
///
/// The mailbox is an unbounded channel whose contents are bounded by their
/// senders: control commands are a handful per session; the hub's replies
/// answer watch calls, of which a session has at most
/// `session::MAX_HUB_CALLS` in flight; and the hub's pushes are counted
/// against [`ServerConfig::max_queued_pushes`](super::ServerConfig::max_queued_pushes)
/// until the session writes them (see the `hub` module). Unbounded, so that
/// the hub never waits on one slow session while others wait for their pushes.
#[derive(Debug)]
pub(crate) enum Command {
    /// A newer connection passed with this session's push id: send `41`, close 1000.
    Replaced,
    /// The server is stopping: send `41`, close 1000.
    Shutdown,
    /// The hub's answer to a `watch` or `unwatch` call.
    Reply {
        ack_id: u64,
        body: Box<serde_json::value::RawValue>,
    },
    /// A push for one of this session's watches.
    Push(Outgoing),
    /// Too many pushes (or bytes of pushes) wait for this session: the hub
    /// queues no more; close the socket (1013) so that the client
    /// reconnects and replays.
    Overflow,
    /// The hub ended one of this session's watches: send
    /// `["ended", {watchable, code, error}]`.
    Ended(Ended),
    /// The hub task died: no more pushes can come; close with 1011.
    HubFailed,
}

/// A process-unique session number (not the sids the peer sees).
pub(crate) type SessionId = u64;

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

/// Delivers a control command without ever blocking the caller (a session
/// that has ended simply does not get it).
pub(crate) fn send_command(mailbox: &Mailbox, command: Command) {
    let _ = mailbox.send(command);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_ids_follow_the_latest_pass() {
        let registry = Registry::new();
        let (a_tx, _a_rx) = mpsc::unbounded_channel();
        let (b_tx, _b_rx) = mpsc::unbounded_channel();
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
        let (c_tx, _c_rx) = mpsc::unbounded_channel();
        assert!(registry.open(c_tx).is_none());
        registry.close(b, Some("p"));
        assert_eq!(registry.active(), 0);
    }
}
