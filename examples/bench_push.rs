//! Benchmark: push delivery, end to end, on loopback.
//!
//! ```text
//! cargo build --release --bin effex        # (d) runs the server as its own process
//! cargo run --release --example bench_push
//! cargo run --release --example bench_push -- throughput fanout paced memory   # pick parts
//! ```
//!
//! Prints a table:
//! - (a) one connection: acked pushes per second reaching the handler, over
//!   1,000,000 events;
//! - (b) fan-out: 1,000 connections watching one item, one update → time
//!   until the last handler has it, p50/p99 over 100 rounds;
//! - (c) 10,000 updates/s for 5 s: store event → handler latency p50/p99;
//! - (d) server memory per idle passed connection at 10,000 connections
//!   (the `effex serve` binary in its own process, RSS delta / connections).
//!
//! Events enter through the store the server runs on (no REST round trip),
//! so the figures are the push path's: store → hub → session → socket →
//! ConnectionActor → SubscriberActor → handler → ack.
//!
//! It measures effex only (client and server in one process). The side by
//! side comparison with Node socket.io and socketioxide — same load
//! generator, each server in its own process, every figure from one run — is
//! the harness in `bench/` (`bench/run`, see bench/README.md).

#[path = "support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use effex::client::{
    ClientConfig, ConnectionActor, EffexClient, GetConnected, Subscribe, SubscriberActor,
};
use effex::protocol::messages::{EventKind, Push};
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{Server, ServerConfig, ServerHandle};
use effex::store::{MemoryStore, MemoryStoreConfig, Store, UpdateItem};
use serde_json::json;
use support::{fmt, machine, percentile};
use tokio::sync::Notify;

const PASS: &str = "bench";
const BOSS: &str = "bench boss";

/// The server (hub and store on this thread, sessions on its worker) and a
/// separate client thread, as a server and its subscribers would be.
struct Bench {
    server: ServerHandle,
    client: ArbiterHandle,
    store: Arc<dyn Store>,
    writer: String,
    reader: String,
    item: String,
}

impl Bench {
    async fn start() -> Self {
        let store: Arc<dyn Store> = Arc::new(
            MemoryStore::new(MemoryStoreConfig {
                boss_key: BOSS.to_owned(),
                ..MemoryStoreConfig::default()
            })
            .expect("a memory store"),
        );
        let server = Server::start(ServerConfig {
            passphrase: Some(PASS.to_owned()),
            store: Some(store.clone()),
            boss_key: Some(BOSS.to_owned()),
            ..ServerConfig::default()
        })
        .await
        .expect("start the in-process server");
        let rest = EffexClient::new(server.http_url()).expect("a REST client");
        let key = |kind| {
            let rest = rest.clone();
            async move {
                let mut keys = rest.make_keys(BOSS, KeysRequest::new(kind)).await;
                keys.as_mut().expect("keys").keys.remove(0)
            }
        };
        let (writer, reader) = (key(KeyKind::Writer).await, key(KeyKind::Reader).await);
        let item = NewItem::new(json!(0))
            .lifetime(Duration::from_secs(3600))
            .reader(&reader);
        let item = rest.write(&writer, &item).await.expect("write the item").id;
        let client = Arbiter::new().handle();
        Self {
            server,
            client,
            store,
            writer,
            reader,
            item,
        }
    }

    /// A subscriber on its own connection, both on the client thread (where
    /// the handler runs), watching the item's updates.
    async fn subscriber(
        &self,
        handler: impl FnMut(&Push) + Send + 'static,
    ) -> Addr<SubscriberActor> {
        let config = ClientConfig::builder(self.server.ws_url())
            .pass(PASS)
            .build()
            .expect("config");
        let conn =
            ConnectionActor::start_in_arbiter(&self.client, move |_| ConnectionActor::new(config));
        let sub = SubscriberActor::start_in_arbiter(&self.client, move |_| {
            SubscriberActor::with_handler(conn, handler)
        });
        let watch = Subscribe::new(EventKind::Update, &self.item, &self.reader);
        sub.send(watch).await.expect("alive").expect("watch");
        sub
    }

    async fn update(&self, n: u64) -> u64 {
        let update = UpdateItem {
            value: json!(n).into(),
            intent: None,
        };
        let updated = self.store.update(&self.writer, &self.item, update).await;
        updated.expect("update").seq
    }
}

#[actix::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let parts: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| parts.is_empty() || parts.iter().any(|p| p == name);
    println!("effex bench_push — {}", machine());
    println!();
    println!("| measure | effex | goal |");
    println!("|---|---:|---:|");
    if wanted("throughput") {
        let rate = throughput(1_000_000).await;
        println!("| (a) acked pushes/s, one connection, 1,000,000 events | {rate:.0} /s | ≥ 500,000 /s |");
    }
    if wanted("fanout") {
        let (p50, p99) = fan_out(1_000, 100).await;
        println!(
            "| (b) fan-out to 1,000 connections, p50 / p99 | {} / {} | ≤ 3 ms / ≤ 6 ms |",
            fmt(p50),
            fmt(p99)
        );
    }
    if wanted("paced") {
        let (p50, p99) = paced(10_000, Duration::from_secs(5)).await;
        println!("| (c) 10,000 updates/s for 5 s: event → handler, p50 / p99 | {} / {} | ≤ 80 µs / ≤ 250 µs |", fmt(p50), fmt(p99));
    }
    if wanted("memory") {
        match memory_per_connection(10_000).await {
            Ok(bytes) => println!(
                "| (d) server memory per idle passed connection (10,000) | {:.1} KiB | ≤ 8 KiB |",
                bytes / 1024.0
            ),
            Err(e) => println!(
                "| (d) server memory per idle passed connection | not measured: {e} | ≤ 8 KiB |"
            ),
        }
    }
    println!();
    println!("effex only. For Node socket.io and socketioxide measured side by side, run bench/run (bench/README.md).");
}

/// (a) One connection, one watch: how fast acked pushes reach the handler.
/// The producer stays at most `WINDOW` events ahead of the handler, so the
/// server never has to shed a connection for falling behind.
async fn throughput(events: u64) -> f64 {
    const WINDOW: u64 = 4_000;
    let bench = Bench::start().await;
    let handled = Arc::new(AtomicU64::new(0));
    let caught_up = Arc::new(Notify::new());
    let (counter, waker) = (handled.clone(), caught_up.clone());
    let _sub = bench
        .subscriber(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
            waker.notify_one();
        })
        .await;

    let start = Instant::now();
    for n in 1..=events {
        while n > handled.load(Ordering::Relaxed) + WINDOW {
            caught_up.notified().await;
        }
        bench.update(n).await;
        if n % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    while handled.load(Ordering::Relaxed) < events {
        caught_up.notified().await;
    }
    let rate = events as f64 / start.elapsed().as_secs_f64();
    bench.server.stop().await;
    rate
}

/// (b) One update, `connections` handlers: time until the last has it.
async fn fan_out(connections: usize, rounds: usize) -> (Duration, Duration) {
    let bench = Bench::start().await;
    let received = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Instant::now()));
    let all = Arc::new(Notify::new());
    let mut subscribers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (received, last, all) = (received.clone(), last.clone(), all.clone());
        let sub = bench
            .subscriber(move |_| {
                if (received.fetch_add(1, Ordering::Relaxed) + 1) % connections == 0 {
                    *last.lock().expect("not poisoned") = Instant::now();
                    all.notify_one();
                }
            })
            .await;
        subscribers.push(sub);
    }
    let mut samples = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let start = Instant::now();
        bench.update(round as u64).await;
        while received.load(Ordering::Relaxed) < round * connections {
            all.notified().await;
        }
        samples.push(*last.lock().expect("not poisoned") - start);
    }
    bench.server.stop().await;
    samples.sort();
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

/// (c) A steady `rate` of updates from a producer thread; latency from just
/// before each store update to its handler.
async fn paced(rate: u64, duration: Duration) -> (Duration, Duration) {
    let bench = Bench::start().await;
    let total = rate * duration.as_secs();
    let started: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; total as usize + 1]));
    let first_seq = bench.update(0).await + 1;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let done = Arc::new(Notify::new());
    let (slots, measured, finished) = (started.clone(), latencies.clone(), done.clone());
    let _sub = bench
        .subscriber(move |push| {
            let slot = push.seq.saturating_sub(first_seq) as usize;
            let at = slots
                .lock()
                .expect("not poisoned")
                .get(slot)
                .copied()
                .flatten();
            if let Some(at) = at {
                let mut measured = measured.lock().expect("not poisoned");
                measured.push(at.elapsed());
                if measured.len() as u64 == total {
                    finished.notify_one();
                }
            }
        })
        .await;

    let (store, writer, item) = (
        bench.store.clone(),
        bench.writer.clone(),
        bench.item.clone(),
    );
    let producer = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let period = Duration::from_nanos(1_000_000_000 / rate);
        let begin = Instant::now();
        for n in 0..total {
            let target = begin + period * n as u32;
            if let Some(wait) = target.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // Only this producer changes the store, so update n gets seq
            // first_seq + n; its start time is in place before the push can be.
            if let Some(slot) = started.lock().expect("not poisoned").get_mut(n as usize) {
                *slot = Some(Instant::now());
            }
            let update = UpdateItem {
                value: json!(n).into(),
                intent: None,
            };
            let seq = runtime.block_on(store.update(&writer, &item, update));
            assert_eq!(
                seq.expect("update").seq,
                first_seq + n,
                "another writer changed the store"
            );
        }
    });
    let _ = tokio::time::timeout(duration * 4, done.notified()).await;
    producer.join().expect("the producer thread");
    let mut samples = std::mem::take(&mut *latencies.lock().expect("not poisoned"));
    bench.server.stop().await;
    samples.sort();
    if std::env::var_os("EFFEX_BENCH_DETAIL").is_some() {
        for p in [50.0, 90.0, 95.0, 98.0, 99.0, 99.9, 100.0] {
            eprintln!("paced p{p}: {}", fmt(percentile(&samples, p)));
        }
    }
    (percentile(&samples, 50.0), percentile(&samples, 99.0))
}

/// (d) The `effex serve` binary in its own process; RSS before and after
/// `connections` idle passed connections.
async fn memory_per_connection(connections: usize) -> Result<f64, String> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).map_err(|e| e.to_string())?;
    let want = (connections as u64 * 2 + 1_000).min(hard);
    if soft < want {
        rlimit::setrlimit(rlimit::Resource::NOFILE, want, hard)
            .map_err(|e| format!("raise the open-file limit: {e}"))?;
    }
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("effex")))
        .filter(|p| p.exists())
        .ok_or("build it first: cargo build --release --bin effex")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut server = std::process::Command::new(binary)
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--passphrase",
            PASS,
            // Every bench connection comes from 127.0.0.1: lift the
            // per-address cap (default 5,000) above the count measured.
            "--max-connections-per-address",
            &(connections + 1_000).to_string(),
            "--log-level",
            "error",
        ])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let url = format!("ws://127.0.0.1:{port}");
    let result = async {
        // Wait until it answers, then warm up with a few connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        let rest =
            EffexClient::new(format!("http://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
        while rest.ping().await.is_err() {
            if Instant::now() > deadline {
                return Err("the server did not start".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut conns = Vec::with_capacity(connections);
        let connect = |conns: &mut Vec<Addr<ConnectionActor>>, n: usize| {
            let start = conns.len();
            for _ in 0..n {
                let config = ClientConfig::builder(url.as_str())
                    .pass(PASS)
                    .build()
                    .expect("config");
                conns.push(ConnectionActor::new(config).start());
            }
            let batch: Vec<_> = conns[start..]
                .iter()
                .map(|c| c.send(GetConnected))
                .collect();
            futures_util::future::join_all(batch)
        };
        let warm = 100;
        for reply in connect(&mut conns, warm).await {
            reply
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        let before = support::rss_of(server.id())?;
        while conns.len() < connections {
            let n = (connections - conns.len()).min(250);
            for reply in connect(&mut conns, n).await {
                reply
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
        }
        let after = support::rss_of(server.id())?;
        Ok((after.saturating_sub(before)) as f64 / (connections - warm) as f64)
    }
    .await;
    let _ = server.kill();
    let _ = server.wait();
    result
}
