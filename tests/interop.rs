//! Interop with the real thing (protocol.md §1, §2.1, §2.2, §2.6): Node's
//! socket.io-client 4.8.4 against the effex server, and the effex
//! `ConnectionActor` against Node's socket.io 4.8.4 server.
//!
//! Needs `node` on the PATH and the pinned packages installed:
//!
//! ```text
//! (cd tests/interop && npm ci)
//! cargo test --features interop --test interop
//! ```
//!
//! The Node side lives in `tests/interop/client.js` (one scenario per run,
//! one JSON line on stdout), `tests/interop/watcher.js` (a push client driven
//! one command per stdin line, one JSON event per stdout line; protocol.md
//! §2.3, §2.4) and `tests/interop/server.js` (prints `{"port":N}`, exits when
//! its stdin closes). Node processes are driven with `std::process` and
//! reader threads (the crate's tokio has no `process` feature); every wait is
//! bounded.
#![cfg(feature = "interop")]

mod common;

use common::child::{lines_of, wait_exit};
use common::node_watcher::{node_command, NodeWatcher};
use common::poll::poll_within;
use common::states::{state_within, watch_states};

use std::io::Read;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use common::exchange::Exchange;
use effex::client::{
    ClientConfig, ConnectError, ConnectionActor, ConnectionState, DisconnectReason, Emit,
    GetConnected, Session,
};
use effex::server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

const PASS: &str = "correct horse battery staple";
const WRONG_PASS: &str = "not the passphrase";
/// Bound for one Node process to start and finish a scenario (the scripts
/// give up after 5 s themselves; node's start-up comes on top).
const NODE_BOUND: Duration = Duration::from_secs(20);
/// Bound for an effex-side step (connect, ack, state change).
const STEP_BOUND: Duration = Duration::from_secs(5);
/// The Node server's heartbeat in the ConnectionActor tests.
const PING_INTERVAL_MS: u64 = 200;
const PING_TIMEOUT_MS: u64 = 200;

// ---------------------------------------------------------------------------
// Node plumbing
// ---------------------------------------------------------------------------

fn spawn_node(mut command: Command, what: &str) -> Child {
    command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run `node` for {what}: {e}; install Node.js (>= 18) and put `node` on the PATH"
        )
    })
}

/// Collects a child's stderr in the background, for failure messages.
fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(mut stderr) = child.stderr.take() {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    log
}

/// What one `client.js` run said.
#[derive(Debug)]
struct ClientRun {
    status: ExitStatus,
    line: Value,
    stderr: String,
}

/// Runs `node client.js <url> <scenario> <pass> <push_id>` to completion.
async fn run_client(url: &str, scenario: &str, pass: &str, push_id: &str) -> ClientRun {
    let mut command = node_command("client.js");
    command
        .args([url, scenario, pass, push_id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_node(command, "client.js");
    let stderr = collect_stderr(&mut child);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });

    let started = Instant::now();
    let out = match tokio::time::timeout(NODE_BOUND, rx).await {
        Ok(out) => out.expect("stdout reader thread"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "client.js {scenario} did not finish within {NODE_BOUND:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
    };
    let status = match wait_exit(&mut child, NODE_BOUND.saturating_sub(started.elapsed())).await {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("client.js {scenario} closed its stdout but did not exit within {NODE_BOUND:?}");
        }
    };
    // The stderr reader ends at EOF, right after the exit; give it a moment
    // (best effort: stderr only feeds failure messages).
    let _ = poll_within(Duration::from_millis(500), || {
        let read_all = Arc::strong_count(&stderr) == 1;
        async move { read_all.then_some(()) }
    })
    .await;
    let stderr = stderr.lock().unwrap().clone();
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "client.js {scenario} must print exactly one JSON line (exit {status}); stdout:\n{out}\nstderr:\n{stderr}"
    );
    let line = serde_json::from_str(lines[0]).unwrap_or_else(|e| {
        panic!(
            "client.js {scenario} printed {:?}, not JSON ({e}); stderr:\n{stderr}",
            lines[0]
        )
    });
    ClientRun {
        status,
        line,
        stderr,
    }
}

impl ClientRun {
    /// Asserts the scenario reached its expected outcome (exit 0).
    fn expect_success(self, scenario: &str) -> Value {
        assert!(
            self.status.success(),
            "client.js {scenario} exited with {} after printing {}; stderr:\n{}",
            self.status,
            self.line,
            self.stderr
        );
        self.line
    }
}

/// A running `node server.js`: killed and reaped on drop.
struct NodeServer {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
    /// Held open: the server exits when its stdin closes.
    _stdin: Option<ChildStdin>,
    /// Held so that its reader thread keeps draining stdout (the server must
    /// never block on a full pipe).
    _stdout: mpsc::UnboundedReceiver<String>,
}

impl NodeServer {
    async fn start(pass: &str, ping_interval_ms: u64, ping_timeout_ms: u64) -> NodeServer {
        let mut command = node_command("server.js");
        command
            .arg(format!("--pass={pass}"))
            .arg(format!("--ping-interval={ping_interval_ms}"))
            .arg(format!("--ping-timeout={ping_timeout_ms}"))
            .arg("--verbose")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_node(command, "server.js");
        let stderr = collect_stderr(&mut child);
        let stdin = child.stdin.take();
        let mut stdout = lines_of(child.stdout.take().expect("piped stdout"));
        let first = tokio::time::timeout(NODE_BOUND, stdout.recv()).await;
        let mut server = NodeServer {
            child,
            port: 0,
            stderr,
            _stdin: stdin,
            _stdout: stdout,
        };
        let line = match first {
            Ok(Some(line)) => line,
            Ok(_) => panic!(
                "server.js ended without printing its port; stderr:\n{}",
                server.log()
            ),
            Err(_) => panic!(
                "server.js printed no port within {NODE_BOUND:?}; stderr:\n{}",
                server.log()
            ),
        };
        let parsed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("server.js printed {line:?}, not {{\"port\":N}}: {e}"));
        server.port = parsed["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("server.js printed {line:?}, not {{\"port\":N}}"));
        server
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL: the sockets die with the process, no goodbye.
    async fn kill(&mut self) {
        self.child.kill().expect("kill node server.js");
        assert!(
            wait_exit(&mut self.child, STEP_BOUND).await.is_some(),
            "node server.js did not die within {STEP_BOUND:?} of SIGKILL"
        );
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// effex plumbing
// ---------------------------------------------------------------------------

async fn effex_server() -> ServerHandle {
    common::server::start(ServerConfig {
        passphrase: Some(PASS.to_owned()),
        ..ServerConfig::default()
    })
    .await
}

fn connection_actor(url: &str, pass: &str, push_id: &str) -> Addr<ConnectionActor> {
    let config = ClientConfig::builder(url)
        .pass(pass)
        .push_id(push_id)
        .connect_timeout(Duration::from_secs(5))
        .pass_timeout(Duration::from_secs(5))
        .build()
        .expect("valid client config");
    ConnectionActor::new(config).start()
}

async fn get_connected(conn: &Addr<ConnectionActor>) -> Result<Session, ConnectError> {
    tokio::time::timeout(Duration::from_secs(12), conn.send(GetConnected))
        .await
        .expect("GetConnected answered within its timeouts")
        .expect("connection actor alive")
}

fn is_disconnect(state: &ConnectionState) -> bool {
    matches!(
        state,
        ConnectionState::Disconnected { .. } | ConnectionState::ConnectFailed(_)
    )
}

// ---------------------------------------------------------------------------
// Node socket.io-client -> effex server
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn node_client_passes_with_the_pass_event() {
    let server = effex_server().await;
    let push_id = "node-pass-event";
    let reply = run_client(&server.ws_url(), "pass-event", PASS, push_id)
        .await
        .expect_success("pass-event");
    assert_eq!(reply["ok"], json!(true), "reply: {reply}");
    assert_eq!(reply["pushId"], json!(push_id), "reply: {reply}");
    // client.js also checked that `connection` is its Socket.IO id.
    assert!(
        reply["connection"].as_str().is_some_and(|c| !c.is_empty()),
        "reply: {reply}"
    );
    assert!(
        reply["serverTime"].as_u64().is_some_and(|t| t > 0),
        "reply: {reply}"
    );
    let stats = server.stats();
    assert_eq!((stats.passes_ok, stats.passes_failed), (1, 0), "{stats:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn node_client_passes_with_connect_auth() {
    let server = effex_server().await;
    let line = run_client(&server.ws_url(), "pass-auth", PASS, "node-pass-auth")
        .await
        .expect_success("pass-auth");
    assert_eq!(line["connected"], json!(true), "line: {line}");
    assert!(
        line["id"].as_str().is_some_and(|id| !id.is_empty()),
        "line: {line}"
    );
    let stats = server.stats();
    assert_eq!((stats.passes_ok, stats.passes_failed), (1, 0), "{stats:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn node_client_with_a_wrong_pass_event_gets_401() {
    let server = effex_server().await;
    let reply = run_client(
        &server.ws_url(),
        "wrong-pass-event",
        WRONG_PASS,
        "node-wrong",
    )
    .await
    .expect_success("wrong-pass-event");
    assert_eq!(
        reply,
        json!({"ok": false, "code": 401, "error": "bad passphrase"})
    );
    let stats = server.stats();
    assert_eq!((stats.passes_ok, stats.passes_failed), (0, 1), "{stats:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn node_client_with_a_wrong_pass_in_connect_auth_gets_connect_error_401() {
    let server = effex_server().await;
    let line = run_client(
        &server.ws_url(),
        "wrong-pass-auth",
        WRONG_PASS,
        "node-wrong",
    )
    .await
    .expect_success("wrong-pass-auth");
    assert_eq!(
        line,
        json!({"message": "bad passphrase", "data": {"code": 401}})
    );
    server.stop().await;
}

#[actix_rt::test]
async fn node_client_with_a_bad_push_id_in_connect_auth_gets_connect_error_400() {
    let server = effex_server().await;
    // The right pass, a push id with a space: refused before the pass check.
    let line = run_client(&server.ws_url(), "wrong-pass-auth", PASS, "has space")
        .await
        .expect_success("wrong-pass-auth (bad pushId)");
    assert_eq!(
        line,
        json!({"message": "bad pushId", "data": {"code": 400}})
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Node socket.io-client as a push client: watch, push, ack, replay
// ---------------------------------------------------------------------------

/// How the first connection of the replay scenario ends.
#[derive(Debug, Clone, Copy)]
enum Drops {
    /// Node disconnects itself (`socket.disconnect()`).
    ClientDisconnects,
    /// Node keeps the pushes unacked until the server's ack timeout closes the socket.
    AckTimeout,
}

/// Updates sent while Node watches, and how many of them it acks before the
/// connection drops.
const UPDATES: usize = 6;
const ACKED: usize = 2;

/// The replay scenario (protocol.md §2.3, §2.4): Node passes and watches
/// `update`, acks the first [`ACKED`] of [`UPDATES`] pushes and not the
/// rest; the connection drops; Node reconnects with the same push id,
/// passes, re-watches with `after` = the last acked seq, and must get
/// exactly the unacked pushes again, in seq order.
async fn node_watcher_replays_unacked_pushes(drops: Drops) {
    let config = match drops {
        Drops::ClientDisconnects => ServerConfig::default(),
        Drops::AckTimeout => ServerConfig {
            ack_timeout: Duration::from_millis(1000),
            ..ServerConfig::default()
        },
    };
    let exchange = Exchange::start(config).await;
    let (id, written_seq) = exchange
        .write(json!({"n": 0}), Duration::from_secs(120))
        .await;
    let push_id = format!("node-watcher-{drops:?}");
    let mut node = NodeWatcher::start(&exchange.server.ws_url(), common::exchange::PASS, &push_id);

    // First connection: pass, watch, pushes in seq order, the first ACKED acked.
    let passed = node.connect().await;
    assert_eq!(passed["pushId"], json!(push_id), "pass reply: {passed}");
    let watch = json!({"event": "update", "id": id, "key": exchange.reader});
    let watched = node.watch(watch.clone(), Some(ACKED)).await;
    assert_eq!(watched["ok"], json!(true), "watch reply: {watched}");
    assert_eq!(watched["gap"], json!(false), "watch reply: {watched}");
    assert!(
        watched["seq"].as_u64().is_some_and(|s| s >= written_seq),
        "watch reply: {watched} (the write was at seq {written_seq})"
    );
    let watchable = watched["watchable"]
        .as_str()
        .expect("a watchable")
        .to_owned();

    let mut seqs = Vec::with_capacity(UPDATES);
    for n in 1..=UPDATES {
        seqs.push(exchange.update(&id, json!({ "n": n })).await);
    }
    let first = node.pushes(UPDATES).await;
    for (i, (push, acked)) in first.iter().enumerate() {
        assert_eq!(push.seq, seqs[i], "push {i} of the first connection");
        assert_eq!(push.watchable, watchable);
        assert_eq!(push.event.as_str(), "update");
        assert_eq!(push.id, id);
        assert!(
            push.at > effex::protocol::time::UnixMillis::EPOCH,
            "{push:?}"
        );
        assert!(push.value.is_none(), "no withValue, no value: {push:?}");
        assert_eq!(
            *acked,
            i < ACKED,
            "push {i}: watcher.js acks the first {ACKED}"
        );
    }
    let last_acked = seqs[ACKED - 1];

    // The drop.
    if let Drops::ClientDisconnects = drops {
        node.send(json!({"cmd": "disconnect"}));
    }
    let bound = STEP_BOUND + Duration::from_secs(2);
    let Some(dropped) = node.next_within(bound).await else {
        panic!(
            "the first connection did not drop within {bound:?} ({drops:?}); stderr:\n{}",
            node.log()
        );
    };
    assert_eq!(dropped["event"], json!("disconnected"), "got {dropped}");
    match drops {
        Drops::ClientDisconnects => {
            assert_eq!(
                dropped["reason"],
                json!("io client disconnect"),
                "{dropped}"
            )
        }
        // The server closes the WebSocket (1002 "push ack timeout").
        Drops::AckTimeout => assert_eq!(dropped["reason"], json!("transport close"), "{dropped}"),
    }

    // Second connection, same push id: re-watch with `after`, ack everything.
    let passed = node.connect().await;
    assert_eq!(passed["pushId"], json!(push_id), "pass reply: {passed}");
    let mut rewatch = watch;
    rewatch["after"] = json!(last_acked);
    let rewatched = node.watch(rewatch, None).await;
    assert_eq!(rewatched["ok"], json!(true), "re-watch reply: {rewatched}");
    assert_eq!(
        rewatched["watchable"],
        json!(watchable),
        "the same (push id, event, item, key) keeps its watchable: {rewatched}"
    );
    assert_eq!(
        rewatched["gap"],
        json!(false),
        "re-watch reply: {rewatched}"
    );
    let replayed = node.pushes(UPDATES - ACKED).await;
    let replayed_seqs: Vec<u64> = replayed.iter().map(|(push, _)| push.seq).collect();
    assert_eq!(
        replayed_seqs,
        seqs[ACKED..],
        "exactly the unacked pushes again, in seq order (acked: {:?})",
        &seqs[..ACKED]
    );
    for (push, acked) in &replayed {
        assert_eq!(push.watchable, watchable);
        assert!(*acked, "the second connection acks everything");
    }
    // Nothing else: no acked push again, no duplicate.
    if let Some(extra) = node.next_within(Duration::from_millis(500)).await {
        panic!("an extra line after the replay: {extra}");
    }

    // Everything acked now: a live update still arrives, and only once.
    let live = exchange.update(&id, json!({"n": "live"})).await;
    let after = node.pushes(1).await;
    assert_eq!(after[0].0.seq, live);
    if let Some(extra) = node.next_within(Duration::from_millis(300)).await {
        panic!("an extra line after the live push: {extra}");
    }

    node.quit().await;
    let stats = exchange.server.stats();
    assert_eq!((stats.passes_ok, stats.passes_failed), (2, 0), "{stats:?}");
    exchange.server.stop().await;
}

#[actix_rt::test]
async fn node_client_watches_acks_and_gets_unacked_pushes_again_after_it_reconnects() {
    node_watcher_replays_unacked_pushes(Drops::ClientDisconnects).await;
}

#[actix_rt::test]
async fn node_client_that_does_not_ack_is_dropped_and_gets_the_pushes_again() {
    node_watcher_replays_unacked_pushes(Drops::AckTimeout).await;
}

// ---------------------------------------------------------------------------
// effex ConnectionActor -> Node socket.io server
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn connection_actor_keeps_a_node_session_through_heartbeats_and_sees_it_die() {
    let mut node = NodeServer::start(PASS, PING_INTERVAL_MS, PING_TIMEOUT_MS).await;
    let conn = connection_actor(&node.url(), PASS, "rust-actor");
    let mut states = watch_states(&conn).await;

    let session = get_connected(&conn).await.unwrap_or_else(|e| {
        panic!(
            "GetConnected against Node: {e}; server.js log:\n{}",
            node.log()
        )
    });
    assert_eq!(session.push_id(), "rust-actor");
    assert!(!session.connection().is_empty());
    assert_eq!(
        session.ping_interval(),
        Duration::from_millis(PING_INTERVAL_MS)
    );
    assert_eq!(
        session.ping_timeout(),
        Duration::from_millis(PING_TIMEOUT_MS)
    );

    // Ten ping intervals: a client that failed to pong would be dropped
    // after one (pingInterval + pingTimeout = 400 ms).
    let heartbeats = Duration::from_millis(10 * PING_INTERVAL_MS);
    if let Some(state) = state_within(&mut states, heartbeats, is_disconnect).await {
        panic!(
            "the Node session dropped during heartbeats: {state:?}; server.js log:\n{}",
            node.log()
        );
    }
    let again = get_connected(&conn).await.expect("still connected");
    assert!(
        again.same_as(&session),
        "a new session after heartbeats: {again:?} vs {session:?}"
    );
    assert!(
        !node.log().contains("ping timeout"),
        "server.js saw a ping timeout:\n{}",
        node.log()
    );

    // An event after pass rides a fresh ack id; Node's server answers it.
    let reply = tokio::time::timeout(
        STEP_BOUND,
        conn.send(Emit::new("no-such-event", json!({})).timeout(STEP_BOUND)),
    )
    .await
    .expect("Emit answered in time")
    .expect("connection actor alive")
    .expect("an ack from Node");
    assert_eq!(
        reply,
        vec![json!({"ok": false, "code": 400, "error": "unknown event \"no-such-event\""})]
    );

    node.kill().await;
    let killed = Instant::now();
    let bound = Duration::from_secs(3);
    match state_within(&mut states, bound, is_disconnect).await {
        Some(ConnectionState::Disconnected { epoch, reason }) => {
            assert_eq!(epoch, session.epoch(), "reason: {reason}");
            // The kernel ends the killed process's TCP connection (FIN or
            // RST) with no WebSocket close and no Socket.IO goodbye: the
            // client sees the transport end, long before the heartbeat
            // window (400 ms) could pass. A goodbye or a heartbeat timeout
            // would mean the client misread how the link died.
            assert!(
                matches!(reason, DisconnectReason::Transport(_)),
                "after SIGKILL the link ends at the transport, got {reason:?} \
                 ({:?} after the kill)",
                killed.elapsed()
            );
        }
        Some(other) => panic!("expected Disconnected after killing Node, got {other:?}"),
        None => panic!("no Disconnected within {bound:?} of killing the Node server"),
    }
}

#[actix_rt::test]
async fn connection_actor_with_a_wrong_pass_is_rejected_by_node() {
    let node = NodeServer::start(PASS, PING_INTERVAL_MS, PING_TIMEOUT_MS).await;
    let conn = connection_actor(&node.url(), WRONG_PASS, "rust-wrong");
    match get_connected(&conn).await {
        Err(ConnectError::Rejected { code: 401, message }) => {
            assert_eq!(message, "bad passphrase");
        }
        other => panic!(
            "expected Rejected {{ code: 401 }}, got {other:?}; server.js log:\n{}",
            node.log()
        ),
    }
}
