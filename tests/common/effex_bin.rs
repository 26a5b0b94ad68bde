//! The `effex` binary as a child process: a bounded wait for its exit, and
//! a running `effex watch` whose output lines arrive on channels.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::child::{lines_of, wait_exit};

/// The `effex` binary of this build.
pub const EFFEX: &str = env!("CARGO_BIN_EXE_effex");
/// The bound on one CLI run.
pub const WAIT: Duration = Duration::from_secs(20);

/// Waits (bounded) for `child` to exit and collects its output.
pub async fn finish(mut child: Child, what: &str) -> Output {
    if wait_exit(&mut child, WAIT).await.is_none() {
        let _ = child.kill();
        let output = child.wait_with_output().expect("output");
        panic!(
            "{what}: still running after {WAIT:?}; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    child.wait_with_output().expect("output")
}

/// A running `effex watch`: its stdout and stderr lines arrive on channels
/// (read by threads, so waiting on them never blocks the in-process server).
pub struct Watch {
    child: Option<Child>,
    stdout: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// Every stderr line read so far, for failure messages.
    errors: Vec<String>,
}

impl Watch {
    /// Starts `effex watch ARGS --url URL --key KEY`, with `pass` in
    /// `EFFEX_PASS` (none: unset), and no timeout or push id from the
    /// environment.
    pub fn start(url: &str, key: &str, pass: Option<&str>, args: &[&str]) -> Watch {
        let mut command = Command::new(EFFEX);
        command
            .arg("watch")
            .args(args)
            .args(["--url", url, "--key", key])
            .env_remove("EFFEX_PASS")
            .env_remove("EFFEX_TIMEOUT")
            .env_remove("EFFEX_PUSH_ID");
        if let Some(pass) = pass {
            command.env("EFFEX_PASS", pass);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the effex binary runs");
        let stdout = lines_of(child.stdout.take().unwrap());
        let stderr = lines_of(child.stderr.take().unwrap());
        Watch {
            child: Some(child),
            stdout,
            stderr,
            errors: Vec::new(),
        }
    }

    /// Waits (bounded) for the stderr line saying every watch is in place.
    pub async fn watching(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.stderr.recv())
                .await
                .unwrap_or_else(|_| panic!("no `watching` within {WAIT:?}: {:?}", self.errors))
                .unwrap_or_else(|| panic!("effex watch ended: {:?}", self.errors));
            let started = line.starts_with("effex: watching");
            self.errors.push(line);
            if started {
                return;
            }
        }
    }

    /// The next push line (bounded).
    pub async fn push(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.stdout.recv())
            .await
            .unwrap_or_else(|_| panic!("no push line within {WAIT:?}; stderr: {:?}", self.errors))
            .unwrap_or_else(|| panic!("effex watch closed stdout; stderr: {:?}", self.errors));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
    }

    /// Waits (bounded) for the exit; returns the status, the stdout lines
    /// not read yet and all of stderr.
    pub async fn exit(mut self) -> (std::process::ExitStatus, Vec<String>, String) {
        let output = finish(self.child.take().unwrap(), "effex watch").await;
        // The pipes are at EOF now: the reader threads end.
        let mut rest = Vec::new();
        while let Some(line) = self.stdout.recv().await {
            rest.push(line);
        }
        while let Some(line) = self.stderr.recv().await {
            self.errors.push(line);
        }
        (output.status, rest, self.errors.join("\n"))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
