//! `MemoryStore`: the embedded, in-process [`Store`]; owns its sharded maps, the
//! event log and the expiry clock task, and nothing outside this process.
//!
//! # Layout and locking
//!
//! - Items, keys and aliases each live in `shards` maps behind their own
//!   `RwLock` (std locks; a poisoned lock is recovered, since no critical
//!   section here can leave a map half-changed). Reads take a read lock on one
//!   shard; nothing takes a lock on the whole store, so 64 clients do not queue
//!   on one lock.
//! - Each shard also holds an ordered deadline set (`BTreeSet<(Instant, id)>`)
//!   kept under the same lock as the map, so an insert and its deadline are
//!   one step. The single expiry clock ([`expiry`](super::expiry)) sleeps until
//!   the soonest deadline of all shards and is woken early when a sooner one is
//!   added. The clock may run late, so an operation that finds a due item
//!   the clock has not expired yet expires it itself, through the same step
//!   (`expire_item`, under the shard's write lock): the `expire` is logged
//!   and sent once, by whoever comes first, before anyone is told the item
//!   is gone.
//! - Lock order: alias shard → item shard → sequencer. Key shards are never
//!   held while another lock is taken.
//! - The sequencer (a tiny mutex) assigns the next seq and sends the event on
//!   the broadcast channel in one step, so receivers see events in seq order.
//!   An alias re-point is sent under it too (with the alias shard held), with
//!   the latest seq read in the same step, so it arrives exactly between the
//!   events before and after it.
//!
//! # Memory
//!
//! An item keeps its value once, as JSON text ([`JsonText`], an `Arc<str>`),
//! not as a `serde_json::Value` tree (which costs 2–3× the text for typical
//! objects). Ids and keys are kept as `u128`, not strings. A 1 KiB item costs
//! about 1.4 KiB: the text, ~130 bytes of entry, its map slot and its deadline.
//! Events in the log are 24 bytes and carry no value; a live `update` event
//! shares the item's `JsonText` with the broadcast channel only.

use crate::secret::same_secret;
use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::event_log::{EventLog, LogQuery, Logged, Retention};
use super::expiry::{self, Expire, Wake};
use super::intent::{locked, Intent, IntentRules};
use super::quota::{KeyUsage, Limits, Quotas};
use super::time::{self, Now};
use super::types::{
    hex128, parse_hex128, random128, AccessKey, Aliased, Event, EventKind, EventQuery, EventsPage,
    ItemId, ItemRef, KeyKind, ReadItem, Removed, StoreEvent, StoreInfo, UpdateItem, Updated,
    WriteItem, Written,
};
use super::{JsonText, Store, StoreError, StoreFuture, StoreMetrics};
use crate::protocol::rest::{KeysReply, KeysRequest};
use crate::protocol::time::UnixMillis;

/// Longest alias accepted, in bytes.
const MAX_ALIAS_LEN: usize = 128;

/// Most shards accepted (more only costs memory and clock scans).
const MAX_SHARDS: usize = 1024;

/// Settings of a [`MemoryStore`]. Every field has a default except `boss_key`,
/// which [`MemoryStore::new`] requires to be set.
///
/// ```
/// use std::time::Duration;
/// use effex::store::MemoryStoreConfig;
///
/// let config = MemoryStoreConfig {
///     boss_key: "a long random secret".into(),
///     max_lifetime: Duration::from_secs(600),
///     ..Default::default()
/// };
/// assert_eq!(config.max_size, 1024 * 1024);
/// ```
#[derive(Clone)]
pub struct MemoryStoreConfig {
    /// The secret that makes access keys. Defaults to empty, which
    /// [`MemoryStore::new`] refuses: set it.
    pub boss_key: String,
    /// An item's lifetime when the write gives none. Defaults to 3600 s.
    pub default_lifetime: Duration,
    /// The longest lifetime an item gets. Defaults to 86,400 s (one day).
    pub max_lifetime: Duration,
    /// The largest serialized value accepted, in bytes (larger: 413).
    /// Defaults to 1 MiB (1,048,576).
    pub max_size: usize,
    /// A key's lifetime when `make_keys` gives none. Defaults to 3600 s.
    pub key_lifetime: Duration,
    /// The longest lifetime a key gets. Defaults to 30 days.
    pub max_key_lifetime: Duration,
    /// The most keys one `make_keys` call makes. Defaults to 100.
    pub max_keys_per_request: usize,
    /// The most keys an item's `readers` (and, separately, `updaters`) list
    /// holds. Defaults to 100.
    pub max_list_len: usize,
    /// How long an update intent locks an item. Defaults to 10 s.
    pub intent_lifetime: Duration,
    /// The longest one key may hold an item's update intent in a row, however
    /// often it renews (each renewal's lock ends by then at the latest). After
    /// a hold has run this long, the holder's own intent reads get 423 for one
    /// `intent_lifetime`, so that others can take the item. At least
    /// `intent_lifetime`. Defaults to 60 s.
    pub intent_max_hold: Duration,
    /// The most value bytes (serialized JSON) the store holds over all live
    /// items; a write or update that would pass it gets 507. Defaults to 1 GiB
    /// (1,073,741,824).
    pub max_total_bytes: usize,
    /// The most live items one writer key owns; one more gets 429. Defaults
    /// to 100,000.
    pub max_items_per_key: usize,
    /// The most value bytes one writer key's live items hold (updates by
    /// updater keys count against the owner); more gets 429. Defaults to
    /// 256 MiB (268,435,456).
    pub max_bytes_per_key: usize,
    /// The most aliases one writer key holds (re-pointing one is free); one
    /// more gets 429. Defaults to 10,000.
    pub max_aliases_per_key: usize,
    /// The most events kept per item (older ones are dropped, which a query
    /// reports as a `gap`). Defaults to 1,000.
    pub max_events_per_item: usize,
    /// How long events are kept, also after their item is gone. Defaults to
    /// 3600 s (one hour).
    pub event_retention: Duration,
    /// Capacity of the live-event broadcast channel; a receiver more than this
    /// many events behind lags and catches up from the log. Defaults to 65,536.
    pub event_capacity: usize,
    /// Number of lock shards for items, keys and aliases (rounded up to a power
    /// of two, at most 1024). Defaults to 32.
    pub shards: usize,
    /// Test-only: when true, the store's expiry clock (the memory store's
    /// expiry task, the Redis store's sweeper) is not started, so a due item
    /// stays unexpired until an operation notices it (lazy expiry). Keys,
    /// aliases and tombstones then are never dropped. Defaults to false.
    #[doc(hidden)]
    pub hold_expiry_clock: bool,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            boss_key: String::new(),
            default_lifetime: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(86_400),
            max_size: 1024 * 1024,
            key_lifetime: Duration::from_secs(3600),
            max_key_lifetime: Duration::from_secs(30 * 86_400),
            max_keys_per_request: 100,
            max_list_len: 100,
            intent_lifetime: Duration::from_secs(10),
            intent_max_hold: Duration::from_secs(60),
            max_total_bytes: 1 << 30,
            max_items_per_key: 100_000,
            max_bytes_per_key: 256 << 20,
            max_aliases_per_key: 10_000,
            max_events_per_item: 1000,
            event_retention: Duration::from_secs(3600),
            event_capacity: 65_536,
            shards: 32,
            hold_expiry_clock: false,
        }
    }
}

impl fmt::Debug for MemoryStoreConfig {
    /// Like a derived `Debug`, but never prints the boss key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreConfig")
            .field("boss_key", &"<redacted>")
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("max_size", &self.max_size)
            .field("key_lifetime", &self.key_lifetime)
            .field("max_key_lifetime", &self.max_key_lifetime)
            .field("max_keys_per_request", &self.max_keys_per_request)
            .field("max_list_len", &self.max_list_len)
            .field("intent_lifetime", &self.intent_lifetime)
            .field("intent_max_hold", &self.intent_max_hold)
            .field("max_total_bytes", &self.max_total_bytes)
            .field("max_items_per_key", &self.max_items_per_key)
            .field("max_bytes_per_key", &self.max_bytes_per_key)
            .field("max_aliases_per_key", &self.max_aliases_per_key)
            .field("max_events_per_item", &self.max_events_per_item)
            .field("event_retention", &self.event_retention)
            .field("event_capacity", &self.event_capacity)
            .field("shards", &self.shards)
            .field("hold_expiry_clock", &self.hold_expiry_clock)
            .finish()
    }
}

impl MemoryStoreConfig {
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        let bad = |msg: &str| Err(StoreError::BadRequest(format!("MemoryStoreConfig: {msg}")));
        if self.boss_key.is_empty() {
            return bad(
                "boss_key is empty: set it to a secret (it is the only way to make access keys)",
            );
        }
        for (name, d) in [
            ("default_lifetime", self.default_lifetime),
            ("max_lifetime", self.max_lifetime),
            ("key_lifetime", self.key_lifetime),
            ("max_key_lifetime", self.max_key_lifetime),
            ("intent_lifetime", self.intent_lifetime),
            ("intent_max_hold", self.intent_max_hold),
            ("event_retention", self.event_retention),
        ] {
            if d.is_zero() {
                return bad(&format!("{name} must be more than 0"));
            }
        }
        for (name, n) in [
            ("max_size", self.max_size),
            ("max_keys_per_request", self.max_keys_per_request),
            ("max_events_per_item", self.max_events_per_item),
            ("event_capacity", self.event_capacity),
            ("max_total_bytes", self.max_total_bytes),
            ("max_items_per_key", self.max_items_per_key),
            ("max_bytes_per_key", self.max_bytes_per_key),
            ("max_aliases_per_key", self.max_aliases_per_key),
        ] {
            if n == 0 {
                return bad(&format!("{name} must be more than 0"));
            }
        }
        if self.intent_max_hold < self.intent_lifetime {
            return bad(&format!(
                "intent_max_hold ({:?}) is shorter than intent_lifetime ({:?}): \
                 raise intent_max_hold or shorten intent_lifetime",
                self.intent_max_hold, self.intent_lifetime
            ));
        }
        // tokio's broadcast channel refuses larger capacities.
        if self.event_capacity > usize::MAX / 2 {
            return bad("event_capacity is too large");
        }
        Ok(())
    }
}

/// The embedded, in-process store (see the [module docs](super) for the rules).
///
/// Create it inside a tokio runtime (it starts its expiry clock there); the
/// clock stops when the store is dropped. Share it as `Arc<dyn Store>`.
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("config", &self.inner.config)
            .field("latest_seq", &self.inner.latest_seq())
            .finish()
    }
}

impl MemoryStore {
    /// Validates `config` and starts the store's expiry clock on the current
    /// tokio runtime (400 for a bad config, 500 outside a runtime).
    pub fn new(config: MemoryStoreConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            StoreError::Backend(
                "MemoryStore::new must run inside a tokio runtime (it starts the expiry clock)"
                    .into(),
            )
        })?;
        let shards = config.shards.clamp(1, MAX_SHARDS).next_power_of_two();
        let (events, _) = broadcast::channel(config.event_capacity);
        let wake = Arc::new(Wake::new());
        let quotas = Quotas::new(Limits {
            max_total_bytes: config.max_total_bytes,
            max_items_per_key: config.max_items_per_key,
            max_bytes_per_key: config.max_bytes_per_key,
            max_aliases_per_key: config.max_aliases_per_key,
        });
        let inner = Arc::new(Inner {
            retention: Retention {
                max_events: config.max_events_per_item,
                max_age_ms: time::duration_ms(config.event_retention),
            },
            intent_rules: IntentRules {
                lifetime: config.intent_lifetime,
                max_hold: config.intent_max_hold,
            },
            config,
            metrics: StoreMetrics::new()?,
            mask: shards - 1,
            items: (0..shards).map(|_| RwLock::default()).collect(),
            keys: (0..shards).map(|_| RwLock::default()).collect(),
            aliases: (0..shards).map(|_| RwLock::default()).collect(),
            alias_hasher: RandomState::new(),
            sequencer: Mutex::new(()),
            latest: AtomicU64::new(0),
            live_items: AtomicUsize::new(0),
            quotas,
            events,
            wake: Arc::clone(&wake),
        });
        if !inner.config.hold_expiry_clock {
            runtime.spawn(expiry::run(Arc::downgrade(&inner), wake));
        }
        Ok(MemoryStore { inner })
    }

    /// The config the store runs with.
    pub fn config(&self) -> &MemoryStoreConfig {
        &self.inner.config
    }
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn info(&self) -> StoreFuture<'_, StoreInfo> {
        let inner = &self.inner;
        ready(Ok(StoreInfo {
            store: "memory",
            items: inner.live_items.load(Ordering::Relaxed),
            bytes: inner.quotas.stored_bytes(),
            latest_seq: inner.latest_seq(),
            max_size: inner.config.max_size,
            max_lifetime: inner.config.max_lifetime,
        }))
    }

    fn make_keys<'a>(&'a self, boss: &'a str, request: KeysRequest) -> StoreFuture<'a, KeysReply> {
        ready(self.inner.make_keys(boss, request))
    }

    fn write<'a>(&'a self, key: &'a str, item: WriteItem) -> StoreFuture<'a, Written> {
        ready(self.inner.write(key, item))
    }

    fn read<'a>(&'a self, key: &'a str, id: &'a str, intent: bool) -> StoreFuture<'a, ReadItem> {
        ready(self.inner.read(key, id, intent))
    }

    fn update<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        update: UpdateItem,
    ) -> StoreFuture<'a, Updated> {
        ready(self.inner.update(key, id, update))
    }

    fn remove<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, Removed> {
        ready(self.inner.remove(key, id))
    }

    fn alias<'a>(&'a self, key: &'a str, alias: &'a str, id: &'a str) -> StoreFuture<'a, Aliased> {
        ready(self.inner.alias(key, alias, id))
    }

    fn resolve<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ItemId> {
        ready(self.inner.resolve(id, &Now::read()).map(|(id, _)| id))
    }

    fn check_read<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, ItemRef> {
        ready(self.inner.check_read(key, id))
    }

    fn events<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        query: EventQuery,
    ) -> StoreFuture<'a, EventsPage> {
        ready(self.inner.events(key, id, query))
    }

    fn latest_seq(&self) -> StoreFuture<'_, u64> {
        ready(Ok(self.inner.latest_seq()))
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn metrics(&self) -> Option<&StoreMetrics> {
        Some(&self.inner.metrics)
    }
}

/// Every memory-store operation is synchronous: wrap its result.
fn ready<'a, T: Send + 'a>(result: Result<T, StoreError>) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(result))
}

// ---------------------------------------------------------------------------
// Internals

/// Hashes server-made random 128-bit ids by taking their high 64 bits.
///
/// Safe against hash flooding because only the store inserts ids (random
/// ones); callers can only look them up. The low bits pick the shard, so
/// using the high bits here keeps the buckets within a shard spread.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u128` keys; a simple fallback keeps the hasher total.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, n: u128) {
        self.0 = (n >> 64) as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One shard of items: the entries (live items and tombstones) and their deadlines.
#[derive(Default)]
struct ItemShard {
    map: IdMap<ItemId, Entry>,
    /// Live item: its expiry deadline; tombstone: when its log is dropped.
    due: BTreeSet<(Instant, ItemId)>,
}

/// An item, or the tombstone of a gone one (kept while its log is retained).
struct Entry {
    /// Random bits of the writer key that owns it.
    owner: u128,
    /// What the owner key holds; a live item's value bytes count in it.
    usage: Arc<KeyUsage>,
    /// Random bits of the listed reader keys (sorted).
    readers: Box<[u128]>,
    /// Random bits of the listed updater keys (sorted).
    updaters: Box<[u128]>,
    /// Created on the first event: a never-updated item carries no log.
    log: Option<Box<EventLog>>,
    state: State,
}

enum State {
    Live(Live),
    /// Removed or expired; the entry is dropped at `gc_at` (its last event's
    /// retention age).
    Gone {
        gc_at: Instant,
    },
}

struct Live {
    value: JsonText,
    /// When it was last written or updated.
    modified: UnixMillis,
    deadline: Instant,
    /// The wall time of `deadline`.
    valid_till: UnixMillis,
    intent: Option<Box<Intent>>,
}

/// What a key may do with one item (ordered: each level includes the lower ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    None,
    Read,
    Update,
    Owner,
}

impl Entry {
    fn access(&self, key: AccessKey) -> Access {
        match key.kind {
            KeyKind::Writer if key.bits == self.owner => Access::Owner,
            KeyKind::Updater if self.updaters.binary_search(&key.bits).is_ok() => Access::Update,
            KeyKind::Reader if self.readers.binary_search(&key.bits).is_ok() => Access::Read,
            _ => Access::None,
        }
    }

    /// The item if it is live at `now` (its deadline checked, not the clock's work).
    fn live(&self, now: &Now) -> Option<&Live> {
        match &self.state {
            State::Live(live) if live.deadline > now.instant => Some(live),
            _ => None,
        }
    }

    fn live_mut(&mut self, now: &Now) -> Option<&mut Live> {
        match &mut self.state {
            State::Live(live) if live.deadline > now.instant => Some(live),
            _ => None,
        }
    }
}

#[derive(Default)]
struct KeyShard {
    map: IdMap<u128, KeyEntry>,
    due: BTreeSet<(Instant, u128)>,
}

#[derive(Clone)]
struct KeyEntry {
    kind: KeyKind,
    deadline: Instant,
    /// What a writer key holds (items, bytes, aliases); `None` for other kinds.
    usage: Option<Arc<KeyUsage>>,
}

/// A valid writer key, as the operations that create things need it.
struct Writer {
    access: AccessKey,
    deadline: Instant,
    usage: Arc<KeyUsage>,
}

#[derive(Default)]
struct AliasShard {
    map: HashMap<Box<str>, AliasEntry>,
    /// When each alias's owner key expires (the alias is deleted then).
    due: BTreeSet<(Instant, Box<str>)>,
}

struct AliasEntry {
    owner: u128,
    /// What the owner key holds; this alias counts in it.
    usage: Arc<KeyUsage>,
    id: ItemId,
    owner_deadline: Instant,
}

/// Who is calling: the boss, or a valid access key.
enum Caller {
    Boss,
    Key(AccessKey, KeyEntry),
}

struct Inner {
    config: MemoryStoreConfig,
    /// How late expiries fire (see [`StoreMetrics`]).
    metrics: StoreMetrics,
    retention: Retention,
    intent_rules: IntentRules,
    mask: usize,
    items: Box<[RwLock<ItemShard>]>,
    keys: Box<[RwLock<KeyShard>]>,
    aliases: Box<[RwLock<AliasShard>]>,
    alias_hasher: RandomState,
    /// Held while a seq is assigned and its event sent (or an alias
    /// re-point is sent), so the broadcast channel carries events in seq
    /// order and re-points in their place among them.
    sequencer: Mutex<()>,
    latest: AtomicU64,
    live_items: AtomicUsize,
    quotas: Quotas,
    events: broadcast::Sender<StoreEvent>,
    wake: Arc<Wake>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.shutdown();
    }
}

fn forbidden(msg: impl Into<String>) -> StoreError {
    StoreError::Forbidden(msg.into())
}

fn gone(id: ItemId) -> StoreError {
    StoreError::NotFound(format!(
        "item {id} does not exist: it may have expired or been removed"
    ))
}

fn boss_cannot(what: &str) -> StoreError {
    forbidden(format!(
        "the boss key only makes access keys; {what} needs an access key"
    ))
}

/// Checks an alias name (see the module docs for the rules).
pub(crate) fn validate_alias(name: &str) -> Result<(), StoreError> {
    let ok_byte = |b: u8| (0x21..=0x7e).contains(&b) && !matches!(b, b'/' | b'?' | b'#' | b'%');
    if name.is_empty() || name.len() > MAX_ALIAS_LEN || !name.bytes().all(ok_byte) {
        return Err(StoreError::BadRequest(format!(
            "alias {name:?} must be 1 to {MAX_ALIAS_LEN} bytes of printable ASCII \
             without spaces or / ? # %"
        )));
    }
    if parse_hex128(name).is_some() {
        return Err(StoreError::BadRequest(format!(
            "alias {name:?} looks like an item id (32 hex digits): choose another name"
        )));
    }
    Ok(())
}

impl Inner {
    fn latest_seq(&self) -> u64 {
        self.latest.load(Ordering::SeqCst)
    }

    fn item_shard(&self, id: ItemId) -> &RwLock<ItemShard> {
        &self.items[(id.0 as usize) & self.mask]
    }

    fn key_shard(&self, bits: u128) -> &RwLock<KeyShard> {
        &self.keys[(bits as usize) & self.mask]
    }

    fn alias_shard(&self, name: &str) -> &RwLock<AliasShard> {
        &self.aliases[(self.alias_hasher.hash_one(name) as usize) & self.mask]
    }

    /// 401 unless `key` is the boss key or a known, unexpired access key.
    fn caller(&self, key: &str, now: &Now) -> Result<Caller, StoreError> {
        if same_secret(key.as_bytes(), self.config.boss_key.as_bytes()) {
            return Ok(Caller::Boss);
        }
        let access = AccessKey::parse(key).ok_or(StoreError::UnknownKey)?;
        let shard = read_lock(self.key_shard(access.bits));
        match shard.map.get(&access.bits) {
            Some(entry) if entry.kind == access.kind && entry.deadline > now.instant => {
                Ok(Caller::Key(access, entry.clone()))
            }
            _ => Err(StoreError::UnknownKey),
        }
    }

    /// A valid access key of any kind (the boss key gets 403).
    fn access_key(&self, key: &str, now: &Now, what: &str) -> Result<AccessKey, StoreError> {
        match self.caller(key, now)? {
            Caller::Boss => Err(boss_cannot(what)),
            Caller::Key(access, _) => Ok(access),
        }
    }

    /// A valid writer key (any other key gets 403).
    fn writer_key(&self, key: &str, now: &Now, what: &str) -> Result<Writer, StoreError> {
        match self.caller(key, now)? {
            Caller::Boss => Err(boss_cannot(what)),
            Caller::Key(access, entry) if access.kind == KeyKind::Writer => {
                let usage = entry.usage.ok_or_else(|| {
                    StoreError::Backend("a writer key has no usage counters".into())
                })?;
                Ok(Writer {
                    access,
                    deadline: entry.deadline,
                    usage,
                })
            }
            Caller::Key(access, _) => Err(forbidden(format!(
                "{what} needs a writer key; this is a {} key",
                access.kind
            ))),
        }
    }

    /// The item `id_or_alias` names, and the alias if it was one.
    fn resolve(
        &self,
        id_or_alias: &str,
        now: &Now,
    ) -> Result<(ItemId, Option<String>), StoreError> {
        if let Some(bits) = parse_hex128(id_or_alias) {
            return Ok((ItemId(bits), None));
        }
        if id_or_alias.is_empty() {
            return Err(StoreError::BadRequest("give an item id or an alias".into()));
        }
        let shard = read_lock(self.alias_shard(id_or_alias));
        match shard.map.get(id_or_alias) {
            Some(alias) if alias.owner_deadline > now.instant => {
                Ok((alias.id, Some(id_or_alias.to_owned())))
            }
            _ => Err(StoreError::NotFound(format!(
                "no item or alias {id_or_alias:?}: it may have expired or been removed"
            ))),
        }
    }

    /// Assigns the next seq, sends the event live, and logs it in `log`.
    /// Call with the item's shard write-locked.
    fn emit(
        &self,
        log: &mut Option<Box<EventLog>>,
        kind: EventKind,
        id: ItemId,
        at: UnixMillis,
        now: UnixMillis,
        value: Option<JsonText>,
    ) -> u64 {
        let seq = {
            let _order = lock(&self.sequencer);
            let seq = self.latest.load(Ordering::SeqCst) + 1;
            self.latest.store(seq, Ordering::SeqCst);
            // Err only means nobody is subscribed: the log still has it.
            let _ = self.events.send(StoreEvent::Item(Event {
                seq,
                kind,
                id,
                at,
                value,
            }));
            seq
        };
        log.get_or_insert_with(Box::default).push(
            Logged {
                seq,
                at: at.as_millis(),
                kind,
            },
            now.as_millis(),
            self.retention,
        );
        seq
    }

    fn make_keys(&self, boss: &str, request: KeysRequest) -> Result<KeysReply, StoreError> {
        let now = Now::read();
        if let Caller::Key(..) = self.caller(boss, &now)? {
            return Err(forbidden(
                "only the boss key makes access keys; this is an access key",
            ));
        }
        let count = request.count.unwrap_or(1);
        let max = self.config.max_keys_per_request;
        if count == 0 || count > max {
            return Err(StoreError::BadRequest(format!(
                "count {count} is out of range: ask for 1 to {max} keys"
            )));
        }
        let lifetime = request.seconds.unwrap_or(self.config.key_lifetime);
        if lifetime.is_zero() {
            return Err(StoreError::BadRequest("seconds must be more than 0".into()));
        }
        let lifetime = lifetime.min(self.config.max_key_lifetime);
        let deadline = time::add(now.instant, lifetime);
        let mut keys = Vec::with_capacity(count);
        while keys.len() < count {
            let access = AccessKey {
                kind: request.kind,
                bits: random128(),
            };
            let mut shard = write_lock(self.key_shard(access.bits));
            if shard.map.contains_key(&access.bits) {
                continue; // a 2^-128 chance; draw again
            }
            shard.map.insert(
                access.bits,
                KeyEntry {
                    kind: access.kind,
                    deadline,
                    usage: (access.kind == KeyKind::Writer).then(Arc::default),
                },
            );
            shard.due.insert((deadline, access.bits));
            drop(shard);
            keys.push(access.to_string());
        }
        self.wake.scheduled(deadline);
        Ok(KeysReply {
            kind: request.kind,
            keys,
            valid_till: now.wall_at(deadline),
        })
    }

    /// Parses a `readers`/`updaters` list into sorted, deduplicated key bits.
    fn key_list(
        &self,
        list: &[String],
        kind: KeyKind,
        field: &str,
    ) -> Result<Box<[u128]>, StoreError> {
        let max = self.config.max_list_len;
        if list.len() > max {
            return Err(StoreError::BadRequest(format!(
                "{field} lists {} keys; at most {max} are allowed",
                list.len()
            )));
        }
        let mut bits = Vec::with_capacity(list.len());
        for (i, key) in list.iter().enumerate() {
            match AccessKey::parse(key) {
                Some(access) if access.kind == kind => bits.push(access.bits),
                _ => {
                    return Err(StoreError::BadRequest(format!(
                        "{field}[{i}] is not a {kind} key (\"{}\" and 32 hex digits)",
                        kind.prefix()
                    )))
                }
            }
        }
        bits.sort_unstable();
        bits.dedup();
        Ok(bits.into_boxed_slice())
    }

    fn write(&self, key: &str, item: WriteItem) -> Result<Written, StoreError> {
        let now = Now::read();
        let writer = self.writer_key(key, &now, "writing an item")?;
        let lifetime = item.lifetime.unwrap_or(self.config.default_lifetime);
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
        let value = item.value;
        let size = value.len();
        if size > self.config.max_size {
            return Err(StoreError::TooLarge {
                size,
                max: self.config.max_size,
            });
        }
        // Capped by max_lifetime, and never past the writer key's own expiry.
        let deadline =
            time::add(now.instant, lifetime.min(self.config.max_lifetime)).min(writer.deadline);
        let lifetime = deadline.saturating_duration_since(now.instant);
        let valid_till = now.wall_at(deadline);
        let entry = Entry {
            owner: writer.access.bits,
            usage: Arc::clone(&writer.usage),
            readers,
            updaters,
            log: None,
            state: State::Live(Live {
                value,
                modified: now.wall,
                deadline,
                valid_till,
                intent: None,
            }),
        };
        let (id, seq) = match &item.alias {
            None => {
                self.quotas.charge_item(&writer.usage, size)?;
                self.insert_item(entry, deadline)
            }
            Some(alias) => {
                // Hold the alias shard across the insert so that the alias is
                // still ours when it is pointed at the new item.
                let mut shard = write_lock(self.alias_shard(alias));
                let charged_alias = self.claim_alias(&shard, alias, &writer, &now)?;
                if let Err(e) = self.quotas.charge_item(&writer.usage, size) {
                    if charged_alias {
                        self.quotas.release_alias(&writer.usage);
                    }
                    return Err(e);
                }
                let (id, seq) = self.insert_item(entry, deadline);
                self.point_alias(&mut shard, alias, id, &writer);
                drop(shard);
                self.wake.scheduled(writer.deadline);
                (id, seq)
            }
        };
        self.wake.scheduled(deadline);
        Ok(Written {
            id,
            lifetime,
            size,
            modified: now.wall,
            valid_till,
            seq,
            alias: item.alias,
        })
    }

    /// Turns an item into a tombstone kept until `gc_at`; a live one gives
    /// its share of the quotas back and leaves the live count. Returns the
    /// old state, for the caller to drop outside the lock.
    fn retire(&self, entry: &mut Entry, gc_at: Instant) -> State {
        let old = std::mem::replace(&mut entry.state, State::Gone { gc_at });
        if let State::Live(live) = &old {
            self.quotas.release_item(&entry.usage, live.value.len());
            self.live_items.fetch_sub(1, Ordering::Relaxed);
        }
        old
    }

    /// Inserts a new item under a fresh id; returns the id and the store's
    /// latest seq read before the item became visible (so every event of it
    /// gets a larger seq).
    fn insert_item(&self, entry: Entry, deadline: Instant) -> (ItemId, u64) {
        loop {
            let id = ItemId::random();
            let mut shard = write_lock(self.item_shard(id));
            if shard.map.contains_key(&id) {
                continue; // a 2^-128 chance; draw again
            }
            let seq = self.latest_seq();
            shard.map.insert(id, entry);
            shard.due.insert((deadline, id));
            self.live_items.fetch_add(1, Ordering::Relaxed);
            return (id, seq);
        }
    }

    /// Checks that `writer` may point `alias` (409 when another live writer
    /// key holds it) and charges a name new to it against its alias quota
    /// (429); true when charged. Call with the alias's shard write-locked and
    /// keep it locked until [`point_alias`](Self::point_alias), or give the
    /// charge back.
    fn claim_alias(
        &self,
        shard: &AliasShard,
        alias: &str,
        writer: &Writer,
        now: &Now,
    ) -> Result<bool, StoreError> {
        match shard.map.get(alias) {
            Some(existing) if existing.owner == writer.access.bits => Ok(false),
            Some(existing) if existing.owner_deadline > now.instant => Err(alias_conflict(alias)),
            _ => self.quotas.charge_alias(&writer.usage).map(|()| true),
        }
    }

    /// Points `alias` at `id` for `writer` and tells subscribers; call with
    /// its shard write-locked after [`claim_alias`](Self::claim_alias). A name
    /// taken over from an expired owner key gives that key's alias charge back.
    fn point_alias(&self, shard: &mut AliasShard, alias: &str, id: ItemId, writer: &Writer) {
        let owner_deadline = writer.deadline;
        let previous = shard.map.insert(
            alias.into(),
            AliasEntry {
                owner: writer.access.bits,
                usage: Arc::clone(&writer.usage),
                id,
                owner_deadline,
            },
        );
        if let Some(previous) = &previous {
            if previous.owner != writer.access.bits {
                self.quotas.release_alias(&previous.usage);
            }
        }
        if previous.is_none_or(|p| p.owner_deadline != owner_deadline) {
            shard.due.insert((owner_deadline, alias.into()));
        }
        // Under the sequencer, with the alias shard still held: every event
        // up to `since` was sent before this, every later one is sent after.
        let _order = lock(&self.sequencer);
        // Err only means nobody is subscribed.
        let _ = self.events.send(StoreEvent::AliasMoved {
            alias: alias.to_owned(),
            item: id,
            since: self.latest_seq(),
        });
    }

    fn read(&self, key: &str, id_or_alias: &str, intent: bool) -> Result<ReadItem, StoreError> {
        let now = Now::read();
        let access = self.access_key(key, &now, "reading an item")?;
        let (id, _) = self.resolve(id_or_alias, &now)?;
        if !intent {
            let shard = read_lock(self.item_shard(id));
            let entry = shard.map.get(&id).ok_or_else(|| gone(id))?;
            let Some(live) = entry.live(&now) else {
                drop(shard);
                self.expire_if_due(id, &now);
                return Err(gone(id));
            };
            if entry.access(access) < Access::Read {
                return Err(cannot_read(id));
            }
            return Ok(ReadItem {
                id,
                value: live.value.clone(),
                size: live.value.len(),
                modified: live.modified,
                seq: self.latest_seq(),
                valid_till: live.valid_till,
                intent: None,
                intent_expires: None,
            });
        }
        let mut shard = write_lock(self.item_shard(id));
        self.live_or_expire(&mut shard, id, &now)?;
        let entry = shard.map.get_mut(&id).ok_or_else(|| gone(id))?;
        if entry.access(access) < Access::Update {
            return Err(cannot_update(id, "read it with an update intent"));
        }
        let live = entry.live_mut(&now).ok_or_else(|| gone(id))?;
        let intent = self
            .intent_rules
            .take(live.intent.as_deref(), access.bits, &now)?;
        let reply = ReadItem {
            id,
            value: live.value.clone(),
            size: live.value.len(),
            modified: live.modified,
            seq: self.latest_seq(),
            valid_till: live.valid_till,
            intent: Some(hex128(intent.id)),
            intent_expires: Some(intent.expires_at),
        };
        live.intent = Some(Box::new(intent));
        Ok(reply)
    }

    fn update(
        &self,
        key: &str,
        id_or_alias: &str,
        update: UpdateItem,
    ) -> Result<Updated, StoreError> {
        let now = Now::read();
        let access = self.access_key(key, &now, "updating an item")?;
        let (id, _) = self.resolve(id_or_alias, &now)?;
        let intent = match &update.intent {
            None => None,
            Some(s) => Some(parse_hex128(s).ok_or_else(|| {
                StoreError::BadRequest(format!(
                    "intent {s:?} is not an intent id (32 hex digits from a read with intent)"
                ))
            })?),
        };
        let value = update.value;
        let size = value.len();
        let mut shard = write_lock(self.item_shard(id));
        self.live_or_expire(&mut shard, id, &now)?;
        let entry = shard.map.get_mut(&id).ok_or_else(|| gone(id))?;
        let by_owner = match entry.access(access) {
            Access::Owner => true,
            Access::Update => false,
            Access::Read | Access::None => return Err(cannot_update(id, "update it")),
        };
        if size > self.config.max_size {
            return Err(StoreError::TooLarge {
                size,
                max: self.config.max_size,
            });
        }
        let live = entry.live_mut(&now).ok_or_else(|| gone(id))?;
        if let Some(held) = &live.intent {
            // The owner's update is never locked out: it breaks the intent.
            if held.in_force(&now) && intent != Some(held.id) && !by_owner {
                return Err(locked(held.expires, &now));
            }
        }
        let old_size = live.value.len();
        self.quotas.charge_resize(&entry.usage, old_size, size)?;
        // Found live above under the same lock and `now`: cannot be gone.
        let live = entry.live_mut(&now).ok_or_else(|| gone(id))?;
        if let Some(held) = live.intent.as_mut() {
            held.lapse(&now);
        }
        let old = std::mem::replace(&mut live.value, value.clone());
        live.modified = now.wall;
        let value = Some(value);
        let seq = self.emit(
            &mut entry.log,
            EventKind::Update,
            id,
            now.wall,
            now.wall,
            value,
        );
        drop(shard);
        drop(old); // freed outside the lock
        Ok(Updated {
            id,
            modified: now.wall,
            seq,
            size,
        })
    }

    fn remove(&self, key: &str, id_or_alias: &str) -> Result<Removed, StoreError> {
        let now = Now::read();
        let access = self.access_key(key, &now, "removing an item")?;
        let (id, _) = self.resolve(id_or_alias, &now)?;
        let gc_at = time::add(now.instant, self.config.event_retention);
        let mut guard = write_lock(self.item_shard(id));
        let shard = &mut *guard;
        self.live_or_expire(shard, id, &now)?;
        let entry = shard.map.get_mut(&id).ok_or_else(|| gone(id))?;
        let deadline = entry.live(&now).ok_or_else(|| gone(id))?.deadline;
        if entry.access(access) < Access::Owner {
            return Err(forbidden(format!(
                "only the writer key that wrote item {id} may remove it"
            )));
        }
        let old = self.retire(entry, gc_at);
        let seq = self.emit(
            &mut entry.log,
            EventKind::Remove,
            id,
            now.wall,
            now.wall,
            None,
        );
        shard.due.remove(&(deadline, id));
        shard.due.insert((gc_at, id));
        drop(guard);
        drop(old); // the value is freed outside the lock
        self.wake.scheduled(gc_at);
        Ok(Removed { id, seq })
    }

    fn alias(&self, key: &str, alias: &str, id_or_alias: &str) -> Result<Aliased, StoreError> {
        let now = Now::read();
        let writer = self.writer_key(key, &now, "making an alias")?;
        validate_alias(alias)?;
        let (id, _) = self.resolve(id_or_alias, &now)?;
        {
            let shard = read_lock(self.item_shard(id));
            let entry = shard.map.get(&id).ok_or_else(|| gone(id))?;
            entry.live(&now).ok_or_else(|| gone(id))?;
            if entry.access(writer.access) < Access::Owner {
                return Err(forbidden(format!(
                    "an alias may only point at an item its writer key wrote; item {id} is not yours"
                )));
            }
        }
        let mut shard = write_lock(self.alias_shard(alias));
        self.claim_alias(&shard, alias, &writer, &now)?;
        self.point_alias(&mut shard, alias, id, &writer);
        drop(shard);
        self.wake.scheduled(writer.deadline);
        Ok(Aliased {
            alias: alias.to_owned(),
            id,
        })
    }

    fn check_read(&self, key: &str, id_or_alias: &str) -> Result<ItemRef, StoreError> {
        let now = Now::read();
        let (access, key_entry) = match self.caller(key, &now)? {
            Caller::Boss => return Err(boss_cannot("watching an item")),
            Caller::Key(access, entry) => (access, entry),
        };
        let (id, alias) = self.resolve(id_or_alias, &now)?;
        let shard = read_lock(self.item_shard(id));
        let entry = shard.map.get(&id).ok_or_else(|| gone(id))?;
        let Some(live) = entry.live(&now) else {
            drop(shard);
            self.expire_if_due(id, &now);
            return Err(gone(id));
        };
        if entry.access(access) < Access::Read {
            return Err(cannot_read(id));
        }
        Ok(ItemRef {
            id,
            alias,
            valid_till: live.valid_till,
            seq: self.latest_seq(),
            key_valid_till: now.wall_at(key_entry.deadline),
        })
    }

    fn events(
        &self,
        key: &str,
        id_or_alias: &str,
        query: EventQuery,
    ) -> Result<EventsPage, StoreError> {
        let now = Now::read();
        let access = self.access_key(key, &now, "reading an item's events")?;
        let (id, _) = self.resolve(id_or_alias, &now)?;
        // A due item the clock has not reached yet: its expire goes in the
        // log first, so a query after it finds it.
        self.expire_if_due(id, &now);
        let (mut found, current) = {
            let shard = read_lock(self.item_shard(id));
            let entry = shard.map.get(&id).ok_or_else(|| {
                StoreError::NotFound(format!(
                    "item {id} does not exist, or has been gone longer than the event log is kept"
                ))
            })?;
            if entry.access(access) < Access::Read {
                return Err(cannot_read(id));
            }
            let found = match &entry.log {
                Some(log) => log.query(
                    id,
                    query.since,
                    query.kind,
                    now.wall.as_millis(),
                    self.retention,
                ),
                None => LogQuery {
                    events: Vec::new(),
                    oldest: None,
                    gap: false,
                    newest: None,
                },
            };
            // The current value is the newest update's value only while that
            // update is the item's latest event.
            let current = match (&entry.state, found.newest) {
                (State::Live(live), Some(newest))
                    if query.with_value && newest.kind == EventKind::Update =>
                {
                    Some((newest.seq, live.value.clone()))
                }
                _ => None,
            };
            (found, current)
        };
        if let Some((seq, text)) = current {
            if let Some(last) = found.events.last_mut().filter(|e| e.seq == seq) {
                last.value = Some(text);
            }
        }
        // An `after` above the latest seq comes from a client that saw history
        // this store no longer has: a gap, never a silent miss. (Seqs only
        // grow, so it was above the latest for the whole query too.)
        let latest = self.latest_seq();
        Ok(EventsPage {
            id,
            events: std::mem::take(&mut found.events),
            oldest: found.oldest,
            gap: found.gap || query.since > latest,
            latest,
        })
    }

    // -- the expiry clock's work --------------------------------------------

    /// Expires the due items of one shard and drops tombstones whose log has
    /// aged out; returns the shard's next deadline.
    fn tick_items(&self, lock: &RwLock<ItemShard>, now: &Now) -> Option<Instant> {
        expire_due(lock, now.instant, |shard, id| {
            if self.expire_item(shard, id, now).is_some() {
                return;
            }
            if let Some(State::Gone { gc_at }) = shard.map.get(&id).map(|e| &e.state) {
                if *gc_at <= now.instant {
                    shard.map.remove(&id);
                }
            }
            // Otherwise a stale deadline.
        })
    }

    /// THE expiry claim, taken by the expiry clock and by every operation
    /// that finds a due item the clock has not reached yet: if item `id` is
    /// live but its deadline has passed at `now`, turns it into a tombstone
    /// and logs (and sends) its `expire` event; returns that event's seq.
    /// Call with the item's shard write-locked: the state check and the
    /// change are one step, so whoever comes first expires the item and
    /// everyone else finds it gone (`None`).
    fn expire_item(&self, shard: &mut ItemShard, id: ItemId, now: &Now) -> Option<u64> {
        let entry = shard.map.get_mut(&id)?;
        let (deadline, at) = match &entry.state {
            State::Live(live) if live.deadline <= now.instant => (live.deadline, live.valid_till),
            _ => return None,
        };
        // The clock has taken it off the deadline set already; an access has not.
        shard.due.remove(&(deadline, id));
        self.metrics
            .expired_late(now.instant.saturating_duration_since(deadline));
        let gc_at = time::add(now.instant, self.config.event_retention);
        let old = self.retire(entry, gc_at);
        let seq = self.emit(&mut entry.log, EventKind::Expire, id, at, now.wall, None);
        shard.due.insert((gc_at, id));
        drop(old);
        Some(seq)
    }

    /// For an operation that holds no lock of item `id`'s shard: expires the
    /// item if it is due ([`expire_item`](Self::expire_item), taking the
    /// write lock only then; a read lock otherwise).
    fn expire_if_due(&self, id: ItemId, now: &Now) {
        let lock = self.item_shard(id);
        let due = read_lock(lock).map.get(&id).is_some_and(
            |entry| matches!(&entry.state, State::Live(live) if live.deadline <= now.instant),
        );
        if due {
            self.expire_item(&mut write_lock(lock), id, now);
        }
    }

    /// For an operation holding item `id`'s shard write-locked: Ok when the
    /// item is live at `now`; otherwise expires it if it is due
    /// ([`expire_item`](Self::expire_item)) and answers 404.
    fn live_or_expire(
        &self,
        shard: &mut ItemShard,
        id: ItemId,
        now: &Now,
    ) -> Result<(), StoreError> {
        if shard.map.get(&id).is_some_and(|e| e.live(now).is_some()) {
            return Ok(());
        }
        self.expire_item(shard, id, now);
        Err(gone(id))
    }

    fn tick_keys(&self, lock: &RwLock<KeyShard>, now: &Now) -> Option<Instant> {
        expire_due(lock, now.instant, |shard, bits| {
            if shard
                .map
                .get(&bits)
                .is_some_and(|k| k.deadline <= now.instant)
            {
                shard.map.remove(&bits);
            }
        })
    }

    fn tick_aliases(&self, lock: &RwLock<AliasShard>, now: &Now) -> Option<Instant> {
        expire_due(lock, now.instant, |shard, name| {
            if shard
                .map
                .get(&name)
                .is_some_and(|a| a.owner_deadline <= now.instant)
            {
                if let Some(gone) = shard.map.remove(&name) {
                    self.quotas.release_alias(&gone.usage);
                }
            }
        })
    }
}

/// A shard whose entries fall due at deadlines (items, keys, aliases).
trait DueShard {
    type Key: Ord;
    fn due(&self) -> &BTreeSet<(Instant, Self::Key)>;
    fn due_mut(&mut self) -> &mut BTreeSet<(Instant, Self::Key)>;
}

impl DueShard for ItemShard {
    type Key = ItemId;
    fn due(&self) -> &BTreeSet<(Instant, ItemId)> {
        &self.due
    }
    fn due_mut(&mut self) -> &mut BTreeSet<(Instant, ItemId)> {
        &mut self.due
    }
}

impl DueShard for KeyShard {
    type Key = u128;
    fn due(&self) -> &BTreeSet<(Instant, u128)> {
        &self.due
    }
    fn due_mut(&mut self) -> &mut BTreeSet<(Instant, u128)> {
        &mut self.due
    }
}

impl DueShard for AliasShard {
    type Key = Box<str>;
    fn due(&self) -> &BTreeSet<(Instant, Box<str>)> {
        &self.due
    }
    fn due_mut(&mut self) -> &mut BTreeSet<(Instant, Box<str>)> {
        &mut self.due
    }
}

/// The expiry clock's pass over one shard: takes each deadline that has
/// passed off the shard and hands its key to `expire` (under the write lock;
/// it may schedule new deadlines, which are handled in the same pass if
/// already due). Returns the shard's next deadline. Only a read lock when
/// nothing is due.
fn expire_due<S: DueShard>(
    lock: &RwLock<S>,
    now: Instant,
    mut expire: impl FnMut(&mut S, S::Key),
) -> Option<Instant> {
    match read_lock(lock).due().first() {
        Some((t, _)) if *t > now => return Some(*t),
        None => return None,
        Some(_) => {}
    }
    let mut guard = write_lock(lock);
    let shard = &mut *guard;
    while shard.due().first().is_some_and(|(t, _)| *t <= now) {
        let Some((_, key)) = shard.due_mut().pop_first() else {
            break;
        };
        expire(shard, key);
    }
    shard.due().first().map(|(t, _)| *t)
}

impl Expire for Inner {
    fn tick(&self, now: Instant) -> Option<Instant> {
        let now = Now {
            instant: now,
            wall: UnixMillis::now(),
        };
        let items = self.items.iter().map(|s| self.tick_items(s, &now));
        let keys = self.keys.iter().map(|s| self.tick_keys(s, &now));
        let aliases = self.aliases.iter().map(|s| self.tick_aliases(s, &now));
        items.chain(keys).chain(aliases).flatten().min()
    }
}

fn cannot_read(id: ItemId) -> StoreError {
    forbidden(format!(
        "this key may not read item {id}: use its writer key or a key listed in its readers or updaters"
    ))
}

fn cannot_update(id: ItemId, what: &str) -> StoreError {
    forbidden(format!(
        "this key may not {what}: item {id} can be updated only by its writer key or a key listed in its updaters"
    ))
}

fn alias_conflict(alias: &str) -> StoreError {
    StoreError::Conflict(format!(
        "alias {alias:?} belongs to another writer key: choose another name"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> MemoryStore {
        MemoryStore::new(MemoryStoreConfig {
            boss_key: "boss".into(),
            ..MemoryStoreConfig::default()
        })
        .expect("a valid config, inside a runtime")
    }

    async fn writer(store: &MemoryStore) -> String {
        let mut keys = store
            .make_keys("boss", KeysRequest::new(KeyKind::Writer))
            .await
            .expect("a writer key");
        keys.keys.remove(0)
    }

    /// Everything the receiver holds now.
    fn drain(rx: &mut broadcast::Receiver<StoreEvent>) -> Vec<StoreEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_alias_move_arrives_between_the_events_around_it() {
        let store = store();
        let key = writer(&store).await;
        let first = store.write(&key, WriteItem::new(json!(1))).await.unwrap();
        let second = store.write(&key, WriteItem::new(json!(2))).await.unwrap();
        store
            .alias(&key, "board", &first.id.to_string())
            .await
            .unwrap();
        let mut rx = store.subscribe();
        let before = store
            .update(&key, &first.id.to_string(), UpdateItem::new(json!(10)))
            .await
            .unwrap();
        store
            .alias(&key, "board", &second.id.to_string())
            .await
            .unwrap();
        let after = store
            .update(&key, &second.id.to_string(), UpdateItem::new(json!(20)))
            .await
            .unwrap();
        let got = drain(&mut rx);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].item().map(|e| e.seq), Some(before.seq));
        assert_eq!(
            got[1],
            StoreEvent::AliasMoved {
                alias: "board".into(),
                item: second.id,
                since: before.seq,
            }
        );
        assert_eq!(got[2].item().map(|e| e.seq), Some(after.seq));
        // A re-point takes no seq.
        assert_eq!(after.seq, before.seq + 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_naming_an_alias_moves_it() {
        let store = store();
        let key = writer(&store).await;
        let first = store.write(&key, WriteItem::new(json!(1))).await.unwrap();
        let mut rx = store.subscribe();
        let updated = store
            .update(&key, &first.id.to_string(), UpdateItem::new(json!(10)))
            .await
            .unwrap();
        let mut item = WriteItem::new(json!(2));
        item.alias = Some("board".into());
        let written = store.write(&key, item).await.unwrap();
        let got = drain(&mut rx);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].item().map(|e| e.seq), Some(updated.seq));
        assert_eq!(
            got[1],
            StoreEvent::AliasMoved {
                alias: "board".into(),
                item: written.id,
                since: updated.seq,
            }
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_re_point_moves_nothing() {
        let store = store();
        let (mine, theirs) = (writer(&store).await, writer(&store).await);
        let item = store.write(&mine, WriteItem::new(json!(1))).await.unwrap();
        store
            .alias(&mine, "board", &item.id.to_string())
            .await
            .unwrap();
        let other = store
            .write(&theirs, WriteItem::new(json!(2)))
            .await
            .unwrap();
        let mut rx = store.subscribe();
        let refused = store.alias(&theirs, "board", &other.id.to_string()).await;
        assert_eq!(refused.unwrap_err().code(), 409);
        assert!(drain(&mut rx).is_empty());
    }
}
