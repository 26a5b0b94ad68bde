//! One push on its way to an outlet: the watch's view and the event.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::WatchId;
use crate::protocol::push::{self as frame, PushBody, PushHead};
use crate::protocol::time::UnixMillis;

/// One event as every push of it shares it.
#[derive(Debug)]
pub(crate) struct PushEvent {
    pub(crate) seq: u64,
    pub(crate) at: UnixMillis,
    /// The new value as JSON text (update events, when a watch wants it).
    pub(crate) value: Option<Box<str>>,
}

/// A watch's own part of its push objects, serialized once per (re)watch.
#[derive(Debug)]
pub(crate) struct WatchView {
    pub(crate) watch: WatchId,
    /// `{"watchable":…,"event":…,"id":…[,"alias":…]`
    pub(crate) head: PushHead,
    /// The `message`, as JSON text.
    pub(crate) message: Option<Box<str>>,
    pub(crate) with_value: bool,
    /// Cleared when the watch ends (`unwatch`, the webhook DELETE, `ended`,
    /// shutdown): its queued pushes are dropped.
    pub(crate) live: Arc<AtomicBool>,
    /// When the watch's key expires: from then on no push of it leaves
    /// (the hub ends the watch with `ended` 401 at that moment).
    pub(crate) key_valid_till: UnixMillis,
}

impl WatchView {
    /// Whether a push of this watch may leave now: the watch has not ended
    /// and its key has not expired. Sessions and webhook deliverers ask
    /// right before they write, so authorization holds at send time.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed) && UnixMillis::now() < self.key_valid_till
    }

    /// No push of this watch leaves from now on (also those queued).
    pub(crate) fn cancel(&self) {
        self.live.store(false, Ordering::Relaxed);
    }

    fn body<'a>(&'a self, event: &'a PushEvent) -> PushBody<'a> {
        PushBody {
            seq: event.seq,
            at: event.at,
            message: self.message.as_deref(),
            value: event.value.as_deref().filter(|_| self.with_value),
        }
    }

    /// The bytes of this watch's push object of `event`, give or take.
    pub(crate) fn object_len(&self, event: &PushEvent) -> usize {
        frame::object_len(&self.head, &self.body(event))
    }
}

/// One push on its way: the watch's view, the event, and whether it is the
/// watch's final push (its end waits for the ack).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) view: Arc<WatchView>,
    pub(crate) event: Arc<PushEvent>,
    pub(crate) last: bool,
    /// The push object's size, give or take: counted against
    /// [`QueueBounds::bytes`](super::QueueBounds::bytes) until the push is
    /// acknowledged or dropped.
    pub(crate) bytes: usize,
    /// The last push of a replay window: its ack asks the hub for the next
    /// window.
    pub(crate) window_end: bool,
}

impl Outgoing {
    /// The Engine.IO text of this push with `ack_id`:
    /// `42<ack id>["push",{…}]`.
    pub(crate) fn frame(&self, ack_id: u64) -> String {
        frame::frame(ack_id, &self.view.head, &self.view.body(&self.event))
    }

    /// The push object alone (a webhook's request body).
    pub(crate) fn object(&self) -> String {
        let body = self.view.body(&self.event);
        let mut text = String::with_capacity(frame::object_len(&self.view.head, &body));
        frame::write_object(&self.view.head, &body, &mut text);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::EventKind;

    fn view(message: Option<&str>, with_value: bool, key_valid_till: UnixMillis) -> WatchView {
        WatchView {
            watch: 1,
            head: PushHead::new("w1", EventKind::Update, "i1", None),
            message: message.map(Into::into),
            with_value,
            live: Arc::new(AtomicBool::new(true)),
            key_valid_till,
        }
    }

    #[test]
    fn an_expired_key_or_a_cancel_stops_pushes_at_send_time() {
        assert!(!view(None, false, UnixMillis::now()).is_live());
        let valid = view(None, false, UnixMillis::MAX);
        assert!(valid.is_live());
        valid.cancel();
        assert!(!valid.is_live());
    }

    #[test]
    fn the_value_goes_only_to_watches_that_want_it() {
        let event = Arc::new(PushEvent {
            seq: 2,
            at: UnixMillis::from_millis(3),
            value: Some("[1]".into()),
        });
        let push = |view: WatchView| Outgoing {
            view: Arc::new(view),
            event: event.clone(),
            last: false,
            bytes: 0,
            window_end: false,
        };
        let with: serde_json::Value =
            serde_json::from_str(&push(view(Some("{}"), true, UnixMillis::MAX)).object())
                .expect("JSON");
        assert_eq!(with["value"], serde_json::json!([1]));
        assert_eq!(with["message"], serde_json::json!({}));
        let without: serde_json::Value =
            serde_json::from_str(&push(view(None, false, UnixMillis::MAX)).object()).expect("JSON");
        assert!(without.get("value").is_none() && without.get("message").is_none());
    }
}
