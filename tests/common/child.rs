//! Child processes (the `effex` binary, Node scripts): their output lines on
//! channels read by threads, so waiting on them never blocks the runtime that
//! serves the in-process server; every wait bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use tokio::sync::mpsc;

use super::poll::poll_within;

/// The lines of `pipe` (a child's stdout or stderr), read by a thread into a
/// channel that closes at EOF.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded, without blocking the runtime) for `child` to exit;
/// `None` when it is still running after `bound`.
pub async fn wait_exit(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    poll_within(bound, || {
        let status = child.try_wait().expect("try_wait on a child process");
        async move { status }
    })
    .await
}
