//! The one switch that runs the server suites on the Redis store as well as
//! on the memory store: `EFFEX_TEST_STORE=redis` (needs the `redis`
//! feature; unset or `memory` is the memory store).
//!
//! With the switch on, every in-process server a fixture starts
//! ([`super::server::start`]) and every store a test builds through
//! [`store`] gets a `redis-server` of its own ([`RedisServer`]), and every
//! `effex serve` child gets `--redis` ([`serve_args`]). The Redis server is
//! kept alive for as long as the runtime the test runs in (the actix System,
//! where the server lives too): it is owned by a task of that runtime,
//! dropped — and so killed, its directory removed — when the test ends, even
//! when it panics.
//!
//! Tests that cannot run on Redis call [`memory_only`], which names them in
//! [`MEMORY_ONLY`] with the reason and says so on stderr.

use std::sync::Arc;

use effex::server::ServerConfig;
use effex::store::{MemoryStore, MemoryStoreConfig, Store};

use super::redis::RedisServer;

/// The environment variable that chooses the store of the suites.
pub const VARIABLE: &str = "EFFEX_TEST_STORE";

/// The tests that run on the memory store only, with the reason for each
/// (keep this short: a test that can run on Redis with other timings should).
pub const MEMORY_ONLY: &[(&str, &str)] = &[];

/// The store the suites run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStore {
    /// The embedded memory store (the default).
    Memory,
    /// A `RedisStore` on a `redis-server` of the test's own.
    Redis,
}

impl TestStore {
    /// The store's name in `/info` (`"store"`).
    pub fn name(self) -> &'static str {
        match self {
            TestStore::Memory => "memory",
            TestStore::Redis => "redis",
        }
    }
}

/// The store chosen by [`VARIABLE`]; panics on an unknown value, and on
/// `redis` in a build without the `redis` feature (never falls back to
/// memory silently).
pub fn chosen() -> TestStore {
    let value = std::env::var(VARIABLE).unwrap_or_default();
    match value.as_str() {
        "" | "memory" => TestStore::Memory,
        "redis" if cfg!(feature = "redis") => TestStore::Redis,
        "redis" => panic!(
            "{VARIABLE}=redis needs the `redis` feature: run `{VARIABLE}=redis cargo test \
             --features redis …` (or --all-features)"
        ),
        other => {
            panic!("{VARIABLE}={other:?} is not a store: use `memory` (the default) or `redis`")
        }
    }
}

/// Whether the suites run on Redis.
pub fn on_redis() -> bool {
    chosen() == TestStore::Redis
}

/// Marks the calling test as one that runs on the memory store only: it must
/// be listed in [`MEMORY_ONLY`] (the one list of exclusions), and with the
/// switch on it says on stderr that it ran on memory only and why.
pub fn memory_only(test: &str) {
    let reason = MEMORY_ONLY
        .iter()
        .find(|(name, _)| *name == test)
        .map(|(_, reason)| *reason)
        .unwrap_or_else(|| panic!("{test} is not in store_switch::MEMORY_ONLY: list it with why"));
    if on_redis() {
        eprintln!("{test}: ran on the memory store only ({VARIABLE}=redis ignored): {reason}");
        log::warn!("{test}: ran on the memory store only: {reason}");
    }
}

/// Keeps `redis` running until the test's runtime ends (an actix System's
/// or a plain tokio test's: either drops its tasks, and so the server, when
/// the test returns or panics).
fn keep_for_the_test(redis: RedisServer) {
    tokio::spawn(async move {
        let _redis = redis;
        std::future::pending::<()>().await;
    });
}

/// `config` with the chosen store: unchanged on memory, or when the test
/// injects a store or names a Redis itself; otherwise pointed at a fresh
/// `redis-server` (kept for the test), with a boss key when it has none.
pub async fn configure(config: ServerConfig) -> ServerConfig {
    #[cfg(feature = "redis")]
    if on_redis() && config.store.is_none() && config.redis_url.is_none() {
        let redis = RedisServer::start().await;
        let url = redis.url();
        keep_for_the_test(redis);
        return ServerConfig {
            redis_url: Some(url),
            boss_key: Some(config.boss_key.unwrap_or_else(random_boss_key)),
            ..config
        };
    }
    config
}

/// A store with `limits` (boss key, lifetimes, quotas, retention): a
/// `MemoryStore`, or with the switch on a `RedisStore` on a fresh
/// `redis-server` (kept for the test) with the same limits.
pub async fn store(limits: MemoryStoreConfig) -> Arc<dyn Store> {
    #[cfg(feature = "redis")]
    if on_redis() {
        let redis = RedisServer::start().await;
        let config = effex::store::RedisStoreConfig {
            url: redis.url(),
            limits,
            ..Default::default()
        };
        keep_for_the_test(redis);
        return Arc::new(
            effex::store::RedisStore::connect(config)
                .await
                .expect("a RedisStore on the test's redis-server"),
        );
    }
    Arc::new(MemoryStore::new(limits).expect("a memory store"))
}

/// The extra `effex serve` arguments of the chosen store and the boss key
/// they set: none on memory; `--redis URL --boss-key KEY` on a fresh
/// `redis-server` (kept for the test) with the switch on.
pub async fn serve_args() -> (Vec<String>, Option<String>) {
    if !on_redis() {
        return (Vec::new(), None);
    }
    let redis = RedisServer::start().await;
    let boss = random_boss_key();
    let args = vec![
        "--redis".to_owned(),
        redis.url(),
        "--boss-key".to_owned(),
        boss.clone(),
    ];
    keep_for_the_test(redis);
    (args, Some(boss))
}

/// A boss key for a test server on Redis (every node on one Redis shares it,
/// so the server cannot generate one).
fn random_boss_key() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("bk{nanos:032x}")
}
