//! `SubscriberActor`: registers watches through a [`ConnectionActor`],
//! delivers each push to the application exactly once and in order per
//! watch, acks it only after the application's handler returned, and
//! re-watches with `after` when the connection comes back. It never touches
//! the socket itself.
//!
//! # Exactly once
//!
//! The server delivers at least once (protocol.md 2.4): after a reconnect
//! this actor re-watches with `after` = the last seq it handled (or the
//! watch's starting seq), so whatever was sent but not acked, or never sent,
//! comes again from the event log. A push whose seq is not above the last
//! handled one for its watch is a repeat: it is acked and dropped. When the
//! re-watch lands on another node (a failover) the watch gets a new
//! watchable; what was handled under the old one carries over to it.
//!
//! # Order and bounds
//!
//! Pushes are handled one at a time in arrival order, which is seq order per
//! watch. The queue in front of a slow handler holds at most what the server
//! keeps in flight for the connection (1,000 by default), since nothing is
//! acked before its handler returns.

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;
use serde_json::Value;

use super::connection::{AckPush, ConnectionActor, Delivery, UnwatchItem, WatchItem};
use super::error::{DisconnectReason, WatchError};
use super::session::{ConnectionState, Session};
use super::SubscribeState;
use crate::protocol::messages::{Ended, EventKind, Push, Watch, WatchOk};

impl Message for Push {
    type Result = ();
}

/// Subscribes to one kind of event of an item.
///
/// ```
/// use effex::client::Subscribe;
/// use effex::protocol::messages::EventKind;
///
/// let subscribe = Subscribe::new(EventKind::Update, "item-id", "reader-key")
///     .with_value()
///     .message(serde_json::json!({"tag": "prices"}));
/// assert!(subscribe.watch.with_value);
/// ```
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<WatchOk, WatchError>")]
pub struct Subscribe {
    /// The watch request (its `after`, if set, replays events after that seq).
    pub watch: Watch,
}

impl Subscribe {
    /// Follow `event` of the item `id` (or alias), read with `key`.
    pub fn new(event: EventKind, id: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            watch: Watch {
                event,
                id: id.into(),
                key: key.into(),
                after: None,
                message: None,
                with_value: false,
            },
        }
    }

    /// Update pushes carry the new value.
    pub fn with_value(mut self) -> Self {
        self.watch.with_value = true;
        self
    }

    /// Any JSON, echoed in every push of this watch.
    pub fn message(mut self, message: Value) -> Self {
        // A `Value` always serializes (its map keys are strings).
        self.watch.message = serde_json::value::to_raw_value(&message).ok();
        self
    }

    /// Replays every logged event with a later seq first.
    pub fn after(mut self, seq: u64) -> Self {
        self.watch.after = Some(seq);
        self
    }
}

/// Ends a subscription.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), WatchError>")]
pub struct Unsubscribe {
    /// The watchable returned by [`Subscribe`].
    pub watchable: String,
}

/// What a subscriber tells the application besides pushes.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum SubscriberEvent {
    /// The connection dropped; it comes back by itself while watches exist.
    Disconnected(DisconnectReason),
    /// The connection is back and every watch was sent again with its `after`.
    Reconnected(Session),
    /// The event log no longer holds every event this watch missed: re-read the item.
    Gap {
        /// The watch concerned.
        watchable: String,
        /// The item id or alias it watches.
        id: String,
    },
    /// A watch ended: its item is gone (after its final push), the server
    /// refused to renew it, or the server ended it (`ended`: its key
    /// expired, the alias it follows names an item the key may not read, or
    /// a limit; [`WatchError::Ended`]).
    Ended {
        /// The watch concerned.
        watchable: String,
        /// Why, when the server refused or ended it; `None` after the final push.
        error: Option<WatchError>,
    },
}

/// Where pushes go.
enum PushHandler {
    /// An actor: the push is acked once the actor has handled the message.
    Recipient(Recipient<Push>),
    /// A function, called on the subscriber's own thread.
    Function(Box<dyn FnMut(&Push)>),
}

/// What waits for the handler, in arrival order.
enum Next {
    Push(Delivery),
    /// The server ended a watch: reported after the pushes that came before.
    Ended(Ended),
}

impl Next {
    fn watchable(&self) -> &str {
        match self {
            Next::Push(delivery) => &delivery.push.watchable,
            Next::Ended(ended) => &ended.watchable,
        }
    }
}

/// One registered watch.
struct Watching {
    watch: Watch,
    /// The last seq handed to the handler (or the watch's starting seq).
    last_handled: u64,
}

/// Registers watches through a [`ConnectionActor`] and delivers their pushes;
/// see the module docs.
///
/// ```no_run
/// use actix::prelude::*;
/// use effex::client::{ClientConfig, ConnectionActor, Subscribe, SubscriberActor};
/// use effex::protocol::messages::EventKind;
///
/// # #[actix::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = ConnectionActor::new(ClientConfig::builder("ws://127.0.0.1:8150").build()?).start();
/// let subscriber = SubscriberActor::with_handler(conn, |push| {
///     println!("{} of {} (seq {})", push.event, push.id, push.seq);
/// })
/// .start();
/// let watch = subscriber
///     .send(Subscribe::new(EventKind::Update, "item-id", "reader-key"))
///     .await??;
/// println!("watching as {}", watch.watchable);
/// # Ok(())
/// # }
/// ```
pub struct SubscriberActor {
    conn: Addr<ConnectionActor>,
    handler: PushHandler,
    events: Option<Recipient<SubscriberEvent>>,
    watching: HashMap<String, Watching>,
    queue: VecDeque<Next>,
    /// Watch requests whose reply has not been read yet.
    watches_pending: usize,
    /// Pushes that arrived before the reply of the watch they belong to
    /// (the server sends the reply first, but the reply reaches this actor
    /// through a future and the pushes through the mailbox).
    early: Vec<Next>,
    busy: bool,
    /// Whether the connection dropped since the watches were last sent.
    dropped: bool,
    /// Old watchable → new, for watches a re-watch renamed (another node
    /// after a failover): a push of the old connection still in the handler
    /// then records its seq on the new watch, so its replay is known as a
    /// repeat. At most one entry per watch; cleared on every disconnect.
    renamed: HashMap<String, String>,
}

impl SubscriberActor {
    /// A subscriber whose pushes go to an actor (acked once it handled them).
    pub fn new(conn: Addr<ConnectionActor>, handler: Recipient<Push>) -> Self {
        Self::with(conn, PushHandler::Recipient(handler))
    }

    /// A subscriber whose pushes go to a function (acked once it returned).
    pub fn with_handler(conn: Addr<ConnectionActor>, handler: impl FnMut(&Push) + 'static) -> Self {
        Self::with(conn, PushHandler::Function(Box::new(handler)))
    }

    fn with(conn: Addr<ConnectionActor>, handler: PushHandler) -> Self {
        Self {
            conn,
            handler,
            events: None,
            watching: HashMap::new(),
            queue: VecDeque::new(),
            watches_pending: 0,
            early: Vec::new(),
            busy: false,
            dropped: false,
            renamed: HashMap::new(),
        }
    }

    /// Also tell `events` about disconnects, reconnects, gaps and ended watches.
    pub fn notify(mut self, events: Recipient<SubscriberEvent>) -> Self {
        self.events = Some(events);
        self
    }

    fn tell(&self, event: SubscriberEvent) {
        if let Some(events) = &self.events {
            events.do_send(event);
        }
    }

    /// Registers `watch` and remembers it under its watchable.
    fn watch(
        &mut self,
        watch: Watch,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<WatchOk, WatchError>> {
        let request = WatchItem {
            watch: watch.clone(),
            subscriber: ctx.address().recipient(),
            ended: Some(ctx.address().recipient()),
        };
        let sent = self.conn.send(request);
        self.watches_pending += 1;
        Box::pin(sent.into_actor(self).map(move |reply, act, ctx| {
            act.watches_pending -= 1;
            // Whatever the outcome, pushes held for it can be sorted now.
            let early = std::mem::take(&mut act.early);
            for delivery in early.into_iter().rev() {
                act.queue.push_front(delivery);
            }
            ctx.notify(Resume);
            let ok = reply.map_err(|_| WatchError::Emit(super::EmitError::Stopped))??;
            if ok.gap {
                act.tell(SubscriberEvent::Gap {
                    watchable: ok.watchable.clone(),
                    id: watch.id.clone(),
                });
            }
            // Handled seqs carry over when the server kept the watchable.
            let last_handled = act
                .watching
                .get(&ok.watchable)
                .map_or(watch.after.unwrap_or(ok.seq), |w| w.last_handled);
            act.watching.insert(
                ok.watchable.clone(),
                Watching {
                    watch,
                    last_handled,
                },
            );
            Ok(ok)
        }))
    }

    /// After a reconnect: every watch again, each with its `after`.
    fn rewatch_all(&mut self, ctx: &mut Context<Self>) {
        let watches: Vec<(String, Watch)> = self
            .watching
            .iter()
            .map(|(watchable, w)| {
                let mut watch = w.watch.clone();
                watch.after = Some(w.last_handled);
                (watchable.clone(), watch)
            })
            .collect();
        for (old, watch) in watches {
            let renew = self
                .watch(watch, ctx)
                .map(move |reply, act, _| match reply {
                    Ok(ok) if ok.watchable != old => {
                        // The server forgot the old watch and made a new one
                        // (or another node did): what was handled carries over.
                        if let Some(before) = act.watching.remove(&old) {
                            if let Some(now) = act.watching.get_mut(&ok.watchable) {
                                now.last_handled = now.last_handled.max(before.last_handled);
                            }
                        }
                        act.renamed.insert(old, ok.watchable);
                    }
                    Ok(_) => {}
                    Err(error) if error.is_final() => {
                        act.watching.remove(&old);
                        act.tell(SubscriberEvent::Ended {
                            watchable: old,
                            error: Some(error),
                        });
                    }
                    Err(error) => log::debug!(
                        "re-watch of {old} failed ({error}); retrying on the next connection"
                    ),
                });
            ctx.spawn(renew);
        }
    }

    /// Hands the next queued push to the handler, if none is being handled.
    fn deliver_next(&mut self, ctx: &mut Context<Self>) {
        while !self.busy {
            let Some(next) = self.queue.pop_front() else {
                return;
            };
            let Some(watching) = self.watching.get(next.watchable()) else {
                match next {
                    // Probably the watch whose reply is on its way.
                    next if self.watches_pending > 0 => self.early.push(next),
                    // Not (or no longer) ours: ack so the server frees its slot.
                    Next::Push(delivery) => self.conn.do_send(AckPush(delivery.ack)),
                    Next::Ended(_) => {}
                }
                continue;
            };
            let delivery = match next {
                Next::Push(delivery) => delivery,
                Next::Ended(ended) => {
                    self.watching.remove(&ended.watchable);
                    self.tell(SubscriberEvent::Ended {
                        watchable: ended.watchable,
                        error: Some(WatchError::Ended {
                            code: ended.code,
                            message: ended.error,
                        }),
                    });
                    continue;
                }
            };
            if delivery.push.seq <= watching.last_handled {
                log::debug!(
                    "dropping repeated push {} of {}",
                    delivery.push.seq,
                    delivery.push.watchable
                );
                self.conn.do_send(AckPush(delivery.ack));
                continue;
            }
            match &mut self.handler {
                PushHandler::Function(handler) => {
                    handler(&delivery.push);
                    self.handled(delivery);
                }
                PushHandler::Recipient(recipient) => {
                    self.busy = true;
                    let push = delivery.push.clone();
                    let handled =
                        recipient
                            .send(push)
                            .into_actor(self)
                            .map(move |result, act, ctx| {
                                act.busy = false;
                                if result.is_err() {
                                    log::error!(
                                        "the push handler actor is gone: stopping the subscriber"
                                    );
                                    ctx.stop();
                                    return;
                                }
                                act.handled(delivery);
                                act.deliver_next(ctx);
                            });
                    ctx.spawn(handled);
                }
            }
        }
    }

    /// Records a handled push and acks it.
    fn handled(&mut self, delivery: Delivery) {
        let push = &delivery.push;
        let ended = matches!(push.event, EventKind::Remove | EventKind::Expire);
        let renamed = self.renamed.get(&push.watchable).cloned();
        let watchable = renamed.as_deref().unwrap_or(&push.watchable);
        if let Some(watching) = self.watching.get_mut(watchable) {
            watching.last_handled = watching.last_handled.max(push.seq);
        }
        self.conn.do_send(AckPush(delivery.ack));
        if ended {
            // The server ends the watch with its final push.
            self.watching.remove(watchable);
            self.tell(SubscriberEvent::Ended {
                watchable: push.watchable.clone(),
                error: None,
            });
        }
    }
}

impl Actor for SubscriberActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.conn.do_send(SubscribeState(ctx.address().recipient()));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for watchable in self.watching.keys() {
            self.conn.do_send(UnwatchItem {
                watchable: watchable.clone(),
            });
        }
    }
}

impl Handler<Subscribe> for SubscriberActor {
    type Result = ResponseActFuture<Self, Result<WatchOk, WatchError>>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        self.watch(msg.watch, ctx)
    }
}

impl Handler<Unsubscribe> for SubscriberActor {
    type Result = ResponseFuture<Result<(), WatchError>>;

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) -> Self::Result {
        self.watching.remove(&msg.watchable);
        let sent = self.conn.send(UnwatchItem {
            watchable: msg.watchable,
        });
        Box::pin(async move {
            sent.await
                .map_err(|_| WatchError::Emit(super::EmitError::Stopped))?
        })
    }
}

/// Resumes delivery once a watch reply has been read (internal).
struct Resume;

impl Message for Resume {
    type Result = ();
}

impl Handler<Resume> for SubscriberActor {
    type Result = ();

    fn handle(&mut self, _: Resume, ctx: &mut Self::Context) {
        self.deliver_next(ctx);
    }
}

impl Handler<Delivery> for SubscriberActor {
    type Result = ();

    fn handle(&mut self, delivery: Delivery, ctx: &mut Self::Context) {
        self.queue.push_back(Next::Push(delivery));
        self.deliver_next(ctx);
    }
}

impl Handler<Ended> for SubscriberActor {
    type Result = ();

    fn handle(&mut self, ended: Ended, ctx: &mut Self::Context) {
        self.queue.push_back(Next::Ended(ended));
        self.deliver_next(ctx);
    }
}

impl Handler<ConnectionState> for SubscriberActor {
    type Result = ();

    fn handle(&mut self, state: ConnectionState, ctx: &mut Self::Context) {
        match state {
            ConnectionState::Disconnected { reason, .. } => {
                self.dropped = true;
                self.renamed.clear();
                // Pushes not yet handled come again by replay.
                self.queue.clear();
                self.early.clear();
                self.tell(SubscriberEvent::Disconnected(reason));
            }
            ConnectionState::Connected(session) if self.dropped => {
                self.dropped = false;
                self.rewatch_all(ctx);
                self.tell(SubscriberEvent::Reconnected(session));
            }
            _ => {}
        }
    }
}
