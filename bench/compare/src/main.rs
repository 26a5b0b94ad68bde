//! The comparison driver of issue 9: runs each workload against three servers
//! — effex (`effex serve`), the Node socket.io 4.8.4 peer (bench/node) and
//! the socketioxide 0.18 peer (bench/peer-socketioxide) — with the same lean
//! load generator (bench/loadgen, a process of its own), and prints one
//! Markdown table.
//!
//! What is measured and how:
//! - every server runs as a child process, fresh for each workload;
//! - the load generator sets up (keys, items, connections, watches) and says
//!   `ready`; the driver then reads the server's CPU time (utime + stime from
//!   /proc/<pid>/stat) and memory (Rss and Pss from /proc/<pid>/smaps_rollup),
//!   says `go`, and reads the CPU time again when the load generator reports
//!   its result — so connection setup is excluded from the CPU figures;
//! - the load generator reports its own CPU time over the same phase
//!   (getrusage), printed beside each figure as `lg N%` (of one core), so a
//!   figure limited by the load generator shows as such;
//! - nothing printed comes from a constant: every figure is from this run.
//!
//! - the client workloads run each client — effex's `ConnectionActor` +
//!   `SubscriberActor` (bench/client-effex) and Node's socket.io-client
//!   (bench/node/client.js) — against the same lean push source
//!   (bench/pushsource), reading the client's CPU time from /proc and the
//!   source's own from its result, and print a second table.
//!
//! Usage: compare --effex PATH --loadgen PATH --peer PATH --node-dir DIR
//!                --pushsource PATH --client-effex PATH
//!                [--quick] [--only WORKLOAD] [--busy] [--loadgen-threads N]
//! WORKLOAD: a1k a10k idle handshake one-conn aggregate paced (or a, b, c, d,
//! e, f, g); client-rate client-paced (or client, both).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BOSS: &str = "bench-boss-key";
const PASS: &str = "bench-pass";

struct Paths {
    effex: PathBuf,
    loadgen: PathBuf,
    peer: PathBuf,
    node_dir: PathBuf,
    /// The lean push source and the effex client program (client workloads).
    pushsource: PathBuf,
    client_effex: PathBuf,
}

struct Opts {
    paths: Paths,
    quick: bool,
    only: Option<String>,
    busy: bool,
    /// The load generator's runtime threads (default: one per core).
    loadgen_threads: usize,
}

fn parse_opts() -> Result<Opts, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut quick = false;
    let mut busy = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--busy" => busy = true,
            "-h" | "--help" => {
                return Err("usage: compare --effex PATH --loadgen PATH --peer PATH --node-dir DIR --pushsource PATH --client-effex PATH\n\
                            \x20              [--quick] [--only WORKLOAD] [--busy] [--loadgen-threads N]\n\
                            (bench/run passes the paths; WORKLOAD: a1k a10k idle handshake one-conn aggregate paced client-rate client-paced)".into())
            }
            name if name.starts_with("--") => {
                let value = args.next().ok_or_else(|| format!("{name} needs a value"))?;
                map.insert(name[2..].to_string(), value);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let path = |name: &str| -> Result<PathBuf, String> {
        let p = PathBuf::from(
            map.get(name)
                .ok_or_else(|| format!("--{name} is required"))?,
        );
        if !p.exists() {
            return Err(format!(
                "--{name} {}: no such file (run bench/run, which builds it)",
                p.display()
            ));
        }
        Ok(p)
    };
    let only = map.get("only").map(|w| match w.as_str() {
        "a" => "a1k".to_string(),
        "b" | "g" => "idle".to_string(),
        "c" => "one-conn".to_string(),
        "d" => "aggregate".to_string(),
        "e" => "paced".to_string(),
        "f" => "handshake".to_string(),
        "client" => "client".to_string(),
        other => other.to_string(),
    });
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let loadgen_threads = match map.get("loadgen-threads") {
        None => cores,
        Some(v) => v
            .parse()
            .ok()
            .filter(|n: &usize| *n > 0)
            .ok_or_else(|| format!("--loadgen-threads {v:?}: give a thread count ≥ 1"))?,
    };
    Ok(Opts {
        paths: Paths {
            effex: path("effex")?,
            loadgen: path("loadgen")?,
            peer: path("peer")?,
            node_dir: path("node-dir")?,
            pushsource: path("pushsource")?,
            client_effex: path("client-effex")?,
        },
        quick,
        only,
        busy,
        loadgen_threads,
    })
}

// ---------------------------------------------------------------- servers

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// `effex serve`; `None` workers = its default (one per core).
    Effex(Option<usize>),
    Node,
    Sioxide,
}

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::Effex(None) => "effex".into(),
            Kind::Effex(Some(n)) => format!("effex --workers {n}"),
            Kind::Node => "Node socket.io 4.8.4".into(),
            Kind::Sioxide => "socketioxide 0.18".into(),
        }
    }
}

struct Server {
    child: Child,
    /// Kept open: the Node peer exits when its stdin closes.
    _stdin: Option<ChildStdin>,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// `GET /ping` answered 200.
fn ping(port: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    if tcp
        .write_all(b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Starts a server with the given Engine.IO ping interval and waits until it
/// answers `GET /ping`.
fn start(kind: Kind, paths: &Paths, ping_ms: u64) -> Result<Server, String> {
    let port = free_port()?;
    let log = std::env::temp_dir().join(format!(
        "effex-bench-{}.log",
        kind.label().replace([' ', '.'], "-")
    ));
    let log_file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let ping_timeout_ms = 20_000;
    let mut command = match kind {
        Kind::Effex(workers) => {
            let mut c = Command::new(&paths.effex);
            c.args([
                "serve",
                "--port",
                &port.to_string(),
                "--boss-key",
                BOSS,
                "--passphrase",
                PASS,
            ]);
            c.args(["--ping-interval", &format!("{}", ping_ms as f64 / 1000.0)]);
            c.args([
                "--ping-timeout",
                &format!("{}", ping_timeout_ms as f64 / 1000.0),
            ]);
            c.args(["--log-level", "warn"]);
            // The limits meant for untrusted clients would refuse a load
            // generator on one address: lift them (the peers have none).
            for (flag, value) in [
                ("--max-connections", "1000000"),
                ("--max-connections-per-address", "1000000"),
                ("--requests-per-second-per-address", "100000000"),
                ("--request-burst-per-address", "100000000"),
                ("--writes-per-second-per-key", "100000000"),
                ("--write-burst-per-key", "100000000"),
            ] {
                c.args([flag, value]);
            }
            if let Some(n) = workers {
                c.args(["--workers", &n.to_string()]);
            }
            c
        }
        Kind::Node => {
            let mut c = Command::new("node");
            c.arg(paths.node_dir.join("server.js"));
            c.arg(format!("--port={port}"));
            c.arg(format!("--pass={PASS}"));
            c.arg(format!("--boss-key={BOSS}"));
            c.arg(format!("--ping-interval={ping_ms}"));
            c.arg(format!("--ping-timeout={ping_timeout_ms}"));
            c
        }
        Kind::Sioxide => {
            let mut c = Command::new(&paths.peer);
            c.args([
                "--port",
                &port.to_string(),
                "--pass",
                PASS,
                "--boss-key",
                BOSS,
            ]);
            c.args(["--ping-interval", &ping_ms.to_string()]);
            c.args(["--ping-timeout", &ping_timeout_ms.to_string()]);
            c
        }
    };
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file));
    let mut child = command.spawn().map_err(|e| match kind {
        Kind::Node => format!(
            "cannot start node ({e}): install Node.js 18 or later and run `npm ci` in bench/node"
        ),
        _ => format!("cannot start {}: {e}", kind.label()),
    })?;
    let stdin = child.stdin.take();
    let mut server = Server {
        child,
        _stdin: stdin,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ping(port) {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!(
                "{} exited ({status}); see {}",
                kind.label(),
                log.display()
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not answer GET /ping within 20 s; see {}",
                kind.label(),
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(server)
}

// ---------------------------------------------------------------- /proc

/// Clock ticks per second of /proc/<pid>/stat's utime/stime.
fn ticks_per_s() -> u64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// A process's user + system CPU time in µs, all its threads (live and
/// exited), from /proc/<pid>/stat.
fn cpu_us(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> u64 { fields.get(n - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    Ok((field(14) + field(15)) * 1_000_000 / ticks_per_s())
}

/// (Rss, Pss) in KiB from /proc/<pid>/smaps_rollup.
fn memory_kib(pid: u32) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .map_err(|e| format!("/proc/{pid}/smaps_rollup: {e}"))?;
    let get = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((get("Rss:"), get("Pss:")))
}

fn hard_nofile() -> u64 {
    // SAFETY: getrlimit only writes the struct we hand it.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_max
        } else {
            0
        }
    }
}

/// Raises this process's (and so its children's) open-file limit to the hard limit.
fn raise_nofile() -> u64 {
    // SAFETY: get/setrlimit only read and write the struct we hand them.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            return r.rlim_cur;
        }
    }
    0
}

// ---------------------------------------------------------------- one run

/// A child's stdout as JSON lines `{"event":…}`, read on a thread of its own.
struct JsonLines {
    rx: mpsc::Receiver<String>,
    who: &'static str,
}

impl JsonLines {
    /// Takes `child`'s stdout (it must be piped).
    fn of(child: &mut Child, who: &'static str) -> Result<JsonLines, String> {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| format!("{who}: no stdout"))?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(JsonLines { rx, who })
    }

    /// The next line whose `event` is `want`, skipping others; an `error`
    /// event, an ended stream or `deadline` passing is an error.
    fn next(&self, want: &str, deadline: Instant) -> Result<Value, String> {
        let who = self.who;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .rx
                .recv_timeout(left)
                .map_err(|_| format!("{who} sent no {want:?} in time (or exited; see above)"))?;
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match value["event"].as_str() {
                Some(e) if e == want => return Ok(value),
                Some("error") => {
                    return Err(format!("{who}: {}", value["error"].as_str().unwrap_or("?")))
                }
                _ => {}
            }
        }
    }
}

/// What one (server, workload) run measured.
#[derive(Default, Clone, Debug)]
struct Sample {
    /// The load generator's result line.
    result: Value,
    /// Server CPU time over the measured phase, µs.
    server_cpu_us: u64,
    /// The measured phase's length as the driver saw it (`go` → result), µs.
    server_wall_us: u64,
    /// Server memory (KiB) before the load generator started and at `ready`.
    mem_before: (u64, u64),
    mem_ready: (u64, u64),
}

impl Sample {
    fn num(&self, key: &str) -> f64 {
        self.result[key].as_f64().unwrap_or(f64::NAN)
    }
    /// The load generator's CPU over the measured phase, % of one core.
    fn loadgen_pct(&self) -> f64 {
        100.0 * self.num("loadgen_cpu_us") / self.num("wall_us")
    }
    /// The server's CPU over the measured phase, % of one core.
    fn server_pct(&self) -> f64 {
        100.0 * self.server_cpu_us as f64 / self.server_wall_us as f64
    }
    /// A cell: the figure with the server's and the load generator's CPU.
    fn cell(&self, value: f64) -> Cell {
        Cell {
            value,
            cpu: [self.server_pct(), self.loadgen_pct()],
        }
    }
}

/// Runs the load generator with `args` against a fresh `kind` server.
fn run_one(
    kind: Kind,
    opts: &Opts,
    ping_ms: u64,
    args: &[String],
    limit: Duration,
) -> Result<Sample, String> {
    let server = start(kind, &opts.paths, ping_ms)?;
    let pid = server.child.id();
    std::thread::sleep(Duration::from_millis(300));
    let mem_before = memory_kib(pid)?;
    let mut loadgen = Command::new(&opts.paths.loadgen)
        .arg("--addr")
        .arg(format!("127.0.0.1:{}", server.port))
        .args(["--boss", BOSS, "--pass", PASS])
        .args(["--threads", &opts.loadgen_threads.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the load generator: {e}"))?;
    let mut to_loadgen = loadgen.stdin.take();
    let lines = JsonLines::of(&mut loadgen, "the load generator")?;
    let deadline = Instant::now() + limit;
    let next = |want: &str| lines.next(want, deadline);
    let outcome = (|| {
        next("ready")?;
        let mem_ready = memory_kib(pid)?;
        let cpu0 = cpu_us(pid)?;
        let wall0 = Instant::now();
        if let Some(stdin) = to_loadgen.as_mut() {
            writeln!(stdin, "go").map_err(|e| format!("loadgen stdin: {e}"))?;
        }
        let result = next("result")?;
        let cpu1 = cpu_us(pid)?;
        Ok(Sample {
            result,
            server_cpu_us: cpu1.saturating_sub(cpu0),
            server_wall_us: wall0.elapsed().as_micros() as u64,
            mem_before,
            mem_ready,
        })
    })();
    drop(to_loadgen);
    let stop = Instant::now() + Duration::from_secs(5);
    while loadgen.try_wait().ok().flatten().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = loadgen.kill();
    let _ = loadgen.wait();
    drop(server);
    outcome
}

// ---------------------------------------------------------------- client workloads

/// A child process killed (and reaped) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The clients of the client workloads.
#[derive(Clone, Copy, PartialEq, Debug)]
enum ClientKind {
    /// bench/client-effex: `ConnectionActor` + `SubscriberActor` + a `Recipient<Push>` handler.
    Effex,
    /// bench/node/client.js: socket.io-client 4.8.4.
    Node,
}

impl ClientKind {
    fn label(self) -> &'static str {
        match self {
            ClientKind::Effex => "effex client",
            ClientKind::Node => "Node socket.io-client 4.8.4",
        }
    }
}

/// What one (client, workload) run measured.
struct ClientSample {
    /// The push source's result line (rate, push → ack, its CPU).
    source: Value,
    /// The client's result line (pushes handled, push → handler).
    client: Value,
    /// The client process's CPU time over the measured phase (/proc), µs.
    client_cpu_us: u64,
    /// The measured phase as the driver saw it (`go` → source result), µs.
    wall_us: u64,
}

impl ClientSample {
    fn source(&self, key: &str) -> f64 {
        self.source[key].as_f64().unwrap_or(f64::NAN)
    }
    fn client(&self, key: &str) -> f64 {
        self.client[key].as_f64().unwrap_or(f64::NAN)
    }
    /// The client's CPU per push handled and acked, µs.
    fn client_cpu_per_push(&self) -> f64 {
        self.client_cpu_us as f64 / self.source("acked")
    }
    /// A cell: the figure with the client's and the source's CPU.
    fn cell(&self, value: f64) -> Cell {
        Cell {
            value,
            cpu: [
                100.0 * self.client_cpu_us as f64 / self.wall_us as f64,
                100.0 * self.source("source_cpu_us") / self.source("wall_us"),
            ],
        }
    }
}

/// A client workload: the push source's arguments and the rows it makes.
struct ClientWorkload {
    id: &'static str,
    title: String,
    args: Vec<String>,
    limit: Duration,
    metrics: Vec<ClientMetric>,
}

/// A client row: name, which way is better, decimals, absolute goal, and
/// how to read it from a sample.
type ClientMetric = (
    &'static str,
    Better,
    usize,
    Option<f64>,
    fn(&ClientSample) -> f64,
);

fn client_workloads(quick: bool) -> Vec<ClientWorkload> {
    let seconds = if quick { 2 } else { 5 };
    let rate = if quick { 2_000 } else { 10_000 };
    vec![
        ClientWorkload {
            id: "client-rate",
            title: format!("(c) client: 1 conn × 1 watch, pushes as fast as acks allow (≤ 1,000 unacked), {seconds} s"),
            args: args(&[("workload", "rate".into()), ("seconds", seconds.to_string())]),
            limit: Duration::from_secs(120),
            metrics: vec![
                (
                    "acked pushes/s (handler ran)",
                    Better::Higher,
                    0,
                    Some(500_000.0),
                    |s| s.source("pushes_per_s"),
                ),
                (
                    "client CPU per push, µs",
                    Better::Lower,
                    2,
                    None,
                    ClientSample::client_cpu_per_push,
                ),
            ],
        },
        ClientWorkload {
            id: "client-paced",
            title: format!("(e) client: paced {rate} pushes/s, 1 conn × 1 watch, {seconds} s"),
            args: args(&[
                ("workload", "paced".into()),
                ("rate", rate.to_string()),
                ("seconds", seconds.to_string()),
            ]),
            limit: Duration::from_secs(120),
            metrics: vec![
                ("push → handler, p50 µs", Better::Lower, 0, None, |s| s.client("p50_us")),
                ("push → handler, p99 µs", Better::Lower, 0, None, |s| s.client("p99_us")),
                ("push → ack read by the source, p50 µs", Better::Lower, 0, None, |s| s.source("p50_us")),
                ("push → ack read by the source, p99 µs", Better::Lower, 0, None, |s| s.source("p99_us")),
                (
                    "client CPU per push, µs",
                    Better::Lower,
                    2,
                    None,
                    ClientSample::client_cpu_per_push,
                ),
            ],
        },
    ]
}

/// Runs a client against a fresh push source started with `args`.
fn run_client(
    kind: ClientKind,
    opts: &Opts,
    args: &[String],
    limit: Duration,
) -> Result<ClientSample, String> {
    let deadline = Instant::now() + limit;
    let mut source = Reaped(
        Command::new(&opts.paths.pushsource)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the push source: {e}"))?,
    );
    let mut to_source = source.0.stdin.take();
    let source_lines = JsonLines::of(&mut source.0, "the push source")?;
    let port = source_lines.next("listening", deadline)?["port"]
        .as_u64()
        .ok_or("the push source did not say its port")?;
    let (item, key) = ("bench", "bench-key");
    let mut command = match kind {
        ClientKind::Effex => {
            let mut c = Command::new(&opts.paths.client_effex);
            c.args([
                "--url",
                &format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"),
                "--pass",
                PASS,
                "--item",
                item,
                "--key",
                key,
            ]);
            c
        }
        ClientKind::Node => {
            let mut c = Command::new("node");
            c.arg(opts.paths.node_dir.join("client.js"));
            c.arg(format!("--url=http://127.0.0.1:{port}"));
            c.arg(format!("--pass={PASS}"));
            c.arg(format!("--item={item}"));
            c.arg(format!("--key={key}"));
            c
        }
    };
    let mut client = Reaped(
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {}: {e}", kind.label()))?,
    );
    let _to_client = client.0.stdin.take();
    let client_lines = JsonLines::of(&mut client.0, kind.label())?;
    let pid = client.0.id();
    source_lines.next("ready", deadline)?;
    client_lines.next("ready", deadline)?;
    let cpu0 = cpu_us(pid)?;
    let wall0 = Instant::now();
    if let Some(stdin) = to_source.as_mut() {
        writeln!(stdin, "go").map_err(|e| format!("push source stdin: {e}"))?;
    }
    let source_result = source_lines.next("result", deadline)?;
    let wall_us = wall0.elapsed().as_micros() as u64;
    let cpu1 = cpu_us(pid)?;
    let client_result = client_lines.next("result", deadline)?;
    drop(to_source);
    Ok(ClientSample {
        source: source_result,
        client: client_result,
        client_cpu_us: cpu1.saturating_sub(cpu0),
        wall_us,
    })
}

// ---------------------------------------------------------------- the table

#[derive(Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
}

/// One figure and the CPU (% of one core, over the measured phase) of the
/// two processes in the run, labelled by the row's `cpu_labels`.
#[derive(Clone, Copy, Debug)]
struct Cell {
    value: f64,
    cpu: [f64; 2],
}

/// One row: a metric of a workload, a value per column (server workloads:
/// effex, Node, socketioxide; client workloads: effex client, Node client).
struct Row {
    name: String,
    better: Better,
    unit_digits: usize,
    cells: Vec<Option<Result<Cell, String>>>,
    /// What the two CPU figures of each cell are: `["srv", "lg"]` (server,
    /// load generator) or `["cli", "src"]` (client, push source).
    cpu_labels: [&'static str; 2],
    /// Absolute goal for effex and the least ratio to the best peer.
    goal_abs: Option<f64>,
    goal_ratio: Option<f64>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        let effex = self.cells[0].as_ref()?.as_ref().ok()?.value;
        let peers: Vec<f64> = self.cells[1..]
            .iter()
            .filter_map(|c| c.as_ref()?.as_ref().ok().map(|v| v.value))
            .filter(|v| v.is_finite())
            .collect();
        let best = match self.better {
            Better::Lower => peers.iter().cloned().fold(f64::INFINITY, f64::min),
            Better::Higher => peers.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        };
        if !best.is_finite() || !effex.is_finite() || effex <= 0.0 {
            return None;
        }
        Some(match self.better {
            Better::Lower => best / effex,
            Better::Higher => effex / best,
        })
    }

    fn goal_text(&self) -> String {
        let cmp = if self.better == Better::Lower {
            "≤"
        } else {
            "≥"
        };
        let mut parts = Vec::new();
        if let Some(g) = self.goal_abs {
            parts.push(format!("{cmp} {}", fmt_num(g, self.unit_digits)));
        }
        if let Some(r) = self.goal_ratio {
            parts.push(format!("×best ≥ {r}"));
        }
        if parts.is_empty() {
            return "—".into();
        }
        parts.join(", ")
    }

    fn met(&self) -> &'static str {
        if self.goal_abs.is_none() && self.goal_ratio.is_none() {
            return "—";
        }
        let Some(Ok(Cell { value: effex, .. })) = &self.cells[0] else {
            return "not measured";
        };
        let abs_ok = self.goal_abs.is_none_or(|g| match self.better {
            Better::Lower => *effex <= g,
            Better::Higher => *effex >= g,
        });
        let ratio_ok = match self.goal_ratio {
            None => true,
            Some(r) => self.ratio().is_some_and(|x| x >= r),
        };
        if abs_ok && ratio_ok {
            "met"
        } else {
            "not met"
        }
    }
}

fn fmt_num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let text = format!("{v:.digits$}");
    // Thousands separators on the integer part.
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut out = String::new();
    for (n, ch) in int.chars().enumerate() {
        if n > 0 && (int.len() - n) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

fn cell_text(cell: &Option<Result<Cell, String>>, digits: usize, labels: [&str; 2]) -> String {
    match cell {
        None => "—".into(),
        Some(Err(_)) => "error".into(),
        Some(Ok(c)) => {
            let cpu: Vec<String> = labels
                .iter()
                .zip(c.cpu)
                .filter(|(_, pct)| pct.is_finite())
                .map(|(label, pct)| format!("{label} {pct:.0}%"))
                .collect();
            if cpu.is_empty() {
                fmt_num(c.value, digits)
            } else {
                format!("{} ({})", fmt_num(c.value, digits), cpu.join(", "))
            }
        }
    }
}

// ---------------------------------------------------------------- workloads

struct Workload {
    id: &'static str,
    title: String,
    args: Vec<String>,
    ping_ms: u64,
    limit: Duration,
    /// Extra effex worker counts to run besides the default.
    effex_workers: Vec<usize>,
}

fn args(list: &[(&str, String)]) -> Vec<String> {
    list.iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.clone()])
        .collect()
}

/// A metric read from a sample.
type Metric = fn(&Sample, &Workload) -> f64;

/// A row's metric: name, which way is better, decimals, absolute goal, least
/// ratio to the best peer, and how to read it from a sample.
type MetricSpec = (
    &'static str,
    Better,
    usize,
    Option<f64>,
    Option<f64>,
    Metric,
);

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let nofile = raise_nofile();
    let q = opts.quick;
    let pick = |full: usize, quick: usize| if q { quick } else { full };
    // Idle connections for (b)/(g): 10,000 and 50,000 when the open-file
    // limit allows (each side needs one descriptor per connection).
    let idle_counts: Vec<usize> = if q { vec![1_000] } else { vec![10_000, 50_000] };
    let idle_ping_ms: u64 = if q { 1_000 } else { 2_000 };
    let idle_seconds: u64 = if q { 5 } else { 30 };
    let mut workloads = vec![
        Workload {
            id: "a1k",
            title: format!(
                "(a) fan-out {} conns × 1 watch, {} rounds",
                pick(1000, 200),
                pick(100, 20)
            ),
            args: args(&[
                ("workload", "fanout".into()),
                ("conns", pick(1000, 200).to_string()),
                ("rounds", pick(100, 20).to_string()),
            ]),
            ping_ms: 25_000,
            limit: Duration::from_secs(600),
            effex_workers: vec![1],
        },
        Workload {
            id: "a10k",
            title: format!(
                "(a) fan-out {} conns × 1 watch, {} rounds",
                pick(10_000, 2_000),
                pick(100, 5)
            ),
            args: args(&[
                ("workload", "fanout".into()),
                ("conns", pick(10_000, 2_000).to_string()),
                ("rounds", pick(100, 5).to_string()),
                ("sources", "4".into()),
            ]),
            ping_ms: 25_000,
            limit: Duration::from_secs(900),
            effex_workers: vec![],
        },
    ];
    for n in &idle_counts {
        workloads.push(Workload {
            id: "idle",
            title: format!(
                "(b)/(g) {} idle passed conns, ping every {} ms, {} s",
                fmt_num(*n as f64, 0),
                idle_ping_ms,
                idle_seconds
            ),
            args: args(&[
                ("workload", "idle".into()),
                ("conns", n.to_string()),
                ("seconds", idle_seconds.to_string()),
                ("sources", (n / 4000 + 1).to_string()),
            ]),
            ping_ms: idle_ping_ms,
            limit: Duration::from_secs(900),
            effex_workers: vec![],
        });
    }
    workloads.extend([
        Workload {
            id: "handshake",
            title: format!("(f) handshake, {} fresh sockets in turn", pick(1000, 200)),
            args: args(&[
                ("workload", "handshake".into()),
                ("count", pick(1000, 200).to_string()),
                ("sources", "4".into()),
            ]),
            ping_ms: 25_000,
            limit: Duration::from_secs(300),
            effex_workers: vec![],
        },
        Workload {
            id: "one-conn",
            title: format!(
                "(c) 1 conn × 100 watches of 1 item, updates at max rate, {} s",
                pick(5, 2)
            ),
            args: args(&[
                ("workload", "throughput".into()),
                ("conns", "1".into()),
                ("watches", "1".into()),
                ("keys", "100".into()),
                ("seconds", pick(5, 2).to_string()),
                ("http-conns", "4".into()),
            ]),
            ping_ms: 25_000,
            limit: Duration::from_secs(300),
            effex_workers: vec![],
        },
        Workload {
            id: "aggregate",
            title: format!(
                "(d) 100 conns × 10 watches, updates at max rate, {} s",
                pick(5, 2)
            ),
            args: args(&[
                ("workload", "throughput".into()),
                ("conns", "100".into()),
                ("watches", "10".into()),
                ("seconds", pick(5, 2).to_string()),
                ("http-conns", "4".into()),
            ]),
            ping_ms: 25_000,
            limit: Duration::from_secs(300),
            effex_workers: vec![1],
        },
        Workload {
            id: "paced",
            title: format!(
                "(e) paced {} updates/s, 1 conn × 1 watch, {} s",
                pick(10_000, 2_000),
                pick(5, 2)
            ),
            args: args(&[
                ("workload", "paced".into()),
                ("rate", pick(10_000, 2_000).to_string()),
                ("seconds", pick(5, 2).to_string()),
                ("http-conns", "8".into()),
            ]),
            ping_ms: 25_000,
            limit: Duration::from_secs(300),
            effex_workers: vec![1],
        },
    ]);
    let mut client_workloads = client_workloads(q);
    if let Some(only) = &opts.only {
        workloads.retain(|w| w.id == only);
        client_workloads.retain(|w| w.id == only || only == "client");
        if workloads.is_empty() && client_workloads.is_empty() {
            eprintln!("compare: unknown workload {only:?} (a1k a10k idle handshake one-conn aggregate paced client-rate client-paced client, or a–g)");
            std::process::exit(2);
        }
    }

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let machine = machine_line(opts.busy, nofile);
    eprintln!("{machine}");
    let mut rows: Vec<Row> = Vec::new();
    let mut g_rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut worker_notes: Vec<String> = Vec::new();
    let mut worker_verdicts: Vec<(String, WorkerVerdict)> = Vec::new();

    for w in &workloads {
        // (b)/(g) beyond the open-file limit: say so, measure nothing.
        if w.id == "idle" {
            let n: u64 = w.args[w
                .args
                .iter()
                .position(|a| a == "--conns")
                .map_or(0, |i| i + 1)]
            .parse()
            .unwrap_or(0);
            if n + 1_000 > nofile {
                notes.push(format!("{}: not run — the open-file limit is {nofile} (hard) and each side needs one descriptor per connection; raise the hard limit (e.g. `ulimit -Hn 200000` as root, or LimitNOFILE) to run it", w.title));
                continue;
            }
        }
        let mut kinds = vec![Kind::Effex(None)];
        kinds.extend(w.effex_workers.iter().map(|n| Kind::Effex(Some(*n))));
        kinds.extend([Kind::Node, Kind::Sioxide]);
        let mut samples: Vec<(Kind, Result<Sample, String>)> = Vec::new();
        for kind in kinds {
            eprintln!("· {} — {}", w.title, kind.label());
            let sample = run_one(kind, &opts, w.ping_ms, &w.args, w.limit);
            match &sample {
                Ok(s) => {
                    eprintln!("  server CPU {} µs, result {}", s.server_cpu_us, s.result);
                    let missing = s.result["missing"].as_u64().unwrap_or(0);
                    let closed = s.result["closed"].as_u64().unwrap_or(0);
                    if missing > 0 || closed > 0 {
                        notes.push(format!("{} — {}: {missing} pushes missing, {closed} connections closed by the server", w.title, kind.label()));
                    }
                }
                Err(e) => {
                    eprintln!("  error: {e}");
                    notes.push(format!("{} — {}: {e}", w.title, kind.label()));
                }
            }
            samples.push((kind, sample));
        }
        let metrics: Vec<MetricSpec> = match w.id {
            "a1k" | "a10k" => vec![
                (
                    "server CPU per pushed+acked frame, µs",
                    Better::Lower,
                    2,
                    Some(5.0),
                    Some(4.0),
                    |s, _| s.server_cpu_us as f64 / s.num("frames"),
                ),
                (
                    "update → last push read, p50 ms",
                    Better::Lower,
                    2,
                    None,
                    None,
                    |s, _| s.num("p50_us") / 1000.0,
                ),
                (
                    "update → last push read, p99 ms",
                    Better::Lower,
                    2,
                    None,
                    None,
                    |s, _| s.num("p99_us") / 1000.0,
                ),
            ],
            "idle" => vec![
                (
                    "server memory per idle passed conn, KiB (Rss)",
                    Better::Lower,
                    1,
                    Some(8.0),
                    Some(2.0),
                    |s, _| (s.mem_ready.0 as f64 - s.mem_before.0 as f64) / s.num_conns(),
                ),
                (
                    "server memory per idle passed conn, KiB (Pss)",
                    Better::Lower,
                    1,
                    None,
                    None,
                    |s, _| (s.mem_ready.1 as f64 - s.mem_before.1 as f64) / s.num_conns(),
                ),
            ],
            "handshake" => vec![
                (
                    "fresh socket → passed, p50 µs",
                    Better::Lower,
                    0,
                    Some(250.0),
                    None,
                    |s, _| s.num("p50_us"),
                ),
                (
                    "fresh socket → passed, p99 µs",
                    Better::Lower,
                    0,
                    Some(1000.0),
                    None,
                    |s, _| s.num("p99_us"),
                ),
                (
                    "server CPU per handshake, µs",
                    Better::Lower,
                    0,
                    None,
                    None,
                    |s, _| s.server_cpu_us as f64 / s.num("handshakes"),
                ),
            ],
            "one-conn" => vec![
                (
                    "acked pushes/s",
                    Better::Higher,
                    0,
                    Some(500_000.0),
                    None,
                    |s, _| s.num("pushes_per_s"),
                ),
                (
                    "server CPU per acked push, µs",
                    Better::Lower,
                    2,
                    None,
                    None,
                    |s, _| s.server_cpu_us as f64 / s.num("pushes"),
                ),
            ],
            "aggregate" => vec![
                (
                    "pushes delivered+acked/s",
                    Better::Higher,
                    0,
                    None,
                    Some(5.0),
                    |s, _| s.num("pushes_per_s"),
                ),
                (
                    "server CPU per acked push, µs",
                    Better::Lower,
                    2,
                    None,
                    None,
                    |s, _| s.server_cpu_us as f64 / s.num("pushes"),
                ),
            ],
            "paced" => vec![
                (
                    "update → push read, p50 µs",
                    Better::Lower,
                    0,
                    Some(80.0),
                    None,
                    |s, _| s.num("p50_us"),
                ),
                (
                    "update → push read, p99 µs",
                    Better::Lower,
                    0,
                    Some(250.0),
                    None,
                    |s, _| s.num("p99_us"),
                ),
                (
                    "updates/s achieved",
                    Better::Higher,
                    0,
                    None,
                    None,
                    |s, _| s.num("achieved_rate"),
                ),
            ],
            _ => vec![],
        };
        let effex_variants: Vec<Kind> = samples
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| matches!(k, Kind::Effex(_)))
            .collect();
        for variant in &effex_variants {
            for (name, better, digits, goal_abs, goal_ratio, metric) in &metrics {
                let cell = |kind: Kind| -> Option<Result<Cell, String>> {
                    let (_, s) = samples.iter().find(|(k, _)| *k == kind)?;
                    Some(match s {
                        Ok(s) => Ok(s.cell(metric(s, w))),
                        Err(e) => Err(e.clone()),
                    })
                };
                let label = match variant {
                    Kind::Effex(None) => String::new(),
                    other => format!(" [{}]", other.label()),
                };
                rows.push(Row {
                    name: format!("{} — {name}{label}", w.title),
                    better: *better,
                    unit_digits: *digits,
                    cells: vec![cell(*variant), cell(Kind::Node), cell(Kind::Sioxide)],
                    cpu_labels: ["srv", "lg"],
                    goal_abs: *goal_abs,
                    goal_ratio: *goal_ratio,
                });
            }
        }
        if effex_variants.len() > 1 {
            let (note, verdict) = workers_note(w, &samples);
            worker_notes.push(note);
            let id = w.title.split_whitespace().next().unwrap_or("?").to_string();
            worker_verdicts.push((id, verdict));
        }
        if w.id == "idle" {
            g_rows.push(idle_cpu_row(w, &samples, idle_ping_ms));
        }
    }
    rows.extend(g_rows);

    let mut client_rows: Vec<Row> = Vec::new();
    for w in &client_workloads {
        let mut samples = Vec::new();
        for kind in [ClientKind::Effex, ClientKind::Node] {
            eprintln!("· {} — {}", w.title, kind.label());
            let sample = run_client(kind, &opts, &w.args, w.limit);
            match &sample {
                Ok(s) => eprintln!(
                    "  client CPU {} µs, source {}, client {}",
                    s.client_cpu_us, s.source, s.client
                ),
                Err(e) => {
                    eprintln!("  error: {e}");
                    notes.push(format!("{} — {}: {e}", w.title, kind.label()));
                }
            }
            samples.push(sample);
        }
        for (name, better, digits, goal_abs, metric) in &w.metrics {
            client_rows.push(Row {
                name: format!("{} — {name}", w.title),
                better: *better,
                unit_digits: *digits,
                cells: samples
                    .iter()
                    .map(|s| {
                        Some(match s {
                            Ok(s) => Ok(s.cell(metric(s))),
                            Err(e) => Err(e.clone()),
                        })
                    })
                    .collect(),
                cpu_labels: ["cli", "src"],
                goal_abs: *goal_abs,
                goal_ratio: None,
            });
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "{machine}\n");
    if !rows.is_empty() {
        write_table(
            &mut out,
            &[
                "workload — metric",
                "effex",
                "Node socket.io 4.8.4",
                "socketioxide 0.18",
                "effex ÷ best peer (>1: effex better)",
            ],
            &rows,
        );
    }
    if !client_rows.is_empty() {
        if !rows.is_empty() {
            let _ = writeln!(out);
        }
        write_table(
            &mut out,
            &[
                "client workload — metric",
                "effex client (ConnectionActor + SubscriberActor)",
                "Node socket.io-client 4.8.4",
                "effex ÷ Node (>1: effex better)",
            ],
            &client_rows,
        );
        let _ = writeln!(out, "\nClient workloads: each client against the same lean push source (bench/pushsource, raw frames, one thread), one connection, one watch; the client's handler runs, then the push is acked. `cli N%`, `src N%`: the client's and the push source's own CPU over the measured phase, % of one core. Push → handler: the source stamps CLOCK_MONOTONIC into each push, the handler reads it.");
    }
    if !rows.is_empty() {
        let _ = writeln!(out, "\n`srv N%`, `lg N%`: the server's and the load generator's ({} runtime threads) own CPU over the measured phase, % of one core (all threads; on {} cores the two compete, so a sum near {}% means the machine, not one side, set the pace; `lg` near {}% means the load generator did). Server CPU: utime+stime of the server process over the measured phase (connection setup excluded).", opts.loadgen_threads, cores, cores * 100, opts.loadgen_threads * 100);
    }
    for note in worker_notes.iter().chain(notes.iter()) {
        let _ = writeln!(out, "- {note}");
    }
    if !worker_verdicts.is_empty() {
        let _ = writeln!(out, "\n{}", workers_summary(&worker_verdicts, opts.busy));
    }
    println!("{out}");
}

/// Appends a Markdown table: the given columns, then goal and met.
fn write_table(out: &mut String, columns: &[&str], rows: &[Row]) {
    let _ = writeln!(out, "| {} | goal | met |", columns.join(" | "));
    let _ = writeln!(out, "|---|{}---|---|", "---:|".repeat(columns.len() - 1));
    for row in rows {
        let ratio = row.ratio().map_or("n/a".into(), |r| format!("{r:.2}×"));
        let cells: Vec<String> = row
            .cells
            .iter()
            .map(|c| cell_text(c, row.unit_digits, row.cpu_labels))
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {ratio} | {} | {} |",
            row.name,
            cells.join(" | "),
            row.goal_text(),
            row.met()
        );
    }
}

impl Sample {
    fn num_conns(&self) -> f64 {
        self.result["conns"].as_f64().unwrap_or(f64::NAN)
    }
}

/// What one workload's runs say about effex's default worker count.
#[derive(Clone, Copy, PartialEq, Debug)]
enum WorkerVerdict {
    /// The default (one worker per core) did clearly better.
    PerCore,
    /// One worker did clearly better.
    One,
    /// Within the noise margin (or a run failed): no reason to change.
    Even,
}

/// Differences smaller than this fraction are read as noise.
const WORKER_MARGIN: f64 = 0.05;

/// The figure that decides a workload's worker count, higher = better:
/// (a) the update → last push p50 (the time a fan-out takes; the server CPU
/// per frame is printed beside it), (d) pushes delivered and acked per
/// second, (e) the update → push p99 (the paced goal's harder half).
fn worker_score(id: &str, s: &Sample) -> f64 {
    match id {
        "aggregate" => s.num("pushes_per_s"),
        "paced" => -s.num("p99_us"),
        _ => -s.num("p50_us"),
    }
}

/// Which effex worker count did better on a workload, with the figures, and
/// the verdict for the default.
fn workers_note(
    w: &Workload,
    samples: &[(Kind, Result<Sample, String>)],
) -> (String, WorkerVerdict) {
    let mut parts = Vec::new();
    let mut per_core: Option<f64> = None;
    let mut one: Option<f64> = None;
    for (kind, s) in samples {
        let Kind::Effex(workers) = kind else { continue };
        let Ok(s) = s else { continue };
        let label = workers.map_or("one per core (default)".to_string(), |n| n.to_string());
        let score = worker_score(w.id, s);
        match workers {
            None => per_core = Some(score),
            Some(1) => one = Some(score),
            Some(_) => {}
        }
        let figure = match w.id {
            "aggregate" => format!(
                "{} pushes/s, {:.2} µs CPU/push",
                fmt_num(s.num("pushes_per_s"), 0),
                s.server_cpu_us as f64 / s.num("pushes")
            ),
            "paced" => format!(
                "p50 {} µs, p99 {} µs",
                fmt_num(s.num("p50_us"), 0),
                fmt_num(s.num("p99_us"), 0)
            ),
            _ => format!(
                "{:.2} µs CPU/frame, p50 {:.2} ms",
                s.server_cpu_us as f64 / s.num("frames"),
                s.num("p50_us") / 1000.0
            ),
        };
        parts.push(format!("workers {label}: {figure}"));
    }
    let by = match w.id {
        "aggregate" => "pushes/s",
        "paced" => "p99",
        _ => "p50",
    };
    let verdict = match (per_core, one) {
        (Some(d), Some(o)) if d.is_finite() && o.is_finite() => {
            // Scores are rates (positive) or negated times (negative).
            let (d, o) = (d.abs(), o.abs());
            let gain = if w.id == "aggregate" {
                o / d - 1.0
            } else {
                d / o - 1.0
            };
            if gain > WORKER_MARGIN {
                WorkerVerdict::One
            } else if gain < -WORKER_MARGIN {
                WorkerVerdict::PerCore
            } else {
                WorkerVerdict::Even
            }
        }
        _ => WorkerVerdict::Even,
    };
    let says = match verdict {
        WorkerVerdict::PerCore => format!(
            "supports the default of one worker per core (better {by} by more than {:.0}%)",
            WORKER_MARGIN * 100.0
        ),
        WorkerVerdict::One => format!(
            "supports a default of one worker (better {by} by more than {:.0}%)",
            WORKER_MARGIN * 100.0
        ),
        WorkerVerdict::Even => format!(
            "no difference beyond {:.0}% in {by}: no reason to change the default",
            WORKER_MARGIN * 100.0
        ),
    };
    (
        format!(
            "effex worker count, {}: {} — {says}",
            w.title,
            parts.join("; ")
        ),
        verdict,
    )
}

/// The one line that says which default worker count the measured
/// workloads (`(id, verdict)`: "(a)", "(d)", "(e)") support together.
fn workers_summary(verdicts: &[(String, WorkerVerdict)], busy: bool) -> String {
    let count = |v: WorkerVerdict| verdicts.iter().filter(|(_, x)| *x == v).count();
    let from: Vec<&str> = verdicts.iter().map(|(id, _)| id.as_str()).collect();
    let (per_core, one) = (count(WorkerVerdict::PerCore), count(WorkerVerdict::One));
    let choice = if one > 0 && per_core == 0 {
        "one worker (`--workers 1`) as effex's default"
    } else if per_core > 0 && one == 0 {
        "keeping effex's default of one worker per core"
    } else if per_core == 0 && one == 0 {
        "keeping effex's default of one worker per core (no workload showed a difference beyond the noise margin)"
    } else {
        "no single default: the workloads disagree (see the lines above); keep one worker per core and rerun on a quiet machine"
    };
    format!(
        "**effex default worker count, from {} on this machine: {choice}** ({per_core} favour one per core, {one} favour one worker, {} even){}",
        from.join(", "),
        verdicts.len() - per_core - one,
        if busy {
            " — busy machine: provisional, decide from a quiet run"
        } else {
            ""
        }
    )
}

/// (g) from the idle run: the server's CPU over the idle window, as % of one
/// core, scaled from the short ping interval to the default 25 s and from
/// the measured connection count to 50,000 (both linear: the heartbeat work
/// is one ping and one pong per connection per interval).
fn idle_cpu_row(w: &Workload, samples: &[(Kind, Result<Sample, String>)], ping_ms: u64) -> Row {
    let cell = |kind: Kind| -> Option<Result<Cell, String>> {
        let (_, s) = samples.iter().find(|(k, _)| *k == kind)?;
        Some(match s {
            Ok(s) => {
                let pct = 100.0 * s.server_cpu_us as f64 / s.num("wall_us");
                let scaled = pct * (ping_ms as f64 / 25_000.0) * (50_000.0 / s.num_conns());
                Ok(s.cell(scaled))
            }
            Err(e) => Err(e.clone()),
        })
    };
    Row {
        name: format!("(g) from {} — heartbeat CPU for 50,000 idle conns at the default 25 s ping, % of one core (scaled linearly)", w.title),
        better: Better::Lower,
        unit_digits: 2,
        cells: vec![cell(Kind::Effex(None)), cell(Kind::Node), cell(Kind::Sioxide)],
        cpu_labels: ["srv", "lg"],
        goal_abs: Some(5.0),
        goal_ratio: None,
    }
}

fn machine_line(busy: bool, nofile: u64) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let hard = hard_nofile();
    format!(
        "machine: {model}, {cores} cores, Linux {} · {} · open files {nofile} (hard {hard}){}",
        kernel.trim(),
        date.trim(),
        if busy {
            " · busy machine, provisional"
        } else {
            ""
        }
    )
}
