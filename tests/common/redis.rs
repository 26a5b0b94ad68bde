//! A `redis-server` of a test's own: started on a free port of 127.0.0.1 in
//! a temporary directory (no RDB snapshots, AOF on with `appendfsync always`,
//! so a restart after `kill -9` keeps every acknowledged write), never a
//! system service; killed and its directory removed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::poll::poll_within;

/// How long a fresh `redis-server` may take to answer.
const START_BOUND: Duration = Duration::from_secs(10);

/// A running `redis-server` owned by the test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// More `redis-server` arguments (see [`RedisServer::start_with`]).
    extra: Vec<String>,
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port on 127.0.0.1")
        .port()
}

/// Whether a Redis on `port` answers PING.
async fn answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if stream.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].starts_with(b"+PONG"),
        _ => false,
    }
}

impl RedisServer {
    /// Starts a `redis-server`; panics naming the Debian package when the
    /// binary is missing.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a `redis-server` with `extra` arguments after the usual ones
    /// (e.g. `--rename-command FUNCTION ""` for a Redis without functions).
    pub async fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "effex-redis-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir for redis-server");
        for _ in 0..5 {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                dir: dir.clone(),
                extra: extra.iter().map(|a| a.to_string()).collect(),
            };
            if server.spawn().await {
                return server;
            }
            server.dir = PathBuf::new(); // keep the dir for the next try
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    /// Spawns redis-server on `self.port`; true once it answers.
    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: install the Debian package `redis-server` \
                 (apt-get install -y redis-server) to run the Redis tests"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        let port = self.port;
        let up = poll_within(
            START_BOUND,
            || async move { answers(port).await.then_some(()) },
        )
        .await
        .is_some();
        if !up {
            self.kill();
        }
        up
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A Redis store's config for this server with `boss` as the boss key
    /// and every other setting at its default.
    #[cfg(feature = "redis")]
    pub fn store_config(&self, boss: &str) -> effex::store::RedisStoreConfig {
        effex::store::RedisStoreConfig {
            url: self.url(),
            limits: effex::store::MemoryStoreConfig {
                boss_key: boss.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// A plain connection to this server, for a test to look at what the
    /// store wrote.
    #[cfg(feature = "redis")]
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("the test's Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis-server")
    }

    /// Drops every client connection (`CLIENT KILL TYPE normal`), as a
    /// network blip would; returns how many were dropped.
    pub async fn drop_clients(&self) -> usize {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect to the test's redis-server");
        stream
            .write_all(b"CLIENT KILL TYPE normal SKIPME yes\r\n")
            .await
            .expect("send CLIENT KILL");
        let mut buf = [0u8; 32];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("CLIENT KILL answers")
            .expect("read the CLIENT KILL reply");
        let reply = String::from_utf8_lossy(&buf[..n]);
        reply
            .trim()
            .strip_prefix(':')
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("unexpected CLIENT KILL reply {reply:?}"))
    }

    /// Kills the server with SIGKILL (as a crash would) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (its AOF).
    pub async fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn().await,
            "redis-server did not come back on port {}",
            self.port
        );
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    u64::from(nanos) ^ (NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 32)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
