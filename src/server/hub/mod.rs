//! The hub: the watch registry, the fan-out of store events to watches, the
//! replay of logged events (`after`), alias following and the end of
//! watches; it must not touch sockets or HTTP (sessions and the webhook
//! deliverers do the writing) and owns no item state (the store does).
//!
//! # Design
//!
//! **One task owns every watch.** The hub is a single task (spawned on the
//! actix System that started the server) that alone reads and changes the
//! watch maps, so they need no lock at all: sessions and the REST side talk
//! to it only through its request channel ([`HubHandle`]), and it answers
//! through the sessions' mailboxes ([`SessionLink`]) or a oneshot. Sessions
//! never touch the maps, so nothing on the push path takes a lock shared by
//! sessions.
//!
//! **Flow of one event.** The hub consumes [`Store::subscribe`] in seq
//! order (item events, and alias re-points in their place among them). Per event it looks up the item in `by_item` (one hash lookup), takes
//! the list of that item's watches of that kind, and for each *active* one
//! sends a `Push` command into its session's mailbox: the cost per event is
//! one lookup plus the watchers of that one item. The event (seq, at and, for
//! `update`, the value serialized once) is shared by every push of it
//! ([`PushEvent`] in an `Arc`); each watch's own part of the push object
//! (`watchable`, `event`, `id`, `alias`, `message`) is serialized once per
//! watch (re)registration ([`WatchView`]). The session only glues
//! `42<ack id>["push",` + view + event + `}]` together when it writes.
//!
//! **The store is never awaited in the loop.** A slow store must not stall
//! fan-out, so every store call the hub needs — a `watch`'s check and
//! backlog, a replay window, an alias re-check, the catch-up after a lag —
//! runs in a task beside the loop (`beside`) and reports
//! back on the hub's own channel. Two things keep that invisible to clients:
//! the events the hub handles while a call is out are kept (`recent`,
//! bounded) and, when it reports back, those of its item are applied to its
//! watch in seq order above its cursor (nothing lost, nothing doubled); and
//! what the hub sends the calling *session* meanwhile waits (`hold`), so
//! that session sees its messages in the order a hub that waited would have
//! sent them, while every other session goes on at once.
//!
//! **Modules.** `watches` is the watch bookkeeping (a plain synchronous
//! type), `beside` the store calls, `recent` and `hold` the two buffers
//! above; the link to the outlets (session mailboxes, their queue
//! accounting, webhook deliveries) is the `outlet` module's, and push frames
//! are written by [`crate::protocol::push`].
//!
//! **Lag.** If the broadcast receiver lags, the hub catches up from the
//! store's log: for every watched item it reads (beside the loop) the events
//! after the last seq it handled (with a key of one of that item's watches),
//! and it resolves every watched alias again (re-points have no log: one the
//! lag dropped is applied as if made at the last seq handled, before the
//! events read);
//! live events wait in the broadcast channel until they are handled, in seq
//! order; the store calls out when the lag happened catch up from the log
//! too. Events are never lost, only their `value` may be missing (the log
//! keeps no values: a replayed `update` carries the value only when it is
//! still the item's current one).
//!
//! **Active and dormant watches.** A socket watch is *active* while the session
//! it was last (re)registered on is alive. When that session ends, its
//! watches become *dormant*: no live pushes (a reconnected client re-watches
//! with `after` and gets the missed events by replay, which also keeps each
//! watch's seq order intact), and after [`ServerConfig::watch_grace`] without
//! a re-watch they are forgotten. A push id that reconnected but has not
//! re-watched yet gets nothing for that watch either.
//!
//! **Watch and replay without duplicates.** A `watch`'s store part runs
//! beside the hub: `check_read`, then the backlog (`Store::events` after
//! `after`); then the hub registers it, and the ack (`{"ok":true,"watchable",
//! "seq","gap"}`) goes to the session *before* the backlog's pushes, then the
//! live events of its item the hub handled meanwhile.
//! Each watch keeps a cursor (the last seq queued for it) and a live event is
//! queued only when its seq is above the cursor, so an event that is both in
//! the backlog and still in the broadcast channel goes out once, and
//! backlog-then-live is in seq order. Without `after` the cursor starts at the
//! store's latest seq (the ack's `seq`): live events only. Watches are
//! idempotent per (push id, event, target, key), where the target is the item
//! id for a watch made by id and the alias name for a watch made by alias (so
//! an alias watch and a direct watch of the item it points at are two
//! watches); the latest call's `message` and `withValue` apply to pushes queued
//! after it.
//!
//! **End of watches.** On an item's `remove`/`expire`, its watches of that kind
//! get the final push and end once it is acknowledged (the session reports the
//! ack); its other watches end silently (pushes already queued still go out).
//! A re-watch of a gone item is 404 unless `after` is below the final event of
//! that kind: then that final push is replayed and the watch ends once acked.
//!
//! **Aliases.** A watch made on an alias follows it. Every re-point reaches
//! the hub on the store's subscription ([`StoreEvent::AliasMoved`], with
//! `since`, the store's latest seq at the re-point), in its place among the
//! item events, whoever made it: REST `PUT /aliases`, a write with an alias,
//! the application on [`ServerHandle::store`], or another node on the same
//! Redis. The alias's watches leave the old item at once (none of its
//! events after the re-point is pushed to them), are re-checked beside the
//! loop, and then get the new item's events after `since` (from the log, and
//! from what the hub handled meanwhile, above the watch's cursor).
//!
//! **Authorization at send time.** `check_read` at `watch` time is not the
//! end of it. Each watch remembers when its key expires (`key_valid_till`
//! from `check_read`), and [`WatchView::is_live`] — asked by the session
//! right before it writes a push, and by the webhook deliverer before each
//! attempt — is false from that moment: no push leaves with an expired key.
//! The hub also keeps a timer on the soonest key deadline and ends such
//! watches then, with `["ended", {watchable, code: 401, error}]` to the
//! session (protocol.md §2.6). When an alias moves, every watch following it
//! is checked again (`check_read` of its key against the new item) before
//! it follows; a key that may not read the new item ends the watch with
//! `ended` 403, so it never sees that item's events or values. Ending a
//! watch clears its view's `live` flag *before* the `ended` is queued, so no
//! push of it can be written after the `ended`.
//!
//! **Bounds.** Pushes bound for a session are counted from the hub's send
//! until the session writes them ([`ServerConfig::max_queued_pushes`]), and
//! their bytes until the client acknowledges them
//! ([`ServerConfig::max_queued_bytes`]; one push is always accepted while
//! the session holds none, so one large value cannot close a socket by
//! itself). Above either bound the hub stops queueing to that session and
//! tells it to close (1013 "try again later"), so nothing after the dropped
//! push is ever written and the client's replay from its last handled seq
//! loses nothing. Replayed pushes count too, and so a replay goes out in
//! *windows*: each takes at most half of each bound (less what already
//! waits; at least one push), its last push carries `window_end`, and that
//! push's ack ([`Request::ReplayMore`]) makes the hub read the next window
//! from the log after the watch's cursor. Meanwhile the watch takes no live
//! pushes (they are in the log, and come in the window that reaches them),
//! which keeps seq order. So a backlog of any size replays fully without
//! ever overflowing the queue by itself: a reconnect cannot loop on 1013.
//! Watch calls in flight from one session to the hub are bounded by the
//! session (429). A webhook watch whose queue overflows is ended and logged.
//!
//! **Quotas** (each a [`ServerConfig`] field): watches per push id (a new
//! watch over it is 429), push ids held offline (the one offline longest is
//! forgotten: its client re-watches with `after`), webhook watches per key
//! (429; an identical (key, item or alias, event, URL) webhook is the same
//! watch, and its latest `message` applies), and a watch `message`'s size
//! (413). Messages are kept as the JSON text the client sent.
//!
//! **Supervision.** The hub runs as its own task; [`supervise`] awaits it.
//! It ends normally only on [`Request::Shutdown`], which cancels every
//! watch (webhook deliveries stop, also mid-retry). Any other end (a panic)
//! is logged, marks the hub failed (`GET /ready` answers 503), refuses new
//! push sockets and closes every live one with 1011: a client is told
//! rather than left on a socket that heartbeats but never pushes. The hub
//! is not restarted in place: its watches lived in the task that died, and
//! rebuilding them would need the sessions' watch calls again; the
//! operator's supervisor restarts the process on `/ready` 503, and clients
//! reconnect and replay with `after`.
//!
//! [`ServerConfig`]: super::ServerConfig
//! [`ServerConfig::watch_grace`]: super::ServerConfig::watch_grace
//! [`ServerConfig::max_queued_pushes`]: super::ServerConfig::max_queued_pushes
//! [`ServerConfig::max_queued_bytes`]: super::ServerConfig::max_queued_bytes
//! [`ServerHandle::store`]: super::ServerHandle::store
//! [`StoreEvent::AliasMoved`]: crate::store::StoreEvent::AliasMoved

mod beside;
mod hold;
mod recent;
mod watches;

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use self::beside::{AliasDone, Done, WatchDone, WebhookDone};
use self::hold::{CallId, Holds};
use self::recent::{Recent, Ticket};
use self::watches::{Entry, Head, IdemKey, Sink, Watches, WebhookKey};
use super::metrics::Metrics;
use super::outlet::{
    self, reply_command, send_command, Command, PushEvent, QueueBounds, Report, Reporter,
    SessionId, WatchView, WebhookLink, WebhookSettings, WebhookSpec,
};
pub(crate) use super::outlet::{Outgoing, SessionLink, WatchId};
use super::{ServerConfig, Shared};
use crate::protocol::messages::{Empty, Ended, Failure, Success, Watch, WatchOk};
use crate::protocol::time::UnixMillis;
use crate::store::{
    Event, EventKind, EventQuery, EventsPage, ItemId, ItemRef, Store, StoreError, StoreEvent,
};

/// The hub's settings, copied out of the server config.
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    pub(crate) queue: QueueBounds,
    pub(crate) watch_grace: Duration,
    pub(crate) webhook: WebhookSettings,
    pub(crate) max_watches_per_push_id: usize,
    pub(crate) max_offline_push_ids: usize,
    pub(crate) max_webhooks_per_key: usize,
    pub(crate) max_message_size: usize,
    /// The server's series: the hub counts watches and replayed pushes.
    pub(crate) metrics: Arc<Metrics>,
}

impl HubSettings {
    /// The hub's part of `config`, counting into `metrics`.
    pub(crate) fn new(config: &ServerConfig, metrics: Arc<Metrics>) -> Self {
        HubSettings {
            queue: QueueBounds {
                pushes: config.max_queued_pushes,
                bytes: config.max_queued_bytes,
            },
            watch_grace: config.watch_grace,
            webhook: WebhookSettings::new(config, &metrics),
            max_watches_per_push_id: config.max_watches_per_push_id,
            max_offline_push_ids: config.max_offline_push_ids,
            max_webhooks_per_key: config.max_webhooks_per_key,
            max_message_size: config.max_message_size,
            metrics,
        }
    }
}

// ---------------------------------------------------------------------------
// Requests

/// What sessions and the REST side ask of the hub.
pub(crate) enum Request {
    /// A `watch` event of a passed socket; answered with `Command::Reply`.
    Watch {
        session: Arc<SessionLink>,
        push_id: Arc<str>,
        ack_id: u64,
        watch: Watch,
    },
    /// An `unwatch` event; answered with `Command::Reply`.
    Unwatch {
        session: Arc<SessionLink>,
        push_id: Arc<str>,
        ack_id: u64,
        watchable: String,
    },
    /// A watch's final push was acknowledged: the watch ends.
    FinalAcked { watch: WatchId },
    /// The last push of a replay window was acknowledged on `session`.
    ReplayMore { watch: WatchId, session: SessionId },
    /// A session ended: its watches become dormant.
    SessionEnded {
        session: SessionId,
        push_id: Arc<str>,
    },
    /// `POST /watches`.
    AddWebhook {
        key: String,
        spec: WebhookSpec,
        reply: oneshot::Sender<Result<String, Failure>>,
    },
    /// `DELETE /watches/{watchable}`.
    RemoveWebhook {
        key: String,
        watchable: String,
        reply: oneshot::Sender<Result<(), Failure>>,
    },
    /// A webhook spent its retry budget: the watch ends.
    WebhookFailed { watch: WatchId },
    /// The server stops: the hub cancels every watch (webhook deliveries
    /// stop) and ends.
    Shutdown,
    /// Test hook: the hub task panics (see [`ServerHandle::inject_hub_panic`]).
    ///
    /// [`ServerHandle::inject_hub_panic`]: super::ServerHandle::inject_hub_panic
    InjectPanic,
}

impl From<Report> for Request {
    fn from(report: Report) -> Self {
        match report {
            Report::FinalAcked { watch } => Request::FinalAcked { watch },
            Report::WebhookFailed { watch } => Request::WebhookFailed { watch },
        }
    }
}

/// Whether the hub task is alive; set once by [`supervise`].
#[derive(Debug, Default)]
pub(crate) struct HubStatus {
    failed: std::sync::OnceLock<String>,
}

/// A cheap, `Send` handle on the hub's request channel.
#[derive(Debug, Clone)]
pub(crate) struct HubHandle {
    tx: mpsc::UnboundedSender<Request>,
    status: Arc<HubStatus>,
}

impl HubHandle {
    /// Sends a request; false when the hub has stopped.
    pub(crate) fn send(&self, request: Request) -> bool {
        self.tx.send(request).is_ok()
    }

    /// Why the hub task ended unexpectedly, if it did (`GET /ready` is 503 then).
    pub(crate) fn failure(&self) -> Option<&str> {
        self.status.failed.get().map(String::as_str)
    }

    pub(crate) fn weak(&self) -> WeakHub {
        WeakHub(self.tx.downgrade())
    }
}

/// A handle that does not keep the hub running (for tasks the hub owns).
#[derive(Debug, Clone)]
pub(crate) struct WeakHub(mpsc::WeakUnboundedSender<Request>);

impl WeakHub {
    pub(crate) fn send(&self, request: Request) {
        if let Some(tx) = self.0.upgrade() {
            let _ = tx.send(request);
        }
    }
}

/// The running hub task, for [`supervise`].
pub(crate) type HubTask = actix_rt::task::JoinHandle<()>;

/// Starts the hub on the current actix-rt System; returns its handle and
/// the task (to be given to [`supervise`]).
pub(crate) fn start(store: Arc<dyn Store>, settings: HubSettings) -> (HubHandle, HubTask) {
    let (tx, requests) = mpsc::unbounded_channel();
    let handle = HubHandle {
        tx,
        status: Arc::new(HubStatus::default()),
    };
    // Subscribe now, before any request can change the store.
    let events = store.subscribe();
    let (done_tx, done) = mpsc::unbounded_channel();
    let hub = Hub::new(store, settings, handle.weak(), done_tx);
    let task = actix_rt::spawn(hub.run(events, requests, done));
    (handle, task)
}

/// Watches the hub task. The hub ends normally only on
/// [`Request::Shutdown`] (or when every handle is gone). If it ends any
/// other way (a panic: a bug), the server cannot push any more, so this
/// says why in the log, marks the hub failed (`GET /ready` answers 503),
/// refuses new push sockets, and closes every push session with 1011: their
/// clients see the failure instead of a socket that heartbeats but never
/// pushes. The server is not restarted: the process's supervisor (or the
/// application) decides, and `/ready` tells it.
pub(crate) async fn supervise(task: HubTask, shared: Arc<Shared>) {
    let why = match task.await {
        Ok(()) => return,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            format!("the watch hub panicked: {message}")
        }
        Err(e) => format!("the watch hub task ended: {e}"),
    };
    let _ = shared.hub.status.failed.set(why.clone());
    let sessions = shared.registry.hub_failed();
    log::error!(
        "{why}; no more pushes can be sent: closing {} push session(s) with 1011 and \
         answering GET /ready with 503 (restart the server)",
        sessions.len()
    );
    for mailbox in sessions {
        send_command(&mailbox, Command::HubFailed);
    }
}

// ---------------------------------------------------------------------------
// The hub's state

/// One window of a replay, worked out before it is queued.
#[derive(Default)]
struct Replay {
    /// The pushes to queue, oldest first, and whether each is the final one.
    pushes: Vec<(Arc<PushEvent>, bool)>,
    /// The item ended by another kind of event: the watch ends silently.
    end_silently: bool,
    /// Newer events did not fit the session's room: the window's last push
    /// asks for the next window when it is acknowledged.
    more: bool,
}

/// How a push comes to be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// A live event.
    Live,
    /// A logged event of a replay.
    Replayed,
    /// The last push of a replay window that has more after it.
    WindowEnd,
}

struct Hub {
    store: Arc<dyn Store>,
    settings: HubSettings,
    me: WeakHub,
    /// The watch bookkeeping (see `watches`).
    w: Watches,
    /// The last event seq handled.
    processed: u64,
    /// Reused for the watcher list of one event (no allocation per event).
    scratch: Vec<WatchId>,
    /// While one event's pushes are queued (`on_event`): the sessions that
    /// got a push without a wake, woken once when all are queued, so that a
    /// session with many watches of the item writes them together.
    /// (Reused: no allocation per event.)
    to_wake: Vec<Arc<SessionLink>>,
    /// Set while `on_event` queues one event's pushes (see `to_wake`).
    deferring_wakes: bool,
    /// Events handled while store calls run beside the hub (see `recent`).
    recent: Recent,
    /// Where store calls beside the hub report back (see `beside`).
    done: mpsc::UnboundedSender<Done>,
    /// A catch-up from the log is under way: live events wait (in the
    /// store's broadcast channel; a lag there means another catch-up).
    catching_up: bool,
    /// What waits for sessions whose calls are out (see `hold`).
    holds: Holds,
    /// The call whose answer the hub is working out now.
    answering: Option<CallId>,
}

/// A store error as the failure reply with the same code.
pub(crate) fn failure(error: &StoreError) -> Failure {
    Failure::new(error.code(), error.to_string())
}

fn not_found_watch(watchable: &str) -> Failure {
    Failure::new(
        404,
        format!("no watch {watchable:?} here: it ended, or belongs to another push id or key"),
    )
}

impl Hub {
    fn new(
        store: Arc<dyn Store>,
        settings: HubSettings,
        me: WeakHub,
        done: mpsc::UnboundedSender<Done>,
    ) -> Self {
        Hub {
            store,
            w: Watches::counting_into(settings.metrics.watch_counts.clone()),
            settings,
            me,
            processed: 0,
            scratch: Vec::new(),
            to_wake: Vec::new(),
            deferring_wakes: false,
            recent: Recent::default(),
            done,
            catching_up: false,
            holds: Holds::default(),
            answering: None,
        }
    }

    /// Sends `command` to a session, in hub order (held while a call of
    /// the session is out, see `hold`); false when the session is gone.
    fn send_to_session(&mut self, link: &Arc<SessionLink>, command: Command) -> bool {
        let command = if self.holds.is_empty() {
            command
        } else {
            match self.holds.hold(link.id, self.answering, command) {
                Ok(()) => return true,
                Err(command) => command,
            }
        };
        if !self.deferring_wakes {
            return link.send(command);
        }
        let queued = link.send_without_wake(command);
        // Pushes of one event to one session come in a row: one entry per
        // run is enough (a repeat only wakes twice).
        if queued && self.to_wake.last().is_none_or(|last| last.id != link.id) {
            self.to_wake.push(link.clone());
        }
        queued
    }

    fn reply(&mut self, link: &Arc<SessionLink>, ack_id: u64, reply: &impl Serialize) {
        self.send_to_session(link, reply_command(ack_id, reply));
    }

    /// Works out the answer of `call` (`answer`), then sends what waited
    /// for it.
    fn answer(&mut self, call: Option<(Arc<SessionLink>, CallId)>, answer: impl FnOnce(&mut Self)) {
        self.answering = call.as_ref().map(|(_, id)| *id);
        answer(self);
        self.answering = None;
        if let Some((link, id)) = call {
            for command in self.holds.finish(id) {
                link.send(command);
            }
        }
    }

    /// Runs a store call beside the hub; its [`Done`] comes back on the
    /// hub's own channel.
    fn beside(&self, call: impl std::future::Future<Output = Done> + 'static) {
        let done = self.done.clone();
        actix_rt::spawn(async move {
            let _ = done.send(call.await);
        });
    }

    async fn run(
        mut self,
        mut events: broadcast::Receiver<StoreEvent>,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut done: mpsc::UnboundedReceiver<Done>,
    ) {
        self.processed = self.store.latest_seq().await.unwrap_or(0);
        let every = (self.settings.watch_grace / 4)
            .clamp(Duration::from_millis(5), Duration::from_secs(30));
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        // The next key deadline the timer is set for.
        let mut armed: Option<UnixMillis> = None;
        let key_timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(key_timer);
        loop {
            let next = self.w.key_expiry.first().map(|(till, _)| *till);
            if next != armed {
                armed = next;
                if let Some(till) = next {
                    // At most a day ahead (a far deadline, e.g. `MAX` of a
                    // store that does not know, must not overflow the
                    // clock); an early wake-up only re-arms the timer.
                    let wait = till
                        .duration_since(UnixMillis::now())
                        .min(Duration::from_secs(86_400));
                    key_timer.as_mut().reset(Instant::now() + wait);
                }
            }
            tokio::select! {
                () = &mut key_timer, if armed.is_some() => {
                    self.end_expired_keys();
                    // Re-arm from the clock (the timer may fire a little early).
                    armed = None;
                }
                Some(done) = done.recv() => self.on_done(done),
                event = events.recv(), if events_open && !self.catching_up => match event {
                    Ok(StoreEvent::Item(event)) => self.on_event(event),
                    Ok(StoreEvent::AliasMoved { alias, item, since }) => {
                        self.alias_moved(&alias, item, since);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        log::warn!("hub: lagged {missed} events behind the store; catching up from its log");
                        self.catch_up();
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        log::warn!("hub: the store closed its event channel; no more pushes");
                        events_open = false;
                    }
                },
                request = requests.recv() => match request {
                    None | Some(Request::Shutdown) => break,
                    Some(Request::InjectPanic) => {
                        panic!("injected hub panic (test hook)")
                    }
                    Some(request) => self.on_request(request),
                },
                _ = tick.tick() => self.forget_dormant(),
            }
        }
        // Nothing queued leaves after the stop: webhook deliveries stop
        // (their tasks see the cancelled watch and end).
        for entry in self.w.watches.values() {
            entry.view.cancel();
        }
        log::debug!("hub: stopped with {} watch(es)", self.w.watches.len());
    }

    /// Ends every watch whose key has expired, with `ended` 401.
    fn end_expired_keys(&mut self) {
        let now = UnixMillis::now();
        while let Some(&(till, id)) = self.w.key_expiry.first() {
            if till > now {
                break;
            }
            self.w.key_expiry.remove(&(till, id));
            self.end_watch(
                id,
                401,
                "the access key of this watch expired: make a new key and watch again".to_owned(),
            );
        }
    }

    /// Ends a watch for a reason other than its final push: no push of it
    /// leaves from now on, and its session (if connected) gets
    /// `["ended", {watchable, code, error}]`.
    fn end_watch(&mut self, id: WatchId, code: u16, error: String) {
        let Some(entry) = self.w.watches.get(&id) else {
            return;
        };
        // First: a push still queued must not leave after the `ended`.
        entry.view.cancel();
        match &entry.sink {
            Sink::Socket {
                session: Some(link),
                ..
            } => {
                log::debug!("hub: watch {} ended ({code}): {error}", entry.watchable);
                let (link, watchable) = (link.clone(), entry.watchable.clone());
                self.send_to_session(
                    &link,
                    Command::Ended(Ended {
                        watchable,
                        code,
                        error,
                    }),
                );
            }
            Sink::Socket {
                push_id,
                session: None,
            } => log::debug!(
                "hub: dormant watch {} of push id {push_id:?} ended ({code}): {error}",
                entry.watchable
            ),
            Sink::Webhook(_) => log::info!(
                "hub: webhook watch {} ended ({code}): {error}",
                entry.watchable
            ),
        }
        self.w.remove(id, true);
    }

    // ---- events ----------------------------------------------------------

    fn on_event(&mut self, event: Event) {
        if event.seq <= self.processed {
            return;
        }
        self.processed = event.seq;
        self.recent.record(&event);
        let Some(index) = self.w.by_item.get(&event.id) else {
            return;
        };
        let last = event.kind != EventKind::Update;
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        ids.extend_from_slice(&index.by_kind[event.kind.index()]);
        if !ids.is_empty() {
            let wants_value = event.kind == EventKind::Update
                && ids
                    .iter()
                    .any(|id| self.w.watches.get(id).is_some_and(|e| e.view.with_value));
            let shared = Arc::new(PushEvent {
                seq: event.seq,
                at: event.at,
                value: match (&event.value, wants_value) {
                    (Some(value), true) => Some(value.to_string().into_boxed_str()),
                    _ => None,
                },
            });
            self.deferring_wakes = true;
            for &id in &ids {
                self.queue_push(id, &shared, last, How::Live);
            }
            self.deferring_wakes = false;
            // Every session that got a push without a wake is woken here,
            // before the hub waits on anything again.
            for link in self.to_wake.drain(..) {
                link.wake();
            }
        }
        self.scratch = ids;
        if last {
            self.item_gone(event.id, event.kind);
        }
    }

    /// Queues one push for a watch unless its cursor is past it (or, for a
    /// live event, a replay is under way: the log keeps it for the replay).
    fn queue_push(&mut self, id: WatchId, event: &Arc<PushEvent>, last: bool, how: How) {
        let bounds = self.settings.queue;
        let Some(entry) = self.w.watches.get_mut(&id) else {
            return;
        };
        if entry.ending || event.seq <= entry.cursor || (entry.replaying && how == How::Live) {
            return;
        }
        entry.cursor = event.seq;
        entry.ending |= last;
        let out = Outgoing {
            view: entry.view.clone(),
            event: event.clone(),
            last,
            bytes: entry.view.object_len(event),
            window_end: how == How::WindowEnd,
        };
        match &mut entry.sink {
            Sink::Socket { session, .. } => {
                let Some(link) = session.clone() else { return };
                if !link.admit(&out, bounds) {
                    return;
                }
                if how != How::Live {
                    self.settings.metrics.pushes_replayed.inc();
                }
                if !self.send_to_session(&link, Command::Push(out)) {
                    if let Some(Entry {
                        sink: Sink::Socket { session, .. },
                        ..
                    }) = self.w.watches.get_mut(&id)
                    {
                        *session = None;
                    }
                    self.w.dormant.insert(id, Instant::now());
                }
            }
            Sink::Webhook(link) => {
                if how != How::Live {
                    self.settings.metrics.pushes_replayed.inc();
                }
                if !link.push(out, bounds.pushes) {
                    log::warn!(
                        "hub: webhook watch {} has {} pushes waiting for its URL; ending it \
                         (the event log still has them: GET /items/{}/events)",
                        entry.watchable,
                        bounds.pushes,
                        entry.item
                    );
                    self.w.remove(id, true);
                }
            }
        }
    }

    /// The item was removed or expired (`kind`): that kind's watches await
    /// the ack of their final push; the others end now.
    fn item_gone(&mut self, item: ItemId, kind: EventKind) {
        let Some(index) = self.w.by_item.remove(&item) else {
            return;
        };
        for (k, ids) in index.by_kind.into_iter().enumerate() {
            for id in ids {
                if k == kind.index() {
                    if let Some(entry) = self.w.watches.get_mut(&id) {
                        // A replaying watch gets its final push from the log.
                        entry.ending |= !entry.replaying;
                        // A webhook or session that got no final push (dormant)
                        // never acks: a dormant one is forgotten after the grace.
                    }
                } else {
                    self.w.remove(id, false);
                }
            }
        }
    }

    /// Catches up from the store's log after the broadcast receiver lagged:
    /// the read runs beside the hub, and live events wait until it is
    /// back ([`Done::CaughtUp`]). The events the lag dropped never reached
    /// the hub, so every store call in flight catches up from the log too.
    fn catch_up(&mut self) {
        if self.catching_up {
            return;
        }
        self.catching_up = true;
        self.recent.lose_all();
        let items: Vec<(ItemId, Vec<String>)> = self
            .w
            .by_item
            .iter()
            .map(|(item, index)| {
                let keys: HashSet<&str> = index
                    .by_kind
                    .iter()
                    .flatten()
                    .filter_map(|id| self.w.watches.get(id).map(|e| e.key.as_str()))
                    .collect();
                (*item, keys.into_iter().map(str::to_owned).collect())
            })
            .collect();
        let aliases: Vec<String> = self.w.by_alias.keys().cloned().collect();
        let store = self.store.clone();
        let since = self.processed;
        self.beside(
            async move { Done::CaughtUp(beside::catch_up(store, items, aliases, since).await) },
        );
    }

    /// Applies `event` to one watch, as [`Hub::on_event`] does to all of
    /// an item's watches (for events it handled before the watch was
    /// indexed on that item).
    fn deliver(&mut self, id: WatchId, event: &Event) {
        let Some(entry) = self.w.watches.get(&id) else {
            return;
        };
        if event.id != entry.item || event.seq <= entry.cursor {
            return;
        }
        let last = event.kind != EventKind::Update;
        if event.kind == entry.kind {
            let shared = Arc::new(PushEvent {
                seq: event.seq,
                at: event.at,
                value: match (&event.value, entry.view.with_value) {
                    (Some(value), true) => Some(value.to_string().into_boxed_str()),
                    _ => None,
                },
            });
            self.queue_push(id, &shared, last, How::Live);
            if last {
                self.w.unindex(id);
                if let Some(entry) = self.w.watches.get_mut(&id) {
                    entry.ending |= !entry.replaying;
                }
            }
        } else if last {
            self.w.remove(id, false);
        }
    }

    /// A store call for watch `id` reported back: the events of its item
    /// the hub handled since `ticket` are applied to it in seq order (its
    /// cursor drops those the call's answer had). If they were dropped
    /// (see `recent`), the watch catches up from the log instead.
    fn apply_recent(&mut self, id: WatchId, ticket: Ticket) {
        let item = self.w.watches.get(&id).map(|e| e.item);
        match self.recent.finish(ticket, item) {
            Some(events) => {
                for event in &events {
                    self.deliver(id, event);
                }
            }
            None => {
                let Some(entry) = self.w.watches.get_mut(&id) else {
                    return;
                };
                if entry.replaying || entry.ending {
                    // The next window (or the final push) comes from the log.
                    return;
                }
                log::debug!(
                    "hub: watch {} catches up from the log (its live events were dropped)",
                    entry.watchable
                );
                entry.replaying = true;
                self.read_window(id);
            }
        }
    }

    /// Reads the next replay window of watch `id` from the log, after its
    /// cursor, beside the hub ([`Done::Window`]).
    fn read_window(&mut self, id: WatchId) {
        let Some(entry) = self.w.watches.get(&id) else {
            return;
        };
        let query = EventQuery {
            since: entry.cursor,
            kind: Some(entry.kind),
            with_value: entry.view.with_value,
        };
        let (key, item, epoch) = (entry.key.clone(), entry.item, entry.epoch);
        let ticket = self.recent.begin();
        let store = self.store.clone();
        self.beside(async move {
            let result = store.events(&key, &item.to_string(), query).await;
            Done::Window {
                watch: id,
                epoch,
                item,
                ticket,
                result,
            }
        });
    }

    /// A store call beside the hub reported back.
    fn on_done(&mut self, done: Done) {
        match done {
            Done::Watch(done) => self.watch_checked(*done),
            Done::Webhook(done) => self.webhook_checked(*done),
            Done::Window {
                watch,
                epoch,
                item,
                ticket,
                result,
            } => self.window_read(watch, epoch, item, ticket, result),
            Done::Alias(done) => self.alias_checked(*done),
            Done::CaughtUp(found) => {
                self.catching_up = false;
                // Re-points the lag dropped first: the old item's events
                // after them must not reach the alias's watches.
                for (alias, now_item) in found.aliases {
                    let stale = self
                        .w
                        .by_alias
                        .get(&alias)
                        .and_then(|ids| ids.iter().find_map(|id| self.w.watches.get(id)))
                        .is_some_and(|e| e.item != now_item);
                    if stale {
                        self.alias_moved(&alias, now_item, found.since);
                    }
                }
                for event in found.events {
                    self.on_event(event);
                }
            }
        }
    }

    // ---- requests --------------------------------------------------------

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Watch {
                session,
                push_id,
                ack_id,
                watch,
            } => self.watch(session, push_id, ack_id, watch),
            Request::Unwatch {
                session,
                push_id,
                ack_id,
                watchable,
            } => match self.w.find(&watchable) {
                Some(id)
                    if matches!(&self.w.watches[&id].sink,
                        Sink::Socket { push_id: owner, .. } if *owner == push_id) =>
                {
                    self.w.remove(id, true);
                    self.reply(&session, ack_id, &Success(Empty {}));
                }
                _ => self.reply(&session, ack_id, &not_found_watch(&watchable)),
            },
            Request::ReplayMore { watch, session } => self.replay_more(watch, session),
            Request::FinalAcked { watch } => {
                if self.w.watches.get(&watch).is_some_and(|e| e.ending) {
                    self.w.remove(watch, false);
                }
            }
            Request::SessionEnded { session, push_id } => {
                let now = Instant::now();
                let mut went_dormant = false;
                for id in self.w.by_push.get(&push_id).into_iter().flatten() {
                    if let Some(entry) = self.w.watches.get_mut(id) {
                        if let Sink::Socket { session: s, .. } = &mut entry.sink {
                            if s.as_ref().is_some_and(|l| l.id == session) {
                                *s = None;
                                self.w.dormant.insert(*id, now);
                                went_dormant = true;
                            }
                        }
                    }
                }
                if went_dormant {
                    self.w
                        .went_offline(push_id, self.settings.max_offline_push_ids);
                }
            }
            Request::AddWebhook { key, spec, reply } => self.add_webhook(key, spec, reply),
            Request::RemoveWebhook {
                key,
                watchable,
                reply,
            } => {
                let result = match self.w.find(&watchable) {
                    Some(id)
                        if matches!(self.w.watches[&id].sink, Sink::Webhook(_))
                            && self.w.watches[&id].key == key =>
                    {
                        self.w.remove(id, true);
                        Ok(())
                    }
                    _ => Err(not_found_watch(&watchable)),
                };
                let _ = reply.send(result);
            }
            Request::WebhookFailed { watch } => {
                self.w.remove(watch, true);
            }
            // Handled by the loop itself.
            Request::Shutdown | Request::InjectPanic => {}
        }
    }

    /// A watch `message` as JSON text, within `max_message_size` (else 413).
    fn message_text(&self, message: Option<&str>) -> Result<Option<Box<str>>, Failure> {
        let Some(text) = message else {
            return Ok(None);
        };
        let max = self.settings.max_message_size;
        if text.len() > max {
            return Err(Failure::new(
                413,
                format!(
                    "the watch message is {} bytes; this server takes at most {max}: send a smaller one",
                    text.len()
                ),
            ));
        }
        Ok(Some(text.into()))
    }

    /// `watch`: see the module docs for the order of things. The store
    /// part runs beside the hub; [`Hub::watch_checked`] goes on.
    fn watch(&mut self, link: Arc<SessionLink>, push_id: Arc<str>, ack_id: u64, watch: Watch) {
        let message = match self.message_text(watch.message.as_deref().map(RawValue::get)) {
            Ok(message) => message,
            Err(failure) => return self.reply(&link, ack_id, &failure),
        };
        let call = self.holds.begin(link.id);
        let ticket = self.recent.begin();
        let store = self.store.clone();
        self.beside(async move {
            let result = beside::check_watch(store, &watch).await;
            Done::Watch(Box::new(WatchDone {
                session: link,
                push_id,
                ack_id,
                watch,
                message,
                ticket,
                call,
                result,
            }))
        });
    }

    /// A `watch` call's store part is done: register (or refresh) the
    /// watch, ack, replay, then the live events it missed meanwhile.
    fn watch_checked(&mut self, done: WatchDone) {
        let WatchDone {
            session: link,
            push_id,
            ack_id,
            watch,
            message,
            ticket,
            call,
            result,
        } = done;
        self.answer(Some((link.clone(), call)), |hub| {
            let registered = result.and_then(|checked| {
                hub.register_watch(&link, &push_id, ack_id, watch, message, checked)
            });
            match registered {
                Ok(id) => hub.apply_recent(id, ticket),
                Err(failure) => {
                    hub.recent.release(ticket);
                    hub.reply(&link, ack_id, &failure);
                }
            }
        });
    }

    /// Registers (or refreshes) a checked watch, acks it and queues its
    /// replay's first window; returns the watch.
    fn register_watch(
        &mut self,
        link: &Arc<SessionLink>,
        push_id: &Arc<str>,
        ack_id: u64,
        watch: Watch,
        message: Option<Box<str>>,
        checked: beside::Checked,
    ) -> Result<WatchId, Failure> {
        let kind = watch.event;
        let beside::Checked {
            item,
            alias,
            latest,
            page,
            key_valid_till,
        } = checked;
        let idem = IdemKey {
            push_id: push_id.clone(),
            kind,
            target: alias.clone().unwrap_or_else(|| item.to_string()),
            key: watch.key.clone(),
        };
        let id = match self.w.by_idem.get(&idem) {
            Some(&id) => id,
            None => {
                let max = self.settings.max_watches_per_push_id;
                if self.w.by_push.get(push_id).map_or(0, HashSet::len) >= max {
                    return Err(Failure::new(
                        429,
                        format!(
                            "push id {push_id:?} already holds {max} watches, this server's limit: \
                             unwatch some first"
                        ),
                    ));
                }
                let (id, watchable) = self.w.new_watchable();
                let live = Arc::new(AtomicBool::new(true));
                let head = Head {
                    watchable: &watchable,
                    event: kind,
                    id: item,
                    alias: alias.as_deref(),
                };
                let view = Watches::view(id, &head, None, false, live, key_valid_till);
                self.w.insert(
                    id,
                    Entry {
                        watchable,
                        kind,
                        item,
                        alias: alias.clone(),
                        key: watch.key.clone(),
                        sink: Sink::Socket {
                            push_id: push_id.clone(),
                            session: None,
                        },
                        view,
                        cursor: latest,
                        ending: false,
                        replaying: false,
                        idem: Some(idem),
                        key_valid_till,
                        webhook: None,
                        epoch: 0,
                    },
                );
                id
            }
        };
        // Attach to this session; follow the item the alias names now.
        let (same_session, moved) = {
            let entry = self.w.watches.get_mut(&id).expect("just found or inserted");
            let same =
                matches!(&entry.sink, Sink::Socket { session: Some(l), .. } if l.id == link.id);
            entry.sink = Sink::Socket {
                push_id: push_id.clone(),
                session: Some(link.clone()),
            };
            (same, entry.item != item)
        };
        self.w.dormant.remove(&id);
        self.w.offline.remove(push_id);
        if moved {
            self.w.unindex(id);
            if let Some(entry) = self.w.watches.get_mut(&id) {
                entry.item = item;
            }
        }
        self.w.set_key_valid_till(id, key_valid_till);
        self.w
            .refresh_view(id, Some(message), Some(watch.with_value));
        let Some(entry) = self.w.watches.get_mut(&id) else {
            // Found or inserted above, and nothing since removes watches.
            return Err(Failure::new(500, "internal error: the watch vanished"));
        };
        entry.cursor = match watch.after {
            // An `after` above the latest seq (a store that lost its
            // history: acked with `gap`) must not hide the live events
            // that follow: they start after the store's latest.
            Some(after) => after.min(latest),
            None if same_session => entry.cursor,
            None => latest,
        };
        // A (re-)watch restarts the watch, also one whose final push was
        // queued and never acked, or whose replay was cut short: the replay
        // below queues them again.
        entry.ending = false;
        entry.replaying = false;
        entry.epoch += 1;
        let watchable = entry.watchable.clone();
        self.w.index(id);
        let log_gap = page.as_ref().is_some_and(|p| p.gap);
        let replay = page.map(|page| self.plan_replay(id, page));
        self.reply(
            link,
            ack_id,
            &Success(WatchOk {
                watchable,
                seq: latest,
                gap: log_gap,
            }),
        );
        if let Some(replay) = replay {
            self.replay(id, replay);
        }
        if link.is_closed() {
            // The session ended while the store was asked: the watch waits
            // dormant for its client's re-watch, as its others do.
            if let Some(Entry {
                sink: Sink::Socket { session, .. },
                ..
            }) = self.w.watches.get_mut(&id)
            {
                if session.take().is_some() {
                    self.w.dormant.insert(id, Instant::now());
                    self.w
                        .went_offline(push_id.clone(), self.settings.max_offline_push_ids);
                }
            }
        }
        Ok(id)
    }

    /// Works out the next window of a replay of logged events for a watch
    /// (backlog after `after`, or the new item's after an alias move): in
    /// seq order, above its cursor, up to its final event. A socket watch's
    /// window fits in [`SessionLink::replay_room`] (at least one push, so it
    /// always progresses): a larger backlog is sent window by window, the
    /// next one read from the log when the client acknowledges the last push
    /// of the previous one. So a replay never overflows the session's queue
    /// by itself (a reconnect cannot loop on 1013), and loses nothing.
    fn plan_replay(&self, id: WatchId, page: EventsPage) -> Replay {
        let mut replay = Replay::default();
        let Some(entry) = self.w.watches.get(&id) else {
            return replay;
        };
        for event in page.events {
            if event.seq <= entry.cursor {
                continue;
            }
            let last = event.kind != EventKind::Update;
            if event.kind != entry.kind {
                if last {
                    // The item is gone by another kind of event: end silently.
                    replay.end_silently = true;
                    break;
                }
                continue;
            }
            replay.pushes.push((
                Arc::new(PushEvent {
                    seq: event.seq,
                    at: event.at,
                    value: event.value.as_ref().map(|v| v.to_string().into_boxed_str()),
                }),
                last,
            ));
            if last {
                break;
            }
        }
        if let Sink::Socket {
            session: Some(link),
            ..
        } = &entry.sink
        {
            let (mut pushes, mut bytes) = link.replay_room(self.settings.queue);
            let mut keep = 0;
            for (event, _) in &replay.pushes {
                let size = entry.view.object_len(event);
                if keep > 0 && (pushes == 0 || size > bytes) {
                    break;
                }
                pushes = pushes.saturating_sub(1);
                bytes = bytes.saturating_sub(size);
                keep += 1;
            }
            if keep < replay.pushes.len() {
                replay.pushes.truncate(keep);
                replay.end_silently = false;
                replay.more = true;
            }
        }
        replay
    }

    /// Queues a replay window worked out by [`Hub::plan_replay`].
    fn replay(&mut self, id: WatchId, replay: Replay) {
        let count = replay.pushes.len();
        for (n, (event, last)) in replay.pushes.into_iter().enumerate() {
            let how = if replay.more && n + 1 == count {
                How::WindowEnd
            } else {
                How::Replayed
            };
            self.queue_push(id, &event, last, how);
            if last {
                self.w.unindex(id);
                if let Some(entry) = self.w.watches.get_mut(&id) {
                    entry.ending = true;
                    entry.replaying = false;
                }
                return;
            }
        }
        if let Some(entry) = self.w.watches.get_mut(&id) {
            entry.replaying = replay.more;
        }
        if replay.end_silently {
            self.w.remove(id, false);
        }
    }

    /// The client acknowledged the last push of a replay window: read the
    /// next one from the log after the watch's cursor (beside the hub).
    fn replay_more(&mut self, id: WatchId, session: SessionId) {
        let Some(entry) = self.w.watches.get(&id) else {
            return;
        };
        let attached =
            matches!(&entry.sink, Sink::Socket { session: Some(l), .. } if l.id == session);
        if entry.replaying && attached {
            self.read_window(id);
        }
    }

    /// A replay window read from the log: queue it, then the live events
    /// of the item the hub handled meanwhile (unless more windows follow:
    /// they bring them).
    fn window_read(
        &mut self,
        id: WatchId,
        epoch: u64,
        item: ItemId,
        ticket: Ticket,
        result: Result<EventsPage, StoreError>,
    ) {
        let Some(entry) = self.w.watches.get(&id) else {
            return self.recent.release(ticket);
        };
        if entry.epoch != epoch || entry.item != item || !entry.replaying {
            // Read before a re-watch or an alias move: stale. A watch still
            // replaying reads its window again, from its cursor now.
            self.recent.release(ticket);
            if entry.replaying && (entry.epoch != epoch || entry.item != item) {
                self.read_window(id);
            }
            return;
        }
        match result {
            Ok(page) => {
                if page.gap {
                    log::warn!(
                        "hub: the event log lost events of item {item} during a replay window; \
                         the client is not told (it re-reads the item on its next gap)"
                    );
                }
                let replay = self.plan_replay(id, page);
                self.replay(id, replay);
                self.apply_recent(id, ticket);
            }
            Err(e) => {
                self.recent.release(ticket);
                self.end_watch(id, e.code(), format!("the replay cannot go on: {e}"));
            }
        }
    }

    /// `POST /watches`: idempotent per (key, item or alias, event, URL);
    /// at most `max_webhooks_per_key` per key (else 429). The key check
    /// runs beside the hub; [`Hub::webhook_checked`] goes on.
    fn add_webhook(
        &mut self,
        key: String,
        spec: WebhookSpec,
        reply: oneshot::Sender<Result<String, Failure>>,
    ) {
        let message =
            match self.message_text(spec.message.as_ref().map(ToString::to_string).as_deref()) {
                Ok(message) => message,
                Err(failure) => {
                    let _ = reply.send(Err(failure));
                    return;
                }
            };
        let ticket = self.recent.begin();
        let store = self.store.clone();
        self.beside(async move {
            let result = store.check_read(&key, &spec.id).await;
            Done::Webhook(Box::new(WebhookDone {
                key,
                spec,
                message,
                reply,
                ticket,
                result,
            }))
        });
    }

    /// A webhook's key check is done: register it, then the live events
    /// of its item the hub handled meanwhile.
    fn webhook_checked(&mut self, done: WebhookDone) {
        let WebhookDone {
            key,
            spec,
            message,
            reply,
            ticket,
            result,
        } = done;
        let answer = match result {
            Ok(checked) => self.register_webhook(key, spec, message, checked),
            Err(e) => Err(failure(&e)),
        };
        match &answer {
            Ok((Some(id), _)) => self.apply_recent(*id, ticket),
            _ => self.recent.release(ticket),
        }
        let _ = reply.send(answer.map(|(_, watchable)| watchable));
    }

    /// Registers a checked webhook watch (or refreshes the same one):
    /// its watchable, and the watch when it is new.
    fn register_webhook(
        &mut self,
        key: String,
        spec: WebhookSpec,
        message: Option<Box<str>>,
        checked: ItemRef,
    ) -> Result<(Option<WatchId>, String), Failure> {
        let kind = spec.kind;
        let identity = WebhookKey {
            key: key.clone(),
            kind,
            target: checked
                .alias
                .clone()
                .unwrap_or_else(|| checked.id.to_string()),
            url: spec.url().to_owned(),
        };
        if let Some(&id) = self.w.webhooks.get(&identity) {
            // The same watch: the latest call's message applies.
            self.w.set_key_valid_till(id, checked.key_valid_till);
            self.w.refresh_view(id, Some(message), None);
            return self
                .w
                .watches
                .get(&id)
                .map(|entry| (None, entry.watchable.clone()))
                .ok_or_else(|| Failure::new(500, "internal error: a webhook watch vanished"));
        }
        let max = self.settings.max_webhooks_per_key;
        if self.w.webhooks_per_key.get(&key).copied().unwrap_or(0) >= max {
            return Err(Failure::new(
                429,
                format!(
                    "this key already holds {max} webhook watches, this server's limit: \
                     DELETE /watches/{{watchable}} some first"
                ),
            ));
        }
        let (id, watchable) = self.w.new_watchable();
        let live = Arc::new(AtomicBool::new(true));
        let head = Head {
            watchable: &watchable,
            event: kind,
            id: checked.id,
            alias: checked.alias.as_deref(),
        };
        let view = Watches::view(id, &head, message, false, live, checked.key_valid_till);
        let me = self.me.clone();
        let link = outlet::spawn_delivery(
            id,
            watchable.clone(),
            spec,
            self.settings.webhook.clone(),
            Reporter::new(move |report| me.send(Request::from(report))),
        );
        self.w.insert(
            id,
            Entry {
                watchable: watchable.clone(),
                kind,
                item: checked.id,
                alias: checked.alias,
                key,
                sink: Sink::Webhook(link),
                view,
                cursor: checked.seq,
                ending: false,
                replaying: false,
                idem: None,
                key_valid_till: checked.key_valid_till,
                webhook: Some(identity),
                epoch: 0,
            },
        );
        self.w.index(id);
        log::debug!("hub: webhook watch {watchable} on item {}", checked.id);
        Ok((Some(id), watchable))
    }

    /// An alias was re-pointed: each of its watches leaves the item it
    /// reported at once (it gets none of its events any more), is re-checked
    /// beside the hub (may its key read `item`?), and follows the alias once
    /// that comes back ([`Hub::alias_checked`]); meanwhile its session's
    /// other messages wait (see `hold`), so it sees them in the same order
    /// as if the re-check had been instant.
    fn alias_moved(&mut self, alias: &str, item: ItemId, since: u64) {
        let Some(ids) = self.w.by_alias.get(alias) else {
            return;
        };
        log::debug!(
            "hub: alias {alias:?} re-pointed at item {item} after seq {since}: \
             re-checking its {} watch(es)",
            ids.len()
        );
        let ids: Vec<WatchId> = ids.iter().copied().collect();
        self.w.next_move += 1;
        let number = self.w.next_move;
        self.w.alias_moves.insert(alias.to_owned(), number);
        for id in ids {
            let Some(entry) = self.w.watches.get(&id) else {
                continue;
            };
            if entry.ending {
                continue;
            }
            let session = match &entry.sink {
                Sink::Socket { session, .. } => session.clone(),
                Sink::Webhook(_) => None,
            };
            let active = session.is_some() || matches!(entry.sink, Sink::Webhook(_));
            let key = entry.key.clone();
            // Re-pointed at the item it reports: nothing of it is skipped.
            let after = if entry.item == item {
                entry.cursor
            } else {
                since.max(entry.cursor)
            };
            self.w.unindex(id);
            let ticket = self.recent.begin();
            let call = session.map(|link| {
                let call = self.holds.begin(link.id);
                (link, call)
            });
            let store = self.store.clone();
            let alias = alias.to_owned();
            self.beside(async move {
                let result = beside::recheck_alias(store, key, item, active.then_some(after)).await;
                Done::Alias(Box::new(AliasDone {
                    watch: id,
                    alias,
                    item,
                    since,
                    number,
                    ticket,
                    call,
                    result,
                }))
            });
        }
    }

    /// An alias re-check is back: the watch follows the alias to the new
    /// item (and gets its events after the re-point, from the log and from
    /// what the hub handled meanwhile), or ends when its key may not read
    /// that item. Authorization follows the alias.
    fn alias_checked(&mut self, mut done: AliasDone) {
        let call = done.call.take();
        self.answer(call, |hub| hub.follow_alias(done));
    }

    fn follow_alias(&mut self, done: AliasDone) {
        let AliasDone {
            watch: id,
            alias,
            item,
            since,
            number,
            ticket,
            result,
            ..
        } = done;
        let current = self.w.alias_moves.get(&alias) == Some(&number)
            && self
                .w
                .watches
                .get(&id)
                .is_some_and(|e| !e.ending && e.alias.as_deref() == Some(alias.as_str()));
        if !current {
            // A newer re-point's re-check is out (or the watch ended).
            return self.recent.release(ticket);
        }
        let (key_valid_till, page) = match result {
            Ok(found) => found,
            Err(e) => {
                self.recent.release(ticket);
                return self.end_watch(
                    id,
                    e.code(),
                    format!(
                        "alias {alias:?} now names item {item}, which this watch's key may \
                         not read ({e})"
                    ),
                );
            }
        };
        self.w.unindex(id);
        if let Some(entry) = self.w.watches.get_mut(&id) {
            if entry.item != item {
                entry.item = item;
                // Events of the new item up to the re-point are not this watch's.
                entry.cursor = entry.cursor.max(since);
            }
        }
        self.w.set_key_valid_till(id, key_valid_till);
        self.w.refresh_view(id, None, None);
        self.w.index(id);
        log::debug!("hub: alias {alias:?} now names item {item}: its watch follows");
        if let Some(mut page) = page {
            // Later events come live (or from `recent` just below).
            page.events.retain(|e| e.seq <= self.processed);
            let replay = self.plan_replay(id, page);
            self.replay(id, replay);
        }
        self.apply_recent(id, ticket);
    }

    /// Forgets dormant watches past the grace.
    fn forget_dormant(&mut self) {
        let now = Instant::now();
        let grace = self.settings.watch_grace;
        let expired: Vec<WatchId> = self
            .w
            .dormant
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= grace)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            log::debug!("hub: forgetting a watch dormant for {grace:?}");
            self.w.remove(id, false);
        }
    }
}
