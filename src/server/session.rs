//! One push socket's session: the Engine.IO heartbeat, the Socket.IO CONNECT,
//! the `pass` conversation and the event dispatch of one WebSocket; it must
//! not touch other sessions except through the registry.
//!
//! # The session actor, as a task
//!
//! architecture.md calls this the *session actor*. It is realised as one
//! future per socket, polled by the connection's own task on the actix worker
//! that accepted it (the `upgrade` module runs it after the `101`), whose
//! mailbox is an unbounded queue of [`Command`]s (`outlet::Mailbox`, which
//! allocates nothing while empty), bounded by what may be put in it rather
//! than by the queue:
//!
//! - the session owns its socket ([`WebSocket`]: frames in, frames out), so
//!   a plain future owning both is the simplest thing that works, and no
//!   second task or channel sits between the socket and the session;
//! - the hub needs a cheap, `Send`, cloneable handle to reach a session from
//!   any worker, and must never wait on a slow session: an unbounded sender
//!   never blocks the hub's loop, and the hub counts what it queues (pushes
//!   against `max_queued_pushes`, their bytes against `max_queued_bytes`;
//!   past either it sends `Overflow` and the session closes with 1013),
//!   while replies are bounded by [`MAX_HUB_CALLS`] calls in flight.
//!
//! The task is a loop around one `tokio::select!` over: the mailbox (replace,
//! shutdown, the hub's replies and pushes), the incoming frames, the
//! heartbeat timer, the pass timer and the push-ack timer. Each turn handles
//! one wake-up synchronously, encoding its replies straight into the
//! socket's write buffer; the loop then flushes that buffer once: one socket
//! write per batch (e.g. an ack, `41` and the close frame go out together).
//! The flush is bounded by `ping_timeout`, so a peer that stops reading is
//! dropped.
//!
//! # Pushes: acks, the in-flight window, coalesced writes
//!
//! A mailbox wake-up drains up to [`MAX_BATCH`] commands at once before the
//! one flush, so pushes that arrive together leave in one write (the per-write
//! cost, not the protocol, is the ceiling of a busy server); the hub wakes a
//! session once per event, after queueing all its pushes. Likewise a frame
//! wake-up handles every complete frame the read already brought (up to
//! [`MAX_BATCH`]): the acks of a burst, and the waiting pushes they let go,
//! are answered with one write. Each push gets the
//! next per-connection ack id. At most
//! [`ServerConfig::max_in_flight`](super::ServerConfig::max_in_flight) pushes
//! are unacknowledged at a time; more wait in order in the session (counted
//! by the hub against `max_queued_pushes`, and their bytes against
//! `max_queued_bytes` until acknowledged). Right before a push is written
//! its watch is asked whether it may still leave (`WatchView::is_live`: not
//! ended, key not expired): authorization holds at send time. The hub's
//! `ended` (a watch ended for its key, its alias or a limit) is written as
//! `42["ended",{…}]`; the ack of a replay window's last push asks the hub
//! for the next window. A push unacknowledged after
//! [`ServerConfig::ack_timeout`](super::ServerConfig::ack_timeout) closes the
//! socket with 1002 ("push ack timeout"), like a missed pong, and without a
//! `41`, so Socket.IO clients reconnect by themselves and re-watch with
//! `after`: redelivery is by replay, never by resending here. The ack of a
//! watch's final push (remove/expire) is reported to the hub, which ends the
//! watch. `watch` and `unwatch` are forwarded to the hub (at most
//! [`MAX_HUB_CALLS`] in flight per session, else 429), which answers through
//! the mailbox, the ack of a watch always before its first push.
//!
//! Nothing here panics on network input: every decode error is a protocol
//! error that is logged (`log::warn!`) and closes the socket with 1002.

use crate::secret::same_secret;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_http::ws::{CloseCode, CloseReason};
use rand::Rng;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::time::{sleep_until, Instant};

use super::client_addr::ClientKey;
use super::hub::Request;
use super::limits::{ConnectionSlot, Limited};
use super::outlet::{send_command, Command, SessionId};
use super::outlet::{MailboxReceiver, Outgoing, SessionLink};
use super::websocket::{Incoming, RecvError, WebSocket};
use super::Shared;
use crate::protocol::engineio::{self, OpenPacket};
use crate::protocol::messages::{
    is_valid_push_id, ConnectAuth, ConnectOk, ConnectRefused, Failure, Pass, PassOk, Success,
    Unwatch, Watch, ENDED_EVENT, PASS_EVENT, UNWATCH_EVENT, WATCH_EVENT,
};
use crate::protocol::socketio::{self, PacketKind, DEFAULT_NAMESPACE};
use crate::protocol::time::{whole_millis as millis, UnixMillis};

/// How long, at most, a session waits for the peer's close frame after
/// sending its own (capped by `ping_timeout` too).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The length of the random Engine.IO and Socket.IO session ids.
const SID_LEN: usize = 20;

/// The most mailbox commands, or frames, handled in one loop turn (before
/// one flush).
pub(crate) const MAX_BATCH: usize = 256;

/// The most `watch`/`unwatch` calls of one session waiting for the hub.
pub(crate) const MAX_HUB_CALLS: usize = 64;

/// What the endpoint hands to a new session.
pub(crate) struct SessionStart {
    pub(crate) id: SessionId,
    pub(crate) shared: Arc<Shared>,
    /// The hub's handle on this session (mailbox sender and queue count).
    pub(crate) link: Arc<SessionLink>,
    pub(crate) mailbox: MailboxReceiver,
    /// The peer's address, for logs.
    pub(crate) peer: String,
    /// The client's address as the limits count it (the failed-pass penalty).
    pub(crate) client: ClientKey,
    /// The counted connection; freed when the session ends.
    pub(crate) slot: ConnectionSlot,
}

/// Serves one socket until it ends, then forgets it in the registry.
pub(crate) async fn run(start: SessionStart, ws: WebSocket) {
    let SessionStart {
        id,
        link,
        shared,
        mut mailbox,
        peer,
        client,
        slot,
    } = start;
    let now = Instant::now();
    let mut session = Session {
        registration: Registration {
            shared: shared.clone(),
            id,
            push_id: None,
            ended: false,
        },
        pushes: Pushes::default(),
        link,
        hub_calls: 0,
        timing: Timing::from(&shared),
        ws,
        eio_sid: random_sid(),
        sio_sid: None,
        pending_attachments: 0,
        awaiting_pong: false,
        heartbeat_at: now + shared.config.ping_interval,
        pass_deadline: now + shared.config.pass_timeout,
        peer,
        client,
    };
    log::debug!("{}: push socket opened", session.name());
    session.queue_open_packet(&shared);
    let ending = match session.flush().await {
        Ok(()) => session.serve(&mut mailbox).await,
        Err(ending) => ending,
    };
    session.finish(ending).await;
    drop(slot);
}

/// The settings a session reads on every turn, copied out of the config.
#[derive(Clone, Copy)]
struct Timing {
    ping_interval: Duration,
    ping_timeout: Duration,
    max_payload: usize,
    max_in_flight: usize,
    ack_timeout: Duration,
}

impl From<&Arc<Shared>> for Timing {
    fn from(shared: &Arc<Shared>) -> Self {
        Self {
            ping_interval: shared.config.ping_interval,
            ping_timeout: shared.config.ping_timeout,
            max_payload: shared.config.max_payload,
            max_in_flight: shared.config.max_in_flight,
            ack_timeout: shared.config.ack_timeout,
        }
    }
}

/// The session's entry in the registry; dropping it (even on a panic)
/// forgets the session, frees its push id and tells the hub (whose watches
/// of this session become dormant).
struct Registration {
    shared: Arc<Shared>,
    id: SessionId,
    /// Set once the socket has passed.
    push_id: Option<Arc<str>>,
    /// The hub was told.
    ended: bool,
}

impl Registration {
    fn release(&mut self) {
        self.shared.registry.close(self.id, self.push_id.as_deref());
        if !self.ended {
            self.ended = true;
            if let Some(push_id) = &self.push_id {
                self.shared.hub.send(Request::SessionEnded {
                    session: self.id,
                    push_id: push_id.clone(),
                });
            }
        }
    }
}

/// A push written and not yet acknowledged.
struct InFlight {
    sent: Instant,
    push: Outgoing,
}

/// The session's pushes: in flight (by ack id, so oldest first) and waiting.
#[derive(Default)]
struct Pushes {
    next_ack_id: u64,
    in_flight: BTreeMap<u64, InFlight>,
    waiting: VecDeque<Outgoing>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Idempotent: `close` ignores a session it no longer knows.
        self.release();
    }
}

/// What one turn of the loop decided.
enum Flow {
    /// Keep serving.
    Continue,
    /// End the session this way.
    End(Ending),
}

/// How a session ends.
#[derive(Debug)]
enum Ending {
    /// The server ends an orderly session: `41`, then close 1000.
    Disconnect(&'static str),
    /// Close the WebSocket with this code (after a protocol error, a refused
    /// CONNECT, or the peer's own `41`/`1`).
    Close(CloseReason),
    /// The peer sent a close frame: echo it.
    PeerClosed(Option<CloseReason>),
    /// The connection is gone (stream ended, write failed): nothing to send.
    Gone,
}

/// Why a write failed: the peer is gone or not reading.
type WriteResult = Result<(), Ending>;

struct Session {
    registration: Registration,
    pushes: Pushes,
    link: Arc<SessionLink>,
    /// `watch`/`unwatch` calls sent to the hub and not answered yet.
    hub_calls: usize,
    timing: Timing,
    /// The socket; frames queued by a turn wait in its write buffer until
    /// [`Session::flush`].
    ws: WebSocket,
    /// The Engine.IO session id (sent in the open packet).
    eio_sid: String,
    /// The Socket.IO session id, set by a successful CONNECT on `/`.
    sio_sid: Option<String>,
    /// Binary frames still expected by a BINARY_EVENT/BINARY_ACK: swallowed.
    pending_attachments: usize,
    /// A ping was sent and its pong has not arrived yet.
    awaiting_pong: bool,
    /// When to send the next ping, or (when `awaiting_pong`) to give up.
    heartbeat_at: Instant,
    /// When an unpassed socket is disconnected.
    pass_deadline: Instant,
    peer: String,
    /// The client's address as the limits count it.
    client: ClientKey,
}

/// What woke the loop up.
enum Wake {
    Command(Command),
    Frame(Option<Result<Incoming, RecvError>>),
    Heartbeat,
    PassTimeout,
    AckTimeout,
}

impl Session {
    /// The session's name in logs: peer address and Engine.IO sid.
    fn name(&self) -> String {
        format!("push socket {} ({})", self.eio_sid, self.peer)
    }

    fn passed(&self) -> bool {
        self.registration.push_id.is_some()
    }

    /// The loop: one `select!` over mailbox, frames and timers per turn.
    async fn serve(&mut self, mailbox: &mut MailboxReceiver) -> Ending {
        let heartbeat = sleep_until(self.heartbeat_at);
        let pass_timer = sleep_until(self.pass_deadline);
        let ack_timer = sleep_until(self.heartbeat_at);
        tokio::pin!(heartbeat, pass_timer, ack_timer);
        loop {
            if heartbeat.deadline() != self.heartbeat_at {
                heartbeat.as_mut().reset(self.heartbeat_at);
            }
            let ack_deadline = self.ack_deadline();
            if let Some(deadline) = ack_deadline {
                if ack_timer.deadline() != deadline {
                    ack_timer.as_mut().reset(deadline);
                }
            }
            let passed = self.passed();
            // No `biased`: under a stream of pushes the peer's acks must still
            // be read (tokio picks a ready branch at random), and a shutdown
            // still gets its turn within a few.
            let wake = tokio::select! {
                command = mailbox.recv() => Wake::Command(command),
                frame = self.ws.recv() => Wake::Frame(frame),
                () = &mut heartbeat => Wake::Heartbeat,
                () = &mut pass_timer, if !passed => Wake::PassTimeout,
                () = &mut ack_timer, if ack_deadline.is_some() => Wake::AckTimeout,
            };
            let flow = match wake {
                Wake::Command(command) => self.on_commands(command, mailbox),
                Wake::AckTimeout => self.on_ack_timer(),
                Wake::Frame(frame) => self.on_frames(frame),
                Wake::Heartbeat => self.on_heartbeat(),
                Wake::PassTimeout => {
                    log::info!("{}: did not pass in time, disconnecting", self.name());
                    Flow::End(Ending::Disconnect("pass timeout"))
                }
            };
            if let Flow::End(ending) = flow {
                return ending;
            }
            if let Err(ending) = self.flush().await {
                return ending;
            }
        }
    }

    // ---- writing -------------------------------------------------------

    fn queue_text(&mut self, text: String) {
        self.ws.queue_text(&text);
    }

    fn queue_socketio(&mut self, packet: &socketio::Packet) {
        self.queue_text(packet.to_engineio_text());
    }

    /// Queues the ack answering `ack_id` with one reply object.
    fn queue_ack(&mut self, ack_id: u64, reply: &impl Serialize) {
        self.queue_socketio(&socketio::Packet::ack(ack_id, reply));
    }

    fn queue_open_packet(&mut self, shared: &Shared) {
        let open = engineio::Packet::Open(OpenPacket {
            sid: self.eio_sid.clone(),
            upgrades: Vec::new(),
            ping_interval: millis(shared.config.ping_interval),
            ping_timeout: millis(shared.config.ping_timeout),
            max_payload: shared.config.max_payload as u64,
        });
        if let Some(text) = open.encode_text() {
            self.queue_text(text);
        }
    }

    /// Writes every frame the turn queued and flushes once; bounded by
    /// `ping_timeout` so a peer that stops reading cannot stall the session.
    async fn flush(&mut self) -> WriteResult {
        if !self.ws.has_queued() {
            return Ok(());
        }
        match tokio::time::timeout(self.timing.ping_timeout, self.ws.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                log::debug!("{}: write failed: {e}", self.name());
                Err(Ending::Gone)
            }
            Err(_) => {
                log::warn!(
                    "{}: peer did not read for {:?}, dropping it",
                    self.name(),
                    self.timing.ping_timeout
                );
                self.ws.discard_queued();
                Err(Ending::Gone)
            }
        }
    }

    /// Sends what the ending calls for, frees the registry entry, and waits
    /// briefly for the peer's close frame (the closing handshake).
    async fn finish(mut self, ending: Ending) {
        let grace = CLOSE_GRACE.min(self.timing.ping_timeout);
        let close = match ending {
            Ending::Disconnect(why) => {
                log::debug!("{}: disconnecting ({why})", self.name());
                self.queue_socketio(&socketio::Packet::disconnect());
                Some(CloseReason::from(CloseCode::Normal))
            }
            Ending::Close(reason) => Some(reason),
            Ending::PeerClosed(reason) => {
                log::debug!("{}: peer closed ({reason:?})", self.name());
                self.ws.queue_close(reason);
                if self.flush().await.is_ok() {
                    let _ = tokio::time::timeout(grace, self.ws.shutdown()).await;
                }
                self.registration.release();
                return;
            }
            Ending::Gone => None,
        };
        if let Some(reason) = close {
            self.ws.queue_close(Some(reason));
            let sent = self.flush().await.is_ok();
            self.registration.release();
            if sent {
                let ws = &mut self.ws;
                let _ = tokio::time::timeout(grace, async {
                    while let Some(Ok(incoming)) = ws.recv().await {
                        if matches!(incoming, Incoming::Close(_)) {
                            break;
                        }
                    }
                    let _ = ws.shutdown().await;
                })
                .await;
            }
        }
        self.registration.release();
        log::debug!("{}: ended", self.name());
    }

    // ---- wake-ups ------------------------------------------------------

    /// One command, then whatever else the mailbox holds (up to
    /// [`MAX_BATCH`]), so that the loop's one flush writes them together.
    fn on_commands(&mut self, first: Command, mailbox: &mut MailboxReceiver) -> Flow {
        if let Flow::End(ending) = self.on_command(first) {
            return Flow::End(ending);
        }
        for _ in 1..MAX_BATCH {
            let Some(command) = mailbox.try_recv() else {
                break;
            };
            if let Flow::End(ending) = self.on_command(command) {
                return Flow::End(ending);
            }
        }
        Flow::Continue
    }

    /// One frame, then whatever else the socket's read buffer already holds
    /// complete (up to [`MAX_BATCH`]), so that the loop's one flush writes
    /// every answer together: under a stream of pushes each read brings
    /// many acks, and each ack may let a waiting push go.
    fn on_frames(&mut self, first: Option<Result<Incoming, RecvError>>) -> Flow {
        if let Flow::End(ending) = self.on_frame(first) {
            return Flow::End(ending);
        }
        for _ in 1..MAX_BATCH {
            let Some(frame) = self.ws.try_recv_buffered() else {
                break;
            };
            if let Flow::End(ending) = self.on_frame(Some(frame)) {
                return Flow::End(ending);
            }
        }
        Flow::Continue
    }

    fn on_command(&mut self, command: Command) -> Flow {
        match command {
            Command::Push(push) => {
                self.on_push(push);
                Flow::Continue
            }
            Command::Reply { ack_id, body } => {
                self.hub_calls = self.hub_calls.saturating_sub(1);
                if is_key_refusal(&body) {
                    // A watch with an unknown or expired key: a passed socket
                    // must not guess keys faster than REST may.
                    self.registration
                        .shared
                        .limits
                        .failed_auth
                        .record_failure(self.client);
                }
                self.queue_ack(ack_id, &body);
                Flow::Continue
            }
            Command::Overflow => {
                log::warn!(
                    "{}: more than max_queued_pushes pushes wait for this peer; closing with 1013 \
                     (it reconnects and replays)",
                    self.name()
                );
                Flow::End(Ending::Close(CloseReason {
                    code: CloseCode::Again,
                    description: Some("too many pushes waiting".to_owned()),
                }))
            }
            Command::Ended(ended) => {
                self.queue_socketio(&socketio::Packet::event(ENDED_EVENT, &ended, None));
                Flow::Continue
            }
            Command::HubFailed => Flow::End(Ending::Close(CloseReason {
                code: CloseCode::Error,
                description: Some(
                    "the server's watch hub stopped: no more pushes (see the server log)"
                        .to_owned(),
                ),
            })),
            Command::Replaced => {
                log::info!(
                    "{}: push id {:?} passed on a newer connection, disconnecting this one",
                    self.name(),
                    self.registration.push_id.as_deref().unwrap_or("")
                );
                Flow::End(Ending::Disconnect("replaced by a newer connection"))
            }
            Command::Shutdown => Flow::End(Ending::Disconnect("server shutting down")),
        }
    }

    // ---- pushes --------------------------------------------------------

    /// When the oldest unacknowledged push times out.
    fn ack_deadline(&self) -> Option<Instant> {
        self.pushes
            .in_flight
            .first_key_value()
            .map(|(_, p)| p.sent + self.timing.ack_timeout)
    }

    fn on_ack_timer(&mut self) -> Flow {
        match self.ack_deadline() {
            Some(deadline) if deadline <= Instant::now() => {
                let (ack_id, oldest) = self
                    .pushes
                    .in_flight
                    .first_key_value()
                    .map(|(id, p)| (*id, p.push.event.seq))
                    .unwrap_or_default();
                self.registration.shared.metrics.ack_timeouts.inc();
                log::warn!(
                    "{}: push {ack_id} (seq {oldest}) not acknowledged within {:?}; closing with 1002 \
                     (the client re-watches with `after` and gets it again)",
                    self.name(),
                    self.timing.ack_timeout
                );
                Flow::End(Ending::Close(CloseReason {
                    code: CloseCode::Protocol,
                    description: Some("push ack timeout".to_owned()),
                }))
            }
            _ => Flow::Continue,
        }
    }

    /// A push from the hub: written now if the window has room, else queued.
    fn on_push(&mut self, push: Outgoing) {
        if !push.view.is_live() {
            // Ended, or its key expired: checked here, at send time.
            self.link.dequeued(&push);
            self.link.released(&push);
        } else if self.pushes.waiting.is_empty()
            && self.pushes.in_flight.len() < self.timing.max_in_flight
        {
            self.write_push(push);
        } else {
            self.pushes.waiting.push_back(push);
        }
    }

    fn write_push(&mut self, push: Outgoing) {
        let ack_id = self.pushes.next_ack_id;
        self.pushes.next_ack_id += 1;
        self.queue_text(push.frame(ack_id));
        self.link.dequeued(&push);
        self.registration.shared.metrics.pushes_sent.inc();
        self.pushes.in_flight.insert(
            ack_id,
            InFlight {
                sent: Instant::now(),
                push,
            },
        );
    }

    /// The peer acknowledged push `ack_id`.
    fn on_push_ack(&mut self, ack_id: u64) {
        let Some(acked) = self.pushes.in_flight.remove(&ack_id) else {
            log::debug!(
                "{}: ignored an ACK {ack_id} (no push is waiting for it)",
                self.name()
            );
            return;
        };
        self.link.released(&acked.push);
        self.registration.shared.metrics.pushes_acked.inc();
        if acked.push.window_end {
            self.registration.shared.hub.send(Request::ReplayMore {
                watch: acked.push.view.watch,
                session: self.registration.id,
            });
        }
        if acked.push.last {
            self.registration.shared.hub.send(Request::FinalAcked {
                watch: acked.push.view.watch,
            });
        }
        while self.pushes.in_flight.len() < self.timing.max_in_flight {
            let Some(next) = self.pushes.waiting.pop_front() else {
                break;
            };
            if next.view.is_live() {
                self.write_push(next);
            } else {
                self.link.dequeued(&next);
                self.link.released(&next);
            }
        }
    }

    /// `watch` and `unwatch`: forwarded to the hub, answered through the mailbox.
    fn on_hub_call(&mut self, name: &str, ack_id: u64, packet: &socketio::Packet) {
        if self.hub_calls >= MAX_HUB_CALLS {
            self.queue_ack(
                ack_id,
                &Failure::new(
                    429,
                    format!("more than {MAX_HUB_CALLS} watch calls are waiting for answers: wait for them"),
                ),
            );
            return;
        }
        let Some(push_id) = self.registration.push_id.clone() else {
            return;
        };
        if name == WATCH_EVENT {
            if let Err(limited) = self.pass_allowed() {
                // Locked out for failed key checks (here or on REST):
                // refused unchecked, like a REST call with a key.
                log::debug!("{}: watch refused: {}", self.name(), limited.message);
                self.queue_ack(ack_id, &limited.key_refusal());
                return;
            }
        }
        let session = self.link.clone();
        let request = if name == WATCH_EVENT {
            match packet.first_arg::<Watch>() {
                Ok(watch) => Request::Watch {
                    session,
                    push_id,
                    ack_id,
                    watch,
                },
                Err(e) => {
                    self.queue_ack(
                        ack_id,
                        &Failure::new(
                            400,
                            format!(
                                "bad watch payload ({e}): send {{\"event\":\"update\"|\"remove\"|\"expire\",\
                                 \"id\",\"key\",\"after\"?,\"message\"?,\"withValue\"?}}"
                            ),
                        ),
                    );
                    return;
                }
            }
        } else {
            match packet.first_arg::<Unwatch>() {
                Ok(unwatch) => Request::Unwatch {
                    session,
                    push_id,
                    ack_id,
                    watchable: unwatch.watchable,
                },
                Err(e) => {
                    self.queue_ack(
                        ack_id,
                        &Failure::new(
                            400,
                            format!("bad unwatch payload ({e}): send {{\"watchable\"}}"),
                        ),
                    );
                    return;
                }
            }
        };
        if self.registration.shared.hub.send(request) {
            self.hub_calls += 1;
        } else {
            self.queue_ack(ack_id, &Failure::new(503, "the server is shutting down"));
        }
    }

    fn on_heartbeat(&mut self) -> Flow {
        if self.awaiting_pong {
            return self.protocol_error("ping timeout".to_owned());
        }
        self.queue_text(
            engineio::Packet::Ping(String::new())
                .encode_text()
                .unwrap_or_default(),
        );
        self.awaiting_pong = true;
        self.heartbeat_at = Instant::now() + self.timing.ping_timeout;
        Flow::Continue
    }

    fn on_frame(&mut self, frame: Option<Result<Incoming, RecvError>>) -> Flow {
        let incoming = match frame {
            None => return Flow::End(Ending::Gone),
            Some(Ok(incoming)) => incoming,
            Some(Err(error)) => return self.on_recv_error(error),
        };
        match incoming {
            Incoming::Text(text) => self.on_text(&text),
            Incoming::Binary(bytes) => {
                if self.pending_attachments > 0 {
                    self.pending_attachments -= 1;
                    log::debug!(
                        "{}: dropped a binary attachment ({} bytes)",
                        self.name(),
                        bytes.len()
                    );
                } else {
                    log::warn!(
                        "{}: ignored a stray binary frame ({} bytes): effex uses none",
                        self.name(),
                        bytes.len()
                    );
                }
                Flow::Continue
            }
            Incoming::Ping(data) => {
                self.ws.queue_pong(&data);
                Flow::Continue
            }
            Incoming::Pong => Flow::Continue,
            Incoming::Close(reason) => Flow::End(Ending::PeerClosed(reason)),
        }
    }

    fn on_recv_error(&mut self, error: RecvError) -> Flow {
        match error {
            RecvError::TooLarge { max_payload } => self.too_large(max_payload + 1),
            RecvError::Protocol(why) => self.protocol_error(format!("bad WebSocket frame: {why}")),
            RecvError::Io(e) => {
                log::debug!("{}: connection failed: {e}", self.name());
                Flow::End(Ending::Gone)
            }
        }
    }

    fn too_large(&self, size: usize) -> Flow {
        log::warn!(
            "{}: a message of {size}+ bytes exceeds maxPayload {}, closing with 1009",
            self.name(),
            self.timing.max_payload
        );
        Flow::End(Ending::Close(CloseReason {
            code: CloseCode::Size,
            description: Some("message larger than maxPayload".to_owned()),
        }))
    }

    fn protocol_error(&self, reason: String) -> Flow {
        log::warn!(
            "{}: protocol error, closing with 1002: {reason}",
            self.name()
        );
        Flow::End(Ending::Close(CloseReason {
            code: CloseCode::Protocol,
            description: Some(reason),
        }))
    }

    /// One Engine.IO packet.
    fn on_text(&mut self, text: &str) -> Flow {
        // Fast path: a message's Socket.IO text is decoded in place.
        if let Some(socketio) = text.strip_prefix('4') {
            return self.on_socketio(socketio);
        }
        match engineio::Packet::decode_text(text) {
            Err(e) => self.protocol_error(format!("bad Engine.IO packet: {e}")),
            Ok(engineio::Packet::Pong(_)) => {
                // Only rescheduling: the next ping goes out ping_interval from now.
                self.awaiting_pong = false;
                self.heartbeat_at = Instant::now() + self.timing.ping_interval;
                Flow::Continue
            }
            Ok(engineio::Packet::Ping(_)) => {
                self.protocol_error("invalid heartbeat direction".to_owned())
            }
            Ok(engineio::Packet::Close) => {
                log::debug!("{}: peer sent an Engine.IO close", self.name());
                Flow::End(Ending::Close(CloseCode::Normal.into()))
            }
            Ok(engineio::Packet::Upgrade | engineio::Packet::Noop) => Flow::Continue,
            Ok(engineio::Packet::Open(_)) => {
                self.protocol_error("a client never sends an open packet".to_owned())
            }
            // Neither can come out of a text frame; `4` took the fast path.
            Ok(engineio::Packet::Message(_) | engineio::Packet::Binary(_)) => Flow::Continue,
        }
    }

    /// One Socket.IO packet (an Engine.IO message's text).
    fn on_socketio(&mut self, text: &str) -> Flow {
        // Fast path: the acks of pushes, most of what a busy peer sends.
        if let Some(ack_id) = socketio::plain_ack_id(text) {
            self.on_push_ack(ack_id);
            return Flow::Continue;
        }
        let packet = match socketio::Packet::decode(text) {
            Ok(packet) => packet,
            Err(e) => return self.protocol_error(format!("bad Socket.IO packet: {e}")),
        };
        // Attachments of binary packets follow as binary frames: swallow them.
        self.pending_attachments = self.pending_attachments.saturating_add(packet.attachments);
        if packet.namespace != DEFAULT_NAMESPACE {
            return self.on_other_namespace(packet);
        }
        match packet.kind {
            PacketKind::Connect => self.on_connect(&packet),
            PacketKind::Disconnect => {
                log::debug!("{}: peer sent DISCONNECT", self.name());
                Flow::End(Ending::Close(CloseCode::Normal.into()))
            }
            PacketKind::Event | PacketKind::BinaryEvent => self.on_event(&packet),
            PacketKind::Ack | PacketKind::BinaryAck => {
                match packet.ack_id {
                    Some(ack_id) => self.on_push_ack(ack_id),
                    None => log::debug!("{}: ignored an ACK without an id", self.name()),
                }
                Flow::Continue
            }
            PacketKind::ConnectError => {
                self.protocol_error("a client never sends CONNECT_ERROR".to_owned())
            }
        }
    }

    /// effex serves `/` only. A CONNECT elsewhere is refused the Socket.IO
    /// way; the socket stays open, since the client may be on `/` as well.
    fn on_other_namespace(&mut self, packet: socketio::Packet) -> Flow {
        if packet.kind == PacketKind::Connect {
            let mut refusal = socketio::Packet::connect_error(&ConnectRefused {
                message: "Invalid namespace".to_owned(),
                data: None,
            });
            refusal.namespace = packet.namespace;
            self.queue_socketio(&refusal);
        } else {
            log::warn!(
                "{}: ignored a {:?} packet on namespace {:?}, which it never joined",
                self.name(),
                packet.kind,
                packet.namespace
            );
        }
        Flow::Continue
    }

    /// CONNECT on `/`, plain or with the pass as auth.
    fn on_connect(&mut self, packet: &socketio::Packet) -> Flow {
        if self.sio_sid.is_some() {
            return self.protocol_error("a second CONNECT to /".to_owned());
        }
        let auth = match packet.data.as_deref() {
            None => ConnectAuth::default(),
            Some(raw) => match serde_json::from_str::<ConnectAuth>(raw.get()) {
                Ok(auth) => auth,
                Err(e) => {
                    return self.refuse_connect(Failure::new(400, format!("bad auth payload: {e}")))
                }
            },
        };
        // Without a pass the client passes later with the `pass` event.
        if let Some(pass) = auth.pass {
            if let Err(limited) = self.pass_allowed() {
                return self.refuse_connect_limited(&limited);
            }
            let push_id = auth.push_id.unwrap_or_default();
            if let Err(failure) = self.check_pass(&pass, &push_id) {
                return self.refuse_connect(failure);
            }
            self.accept_pass(push_id);
        }
        let sid = random_sid();
        self.sio_sid = Some(sid.clone());
        self.queue_socketio(&socketio::Packet::connect(Some(&ConnectOk { sid })));
        Flow::Continue
    }

    /// CONNECT_ERROR, then close 1000 (the namespace is all effex serves).
    fn refuse_connect(&mut self, failure: Failure) -> Flow {
        self.count_failed_pass();
        self.close_refused(&ConnectRefused::new(failure.code, failure.error))
    }

    /// CONNECT_ERROR 429 with `retryAfter` to a pass from a locked-out
    /// address (not checked), then close 1000 (protocol.md §2.2).
    fn refuse_connect_limited(&mut self, limited: &Limited) -> Flow {
        self.count_locked_out_pass(limited);
        self.close_refused(&limited.connect_refusal())
    }

    /// Sends the CONNECT_ERROR `refusal`, then closes with 1000.
    fn close_refused(&mut self, refusal: &impl Serialize) -> Flow {
        self.queue_socketio(&socketio::Packet::connect_error(refusal));
        Flow::End(Ending::Close(CloseReason {
            code: CloseCode::Normal,
            description: Some("connect refused".to_owned()),
        }))
    }

    /// An EVENT (or BINARY_EVENT) on `/`.
    fn on_event(&mut self, packet: &socketio::Packet) -> Flow {
        if self.sio_sid.is_none() {
            return self.protocol_error("EVENT before CONNECT".to_owned());
        }
        let Some(name) = packet.event_name() else {
            return self.protocol_error("an EVENT without a name".to_owned());
        };
        let Some(ack_id) = packet.ack_id else {
            log::warn!(
                "{}: ignored event {name:?} without an ack id: effex answers every call",
                self.name()
            );
            return Flow::Continue;
        };
        if packet.kind == PacketKind::BinaryEvent {
            self.queue_ack(
                ack_id,
                &Failure::new(400, "binary attachments are not supported"),
            );
            return Flow::Continue;
        }
        if name == PASS_EVENT {
            return self.on_pass_event(ack_id, packet);
        }
        if !self.passed() {
            self.queue_ack(ack_id, &Failure::new(401, "pass first"));
            return Flow::Continue;
        }
        if name == WATCH_EVENT || name == UNWATCH_EVENT {
            self.on_hub_call(&name, ack_id, packet);
            return Flow::Continue;
        }
        match self.on_passed_event(&name, packet) {
            Ok(reply) => self.queue_ack(ack_id, &reply),
            Err(failure) => self.queue_ack(ack_id, &failure),
        }
        Flow::Continue
    }

    /// The events of a socket that has passed, answered with the ack's reply
    /// object (`Ok` for `{"ok":true,…}`, `Err` for a failure).
    ///
    /// `watch` and `unwatch` do not come here: they go to the hub (see
    /// [`Session::on_hub_call`]), which answers through the mailbox. An arm
    /// that must wait should do the same, so that this loop never blocks.
    fn on_passed_event(
        &mut self,
        name: &str,
        _packet: &socketio::Packet,
    ) -> Result<Box<RawValue>, Failure> {
        #[allow(clippy::match_single_binding)] // arms are added by the hub
        match name {
            // WATCH_EVENT => hub.watch(…),
            // UNWATCH_EVENT => hub.unwatch(…),
            other => Err(Failure::new(400, format!("unknown event {other:?}"))),
        }
    }

    /// `["pass", {"pass","pushId"}]`.
    fn on_pass_event(&mut self, ack_id: u64, packet: &socketio::Packet) -> Flow {
        if let Err(limited) = self.pass_allowed() {
            // Locked out: answered without checking the pass (protocol.md §2.2).
            self.count_locked_out_pass(&limited);
            self.queue_ack(ack_id, &limited.pass_reply());
            return Flow::End(Ending::Disconnect("too many attempts"));
        }
        let pass = match packet.first_arg::<Pass>() {
            Ok(pass) => pass,
            Err(e) => {
                log::debug!("{}: unreadable pass payload: {e}", self.name());
                return self.fail_pass(ack_id, Failure::new(400, "bad pushId"));
            }
        };
        if let Err(failure) = self.check_pass(&pass.pass, &pass.push_id) {
            return self.fail_pass(ack_id, failure);
        }
        match self.registration.push_id.as_deref() {
            Some(current) if *current != *pass.push_id => {
                // One socket, one push id: re-passing under another name is a
                // client bug, not an attack; the socket keeps its first name.
                self.queue_ack(
                    ack_id,
                    &Failure::new(409, format!("already passed as pushId {current:?}")),
                );
                return Flow::Continue;
            }
            Some(_) => {}
            None => self.accept_pass(pass.push_id.clone()),
        }
        let reply = Success(PassOk {
            connection: self.sio_sid.clone().unwrap_or_default(),
            push_id: pass.push_id,
            server_time: UnixMillis::now(),
        });
        self.queue_ack(ack_id, &reply);
        Flow::Continue
    }

    /// Answers a failed pass, then `41` and close 1000.
    fn fail_pass(&mut self, ack_id: u64, failure: Failure) -> Flow {
        log::info!("{}: pass refused: {}", self.name(), failure.error);
        self.count_failed_pass();
        self.queue_ack(ack_id, &failure);
        Flow::End(Ending::Disconnect("pass refused"))
    }

    /// Counts a pass that was checked and failed: in the stats, and against
    /// the client address's failed-authentication allowance.
    fn count_failed_pass(&self) {
        self.count_refused_pass();
        self.registration
            .shared
            .limits
            .failed_auth
            .record_failure(self.client);
    }

    /// Counts (and logs) a pass refused unchecked because the client's
    /// address is locked out.
    fn count_locked_out_pass(&self, limited: &Limited) {
        // Debug: a locked-out flood must not flood the log too.
        log::debug!("{}: pass refused: {}", self.name(), limited.message);
        self.registration.shared.metrics.passes_limited.inc();
        self.count_refused_pass();
    }

    /// Counts a refused pass in the stats.
    fn count_refused_pass(&self) {
        self.registration
            .shared
            .registry
            .counters
            .passes_failed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// `Err` while the client's address is locked out for failed passes.
    fn pass_allowed(&self) -> Result<(), Limited> {
        self.registration
            .shared
            .limits
            .failed_auth
            .check(self.client)
    }

    /// The pushId first (400), then the passphrase (401).
    fn check_pass(&self, pass: &str, push_id: &str) -> Result<(), Failure> {
        if !is_valid_push_id(push_id) {
            return Err(Failure::new(400, "bad pushId"));
        }
        match &self.registration.shared.config.passphrase {
            Some(expected) if !same_secret(expected.as_bytes(), pass.as_bytes()) => {
                Err(Failure::new(401, "bad passphrase"))
            }
            _ => Ok(()),
        }
    }

    /// Marks the socket as passed and takes over its push id from an older
    /// connection, which is told to go.
    fn accept_pass(&mut self, push_id: String) {
        let shared = &self.registration.shared;
        shared
            .registry
            .counters
            .passes_ok
            .fetch_add(1, Ordering::Relaxed);
        if let Some(older) = shared
            .registry
            .claim_push_id(&push_id, self.registration.id)
        {
            send_command(&older, Command::Replaced);
        }
        log::debug!("{}: passed as {push_id:?}", self.name());
        self.registration.push_id = Some(push_id.into());
    }
}

/// Whether a hub reply refuses a watch's key (401: unknown or expired key).
fn is_key_refusal(body: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Code {
        code: Option<u16>,
    }
    // Only failures carry a code; a success (`{"ok":true,…}`) has none.
    serde_json::from_str::<Code>(body.get()).is_ok_and(|reply| reply.code == Some(401))
}

/// 20 random base64url characters (120 bits).
fn random_sid() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    (0..SID_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_random_base64url() {
        let a = random_sid();
        let b = random_sid();
        assert_eq!(a.len(), SID_LEN);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }
}
