//! Closed-loop load: `n` clients, each sending its next request when the
//! last is answered, for a warm-up and then a measured phase. The clients
//! are tasks on the calling thread (an actix-rt System).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// What a phase measured.
pub struct Load {
    /// Requests answered per second over the measured phase.
    pub rate: f64,
    /// Latencies of the requests sent and answered within the phase, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that failed (warm-up included).
    pub errors: usize,
    /// Requests answered, warm-up included (for CPU per request over the
    /// whole run).
    pub total: usize,
}

/// Runs every client (one call = one request, `true` when it succeeded)
/// for `warmup` + `phase`.
pub async fn closed_loop<C, Fut>(clients: Vec<C>, warmup: Duration, phase: Duration) -> Load
where
    C: FnMut() -> Fut + 'static,
    Fut: Future<Output = bool> + 'static,
{
    let measure_from = Instant::now() + warmup;
    let stop = measure_from + phase;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut request| {
            actix_rt::spawn(async move {
                let mut latencies = Vec::with_capacity(100_000);
                let (mut errors, mut total) = (0, 0);
                loop {
                    let sent = Instant::now();
                    if sent >= stop {
                        break;
                    }
                    let ok = request().await;
                    let done = Instant::now();
                    total += 1;
                    if !ok {
                        errors += 1;
                    }
                    if sent >= measure_from && done <= stop {
                        latencies.push(done - sent);
                    }
                }
                (latencies, errors, total)
            })
        })
        .collect();
    let mut load = Load {
        rate: 0.0,
        latencies: Vec::new(),
        errors: 0,
        total: 0,
    };
    for task in tasks {
        // A client task only ends by returning: it never panics on an error.
        if let Ok((latencies, errors, total)) = task.await {
            load.latencies.extend(latencies);
            load.errors += errors;
            load.total += total;
        }
    }
    load.latencies.sort();
    load.rate = load.latencies.len() as f64 / phase.as_secs_f64();
    load
}
