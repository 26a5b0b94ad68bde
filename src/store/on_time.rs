//! Sleeping until a deadline and waking on time: the store's expiry clocks
//! (the memory store's [`expiry`](super::expiry) task, the Redis store's
//! sweeper) sleep until the next deadline, and tokio's timer alone wakes a
//! task up to a millisecond or two after it.
//!
//! tokio's timer counts whole milliseconds (a deadline is rounded up to the
//! next tick, and the runtime parks in `epoll_wait`, whose timeout is in
//! milliseconds). Measured on the 2-core benchmark VM (2026-12-02), asked
//! for 1 ms on an idle current-thread runtime 300 times: tokio's `sleep`
//! woke p50 1.10 ms / p99 1.99 ms late, `std::thread::sleep` on a blocking
//! thread 0.12 / 0.78 ms late. Every expiry paid that millisecond (the
//! README's scaling-out section has what waking on time did to expiry
//! lateness in `bench_cluster`).
//!
//! So [`sleep_until`] sleeps on tokio's timer until [`MARGIN`] before the
//! deadline and the rest (at most [`MARGIN`]) with `std::thread::sleep` on
//! the runtime's blocking pool. A caller that stops waiting (a `select!`
//! that took another branch) leaves that blocking sleep to end by itself
//! within [`MARGIN`]. With tokio's clock paused (tests with `start_paused`)
//! the blocking sleep does not move tokio's time, and the last step, on
//! tokio's timer, then lets it advance to the deadline.

use std::time::Duration;

use tokio::time::Instant;

/// How much of a sleep is left to a blocking thread: more than tokio's
/// timer is late at its p99 on the benchmark VM (above).
pub(crate) const MARGIN: Duration = Duration::from_millis(2);

/// Waits until `deadline` (never before it), waking within about 0.1 ms of
/// it (see the module docs).
pub(crate) async fn sleep_until(deadline: Instant) {
    if deadline > Instant::now() + MARGIN {
        tokio::time::sleep_until(deadline - MARGIN).await;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        if let Err(e) = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await {
            // The runtime is shutting down: the timer below waits instead.
            log::debug!("effex: a sleep until a deadline fell back to tokio's timer: {e}");
        }
    }
    // Passed already, unless tokio's clock is paused (tests) or the blocking
    // sleep did not run.
    if Instant::now() < deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Waits `duration` (see [`sleep_until`]); a zero duration only lets the
/// runtime's other tasks run first.
pub(crate) async fn sleep(duration: Duration) {
    if duration.is_zero() {
        tokio::task::yield_now().await;
    } else {
        sleep_until(Instant::now() + duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With tokio's clock paused, a sleep ends exactly at its deadline in
    /// tokio's time (the paused clock moves only through tokio's timer).
    #[tokio::test(start_paused = true)]
    async fn a_paused_clock_reaches_the_deadline() {
        let start = Instant::now();
        for wait in [Duration::from_millis(1), MARGIN, Duration::from_secs(3600)] {
            let deadline = Instant::now() + wait;
            sleep_until(deadline).await;
            assert!(
                Instant::now() >= deadline,
                "woke before the deadline ({wait:?})"
            );
        }
        assert!(start.elapsed() >= Duration::from_secs(3600));
    }

    /// On the real clock, never before the deadline.
    #[tokio::test]
    async fn never_wakes_early() {
        for wait in [Duration::from_micros(300), Duration::from_millis(3)] {
            let deadline = Instant::now() + wait;
            sleep(wait).await;
            assert!(
                Instant::now() >= deadline,
                "woke before the deadline ({wait:?})"
            );
        }
    }
}
