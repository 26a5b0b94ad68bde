//! Measurement: what each Redis store operation costs Redis itself, from
//! Redis's own accounting (`INFO commandstats`, `INFO cpu`), so the figures
//! hold on a busy machine where wall-clock throughput does not.
//!
//! ```text
//! cargo run --release --example redis_cost --features redis
//! cargo run --release --example redis_cost --features redis -- --items 50000 --batch 200 --lifetime 60
//! ```
//!
//! It starts its own `redis-server` (AOF `everysec`, `hash-max-listpack-value
//! 4096`, as the README's scaling-out commands), one in-process
//! [`RedisStore`] with its sweeper held, 64 writer keys, and then, phase by
//! phase (statistics reset before each):
//!
//! - write: `--items` items (20,000; a 200-byte value, 1 reader, writer key
//!   `i % 64`, a `--lifetime` of 30 s), 64 writes in flight;
//! - update: a quarter of them updated once (each update logs an event);
//! - sweep: once all are due, sweeps of `--batch` (200, the store's default) entries until none is left
//!   (the sweeper's work for every expiry);
//! - gc: once the event retention (2 s) has passed, sweeps until none is
//!   left (whatever dropping the tombstones and logs costs the sweeper).
//!
//! For each phase it prints the scripts run, Redis's µs per script call, the
//! Redis µs per item (inside scripts), the Redis commands run inside the
//! scripts per item, the Redis CPU (user + sys) per item and the commands
//! that cost the most (calls and µs per item: what a script spends beyond
//! their sum is Lua). After gc it prints the keys Redis still holds (only
//! the 65 keys, the counters, the deadline set and the stream should be
//! left).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use effex::protocol::rest::KeysRequest;
use effex::protocol::time::UnixMillis;
use effex::store::{
    KeyKind, MemoryStoreConfig, RedisStore, RedisStoreConfig, Store, UpdateItem, WriteItem,
};
use futures_util::{stream, StreamExt};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use support::redis_server::RedisServer;

const BOSS: &str = "redis cost boss key";
const WRITERS: usize = 64;
const IN_FLIGHT: usize = 64;
const RETENTION: Duration = Duration::from_secs(2);

struct Options {
    items: usize,
    batch: usize,
    /// How long the items live: long enough to write and update them all.
    lifetime: Duration,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            items: 20_000,
            batch: 200,
            lifetime: Duration::from_secs(30),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut number = |name: &str| {
                args.next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .ok_or(format!("{name} takes a number more than 0"))
            };
            match arg.as_str() {
                "--items" => options.items = number("--items")?,
                "--batch" => options.batch = number("--batch")?,
                "--lifetime" => {
                    options.lifetime = Duration::from_secs(number("--lifetime")? as u64)
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?}: use --items N, --batch N, --lifetime S"
                    ))
                }
            }
        }
        Ok(options)
    }
}

/// One command's line of `INFO commandstats`: calls and µs.
#[derive(Debug, Default, Clone, Copy)]
struct Cost {
    calls: u64,
    usec: u64,
}

/// `INFO commandstats` as command → cost, and `INFO cpu`'s user + sys s.
async fn stats(conn: &mut MultiplexedConnection) -> Result<(BTreeMap<String, Cost>, f64), String> {
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .map_err(|e| format!("INFO commandstats: {e}"))?;
    let mut commands = BTreeMap::new();
    for line in text.lines() {
        let Some((name, fields)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let mut cost = Cost::default();
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("calls", n)) => cost.calls = n.parse().unwrap_or(0),
                Some(("usec", n)) => cost.usec = n.parse().unwrap_or(0),
                _ => {}
            }
        }
        commands.insert(name.to_owned(), cost);
    }
    let cpu: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn)
        .await
        .map_err(|e| format!("INFO cpu: {e}"))?;
    let seconds = |key: &str| {
        cpu.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((
        commands,
        seconds("used_cpu_user:") + seconds("used_cpu_sys:"),
    ))
}

async fn reset(conn: &mut MultiplexedConnection) -> Result<f64, String> {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(conn)
        .await
        .map_err(|e| format!("CONFIG RESETSTAT: {e}"))?;
    Ok(stats(conn).await?.1)
}

/// The commands that are not script invocations or this program's own.
fn inner(name: &str) -> bool {
    !matches!(
        name,
        "evalsha"
            | "fcall"
            | "function|load"
            | "eval"
            | "script|load"
            | "info"
            | "config|resetstat"
            | "xread"
            | "dbsize"
            | "ping"
    )
}

/// Prints one phase's line: `items` is what the phase is per.
async fn report(
    conn: &mut MultiplexedConnection,
    phase: &str,
    items: usize,
    cpu_before: f64,
    elapsed: Duration,
) -> Result<(), String> {
    let (commands, cpu) = stats(conn).await?;
    // Scripts (effex before its function library) or function calls.
    let scripts = ["evalsha", "fcall"]
        .iter()
        .filter_map(|name| commands.get(*name).copied())
        .fold(Cost::default(), |sum, c| Cost {
            calls: sum.calls + c.calls,
            usec: sum.usec + c.usec,
        });
    let inner_calls: u64 = commands
        .iter()
        .filter(|(n, _)| inner(n))
        .map(|(_, c)| c.calls)
        .sum();
    let inner_usec: u64 = commands
        .iter()
        .filter(|(n, _)| inner(n))
        .map(|(_, c)| c.usec)
        .sum();
    let per = |n: f64| n / items.max(1) as f64;
    let mut top: Vec<_> = commands.iter().filter(|(n, _)| inner(n)).collect();
    top.sort_by_key(|(_, c)| std::cmp::Reverse(c.usec));
    let top: Vec<String> = top
        .iter()
        .take(6)
        .map(|(n, c)| {
            format!(
                "{n} {:.1}× {:.1} µs",
                per(c.calls as f64),
                per(c.usec as f64)
            )
        })
        .collect();
    println!(
        "| {phase} | {items} | {} | {:.0} µs | {:.1} µs | {:.1} µs | {:.1} | {:.1} µs | {:.2} s | {} |",
        scripts.calls,
        scripts.usec as f64 / scripts.calls.max(1) as f64,
        per(scripts.usec as f64),
        per(scripts.usec.saturating_sub(inner_usec) as f64),
        per(inner_calls as f64),
        per((cpu - cpu_before) * 1e6),
        elapsed.as_secs_f64(),
        top.join(", ")
    );
    Ok(())
}

/// Runs sweeps until one handles nothing; how many entries they handled.
async fn sweep_all(store: &RedisStore) -> Result<u64, String> {
    let mut handled = 0;
    loop {
        let n = store
            .sweep_once()
            .await
            .map_err(|e| format!("sweep: {e}"))?;
        if n == 0 {
            return Ok(handled);
        }
        handled += n;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("redis_cost: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let options = Options::parse()?;
    let server = RedisServer::start("everysec", &["--hash-max-listpack-value", "4096"]).await?;
    let store = RedisStore::connect(RedisStoreConfig {
        url: server.url(),
        limits: MemoryStoreConfig {
            boss_key: BOSS.into(),
            event_retention: RETENTION,
            hold_expiry_clock: true,
            ..Default::default()
        },
        sweep_batch: options.batch,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("connect: {e}"))?;
    let mut conn = server.connection().await.map_err(|e| e.to_string())?;
    let writers = store
        .make_keys(BOSS, KeysRequest::new(KeyKind::Writer).count(WRITERS))
        .await
        .map_err(|e| format!("make keys: {e}"))?
        .keys;
    let reader = store
        .make_keys(BOSS, KeysRequest::new(KeyKind::Reader))
        .await
        .map_err(|e| format!("make keys: {e}"))?
        .keys
        .remove(0);
    let value = json!({"sku": "item-000000", "price": 12.5, "tags": ["bench", "cluster"], "note": "x".repeat(120)});

    println!(
        "effex redis_cost — {}, Redis {}, {} items, sweep batch {}, load average {}\n",
        support::machine(),
        support::redis_server::version(),
        options.items,
        options.batch,
        support::load_average()
    );
    println!("| phase | items | scripts | Redis µs / script | Redis µs / item (scripts) | of it Lua | Redis commands / item (in scripts) | Redis CPU / item | wall | costliest commands (calls, µs / item) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");

    // write
    let cpu = reset(&mut conn).await?;
    let started = Instant::now();
    let written: Vec<_> = stream::iter(0..options.items)
        .map(|i| {
            let item = WriteItem {
                lifetime: Some(options.lifetime),
                readers: vec![reader.clone()],
                ..WriteItem::new(&value)
            };
            let (store, key) = (&store, &writers[i % WRITERS]);
            async move { store.write(key, item).await }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let written: Vec<_> = written
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("write: {e}"))?;
    report(&mut conn, "write", written.len(), cpu, elapsed).await?;

    // update
    let updates: Vec<_> = written
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 == 0)
        .map(|(i, w)| (writers[i % WRITERS].clone(), w.id.to_string()))
        .collect();
    let cpu = reset(&mut conn).await?;
    let started = Instant::now();
    let updated: Vec<_> = stream::iter(&updates)
        .map(|(key, id)| store.update(key, id, UpdateItem::new(&value)))
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(e)) = updated.iter().find(|r| r.is_err()) {
        return Err(format!(
            "update: {e} (a slow machine? the items live {:?}: raise --lifetime)",
            options.lifetime
        ));
    }
    report(&mut conn, "update", updated.len(), cpu, elapsed).await?;

    // sweep: wait until the last deadline has passed (Redis reads this clock).
    let last = written
        .iter()
        .map(|w| w.valid_till)
        .max()
        .unwrap_or(UnixMillis::EPOCH);
    let wait =
        |until: UnixMillis| until.duration_since(UnixMillis::now()) + Duration::from_millis(50);
    tokio::time::sleep(wait(last)).await;
    let cpu = reset(&mut conn).await?;
    let started = Instant::now();
    let handled = sweep_all(&store).await?;
    let elapsed = started.elapsed();
    let swept_at = last.saturating_add(RETENTION);
    report(&mut conn, "sweep", written.len(), cpu, elapsed).await?;
    if handled < written.len() as u64 {
        return Err(format!(
            "the sweeps handled {handled} entries for {} items",
            written.len()
        ));
    }

    // gc: after the retention, whatever is left to drop.
    tokio::time::sleep(wait(swept_at.saturating_add(Duration::from_secs(1)))).await;
    let cpu = reset(&mut conn).await?;
    let started = Instant::now();
    sweep_all(&store).await?;
    let elapsed = started.elapsed();
    report(&mut conn, "gc", written.len(), cpu, elapsed).await?;

    // Redis drops keys whose TTL passed lazily and in its background cycle.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut keys: u64;
    loop {
        keys = redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("DBSIZE: {e}"))?;
        if keys <= WRITERS as u64 + 5 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\nKeys left after the retention: {keys} ({} access keys, and seq, stats, deadline set, stream).",
        WRITERS + 1
    );
    Ok(())
}
