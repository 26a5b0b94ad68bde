//! The hub's handle on one socket session: its mailbox and the accounting
//! of what waits for it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Command, Mailbox, Outgoing, SessionId};
use prometheus::IntGauge;
use serde::Serialize;
use serde_json::value::RawValue;

/// How much may wait for one session (see [`SessionLink`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueBounds {
    /// Pushes sent by the hub and not yet written.
    pub(crate) pushes: usize,
    /// Bytes of pushes sent by the hub and not yet acknowledged (or dropped).
    pub(crate) bytes: usize,
}

/// The hub's handle on one socket session: its mailbox and its queue counts.
#[derive(Debug)]
pub(crate) struct SessionLink {
    pub(crate) id: SessionId,
    mailbox: Mailbox,
    /// Pushes sent by the hub and not yet written by the session.
    queued: AtomicUsize,
    /// Bytes of pushes sent by the hub and not yet acknowledged or dropped.
    queued_bytes: AtomicUsize,
    /// Set once the queue overflowed: the session is closing.
    overflowed: AtomicBool,
    /// `effex_session_queue_depth`: every session's `queued` together.
    depth: IntGauge,
}

impl SessionLink {
    /// The link of session `id`; its queued pushes count in `depth` too.
    pub(crate) fn new(id: SessionId, mailbox: Mailbox, depth: IntGauge) -> Self {
        SessionLink {
            id,
            mailbox,
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
            depth,
        }
    }

    /// The session wrote (or dropped) this push: it no longer waits.
    pub(crate) fn dequeued(&self, _push: &Outgoing) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.depth.dec();
    }

    /// The session no longer holds this push (acknowledged or dropped).
    pub(crate) fn released(&self, push: &Outgoing) {
        self.queued_bytes.fetch_sub(push.bytes, Ordering::Relaxed);
    }

    /// Counts a push against `bounds` before it is handed to the session,
    /// unless that exceeds them: then the session is told to close with
    /// 1013, and false. One push is always accepted while the session
    /// holds no bytes, so a single large value never closes a socket by
    /// itself.
    pub(crate) fn admit(&self, out: &Outgoing, bounds: QueueBounds) -> bool {
        if self.overflowed.load(Ordering::Relaxed) {
            return false;
        }
        let count = self.queued.fetch_add(1, Ordering::Relaxed);
        let bytes = self.queued_bytes.fetch_add(out.bytes, Ordering::Relaxed);
        if count >= bounds.pushes || (bytes > 0 && bytes.saturating_add(out.bytes) > bounds.bytes) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.queued_bytes.fetch_sub(out.bytes, Ordering::Relaxed);
            self.overflowed.store(true, Ordering::Relaxed);
            let _ = self.mailbox.send(Command::Overflow);
            return false;
        }
        self.depth.inc();
        true
    }

    /// Puts a command in the session's mailbox; false when the session is
    /// gone.
    pub(crate) fn send(&self, command: Command) -> bool {
        self.mailbox.send(command).is_ok()
    }

    /// Like [`SessionLink::send`] but without waking the session: the
    /// caller wakes it ([`SessionLink::wake`]) once it has queued a batch.
    pub(crate) fn send_without_wake(&self, command: Command) -> bool {
        self.mailbox.send_without_wake(command).is_ok()
    }

    /// Wakes the session to handle what was queued without a wake.
    pub(crate) fn wake(&self) {
        self.mailbox.wake();
    }

    /// What a replay may still queue for this session: half of each bound,
    /// less what already waits (the other half stays free for live pushes).
    pub(crate) fn replay_room(&self, bounds: QueueBounds) -> (usize, usize) {
        (
            (bounds.pushes / 2).saturating_sub(self.queued.load(Ordering::Relaxed)),
            (bounds.bytes / 2).saturating_sub(self.queued_bytes.load(Ordering::Relaxed)),
        )
    }

    /// Whether the session has ended (its mailbox is closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.mailbox.is_closed()
    }
}

impl Drop for SessionLink {
    /// Pushes still queued when the session and the hub both let go were
    /// never written: they leave the total depth with the link.
    fn drop(&mut self) {
        let left = i64::try_from(*self.queued.get_mut()).unwrap_or(i64::MAX);
        self.depth.sub(left);
    }
}

/// The answer to a session's call, as its mailbox takes it.
pub(crate) fn reply_command(ack_id: u64, reply: &impl Serialize) -> Command {
    let body = serde_json::value::to_raw_value(reply).unwrap_or_else(|e| {
        // Our own reply types always serialize; say so if one ever does not.
        log::error!("hub: a reply did not serialize: {e}");
        RawValue::from_string(r#"{"ok":false,"code":500,"error":"internal error"}"#.into())
            .expect("valid JSON")
    });
    Command::Reply { ack_id, body }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use super::*;
    use crate::protocol::messages::EventKind;
    use crate::protocol::push::PushHead;
    use crate::server::outlet::{PushEvent, WatchView};

    fn push(bytes: usize) -> Outgoing {
        Outgoing {
            view: Arc::new(WatchView {
                watch: 1,
                head: PushHead::new("w1", EventKind::Update, "i1", None),
                message: None,
                with_value: false,
                live: Arc::new(AtomicBool::new(true)),
                key_valid_till: crate::protocol::time::UnixMillis::MAX,
            }),
            event: Arc::new(PushEvent {
                seq: 1,
                at: crate::protocol::time::UnixMillis::from_millis(1),
                value: None,
            }),
            last: false,
            bytes,
            window_end: false,
        }
    }

    #[test]
    fn a_push_over_either_bound_closes_the_session_once() {
        let (tx, mut rx) = super::super::mailbox();
        let depth = crate::server::metrics::loose_gauge();
        let link = SessionLink::new(1, tx, depth.clone());
        let bounds = QueueBounds {
            pushes: 2,
            bytes: 100,
        };
        // One push is always taken while nothing is held, however large.
        assert!(link.admit(&push(500), bounds));
        link.dequeued(&push(500));
        link.released(&push(500));
        assert!(link.admit(&push(60), bounds));
        assert!(!link.admit(&push(60), bounds), "over the byte bound");
        assert!(matches!(rx.try_recv(), Some(Command::Overflow)));
        // Closing: nothing more is taken, and no second Overflow is sent.
        assert!(!link.admit(&push(1), bounds));
        assert!(rx.try_recv().is_none());
        assert_eq!(link.replay_room(bounds), (0, 0));
        // One push is queued and never written: it leaves the depth with the link.
        assert_eq!(depth.get(), 1);
        drop(link);
        assert_eq!(depth.get(), 0);
    }
}
