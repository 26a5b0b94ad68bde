//! Bounded polling for conditions that have no event to wait on (a child
//! process's exit, a server's counters, a lapsing lock over HTTP).

use std::future::Future;
use std::time::Duration;

use tokio::time::{sleep, Instant};

/// How often [`poll_until`] tries again.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// Calls `attempt` every [`POLL_EVERY`] until it returns `Some`, for at most
/// `bound`; returns that value or `None` when the bound passed first.
pub async fn poll_within<T, F, Fut>(bound: Duration, mut attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(done) = attempt().await {
            return Some(done);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(POLL_EVERY).await;
    }
}

/// As [`poll_within`], but panics naming `what` when the bound passes.
pub async fn poll_until<T, F, Fut>(what: &str, bound: Duration, attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_within(bound, attempt)
        .await
        .unwrap_or_else(|| panic!("{what}: not within {bound:?}"))
}
