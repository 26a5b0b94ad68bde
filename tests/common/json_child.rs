//! A child process that speaks JSON lines (the Node scripts of the interop
//! and browser tests): commands go in on its stdin, one JSON object a line;
//! its events come out on stdout as `{"event": …, …}`, one a line, read by a
//! thread (never blocking the runtime that serves the in-process server);
//! its stderr is kept for failure messages. Killed and reaped on drop.

use std::io::Write;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::child::{lines_of, wait_exit};

/// A running JSON-lines child; see the module docs.
pub struct JsonChild {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: mpsc::UnboundedReceiver<String>,
    stderr_seen: String,
}

impl JsonChild {
    /// Spawns `command` with its three pipes; `name` (e.g. `watcher.js`)
    /// names it in failure messages. Panics with what to install when the
    /// program cannot be started.
    pub fn spawn(name: &'static str, mut command: Command) -> JsonChild {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {:?} for {name}: {e}; install Node.js (>= 18) and put `node` on the PATH",
                    command.get_program()
                )
            });
        JsonChild {
            name,
            stdin: child.stdin.take(),
            lines: lines_of(child.stdout.take().expect("piped stdout")),
            stderr: lines_of(child.stderr.take().expect("piped stderr")),
            stderr_seen: String::new(),
            child,
        }
    }

    /// Everything the child wrote on stderr so far.
    pub fn log(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push_str(&line);
            self.stderr_seen.push('\n');
        }
        self.stderr_seen.clone()
    }

    /// Writes `command` as one line on the child's stdin.
    pub fn send(&mut self, command: &Value) {
        let written = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{command}").and_then(|()| stdin.flush()),
            None => Err(std::io::Error::other("its stdin is closed")),
        };
        if let Err(e) = written {
            self.fail(&format!("cannot take {command}: {e}"));
        }
    }

    /// Closes the child's stdin (the scripts exit when it closes).
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// The next line within `bound`, or `None` when none came. Panics when
    /// the child closed its stdout, printed something that is not JSON, or
    /// reported `{"event": "error"}`.
    pub async fn next_within(&mut self, bound: Duration) -> Option<Value> {
        let line = match tokio::time::timeout(bound, self.lines.recv()).await {
            Err(_) => return None,
            Ok(None) => {
                let exit = self.child.try_wait();
                self.fail(&format!("closed its stdout (exit {exit:?})"))
            }
            Ok(Some(line)) => line,
        };
        let value: Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(e) => self.fail(&format!("printed {line:?}, not JSON ({e})")),
        };
        if value["event"] == "error" {
            self.fail(&format!("failed: {value}"));
        }
        Some(value)
    }

    /// The next line, within `bound`, whatever its event.
    pub async fn next(&mut self, bound: Duration) -> Value {
        match self.next_within(bound).await {
            Some(value) => value,
            None => self.fail(&format!("printed nothing within {bound:?}")),
        }
    }

    /// The next line, within `bound`, which must be the event `event`.
    pub async fn expect(&mut self, event: &str, bound: Duration) -> Value {
        let Some(value) = self.next_within(bound).await else {
            self.fail(&format!("printed no {event:?} within {bound:?}"));
        };
        if value["event"] != event {
            self.fail(&format!("printed {value}, expected the event {event:?}"));
        }
        value
    }

    /// Panics with `what` went wrong and the child's stderr so far.
    pub fn fail(&mut self, what: &str) -> ! {
        let log = self.log();
        panic!("{} {what}; stderr:\n{log}", self.name)
    }

    /// Waits (bounded) for the child to exit; `None` when it still runs.
    pub async fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, bound).await
    }
}

impl Drop for JsonChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
