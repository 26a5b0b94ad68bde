//! A raw WebSocket test client over awc: frames in and out, every wait
//! bounded, with small helpers for the Engine.IO / Socket.IO handshake.
//! Test code: it panics with a clear message instead of returning errors.

use std::sync::Arc;
use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{self, Codec, Frame, Message};
use awc::BoxedSocket;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

/// How long any single wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// The frame size the test client accepts (above any server's maxPayload).
pub const MAX_FRAME: usize = 2_000_000;

/// What the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A close frame: its code and description, if any.
    Close(Option<u16>, Option<String>),
    /// The connection ended without a close frame.
    Ended,
}

/// An HTTP/1.1 awc client (WebSockets need HTTP/1.1), optionally with a
/// TLS config for `wss://`.
///
/// With TLS, HTTP/1.1 is chosen by the config's ALPN (set here): awc's
/// `ClientBuilder::max_http_version` would rebuild the TLS connector from
/// awc's own root features and drop the one given.
pub fn http_client(tls: Option<Arc<rustls::ClientConfig>>) -> awc::Client {
    match tls {
        Some(tls) => {
            let mut tls = (*tls).clone();
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            awc::Client::builder()
                .connector(awc::Connector::new().rustls_0_23(Arc::new(tls)))
                .finish()
        }
        None => awc::Client::builder()
            .max_http_version(awc::http::Version::HTTP_11)
            .finish(),
    }
}

/// One raw WebSocket.
pub struct Wire {
    framed: Framed<BoxedSocket, Codec>,
    /// Answer Engine.IO pings (`2`) with `3` and skip them when reading texts.
    /// On by default; heartbeat tests turn it off to see every ping.
    pub auto_pong: bool,
    /// Engine.IO pings seen so far.
    pub pings: usize,
}

impl Wire {
    /// Opens a WebSocket or fails with awc's error (e.g. a 400 status).
    pub async fn try_connect_with(
        client: &awc::Client,
        url: &str,
    ) -> Result<Self, awc::error::WsClientError> {
        let connect = client.ws(url).max_frame_size(MAX_FRAME).connect();
        let (_response, framed) = tokio::time::timeout(WAIT, connect)
            .await
            .unwrap_or_else(|_| panic!("connecting to {url} took over {WAIT:?}"))?;
        Ok(Self {
            framed,
            auto_pong: true,
            pings: 0,
        })
    }

    /// Opens a WebSocket to a `ws://` URL; panics on failure.
    pub async fn connect(url: &str) -> Self {
        Self::try_connect_with(&http_client(None), url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    }

    /// Opens a WebSocket and reads the Engine.IO open packet.
    pub async fn open(url: &str) -> (Self, Value) {
        let mut wire = Self::connect(url).await;
        let open = wire.expect_open().await;
        (wire, open)
    }

    /// Opens a WebSocket, reads the open packet and joins `/` with a plain
    /// CONNECT; returns the Socket.IO sid.
    pub async fn joined(url: &str) -> (Self, String) {
        let (mut wire, _) = Self::open(url).await;
        let sid = wire.join().await;
        (wire, sid)
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.send(Message::Text(text.into().into())).await;
    }

    /// Sends any WebSocket message.
    pub async fn send(&mut self, message: Message) {
        tokio::time::timeout(WAIT, self.framed.send(message))
            .await
            .unwrap_or_else(|_| panic!("sending took over {WAIT:?}"))
            .unwrap_or_else(|e| panic!("sending failed: {e}"));
    }

    /// The next thing the server sends, or `None` if nothing comes within
    /// `wait`. WebSocket pings are answered and skipped; so are Engine.IO
    /// pings when `auto_pong` is on.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.framed.next())
                .await
                .ok()?;
            let frame = match frame {
                None => return Some(Received::Ended),
                Some(Err(e)) => panic!("WebSocket protocol error from the server: {e}"),
                Some(Ok(frame)) => frame,
            };
            match frame {
                Frame::Text(bytes) => {
                    let text = String::from_utf8(bytes.to_vec())
                        .unwrap_or_else(|e| panic!("text frame is not UTF-8: {e}"));
                    if text == "2" {
                        self.pings += 1;
                        if self.auto_pong {
                            self.send_text("3").await;
                            continue;
                        }
                    }
                    return Some(Received::Text(text));
                }
                Frame::Binary(bytes) => return Some(Received::Binary(bytes)),
                Frame::Ping(data) => {
                    let _ = self.framed.send(Message::Pong(data)).await;
                }
                Frame::Pong(_) => {}
                Frame::Close(reason) => {
                    // Complete the closing handshake and shut our side
                    // down, as a real client does (best effort).
                    let _ = self.framed.send(Message::Close(reason.clone())).await;
                    let _ = self.framed.close().await;
                    return Some(match reason {
                        Some(r) => Received::Close(Some(u16::from(r.code)), r.description),
                        None => Received::Close(None, None),
                    });
                }
                Frame::Continuation(_) => panic!("the server sent a continuation frame"),
            }
        }
    }

    /// The next thing the server sends, within [`WAIT`].
    pub async fn next(&mut self) -> Received {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("nothing received within {WAIT:?}"))
    }

    /// Every push received (without acking any) until the server closes the
    /// socket, and the close code; panics on any other frame.
    pub async fn pushes_until_close(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut pushes = Vec::new();
        loop {
            match self.next().await {
                Received::Text(text) => match classify(&text) {
                    Incoming::Push(_, push) => pushes.push(push),
                    other => panic!("unexpected {other:?}"),
                },
                Received::Close(code, _) => return (pushes, code),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next text frame; panics on anything else.
    pub async fn next_text(&mut self) -> String {
        match self.next().await {
            Received::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Expects exactly this text frame next.
    pub async fn expect_text(&mut self, expected: &str) {
        assert_eq!(self.next_text().await, expected);
    }

    /// Expects a close frame next; returns its code and description.
    pub async fn expect_close(&mut self) -> (u16, String) {
        match self.next().await {
            Received::Close(Some(code), description) => (code, description.unwrap_or_default()),
            other => panic!("expected a close frame with a code, got {other:?}"),
        }
    }

    /// Expects a close frame with this code next.
    pub async fn expect_close_code(&mut self, code: u16) {
        let (got, description) = self.expect_close().await;
        assert_eq!(got, code, "close code (description: {description:?})");
    }

    /// Expects the server's goodbye: `41`, then close 1000.
    pub async fn expect_goodbye(&mut self) {
        self.expect_text("41").await;
        self.expect_close_code(1000).await;
    }

    /// Expects the server to end the connection (TCP) next.
    pub async fn expect_ended(&mut self) {
        match self.next().await {
            Received::Ended => {}
            other => panic!("expected the connection to end, got {other:?}"),
        }
    }

    /// Expects nothing but Engine.IO pings (answered) for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(received) = self.next_within(wait).await {
            panic!("expected silence for {wait:?}, got {received:?}");
        }
    }

    /// Reads the Engine.IO open packet (`0{…}`) and returns its JSON.
    pub async fn expect_open(&mut self) -> Value {
        let text = self.next_text().await;
        let json = text
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("expected an open packet, got {text:?}"));
        serde_json::from_str(json).unwrap_or_else(|e| panic!("bad open packet {text:?}: {e}"))
    }

    /// Sends a plain CONNECT (`40`) and returns the sid of `40{"sid":…}`.
    pub async fn join(&mut self) -> String {
        self.send_text("40").await;
        self.expect_connect_ok().await
    }

    /// Expects `40{"sid":…}` and returns the sid.
    pub async fn expect_connect_ok(&mut self) -> String {
        let text = self.next_text().await;
        let json = text
            .strip_prefix("40")
            .unwrap_or_else(|| panic!("expected CONNECT, got {text:?}"));
        let value: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("bad CONNECT reply {text:?}: {e}"));
        value["sid"]
            .as_str()
            .unwrap_or_else(|| panic!("CONNECT reply without sid: {text:?}"))
            .to_owned()
    }

    /// Sends the event `[name, arg]` with an ack id.
    pub async fn emit(&mut self, ack_id: u64, name: &str, arg: Value) {
        self.send_text(format!("42{ack_id}{}", json!([name, arg])))
            .await;
    }

    /// Expects the ack `43<ack_id>[reply]` and returns the reply.
    pub async fn expect_ack(&mut self, ack_id: u64) -> Value {
        let text = self.next_text().await;
        let prefix = format!("43{ack_id}");
        let json = text
            .strip_prefix(&prefix)
            .filter(|rest| rest.starts_with('['))
            .unwrap_or_else(|| panic!("expected an ack {prefix}[…], got {text:?}"));
        let args: Vec<Value> =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("bad ack {text:?}: {e}"));
        args.into_iter()
            .next()
            .unwrap_or_else(|| panic!("ack without a reply: {text:?}"))
    }

    /// Emits an event with an ack id and returns the reply.
    pub async fn call(&mut self, ack_id: u64, name: &str, arg: Value) -> Value {
        self.emit(ack_id, name, arg).await;
        self.expect_ack(ack_id).await
    }

    /// A `watch` that must succeed: returns its watchable (panics, with the
    /// reply, on a refusal).
    pub async fn watch_ok(&mut self, ack_id: u64, args: Value) -> String {
        let reply = self.call(ack_id, "watch", args).await;
        assert_eq!(
            reply["ok"],
            serde_json::json!(true),
            "watch refused: {reply}"
        );
        reply["watchable"].as_str().expect("a watchable").to_owned()
    }

    /// The `pass` event: returns its reply.
    pub async fn pass(&mut self, ack_id: u64, pass: &str, push_id: &str) -> Value {
        self.call(ack_id, "pass", json!({"pass": pass, "pushId": push_id}))
            .await
    }

    /// Sends a close frame with this code.
    pub async fn close(&mut self, code: u16) {
        self.send(Message::Close(Some(ws::CloseReason::from(
            ws::CloseCode::from(code),
        ))))
        .await;
    }
}

/// A text frame the server sent, classified for the push tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// `42<ack id>["push",{…}]`: a push and its ack id.
    Push(u64, Value),
    /// `43<ack id>[reply]`: the answer to one of our calls.
    Ack(u64, Value),
    /// Anything else.
    Other(String),
}

/// Splits `<digits><rest>` into the number and the rest.
fn leading_id(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let id = text.get(..digits)?.parse().ok()?;
    Some((id, &text[digits..]))
}

/// Classifies one text frame.
pub fn classify(text: &str) -> Incoming {
    if let Some((ack_id, json)) = text.strip_prefix("42").and_then(leading_id) {
        if let Ok(Value::Array(args)) = serde_json::from_str::<Value>(json) {
            if args.len() == 2 && args[0] == "push" {
                return Incoming::Push(ack_id, args[1].clone());
            }
        }
    }
    if let Some((ack_id, json)) = text.strip_prefix("43").and_then(leading_id) {
        if let Ok(Value::Array(mut args)) = serde_json::from_str::<Value>(json) {
            if !args.is_empty() {
                return Incoming::Ack(ack_id, args.swap_remove(0));
            }
        }
    }
    Incoming::Other(text.to_owned())
}

impl Wire {
    /// The next text frame, classified.
    pub async fn next_incoming(&mut self) -> Incoming {
        classify(&self.next_text().await)
    }

    /// The next push (its ack id and object); panics on anything else.
    pub async fn next_push(&mut self) -> (u64, Value) {
        match self.next_incoming().await {
            Incoming::Push(ack_id, push) => (ack_id, push),
            other => panic!("expected a push, got {other:?}"),
        }
    }

    /// Acknowledges push `ack_id` as the effex client does.
    pub async fn ack_push(&mut self, ack_id: u64) {
        self.send_text(format!("43{ack_id}[{{\"ok\":true}}]")).await;
    }

    /// The next push, acknowledged; returns its object.
    pub async fn next_push_acked(&mut self) -> Value {
        let (ack_id, push) = self.next_push().await;
        self.ack_push(ack_id).await;
        push
    }

    /// The next `n` pushes, each acknowledged.
    pub async fn pushes_acked(&mut self, n: usize) -> Vec<Value> {
        let mut pushes = Vec::with_capacity(n);
        for _ in 0..n {
            pushes.push(self.next_push_acked().await);
        }
        pushes
    }

    /// Opens a socket, joins `/` and passes as `push_id` (any passphrase).
    pub async fn passed(url: &str, pass: &str, push_id: &str) -> Self {
        let (mut wire, _) = Self::joined(url).await;
        let reply = wire.pass(0, pass, push_id).await;
        assert_eq!(reply["ok"], json!(true), "pass refused: {reply}");
        wire
    }
}

/// The `ended` event's argument in a text frame, if it is one
/// (`42["ended",{…}]`, protocol.md §2.6).
pub fn ended_of(text: &str) -> Option<Value> {
    let json = text.strip_prefix("42")?;
    match serde_json::from_str::<Value>(json).ok()? {
        Value::Array(args) if args.len() == 2 && args[0] == "ended" => Some(args[1].clone()),
        _ => None,
    }
}
