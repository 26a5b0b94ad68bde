//! Benchmark: three effex nodes on one Redis (feature `redis`), beside
//! Redis's own `SET` → keyspace-notification latency and one node on the
//! memory store, all measured in the same run.
//!
//! ```text
//! cargo run --release --example bench_cluster --features redis
//! cargo run --release --example bench_cluster --features redis -- --quick      # a smaller run
//! cargo run --release --example bench_cluster --features redis -- latency expiry  # pick parts
//! ```
//!
//! Parts: `floor latency throughput expiry failover memory` (all by default).
//! Flags: `--quick` (fewer items, shorter phases, 5 kills), `--workers N`
//! (HTTP worker threads per node, default 1), `--sweep-interval MS` (the
//! nodes' `redis_sweep_interval`, default 5), `--appendfsync always|everysec|no`
//! (the bench Redis's AOF policy, default `everysec`, as the README's
//! scaling-out commands; `always` waits for an fsync before Redis answers a
//! write, which on a disk with slow fsyncs dominates every figure),
//! `--aof-rewrites between|auto` (default `between`: the bench compacts the
//! AOF with `BGREWRITEAOF` before each part and turns Redis's automatic
//! rewrites off, so no rewrite — a fork whose child writes the whole
//! dataset, competing for a core with everything measured — lands inside a
//! measured phase by chance; `auto` leaves them to Redis's default rule).
//!
//! The benchmark starts its own `redis-server` (AOF on, temp dir, free
//! port) and runs every node as a child process of its own (this program
//! again, serving the library's `Server` with `ServerConfig`'s defaults, as
//! `effex serve --redis` does), so each node has its own threads and a
//! killed node dies as a crashed one does (SIGKILL). The clients run in this
//! process: REST clients on its main thread, push subscribers on a second.
//!
//! Prints one markdown table:
//!
//! - floor: Redis `SET` → keyspace notification (`notify-keyspace-events K$`,
//!   switched on for this part only), 1,000 `SET`s/s, p50 / p99;
//! - (a) REST update (`PUT /items/{id}`) on node B → the handler of a
//!   subscriber on node A, at 1,000 updates/s, p50 / p99 (memory: the same
//!   through its one node);
//! - (b) REST writes/s (`POST /items`) from 64 closed-loop clients spread
//!   over the three nodes, and the ratio to the memory store's node;
//! - (c) expire lateness: 100,000 items with deadlines spread over 10 s,
//!   watched (`expire`) by 12 push connections spread over the nodes; each
//!   item's lateness is the time its `expire` push reaches the handler minus
//!   its deadline (`validTill` of the write; both clocks are this machine's),
//!   and every item must be pushed exactly once;
//! - (d) failover: a subscriber on a node that is then killed (SIGKILL) →
//!   the first push handled through another node while updates flow, p50 /
//!   p99 over 20 kills (the client's default reconnect backoff);
//! - (e) memory per stored 1 KiB item: Redis `INFO memory` `used_memory`
//!   growth over 20,000 items (memory: the node's RSS growth).
//!
//! Under the table, (b) on Redis is broken down into the CPU that
//! redis-server, each node and the bench process spent per write (and the
//! writes/s that allows on this machine's cores), and (c) on Redis is
//! broken down (`support::stages`): deadline
//! → the `expire` entry read from `effex:events` by an observer of the
//! bench's own (the sweep's share) and that read → the push handled (the
//! nodes' readers, hubs and pushes, and the client); the CPU per expiry of
//! redis-server (`INFO cpu`), each node and the bench process
//! (`/proc/<pid>/stat`); how long each of them was ready to run but found
//! no free core, per expiry (`/proc/<pid>/task/*/schedstat`:
//! what queueing for the cores adds to every hop of an expiry's way); and
//! Redis's busiest commands meanwhile (`INFO commandstats`: calls, µs each,
//! µs per expiry).

#[path = "support/mod.rs"]
mod support;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use effex::client::{ClientConfig, ConnectionActor, EffexClient, Stop, Subscribe, SubscriberActor};
use effex::protocol::messages::{EventKind, Push};
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem, WriteReply};
use futures_util::StreamExt;
use serde_json::{json, Value};
use support::load::closed_loop;
use support::nodes::{Node, NodeSpec, NodeStore};
use support::redis_server::RedisServer;
use support::stages::{self, RedisCounters, StreamObserver};
use support::{fmt, machine, percentile};

const BOSS: &str = "bench cluster boss key";
const PASS: &str = "bench cluster";
/// Redis nodes.
const NODES: usize = 3;
/// Closed-loop REST clients, each with a writer key of its own.
const CLIENTS: usize = 64;
/// Push connections watching the expiring items (each under the default
/// 10,000 watches per push id).
const WATCHERS: usize = 12;
/// Watch requests in flight per watcher while the expiring items are watched
/// (a server answers 429 past 64 watch calls waiting on one connection).
const WATCHES_IN_FLIGHT: usize = 32;
/// Updates (and `SET`s) per second in (a) and the floor.
const PACED_RATE: u64 = 1_000;
/// The bench Redis's `hash-max-listpack-value`, as the README's scaling-out
/// commands set it: an item hash whose value is at most this many bytes stays
/// a compact listpack (Redis's default, 64, turns every item holding more
/// than 64 bytes into a hash table of separate allocations).
const COMPACT_HASH_VALUE: &str = "4096";
/// Redis's own default `hash-max-listpack-value`.
const DEFAULT_HASH_VALUE: &str = "64";
/// How long anything awaited may take before the bench reports it missing.
const BOUND: Duration = Duration::from_secs(10);

/// The sizes of one run.
struct Scale {
    paced: Duration,
    warmup: Duration,
    phase: Duration,
    expiring: usize,
    spread: Duration,
    kills: usize,
    stored: usize,
}

impl Scale {
    fn full() -> Self {
        Scale {
            paced: Duration::from_secs(5),
            warmup: Duration::from_millis(500),
            phase: Duration::from_secs(3),
            expiring: 100_000,
            spread: Duration::from_secs(10),
            kills: 20,
            stored: 20_000,
        }
    }

    fn quick() -> Self {
        Scale {
            paced: Duration::from_secs(2),
            warmup: Duration::from_millis(200),
            phase: Duration::from_secs(1),
            expiring: 10_000,
            spread: Duration::from_secs(5),
            kills: 5,
            stored: 5_000,
        }
    }
}

/// The command line.
struct Options {
    scale: Scale,
    quick: bool,
    workers: usize,
    sweep_interval: Option<Duration>,
    appendfsync: String,
    /// `--aof-rewrites auto`: leave AOF rewrites to Redis's own rule.
    auto_rewrites: bool,
    parts: Vec<String>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            scale: Scale::full(),
            quick: false,
            workers: 1,
            sweep_interval: None,
            appendfsync: "everysec".to_owned(),
            auto_rewrites: false,
            parts: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => {
                    options.quick = true;
                    options.scale = Scale::quick();
                }
                "--workers" => {
                    options.workers = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| *n > 0)
                        .ok_or("--workers takes a number above 0")?;
                }
                "--sweep-interval" => {
                    let ms: f64 = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n: &f64| *n >= 1.0 && *n <= 60_000.0)
                        .ok_or("--sweep-interval takes milliseconds, 1 to 60000")?;
                    options.sweep_interval = Some(Duration::from_secs_f64(ms / 1e3));
                }
                "--appendfsync" => {
                    options.appendfsync = args
                        .next()
                        .filter(|p| ["always", "everysec", "no"].contains(&p.as_str()))
                        .ok_or("--appendfsync takes always, everysec or no")?;
                }
                "--aof-rewrites" => {
                    options.auto_rewrites = match args.next().as_deref() {
                        Some("between") => false,
                        Some("auto") => true,
                        _ => return Err("--aof-rewrites takes between or auto".to_owned()),
                    };
                }
                "floor" | "latency" | "throughput" | "expiry" | "failover" | "memory" => {
                    options.parts.push(arg)
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}: use --quick, --workers N, --sweep-interval \
                         MS, --appendfsync always|everysec|no, --aof-rewrites between|auto, or \
                         parts: floor latency throughput expiry failover memory"
                    ))
                }
            }
        }
        Ok(options)
    }

    fn wanted(&self, part: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == part)
    }
}

#[actix::main]
async fn main() {
    // The nodes are this program serving what it serves (and tuning malloc
    // as `effex serve` does); this process holds the clients.
    support::nodes::serve_if_node().await;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let options = match Options::parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("bench_cluster: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options).await {
        eprintln!("bench_cluster: {e}");
        std::process::exit(1);
    }
}

async fn run(options: &Options) -> Result<(), String> {
    let scale = &options.scale;
    let mut redis_args = vec!["--hash-max-listpack-value", COMPACT_HASH_VALUE];
    if !options.auto_rewrites {
        // The bench rewrites the AOF itself, between parts (see `between_parts`).
        redis_args.extend(["--auto-aof-rewrite-percentage", "0"]);
    }
    let redis = RedisServer::start(&options.appendfsync, &redis_args).await?;
    // Compacts Redis's AOF before a part, unless Redis does so on its own.
    let between_parts = || async {
        if options.auto_rewrites {
            Ok(())
        } else {
            redis.rewrite_aof().await
        }
    };
    let spec = |store| NodeSpec {
        store,
        boss: BOSS.to_owned(),
        pass: PASS.to_owned(),
        workers: options.workers,
        sweep_interval: options.sweep_interval,
    };
    let redis_spec = spec(NodeStore::Redis(redis.url()));
    let mut nodes = Vec::with_capacity(NODES);
    for _ in 0..NODES {
        nodes.push(Node::spawn(&redis_spec).await?);
    }
    let memory_node = Node::spawn(&spec(NodeStore::Memory)).await?;
    let cluster = Exchange::new(&nodes).await?;
    let single = Exchange::new(std::slice::from_ref(&memory_node)).await?;
    let clients = Arbiter::new().handle();
    let mut rows = Vec::new();
    // Breakdowns printed under the table.
    let mut notes: Vec<String> = Vec::new();

    // Memory first: growth is only meaningful before the other parts fill
    // the stores.
    if options.wanted("memory") {
        progress("(e) memory per stored item");
        redis
            .config_set("hash-max-listpack-value", DEFAULT_HASH_VALUE)
            .await?;
        let default_bytes = memory_per_item(&cluster, scale.stored, || redis.used_memory()).await?;
        redis
            .config_set("hash-max-listpack-value", COMPACT_HASH_VALUE)
            .await?;
        let compact_bytes = memory_per_item(&cluster, scale.stored, || redis.used_memory()).await?;
        let memory_bytes =
            memory_per_item(&single, scale.stored, || async { memory_node.rss() }).await?;
        let goal = 1638.0;
        rows.push(Row {
            measure: format!(
                "(e) memory per stored 1 KiB item ({} items; Redis `used_memory` growth · memory node RSS growth)",
                thousands(scale.stored)
            ),
            redis: format!(
                "**{compact_bytes:.0} B** (`hash-max-listpack-value {COMPACT_HASH_VALUE}`) · \
                 {default_bytes:.0} B (Redis's default {DEFAULT_HASH_VALUE})"
            ),
            memory: format!("{memory_bytes:.0} B"),
            goal: "≤ 1.6 KiB (1,638 B)".to_owned(),
            verdict: match (compact_bytes <= goal, default_bytes <= goal) {
                (true, false) => format!(
                    "met with `hash-max-listpack-value {COMPACT_HASH_VALUE}`, **not met** with Redis's default"
                ),
                (compact, _) => met(compact),
            },
        });
    }
    if options.wanted("floor") {
        between_parts().await?;
        progress("floor: Redis SET → keyspace notification");
        let floor = set_notification_latency(&redis, scale.paced).await?;
        rows.push(Row {
            measure: format!(
                "Redis `SET` → keyspace notification, {PACED_RATE}/s for {} s, p50 / p99 (the floor of (a))",
                scale.paced.as_secs()
            ),
            redis: format!("{} / {}", fmt(floor.p50), fmt(floor.p99)),
            memory: "—".to_owned(),
            goal: "—".to_owned(),
            verdict: floor.missing_note(),
        });
    }
    if options.wanted("latency") {
        between_parts().await?;
        progress("(a) REST update on node B → handler on node A");
        let on_redis = update_to_handler(&cluster, 1, 0, &clients, scale.paced).await?;
        let on_memory = update_to_handler(&single, 0, 0, &clients, scale.paced).await?;
        let ok =
            on_redis.p50 <= Duration::from_millis(1) && on_redis.p99 <= Duration::from_millis(3);
        rows.push(Row {
            measure: format!(
                "(a) REST update on node B → handler on node A, {PACED_RATE}/s for {} s, p50 / p99",
                scale.paced.as_secs()
            ),
            redis: format!("**{} / {}**", fmt(on_redis.p50), fmt(on_redis.p99)),
            memory: format!("{} / {}", fmt(on_memory.p50), fmt(on_memory.p99)),
            goal: "≤ 1 ms / ≤ 3 ms".to_owned(),
            verdict: format!("{}{}", met(ok), on_redis.missing_note()),
        });
    }
    if options.wanted("throughput") {
        between_parts().await?;
        progress("(b) REST writes/s, 64 clients");
        let probe = Probe {
            redis: &redis,
            nodes: nodes.iter().map(Node::pid).collect(),
        };
        let (on_redis, redis_errors) = write_throughput(&cluster, scale, Some(probe)).await?;
        let (on_memory, memory_errors) = write_throughput(&single, scale, None).await?;
        notes.push(on_redis.3.clone());
        rows.push(Row {
            measure: format!(
                "(b) REST writes/s (`POST /items`), {CLIENTS} closed-loop clients over the nodes, {} s, (p50, p99)",
                scale.phase.as_secs()
            ),
            redis: format!("**{:.0} /s** ({}, {}){}", on_redis.0, fmt(on_redis.1), fmt(on_redis.2), errors_note(redis_errors)),
            memory: format!("{:.0} /s ({}, {}){}", on_memory.0, fmt(on_memory.1), fmt(on_memory.2), errors_note(memory_errors)),
            goal: "≥ 15,000 /s".to_owned(),
            verdict: format!(
                "{} · {:.2}× the memory store",
                met(on_redis.0 >= 15_000.0),
                on_redis.0 / on_memory.0.max(1.0)
            ),
        });
    }
    if options.wanted("expiry") {
        between_parts().await?;
        progress("(c) expire lateness");
        let probe = Probe {
            redis: &redis,
            nodes: nodes.iter().map(Node::pid).collect(),
        };
        let on_redis = expiry_lateness(&cluster, &clients, scale, Some(probe)).await?;
        let on_memory = expiry_lateness(&single, &clients, scale, None).await?;
        let ok = on_redis.clean()
            && on_redis.p50 <= Duration::from_millis(2)
            && on_redis.p99 <= Duration::from_millis(10);
        rows.push(Row {
            measure: format!(
                "(c) expire lateness, {} items over {} s, deadline → `expire` push at a watcher, p50 / p99 / max",
                thousands(scale.expiring),
                scale.spread.as_secs()
            ),
            redis: format!(
                "**{} / {}** / {}{}",
                fmt(on_redis.p50),
                fmt(on_redis.p99),
                fmt(on_redis.max),
                on_redis.note()
            ),
            memory: format!(
                "{} / {} / {}{}",
                fmt(on_memory.p50),
                fmt(on_memory.p99),
                fmt(on_memory.max),
                on_memory.note()
            ),
            goal: "≤ 2 ms / ≤ 10 ms, each pushed once".to_owned(),
            verdict: met(ok),
        });
        notes.push(on_redis.stages.clone());
    }
    if options.wanted("failover") {
        between_parts().await?;
        progress("(d) failover");
        let failover = failover(&cluster, &redis_spec, &clients, scale.kills).await?;
        rows.push(Row {
            measure: format!(
                "(d) failover: node killed (SIGKILL) → first push through another node, p50 / p99 over {} kills",
                scale.kills
            ),
            redis: format!("**{} / {}**", fmt(failover.p50), fmt(failover.p99)),
            memory: "— (one node)".to_owned(),
            goal: "—".to_owned(),
            verdict: failover.missing_note(),
        });
    }

    println!(
        "effex bench_cluster{} — {}",
        if options.quick { " --quick" } else { "" },
        machine()
    );
    println!();
    println!("| measure | 3 nodes on Redis | 1 node, memory store | goal | |");
    println!("|---|---:|---:|---|---|");
    let order = ["Redis", "(a)", "(b)", "(c)", "(d)", "(e)"];
    rows.sort_by_key(|row| order.iter().position(|p| row.measure.starts_with(p)));
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.measure, row.redis, row.memory, row.goal, row.verdict
        );
    }
    let rewrites = redis.aof_rewrites().await?;
    let rewrites = if options.auto_rewrites {
        format!("AOF rewrites left to Redis's own rule (when the AOF doubled): {rewrites}, maybe inside a phase")
    } else {
        format!("the bench rewrote the AOF before each part ({rewrites} in all) and Redis's own rewrites were off, so none ran inside a phase")
    };
    println!();
    println!(
        "Nodes: {NODES} child processes on one Redis {} (its own, AOF `appendfsync {}`, \
         `hash-max-listpack-value {COMPACT_HASH_VALUE}`; {rewrites}) and one \
         on the memory store, each serving `ServerConfig`'s defaults with {} HTTP worker \
         thread(s){}; clients in the bench process (REST on one thread, push on another); the \
         load average when it ended was {}.",
        support::redis_server::version(),
        options.appendfsync,
        options.workers,
        options
            .sweep_interval
            .map_or(String::new(), |i| format!(" and a {i:?} sweep interval")),
        support::load_average()
    );
    for note in &notes {
        println!();
        println!("{note}");
    }
    drop(cluster);
    drop(single);
    Ok(())
}

/// One line of the table.
struct Row {
    measure: String,
    redis: String,
    memory: String,
    goal: String,
    verdict: String,
}

fn met(ok: bool) -> String {
    if ok { "met" } else { "**not met**" }.to_owned()
}

fn errors_note(errors: usize) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!(", {errors} errors")
    }
}

fn progress(part: &str) {
    eprintln!("bench_cluster: {part}…");
}

/// `12345` → `12,345`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Now as unix µs (this machine's clock, which Redis's `TIME` also reads).
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

// ---- the exchange under test ------------------------------------------------------

/// The nodes of one exchange, its keys and a REST client per node.
struct Exchange {
    ws: Vec<String>,
    rest: Vec<EffexClient>,
    /// One writer key per closed-loop client.
    writers: Vec<String>,
    reader: String,
}

impl Exchange {
    async fn new(nodes: &[Node]) -> Result<Self, String> {
        let rest: Vec<EffexClient> = nodes
            .iter()
            .map(|n| EffexClient::new(n.http_url()).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let keys = |kind, count| {
            let rest = rest[0].clone();
            async move {
                rest.make_keys(BOSS, KeysRequest::new(kind).count(count))
                    .await
                    .map(|reply| reply.keys)
                    .map_err(|e| format!("make keys: {e}"))
            }
        };
        let writers = keys(KeyKind::Writer, CLIENTS).await?;
        let reader = keys(KeyKind::Reader, 1).await?.remove(0);
        Ok(Exchange {
            ws: nodes.iter().map(Node::ws_url).collect(),
            rest,
            writers,
            reader,
        })
    }

    /// The REST client of node `i` (round robin).
    fn node(&self, i: usize) -> &EffexClient {
        &self.rest[i % self.rest.len()]
    }

    /// Writes one item the reader may read, with writer key 0 on node 0.
    async fn item(&self) -> Result<String, String> {
        let item = NewItem::new(json!(0))
            .lifetime(Duration::from_secs(3600))
            .reader(&self.reader);
        self.node(0)
            .write(&self.writers[0], &item)
            .await
            .map(|w| w.id)
            .map_err(|e| format!("write an item: {e}"))
    }

    /// Writes `count` items from [`CLIENTS`] concurrent clients (client `c`
    /// on node `c` with writer key `c`); `item(i)` is built just before it
    /// is sent. Returns each write's reply, in index order.
    async fn write_many(
        &self,
        count: usize,
        item: impl Fn(usize) -> NewItem + 'static,
    ) -> Vec<Option<WriteReply>> {
        let next = Rc::new(Cell::new(0usize));
        let replies = Rc::new(RefCell::new(vec![None; count]));
        let item = Rc::new(item);
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let (rest, key) = (self.node(c).clone(), self.writers[c].clone());
                let (next, replies, item) = (next.clone(), replies.clone(), item.clone());
                actix_rt::spawn(async move {
                    loop {
                        let i = next.get();
                        if i >= count {
                            break;
                        }
                        next.set(i + 1);
                        let reply = rest.write(&key, &item(i)).await;
                        replies.borrow_mut()[i] = reply.ok();
                    }
                })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        replies.take()
    }
}

/// A subscriber (and its connection) on the client thread, dialing `urls`
/// in order, handing each push to `handler` there.
async fn subscriber(
    clients: &ArbiterHandle,
    urls: Vec<String>,
    handler: impl FnMut(&Push) + Send + 'static,
) -> Result<(Addr<ConnectionActor>, Addr<SubscriberActor>), String> {
    let config = ClientConfig::builder(urls[0].as_str())
        .urls(urls)
        .pass(PASS)
        .build()
        .map_err(|e| e.to_string())?;
    let conn = ConnectionActor::start_in_arbiter(clients, move |_| ConnectionActor::new(config));
    let sub_conn = conn.clone();
    let sub = SubscriberActor::start_in_arbiter(clients, move |_| {
        SubscriberActor::with_handler(sub_conn, handler)
    });
    Ok((conn, sub))
}

/// Sorted latencies and how many of those expected never came.
struct Latencies {
    p50: Duration,
    p99: Duration,
    missing: usize,
}

impl Latencies {
    fn of(mut samples: Vec<Duration>, expected: usize) -> Self {
        samples.sort();
        Latencies {
            p50: percentile(&samples, 50.0),
            p99: percentile(&samples, 99.0),
            missing: expected.saturating_sub(samples.len()),
        }
    }

    fn missing_note(&self) -> String {
        if self.missing == 0 {
            String::new()
        } else {
            format!(" ({} never arrived)", self.missing)
        }
    }
}

/// Polls `done` every few ms until it holds or [`BOUND`] passes after `from`.
async fn wait_until(from: Instant, done: impl Fn() -> bool) {
    while !done() && from.elapsed() < BOUND {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends one request per tick at [`PACED_RATE`] for `duration`; request `n`
/// (each its own task) is `send(n)`, its start time put in `started[n]`
/// just before. Returns the number sent.
async fn paced<F, Fut>(
    duration: Duration,
    started: &Arc<Mutex<Vec<Option<Instant>>>>,
    send: F,
) -> usize
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let total = (PACED_RATE * duration.as_secs()) as usize;
    let mut ticks = tokio::time::interval(Duration::from_nanos(1_000_000_000 / PACED_RATE));
    for n in 0..total {
        ticks.tick().await;
        let request = send(n);
        let started = started.clone();
        actix_rt::spawn(async move {
            if let Some(slot) = started.lock().expect("not poisoned").get_mut(n) {
                *slot = Some(Instant::now());
            }
            request.await;
        });
    }
    total
}

// ---- floor: Redis SET → keyspace notification ------------------------------------------

async fn set_notification_latency(
    redis: &RedisServer,
    duration: Duration,
) -> Result<Latencies, String> {
    redis.config_set("notify-keyspace-events", "K$").await?;
    let client = redis::Client::open(redis.url()).map_err(|e| e.to_string())?;
    let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
    pubsub
        .psubscribe("__keyspace@0__:bench:floor:*")
        .await
        .map_err(|e| e.to_string())?;
    let total = (PACED_RATE * duration.as_secs()) as usize;
    let started = Arc::new(Mutex::new(vec![None; total]));
    let samples = Rc::new(RefCell::new(Vec::with_capacity(total)));
    let listener = {
        let (started, samples) = (started.clone(), samples.clone());
        actix_rt::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let at = Instant::now();
                let n = message
                    .get_channel_name()
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok());
                let start = n.and_then(|n| {
                    started
                        .lock()
                        .expect("not poisoned")
                        .get(n)
                        .copied()
                        .flatten()
                });
                if let Some(start) = start {
                    samples.borrow_mut().push(at - start);
                }
            }
        })
    };
    let conn = redis.connection().await.map_err(|e| e.to_string())?;
    paced(duration, &started, |n| {
        let mut conn = conn.clone();
        async move {
            let _: redis::RedisResult<()> = redis::cmd("SET")
                .arg(format!("bench:floor:{n}"))
                .arg(n)
                .query_async(&mut conn)
                .await;
        }
    })
    .await;
    wait_until(Instant::now(), || samples.borrow().len() >= total).await;
    listener.abort();
    redis.config_set("notify-keyspace-events", "").await?;
    let samples = samples.take();
    Ok(Latencies::of(samples, total))
}

// ---- (a) REST update on one node → handler on another ------------------------------------

async fn update_to_handler(
    exchange: &Exchange,
    write_node: usize,
    watch_node: usize,
    clients: &ArbiterHandle,
    duration: Duration,
) -> Result<Latencies, String> {
    let item = exchange.item().await?;
    let total = (PACED_RATE * duration.as_secs()) as usize;
    // The first fifth of a second warms the connections up and is not counted.
    let warm = (PACED_RATE / 5) as usize;
    let started: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; total]));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let (slots, measured) = (started.clone(), samples.clone());
    let (conn, sub) = subscriber(
        clients,
        vec![exchange.ws[watch_node].clone()],
        move |push| {
            let at = Instant::now();
            let n = push
                .value
                .as_ref()
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            if let Some(n) = n.filter(|n| *n >= warm) {
                let start = slots
                    .lock()
                    .expect("not poisoned")
                    .get(n)
                    .copied()
                    .flatten();
                if let Some(start) = start {
                    measured.lock().expect("not poisoned").push(at - start);
                }
            }
        },
    )
    .await?;
    let watch = Subscribe::new(EventKind::Update, &item, &exchange.reader).with_value();
    sub.send(watch)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("watch: {e}"))?;
    let (rest, key) = (
        exchange.node(write_node).clone(),
        exchange.writers[0].clone(),
    );
    paced(duration, &started, |n| {
        let (rest, key, item) = (rest.clone(), key.clone(), item.clone());
        async move {
            let _ = rest.update(&key, &item, json!(n), None).await;
        }
    })
    .await;
    let expected = total - warm;
    wait_until(Instant::now(), || {
        samples.lock().expect("not poisoned").len() >= expected
    })
    .await;
    conn.do_send(Stop);
    let samples = std::mem::take(&mut *samples.lock().expect("not poisoned"));
    Ok(Latencies::of(samples, expected))
}

// ---- (b) write throughput ------------------------------------------------------------

/// (rate, p50, p99) and the number of failed writes.
/// (b) on one exchange: writes/s, p50, p99, and (with a probe) where the
/// CPU went per write.
async fn write_throughput(
    exchange: &Exchange,
    scale: &Scale,
    probe: Option<Probe<'_>>,
) -> Result<((f64, Duration, Duration, String), usize), String> {
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (rest, key) = (exchange.node(c).clone(), exchange.writers[c].clone());
            let item = NewItem::new(json!({"sku": format!("item-{c:06}"), "price": 12.5, "stock": c, "tags": ["bench", "cluster"]}))
                // Outlives the run, so no expiry disturbs the later parts.
                .lifetime(Duration::from_secs(3600));
            move || {
                let (rest, key, item) = (rest.clone(), key.clone(), item.clone());
                async move { rest.write(&key, &item).await.is_ok() }
            }
        })
        .collect();
    let before = match &probe {
        Some(p) => Some((RedisCounters::read(p.redis).await?, process_cpu(&p.nodes))),
        None => None,
    };
    let load = closed_loop(clients, scale.warmup, scale.phase).await;
    let note = match (probe, before) {
        (Some(p), Some((redis_before, (nodes_before, bench_before)))) => {
            let redis_cpu = RedisCounters::read(p.redis).await?.since(&redis_before).0;
            let (nodes_after, bench_after) = process_cpu(&p.nodes);
            let nodes_cpu: Vec<Duration> = nodes_after
                .iter()
                .zip(&nodes_before)
                .map(|(after, before)| after.saturating_sub(*before))
                .collect();
            write_cpu_note(
                load.total,
                redis_cpu,
                &nodes_cpu,
                bench_after.saturating_sub(bench_before),
            )
        }
        _ => String::new(),
    };
    Ok((
        (
            load.rate,
            percentile(&load.latencies, 50.0),
            percentile(&load.latencies, 99.0),
            note,
        ),
        load.errors,
    ))
}

/// The (b) note under the table: the CPU each process spent per write over
/// the whole run (warm-up included), and the writes/s that CPU allows on
/// this machine's cores if nothing else ran.
fn write_cpu_note(writes: usize, redis: Duration, nodes: &[Duration], bench: Duration) -> String {
    let per = |d: Duration| d.as_secs_f64() * 1e6 / writes.max(1) as f64;
    let nodes_total: f64 = nodes.iter().map(|d| per(*d)).sum();
    let total = per(redis) + nodes_total + per(bench);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "(b) on Redis, CPU per write ({} writes, `INFO cpu` and `/proc`): redis-server {:.1} µs, \
         nodes {} µs (together {:.1} µs), bench process (the clients) {:.1} µs: {:.1} µs in all, \
         so this machine's {cores} cores allow at most ~{:.0} writes/s at this cost.",
        thousands(writes),
        per(redis),
        nodes
            .iter()
            .map(|d| format!("{:.1}", per(*d)))
            .collect::<Vec<_>>()
            .join(" + "),
        nodes_total,
        per(bench),
        total,
        cores as f64 * 1e6 / total.max(1e-9)
    )
}

// ---- (c) expire lateness -------------------------------------------------------------

/// What (c) measured.
struct Lateness {
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// Items whose watch failed (most likely expired before it was made).
    unwatched: usize,
    /// Watched items whose `expire` push never came.
    missing: usize,
    /// Extra pushes for an item already pushed.
    doubled: usize,
    /// Pushes more than 1 ms before the deadline (the deadline is in whole ms).
    early: usize,
    /// Where the time went (on Redis; empty for the memory node).
    stages: String,
}

/// What (c) watches besides the pushes on Redis: Redis itself and the node
/// processes (see `support::stages`).
struct Probe<'a> {
    redis: &'a RedisServer,
    nodes: Vec<u32>,
}

/// How long Redis, each node and this program have waited for a core so
/// far (see [`stages::run_delay_of`]), in that order.
fn run_delays(probe: &Probe<'_>) -> Vec<Option<Duration>> {
    std::iter::once(probe.redis.pid())
        .chain(probe.nodes.iter().copied())
        .chain(std::iter::once(std::process::id()))
        .map(stages::run_delay_of)
        .collect()
}

/// CPU of the node processes and of this program, now.
fn process_cpu(nodes: &[u32]) -> (Vec<Duration>, Duration) {
    (
        nodes.iter().map(|pid| stages::cpu_of(*pid)).collect(),
        stages::cpu_of(std::process::id()),
    )
}

/// What the (c) breakdown is made of (see [`Stages::note`]).
struct Stages {
    /// Expiries expected.
    count: usize,
    /// `expire` entries the observer saw.
    observed: usize,
    /// Deadline → entry read by the observer, per item.
    in_stream: Vec<Duration>,
    /// Entry read → push handled, per item.
    to_handler: Vec<Duration>,
    redis_cpu: Duration,
    /// (command, calls, µs), busiest first.
    commands: Vec<(String, u64, u64)>,
    nodes_cpu: Vec<Duration>,
    bench_cpu: Duration,
    /// How long Redis, each node and this program waited for a core in the
    /// window, in that order (`None`: the kernel does not keep it).
    waited: Vec<Option<Duration>>,
}

/// The (c) breakdown under the table: deadline → `expire` entry in the
/// stream → handler, p50 / p99 each, and the CPU and Redis commands per expiry.
fn stages_note(stages: Stages) -> String {
    let Stages {
        count,
        observed,
        in_stream,
        to_handler,
        redis_cpu,
        commands,
        nodes_cpu,
        bench_cpu,
        waited,
    } = stages;
    let (a, b) = (Latencies::of(in_stream, 0), Latencies::of(to_handler, 0));
    let per = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6 / count.max(1) as f64);
    let commands: Vec<String> = commands
        .iter()
        .take(6)
        .map(|(name, calls, usec)| {
            format!(
                "{name} {calls} calls, {:.1} µs each, {:.1} µs/expiry",
                *usec as f64 / (*calls).max(1) as f64,
                *usec as f64 / count.max(1) as f64
            )
        })
        .collect();
    let waited_per = |d: &Option<Duration>| d.map_or_else(|| "?".to_owned(), per);
    let nodes_waited: Vec<String> = waited
        .iter()
        .skip(1)
        .take(waited.len().saturating_sub(2))
        .map(waited_per)
        .collect();
    format!(
        "(c) on Redis, where the time went: deadline → `expire` entry read from `effex:events` by an \
         observer ({observed} seen) p50 {} / p99 {}; that read → push handled p50 {} / p99 {}. CPU per expiry: \
         redis-server {}, nodes {}, bench process {}. Waiting for a core (ready to run, none free: \
         `/proc/<pid>/task/*/schedstat`, all threads; ? where the kernel keeps no figure), per \
         expiry: redis-server {}, nodes {}, bench process {}. Redis commands (`INFO \
         commandstats`: wall-clock time inside each command, which grows when the machine preempts \
         Redis; the CPU figures are `INFO cpu`): {}.",
        fmt(a.p50),
        fmt(a.p99),
        fmt(b.p50),
        fmt(b.p99),
        per(redis_cpu),
        nodes_cpu.iter().map(|d| per(*d)).collect::<Vec<_>>().join(" + "),
        per(bench_cpu),
        waited.first().map_or_else(|| "?".to_owned(), waited_per),
        nodes_waited.join(" + "),
        waited.last().map_or_else(|| "?".to_owned(), waited_per),
        commands.join("; ")
    )
}

impl Lateness {
    fn clean(&self) -> bool {
        self.unwatched == 0 && self.missing == 0 && self.doubled == 0 && self.early == 0
    }

    fn note(&self) -> String {
        if self.clean() {
            return ", each once".to_owned();
        }
        format!(
            " ({} unwatched, {} missing, {} doubled, {} early)",
            self.unwatched, self.missing, self.doubled, self.early
        )
    }
}

async fn expiry_lateness(
    exchange: &Exchange,
    clients: &ArbiterHandle,
    scale: &Scale,
    probe: Option<Probe<'_>>,
) -> Result<Lateness, String> {
    let count = scale.expiring;
    // Each push: (item id, unix µs handled).
    let arrivals = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let mut watchers = Vec::with_capacity(WATCHERS);
    for w in 0..WATCHERS {
        let arrivals = arrivals.clone();
        let url = exchange.ws[w % exchange.ws.len()].clone();
        watchers.push(
            subscriber(clients, vec![url], move |push| {
                if push.event == EventKind::Expire {
                    let at = unix_us();
                    arrivals
                        .lock()
                        .expect("not poisoned")
                        .push((push.id.clone(), at));
                }
            })
            .await?,
        );
    }
    // Write and watch a sample first (items that outlive the run), to learn
    // how long writing and watching all takes, so the first deadline comes
    // after the last watch.
    let sample = (count / 10).max(1_000);
    let started = Instant::now();
    let long = Duration::from_secs(3600);
    let reader = exchange.reader.clone();
    let written = exchange
        .write_many(sample, move |_| {
            NewItem::new(json!(0)).lifetime(long).reader(&reader)
        })
        .await;
    watch_all(exchange, &watchers, &written).await;
    let per_item = started.elapsed() / sample as u32;
    let first_deadline_us =
        unix_us() + (per_item * count as u32 * 2 + Duration::from_secs(1)).as_micros() as u64;
    let spread_us = scale.spread.as_micros() as u64;
    let reader = exchange.reader.clone();
    let written = exchange
        .write_many(count, move |i| {
            let deadline = first_deadline_us + spread_us * i as u64 / count as u64;
            let lifetime = Duration::from_micros(deadline.saturating_sub(unix_us()));
            NewItem::new(json!(i)).lifetime(lifetime).reader(&reader)
        })
        .await;
    let watched = watch_all(exchange, &watchers, &written).await;
    let deadlines: HashMap<String, u64> = written
        .iter()
        .zip(&watched)
        .filter(|(_, ok)| **ok)
        .filter_map(|(w, _)| w.as_ref().map(|w| (w.id.clone(), w.valid_till.as_millis())))
        .collect();
    let expected = deadlines.len();
    let before = match &probe {
        Some(p) => Some((
            StreamObserver::start(p.redis).await?,
            RedisCounters::read(p.redis).await?,
            process_cpu(&p.nodes),
            run_delays(p),
        )),
        None => None,
    };
    let last_deadline = Instant::now()
        + Duration::from_micros((first_deadline_us + spread_us).saturating_sub(unix_us()));
    // A node that falls behind still gets there: wait while pushes keep
    // coming, so the lateness of every item is measured.
    let mut progress_at = (0, last_deadline);
    loop {
        wait_until(progress_at.1, || {
            arrivals.lock().expect("not poisoned").len() >= expected
        })
        .await;
        let arrived = arrivals.lock().expect("not poisoned").len();
        if arrived >= expected || arrived == progress_at.0 {
            break;
        }
        progress_at = (arrived, Instant::now());
    }
    // Anything more (a doubled push) has had its chance by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (conn, _) in &watchers {
        conn.do_send(Stop);
    }
    let arrivals = std::mem::take(&mut *arrivals.lock().expect("not poisoned"));
    let stages = match (probe, before) {
        (Some(p), Some((observer, counters, (nodes_cpu, bench_cpu), delays))) => {
            let (redis_cpu, commands) = RedisCounters::read(p.redis).await?.since(&counters);
            let (nodes_now, bench_now) = process_cpu(&p.nodes);
            let waited = run_delays(&p)
                .into_iter()
                .zip(delays)
                .map(|(now, then)| Some(now?.saturating_sub(then?)))
                .collect();
            let observed = observer.finish();
            let (mut in_stream, mut to_handler) = (Vec::new(), Vec::new());
            for (id, at_us) in &arrivals {
                if let (Some(deadline_ms), Some(seen_us)) = (deadlines.get(id), observed.get(id)) {
                    in_stream.push(Duration::from_micros(
                        seen_us.saturating_sub(deadline_ms * 1000),
                    ));
                    to_handler.push(Duration::from_micros(at_us.saturating_sub(*seen_us)));
                }
            }
            let nodes_used: Vec<Duration> = nodes_now
                .iter()
                .zip(&nodes_cpu)
                .map(|(now, then)| now.saturating_sub(*then))
                .collect();
            stages_note(Stages {
                count: expected,
                observed: observed.len(),
                in_stream,
                to_handler,
                redis_cpu,
                commands,
                nodes_cpu: nodes_used,
                bench_cpu: bench_now.saturating_sub(bench_cpu),
                waited,
            })
        }
        _ => String::new(),
    };
    let mut seen = HashMap::with_capacity(arrivals.len());
    let (mut doubled, mut early) = (0, 0);
    let mut lateness = Vec::with_capacity(arrivals.len());
    for (id, at_us) in arrivals {
        let Some(deadline_ms) = deadlines.get(&id) else {
            continue;
        };
        if seen.insert(id, ()).is_some() {
            doubled += 1;
            continue;
        }
        let deadline_us = deadline_ms * 1000;
        if at_us + 1000 < deadline_us {
            early += 1;
        }
        lateness.push(Duration::from_micros(at_us.saturating_sub(deadline_us)));
    }
    lateness.sort();
    Ok(Lateness {
        p50: percentile(&lateness, 50.0),
        p99: percentile(&lateness, 99.0),
        max: lateness.last().copied().unwrap_or_default(),
        unwatched: count - expected,
        missing: expected - seen.len(),
        doubled,
        early,
        stages,
    })
}

/// Watches (`expire`) every written item, item `i` through watcher
/// `i % WATCHERS`, [`WATCHES_IN_FLIGHT`] at a time per watcher; whether each
/// watch succeeded, in index order.
async fn watch_all(
    exchange: &Exchange,
    watchers: &[(Addr<ConnectionActor>, Addr<SubscriberActor>)],
    written: &[Option<WriteReply>],
) -> Vec<bool> {
    let tasks: Vec<_> = watchers
        .iter()
        .enumerate()
        .map(|(w, (_, sub))| {
            let mine: Vec<(usize, String)> = written
                .iter()
                .enumerate()
                .skip(w)
                .step_by(watchers.len())
                .filter_map(|(i, reply)| reply.as_ref().map(|r| (i, r.id.clone())))
                .collect();
            let (sub, reader) = (sub.clone(), exchange.reader.clone());
            actix_rt::spawn(async move {
                futures_util::stream::iter(mine)
                    .map(|(i, id)| {
                        let watch = sub.send(Subscribe::new(EventKind::Expire, id, &reader));
                        async move {
                            let outcome = watch.await;
                            if let Ok(Err(e)) = &outcome {
                                log::warn!("watch of item {i} refused: {e}");
                            }
                            (i, matches!(outcome, Ok(Ok(_))))
                        }
                    })
                    .buffer_unordered(WATCHES_IN_FLIGHT)
                    .collect::<Vec<_>>()
                    .await
            })
        })
        .collect();
    let mut ok = vec![false; written.len()];
    for task in tasks {
        for (i, watched) in task.await.unwrap_or_default() {
            ok[i] = watched;
        }
    }
    ok
}

// ---- (d) failover ---------------------------------------------------------------------

async fn failover(
    cluster: &Exchange,
    spec: &NodeSpec,
    clients: &ArbiterHandle,
    kills: usize,
) -> Result<Latencies, String> {
    let item = cluster.item().await?;
    // Updates go through the last node, which is never killed.
    let (rest, key) = (cluster.node(NODES - 1).clone(), cluster.writers[0].clone());
    let mut samples = Vec::with_capacity(kills);
    for _ in 0..kills {
        let mut victim = Node::spawn(spec).await?;
        let pushes = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        let first: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let (counter, is_armed, first_after) = (pushes.clone(), armed.clone(), first.clone());
        let urls = vec![
            victim.ws_url(),
            cluster.ws[0].clone(),
            cluster.ws[1].clone(),
        ];
        let (conn, sub) = subscriber(clients, urls, move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            if is_armed.load(Ordering::SeqCst) {
                first_after
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert_with(Instant::now);
            }
        })
        .await?;
        sub.send(Subscribe::new(EventKind::Update, &item, &cluster.reader))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("watch: {e}"))?;
        // One push through the victim, so the subscriber is surely on it.
        rest.update(&key, &item, json!("through the victim"), None)
            .await
            .map_err(|e| format!("update: {e}"))?;
        wait_until(Instant::now(), || pushes.load(Ordering::SeqCst) >= 1).await;
        armed.store(true, Ordering::SeqCst);
        let killed = Instant::now();
        victim.kill();
        // Updates flow (one per ms or so) until one reaches the handler.
        while first.lock().expect("not poisoned").is_none() && killed.elapsed() < BOUND {
            let _ = rest
                .update(&key, &item, json!("after the kill"), None)
                .await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if let Some(at) = *first.lock().expect("not poisoned") {
            samples.push(at - killed);
        }
        conn.do_send(Stop);
    }
    Ok(Latencies::of(samples, kills))
}

// ---- (e) memory per item ----------------------------------------------------------------

/// Bytes `measure` grows per stored 1 KiB item (a 1,022-character string:
/// 1,024 bytes of JSON), over `count` items written through the exchange.
async fn memory_per_item<F, Fut>(
    exchange: &Exchange,
    count: usize,
    measure: F,
) -> Result<f64, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, String>>,
{
    let value = json!("x".repeat(1022));
    let reader = exchange.reader.clone();
    // A first batch grows whatever grows once (connections, tables).
    let warm_value = value.clone();
    let warm_reader = reader.clone();
    exchange
        .write_many(CLIENTS * 4, move |_| {
            NewItem::new(warm_value.clone())
                .lifetime(Duration::from_secs(3600))
                .reader(&warm_reader)
        })
        .await;
    let before = measure().await?;
    let written = exchange
        .write_many(count, move |_| {
            NewItem::new(value.clone())
                .lifetime(Duration::from_secs(3600))
                .reader(&reader)
        })
        .await;
    let after = measure().await?;
    let stored = written.iter().flatten().count();
    if stored < count {
        return Err(format!("(e): only {stored} of {count} writes succeeded"));
    }
    Ok((after as f64 - before as f64) / count as f64)
}
