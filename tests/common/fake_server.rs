//! A scripted Socket.IO server for fault cases: it speaks the real protocol
//! over a real WebSocket on 127.0.0.1, but can be told to stay silent at any
//! stage, stop pinging, or drop the socket. It reports what it sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use tokio::sync::mpsc;

/// What the fake server does at each stage.
#[derive(Clone, Debug)]
pub struct Script {
    /// Send the Engine.IO open packet.
    pub send_open: bool,
    /// Answer Socket.IO CONNECT.
    pub answer_connect: bool,
    /// Answer the `pass` event, after this delay (None: never).
    pub answer_pass: Option<Duration>,
    /// Advertised ping interval.
    pub ping_interval: Duration,
    /// Advertised ping timeout.
    pub ping_timeout: Duration,
    /// Send pings at all.
    pub send_pings: bool,
    /// Ack other events with `{"ok":true,"echo":<arg>}`.
    pub ack_events: bool,
    /// Close the socket (1000) when an event other than `pass` arrives.
    pub close_on_event: bool,
    /// Close the socket (1000) right after CONNECT arrives.
    pub close_on_connect: bool,
    /// Hold each connection's `pass` ack (instead of `answer_pass`) until the
    /// next connection sends its own `pass`, then write it on the older
    /// socket, which stays open after the client's close frame: a late ack
    /// that really reaches the client while it waits for a newer pass ack
    /// (with the same ack id). The newest connection's pass stays unanswered.
    /// Each late ack written is reported as [`Seen::Sent`].
    pub late_pass_ack: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            send_open: true,
            answer_connect: true,
            answer_pass: Some(Duration::ZERO),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            send_pings: true,
            ack_events: true,
            close_on_event: false,
            close_on_connect: false,
            late_pass_ack: false,
        }
    }
}

/// Something the fake server saw on connection number `.0` (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A WebSocket opened.
    Opened(usize),
    /// A text frame arrived.
    Text(usize, String),
    /// A close frame arrived with this code.
    Close(usize, Option<u16>),
    /// The connection's stream ended.
    Ended(usize),
    /// A held (late) frame was written on this connection (see
    /// [`Script::late_pass_ack`]).
    Sent(usize, String),
}

/// A running fake server.
pub struct FakeServer {
    addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    connections: Arc<AtomicUsize>,
    seen: tokio::sync::Mutex<mpsc::UnboundedReceiver<Seen>>,
}

struct Shared {
    script: Script,
    connections: Arc<AtomicUsize>,
    seen: mpsc::UnboundedSender<Seen>,
    /// The held pass ack of the latest connection (`late_pass_ack`), and
    /// where to send it to have that connection write it.
    held_pass: std::sync::Mutex<Option<(mpsc::UnboundedSender<String>, String)>>,
}

impl FakeServer {
    /// Starts a fake server on 127.0.0.1:0 (inside an actix system).
    pub fn start(script: Script) -> Self {
        let connections = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = web::Data::new(Shared {
            script,
            connections: connections.clone(),
            seen: tx,
            held_pass: std::sync::Mutex::new(None),
        });
        let (addr, handle) = super::loopback::serve(move |app| {
            app.app_data(shared.clone())
                .route("/socket.io/", web::get().to(upgrade));
        });
        Self {
            addr,
            handle,
            connections,
            seen: tokio::sync::Mutex::new(rx),
        }
    }

    /// The base URL (`ws://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// How many WebSockets were opened so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Waits up to `deadline` for an event matching `want`, skipping others;
    /// returns every event seen up to and including the match.
    pub async fn wait_for(
        &self,
        deadline: Duration,
        mut want: impl FnMut(&Seen) -> bool,
    ) -> Result<Vec<Seen>, Vec<Seen>> {
        let mut seen = Vec::new();
        let mut rx = self.seen.lock().await;
        let result = tokio::time::timeout(deadline, async {
            while let Some(event) = rx.recv().await {
                let hit = want(&event);
                seen.push(event);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        match result {
            Ok(true) => Ok(seen),
            _ => Err(seen),
        }
    }

    /// Stops the server (closing its sockets abruptly).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
) -> actix_web::Result<HttpResponse> {
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    let number = shared.connections.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = shared.seen.send(Seen::Opened(number));
    actix_rt::spawn(run(shared.into_inner(), number, session, stream));
    Ok(response)
}

async fn run(
    shared: Arc<Shared>,
    number: usize,
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
) {
    let script = shared.script.clone();
    let report = |seen| {
        let _ = shared.seen.send(seen);
    };
    if script.send_open {
        let open = format!(
            r#"0{{"sid":"fake{number}","upgrades":[],"pingInterval":{},"pingTimeout":{},"maxPayload":1000000}}"#,
            script.ping_interval.as_millis(),
            script.ping_timeout.as_millis()
        );
        let _ = session.text(open).await;
    }
    let mut ping = tokio::time::interval(script.ping_interval);
    ping.tick().await;
    let (delayed_tx, mut delayed_rx) = mpsc::unbounded_channel::<String>();
    let (late_tx, mut late_rx) = mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            _ = ping.tick(), if script.send_pings && script.send_open => {
                if session.text("2").await.is_err() { break; }
            }
            Some(text) = delayed_rx.recv() => {
                if session.text(text).await.is_err() { break; }
            }
            Some(text) = late_rx.recv() => {
                if session.text(text.clone()).await.is_err() { break; }
                report(Seen::Sent(number, text));
            }
            message = stream.recv() => {
                let Some(Ok(message)) = message else { break };
                match message {
                    Message::Text(text) => {
                        let text = text.to_string();
                        report(Seen::Text(number, text.clone()));
                        if text == "40" {
                            if script.close_on_connect {
                                let _ = session.close(Some(CloseReason::from(CloseCode::Normal))).await;
                                report(Seen::Ended(number));
                                return;
                            }
                            if script.answer_connect {
                                let _ = session.text(format!(r#"40{{"sid":"s{number}"}}"#)).await;
                            }
                        } else if let Some(rest) = text.strip_prefix("42") {
                            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                            let body = &rest[digits.len()..];
                            if body.starts_with("[\"pass\"") && script.late_pass_ack {
                                let reply = format!(
                                    r#"43{digits}[{{"ok":true,"connection":"s{number}","pushId":"p","serverTime":1}}]"#
                                );
                                let mut held = shared.held_pass.lock().expect("held pass lock");
                                if let Some((older, late)) = held.replace((late_tx.clone(), reply)) {
                                    let _ = older.send(late);
                                }
                            } else if body.starts_with("[\"pass\"") {
                                if let Some(delay) = script.answer_pass {
                                    let reply = format!(
                                        r#"43{digits}[{{"ok":true,"connection":"s{number}","pushId":"p","serverTime":1}}]"#
                                    );
                                    let tx = delayed_tx.clone();
                                    actix_rt::spawn(async move {
                                        tokio::time::sleep(delay).await;
                                        let _ = tx.send(reply);
                                    });
                                }
                            } else if script.close_on_event {
                                let _ = session.close(Some(CloseReason::from(CloseCode::Normal))).await;
                                report(Seen::Ended(number));
                                return;
                            } else if script.ack_events && !digits.is_empty() {
                                let _ = session.text(format!(r#"43{digits}[{{"ok":true}}]"#)).await;
                            }
                        }
                    }
                    Message::Ping(data) => {
                        let _ = session.pong(&data).await;
                    }
                    Message::Close(reason) => {
                        report(Seen::Close(number, reason.map(|r| u16::from(r.code))));
                        if script.late_pass_ack {
                            // Keep the socket open: the held ack may come later.
                            continue;
                        }
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    report(Seen::Ended(number));
}
