//! The link between the hub and its outlets: what the hub hands a socket
//! session (its mailbox and [`Command`]s, with the queue accounting of
//! [`SessionLink`]) or a webhook watch's delivery task ([`WebhookLink`]),
//! the push itself ([`Outgoing`]: a watch's [`WatchView`] and a shared
//! [`PushEvent`], framed by [`crate::protocol::push`]), and what the outlets
//! report back ([`Report`]).
//!
//! The hub, the session registry, the sessions and the webhook routes all
//! depend on this module, and it on none of them: the hub reaches an outlet
//! only through these handles, and an outlet reaches the hub only through
//! a [`Reporter`].

mod mailbox;
mod push;
mod session;
mod webhook;

use std::sync::Arc;

pub(crate) use self::mailbox::{mailbox, Mailbox, MailboxReceiver};
pub(crate) use self::push::{Outgoing, PushEvent, WatchView};
pub(crate) use self::session::{reply_command, QueueBounds, SessionLink};
#[cfg(test)]
pub(crate) use self::webhook::{default_tls, delivery_client};
pub(crate) use self::webhook::{spawn_delivery, WebhookLink, WebhookSettings, WebhookSpec};
use crate::protocol::messages::Ended;

/// A watch's number inside the hub (the `watchable` string embeds it).
pub(crate) type WatchId = u64;

/// A process-unique session number (not the sids the peer sees).
pub(crate) type SessionId = u64;

/// What the server tells a session from outside (its mailbox's messages);
/// the session's `select!` loop is the one place that receives them.
///
/// The mailbox ([`Mailbox`]) is an unbounded queue whose contents are bounded
/// by their senders: control commands are a handful per session; the hub's replies
/// answer watch calls, of which a session has at most
/// `session::MAX_HUB_CALLS` in flight; and the hub's pushes are counted
/// against [`ServerConfig::max_queued_pushes`](super::ServerConfig::max_queued_pushes)
/// until the session writes them ([`SessionLink`]). Unbounded, so that the
/// hub never waits on one slow session while others wait for their pushes.
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

/// Delivers a control command without ever blocking the caller (a session
/// that has ended simply does not get it).
pub(crate) fn send_command(mailbox: &Mailbox, command: Command) {
    let _ = mailbox.send(command);
}

/// What a webhook outlet tells the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// The watch's final push was acknowledged: the watch ends.
    FinalAcked { watch: WatchId },
    /// The webhook spent its retry budget: the watch ends.
    WebhookFailed { watch: WatchId },
}

/// How an outlet reports to the hub (without keeping the hub alive or
/// knowing its type).
#[derive(Clone)]
pub(crate) struct Reporter(Arc<dyn Fn(Report) + Send + Sync>);

impl Reporter {
    pub(crate) fn new(report: impl Fn(Report) + Send + Sync + 'static) -> Self {
        Reporter(Arc::new(report))
    }

    pub(crate) fn report(&self, report: Report) {
        (self.0)(report);
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}
