//! A `redis-server` of the benchmark's own (feature `redis`): started on a
//! free port of 127.0.0.1 in a temporary directory, never a system service,
//! with AOF on (`appendfsync` as asked) and no RDB snapshots; killed and its
//! directory removed on drop. (The tests have their own fixture in
//! `tests/common/redis.rs`; examples cannot import tests.)

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

/// How long a fresh `redis-server` may take to answer.
const START_BOUND: Duration = Duration::from_secs(10);
/// How long an AOF rewrite the benchmark asked for may take.
const REWRITE_BOUND: Duration = Duration::from_secs(120);

/// A running `redis-server` owned by the benchmark.
pub struct RedisServer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` with `--appendfsync <appendfsync>` and `extra`
    /// arguments (`--name value` pairs); an error names the Debian package
    /// when the binary is missing.
    pub async fn start(appendfsync: &str, extra: &[&str]) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("effex-bench-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("find a free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", appendfsync])
            .args(extra)
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "redis-server is not installed: install the \
                     Debian package `redis-server` (apt-get install -y redis-server)"
                    .to_owned(),
                _ => format!("cannot start redis-server: {e}"),
            })?;
        let server = RedisServer { child, port, dir };
        let deadline = Instant::now() + START_BOUND;
        loop {
            if let Ok(mut conn) = server.connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server on port {port} did not answer within {START_BOUND:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The redis-server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// A fresh connection of the benchmark's own.
    pub async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// `INFO memory`'s `used_memory`: the bytes Redis's allocator holds.
    pub async fn used_memory(&self) -> Result<u64, String> {
        self.info_number("memory", "used_memory").await
    }

    /// Rewrites (compacts) the AOF now with `BGREWRITEAOF` and waits until
    /// the rewrite is done, so that none runs inside the next measurement: a
    /// rewrite forks Redis and its child writes the whole dataset, which on a
    /// small machine competes for a core with every process measured.
    pub async fn rewrite_aof(&self) -> Result<(), String> {
        let mut conn = self.connection().await.map_err(|e| e.to_string())?;
        redis::cmd("BGREWRITEAOF")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("BGREWRITEAOF: {e}"))?;
        let deadline = Instant::now() + REWRITE_BOUND;
        loop {
            let busy = ["aof_rewrite_in_progress", "aof_rewrite_scheduled"];
            let mut idle = true;
            for field in busy {
                idle &= self.info_number("persistence", field).await? == 0;
            }
            if idle {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the AOF rewrite took longer than {REWRITE_BOUND:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// AOF rewrites done since Redis started (`INFO persistence`'s
    /// `aof_rewrites`).
    pub async fn aof_rewrites(&self) -> Result<u64, String> {
        self.info_number("persistence", "aof_rewrites").await
    }

    /// A numeric field of an `INFO` section.
    async fn info_number(&self, section: &str, field: &str) -> Result<u64, String> {
        let mut conn = self.connection().await.map_err(|e| e.to_string())?;
        let info: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        info.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("INFO {section} has no {field}"))
    }

    /// `CONFIG SET <name> <value>`.
    pub async fn config_set(&self, name: &str, value: &str) -> Result<(), String> {
        let mut conn = self.connection().await.map_err(|e| e.to_string())?;
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(value)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| format!("CONFIG SET {name} {value}: {e}"))
    }
}

/// `redis-server --version`'s `v=` field, or "unknown".
pub fn version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(str::to_owned))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
