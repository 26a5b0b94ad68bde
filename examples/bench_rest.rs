//! Benchmark: the REST API's throughput, the store's expiry accuracy and its
//! memory per item, on the embedded server over loopback.
//!
//! ```text
//! cargo run --release --example bench_rest
//! BENCH_WORKERS=2 cargo run --release --example bench_rest   # server worker threads (default 1)
//! ```
//!
//! Prints one markdown table:
//!
//! - REST write (`POST /items`), read (`GET /items/{id}`) and update
//!   (`PUT /items/{id}`) requests per second, with 64 concurrent keep-alive
//!   clients (64 `EffexClient`s, each with its own awc connection pool, each
//!   sending its next request when the last is answered), each measured over
//!   3 s, with per-request latency p50 / p99. The hub and the clients share
//!   the bench's thread; the server's workers have their own. The server
//!   runs with its default limits and quotas (issue 7: rate limits per
//!   address and key, items per key); each client writes with a writer key
//!   of its own.
//! - Expiry accuracy: 100,000 items with deadlines spread over 10 s; the
//!   lateness of each `expire` event (received on `Store::subscribe` − the
//!   deadline asked for), p50 / p99 / max. Goal: p99 under 5 ms.
//! - Memory per stored 1 KiB item, two ways: a counting global allocator
//!   (bytes this thread holds, modelled as glibc chunks: request + 8, rounded
//!   up to 16, at least 32) around 10,000 direct store writes; and the
//!   process's RSS growth over 100,000 items. Goal: under 2 KiB per item.

#[path = "support/mod.rs"]
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use effex::client::EffexClient;
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{Server, ServerConfig};
use effex::store::{MemoryStore, MemoryStoreConfig, Store, WriteItem};
use serde_json::{json, Value};
use support::expiry::expiry_lateness;
use support::{fmt, machine, percentile};
use tokio::time::Instant;

const CLIENTS: usize = 64;
const PHASE: Duration = Duration::from_secs(3);
const WARMUP: Duration = Duration::from_millis(500);
const EXPIRING_ITEMS: usize = 100_000;
const EXPIRY_SPREAD: Duration = Duration::from_secs(10);
const COUNTED_ITEMS: usize = 10_000;
const RSS_ITEMS: usize = 100_000;
const BOSS: &str = "bench boss key";

#[global_allocator]
static ALLOCATOR: support::counting::Counting = support::counting::Counting;

#[actix_rt::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let workers: usize = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    println!("effex bench_rest — {}", machine());
    println!();
    println!("| measurement | result | goal |");
    println!("|---|---|---|");
    // Memory first: RSS growth is only meaningful on a heap that has not
    // yet grown and shrunk for the other measurements.
    memory_per_item().await;
    rest_throughput(workers).await;
    expiry_accuracy().await;
    println!();
    println!(
        "REST: {CLIENTS} keep-alive clients on one thread, server with {workers} worker \
         thread(s), {} s per operation after a {} ms warm-up; the load average \
         when it ended was {}.",
        PHASE.as_secs(),
        WARMUP.as_millis(),
        load_average()
    );
}

/// The 1-minute load average (other processes compete for the cores).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

// ---- REST throughput ------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Op {
    Write,
    Read,
    Update,
}

async fn rest_throughput(workers: usize) {
    let server = Server::start(ServerConfig {
        workers,
        ..ServerConfig::default()
    })
    .await
    .expect("start the in-process server");
    let boss = server.boss_key().unwrap().to_owned();
    let setup = EffexClient::new(server.http_url()).unwrap();
    // One writer key per client, as 64 instances of an application would
    // have: the server runs with its default limits, and one key's item
    // quota (100,000) is below what a write phase stores.
    let writers = setup
        .make_keys(&boss, KeysRequest::new(KeyKind::Writer).count(CLIENTS))
        .await
        .unwrap()
        .keys;
    let value = |i: usize| json!({"sku": format!("item-{i:06}"), "price": 12.5, "stock": i, "tags": ["bench", "rest"], "note": "x"});
    let size = serde_json::to_string(&value(0)).unwrap().len();
    // One item per client (written with its key) for reads and updates.
    let mut ids = Vec::with_capacity(CLIENTS);
    for (i, writer) in writers.iter().enumerate() {
        let item = NewItem::new(value(i)).lifetime(Duration::from_secs(600));
        ids.push(setup.write(writer, &item).await.unwrap().id);
    }
    for op in [Op::Write, Op::Read, Op::Update] {
        let (rate, p50, p99, errors) =
            run_phase(&server.http_url(), &writers, &ids, op, &value).await;
        let (name, route) = match op {
            Op::Write => ("write", "POST /items"),
            Op::Read => ("read", "GET /items/{id}"),
            Op::Update => ("update", "PUT /items/{id}"),
        };
        println!(
            "| REST {name} (`{route}`, {size}-byte value) | **{rate:.0} req/s** (p50 {}, p99 {}){} | — |",
            fmt(p50),
            fmt(p99),
            if errors > 0 { format!(", {errors} errors") } else { String::new() }
        );
    }
    server.stop().await;
}

/// Runs `op` from [`CLIENTS`] clients (client `i` with `keys[i]` on
/// `ids[i]`) for [`WARMUP`] + [`PHASE`]; returns the rate over the phase,
/// latency p50 / p99, and the number of failed requests.
async fn run_phase(
    url: &str,
    keys: &[String],
    ids: &[String],
    op: Op,
    value: &dyn Fn(usize) -> Value,
) -> (f64, Duration, Duration, usize) {
    let start = Instant::now();
    let measure_from = start + WARMUP;
    let stop = measure_from + PHASE;
    let errors = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::with_capacity(CLIENTS);
    for (client, (key, id)) in keys.iter().zip(ids).enumerate().take(CLIENTS) {
        let effex = EffexClient::new(url).unwrap();
        let (key, id, errors) = (key.clone(), id.clone(), errors.clone());
        let body = value(client);
        tasks.push(actix_rt::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut n = 0u64;
            loop {
                let sent = Instant::now();
                if sent >= stop {
                    break;
                }
                let ok = match op {
                    Op::Write => {
                        let item = NewItem::new(body.clone()).lifetime(Duration::from_secs(60));
                        effex.write(&key, &item).await.is_ok()
                    }
                    Op::Read => effex.read(&key, &id).await.is_ok(),
                    Op::Update => {
                        n += 1;
                        effex.update(&key, &id, json!(n), None).await.is_ok()
                    }
                };
                let done = Instant::now();
                if !ok {
                    errors.set(errors.get() + 1);
                }
                if sent >= measure_from && done <= stop {
                    latencies.push(done - sent);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    latencies.sort();
    let rate = latencies.len() as f64 / PHASE.as_secs_f64();
    (
        rate,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        errors.get(),
    )
}

// ---- expiry accuracy ------------------------------------------------------------

async fn expiry_accuracy() {
    let store: Arc<dyn Store> = Arc::new(
        MemoryStore::new(MemoryStoreConfig {
            boss_key: BOSS.into(),
            event_capacity: 2 * EXPIRING_ITEMS,
            ..MemoryStoreConfig::default()
        })
        .unwrap(),
    );
    let writer = writer_key(&store).await;
    let lateness = expiry_lateness(&store, &writer, EXPIRING_ITEMS, EXPIRY_SPREAD).await;
    let (p50, p99, max) = (
        percentile(&lateness, 50.0),
        percentile(&lateness, 99.0),
        lateness[lateness.len() - 1],
    );
    let verdict = if p99 < Duration::from_millis(5) {
        "✓"
    } else {
        "✗"
    };
    println!(
        "| expire lateness, {EXPIRING_ITEMS} items over {} s (`Store::subscribe`) | p50 {} · **p99 {}** · max {} | p99 < 5 ms {verdict} |",
        EXPIRY_SPREAD.as_secs(),
        fmt(p50),
        fmt(p99),
        fmt(max)
    );
}

// ---- memory per item --------------------------------------------------------------

async fn memory_per_item() {
    let one_kib_string = json!("x".repeat(1022));
    let one_kib_object = Value::Object(
        (0..20)
            .map(|i| (format!("field{i:02}"), json!(format!("{i:0>37}"))))
            .collect(),
    );
    let store = fresh_store();
    let writer = writer_key(&store).await;
    let before = rss_bytes();
    for _ in 0..RSS_ITEMS {
        store
            .write(&writer, WriteItem::new(one_kib_string.clone()))
            .await
            .unwrap();
    }
    let after = rss_bytes();
    match (before, after) {
        (Some(before), Some(after)) => {
            let per_item = (after as i64 - before as i64) / RSS_ITEMS as i64;
            let verdict = if per_item < 2048 { "✓" } else { "✗" };
            println!(
                "| memory per stored 1024-byte item (string), RSS growth / {RSS_ITEMS} items | **{per_item} B** | < 2 KiB {verdict} |"
            );
        }
        _ => println!("| memory per stored item, RSS growth | (no /proc/self/statm here) | |"),
    }
    drop(store);
    for (shape, value) in [
        ("string", &one_kib_string),
        ("object of 20 fields", &one_kib_object),
    ] {
        let size = serde_json::to_string(value).unwrap().len();
        let store = fresh_store();
        let writer = writer_key(&store).await;
        let before = support::counting::held();
        for _ in 0..COUNTED_ITEMS {
            store
                .write(&writer, WriteItem::new(value.clone()))
                .await
                .unwrap();
        }
        let per_item = (support::counting::held() - before) / COUNTED_ITEMS as i64;
        let verdict = if per_item < 2048 { "✓" } else { "✗" };
        println!(
            "| memory per stored {size}-byte item ({shape}), counting allocator, {COUNTED_ITEMS} items | **{per_item} B** | < 2 KiB {verdict} |"
        );
    }
}

fn fresh_store() -> Arc<dyn Store> {
    Arc::new(
        MemoryStore::new(MemoryStoreConfig {
            boss_key: BOSS.into(),
            ..MemoryStoreConfig::default()
        })
        .unwrap(),
    )
}

async fn writer_key(store: &Arc<dyn Store>) -> String {
    store
        .make_keys(BOSS, KeysRequest::new(KeyKind::Writer))
        .await
        .unwrap()
        .keys
        .remove(0)
}

/// The resident set size from `/proc/self/statm` (Linux), in bytes.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
