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
//! order. Per event it looks up the item in `by_item` (one hash lookup), takes
//! the list of that item's watches of that kind, and for each *active* one
//! sends a `Push` command into its session's mailbox: the cost per event is
//! one lookup plus the watchers of that one item. The event (seq, at and, for
//! `update`, the value serialized once) is shared by every push of it
//! ([`PushEvent`] in an `Arc`); each watch's own part of the push object
//! (`watchable`, `event`, `id`, `alias`, `message`) is serialized once per
//! watch (re)registration ([`WatchView`]). The session only glues
//! `42<ack id>["push",` + view + event + `}]` together when it writes.
//!
//! **Lag.** If the broadcast receiver lags, the hub catches up from the
//! store's log: for every watched item it reads the events after the last seq
//! it handled (with a key of one of that item's watches) and handles them in
//! seq order before going on; events are never lost, only their `value` may be
//! missing (the log keeps no values: a replayed `update` carries the value only
//! when it is still the item's current one).
//!
//! **Active and dormant watches.** A socket watch is *active* while the session
//! it was last (re)registered on is alive. When that session ends, its
//! watches become *dormant*: no live pushes (a reconnected client re-watches
//! with `after` and gets the missed events by replay, which also keeps each
//! watch's seq order intact), and after [`ServerConfig::watch_grace`] without
//! a re-watch they are forgotten. A push id that reconnected but has not
//! re-watched yet gets nothing for that watch either.
//!
//! **Watch and replay without duplicates.** A `watch` is handled inside the
//! hub task, between two events: `check_read`, then the backlog
//! (`Store::events` after `after`), then the ack (`{"ok":true,"watchable",
//! "seq","gap"}`) is put in the session's mailbox *before* the backlog's pushes.
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
//! **Aliases.** A watch made on an alias follows it. The store has no alias
//! events, so the server's store is wrapped ([`HubStore`]): every re-point
//! made through it (REST `PUT /aliases`, a write with an alias, or
//! [`ServerHandle::store`]) is sent to the hub on a channel of its own, with
//! the store's latest seq read before the re-point. The hub drains that
//! channel before it handles each event, so a re-point that completed before
//! an event was sent is applied before that event: the alias's watches move to
//! the new item, and if the hub had already handled events after that seq
//! (a re-point racing an event from another thread), the new item's events
//! among them are replayed from the log (those above the watch's cursor);
//! only an old-item event in that microsecond window can still be pushed. A
//! re-point made on the raw store behind the server's back is noticed by a
//! periodic re-resolve of the watched aliases (every `watch_grace / 4`, at
//! most 30 s).
//!
//! **Bounds.** Live pushes bound for a session are counted from the hub's
//! send until the session writes them; above
//! [`ServerConfig::max_queued_pushes`] the hub stops queueing to that session
//! and tells it to close (close code 1013 "try again later"), so nothing after
//! the dropped push is ever written and the client's replay from its last
//! handled seq loses nothing. Replayed (backlog) pushes are not counted: they
//! are bounded by the store's log (at most `max_events_per_item` per watch
//! call), and counting them would let a large backlog overflow the queue on
//! every reconnect, a loop the client could never leave. Watch calls in
//! flight from one session to the hub are bounded by the session (429). A
//! webhook watch whose queue overflows is ended and logged.
//!
//! [`ServerConfig::watch_grace`]: super::ServerConfig::watch_grace
//! [`ServerConfig::max_queued_pushes`]: super::ServerConfig::max_queued_pushes
//! [`ServerHandle::store`]: super::ServerHandle::store

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;

use super::registry::{Command, SessionId};
use super::webhooks::{self, WebhookLink, WebhookSettings, WebhookSpec};
use super::ServerConfig;
use crate::protocol::messages::{self, Empty, Failure, Success, Watch, WatchOk};
use crate::store::{
    Aliased, Event, EventKind, EventQuery, EventsPage, ItemId, ItemRef, Keys, MakeKeys, ReadItem,
    Removed, Store, StoreError, StoreFuture, StoreInfo, UpdateItem, Updated, WriteItem, Written,
};

/// A watch's number inside the hub (the `watchable` string embeds it).
pub(crate) type WatchId = u64;

/// The hub's settings, copied out of the server config.
#[derive(Debug, Clone)]
pub(crate) struct HubSettings {
    pub(crate) max_queued_pushes: usize,
    pub(crate) watch_grace: Duration,
    pub(crate) webhook: WebhookSettings,
}

impl From<&ServerConfig> for HubSettings {
    fn from(config: &ServerConfig) -> Self {
        HubSettings {
            max_queued_pushes: config.max_queued_pushes,
            watch_grace: config.watch_grace,
            webhook: WebhookSettings::from(config),
        }
    }
}

// ---------------------------------------------------------------------------
// What travels to sessions and webhook deliverers

/// One event as every push of it shares it.
#[derive(Debug)]
pub(crate) struct PushEvent {
    pub(crate) seq: u64,
    pub(crate) at: u64,
    /// The new value as JSON text (update events, when a watch wants it).
    value: Option<Box<str>>,
}

/// A watch's own part of its push objects, serialized once per (re)watch.
#[derive(Debug)]
pub(crate) struct WatchView {
    pub(crate) watch: WatchId,
    /// `{"watchable":…,"event":…,"id":…[,"alias":…]`
    head: Box<str>,
    /// The `message`, as JSON text.
    message: Option<Box<str>>,
    with_value: bool,
    /// Cleared by `unwatch` (and the webhook DELETE): queued pushes are dropped.
    live: Arc<AtomicBool>,
}

impl WatchView {
    /// Whether the watch still wants its queued pushes.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// Appends the push object `{"watchable",…,"seq","at","message"?,"value"?}`.
    pub(crate) fn write_object(&self, event: &PushEvent, out: &mut String) {
        out.push_str(&self.head);
        let _ = write!(out, ",\"seq\":{},\"at\":{}", event.seq, event.at);
        if let Some(message) = &self.message {
            out.push_str(",\"message\":");
            out.push_str(message);
        }
        if self.with_value {
            if let Some(value) = &event.value {
                out.push_str(",\"value\":");
                out.push_str(value);
            }
        }
        out.push('}');
    }

    /// The bytes [`write_object`](Self::write_object) appends, give or take.
    pub(crate) fn object_len(&self, event: &PushEvent) -> usize {
        let value = match (&event.value, self.with_value) {
            (Some(v), true) => v.len() + 9,
            _ => 0,
        };
        self.head.len() + 48 + self.message.as_ref().map_or(0, |m| m.len() + 11) + value
    }
}

/// One push on its way: the watch's view, the event, and whether it is the
/// watch's final push (its end waits for the ack).
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) view: Arc<WatchView>,
    pub(crate) event: Arc<PushEvent>,
    pub(crate) last: bool,
    /// A replayed (backlog) push: not counted against `max_queued_pushes`.
    pub(crate) replayed: bool,
}

impl Outgoing {
    /// The Engine.IO text of this push with `ack_id`:
    /// `42<ack id>["push",{…}]`.
    pub(crate) fn frame(&self, ack_id: u64) -> String {
        let mut text = String::with_capacity(self.view.object_len(&self.event) + 32);
        let _ = write!(text, "42{ack_id}[\"{}\",", messages::PUSH_EVENT);
        self.view.write_object(&self.event, &mut text);
        text.push(']');
        text
    }

    /// The push object alone (a webhook's request body).
    pub(crate) fn object(&self) -> String {
        let mut text = String::with_capacity(self.view.object_len(&self.event));
        self.view.write_object(&self.event, &mut text);
        text
    }
}

/// The hub's handle on one socket session: its mailbox and its queue count.
#[derive(Debug)]
pub(crate) struct SessionLink {
    pub(crate) id: SessionId,
    mailbox: mpsc::UnboundedSender<Command>,
    /// Pushes sent by the hub and not yet written by the session.
    queued: AtomicUsize,
    /// Set once the queue overflowed: the session is closing.
    overflowed: AtomicBool,
}

/// What became of a push handed to a session.
enum Queued {
    Yes,
    /// The session's queue is full: it was told to close.
    Overflow,
    /// The session is gone.
    Gone,
}

impl SessionLink {
    pub(crate) fn new(id: SessionId, mailbox: mpsc::UnboundedSender<Command>) -> Self {
        SessionLink {
            id,
            mailbox,
            queued: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }

    /// The session wrote (or dropped) this push.
    pub(crate) fn dequeued(&self, push: &Outgoing) {
        if !push.replayed {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn push(&self, out: Outgoing, max_queued: usize) -> Queued {
        if self.overflowed.load(Ordering::Relaxed) {
            return Queued::Overflow;
        }
        if !out.replayed && self.queued.fetch_add(1, Ordering::Relaxed) >= max_queued {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.overflowed.store(true, Ordering::Relaxed);
            let _ = self.mailbox.send(Command::Overflow);
            return Queued::Overflow;
        }
        match self.mailbox.send(Command::Push(out)) {
            Ok(()) => Queued::Yes,
            Err(_) => Queued::Gone,
        }
    }

    fn reply(&self, ack_id: u64, reply: &impl Serialize) {
        let body = serde_json::value::to_raw_value(reply).unwrap_or_else(|e| {
            // Our own reply types always serialize; say so if one ever does not.
            log::error!("hub: a reply did not serialize: {e}");
            RawValue::from_string(r#"{"ok":false,"code":500,"error":"internal error"}"#.into())
                .expect("valid JSON")
        });
        let _ = self.mailbox.send(Command::Reply { ack_id, body });
    }
}

// ---------------------------------------------------------------------------
// Requests

/// What sessions, the REST side and the store wrapper ask of the hub.
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
    /// The server stops.
    Shutdown,
}

/// A cheap, `Send` handle on the hub's request channel.
#[derive(Debug, Clone)]
pub(crate) struct HubHandle {
    tx: mpsc::UnboundedSender<Request>,
}

impl HubHandle {
    /// Sends a request; false when the hub has stopped.
    pub(crate) fn send(&self, request: Request) -> bool {
        self.tx.send(request).is_ok()
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

/// An alias now points at `item`; events after `since` are the new item's.
#[derive(Debug)]
struct AliasMoved {
    alias: String,
    item: ItemId,
    since: u64,
}

/// Starts the hub on the current actix-rt System; returns its handle and the
/// store wrapped so that alias re-points reach the hub.
pub(crate) fn start(store: Arc<dyn Store>, settings: HubSettings) -> (HubHandle, Arc<dyn Store>) {
    let (tx, requests) = mpsc::unbounded_channel();
    let (moves_tx, moves) = mpsc::unbounded_channel();
    let handle = HubHandle { tx };
    // Subscribe now, before any request can change the store.
    let events = store.subscribe();
    let wrapped: Arc<dyn Store> = Arc::new(HubStore {
        inner: store.clone(),
        moves: moves_tx,
    });
    let hub = Hub::new(store, settings, handle.weak());
    actix_rt::spawn(hub.run(events, requests, moves));
    (handle, wrapped)
}

// ---------------------------------------------------------------------------
// The hub's state

/// Where a watch's pushes go.
enum Sink {
    Socket {
        push_id: Arc<str>,
        /// `None` while dormant.
        session: Option<Arc<SessionLink>>,
    },
    Webhook(WebhookLink),
}

/// The idempotency key of socket watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct IdemKey {
    push_id: Arc<str>,
    kind: EventKind,
    /// The item id, or the alias name for a watch made on an alias.
    target: String,
    key: String,
}

struct Entry {
    watchable: String,
    kind: EventKind,
    /// The item the watch reports now.
    item: ItemId,
    alias: Option<String>,
    /// The access key the watch was made with (replays read the log with it).
    key: String,
    sink: Sink,
    view: Arc<WatchView>,
    /// The last seq queued for this watch.
    cursor: u64,
    /// The final push was queued: no more pushes; ends when it is acked.
    ending: bool,
    idem: Option<IdemKey>,
}

/// The fields of a push object that belong to the watch.
#[derive(Serialize)]
struct Head<'a> {
    watchable: &'a str,
    event: EventKind,
    id: ItemId,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<&'a str>,
}

/// One item's watches, per event kind.
#[derive(Default)]
struct ItemWatches {
    by_kind: [Vec<WatchId>; 3],
}

impl ItemWatches {
    fn is_empty(&self) -> bool {
        self.by_kind.iter().all(Vec::is_empty)
    }
}

struct Hub {
    store: Arc<dyn Store>,
    settings: HubSettings,
    me: WeakHub,
    next_id: WatchId,
    watches: HashMap<WatchId, Entry>,
    by_item: HashMap<ItemId, ItemWatches>,
    by_idem: HashMap<IdemKey, WatchId>,
    by_push: HashMap<Arc<str>, HashSet<WatchId>>,
    by_alias: HashMap<String, HashSet<WatchId>>,
    /// Dormant socket watches and since when.
    dormant: HashMap<WatchId, Instant>,
    /// The last event seq handled.
    processed: u64,
    /// Reused for the watcher list of one event (no allocation per event).
    scratch: Vec<WatchId>,
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
    fn new(store: Arc<dyn Store>, settings: HubSettings, me: WeakHub) -> Self {
        Hub {
            store,
            settings,
            me,
            next_id: 0,
            watches: HashMap::new(),
            by_item: HashMap::new(),
            by_idem: HashMap::new(),
            by_push: HashMap::new(),
            by_alias: HashMap::new(),
            dormant: HashMap::new(),
            processed: 0,
            scratch: Vec::new(),
        }
    }

    async fn run(
        mut self,
        mut events: broadcast::Receiver<Event>,
        mut requests: mpsc::UnboundedReceiver<Request>,
        mut moves: mpsc::UnboundedReceiver<AliasMoved>,
    ) {
        self.processed = self.store.latest_seq().await.unwrap_or(0);
        let every = (self.settings.watch_grace / 4)
            .clamp(Duration::from_millis(5), Duration::from_secs(30));
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            tokio::select! {
                event = events.recv(), if events_open => match event {
                    Ok(event) => {
                        // Alias moves go first: a re-point made before this
                        // event was handed out is applied before it.
                        while let Ok(moved) = moves.try_recv() {
                            self.alias_moved(&moved.alias, moved.item, moved.since).await;
                        }
                        self.on_event(event);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        log::warn!("hub: lagged {missed} events behind the store; catching up from its log");
                        self.catch_up().await;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        log::warn!("hub: the store closed its event channel; no more pushes");
                        events_open = false;
                    }
                },
                request = requests.recv() => match request {
                    None | Some(Request::Shutdown) => break,
                    Some(request) => self.on_request(request).await,
                },
                Some(moved) = moves.recv() => {
                    self.alias_moved(&moved.alias, moved.item, moved.since).await;
                }
                _ = tick.tick() => self.sweep().await,
            }
        }
        log::debug!("hub: stopped with {} watch(es)", self.watches.len());
    }

    // ---- events ----------------------------------------------------------

    fn on_event(&mut self, event: Event) {
        if event.seq <= self.processed {
            return;
        }
        self.processed = event.seq;
        let Some(index) = self.by_item.get(&event.id) else {
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
                    .any(|id| self.watches.get(id).is_some_and(|e| e.view.with_value));
            let shared = Arc::new(PushEvent {
                seq: event.seq,
                at: event.at,
                value: match (&event.value, wants_value) {
                    (Some(value), true) => Some(value.to_string().into_boxed_str()),
                    _ => None,
                },
            });
            for &id in &ids {
                self.queue_push(id, &shared, last, false);
            }
        }
        self.scratch = ids;
        if last {
            self.item_gone(event.id, event.kind);
        }
    }

    /// Queues one push for a watch unless its cursor is past it.
    fn queue_push(&mut self, id: WatchId, event: &Arc<PushEvent>, last: bool, replayed: bool) {
        let max_queued = self.settings.max_queued_pushes;
        let Some(entry) = self.watches.get_mut(&id) else {
            return;
        };
        if entry.ending || event.seq <= entry.cursor {
            return;
        }
        entry.cursor = event.seq;
        entry.ending |= last;
        let out = Outgoing {
            view: entry.view.clone(),
            event: event.clone(),
            last,
            replayed,
        };
        match &mut entry.sink {
            Sink::Socket { session, .. } => {
                let Some(link) = session else { return };
                match link.push(out, max_queued) {
                    Queued::Yes | Queued::Overflow => {}
                    Queued::Gone => {
                        *session = None;
                        self.dormant.insert(id, Instant::now());
                    }
                }
            }
            Sink::Webhook(link) => {
                if !link.push(out, max_queued) {
                    log::warn!(
                        "hub: webhook watch {} has {max_queued} pushes waiting for its URL; ending it \
                         (the event log still has them: GET /items/{}/events)",
                        entry.watchable,
                        entry.item
                    );
                    self.remove_watch(id, true);
                }
            }
        }
    }

    /// The item was removed or expired (`kind`): that kind's watches await
    /// the ack of their final push; the others end now.
    fn item_gone(&mut self, item: ItemId, kind: EventKind) {
        let Some(index) = self.by_item.remove(&item) else {
            return;
        };
        for (k, ids) in index.by_kind.into_iter().enumerate() {
            for id in ids {
                if k == kind.index() {
                    if let Some(entry) = self.watches.get_mut(&id) {
                        entry.ending = true;
                        // A webhook or session that got no final push (dormant)
                        // never acks: a dormant one is forgotten after the grace.
                    }
                } else {
                    self.remove_watch(id, false);
                }
            }
        }
    }

    /// Catches up from the store's log after the broadcast receiver lagged.
    async fn catch_up(&mut self) {
        let since = self.processed;
        let mut found: Vec<Event> = Vec::new();
        let items: Vec<(ItemId, Vec<String>)> = self
            .by_item
            .iter()
            .map(|(item, index)| {
                let keys: HashSet<&str> = index
                    .by_kind
                    .iter()
                    .flatten()
                    .filter_map(|id| self.watches.get(id).map(|e| e.key.as_str()))
                    .collect();
                (*item, keys.into_iter().map(str::to_owned).collect())
            })
            .collect();
        for (item, keys) in items {
            let query = EventQuery {
                since,
                kind: None,
                with_value: true,
            };
            for key in keys {
                match self
                    .store
                    .events(&key, &item.to_string(), query.clone())
                    .await
                {
                    Ok(page) => {
                        found.extend(page.events);
                        break;
                    }
                    Err(e) => log::debug!("hub: catch-up of item {item} with one key: {e}"),
                }
            }
        }
        found.sort_by_key(|e| e.seq);
        for event in found {
            self.on_event(event);
        }
    }

    // ---- requests --------------------------------------------------------

    async fn on_request(&mut self, request: Request) {
        match request {
            Request::Watch {
                session,
                push_id,
                ack_id,
                watch,
            } => {
                if let Err(failure) = self.watch(&session, &push_id, ack_id, watch).await {
                    session.reply(ack_id, &failure);
                }
            }
            Request::Unwatch {
                session,
                push_id,
                ack_id,
                watchable,
            } => match self.find(&watchable) {
                Some(id)
                    if matches!(&self.watches[&id].sink,
                        Sink::Socket { push_id: owner, .. } if *owner == push_id) =>
                {
                    self.remove_watch(id, true);
                    session.reply(ack_id, &Success(Empty {}));
                }
                _ => session.reply(ack_id, &not_found_watch(&watchable)),
            },
            Request::FinalAcked { watch } => {
                if self.watches.get(&watch).is_some_and(|e| e.ending) {
                    self.remove_watch(watch, false);
                }
            }
            Request::SessionEnded { session, push_id } => {
                let now = Instant::now();
                for id in self.by_push.get(&push_id).into_iter().flatten() {
                    if let Some(entry) = self.watches.get_mut(id) {
                        if let Sink::Socket { session: s, .. } = &mut entry.sink {
                            if s.as_ref().is_some_and(|l| l.id == session) {
                                *s = None;
                                self.dormant.insert(*id, now);
                            }
                        }
                    }
                }
            }
            Request::AddWebhook { key, spec, reply } => {
                let _ = reply.send(self.add_webhook(key, spec).await);
            }
            Request::RemoveWebhook {
                key,
                watchable,
                reply,
            } => {
                let result = match self.find(&watchable) {
                    Some(id)
                        if matches!(self.watches[&id].sink, Sink::Webhook(_))
                            && self.watches[&id].key == key =>
                    {
                        self.remove_watch(id, true);
                        Ok(())
                    }
                    _ => Err(not_found_watch(&watchable)),
                };
                let _ = reply.send(result);
            }
            Request::WebhookFailed { watch } => self.remove_watch(watch, true),
            Request::Shutdown => {}
        }
    }

    /// The watch whose `watchable` string this is.
    fn find(&self, watchable: &str) -> Option<WatchId> {
        let id = watchable
            .strip_prefix('w')
            .and_then(|s| s.get(..16))
            .and_then(|s| u64::from_str_radix(s, 16).ok())?;
        self.watches
            .get(&id)
            .filter(|e| e.watchable == watchable)
            .map(|_| id)
    }

    fn new_watchable(&mut self) -> (WatchId, String) {
        self.next_id += 1;
        let id = self.next_id;
        // The random part makes a watchable unguessable, also across restarts.
        (id, format!("w{id:016x}{:016x}", rand::random::<u64>()))
    }

    fn index(&mut self, id: WatchId) {
        if let Some(entry) = self.watches.get(&id) {
            let list = &mut self.by_item.entry(entry.item).or_default().by_kind[entry.kind.index()];
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }

    fn unindex(&mut self, id: WatchId) {
        let Some(entry) = self.watches.get(&id) else {
            return;
        };
        if let Some(index) = self.by_item.get_mut(&entry.item) {
            index.by_kind[entry.kind.index()].retain(|w| *w != id);
            if index.is_empty() {
                self.by_item.remove(&entry.item);
            }
        }
    }

    /// Forgets a watch; `cancel` also drops its pushes still queued.
    fn remove_watch(&mut self, id: WatchId, cancel: bool) {
        self.unindex(id);
        let Some(entry) = self.watches.remove(&id) else {
            return;
        };
        if cancel {
            entry.view.live.store(false, Ordering::Relaxed);
        }
        if let Some(idem) = &entry.idem {
            self.by_idem.remove(idem);
        }
        if let Sink::Socket { push_id, .. } = &entry.sink {
            if let Some(set) = self.by_push.get_mut(push_id) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_push.remove(push_id);
                }
            }
        }
        if let Some(alias) = &entry.alias {
            if let Some(set) = self.by_alias.get_mut(alias) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_alias.remove(alias);
                }
            }
        }
        self.dormant.remove(&id);
        log::debug!("hub: watch {} ended", entry.watchable);
    }

    /// A new view for an entry (after a re-watch or an alias move).
    fn view(
        id: WatchId,
        head: &Head<'_>,
        message: Option<Box<str>>,
        with_value: bool,
        live: Arc<AtomicBool>,
    ) -> Arc<WatchView> {
        let mut head = serde_json::to_string(head).unwrap_or_default();
        head.pop(); // the closing brace: seq, at, … follow
        Arc::new(WatchView {
            watch: id,
            head: head.into_boxed_str(),
            message,
            with_value,
            live,
        })
    }

    fn refresh_view(
        &mut self,
        id: WatchId,
        message: Option<Option<Box<str>>>,
        with_value: Option<bool>,
    ) {
        if let Some(entry) = self.watches.get_mut(&id) {
            let old = &entry.view;
            entry.view = Self::view(
                id,
                &Head {
                    watchable: &entry.watchable,
                    event: entry.kind,
                    id: entry.item,
                    alias: entry.alias.as_deref(),
                },
                message.unwrap_or_else(|| old.message.clone()),
                with_value.unwrap_or(old.with_value),
                old.live.clone(),
            );
        }
    }

    /// `watch`: see the module docs for the order of things.
    async fn watch(
        &mut self,
        link: &Arc<SessionLink>,
        push_id: &Arc<str>,
        ack_id: u64,
        watch: Watch,
    ) -> Result<(), Failure> {
        let kind = watch.event;
        let query = |since| EventQuery {
            since,
            kind: Some(kind),
            with_value: watch.with_value,
        };
        let (item, alias, latest, page) = match self.store.check_read(&watch.key, &watch.id).await {
            Ok(ItemRef { id, alias, seq, .. }) => {
                let page = match watch.after {
                    Some(after) => Some(
                        self.store
                            .events(&watch.key, &id.to_string(), query(after))
                            .await
                            .map_err(|e| failure(&e))?,
                    ),
                    None => None,
                };
                (id, alias, seq, page)
            }
            Err(StoreError::NotFound(message)) => {
                // A gone item: only a re-watch that missed its final push of
                // this kind gets it (replayed), and then the watch ends.
                let not_found = || Failure::new(404, format!("not found: {message}"));
                let after = watch.after.ok_or_else(not_found)?;
                if kind == EventKind::Update {
                    return Err(not_found());
                }
                let page = self
                    .store
                    .events(&watch.key, &watch.id, query(after))
                    .await
                    .map_err(|_| not_found())?;
                if !page.events.iter().any(|e| e.kind == kind) {
                    return Err(not_found());
                }
                let alias = (watch.id.parse::<ItemId>().is_err()).then(|| watch.id.clone());
                (page.id, alias, page.latest, Some(page))
            }
            Err(e) => return Err(failure(&e)),
        };
        let idem = IdemKey {
            push_id: push_id.clone(),
            kind,
            target: alias.clone().unwrap_or_else(|| item.to_string()),
            key: watch.key.clone(),
        };
        let message = watch
            .message
            .as_ref()
            .map(|m| m.to_string().into_boxed_str());
        let id = match self.by_idem.get(&idem) {
            Some(&id) => id,
            None => {
                let (id, watchable) = self.new_watchable();
                let live = Arc::new(AtomicBool::new(true));
                let head = Head {
                    watchable: &watchable,
                    event: kind,
                    id: item,
                    alias: alias.as_deref(),
                };
                let view = Self::view(id, &head, None, false, live);
                self.watches.insert(
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
                        idem: Some(idem.clone()),
                    },
                );
                self.by_idem.insert(idem, id);
                self.by_push.entry(push_id.clone()).or_default().insert(id);
                if let Some(alias) = &alias {
                    self.by_alias.entry(alias.clone()).or_default().insert(id);
                }
                id
            }
        };
        // Attach to this session; follow the item the alias names now.
        let (same_session, moved) = {
            let entry = self.watches.get_mut(&id).expect("just found or inserted");
            let same =
                matches!(&entry.sink, Sink::Socket { session: Some(l), .. } if l.id == link.id);
            entry.sink = Sink::Socket {
                push_id: push_id.clone(),
                session: Some(link.clone()),
            };
            (same, entry.item != item)
        };
        self.dormant.remove(&id);
        if moved {
            self.unindex(id);
            if let Some(entry) = self.watches.get_mut(&id) {
                entry.item = item;
            }
        }
        self.refresh_view(id, Some(message), Some(watch.with_value));
        let entry = self.watches.get_mut(&id).expect("present");
        entry.cursor = match watch.after {
            Some(after) => after,
            None if same_session => entry.cursor,
            None => latest,
        };
        // A (re-)watch restarts the watch, also one whose final push was
        // queued and never acked: the replay below queues it again.
        entry.ending = false;
        let watchable = entry.watchable.clone();
        self.index(id);
        link.reply(
            ack_id,
            &Success(WatchOk {
                watchable,
                seq: latest,
                gap: page.as_ref().is_some_and(|p| p.gap),
            }),
        );
        if let Some(page) = page {
            self.replay(id, page);
        }
        Ok(())
    }

    /// Queues logged events for a watch (backlog after `after`, or the new
    /// item's after an alias move), in seq order, above its cursor.
    fn replay(&mut self, id: WatchId, page: EventsPage) {
        let Some(kind) = self.watches.get(&id).map(|e| e.kind) else {
            return;
        };
        for event in page.events {
            let last = event.kind != EventKind::Update;
            if event.kind != kind {
                if last {
                    // The item is gone by another kind of event: end silently.
                    self.remove_watch(id, false);
                    return;
                }
                continue;
            }
            let shared = Arc::new(PushEvent {
                seq: event.seq,
                at: event.at,
                value: event.value.as_ref().map(|v| v.to_string().into_boxed_str()),
            });
            self.queue_push(id, &shared, last, true);
            if last {
                self.unindex(id);
                if let Some(entry) = self.watches.get_mut(&id) {
                    entry.ending = true;
                }
                return;
            }
        }
    }

    async fn add_webhook(&mut self, key: String, spec: WebhookSpec) -> Result<String, Failure> {
        let checked = self
            .store
            .check_read(&key, &spec.id)
            .await
            .map_err(|e| failure(&e))?;
        let (id, watchable) = self.new_watchable();
        let kind = spec.kind;
        let live = Arc::new(AtomicBool::new(true));
        let message = spec
            .message
            .as_ref()
            .map(|m| m.to_string().into_boxed_str());
        let head = Head {
            watchable: &watchable,
            event: kind,
            id: checked.id,
            alias: checked.alias.as_deref(),
        };
        let view = Self::view(id, &head, message, false, live);
        let link = webhooks::spawn_delivery(
            id,
            watchable.clone(),
            spec,
            self.settings.webhook.clone(),
            self.me.clone(),
        );
        if let Some(alias) = &checked.alias {
            self.by_alias.entry(alias.clone()).or_default().insert(id);
        }
        self.watches.insert(
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
                idem: None,
            },
        );
        self.index(id);
        log::debug!("hub: webhook watch {watchable} on item {}", checked.id);
        Ok(watchable)
    }

    /// An alias was re-pointed: its watches follow it to `item`, and get the
    /// events of `item` after `since` that the hub already handled.
    async fn alias_moved(&mut self, alias: &str, item: ItemId, since: u64) {
        let ids: Vec<WatchId> = self
            .by_alias
            .get(alias)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            let Some(entry) = self.watches.get(&id) else {
                continue;
            };
            if entry.ending || entry.item == item {
                continue;
            }
            let active = match &entry.sink {
                Sink::Socket { session, .. } => session.is_some(),
                Sink::Webhook(_) => true,
            };
            let (key, cursor) = (entry.key.clone(), entry.cursor);
            self.unindex(id);
            if let Some(entry) = self.watches.get_mut(&id) {
                entry.item = item;
            }
            self.refresh_view(id, None, None);
            self.index(id);
            log::debug!("hub: alias {alias:?} now names item {item}: its watches follow");
            if active && since < self.processed {
                let query = EventQuery {
                    since: since.max(cursor),
                    kind: None,
                    with_value: true,
                };
                match self.store.events(&key, &item.to_string(), query).await {
                    Ok(mut page) => {
                        page.events.retain(|e| e.seq <= self.processed);
                        self.replay(id, page);
                    }
                    Err(e) => log::debug!("hub: alias {alias:?} moved; no log of {item}: {e}"),
                }
            }
        }
    }

    /// Forgets dormant watches past the grace, and re-resolves watched
    /// aliases (for re-points made behind the server's back).
    async fn sweep(&mut self) {
        let now = Instant::now();
        let grace = self.settings.watch_grace;
        let expired: Vec<WatchId> = self
            .dormant
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= grace)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            log::debug!("hub: forgetting a watch dormant for {grace:?}");
            self.remove_watch(id, false);
        }
        let aliases: Vec<(String, ItemId)> = self
            .by_alias
            .iter()
            .filter_map(|(alias, ids)| {
                let item = ids
                    .iter()
                    .find_map(|id| self.watches.get(id))
                    .map(|e| e.item)?;
                Some((alias.clone(), item))
            })
            .collect();
        for (alias, item) in aliases {
            if let Ok(now_item) = self.store.resolve(&alias).await {
                if now_item != item {
                    let since = self.processed;
                    self.alias_moved(&alias, now_item, since).await;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The store wrapper

/// The server's store as REST and [`ServerHandle::store`](super::ServerHandle::store)
/// see it: every call goes to the real store; alias re-points are also told
/// to the hub, so that watches on the alias follow it.
pub(crate) struct HubStore {
    inner: Arc<dyn Store>,
    /// The hub's own channel for alias moves, read before every event.
    moves: mpsc::UnboundedSender<AliasMoved>,
}

impl Store for HubStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn info(&self) -> StoreFuture<'_, StoreInfo> {
        self.inner.info()
    }

    fn make_keys<'a>(&'a self, boss: &'a str, request: MakeKeys) -> StoreFuture<'a, Keys> {
        self.inner.make_keys(boss, request)
    }

    fn write<'a>(&'a self, key: &'a str, item: WriteItem) -> StoreFuture<'a, Written> {
        if item.alias.is_none() {
            return self.inner.write(key, item);
        }
        Box::pin(async move {
            let written = self.inner.write(key, item).await?;
            if let Some(alias) = &written.alias {
                let _ = self.moves.send(AliasMoved {
                    alias: alias.clone(),
                    item: written.id,
                    since: written.seq,
                });
            }
            Ok(written)
        })
    }

    fn read<'a>(&'a self, key: &'a str, id: &'a str, intent: bool) -> StoreFuture<'a, ReadItem> {
        self.inner.read(key, id, intent)
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        update: UpdateItem,
    ) -> StoreFuture<'a, Updated> {
        self.inner.update(key, id, update)
    }

    fn remove<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, Removed> {
        self.inner.remove(key, id)
    }

    fn alias<'a>(&'a self, key: &'a str, alias: &'a str, id: &'a str) -> StoreFuture<'a, Aliased> {
        Box::pin(async move {
            // Read before the re-point: an event of the new item right after
            // it is then reported (rather than missed).
            let since = self.inner.latest_seq().await?;
            let aliased = self.inner.alias(key, alias, id).await?;
            let _ = self.moves.send(AliasMoved {
                alias: aliased.alias.clone(),
                item: aliased.id,
                since,
            });
            Ok(aliased)
        })
    }

    fn resolve<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ItemId> {
        self.inner.resolve(id)
    }

    fn check_read<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, ItemRef> {
        self.inner.check_read(key, id)
    }

    fn events<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        query: EventQuery,
    ) -> StoreFuture<'a, EventsPage> {
        self.inner.events(key, id, query)
    }

    fn latest_seq(&self) -> StoreFuture<'_, u64> {
        self.inner.latest_seq()
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_frames_have_the_protocol_shape() {
        let head = Head {
            watchable: "w7",
            event: EventKind::Update,
            id: ItemId(1),
            alias: Some("my\"alias"),
        };
        let view = Hub::view(
            7,
            &head,
            Some(r#"{"m":1}"#.into()),
            true,
            Arc::new(AtomicBool::new(true)),
        );
        let event = Arc::new(PushEvent {
            seq: 9,
            at: 10,
            value: Some("[1,2]".into()),
        });
        let out = Outgoing {
            view,
            event,
            last: false,
            replayed: false,
        };
        let frame = out.frame(3);
        let json = frame.strip_prefix("423").expect("42<ack id>");
        let parsed: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!(["push", {
                "watchable": "w7", "event": "update", "id": ItemId(1).to_string(),
                "alias": "my\"alias", "seq": 9, "at": 10, "message": {"m": 1}, "value": [1, 2]
            }])
        );
        assert!(frame.len() <= out.view.object_len(&out.event) + 32);
    }
}
