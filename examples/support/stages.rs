//! Where the time of one benchmark phase on Redis went (feature `redis`):
//! the CPU each process used (Redis by `INFO cpu`, nodes and this program by
//! `/proc/<pid>/stat`), how long each waited for a core
//! (`/proc/<pid>/task/*/schedstat`), Redis's own per-command calls and time
//! (`INFO commandstats`), and an observer that timestamps each `expire` entry as it
//! appears in the shared stream `effex:events` — so a lateness splits into
//! deadline → in the stream (the sweep) and stream → handler (the nodes'
//! readers, hubs, pushes and the client).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use tokio::sync::watch;

use super::redis_server::RedisServer;

/// Clock ticks per second of `/proc/<pid>/stat` (`sysconf(_SC_CLK_TCK)`,
/// 100 on every Linux this runs on).
const TICKS_PER_SECOND: u64 = 100;

/// A process's user + system CPU time so far (Linux: `/proc/<pid>/stat`).
pub fn cpu_of(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the `(comm)`, which may hold spaces: state is field 3,
    // utime 14 and stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 1000 / TICKS_PER_SECOND)
}

/// How long a process's threads have waited for a core so far: runnable
/// but not running, the time a busy machine adds to each step (Linux: the
/// second field of `/proc/<pid>/task/*/schedstat`, in ns; a thread that has
/// ended no longer counts). `None` where the kernel does not keep it.
pub fn run_delay_of(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total: Option<u64> = None;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // ended meanwhile, or a kernel without schedstat
        };
        if let Some(ns) = stat
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.parse::<u64>().ok())
        {
            total = Some(total.unwrap_or(0).saturating_add(ns));
        }
    }
    // No thread's figure read: unknown, not zero.
    total.map(Duration::from_nanos)
}

/// Redis's own counters at one moment.
#[derive(Default, Clone)]
pub struct RedisCounters {
    /// `used_cpu_sys + used_cpu_user`: every thread of redis-server.
    pub cpu: Duration,
    /// Per command: (calls, µs inside Redis).
    pub commands: HashMap<String, (u64, u64)>,
}

impl RedisCounters {
    /// `INFO cpu` and `INFO commandstats` now.
    pub async fn read(redis: &RedisServer) -> Result<Self, String> {
        let mut conn = redis.connection().await.map_err(|e| e.to_string())?;
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut counters = RedisCounters::default();
        for line in info.lines() {
            if let Some(v) = line
                .strip_prefix("used_cpu_sys:")
                .or_else(|| line.strip_prefix("used_cpu_user:"))
            {
                counters.cpu += Duration::from_secs_f64(v.trim().parse().unwrap_or(0.0));
            } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                let Some((name, stats)) = rest.split_once(':') else {
                    continue;
                };
                let field = |key: &str| {
                    stats
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(key))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                counters
                    .commands
                    .insert(name.to_owned(), (field("calls="), field("usec=")));
            }
        }
        Ok(counters)
    }

    /// What happened between `before` and `self`: the CPU and the commands
    /// called meanwhile, busiest first.
    pub fn since(&self, before: &RedisCounters) -> (Duration, Vec<(String, u64, u64)>) {
        let mut commands: Vec<(String, u64, u64)> = self
            .commands
            .iter()
            .map(|(name, (calls, usec))| {
                let (c0, u0) = before.commands.get(name).copied().unwrap_or_default();
                (
                    name.clone(),
                    calls.saturating_sub(c0),
                    usec.saturating_sub(u0),
                )
            })
            .filter(|(_, calls, _)| *calls > 0)
            .collect();
        commands.sort_by_key(|(_, _, usec)| std::cmp::Reverse(*usec));
        (self.cpu.saturating_sub(before.cpu), commands)
    }
}

/// Timestamps (unix µs) of each `expire` entry's arrival in `effex:events`,
/// by item id, read by a task of its own with `XREAD BLOCK` from the
/// stream's end when started.
pub struct StreamObserver {
    seen: Arc<Mutex<HashMap<String, u64>>>,
    stop: watch::Sender<bool>,
}

impl StreamObserver {
    /// Starts following the stream from its end.
    pub async fn start(redis: &RedisServer) -> Result<Self, String> {
        let mut conn = redis.connection().await.map_err(|e| e.to_string())?;
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let (stop, mut stopped) = watch::channel(false);
        let last: Vec<(String, HashMap<String, redis::Value>)> = redis::cmd("XREVRANGE")
            .arg("effex:events")
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut position = last.first().map_or("0-0".to_owned(), |(id, _)| id.clone());
        let map = seen.clone();
        tokio::spawn(async move {
            let options = StreamReadOptions::default().block(200).count(10_000);
            loop {
                let from = [position.clone()];
                let read = conn.xread_options::<_, _, Option<StreamReadReply>>(
                    &["effex:events"],
                    &from,
                    &options,
                );
                let reply = tokio::select! {
                    reply = read => reply,
                    _ = stopped.wait_for(|s| *s) => return,
                };
                let Ok(Some(reply)) = reply else { continue };
                let at = unix_us();
                let mut map = map.lock().expect("not poisoned");
                for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                    // One event (`id`) or a sweep's expiries (`ids`).
                    let ids = entry
                        .get::<String>("id")
                        .or_else(|| entry.get::<String>("ids"));
                    if entry.get::<String>("event").as_deref() == Some("expire") {
                        for id in ids.iter().flat_map(|ids| ids.split(' ')) {
                            map.insert(id.to_owned(), at);
                        }
                    }
                    position = entry.id;
                }
            }
        });
        Ok(StreamObserver { seen, stop })
    }

    /// Stops the observer and returns what it saw.
    pub fn finish(self) -> HashMap<String, u64> {
        self.stop.send_replace(true);
        std::mem::take(&mut *self.seen.lock().expect("not poisoned"))
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
