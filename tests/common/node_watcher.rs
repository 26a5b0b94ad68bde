//! `tests/interop/watcher.js` driven from a test: Node's socket.io-client
//! 4.x as an effex push client, one JSON command a line on its stdin
//! (`connect`, `watch`, `quit`, …), one JSON event a line on its stdout
//! (`passed`, `watched`, `push`, `disconnected`, `bye`, …). The script's
//! own protocol is described at its top.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use effex::protocol::messages::Push;
use serde_json::{json, Value};

use super::json_child::JsonChild;

/// Bound for one step of the script (its own emits give up after 5 s;
/// node's start-up and a loaded machine come on top).
pub const NODE_STEP: Duration = Duration::from_secs(20);

/// The Node package directory of the interop tests, after checking that
/// `npm ci` has been run there (these tests are opt-in: a missing setup is
/// an error that says what to run, never a skip).
pub fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    for package in ["socket.io", "socket.io-client"] {
        let manifest = dir.join("node_modules").join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "{} is missing: the interop tests need Node's {package}. \
             Run `npm ci` in {} (needs node >= 18 and npm), then run the tests again.",
            manifest.display(),
            dir.display(),
        );
    }
    dir
}

/// `node <script>` in the interop directory (checked first).
pub fn node_command(script: &str) -> Command {
    let dir = interop_dir();
    let mut command = Command::new("node");
    command.current_dir(&dir).arg(dir.join(script));
    command
}

/// A running `node watcher.js <url> <pass> <push id>`; killed on drop.
pub struct NodeWatcher {
    child: JsonChild,
}

impl NodeWatcher {
    /// Starts watcher.js for the server at `url`.
    pub fn start(url: &str, pass: &str, push_id: &str) -> NodeWatcher {
        let mut command = node_command("watcher.js");
        command.args([url, pass, push_id]);
        NodeWatcher {
            child: JsonChild::spawn("watcher.js", command),
        }
    }

    /// What watcher.js wrote on stderr so far.
    pub fn log(&mut self) -> String {
        self.child.log()
    }

    /// Sends one command line.
    pub fn send(&mut self, command: Value) {
        self.child.send(&command);
    }

    /// The next line within `bound`, or `None` when none came.
    pub async fn next_within(&mut self, bound: Duration) -> Option<Value> {
        self.child.next_within(bound).await
    }

    /// The next line, which must be the event `event`.
    pub async fn expect(&mut self, event: &str) -> Value {
        self.child.expect(event, NODE_STEP).await
    }

    /// The next line, whatever its event.
    pub async fn expect_any(&mut self) -> Value {
        self.child.next(NODE_STEP).await
    }

    /// Connects a new socket and passes; returns the pass reply.
    pub async fn connect(&mut self) -> Value {
        self.send(json!({"cmd": "connect"}));
        let reply = self.expect("passed").await["reply"].take();
        assert_eq!(reply["ok"], json!(true), "pass reply: {reply}");
        reply
    }

    /// Watches with `watch`, acking the first `ack` pushes (all for `None`);
    /// returns the watch reply.
    pub async fn watch(&mut self, watch: Value, ack: Option<usize>) -> Value {
        self.send(json!({"cmd": "watch", "watch": watch, "ack": ack}));
        self.expect("watched").await["reply"].take()
    }

    /// The next `n` pushes, each with whether watcher.js acked it.
    pub async fn pushes(&mut self, n: usize) -> Vec<(Push, bool)> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            let line = self.expect("push").await;
            let push: Push = serde_json::from_value(line["push"].clone())
                .unwrap_or_else(|e| panic!("not a push object ({e}): {line}"));
            let acked = line["acked"].as_bool().expect("acked is a bool");
            got.push((push, acked));
        }
        got
    }

    /// Quits (a clean goodbye may be reported before the `bye`) and checks
    /// that watcher.js exits with success.
    pub async fn quit(mut self) {
        self.send(json!({"cmd": "quit"}));
        loop {
            let line = self.expect_any().await;
            match line["event"].as_str() {
                Some("bye") => break,
                Some("disconnected") => continue,
                _ => panic!("expected bye from watcher.js, got {line}"),
            }
        }
        self.child.close_stdin();
        let status = self
            .child
            .wait_exit(NODE_STEP)
            .await
            .unwrap_or_else(|| panic!("watcher.js did not exit within {NODE_STEP:?}"));
        assert!(status.success(), "watcher.js exited with {status}");
    }
}
