//! effex nodes as child processes of a benchmark: the benchmark program runs
//! itself again with [`NODE_ARG`] and serves one in-process [`Server`] there
//! (the library code `effex serve` runs), so each node has its own process,
//! runtime and threads, as in a deployment, and can be killed with SIGKILL.
//!
//! The parent calls [`Node::spawn`]; the program's `main` first calls
//! [`serve_if_node`], which serves when the arguments say so. A node prints
//! `listening <addr>` once it accepts connections, and exits when its stdin
//! closes (so a parent that dies leaves no node behind).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use effex::server::{Server, ServerConfig};

/// The first argument of a node process.
pub const NODE_ARG: &str = "--effex-node";

/// How long a node may take to start listening.
const START_BOUND: Duration = Duration::from_secs(20);

/// What a node runs on.
#[derive(Debug, Clone)]
pub enum NodeStore {
    /// The embedded memory store (a node of its own).
    Memory,
    /// A Redis store at this URL (several nodes share it).
    Redis(String),
}

/// How every node of a run is set up.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The store.
    pub store: NodeStore,
    /// The boss key (the same on every node of one Redis).
    pub boss: String,
    /// The push passphrase.
    pub pass: String,
    /// HTTP worker threads.
    pub workers: usize,
    /// `ServerConfig::redis_sweep_interval`, when not its default.
    pub sweep_interval: Option<Duration>,
}

impl NodeSpec {
    fn args(&self) -> Vec<String> {
        let store = match &self.store {
            NodeStore::Memory => "memory".to_owned(),
            NodeStore::Redis(url) => url.clone(),
        };
        vec![
            NODE_ARG.to_owned(),
            store,
            self.workers.to_string(),
            self.boss.clone(),
            self.pass.clone(),
            self.sweep_interval
                .map_or("default".to_owned(), |i| i.as_micros().to_string()),
        ]
    }

    fn from_args(args: &[String]) -> Option<Self> {
        let [flag, store, workers, boss, pass, sweep_interval] = args else {
            return None;
        };
        if flag != NODE_ARG {
            return None;
        }
        Some(NodeSpec {
            store: match store.as_str() {
                "memory" => NodeStore::Memory,
                url => NodeStore::Redis(url.to_owned()),
            },
            workers: workers.parse().ok()?,
            boss: boss.clone(),
            pass: pass.clone(),
            sweep_interval: match sweep_interval.as_str() {
                "default" => None,
                micros => Some(Duration::from_micros(micros.parse().ok()?)),
            },
        })
    }
}

/// A node process of the benchmark's own; killed on drop.
pub struct Node {
    child: Child,
    addr: SocketAddr,
}

impl Node {
    /// Starts a node process and waits until it listens.
    pub async fn spawn(spec: &NodeSpec) -> Result<Node, String> {
        let exe = std::env::current_exe().map_err(|e| format!("find this program: {e}"))?;
        let mut child = Command::new(exe)
            .args(spec.args())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "error".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start a node process: {e}"))?;
        let stdout = child.stdout.take().ok_or("the node's stdout")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(read);
            // Keep reading (and dropping) so the node never blocks on a full pipe.
            let _ = std::io::copy(&mut reader.take(u64::MAX), &mut std::io::sink());
        });
        let line = match tokio::time::timeout(START_BOUND, rx).await {
            Ok(Ok(Ok(line))) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("a node did not start within {START_BOUND:?}"));
            }
        };
        let addr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("a node said {line:?} instead of its address"))?;
        Ok(Node { child, addr })
    }

    /// `http://<addr>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://<addr>` (the client adds the Socket.IO path).
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Kills the node with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's resident memory in bytes.
    pub fn rss(&self) -> Result<u64, String> {
        super::rss_of(self.child.id())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// In a node process (the arguments start with [`NODE_ARG`]): serves until
/// stdin closes, then exits the process; otherwise returns at once.
///
/// A node tunes glibc's allocator as `effex serve` does
/// ([`tune_malloc`](effex::server::tune_malloc)); the bench's own process,
/// which holds only clients, keeps glibc's defaults, as a client
/// application would (with fastbins off, glibc's `_int_malloc` and
/// `_int_free` were ~40% of the bench's push-client thread in (c)).
pub async fn serve_if_node() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(spec) = NodeSpec::from_args(&args) else {
        return;
    };
    effex::server::tune_malloc();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let mut config = ServerConfig {
        passphrase: Some(spec.pass.clone()),
        boss_key: Some(spec.boss.clone()),
        workers: spec.workers,
        ..ServerConfig::default()
    };
    if let NodeStore::Redis(url) = &spec.store {
        config.redis_url = Some(url.clone());
    }
    if let Some(interval) = spec.sweep_interval {
        config.redis_sweep_interval = interval;
    }
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("bench node: {e}");
            std::process::exit(1);
        }
    };
    println!("listening {}", server.addr());
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    std::future::pending::<()>().await;
}
