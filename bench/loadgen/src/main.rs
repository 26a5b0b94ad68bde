//! The lean load generator of the comparison harness (issue 9).
//!
//! One process, raw WebSocket connections (tokio-tungstenite) spread over a
//! multi-thread tokio runtime (`--threads`, default one per core; many
//! sockets per thread), speaking just enough Engine.IO v4 / Socket.IO v5 to
//! connect (`40`), pass (`["pass",{pass,pushId}]`), watch
//! (`["watch",{event,id,key}]`), answer pings (`2` → `3`) and ack every push
//! (`43<id>[{"ok":true}]`) the moment it is read. Updates go over a minimal
//! HTTP/1.1 client (`PUT /items/{id}`).
//!
//! It talks to the driver over stdin/stdout in JSON lines:
//!   1. it sets up (keys, items, connections) and prints `{"event":"ready",…}`;
//!   2. the driver samples the server (CPU time, memory) and writes `go`;
//!   3. it runs the measured phase and prints `{"event":"result",…}`, with
//!      its own CPU time for that phase (getrusage) beside the figures;
//!   4. it keeps its connections open until stdin closes (so the driver can
//!      sample the server again), then exits.
//!
//! Errors go to stderr and to `{"event":"error","error":…}`, exit code 1.
//!
//! Usage: loadgen --addr 127.0.0.1:PORT --workload fanout|throughput|paced|handshake|idle
//!   [--boss KEY] [--pass P] [--conns N] [--watches W] [--keys K] [--rounds R] [--seconds S]
//!   [--rate U] [--count M] [--sources K] [--http-conns H] [--threads T]

mod http;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use benchkit::{cpu_us, percentile};
use http::Http;

type Ws = WebSocketStream<TcpStream>;

/// How long one step of the conversation (a reply, a round's pushes) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
struct Opts {
    addr: SocketAddr,
    workload: String,
    boss: String,
    pass: String,
    conns: usize,
    watches: usize,
    keys: usize,
    window: Option<u64>,
    rounds: usize,
    seconds: f64,
    rate: f64,
    count: usize,
    sources: u8,
    http_conns: usize,
    threads: usize,
}

fn parse_opts() -> Result<Opts, String> {
    let map = benchkit::option_map()?;
    fn num<T: std::str::FromStr>(
        map: &HashMap<String, String>,
        name: &str,
        default: T,
    ) -> Result<T, String> {
        match map.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name} {v:?} is not a number")),
        }
    }
    let addr = map
        .get("addr")
        .ok_or("--addr HOST:PORT is required")?
        .parse()
        .map_err(|_| "--addr must be an IP:PORT such as 127.0.0.1:8150".to_string())?;
    Ok(Opts {
        addr,
        workload: map
            .get("workload")
            .cloned()
            .ok_or("--workload is required")?,
        boss: map.get("boss").cloned().unwrap_or_else(|| "boss".into()),
        pass: map.get("pass").cloned().unwrap_or_else(|| "bench".into()),
        conns: num(&map, "conns", 1)?,
        watches: num(&map, "watches", 1)?,
        keys: num(&map, "keys", 0)?,
        window: map.get("window").and_then(|w| w.parse().ok()),
        rounds: num(&map, "rounds", 100)?,
        seconds: num(&map, "seconds", 5.0)?,
        rate: num(&map, "rate", 10_000.0)?,
        count: num(&map, "count", 1000)?,
        sources: num(&map, "sources", 1)?,
        http_conns: num(&map, "http-conns", 4)?,
        // Default: one runtime thread per core, so that the load generator
        // is not held to one core (it shares the machine with the server:
        // the driver prints both processes' CPU beside each figure).
        threads: num(
            &map,
            "threads",
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )?,
    })
}

fn emit(line: Value) {
    println!("{line}");
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            emit(json!({"event":"error","error":e}));
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(opts)) {
        eprintln!("loadgen: {e}");
        emit(json!({"event":"error","error":e}));
        std::process::exit(1);
    }
    // Exit without waiting for the connection tasks.
    std::process::exit(0);
}

/// The driver's commands, one per line on stdin.
struct Driver {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
}

impl Driver {
    async fn wait_go(&mut self) -> Result<(), String> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) if line.trim() == "go" => return Ok(()),
                Ok(Some(_)) => continue,
                Ok(None) => return Err("stdin closed before `go`".into()),
                Err(e) => return Err(format!("reading stdin: {e}")),
            }
        }
    }
    /// Holds the connections open until the driver closes stdin.
    async fn wait_end(&mut self) {
        while let Ok(Some(_)) = self.lines.next_line().await {}
    }
}

/// What the REST setup made: a writer key (it owns, reads and updates the
/// items), the item ids, and the keys each connection watches every item
/// with: the writer key alone, or `--keys K` reader keys (K watches of the
/// same item on one connection, so one update makes K pushes on it).
struct Setup {
    key: String,
    items: Vec<String>,
    watch_keys: Vec<String>,
}

async fn setup(opts: &Opts, items: usize) -> Result<Setup, String> {
    let mut http = Http::connect(opts.addr).await?;
    let (status, body) = http
        .request(
            "POST",
            "/keys",
            &opts.boss,
            r#"{"type":"writer","seconds":86400}"#,
        )
        .await?;
    let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let key = reply["keys"][0]
        .as_str()
        .ok_or_else(|| format!("POST /keys answered {status} {body}"))?
        .to_string();
    let mut watch_keys = vec![key.clone()];
    if opts.keys > 0 {
        let (status, body) = http
            .request(
                "POST",
                "/keys",
                &opts.boss,
                &json!({"type":"reader","count":opts.keys,"seconds":86400}).to_string(),
            )
            .await?;
        let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        watch_keys = reply["keys"]
            .as_array()
            .filter(|k| k.len() == opts.keys)
            .ok_or_else(|| format!("POST /keys (readers) answered {status} {body}"))?
            .iter()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
    }
    let new_item = if opts.keys > 0 {
        json!({"value":0,"lifetime":86400,"readers":&watch_keys[..]}).to_string()
    } else {
        // The writer key owns the item: it may read (watch) and update it.
        json!({"value":0,"lifetime":86400}).to_string()
    };
    let mut ids = Vec::with_capacity(items);
    for _ in 0..items {
        let (status, body) = http.request("POST", "/items", &key, &new_item).await?;
        let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        ids.push(
            reply["id"]
                .as_str()
                .ok_or_else(|| format!("POST /items answered {status} {body}"))?
                .to_string(),
        );
    }
    Ok(Setup {
        key,
        items: ids,
        watch_keys,
    })
}

/// Reads text frames until one starts with `prefix`, answering pings on the
/// way; returns it.
async fn expect(ws: &mut Ws, prefix: &str) -> Result<String, String> {
    loop {
        let frame = tokio::time::timeout(STEP_TIMEOUT, ws.next())
            .await
            .map_err(|_| format!("no {prefix:?} frame within {STEP_TIMEOUT:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => {
                let text = text.as_str();
                if std::env::var_os("LOADGEN_DEBUG").is_some() {
                    eprintln!("loadgen: read {text:?} waiting for {prefix:?}");
                }
                if text == "2" {
                    ws.send(Message::text("3"))
                        .await
                        .map_err(|e| format!("pong: {e}"))?;
                } else if text.starts_with(prefix) {
                    return Ok(text.to_string());
                }
            }
            Some(Ok(Message::Close(reason))) => {
                return Err(format!("closed while waiting for {prefix:?}: {reason:?}"))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("waiting for {prefix:?}: {e}")),
            None => return Err(format!("closed while waiting for {prefix:?}")),
        }
    }
}

/// Opens one connection from `source` and passes: TCP, WebSocket upgrade,
/// Engine.IO open, Socket.IO CONNECT, `pass` and its ack.
async fn open_passed(opts: &Opts, source: IpAddr, push_id: &str) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = socket
        .connect(opts.addr)
        .await
        .map_err(|e| format!("connect {} from {source}: {e}", opts.addr))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", opts.addr);
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(benchkit::WS_READ_BUFFER);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    expect(&mut ws, "0").await?;
    ws.send(Message::text("40"))
        .await
        .map_err(|e| format!("CONNECT: {e}"))?;
    expect(&mut ws, "40").await?;
    let pass = json!(["pass", {"pass": opts.pass, "pushId": push_id}]);
    ws.send(Message::text(format!("420{pass}")))
        .await
        .map_err(|e| format!("pass: {e}"))?;
    let reply = expect(&mut ws, "430").await?;
    if !reply.contains("\"ok\":true") {
        return Err(format!("pass refused: {reply}"));
    }
    Ok(ws)
}

/// Watches each of `items` (update events) with each of `keys` on a passed connection.
async fn watch_all(ws: &mut Ws, items: &[String], keys: &[String]) -> Result<(), String> {
    let mut pairs = Vec::with_capacity(items.len() * keys.len());
    for item in items {
        for key in keys {
            pairs.push((item.clone(), key.clone()));
        }
    }
    for (n, (item, key)) in pairs.into_iter().enumerate() {
        let ack = n + 1;
        let watch = json!(["watch", {"event": "update", "id": item, "key": key}]);
        ws.send(Message::text(format!("42{ack}{watch}")))
            .await
            .map_err(|e| format!("watch: {e}"))?;
        let reply = expect(ws, &format!("43{ack}[")).await?;
        if !reply.contains("\"ok\":true") {
            return Err(format!("watch refused: {reply}"));
        }
    }
    Ok(())
}

/// A push frame's ack id and seq: `42<ack>["push",{…,"seq":N,…}]`.
fn parse_push(text: &str) -> Option<(&str, u64)> {
    let rest = text.strip_prefix("42")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || !rest[digits..].starts_with("[\"push\"") {
        return None;
    }
    let at = rest.find("\"seq\":")? + 6;
    let seq_digits = rest[at..].bytes().take_while(u8::is_ascii_digit).count();
    let seq = rest[at..at + seq_digits].parse().ok()?;
    Some((&rest[..digits], seq))
}

/// Counters every connection task shares.
#[derive(Default)]
struct Stats {
    pushes: AtomicU64,
    pongs: AtomicU64,
    closed: AtomicU64,
    /// Set while an updater waits for room in its window; pushes then wake it.
    waiting: std::sync::atomic::AtomicBool,
    room: tokio::sync::Notify,
}

/// Serves one passed connection until it closes: answers each ping with a
/// pong, acks each push at once and reports (seq, time read) to `tx`.
async fn serve_conn(
    mut ws: Ws,
    tx: Option<mpsc::UnboundedSender<(u64, Instant)>>,
    stats: Arc<Stats>,
) {
    while let Some(frame) = ws.next().await {
        let text = match frame {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let text = text.as_str();
        if text == "2" {
            stats.pongs.fetch_add(1, Ordering::Relaxed);
            if ws.send(Message::text("3")).await.is_err() {
                break;
            }
        } else if let Some((ack, seq)) = parse_push(text) {
            let read_at = Instant::now();
            let reply = format!("43{ack}[{{\"ok\":true}}]");
            if ws.send(Message::text(reply)).await.is_err() {
                break;
            }
            stats.pushes.fetch_add(1, Ordering::Relaxed);
            if stats.waiting.load(Ordering::Relaxed) {
                stats.room.notify_waiters();
            }
            if let Some(tx) = &tx {
                let _ = tx.send((seq, read_at));
            }
        }
    }
    stats.closed.fetch_add(1, Ordering::Relaxed);
}

/// Opens `opts.conns` passed connections (64 handshakes at a time), each
/// watching `items`, spread over 127.0.0.1..=127.0.0.<sources>.
async fn open_many(
    opts: &Opts,
    setup: &Setup,
    items: &[String],
    tx: Option<mpsc::UnboundedSender<(u64, Instant)>>,
    stats: Arc<Stats>,
) -> Result<(), String> {
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut joins = Vec::with_capacity(opts.conns);
    for n in 0..opts.conns {
        let permit = limit
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (n % opts.sources.max(1) as usize) as u8,
        ));
        let opts = opts.clone();
        let items = items.to_vec();
        let keys = setup.watch_keys.clone();
        let tx = tx.clone();
        let stats = stats.clone();
        joins.push(tokio::spawn(async move {
            let result = async {
                let mut ws = open_passed(&opts, source, &format!("bench-{n}")).await?;
                watch_all(&mut ws, &items, &keys).await?;
                Ok::<Ws, String>(ws)
            }
            .await;
            drop(permit);
            let ws = result.map_err(|e| format!("connection {n}: {e}"))?;
            tokio::spawn(serve_conn(ws, tx, stats));
            Ok::<(), String>(())
        }));
    }
    for join in joins {
        join.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Sends one update and returns the event's seq from the reply.
async fn update(http: &mut Http, setup: &Setup, item: &str, value: u64) -> Result<u64, String> {
    let (status, body) = http
        .request(
            "PUT",
            &format!("/items/{item}"),
            &setup.key,
            &format!("{{\"value\":{value}}}"),
        )
        .await?;
    let reply: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    reply["seq"]
        .as_u64()
        .ok_or_else(|| format!("PUT /items/{item} answered {status} {body}"))
}

async fn run(opts: Opts) -> Result<(), String> {
    let mut driver = Driver {
        lines: tokio::io::BufReader::new(tokio::io::stdin()).lines(),
    };
    match opts.workload.as_str() {
        "fanout" => fanout(&opts, &mut driver).await?,
        "throughput" => throughput(&opts, &mut driver).await?,
        "paced" => paced(&opts, &mut driver).await?,
        "handshake" => handshake(&opts, &mut driver).await?,
        "idle" => idle(&opts, &mut driver).await?,
        other => {
            return Err(format!(
                "unknown workload {other:?} (fanout, throughput, paced, handshake, idle)"
            ))
        }
    }
    driver.wait_end().await;
    Ok(())
}

/// (a) One item, `conns` connections each watching it; `rounds` times: one
/// REST update, then wait until every connection has read (and acked) its
/// push. Figures: update sent → last push read, p50/p99 over the rounds.
async fn fanout(opts: &Opts, driver: &mut Driver) -> Result<(), String> {
    let setup = setup(opts, 1).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Stats::default());
    open_many(opts, &setup, &setup.items, Some(tx), stats.clone()).await?;
    let mut http = Http::connect(opts.addr).await?;
    emit(json!({"event":"ready","conns":opts.conns}));
    driver.wait_go().await?;
    let cpu0 = cpu_us();
    let wall0 = Instant::now();
    let mut latencies = Vec::with_capacity(opts.rounds);
    // seq → (pushes read, time of the last one); pushes may beat the reply.
    let mut seen: HashMap<u64, (usize, Instant)> = HashMap::new();
    let mut missing = 0usize;
    for round in 0..opts.rounds {
        let sent = Instant::now();
        let seq = update(&mut http, &setup, &setup.items[0], round as u64).await?;
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        while seen.get(&seq).map_or(0, |s| s.0) < opts.conns {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((s, at))) => {
                    let entry = seen.entry(s).or_insert((0, at));
                    entry.0 += 1;
                    entry.1 = entry.1.max(at);
                }
                Ok(None) => return Err("every connection closed".into()),
                Err(_) => break,
            }
        }
        let (got, last) = seen.remove(&seq).unwrap_or((0, sent));
        missing += opts.conns - got.min(opts.conns);
        latencies.push(last.saturating_duration_since(sent).as_micros() as u64);
    }
    let wall = wall0.elapsed();
    let cpu = cpu_us() - cpu0;
    latencies.sort_unstable();
    emit(json!({
        "event": "result",
        "frames": opts.conns * opts.rounds - missing,
        "missing": missing,
        "p50_us": percentile(&latencies, 0.50),
        "p99_us": percentile(&latencies, 0.99),
        "wall_us": wall.as_micros() as u64,
        "loadgen_cpu_us": cpu,
        "closed": stats.closed.load(Ordering::Relaxed),
    }));
    Ok(())
}

/// (c)/(d) `conns` connections each watching the same `watches` items (with
/// each of the `--keys` reader keys when given);
/// `http-conns` REST connections update those items round robin as fast as
/// the server answers, for `seconds`, keeping at most `--window` pushes
/// (default: 4 updates' worth, at least 2,000) sent and not yet read. Then waits until every push of those
/// updates has been read and acked (or 10 s without progress). Figure:
/// pushes acked per second, first update sent → last push read.
async fn throughput(opts: &Opts, driver: &mut Driver) -> Result<(), String> {
    let setup = Arc::new(setup(opts, opts.watches).await?);
    let stats = Arc::new(Stats::default());
    open_many(opts, &setup, &setup.items, None, stats.clone()).await?;
    let mut updaters = Vec::new();
    for _ in 0..opts.http_conns.max(1) {
        updaters.push(Http::connect(opts.addr).await?);
    }
    emit(json!({"event":"ready","conns":opts.conns}));
    driver.wait_go().await?;
    let cpu0 = cpu_us();
    let wall0 = Instant::now();
    let stop_at = wall0 + Duration::from_secs_f64(opts.seconds);
    let updates = Arc::new(AtomicU64::new(0));
    let per_update = (opts.conns * setup.watch_keys.len()) as u64;
    let window = opts.window.unwrap_or((4 * per_update).max(2_000));
    let mut tasks = Vec::new();
    for (n, mut http) in updaters.into_iter().enumerate() {
        let setup = setup.clone();
        let updates = updates.clone();
        let stats = stats.clone();
        let step = opts.http_conns.max(1);
        tasks.push(tokio::spawn(async move {
            let mut i = n;
            while Instant::now() < stop_at {
                // Flow control: at most `window` pushes sent and not yet
                // read, so the figure is the sustained rate (a server that
                // sheds a consumer which falls behind would otherwise close it).
                loop {
                    let sent = updates.load(Ordering::Relaxed) * per_update;
                    if sent <= stats.pushes.load(Ordering::Relaxed) + window {
                        break;
                    }
                    let notified = stats.room.notified();
                    stats.waiting.store(true, Ordering::Relaxed);
                    let _ = tokio::time::timeout(Duration::from_millis(2), notified).await;
                    stats.waiting.store(false, Ordering::Relaxed);
                }
                updates.fetch_add(1, Ordering::Relaxed);
                let item = &setup.items[i % setup.items.len()];
                update(&mut http, &setup, item, i as u64).await?;
                i += step;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    let updates = updates.load(Ordering::Relaxed);
    let expected = updates * per_update;
    // Drain: wait for every push, or 10 s without a new one.
    let mut last_count = stats.pushes.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    let mut last_push_at = Instant::now();
    loop {
        let count = stats.pushes.load(Ordering::Relaxed);
        if count != last_count {
            last_count = count;
            last_progress = Instant::now();
            last_push_at = last_progress;
        }
        if count >= expected || last_progress.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let pushes = stats.pushes.load(Ordering::Relaxed);
    let elapsed = last_push_at.max(stop_at.min(Instant::now())) - wall0;
    let cpu = cpu_us() - cpu0;
    emit(json!({
        "event": "result",
        "watches_per_update": per_update,
        "window": window,
        "updates": updates,
        "pushes": pushes,
        "missing": expected.saturating_sub(pushes),
        "pushes_per_s": pushes as f64 / elapsed.as_secs_f64(),
        "wall_us": elapsed.as_micros() as u64,
        "loadgen_cpu_us": cpu,
        "closed": stats.closed.load(Ordering::Relaxed),
    }));
    Ok(())
}

/// (e) One connection watching one item; updates paced at `rate` per second
/// for `seconds` over `http-conns` REST connections (each sends its share at
/// its scheduled times; tokio's timer has 1 ms resolution, so they leave in
/// 1 ms batches). Figure: update sent → push read, p50/p99, matched by seq.
async fn paced(opts: &Opts, driver: &mut Driver) -> Result<(), String> {
    let setup = Arc::new(setup(opts, 1).await?);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Stats::default());
    open_many(opts, &setup, &setup.items, Some(tx), stats.clone()).await?;
    let mut updaters = Vec::new();
    for _ in 0..opts.http_conns.max(1) {
        updaters.push(Http::connect(opts.addr).await?);
    }
    emit(json!({"event":"ready","conns":opts.conns}));
    driver.wait_go().await?;
    let cpu0 = cpu_us();
    let wall0 = Instant::now();
    let total = (opts.rate * opts.seconds).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / opts.rate.max(1.0));
    let step = opts.http_conns.max(1);
    let mut tasks = Vec::new();
    for (n, mut http) in updaters.into_iter().enumerate() {
        let setup = setup.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent_at: Vec<(u64, Instant)> = Vec::with_capacity(total / step + 1);
            let mut i = n;
            while i < total {
                let due = wall0 + interval * i as u32;
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                let seq = update(&mut http, &setup, &setup.items[0], i as u64).await?;
                sent_at.push((seq, sent));
                i += step;
            }
            Ok::<Vec<(u64, Instant)>, String>(sent_at)
        }));
    }
    let mut sent: HashMap<u64, Instant> = HashMap::with_capacity(total);
    for task in tasks {
        sent.extend(task.await.map_err(|e| e.to_string())??);
    }
    let send_wall = wall0.elapsed();
    let mut latencies = Vec::with_capacity(total);
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while latencies.len() < sent.len() {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((seq, at))) => {
                if let Some(t) = sent.get(&seq) {
                    latencies.push(at.saturating_duration_since(*t).as_micros() as u64);
                }
            }
            _ => break,
        }
    }
    let cpu = cpu_us() - cpu0;
    latencies.sort_unstable();
    emit(json!({
        "event": "result",
        "updates": sent.len(),
        "pushes": latencies.len(),
        "missing": sent.len() - latencies.len(),
        "achieved_rate": sent.len() as f64 / send_wall.as_secs_f64(),
        "p50_us": percentile(&latencies, 0.50),
        "p99_us": percentile(&latencies, 0.99),
        "wall_us": wall0.elapsed().as_micros() as u64,
        "loadgen_cpu_us": cpu,
    }));
    Ok(())
}

/// (f) `count` times, one after another: a fresh TCP socket → WebSocket
/// upgrade → Engine.IO open → CONNECT → pass acked; then the socket is
/// dropped. Figure: fresh socket → passed, p50/p99.
async fn handshake(opts: &Opts, driver: &mut Driver) -> Result<(), String> {
    // Setup makes no item; the pass needs none. Warm the server with a few.
    for n in 0..10 {
        open_passed(opts, IpAddr::V4(Ipv4Addr::LOCALHOST), &format!("warm-{n}")).await?;
    }
    emit(json!({"event":"ready","conns":0}));
    driver.wait_go().await?;
    let cpu0 = cpu_us();
    let wall0 = Instant::now();
    let mut latencies = Vec::with_capacity(opts.count);
    for n in 0..opts.count {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (n % opts.sources.max(1) as usize) as u8,
        ));
        let t0 = Instant::now();
        let ws = open_passed(opts, source, &format!("hs-{n}")).await?;
        latencies.push(t0.elapsed().as_micros() as u64);
        drop(ws);
    }
    let cpu = cpu_us() - cpu0;
    latencies.sort_unstable();
    emit(json!({
        "event": "result",
        "handshakes": opts.count,
        "p50_us": percentile(&latencies, 0.50),
        "p99_us": percentile(&latencies, 0.99),
        "wall_us": wall0.elapsed().as_micros() as u64,
        "loadgen_cpu_us": cpu,
    }));
    Ok(())
}

/// (b)/(g) `conns` idle passed connections (no watch). Ready once all are
/// passed and 2 s have settled (the driver then reads the server's memory);
/// the measured phase is `seconds` of idling, answering pings (the driver
/// reads the server's CPU time over it).
async fn idle(opts: &Opts, driver: &mut Driver) -> Result<(), String> {
    let setup = setup(opts, 0).await?;
    let stats = Arc::new(Stats::default());
    open_many(opts, &setup, &[], None, stats.clone()).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    emit(json!({"event":"ready","conns":opts.conns}));
    driver.wait_go().await?;
    let cpu0 = cpu_us();
    let pongs0 = stats.pongs.load(Ordering::Relaxed);
    let wall0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(opts.seconds)).await;
    emit(json!({
        "event": "result",
        "conns": opts.conns,
        "pongs": stats.pongs.load(Ordering::Relaxed) - pongs0,
        "closed": stats.closed.load(Ordering::Relaxed),
        "wall_us": wall0.elapsed().as_micros() as u64,
        "loadgen_cpu_us": cpu_us() - cpu0,
    }));
    Ok(())
}
