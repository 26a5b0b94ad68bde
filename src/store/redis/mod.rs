//! `RedisStore`: the [`Store`] on a Redis server that several effex nodes
//! share, so that they serve one exchange. Same rules as the memory store
//! (see the [store docs](super)); Redis holds every item, key, alias, intent
//! and event, and Redis's clock (`TIME`) is the one clock of all nodes.
//!
//! # One atomic step per change
//!
//! Every operation is one Lua function (`lua/*.lua`) of a Redis Function
//! library ([`scripts`]; Redis 7.0 or later) whose shared helpers
//! (`lua/common.lua`) Redis defines once, when a node loads the library at
//! start (again if Redis lost it): it checks the key, resolves the alias,
//! checks permissions, intents and quotas, applies the change, and for an
//! update, remove or expire bumps the store-wide `seq` (`INCR effex:seq`),
//! logs the event with the item (an update in its log list, a remove or
//! expire, its last event, in its tombstone) and `XADD`s it to the event
//! stream.
//! Redis runs a function as one step, like a script, so no node sees a change
//! without its event and seq. `effex:seq` only grows and lives in Redis, so a
//! seq is never reused across node restarts (with Redis persistence: AOF).
//!
//! # Writes go in batches
//!
//! New items (`write`) are group-committed ([`write_batch`]): while one
//! `write` call of a node is in Redis, the writes that arrive meanwhile wait
//! and go together in the next call (up to 64), which applies them one after
//! another as that many calls would and answers each on its own. A lone
//! write waits for nothing; under load a node sends one call for many
//! writes, which costs Redis and the node less CPU per write (measured in
//! [`write_batch`]'s docs).
//!
//! # Key layout
//!
//! | key | type | what |
//! |---|---|---|
//! | `effex:seq` | string | the latest seq |
//! | `effex:events` | stream | every event, entry id `<seq>-0` (a sweep's expiries: one entry, id `<last seq>-0`, their ids and times space-separated), and every alias re-point, entry id `<latest seq>-<n>` (n ≥ 1); trimmed to about `stream_max_len` entries |
//! | `effex:due` | sorted set | deadlines: `i:<id>` (item expiry), `k:<key>`, `a:<alias>` |
//! | `effex:stats` | hash | live `items` and their value `bytes` (the 507 quota) |
//! | `effex:{item:<id>}` | hash | owner, readers, updaters, value, size, modified, deadline, intent, state, `log` (`''` until the first update makes the log list); a tombstone (state `gone`) keeps the item's last event, `final` (`seq:at:kind`, remove or expire), and has a Redis TTL: the retention |
//! | `effex:{item:<id>}:log` | list | the item's retained updates, `seq:at:update` (its `final` event follows them); the tombstone's TTL once the item is gone |
//! | `effex:{key:<key>}` | hash | deadline, and for a writer key its items/bytes/aliases counts |
//! | `effex:{alias:<name>}` | hash | owner, id, owner's deadline |
//!
//! An item's hash and log share a hash tag, so they land in one slot.
//!
//! **Redis Cluster** is not supported yet. It would need: the scripts to
//! declare every key they touch in `KEYS` (today they derive the alias and
//! owner-key names inside the script); the seq counter, the stream, the
//! deadline set and the stats to be split per slot or moved into the item's
//! slot (they are single keys that every change touches, so one shard would
//! take every write); and a script per slot for changes that touch an item, its
//! owner key and an alias in different slots (or a MULTI across
//! them, which Cluster refuses unless they share a slot); write batches
//! would be gathered per slot.
//!
//! # Live events
//!
//! Each store runs a task ([`stream`]) that reads `effex:events` with
//! `XREAD BLOCK` from the last entry it delivered and feeds the
//! [`Store::subscribe`] channel in stream order, so every node sees every
//! event and every alias re-point ([`StoreEvent::AliasMoved`]: the alias
//! scripts, and a write naming an alias, append it to the stream in the same
//! script as the re-point; it takes no seq, see the key layout). After a
//! dropped connection it resumes from that entry: nothing is lost
//! unless the node was away so long that more than `stream_max_len` entries
//! were trimmed meanwhile (it logs how many; a watch then catches up from the
//! item's own log through [`Store::events`]). A read asks for up to 1,000
//! entries, fewer when entries may be large (values up to `max_size`, or big
//! sweep batches), so that one reply stays near 32 MiB: a node catching up
//! on a backlog of 1 MiB values reads it 31 entries at a time.
//!
//! # Expiry
//!
//! Each store runs a sweeper ([`sweeper`]) over `effex:due`: a script claims
//! the due entries (removed from the set inside the script, so each is
//! handled by exactly one node, with no leader), expires the due items as one
//! batch (logging `expire` once each; one `INCRBY` takes their consecutive
//! seqs, one stream entry carries them all, and each owner's counters change
//! once per sweep: Redis's cost per expiry is three calls), and deletes
//! expired keys and the aliases of expired writer keys. Redis's own TTLs are
//! not the expiry clock (they are seconds late under load), but they drop
//! what only has to go eventually: a tombstone and its log get a TTL of the
//! event retention when the item goes, so no sweep visits them again.
//!
//! A sweeper waits for the next deadline to the µs of Redis's clock. Of
//! several nodes, the one whose sweeps find work sweeps on time; the others
//! become backups that sweep 2 ms past a deadline only when the event stream
//! has not shown it handled (each sweep's entry says up to which deadline it
//! handled everything): most empty sweeps are skipped, and a dead node's
//! work is taken over without a leader (see [`sweeper`]).
//!
//! The sweeper may lag (by seconds on a loaded machine), so every script that
//! looks at an item (read, update, remove, check_read, events) first expires
//! it if it is due, through the same claim as the sweep (`claim_expiry` in
//! `lua/common.lua`: the `ZREM` of its deadline decides who logs the
//! `expire`): whoever notices a due item first expires it, exactly once, and
//! the item's log holds its `expire` before anyone is told it is gone.
//!
//! # When Redis is down
//!
//! Every operation answers 503 ([`StoreError::Unavailable`]) naming the URL;
//! the connection manager reconnects by itself and the event reader resumes.

use crate::secret::same_secret;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::{Client, IntoConnectionInfo, Value};
use tokio::sync::{broadcast, watch};

use super::memory::validate_alias;
use super::types::{hex128, parse_hex128, random128, AccessKey};
use super::{
    Aliased, Event, EventKind, EventQuery, EventsPage, ItemId, ItemRef, JsonText, KeyKind,
    MemoryStoreConfig, ReadItem, Removed, Store, StoreError, StoreEvent, StoreFuture, StoreInfo,
    StoreMetrics, UpdateItem, Updated, WriteItem, Written,
};
use crate::protocol::rest::{KeysReply, KeysRequest};
use crate::protocol::time::UnixMillis;

mod refusal;
mod scripts;
mod stream;
mod sweeper;
mod url;
mod write_batch;

use sweeper::Coverage;
pub use url::redact_url;

use refusal::Doing;
use scripts::{Library, Op, Outcome, Reply};
use write_batch::{WriteArgs, WriteQueue};

/// Settings of a [`RedisStore`].
///
/// ```
/// use effex::store::{MemoryStoreConfig, RedisStoreConfig};
///
/// let config = RedisStoreConfig {
///     url: "redis://127.0.0.1:6379/0".into(),
///     limits: MemoryStoreConfig { boss_key: "a long random secret".into(), ..Default::default() },
///     ..Default::default()
/// };
/// assert_eq!(config.stream_max_len, 100_000);
/// ```
#[derive(Clone)]
pub struct RedisStoreConfig {
    /// The Redis server, `redis://host:port/db` (or `rediss://` for TLS).
    /// Defaults to `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// The exchange's rules: boss key, lifetimes, sizes, quotas, intents and
    /// event retention, as for the memory store (`shards` is not used;
    /// `event_capacity` is the live channel's). Every node on one Redis
    /// should use the same. Defaults to [`MemoryStoreConfig::default`]
    /// (whose empty boss key [`RedisStore::connect`] refuses).
    pub limits: MemoryStoreConfig,
    /// About how many entries the shared stream keeps (`XADD … MAXLEN ~`;
    /// an entry is one event, value included, or one sweep's expiries): a
    /// node whose connection drops catches up from it. A
    /// node away for more events than this loses the older ones from its live
    /// channel (logged); watches catch up from the items' logs. Defaults to
    /// 100,000.
    pub stream_max_len: usize,
    /// The longest a node goes without looking for due deadlines (it also
    /// wakes when the next one falls due, or 2 ms later as a backup of a
    /// node that sweeps on time). Defaults to 5 ms.
    pub sweep_interval: Duration,
    /// The most due entries one sweep handles in one script (Redis runs a
    /// script alone, so this bounds how long others wait); more are left for
    /// the next sweep, which follows at once. Defaults to 200 (a full sweep of
    /// 1,000 held Redis ~130 ms on a 2-core VM, delaying every other node's
    /// calls and so every push; 200, ~23 ms, at the same cost per expiry).
    /// At most [`MAX_SWEEP_BATCH`](crate::store::REDIS_MAX_SWEEP_BATCH).
    pub sweep_batch: usize,
    /// How long one Redis call (and one connection attempt) may take before
    /// it fails with 503. Defaults to 2 s.
    pub timeout: Duration,
}

/// The largest [`RedisStoreConfig::sweep_batch`]: one sweep holds Redis
/// for its whole batch (~0.05–0.1 ms per expiry), and its expiries are one
/// stream entry (~48 bytes each) that every node reads.
pub const MAX_SWEEP_BATCH: usize = 10_000;

impl Default for RedisStoreConfig {
    fn default() -> Self {
        RedisStoreConfig {
            url: "redis://127.0.0.1:6379/0".into(),
            limits: MemoryStoreConfig::default(),
            stream_max_len: 100_000,
            sweep_interval: Duration::from_millis(5),
            sweep_batch: 200,
            timeout: Duration::from_secs(2),
        }
    }
}

impl fmt::Debug for RedisStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreConfig")
            .field("url", &redact_url(&self.url))
            .field("limits", &self.limits)
            .field("stream_max_len", &self.stream_max_len)
            .field("sweep_interval", &self.sweep_interval)
            .field("sweep_batch", &self.sweep_batch)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisStoreConfig {
    fn validate(&self) -> Result<(), StoreError> {
        self.limits.validate()?;
        let bad = |msg: &str| Err(StoreError::BadRequest(format!("RedisStoreConfig: {msg}")));
        if self.stream_max_len == 0 {
            return bad("stream_max_len must be more than 0");
        }
        if self.sweep_batch == 0 || self.sweep_batch > MAX_SWEEP_BATCH {
            return bad(&format!(
                "sweep_batch must be 1 to {MAX_SWEEP_BATCH} (one sweep holds Redis for its whole \
                 batch, and its expiries are one stream entry that every node reads)"
            ));
        }
        if self.sweep_interval.is_zero() {
            return bad("sweep_interval must be more than 0");
        }
        if self.timeout.is_zero() {
            return bad("timeout must be more than 0");
        }
        Ok(())
    }
}

/// The [`Store`] on a Redis server that several effex nodes share, with the
/// same rules as the memory store (see the [store docs](crate::store)).
///
/// Each change is one Lua script, so a change, its `seq` and its event are one
/// atomic step; each store follows the shared event stream (resuming from
/// its last seq after a dropped connection) and sweeps the shared deadline
/// set, so every node sees every event and each item expires exactly once.
/// While Redis cannot be reached, operations fail with 503
/// ([`StoreError::Unavailable`]).
///
/// Create it with [`RedisStore::connect`] inside a tokio runtime that
/// outlives it: its tasks (the event reader, the sweeper and the task that
/// sends writes in batches) run there, and stop when it is dropped.
pub struct RedisStore {
    shared: Arc<Shared>,
}

/// What the store and its two tasks share.
struct Shared {
    config: RedisStoreConfig,
    /// The URL without its password: what logs and error messages show
    /// (those reach REST clients as 503 bodies).
    shown_url: String,
    conn: ConnectionManager,
    /// The operations, as functions in Redis.
    library: Library,
    /// The first 10 arguments of every function call: the rules.
    rules: Vec<String>,
    events: broadcast::Sender<StoreEvent>,
    /// Set to true when the store is dropped: the tasks stop.
    stop: watch::Sender<bool>,
    /// Script latencies and reconnects (see [`StoreMetrics`]).
    metrics: StoreMetrics,
    /// Where writes wait for their `write` call (group commit).
    writes: WriteQueue,
    /// What the nodes' sweeps covered, from the event stream (see `sweeper`).
    coverage: Arc<Coverage>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.shared.config)
            .finish()
    }
}

/// A connection manager for `url` that gives up after `timeout`.
async fn connect_manager(
    client: Client,
    timeout: Duration,
    response_timeout: Option<Duration>,
) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(response_timeout)
        .set_number_of_retries(1)
        .set_max_delay(timeout);
    ConnectionManager::new_with_config(client, config).await
}

impl RedisStore {
    /// Validates `config`, connects to Redis and starts the store's tasks
    /// (event reader, sweeper, write batches) on the current tokio runtime.
    /// 400 for a bad config, 503 naming the URL when Redis cannot be reached.
    pub async fn connect(config: RedisStoreConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let url = redact_url(&config.url);
        let unreachable = |e: redis::RedisError| {
            StoreError::Unavailable(format!(
                "cannot connect to Redis at {url}: {e}: start Redis there, or pass the right \
                 redis://host:port/db URL"
            ))
        };
        let not_a_url = |e: redis::RedisError| {
            StoreError::BadRequest(format!(
                "{url:?} is not a Redis URL ({e}): use redis://host:port/db"
            ))
        };
        // TCP_NODELAY (the crate leaves Nagle on): every script call is a
        // small write on a connection many requests share, and Nagle would
        // hold one back until Redis acknowledged the one before it — a long
        // sweep script then delays an unrelated update.
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(not_a_url)?
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = Client::open(info).map_err(not_a_url)?;
        let conn = connect_manager(client.clone(), config.timeout, Some(config.timeout))
            .await
            .map_err(unreachable)?;
        // The reader blocks in XREAD for up to a second: a connection of its own.
        let reader = connect_manager(client, config.timeout, Some(stream::BLOCK + config.timeout))
            .await
            .map_err(unreachable)?;
        let limits = &config.limits;
        let rules = [
            super::time::duration_ms(limits.event_retention),
            limits.max_events_per_item as u64,
            config.stream_max_len as u64,
            limits.max_total_bytes as u64,
            limits.max_items_per_key as u64,
            limits.max_bytes_per_key as u64,
            limits.max_aliases_per_key as u64,
            super::time::duration_ms(limits.intent_lifetime),
            super::time::duration_ms(limits.intent_max_hold),
            limits.max_size as u64,
        ]
        .iter()
        .map(u64::to_string)
        .collect();
        let (events, _) = broadcast::channel(limits.event_capacity);
        let (stop, _) = watch::channel(false);
        let (writes, queued) = write_batch::queue();
        let shared = Arc::new(Shared {
            shown_url: redact_url(&config.url),
            config,
            conn,
            library: Library::new(),
            rules,
            events,
            stop,
            metrics: StoreMetrics::with_redis()?,
            writes,
            coverage: Arc::default(),
        });
        shared.load_library().await?;
        let from = shared.stream_end().await?;
        let count =
            stream::entries_per_read(shared.config.limits.max_size, shared.config.sweep_batch);
        tokio::spawn(write_batch::run(Arc::downgrade(&shared), queued));
        tokio::spawn(stream::run(
            reader,
            shared.events.clone(),
            shared.coverage.clone(),
            (from, count),
            shared.stop.subscribe(),
            shared.shown_url.clone(),
            shared.metrics.clone(),
        ));
        if !shared.config.limits.hold_expiry_clock {
            tokio::spawn(sweeper::run(
                Arc::downgrade(&shared),
                shared.stop.subscribe(),
            ));
        }
        Ok(RedisStore { shared })
    }

    /// The config the store runs with.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.shared.config
    }

    /// Test-only: runs one sweep (what the sweeper runs) now and returns how
    /// many due entries it handled. For tests that hold the sweeper
    /// (`limits.hold_expiry_clock`).
    #[doc(hidden)]
    pub async fn sweep_once(&self) -> Result<u64, StoreError> {
        let batch = self.shared.config.sweep_batch.to_string();
        match self.shared.run(Op::Sweep, &[batch.as_str()]).await? {
            Outcome::Ok(reply) => reply.num(0),
            Outcome::Refused(r) => Err(StoreError::Backend(format!(
                "the Redis expiry sweep refused: {r:?}"
            ))),
        }
    }
}

/// An id or an alias, as the scripts take it: `(id, alias)`, one of them empty.
fn id_or_alias(s: &str) -> Result<(String, String), StoreError> {
    if parse_hex128(s).is_some() {
        return Ok((s.to_owned(), String::new()));
    }
    if s.is_empty() {
        return Err(StoreError::BadRequest("give an item id or an alias".into()));
    }
    Ok((String::new(), s.to_owned()))
}

fn item_id(reply: &Reply, i: usize) -> Result<ItemId, StoreError> {
    let text = reply.text(i)?;
    parse_hex128(&text)
        .map(ItemId)
        .ok_or_else(|| StoreError::Backend(format!("the Redis store holds a bad item id {text:?}")))
}

fn json(text: String) -> Result<JsonText, StoreError> {
    JsonText::parse(&text).map_err(|e| {
        StoreError::Backend(format!(
            "the Redis store holds a value that is not JSON: {e}"
        ))
    })
}

fn boss_cannot(what: &str) -> StoreError {
    StoreError::Forbidden(format!(
        "the boss key only makes access keys; {what} needs an access key"
    ))
}

impl Shared {
    fn url(&self) -> &str {
        &self.shown_url
    }

    /// Runs operation `op` with the rules and `args`, loading the library
    /// again if Redis lost it (a restart without persistence, `FUNCTION FLUSH`).
    async fn run(&self, op: Op, args: &[&str]) -> Result<Outcome, StoreError> {
        let started = std::time::Instant::now();
        let mut value = self.fcall(op, args).await;
        if matches!(&value, Err(e) if scripts::is_not_loaded(e)) {
            log::warn!(
                "effex: Redis at {} does not hold the function library {} (restarted without \
                 persistence, or FUNCTION FLUSH): loading it again",
                self.url(),
                self.library.name()
            );
            self.load_library().await?;
            value = self.fcall(op, args).await;
        }
        self.metrics.redis_command(op.name(), started.elapsed());
        Outcome::decode(value.map_err(|e| refusal::from_redis(e, self.url()))?)
    }

    /// One `FCALL` of `op`'s function (no keys declared: see the Cluster note).
    async fn fcall(&self, op: Op, args: &[&str]) -> redis::RedisResult<Value> {
        let mut conn = self.conn.clone();
        redis::cmd("FCALL")
            .arg(self.library.function(op))
            .arg(0)
            .arg(&self.rules)
            .arg(args)
            .query_async(&mut conn)
            .await
    }

    /// Loads the function library into Redis (`FUNCTION LOAD`; one already
    /// there under its name holds the same code). Refuses a Redis older than
    /// 7.0, which has no functions.
    async fn load_library(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let loaded = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(self.library.code())
            .query_async::<Value>(&mut conn)
            .await;
        match loaded {
            Ok(_) => Ok(()),
            Err(e) if scripts::is_already_loaded(&e) => Ok(()),
            Err(e) if scripts::is_unknown_command(&e) => {
                let version = self.redis_version().await;
                Err(StoreError::Backend(format!(
                    "Redis at {} (version {version}) has no FUNCTION command ({e}): effex \
                     needs Redis 7.0 or later (Debian 12 and Ubuntu 24.04 ship 7.0); upgrade \
                     Redis, and do not rename or disable FUNCTION and FCALL",
                    self.url()
                )))
            }
            Err(e) => Err(refusal::from_redis(e, self.url())),
        }
    }

    /// `INFO server`'s `redis_version`, or "unknown".
    async fn redis_version(&self) -> String {
        let mut conn = self.conn.clone();
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut conn)
            .await;
        info.ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("redis_version:"))
                    .map(|v| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }

    /// Runs operation `op`; a refusal becomes its error.
    async fn call(&self, op: Op, args: &[&str], doing: Doing) -> Result<Reply, StoreError> {
        match self.run(op, args).await? {
            Outcome::Ok(reply) => Ok(reply),
            Outcome::Refused(r) => Err(refusal::to_error(r, doing, &self.config.limits)),
        }
    }

    /// Where the event stream ends now: its last entry, or `<latest seq>-0`
    /// when that is later (an empty or trimmed stream); read in one step.
    async fn stream_end(&self) -> Result<stream::EntryId, StoreError> {
        let mut conn = self.conn.clone();
        let (seq, last): (Option<u64>, Vec<(String, Value)>) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg("effex:seq")
            .cmd("XREVRANGE")
            .arg("effex:events")
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| refusal::from_redis(e, self.url()))?;
        let seq = stream::EntryId {
            seq: seq.unwrap_or(0),
            n: 0,
        };
        let last = last
            .first()
            .and_then(|(id, _)| stream::EntryId::parse(id))
            .unwrap_or_default();
        Ok(seq.max(last))
    }

    async fn latest_seq(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let seq: Option<u64> = redis::cmd("GET")
            .arg("effex:seq")
            .query_async(&mut conn)
            .await
            .map_err(|e| refusal::from_redis(e, self.url()))?;
        Ok(seq.unwrap_or(0))
    }

    fn is_boss(&self, key: &str) -> bool {
        same_secret(key.as_bytes(), self.config.limits.boss_key.as_bytes())
    }

    /// The caller's access key (401 when malformed, 403 for the boss key).
    fn access_key(&self, key: &str, doing: &str) -> Result<AccessKey, StoreError> {
        if self.is_boss(key) {
            return Err(boss_cannot(doing));
        }
        AccessKey::parse(key).ok_or(StoreError::UnknownKey)
    }

    /// `error` for a request that failed a check of its own input, unless the
    /// key fails first (401 unknown, 403 when a writer key is needed), as the
    /// memory store orders them.
    async fn after_key(
        &self,
        key: &AccessKey,
        needs_writer: Option<&str>,
        error: StoreError,
    ) -> StoreError {
        match self
            .call(Op::KeyCheck, &[&key.to_string()], Doing("checking a key"))
            .await
        {
            Err(e) => e,
            Ok(_) => match needs_writer {
                Some(what) if key.kind != KeyKind::Writer => StoreError::Forbidden(format!(
                    "{what} needs a writer key; this is a {} key",
                    key.kind
                )),
                _ => error,
            },
        }
    }

    async fn make_keys(&self, boss: &str, request: KeysRequest) -> Result<KeysReply, StoreError> {
        if !self.is_boss(boss) {
            let access = AccessKey::parse(boss).ok_or(StoreError::UnknownKey)?;
            self.call(Op::KeyCheck, &[&access.to_string()], Doing("making keys"))
                .await?;
            return Err(StoreError::Forbidden(
                "only the boss key makes access keys; this is an access key".into(),
            ));
        }
        let limits = &self.config.limits;
        let count = request.count.unwrap_or(1);
        let max = limits.max_keys_per_request;
        if count == 0 || count > max {
            return Err(StoreError::BadRequest(format!(
                "count {count} is out of range: ask for 1 to {max} keys"
            )));
        }
        let lifetime = request.seconds.unwrap_or(limits.key_lifetime);
        if lifetime.is_zero() {
            return Err(StoreError::BadRequest("seconds must be more than 0".into()));
        }
        let lifetime_ms = super::time::duration_ms(lifetime.min(limits.max_key_lifetime));
        // A collision of 128 random bits is a 2^-128 chance: draw again.
        for _ in 0..3 {
            let keys: Vec<String> = (0..count)
                .map(|_| {
                    AccessKey {
                        kind: request.kind,
                        bits: random128(),
                    }
                    .to_string()
                })
                .collect();
            let lifetime_arg = lifetime_ms.to_string();
            let mut args = vec![lifetime_arg.as_str()];
            args.extend(keys.iter().map(String::as_str));
            match self.run(Op::MakeKeys, &args).await? {
                Outcome::Ok(reply) => {
                    return Ok(KeysReply {
                        kind: request.kind,
                        keys,
                        valid_till: UnixMillis::from_millis(reply.num(0)?),
                    })
                }
                Outcome::Refused(r) if r.kind == "collision" => continue,
                Outcome::Refused(r) => {
                    return Err(refusal::to_error(r, Doing("making keys"), limits))
                }
            }
        }
        Err(StoreError::Backend(
            "could not draw new random keys: the random number source is broken".into(),
        ))
    }

    /// A `readers`/`updaters` list as the scripts keep it: space-separated,
    /// sorted, without duplicates.
    fn key_list(&self, list: &[String], kind: KeyKind, field: &str) -> Result<String, StoreError> {
        let max = self.config.limits.max_list_len;
        if list.len() > max {
            return Err(StoreError::BadRequest(format!(
                "{field} lists {} keys; at most {max} are allowed",
                list.len()
            )));
        }
        let mut keys = Vec::with_capacity(list.len());
        for (i, key) in list.iter().enumerate() {
            match AccessKey::parse(key) {
                Some(access) if access.kind == kind => keys.push(access.to_string()),
                _ => {
                    return Err(StoreError::BadRequest(format!(
                        "{field}[{i}] is not a {kind} key (\"{}\" and 32 hex digits)",
                        kind.prefix()
                    )))
                }
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys.join(" "))
    }

    async fn write(&self, key: &str, item: WriteItem) -> Result<Written, StoreError> {
        const DOING: &str = "writing an item";
        let access = self.access_key(key, DOING)?;
        let limits = &self.config.limits;
        let checked = (|| {
            let lifetime = item.lifetime.unwrap_or(limits.default_lifetime);
            if lifetime.is_zero() {
                return Err(StoreError::BadRequest(
                    "lifetime must be more than 0 seconds".into(),
                ));
            }
            let readers = self.key_list(&item.readers, KeyKind::Reader, "readers")?;
            let updaters = self.key_list(&item.updaters, KeyKind::Updater, "updaters")?;
            if let Some(alias) = &item.alias {
                validate_alias(alias)?;
            }
            let size = item.value.len();
            if size > limits.max_size {
                return Err(StoreError::TooLarge {
                    size,
                    max: limits.max_size,
                });
            }
            Ok((lifetime.min(limits.max_lifetime), readers, updaters, size))
        })();
        let (lifetime, readers, updaters, size) = match checked {
            Ok(checked) => checked,
            Err(e) => return Err(self.after_key(&access, Some(DOING), e).await),
        };
        let key = access.to_string();
        let lifetime_ms = super::time::duration_ms(lifetime).to_string();
        let alias = item.alias.clone().unwrap_or_default();
        for _ in 0..3 {
            let id = ItemId(random128());
            let args = WriteArgs {
                key: key.clone(),
                id: id.to_string(),
                lifetime_ms: lifetime_ms.clone(),
                readers: readers.clone(),
                updaters: updaters.clone(),
                alias: alias.clone(),
                value: item.value.clone(),
                size: size.to_string(),
            };
            match self.writes.write(args).await? {
                Outcome::Ok(reply) => {
                    let modified = UnixMillis::from_millis(reply.num(0)?);
                    let valid_till = UnixMillis::from_millis(reply.num(1)?);
                    return Ok(Written {
                        id,
                        lifetime: valid_till.duration_since(modified),
                        size,
                        modified,
                        valid_till,
                        seq: reply.num(2)?,
                        alias: item.alias,
                    });
                }
                Outcome::Refused(r) if r.kind == "collision" => continue,
                Outcome::Refused(r) => return Err(refusal::to_error(r, Doing(DOING), limits)),
            }
        }
        Err(StoreError::Backend(
            "could not draw a new random item id: the random number source is broken".into(),
        ))
    }

    async fn read(&self, key: &str, id: &str, intent: bool) -> Result<ReadItem, StoreError> {
        let access = self.access_key(key, "reading an item")?;
        let (id, alias) = match id_or_alias(id) {
            Ok(pair) => pair,
            Err(e) => return Err(self.after_key(&access, None, e).await),
        };
        let intent_id = hex128(random128());
        let args = [
            key,
            id.as_str(),
            alias.as_str(),
            if intent { "1" } else { "0" },
            intent_id.as_str(),
        ];
        let doing = Doing("read it with an update intent");
        let reply = self.call(Op::Read, &args, doing).await?;
        let value = json(reply.text(1)?)?;
        let (intent, intent_expires) = if reply.len() > 5 {
            (
                Some(reply.text(5)?),
                Some(UnixMillis::from_millis(reply.num(6)?)),
            )
        } else {
            (None, None)
        };
        Ok(ReadItem {
            id: item_id(&reply, 0)?,
            size: value.len(),
            value,
            modified: UnixMillis::from_millis(reply.num(2)?),
            seq: reply.num(3)?,
            valid_till: UnixMillis::from_millis(reply.num(4)?),
            intent,
            intent_expires,
        })
    }

    async fn update(&self, key: &str, id: &str, update: UpdateItem) -> Result<Updated, StoreError> {
        let access = self.access_key(key, "updating an item")?;
        let checked = id_or_alias(id).and_then(|pair| match &update.intent {
            Some(s) if parse_hex128(s).is_none() => Err(StoreError::BadRequest(format!(
                "intent {s:?} is not an intent id (32 hex digits from a read with intent)"
            ))),
            _ => Ok(pair),
        });
        let (id, alias) = match checked {
            Ok(pair) => pair,
            Err(e) => return Err(self.after_key(&access, None, e).await),
        };
        let size = update.value.len();
        let size_arg = size.to_string();
        let args = [
            key,
            id.as_str(),
            alias.as_str(),
            update.intent.as_deref().unwrap_or(""),
            update.value.as_str(),
            size_arg.as_str(),
        ];
        let reply = self.call(Op::Update, &args, Doing("update it")).await?;
        Ok(Updated {
            id: item_id(&reply, 0)?,
            modified: UnixMillis::from_millis(reply.num(1)?),
            seq: reply.num(2)?,
            size,
        })
    }

    async fn remove(&self, key: &str, id: &str) -> Result<Removed, StoreError> {
        let access = self.access_key(key, "removing an item")?;
        let (id, alias) = match id_or_alias(id) {
            Ok(pair) => pair,
            Err(e) => return Err(self.after_key(&access, None, e).await),
        };
        let args = [key, id.as_str(), alias.as_str()];
        let reply = self.call(Op::Remove, &args, Doing("remove it")).await?;
        Ok(Removed {
            id: item_id(&reply, 0)?,
            seq: reply.num(1)?,
        })
    }

    async fn alias(&self, key: &str, name: &str, id: &str) -> Result<Aliased, StoreError> {
        const DOING: &str = "making an alias";
        let access = self.access_key(key, DOING)?;
        let checked = validate_alias(name).and_then(|()| id_or_alias(id));
        let (id, target_alias) = match checked {
            Ok(pair) => pair,
            Err(e) => return Err(self.after_key(&access, Some(DOING), e).await),
        };
        let args = [key, name, id.as_str(), target_alias.as_str()];
        let reply = self.call(Op::Alias, &args, Doing(DOING)).await?;
        Ok(Aliased {
            alias: name.to_owned(),
            id: item_id(&reply, 0)?,
        })
    }

    async fn resolve(&self, id: &str) -> Result<ItemId, StoreError> {
        if let Some(bits) = parse_hex128(id) {
            return Ok(ItemId(bits));
        }
        if id.is_empty() {
            return Err(StoreError::BadRequest("give an item id or an alias".into()));
        }
        let reply = self
            .call(Op::Resolve, &[id], Doing("resolving an alias"))
            .await?;
        item_id(&reply, 0)
    }

    async fn check_read(&self, key: &str, id: &str) -> Result<ItemRef, StoreError> {
        let access = self.access_key(key, "watching an item")?;
        let (id, alias) = match id_or_alias(id) {
            Ok(pair) => pair,
            Err(e) => return Err(self.after_key(&access, None, e).await),
        };
        let args = [key, id.as_str(), alias.as_str()];
        let reply = self.call(Op::CheckRead, &args, Doing("watch it")).await?;
        Ok(ItemRef {
            id: item_id(&reply, 0)?,
            alias: (!alias.is_empty()).then_some(alias),
            valid_till: UnixMillis::from_millis(reply.num(1)?),
            seq: reply.num(2)?,
            key_valid_till: UnixMillis::from_millis(reply.num(3)?),
        })
    }

    async fn events(
        &self,
        key: &str,
        id: &str,
        query: EventQuery,
    ) -> Result<EventsPage, StoreError> {
        let access = self.access_key(key, "reading an item's events")?;
        let (id, alias) = match id_or_alias(id) {
            Ok(pair) => pair,
            Err(e) => return Err(self.after_key(&access, None, e).await),
        };
        let since = query.since.to_string();
        let args = [
            key,
            id.as_str(),
            alias.as_str(),
            since.as_str(),
            query.kind.map(EventKind::as_str).unwrap_or(""),
            if query.with_value { "1" } else { "0" },
        ];
        let reply = self
            .call(Op::Events, &args, Doing("read its events"))
            .await?;
        let id = item_id(&reply, 0)?;
        let oldest = u64::try_from(reply.int(1)?).ok();
        let gap = reply.int(2)? != 0;
        let latest = reply.num(3)?;
        let value = reply.text(4)?;
        let mut events = Vec::with_capacity((reply.len() - 5) / 3);
        let mut i = 5;
        while i + 2 < reply.len() {
            let kind = reply.text(i + 2)?.parse().map_err(StoreError::Backend)?;
            events.push(Event {
                seq: reply.num(i)?,
                kind,
                id,
                at: UnixMillis::from_millis(reply.num(i + 1)?),
                value: None,
            });
            i += 3;
        }
        if !value.is_empty() {
            if let Some(last) = events.last_mut() {
                last.value = Some(json(value)?);
            }
        }
        Ok(EventsPage {
            id,
            events,
            oldest,
            gap,
            latest,
        })
    }

    async fn info(&self) -> Result<StoreInfo, StoreError> {
        let mut conn = self.conn.clone();
        let (items, bytes, seq): (Option<i64>, Option<i64>, Option<u64>) = redis::pipe()
            .cmd("HGET")
            .arg("effex:stats")
            .arg("items")
            .cmd("HGET")
            .arg("effex:stats")
            .arg("bytes")
            .cmd("GET")
            .arg("effex:seq")
            .query_async(&mut conn)
            .await
            .map_err(|e| refusal::from_redis(e, self.url()))?;
        let count = |n: Option<i64>| usize::try_from(n.unwrap_or(0)).unwrap_or(0);
        Ok(StoreInfo {
            store: "redis",
            items: count(items),
            bytes: count(bytes),
            latest_seq: seq.unwrap_or(0),
            max_size: self.config.limits.max_size,
            max_lifetime: self.config.limits.max_lifetime,
        })
    }
}

impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn info(&self) -> StoreFuture<'_, StoreInfo> {
        Box::pin(self.shared.info())
    }

    fn make_keys<'a>(&'a self, boss: &'a str, request: KeysRequest) -> StoreFuture<'a, KeysReply> {
        Box::pin(self.shared.make_keys(boss, request))
    }

    fn write<'a>(&'a self, key: &'a str, item: WriteItem) -> StoreFuture<'a, Written> {
        Box::pin(self.shared.write(key, item))
    }

    fn read<'a>(&'a self, key: &'a str, id: &'a str, intent: bool) -> StoreFuture<'a, ReadItem> {
        Box::pin(self.shared.read(key, id, intent))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        update: UpdateItem,
    ) -> StoreFuture<'a, Updated> {
        Box::pin(self.shared.update(key, id, update))
    }

    fn remove<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, Removed> {
        Box::pin(self.shared.remove(key, id))
    }

    fn alias<'a>(&'a self, key: &'a str, alias: &'a str, id: &'a str) -> StoreFuture<'a, Aliased> {
        Box::pin(self.shared.alias(key, alias, id))
    }

    fn resolve<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ItemId> {
        Box::pin(self.shared.resolve(id))
    }

    fn check_read<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, ItemRef> {
        Box::pin(self.shared.check_read(key, id))
    }

    fn events<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        query: EventQuery,
    ) -> StoreFuture<'a, EventsPage> {
        Box::pin(self.shared.events(key, id, query))
    }

    fn latest_seq(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.shared.latest_seq())
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.shared.events.subscribe()
    }

    fn metrics(&self) -> Option<&StoreMetrics> {
        Some(&self.shared.metrics)
    }
}
