//! `ConnectionActor`: owns the one push connection of an application and the
//! messages that reach it (`GetConnected`, `Emit`, `Disconnect`,
//! `SubscribeState`). It speaks Engine.IO / Socket.IO through
//! [`crate::protocol`] and frames through [`super::socket`]; it never blocks
//! its mailbox.
//!
//! # States
//!
//! `Idle → Connecting → Connected → Idle …`, and `Stopped` at the end. The
//! first `GetConnected` while idle starts an attempt; every `GetConnected` that
//! arrives while it runs is queued as a waiter; exactly one socket is opened,
//! and every waiter is answered with the attempt's outcome: success, failure,
//! timeout, drop, `Disconnect` or actor stop. After a disconnect the state is
//! `Idle` again, so the next `GetConnected` opens a new socket.
//!
//! # Several nodes (failover)
//!
//! When the config lists several URLs ([`ClientConfigBuilder::also`](super::ClientConfigBuilder::also)),
//! an attempt is one round over the nodes, one socket at a time: it dials the
//! current node and, when that fails (refused, timed out, dropped before the
//! pass), moves to the next one (round robin) and dials it at once, until a
//! node passes or every node has failed once; the waiters are answered then,
//! with the session or the last node's error. A lost connection (one the
//! application did not ask to close) also moves to the next node. A working
//! node is kept: a success does not go back to the first URL. The automatic
//! reconnects wait the [`Backoff`](super::Backoff) before each round, pass
//! with the same push id, and the [`SubscriberActor`](super::SubscriberActor)
//! re-watches with `after`, so a node's death costs a reconnect, not events.
//! A refused pass ends the round (every node shares the passphrase). With
//! one URL an attempt is one socket, as before. A round over dead nodes that
//! do not refuse but never answer takes up to `connect_timeout` per node.
//!
//! # Epochs
//!
//! Each attempt gets a new epoch. Frames carry the epoch of their socket,
//! timers and futures capture the epoch they were started for, and anything
//! from an older epoch is ignored: a late timer, frame or reply can never
//! touch the current socket.
//!
//! # No waiting on I/O
//!
//! The attempt runs as futures spawned into the actor's context (never
//! `ctx.wait`, which would freeze the mailbox and the timers); waiters hold
//! `oneshot` receivers. [`StreamHandler::finished`] is overridden, since its
//! default would stop the actor when a socket ends.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::dev::MessageResponse;
use actix::prelude::*;
use awc::ws::CloseCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::oneshot;

use super::config::ClientConfig;
use super::error::{ConnectError, DisconnectReason, EmitError, Stage, WatchError};
use super::session::{ConnectionState, Session};
use super::socket::{self, FrameReader, Inbound, SocketEvent, SocketWriter};
use super::stats::{ConnectionStats, Stats};
use crate::protocol::engineio::{self, OpenPacket};
use crate::protocol::messages::{
    self, ConnectOk, ConnectRefused, Ended, EventKind, Pass, PassOk, Push, Watch, WatchOk,
};
use crate::protocol::socketio::{self, PacketKind, DEFAULT_NAMESPACE};

/// Asks for the connection: answers with the current session, or starts a
/// connect attempt (or joins the running one) and answers when it ends.
///
/// ```no_run
/// # async fn demo(conn: actix::Addr<effex::client::ConnectionActor>) {
/// use effex::client::GetConnected;
/// let session = conn.send(GetConnected).await.expect("actor alive").expect("connected");
/// println!("connected as {} ({})", session.push_id(), session.connection());
/// # }
/// ```
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Session, ConnectError>")]
pub struct GetConnected;

/// Closes the connection cleanly (Socket.IO `41`, Engine.IO `1`, WebSocket
/// close 1000) and answers every waiter. A later `GetConnected` connects again.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Disconnect;

/// Closes the connection cleanly (as [`Disconnect`]), answers every waiter
/// with [`ConnectError::Stopped`], and stops the actor. The reply comes once
/// the socket is closed (the close handshake done, or after a short linger
/// when the server does not answer it), so a program may exit right after
/// awaiting it. An actor whose every address is dropped stops by itself at
/// its next heartbeat check.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// Registers a listener for [`ConnectionState`] changes.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SubscribeState(pub Recipient<ConnectionState>);

/// Sends an event with an ack id and waits for the ack; connects first if
/// needed. Answers with the ack's arguments (effex replies have one).
///
/// The pending ack is freed when it times out (after `timeout`, or the
/// config's `ack_timeout`), and fails with [`EmitError::Disconnected`] when the
/// socket drops.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<Value>, EmitError>")]
pub struct Emit {
    /// The event name.
    pub event: String,
    /// The event's single argument.
    pub data: Value,
    /// How long to wait for the ack; `None` uses the config's `ack_timeout`.
    pub timeout: Option<Duration>,
}

impl Emit {
    /// An emit of `event` with `data`, using the default ack timeout.
    pub fn new(event: impl Into<String>, data: Value) -> Self {
        Self {
            event: event.into(),
            data,
            timeout: None,
        }
    }

    /// Sets the ack timeout for this emit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Registers a watch (protocol.md 2.3) and routes its pushes to
/// `subscriber` as [`Delivery`] messages. The route is in place before any
/// push of the watch is read, so none can slip past. Connects first if needed.
/// Sent by [`SubscriberActor`](super::SubscriberActor) only.
#[derive(Debug, Message)]
#[rtype(result = "Result<WatchOk, WatchError>")]
pub(crate) struct WatchItem {
    /// The watch request.
    pub(crate) watch: Watch,
    /// Who receives the watch's pushes.
    pub(crate) subscriber: Recipient<Delivery>,
    /// Who is told when the server ends the watch (`ended`, protocol.md
    /// 2.6); sent after every push of the watch that came before it.
    pub(crate) ended: Option<Recipient<Ended>>,
}

impl Message for Ended {
    type Result = ();
}

/// Where one watch's pushes and its `ended` go.
struct Route {
    pushes: Recipient<Delivery>,
    ended: Option<Recipient<Ended>>,
}

/// Ends a watch: sends `unwatch` and removes its route.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), WatchError>")]
pub(crate) struct UnwatchItem {
    /// The watch id returned by [`WatchItem`].
    pub(crate) watchable: String,
}

/// A push from the server, routed by its watchable to the subscriber that
/// registered the watch. Ack it with [`AckPush`] once it has been handled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Delivery {
    /// The push.
    pub(crate) push: Push,
    /// What acks it.
    pub(crate) ack: PushAck,
}

/// Names one received push for its ack: the connection it came on and its ack id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PushAck {
    epoch: u64,
    ack_id: u64,
}

/// Acks a push to the server. An ack for a connection that has since dropped
/// is ignored: the push will come again by replay.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct AckPush(pub(crate) PushAck);

/// The longest wait a 429 refusal's `retryAfter` can impose on a reconnect
/// (the server's own longest lockout is 15 minutes by default).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

type Waiter = oneshot::Sender<Result<Session, ConnectError>>;
type Waiters = Rc<RefCell<Vec<Waiter>>>;
type AckReply = oneshot::Sender<Result<Vec<Value>, EmitError>>;

/// The actor that keeps one authenticated push connection; see the module docs.
///
/// ```no_run
/// use actix::Actor;
/// use effex::client::{ClientConfig, ConnectionActor, GetConnected};
///
/// #[actix::main]
/// async fn main() {
///     let config = ClientConfig::builder("ws://127.0.0.1:8150").pass("secret").build().unwrap();
///     let conn = ConnectionActor::new(config).start();
///     // Two parts of the application ask at once: one socket, one session.
///     let (a, b) = futures_util::join!(conn.send(GetConnected), conn.send(GetConnected));
///     assert_eq!(a.unwrap().unwrap(), b.unwrap().unwrap());
/// }
/// ```
pub struct ConnectionActor {
    config: ClientConfig,
    http: Option<awc::Client>,
    epoch: u64,
    state: State,
    /// Shared with [`ConnectedReply`], which queues the caller's reply channel.
    waiters: Waiters,
    listeners: Vec<Recipient<ConnectionState>>,
    /// Watchable → the subscriber that receives its pushes. While any route
    /// exists, a dropped connection is re-established by itself.
    routes: HashMap<String, Route>,
    /// Ack ids of final (remove / expire) pushes: their routes end when acked.
    finals: HashMap<u64, String>,
    /// The least wait before the next reconnect: what a 429 refusal asked for.
    retry_floor: Duration,
    /// What [`Stats`] answers.
    stats: ConnectionStats,
    /// Pushes of the current connection handed to subscribers and not yet
    /// acked: bounded by [`ClientConfig::max_unacked_pushes`].
    unacked: usize,
    /// Consecutive failed reconnects (resets after a stable connection).
    retries: u32,
    /// The pending automatic reconnect, if any.
    retry: Option<SpawnHandle>,
    /// The index in the config's URLs of the node the next (or current)
    /// attempt dials.
    node: usize,
    /// How many more nodes the running round may dial after the current one.
    round_left: usize,
    /// When the current connection passed: one that lasted the backoff's
    /// `stable_after` resets the retry count when it drops. (A timestamp, not
    /// a timer: actix polls every pending timer of an actor on each wake.)
    connected_at: Option<Instant>,
}

enum State {
    Idle,
    Connecting(Attempt),
    Connected(Link),
    Stopped,
}

/// A connect attempt in flight.
struct Attempt {
    stage: Stage,
    /// The WebSocket open future, until it finishes.
    dial: Option<SpawnHandle>,
    /// The timer of the current stage (connect timeout, then pass timeout).
    deadline: SpawnHandle,
    /// The socket, once the WebSocket is open.
    link: Option<Link>,
    /// The ack id of the `pass` event, once sent.
    pass_ack: Option<u64>,
}

/// One open socket and its per-connection protocol state.
struct Link {
    writer: SocketWriter,
    reader: SpawnHandle,
    session: Option<Session>,
    open: Option<OpenPacket>,
    /// Ack ids are per-connection counters, starting at 0.
    next_ack_id: u64,
    pending: HashMap<u64, PendingAck>,
    last_ping: Instant,
    watchdog: Option<SpawnHandle>,
    /// Binary frames still to skip (attachments of a packet effex ignores).
    skip_attachments: usize,
}

struct PendingAck {
    reply: AckReply,
    timer: SpawnHandle,
    /// For a `watch`: the subscriber to route the watch's pushes to, set up
    /// as soon as the ack arrives (before any push of the watch is read).
    route: Option<Route>,
}

/// How a link is taken down.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Farewell {
    /// Socket.IO `41`, Engine.IO `1`, WebSocket close 1000.
    Clean,
    /// WebSocket close 1002 (the server broke the protocol).
    ProtocolError,
    /// Nothing to say: the socket is already gone.
    Silent,
}

impl Link {
    fn new(writer: SocketWriter, reader: SpawnHandle) -> Self {
        Self {
            writer,
            reader,
            session: None,
            open: None,
            next_ack_id: 0,
            pending: HashMap::new(),
            last_ping: Instant::now(),
            watchdog: None,
            skip_attachments: 0,
        }
    }

    fn take_ack_id(&mut self) -> u64 {
        let id = self.next_ack_id;
        self.next_ack_id += 1;
        id
    }

    fn send(&self, packet: &socketio::Packet) -> Result<(), DisconnectReason> {
        self.writer.send_text(packet.to_engineio_text())
    }

    fn heartbeat_window(&self) -> Option<Duration> {
        self.open
            .as_ref()
            .map(|o| Duration::from_millis(o.ping_interval.saturating_add(o.ping_timeout)))
    }

    /// Says goodbye, stops reading, and fails every pending ack.
    fn shut(
        self,
        farewell: Farewell,
        reason: &DisconnectReason,
        ctx: &mut Context<ConnectionActor>,
    ) {
        match farewell {
            Farewell::Clean => {
                let _ = self.send(&socketio::Packet::disconnect());
                let _ = self
                    .writer
                    .send_text(engineio::Packet::Close.encode_text().unwrap_or_default());
                self.writer.close(CloseCode::Normal);
            }
            Farewell::ProtocolError => self.writer.close(CloseCode::Protocol),
            Farewell::Silent => {}
        }
        ctx.cancel_future(self.reader);
        if let Some(watchdog) = self.watchdog {
            ctx.cancel_future(watchdog);
        }
        for (_, pending) in self.pending {
            ctx.cancel_future(pending.timer);
            let _ = pending
                .reply
                .send(Err(EmitError::Disconnected(reason.clone())));
        }
        // Dropping the writer lets its task write what is queued, then close.
    }
}

impl ConnectionActor {
    /// A connection actor for `config`; nothing connects until the first
    /// [`GetConnected`] (or [`Emit`]).
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            http: None,
            epoch: 0,
            state: State::Idle,
            waiters: Rc::default(),
            listeners: Vec::new(),
            routes: HashMap::new(),
            finals: HashMap::new(),
            unacked: 0,
            retry_floor: Duration::ZERO,
            stats: ConnectionStats::default(),
            retries: 0,
            retry: None,
            node: 0,
            round_left: 0,
            connected_at: None,
        }
    }

    /// The URL of the node the current (or next) attempt dials.
    fn node_url(&self) -> &str {
        self.config
            .urls()
            .get(self.node)
            .map_or(self.config.url(), String::as_str)
    }

    /// Round robin: the next attempt dials the next node in the list (a
    /// no-op with one URL).
    fn move_to_next_node(&mut self, why: &dyn std::fmt::Display) {
        let count = self.config.urls().len();
        if count < 2 {
            return;
        }
        let from = self.node_url().to_owned();
        self.node = (self.node + 1) % count;
        log::info!(
            "failing over from {from} ({why}) to node {} of {count}: {}",
            self.node + 1,
            self.node_url()
        );
    }

    fn notify(&mut self, change: ConnectionState) {
        self.listeners.retain(|l| l.connected());
        for listener in &self.listeners {
            listener.do_send(change.clone());
        }
    }

    fn http_client(&mut self) -> awc::Client {
        let config = &self.config;
        self.http
            .get_or_insert_with(|| {
                socket::http_client(config.connect_timeout(), config.tls().cloned())
            })
            .clone()
    }

    /// What a `GetConnected` gets: the session now, or a place in the queue
    /// of the running attempt (started here when idle).
    fn get_connected(&mut self, ctx: &mut Context<Self>) -> ConnectedReply {
        match &self.state {
            State::Connected(link) => {
                if let Some(session) = &link.session {
                    return ConnectedReply(Reply::Now(Ok(session.clone())));
                }
            }
            State::Stopped => return ConnectedReply(Reply::Now(Err(ConnectError::Stopped))),
            State::Idle => {
                // Someone is asking: no need to wait out a reconnect backoff.
                if let Some(retry) = self.retry.take() {
                    ctx.cancel_future(retry);
                }
                self.start_round(ctx)
            }
            State::Connecting(_) => {}
        }
        ConnectedReply(Reply::Queued(self.waiters.clone()))
    }

    /// Answers every queued waiter with `outcome`.
    fn answer_waiters(&mut self, outcome: Result<Session, ConnectError>) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// Starts an attempt: a round that may dial every node once.
    fn start_round(&mut self, ctx: &mut Context<Self>) {
        self.round_left = self.config.urls().len().saturating_sub(1);
        self.start_attempt(ctx);
    }

    /// Dials the current node (one socket).
    fn start_attempt(&mut self, ctx: &mut Context<Self>) {
        self.stats.attempts += 1;
        self.epoch += 1;
        let epoch = self.epoch;
        // Acks are per connection: what the old one left unacked comes
        // again by replay (and ack ids start over, so an old final's id
        // must not end a route on the new one).
        self.unacked = 0;
        self.finals.clear();
        let dial = socket::open(
            self.http_client(),
            self.node_url().to_owned(),
            self.config.max_frame_size(),
            self.config.write_queue(),
            epoch,
        );
        let dial = ctx.spawn(
            dial.into_actor(self)
                .map(move |result, act, ctx| act.on_dialed(epoch, result, ctx)),
        );
        let deadline = ctx.run_later(self.config.connect_timeout(), move |act, ctx| {
            act.on_deadline(epoch, ctx)
        });
        log::debug!("connecting to {} (epoch {epoch})", self.node_url());
        self.state = State::Connecting(Attempt {
            stage: Stage::WebSocketOpen,
            dial: Some(dial),
            deadline,
            link: None,
            pass_ack: None,
        });
        self.notify(ConnectionState::Connecting { epoch });
    }

    fn attempt(&mut self, epoch: u64) -> Option<&mut Attempt> {
        match &mut self.state {
            State::Connecting(attempt) if self.epoch == epoch => Some(attempt),
            _ => None,
        }
    }

    /// The socket of the current epoch, whether connecting or connected.
    fn link(&mut self) -> Option<&mut Link> {
        match &mut self.state {
            State::Connecting(attempt) => attempt.link.as_mut(),
            State::Connected(link) => Some(link),
            _ => None,
        }
    }

    fn on_dialed(
        &mut self,
        epoch: u64,
        result: Result<(SocketWriter, FrameReader), String>,
        ctx: &mut Context<Self>,
    ) {
        if self.attempt(epoch).is_none() {
            // An abandoned attempt: dropping the writer closes that socket.
            return;
        }
        match result {
            Err(detail) => {
                let url = self.node_url().to_owned();
                self.fail_attempt(
                    ConnectError::WebSocket { url, detail },
                    Farewell::Silent,
                    ctx,
                )
            }
            Ok((writer, reader)) => {
                let reader = ctx.add_stream(reader);
                if let Some(attempt) = self.attempt(epoch) {
                    attempt.dial = None;
                    attempt.stage = Stage::EngineIoOpen;
                    attempt.link = Some(Link::new(writer, reader));
                }
                // CONNECT goes out now rather than after the open packet: the
                // server sends its open first and reads ours after, so this
                // saves a round trip without changing what either side sees.
                self.send_or_drop(&socketio::Packet::connect(None::<&()>), ctx);
            }
        }
    }

    fn on_deadline(&mut self, epoch: u64, ctx: &mut Context<Self>) {
        let Some(attempt) = self.attempt(epoch) else {
            return;
        };
        let stage = attempt.stage;
        let after = if stage == Stage::Pass {
            self.config.pass_timeout()
        } else {
            self.config.connect_timeout()
        };
        log::warn!(
            "connect attempt {epoch} to {} timed out after {after:?} waiting for {stage}",
            self.node_url()
        );
        self.fail_attempt(ConnectError::Timeout { stage, after }, Farewell::Clean, ctx);
    }

    /// Ends the running attempt: closes its socket, answers every waiter.
    fn fail_attempt(&mut self, error: ConnectError, farewell: Farewell, ctx: &mut Context<Self>) {
        let State::Connecting(attempt) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        if let Some(dial) = attempt.dial {
            ctx.cancel_future(dial);
        }
        ctx.cancel_future(attempt.deadline);
        if let Some(link) = attempt.link {
            let reason = DisconnectReason::Transport(error.to_string());
            link.shut(farewell, &reason, ctx);
        }
        log::debug!("connect attempt {} failed: {error}", self.epoch);
        self.stats.last_error = Some(error.to_string());
        let asked = matches!(
            error,
            ConnectError::Stopped
                | ConnectError::Disconnected {
                    reason: DisconnectReason::Requested,
                    ..
                }
        );
        if !asked {
            self.move_to_next_node(&error);
        }
        if let ConnectError::Limited { retry_after, .. } = &error {
            // Honoured by the next scheduled reconnect (a cap keeps a
            // hostile server from parking the client for days).
            self.retry_floor = (*retry_after).min(MAX_RETRY_AFTER);
        }
        let retry = !asked && !matches!(error, ConnectError::Rejected { .. });
        if retry && self.round_left > 0 {
            // Another node of this round: dial it now, the waiters keep waiting.
            self.round_left -= 1;
            self.notify(ConnectionState::ConnectFailed(error));
            self.start_attempt(ctx);
            return;
        }
        self.answer_waiters(Err(error.clone()));
        self.notify(ConnectionState::ConnectFailed(error));
        if retry {
            self.schedule_reconnect(ctx);
        }
    }

    /// While subscribers have watches, a lost connection comes back by
    /// itself after a backoff with full jitter, and not before a 429
    /// refusal's `retryAfter`. A rejected pass or an application's
    /// `Disconnect` does not retry.
    fn schedule_reconnect(&mut self, ctx: &mut Context<Self>) {
        if self.routes.is_empty() || self.retry.is_some() || !matches!(self.state, State::Idle) {
            return;
        }
        let delay = self
            .config
            .reconnect()
            .delay(self.retries)
            .max(std::mem::take(&mut self.retry_floor));
        self.retries = self.retries.saturating_add(1);
        log::info!(
            "reconnecting in {delay:?} (retry {}) for {} watch(es)",
            self.retries,
            self.routes.len()
        );
        self.retry = Some(ctx.run_later(delay, |act, ctx| {
            act.retry = None;
            if matches!(act.state, State::Idle) {
                act.start_round(ctx);
            }
        }));
    }

    /// The socket of the current epoch is gone (or must go).
    fn drop_link(&mut self, reason: DisconnectReason, farewell: Farewell, ctx: &mut Context<Self>) {
        match &self.state {
            State::Connecting(attempt) => {
                let stage = attempt.stage;
                self.fail_attempt(ConnectError::Disconnected { stage, reason }, farewell, ctx)
            }
            State::Connected(_) => {
                let State::Connected(link) = std::mem::replace(&mut self.state, State::Idle) else {
                    return;
                };
                log::info!("disconnected (epoch {}): {reason}", self.epoch);
                if reason != DisconnectReason::Requested {
                    self.stats.last_error = Some(reason.to_string());
                }
                link.shut(farewell, &reason, ctx);
                let stable = self.config.reconnect().stable_after;
                if self
                    .connected_at
                    .take()
                    .is_some_and(|at| at.elapsed() >= stable)
                {
                    self.retries = 0;
                }
                let requested = reason == DisconnectReason::Requested;
                if !requested {
                    self.move_to_next_node(&reason);
                }
                self.notify(ConnectionState::Disconnected {
                    epoch: self.epoch,
                    reason,
                });
                if !requested {
                    self.schedule_reconnect(ctx);
                }
            }
            State::Idle | State::Stopped => {}
        }
    }

    fn protocol_error(&mut self, detail: String, ctx: &mut Context<Self>) {
        log::warn!("closing the connection: protocol error from the server: {detail}");
        self.drop_link(
            DisconnectReason::Protocol(detail),
            Farewell::ProtocolError,
            ctx,
        );
    }

    fn send_or_drop(&mut self, packet: &socketio::Packet, ctx: &mut Context<Self>) {
        let result = match self.link() {
            Some(link) => link.send(packet),
            None => return,
        };
        if let Err(reason) = result {
            self.drop_link(reason, Farewell::Silent, ctx);
        }
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        // Messages (every push) are by far the most frequent: read them in
        // place rather than copying them into an Engine.IO packet first.
        if let Some(message) = text.strip_prefix('4') {
            return self.on_socketio(message, ctx);
        }
        let packet = match engineio::Packet::decode_text(text) {
            Ok(packet) => packet,
            Err(e) => return self.protocol_error(e.to_string(), ctx),
        };
        match packet {
            engineio::Packet::Message(data) => self.on_socketio(&data, ctx),
            engineio::Packet::Ping(data) => {
                let Some(link) = self.link() else { return };
                link.last_ping = Instant::now();
                let pong = engineio::Packet::Pong(data)
                    .encode_text()
                    .unwrap_or_default();
                if let Err(reason) = link.writer.send_text(pong) {
                    self.drop_link(reason, Farewell::Silent, ctx);
                }
            }
            engineio::Packet::Open(open) => self.on_open(open, ctx),
            engineio::Packet::Close => {
                let reason = DisconnectReason::ServerClosed {
                    code: None,
                    reason: "Engine.IO close".to_owned(),
                };
                self.drop_link(reason, Farewell::Silent, ctx)
            }
            engineio::Packet::Pong(_) => log::debug!("ignoring a pong: this client never pings"),
            engineio::Packet::Upgrade | engineio::Packet::Noop | engineio::Packet::Binary(_) => {}
        }
    }

    fn on_open(&mut self, open: OpenPacket, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        let max_frame = self.config.max_frame_size() as u64;
        let Some(attempt) = self
            .attempt(epoch)
            .filter(|a| a.stage == Stage::EngineIoOpen)
        else {
            return self.protocol_error("an unexpected Engine.IO open packet".to_owned(), ctx);
        };
        let Some(link) = attempt.link.as_mut() else {
            return;
        };
        if open.max_payload > max_frame {
            log::warn!(
                "the server accepts frames of {} bytes but this client reads at most {max_frame}; raise max_frame_size",
                open.max_payload
            );
        }
        link.last_ping = Instant::now();
        link.open = Some(open);
        attempt.stage = Stage::SocketIoConnect;
        self.arm_watchdog(epoch, ctx);
    }

    /// Checks the heartbeat when pingInterval + pingTimeout could have passed
    /// without a ping; re-arms itself for the remaining time otherwise.
    fn arm_watchdog(&mut self, epoch: u64, ctx: &mut Context<Self>) {
        let Some(link) = self.link() else { return };
        let Some(window) = link.heartbeat_window() else {
            return;
        };
        let wait = window.saturating_sub(link.last_ping.elapsed());
        let handle = ctx.run_later(wait, move |act, ctx| {
            if act.epoch != epoch {
                return;
            }
            if !ctx.connected() {
                log::info!("every address of the connection actor is gone: stopping it");
                ctx.stop();
                return;
            }
            let Some(link) = act.link() else { return };
            if link.last_ping.elapsed() >= window {
                log::warn!("no ping from the server for {window:?}: counting the link as dead");
                act.drop_link(
                    DisconnectReason::HeartbeatTimeout(window),
                    Farewell::Silent,
                    ctx,
                );
            } else {
                act.arm_watchdog(epoch, ctx);
            }
        });
        if let Some(link) = self.link() {
            link.watchdog = Some(handle);
        }
    }

    fn on_socketio(&mut self, text: &str, ctx: &mut Context<Self>) {
        let packet = match socketio::Packet::decode(text) {
            Ok(packet) => packet,
            Err(e) => return self.protocol_error(e.to_string(), ctx),
        };
        if packet.namespace != DEFAULT_NAMESPACE {
            log::debug!("ignoring a packet for namespace {}", packet.namespace);
            return;
        }
        if packet.attachments > 0 {
            if let Some(link) = self.link() {
                link.skip_attachments += packet.attachments;
            }
        }
        match packet.kind {
            PacketKind::Connect => self.on_connect_ok(&packet, ctx),
            PacketKind::ConnectError => {
                let refusal = packet
                    .data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<ConnectRefused>(d.get()).ok())
                    .unwrap_or_else(|| ConnectRefused::new(400, "connection refused"));
                let error = match refusal.retry_after() {
                    Some(retry_after) if refusal.code() == 429 => ConnectError::Limited {
                        message: refusal.message,
                        retry_after,
                    },
                    _ => ConnectError::Rejected {
                        code: refusal.code(),
                        message: refusal.message,
                    },
                };
                if matches!(self.state, State::Connecting(_)) {
                    self.fail_attempt(error, Farewell::Clean, ctx);
                } else {
                    self.drop_link(DisconnectReason::ServerDisconnected, Farewell::Clean, ctx);
                }
            }
            PacketKind::Disconnect => {
                self.drop_link(DisconnectReason::ServerDisconnected, Farewell::Silent, ctx)
            }
            PacketKind::Ack | PacketKind::BinaryAck => self.on_ack(packet, ctx),
            PacketKind::Event | PacketKind::BinaryEvent => {
                let name = packet.event_name().unwrap_or_default();
                if name == messages::PUSH_EVENT && matches!(self.state, State::Connected(_)) {
                    return self.on_push(&packet, ctx);
                }
                if name == messages::ENDED_EVENT && matches!(self.state, State::Connected(_)) {
                    return self.on_ended(&packet);
                }
                log::debug!("no handler for server event {name:?}");
                if let Some(id) = packet.ack_id {
                    let reply =
                        messages::Failure::new(400, format!("no handler for event {name:?}"));
                    self.send_or_drop(&socketio::Packet::ack(id, &reply), ctx);
                }
            }
        }
    }

    /// Routes a push to the subscriber of its watchable; the subscriber acks
    /// it with [`AckPush`] after its handler returned.
    fn on_push(&mut self, packet: &socketio::Packet, ctx: &mut Context<Self>) {
        let Some(ack_id) = packet.ack_id else {
            log::warn!("ignoring a push without an ack id");
            return;
        };
        let push = match packet.first_arg::<Push>() {
            Ok(push) => push,
            Err(e) => return self.protocol_error(format!("a malformed push: {e}"), ctx),
        };
        if self.unacked >= self.config.max_unacked_pushes() {
            return self.protocol_error(
                format!(
                    "the server sent more than {} pushes without waiting for their acks \
                     (ClientConfig::max_unacked_pushes)",
                    self.config.max_unacked_pushes()
                ),
                ctx,
            );
        }
        let Some(route) = self.routes.get(&push.watchable) else {
            log::debug!("no subscriber for watchable {}: acking 404", push.watchable);
            let reply = messages::Failure::new(404, "no subscriber for this watchable");
            return self.send_or_drop(&socketio::Packet::ack(ack_id, &reply), ctx);
        };
        if matches!(push.event, EventKind::Remove | EventKind::Expire) {
            self.finals.insert(ack_id, push.watchable.clone());
        }
        let watchable = push.watchable.clone();
        let ack = PushAck {
            epoch: self.epoch,
            ack_id,
        };
        let closed = match route.pushes.try_send(Delivery { push, ack }) {
            Ok(()) => false,
            // A busy subscriber (a replay after a reconnect comes as a burst):
            // queue past the mailbox's capacity rather than lose the route.
            // Still bounded: nothing is acked before its handler returned,
            // and `unacked` caps what a connection may hand out unacked.
            Err(SendError::Full(delivery)) => {
                route.pushes.do_send(delivery);
                false
            }
            Err(SendError::Closed(_)) => true,
        };
        if !closed {
            self.unacked += 1;
            self.stats.pushes += 1;
        }
        if closed {
            // The subscriber is gone: forget its route; the server ends the
            // watch when its grace period runs out.
            log::debug!("the subscriber of {watchable} is gone");
            self.routes.remove(&watchable);
            self.finals.remove(&ack_id);
            let reply = messages::Failure::new(404, "no subscriber for this watchable");
            self.send_or_drop(&socketio::Packet::ack(ack_id, &reply), ctx);
        }
    }

    /// `["ended", {watchable, code, error}]`: the server ended a watch; its
    /// route ends and its subscriber is told (after the pushes before it).
    fn on_ended(&mut self, packet: &socketio::Packet) {
        let ended = match packet.first_arg::<Ended>() {
            Ok(ended) => ended,
            Err(e) => {
                log::warn!("ignoring a malformed ended event: {e}");
                return;
            }
        };
        log::info!(
            "the server ended watch {} ({}): {}",
            ended.watchable,
            ended.code,
            ended.error
        );
        if let Some(Route {
            ended: Some(tell), ..
        }) = self.routes.remove(&ended.watchable)
        {
            tell.do_send(ended);
        }
    }

    fn on_connect_ok(&mut self, packet: &socketio::Packet, ctx: &mut Context<Self>) {
        let epoch = self.epoch;
        let pass_timeout = self.config.pass_timeout();
        let pass = Pass {
            pass: self.config.pass().to_owned(),
            push_id: self.config.push_id().to_owned(),
        };
        let sid_ok = packet
            .data
            .as_deref()
            .is_some_and(|d| serde_json::from_str::<ConnectOk>(d.get()).is_ok());
        let Some(attempt) = self
            .attempt(epoch)
            .filter(|a| a.stage == Stage::SocketIoConnect)
        else {
            return self.protocol_error("an unexpected Socket.IO CONNECT".to_owned(), ctx);
        };
        if !sid_ok {
            return self.protocol_error("a CONNECT reply without a sid".to_owned(), ctx);
        }
        let Some(link) = attempt.link.as_mut() else {
            return;
        };
        let ack_id = link.take_ack_id();
        attempt.pass_ack = Some(ack_id);
        attempt.stage = Stage::Pass;
        ctx.cancel_future(attempt.deadline);
        attempt.deadline = ctx.run_later(pass_timeout, move |act, ctx| act.on_deadline(epoch, ctx));
        let packet = socketio::Packet::event(messages::PASS_EVENT, &pass, Some(ack_id));
        self.send_or_drop(&packet, ctx);
    }

    fn on_ack(&mut self, packet: socketio::Packet, ctx: &mut Context<Self>) {
        let Some(id) = packet.ack_id else { return };
        let epoch = self.epoch;
        if let Some(attempt) = self.attempt(epoch) {
            if attempt.pass_ack == Some(id) {
                return self.on_pass_reply(&packet, ctx);
            }
        }
        let Some(pending) = self.link().and_then(|l| l.pending.remove(&id)) else {
            log::debug!("ignoring an ack for unknown id {id}");
            return;
        };
        ctx.cancel_future(pending.timer);
        let args: Vec<Value> = packet
            .args()
            .into_iter()
            .map(|raw| serde_json::from_str(raw.get()).unwrap_or(Value::Null))
            .collect();
        if let (Some(route), Some(reply)) = (pending.route, args.first()) {
            if reply.get("ok") == Some(&Value::Bool(true)) {
                if let Ok(ok) = WatchOk::deserialize(reply) {
                    self.routes.insert(ok.watchable, route);
                }
            }
        }
        let _ = pending.reply.send(Ok(args));
    }

    fn on_pass_reply(&mut self, packet: &socketio::Packet, ctx: &mut Context<Self>) {
        let reply = match packet.args().first() {
            Some(raw) => messages::parse_reply::<PassOk>(raw.get()),
            None => return self.protocol_error("an empty pass ack".to_owned(), ctx),
        };
        let ok = match reply {
            Ok(Ok(ok)) => ok,
            Ok(Err(failure)) => {
                log::warn!(
                    "the server rejected the pass ({}): {}",
                    failure.code,
                    failure.error
                );
                let error = match failure.retry_after() {
                    Some(retry_after) if failure.code == 429 => ConnectError::Limited {
                        message: failure.error,
                        retry_after,
                    },
                    _ => ConnectError::Rejected {
                        code: failure.code,
                        message: failure.error,
                    },
                };
                return self.fail_attempt(error, Farewell::Clean, ctx);
            }
            Err(e) => return self.protocol_error(format!("a malformed pass ack: {e}"), ctx),
        };
        let State::Connecting(attempt) = std::mem::replace(&mut self.state, State::Idle) else {
            return;
        };
        ctx.cancel_future(attempt.deadline);
        let Some(mut link) = attempt.link else { return };
        let open = link.open.clone().unwrap_or_else(|| OpenPacket {
            sid: String::new(),
            upgrades: Vec::new(),
            ping_interval: 0,
            ping_timeout: 0,
            max_payload: 0,
        });
        let session = Session::new(
            ok.connection,
            ok.push_id,
            ok.server_time,
            self.epoch,
            Duration::from_millis(open.ping_interval),
            Duration::from_millis(open.ping_timeout),
            open.max_payload,
        );
        link.session = Some(session.clone());
        self.state = State::Connected(link);
        log::info!(
            "connected as {} (connection {}, epoch {}); answering {} waiter(s)",
            session.push_id(),
            session.connection(),
            self.epoch,
            self.waiters.borrow().len()
        );
        self.answer_waiters(Ok(session.clone()));
        self.stats.reconnects += u64::from(self.stats.connects > 0);
        self.stats.connects += 1;
        self.connected_at = Some(Instant::now());
        self.notify(ConnectionState::Connected(session));
    }

    fn on_binary(&mut self, len: usize) {
        match self.link() {
            Some(link) if link.skip_attachments > 0 => link.skip_attachments -= 1,
            _ => log::debug!("ignoring a binary frame of {len} bytes: effex sends no attachments"),
        }
    }

    /// Registers an ack for an emit on the current connection and sends it.
    fn send_emit(
        &mut self,
        emit: Emit,
        route: Option<Route>,
        ctx: &mut Context<Self>,
    ) -> Result<oneshot::Receiver<Result<Vec<Value>, EmitError>>, EmitError> {
        let limit = self.config.max_pending_acks();
        let timeout = emit.timeout.unwrap_or(self.config.ack_timeout());
        let epoch = self.epoch;
        let link = match &mut self.state {
            State::Connected(link) => link,
            State::Stopped => return Err(EmitError::Stopped),
            _ => {
                return Err(EmitError::Disconnected(DisconnectReason::Transport(
                    "the connection dropped before the event could be sent".to_owned(),
                )))
            }
        };
        if link.pending.len() >= limit {
            return Err(EmitError::TooManyPending(limit));
        }
        let id = link.take_ack_id();
        let packet = socketio::Packet::event(&emit.event, &emit.data, Some(id));
        if let Err(reason) = link.send(&packet) {
            self.drop_link(reason.clone(), Farewell::Silent, ctx);
            return Err(EmitError::Disconnected(reason));
        }
        let timer = ctx.run_later(timeout, move |act, _| {
            if act.epoch != epoch {
                return;
            }
            if let Some(pending) = act.link().and_then(|l| l.pending.remove(&id)) {
                let _ = pending.reply.send(Err(EmitError::Timeout(timeout)));
            }
        });
        let (reply, rx) = oneshot::channel();
        link.pending.insert(
            id,
            PendingAck {
                reply,
                timer,
                route,
            },
        );
        Ok(rx)
    }

    /// Takes the connection down for good or for now; `stopping` says which.
    fn close(&mut self, stopping: bool, ctx: &mut Context<Self>) {
        if let Some(retry) = self.retry.take() {
            ctx.cancel_future(retry);
        }
        let reason = DisconnectReason::Requested;
        match &self.state {
            State::Connecting(attempt) => {
                let error = if stopping {
                    ConnectError::Stopped
                } else {
                    ConnectError::Disconnected {
                        stage: attempt.stage,
                        reason: reason.clone(),
                    }
                };
                self.fail_attempt(error, Farewell::Clean, ctx);
            }
            State::Connected(_) => self.drop_link(reason, Farewell::Clean, ctx),
            State::Idle | State::Stopped => {}
        }
        if stopping {
            self.state = State::Stopped;
            self.answer_waiters(Err(ConnectError::Stopped));
        }
    }
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        self.close(true, ctx);
        Running::Stop
    }
}

impl StreamHandler<SocketEvent> for ConnectionActor {
    fn handle(&mut self, event: SocketEvent, ctx: &mut Self::Context) {
        if event.epoch != self.epoch {
            return;
        }
        match event.inbound {
            Inbound::Text(text) => self.on_text(&text, ctx),
            Inbound::Binary(bytes) => self.on_binary(bytes.len()),
            Inbound::Ping(data) => {
                let result = match self.link() {
                    Some(link) => link.writer.send_pong(data),
                    None => return,
                };
                if let Err(reason) = result {
                    self.drop_link(reason, Farewell::Silent, ctx);
                }
            }
            Inbound::Closed { code, reason } => {
                let reason = DisconnectReason::ServerClosed { code, reason };
                self.drop_link(reason, Farewell::Silent, ctx)
            }
            Inbound::Failed(detail) => {
                self.drop_link(DisconnectReason::Transport(detail), Farewell::Silent, ctx)
            }
        }
    }

    /// A socket's stream ended: its last event already reported why. The
    /// default would stop the actor.
    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

/// The reply to [`GetConnected`]: the session now, or a place in the queue of
/// the running attempt. (An implementation detail of the handler; callers
/// just await `Result<Session, ConnectError>`.)
pub struct ConnectedReply(Reply);

enum Reply {
    Now(Result<Session, ConnectError>),
    Queued(Waiters),
}

impl MessageResponse<ConnectionActor, GetConnected> for ConnectedReply {
    fn handle(self, _: &mut Context<ConnectionActor>, reply: Option<Waiter>) {
        // `None` when the message was sent with `do_send`: nobody is waiting.
        let Some(reply) = reply else { return };
        match self.0 {
            Reply::Now(outcome) => {
                let _ = reply.send(outcome);
            }
            Reply::Queued(waiters) => waiters.borrow_mut().push(reply),
        }
    }
}

impl Handler<GetConnected> for ConnectionActor {
    type Result = ConnectedReply;

    fn handle(&mut self, _: GetConnected, ctx: &mut Self::Context) -> ConnectedReply {
        self.get_connected(ctx)
    }
}

impl Handler<Disconnect> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, _: Disconnect, ctx: &mut Self::Context) {
        self.close(false, ctx);
    }
}

impl Handler<Stop> for ConnectionActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) -> Self::Result {
        // Taken before stopping: `stopping` shuts the link and queues the
        // goodbye; the writer task then closes the socket on its own.
        let closed = self.link().map(|link| link.writer.closed());
        ctx.stop();
        Box::pin(async move {
            if let Some(closed) = closed {
                // The writer lingers at most CLOSE_LINGER after the close
                // frame; the margin covers the TCP shutdown itself.
                let bound = socket::CLOSE_LINGER + Duration::from_secs(1);
                let _ = tokio::time::timeout(bound, closed).await;
            }
        })
    }
}

impl Handler<SubscribeState> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: SubscribeState, _: &mut Self::Context) {
        self.listeners.push(msg.0);
    }
}

impl Handler<Emit> for ConnectionActor {
    type Result = ResponseFuture<Result<Vec<Value>, EmitError>>;

    fn handle(&mut self, emit: Emit, ctx: &mut Self::Context) -> Self::Result {
        let (tx, connected) = oneshot::channel();
        self.get_connected(ctx).handle(ctx, Some(tx));
        let me = ctx.address();
        Box::pin(async move {
            connected.await.unwrap_or(Err(ConnectError::Stopped))?;
            let ack = me
                .send(SendEmit(emit, None))
                .await
                .map_err(|_| EmitError::Stopped)??;
            ack.await.unwrap_or(Err(EmitError::Stopped))
        })
    }
}

impl Handler<WatchItem> for ConnectionActor {
    type Result = ResponseFuture<Result<WatchOk, WatchError>>;

    fn handle(&mut self, msg: WatchItem, ctx: &mut Self::Context) -> Self::Result {
        let (tx, connected) = oneshot::channel();
        self.get_connected(ctx).handle(ctx, Some(tx));
        let me = ctx.address();
        let data = serde_json::to_value(&msg.watch).unwrap_or(Value::Null);
        let emit = Emit::new(messages::WATCH_EVENT, data);
        Box::pin(async move {
            connected
                .await
                .unwrap_or(Err(ConnectError::Stopped))
                .map_err(EmitError::from)?;
            let ack = me
                .send(SendEmit(
                    emit,
                    Some(Route {
                        pushes: msg.subscriber,
                        ended: msg.ended,
                    }),
                ))
                .await
                .map_err(|_| EmitError::Stopped)??;
            let args = ack.await.unwrap_or(Err(EmitError::Stopped))?;
            WatchError::from_reply(args)
        })
    }
}

impl Handler<UnwatchItem> for ConnectionActor {
    type Result = ResponseFuture<Result<(), WatchError>>;

    fn handle(&mut self, msg: UnwatchItem, ctx: &mut Self::Context) -> Self::Result {
        self.routes.remove(&msg.watchable);
        let me = ctx.address();
        let data = serde_json::json!({ "watchable": msg.watchable });
        Box::pin(async move {
            let args = me
                .send(Emit::new(messages::UNWATCH_EVENT, data))
                .await
                .map_err(|_| EmitError::Stopped)??;
            WatchError::from_reply::<messages::Empty>(args).map(drop)
        })
    }
}

impl Handler<AckPush> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, AckPush(ack): AckPush, ctx: &mut Self::Context) {
        if ack.epoch != self.epoch || !matches!(self.state, State::Connected(_)) {
            // That connection is gone; the server replays the push.
            return;
        }
        self.unacked = self.unacked.saturating_sub(1);
        if let Some(watchable) = self.finals.remove(&ack.ack_id) {
            // The watch ends with its final push.
            self.routes.remove(&watchable);
        }
        // `43<id>[{"ok":true}]`, written directly: this is once per push.
        let frame = format!("43{}[{{\"ok\":true}}]", ack.ack_id);
        let result = match self.link() {
            Some(link) => link.writer.send_text(frame),
            None => return,
        };
        match result {
            Ok(()) => self.stats.acks += 1,
            Err(reason) => self.drop_link(reason, Farewell::Silent, ctx),
        }
    }
}

impl Handler<Stats> for ConnectionActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats.clone())
    }
}

/// Sends an [`Emit`] on the connection that is up now (internal step of
/// `Emit` and `WatchItem`), with the route to set up when it is a watch.
struct SendEmit(Emit, Option<Route>);

impl Message for SendEmit {
    type Result = Result<oneshot::Receiver<Result<Vec<Value>, EmitError>>, EmitError>;
}

impl Handler<SendEmit> for ConnectionActor {
    type Result = Result<oneshot::Receiver<Result<Vec<Value>, EmitError>>, EmitError>;

    fn handle(&mut self, SendEmit(emit, route): SendEmit, ctx: &mut Self::Context) -> Self::Result {
        self.send_emit(emit, route, ctx)
    }
}
