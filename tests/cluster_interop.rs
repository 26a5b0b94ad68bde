//! Interop across nodes (features `redis` and `interop`): Node's
//! socket.io-client 4.8.4, connected to node A of three effex nodes on one
//! Redis, receives a write made through node B.
//!
//! Needs `node`, `redis-server` and the pinned packages:
//!
//! ```text
//! (cd tests/interop && npm ci)
//! cargo test --features redis,interop --test cluster_interop
//! ```
//!
//! The Node side is `tests/interop/watcher.js` (see `tests/interop.rs`): it
//! takes one JSON command per stdin line and prints one JSON event per
//! stdout line.
#![cfg(all(feature = "redis", feature = "interop"))]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use cluster::Cluster;
use common::child::lines_of;
use common::exchange::PASS;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Bound for one step of the Node script (its own emits time out after
/// 5 s; node's start-up comes on top).
const NODE_BOUND: Duration = Duration::from_secs(20);

/// A running `node watcher.js`, killed and reaped on drop.
struct NodeWatcher {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
}

impl NodeWatcher {
    /// Starts `watcher.js` for the server at `url`; panics with what to do
    /// when node or the packages are missing.
    fn start(url: &str, push_id: &str) -> NodeWatcher {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
        let manifest = dir.join("node_modules/socket.io-client/package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: run `npm ci` in {} (needs node >= 18 and npm)",
            manifest.display(),
            dir.display()
        );
        let mut child = Command::new("node")
            .current_dir(&dir)
            .arg(dir.join("watcher.js"))
            .args([url, PASS, push_id])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install Node.js >= 18"));
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = lines_of(child.stdout.take().expect("piped stdout"));
        let stderr = lines_of(child.stderr.take().expect("piped stderr"));
        NodeWatcher {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    fn send(&mut self, command: Value) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("cannot send {command} to watcher.js: {e}"));
    }

    /// What watcher.js wrote on stderr so far.
    fn log(&mut self) -> String {
        let mut log = String::new();
        while let Ok(line) = self.stderr.try_recv() {
            log.push_str(&line);
            log.push('\n');
        }
        log
    }

    /// The next line, which must be the event `event`.
    async fn expect(&mut self, event: &str) -> Value {
        let line = match tokio::time::timeout(NODE_BOUND, self.lines.recv()).await {
            Ok(Some(line)) => line,
            other => panic!(
                "watcher.js printed no {event:?} within {NODE_BOUND:?} ({other:?}); stderr:\n{}",
                self.log()
            ),
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("watcher.js printed {line:?}, not JSON ({e})"));
        assert_eq!(
            value["event"],
            event,
            "watcher.js: {value}; stderr:\n{}",
            self.log()
        );
        value
    }
}

impl Drop for NodeWatcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Node's socket.io-client passes and watches on node A; updates made
/// through node B (with keys made on node C) reach it once each, in order.
#[actix_rt::test]
async fn node_client_on_one_node_receives_a_write_made_on_another() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (id, first) = c.write(json!("first"), Duration::from_secs(600)).await;

    let mut node = NodeWatcher::start(&a.server.ws_url(), "node-on-a");
    node.send(json!({"cmd": "connect"}));
    let passed = node.expect("passed").await;
    assert_eq!(passed["reply"]["ok"], true, "{passed}");
    node.send(json!({
        "cmd": "watch",
        "watch": {"event": "update", "id": id, "key": c.reader, "withValue": true},
    }));
    let watched = node.expect("watched").await;
    assert_eq!(watched["reply"]["ok"], true, "{watched}");
    assert!(
        watched["reply"]["seq"].as_u64().unwrap() >= first,
        "{watched}"
    );

    let mut seqs = Vec::new();
    for n in 1..=3 {
        let updated = b.rest.update(&c.writer, &id, json!({ "n": n }), None);
        seqs.push(updated.await.expect("an update through node B").seq);
    }
    for (n, seq) in (1..=3).zip(seqs) {
        let push = node.expect("push").await;
        assert_eq!(push["push"]["seq"], seq, "{push}");
        assert_eq!(push["push"]["id"], id.as_str(), "{push}");
        assert_eq!(push["push"]["value"], json!({ "n": n }), "{push}");
        assert_eq!(push["acked"], true, "{push}");
    }
    node.send(json!({"cmd": "quit"}));
    node.expect("disconnected").await; // its own goodbye, then
    node.expect("bye").await;
    assert_eq!(a.server.stats().passes_ok, 1, "Node passed on node A");
}
