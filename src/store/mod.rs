//! The item store: items with lifetimes, access keys, aliases, update intents and the event log; it owns no sockets and no HTTP.
//!
//! The server talks to it through the object-safe [`Store`] trait (it holds an
//! `Arc<dyn Store>`); [`MemoryStore`] is the embedded default, and a Redis store
//! can implement the same trait later.
//!
//! # Contents
//!
//! - [Keys](#keys) · [Items](#items) · [Permissions](#permissions) ·
//!   [Quotas](#quotas) · [Aliases](#aliases) · [Update intents](#update-intents) ·
//!   [Event log and live events](#event-log-and-live-events) · [Errors](#errors)
//!
//! # Keys
//!
//! The **boss key** is a secret set in the store's config. It only makes access
//! keys ([`Store::make_keys`]); it cannot read or write items (403).
//! Access keys carry 128 random bits behind a prefix that tells their kind:
//! `wk…` writer, `rk…` reader, `uk…` updater. Each key has its own expiry
//! (`seconds`, defaulting to the store's key lifetime and capped by its max
//! key lifetime). An unknown or expired key gets 401 everywhere.
//!
//! # Items
//!
//! An item is a JSON value with an owner (the writer key that wrote it), a list
//! of reader keys and a list of updater keys, a size (bytes of the serialized
//! value), a modified time and a deadline. Item ids are 128 random bits (32
//! lowercase hex digits), so they cannot be guessed. An item's lifetime
//! defaults to the store's default lifetime, is capped by its max lifetime, and
//! never outlives the writer key that wrote it. An update keeps the deadline.
//! From its deadline on an item is unreadable (404) — every access checks the
//! deadline — and its `expire` event is logged by the store's expiry clock.
//! A value whose serialized size is over the store's `max_size` gets 413.
//! Values are kept as JSON text ([`JsonText`]), checked but never built into
//! a tree, from the request body to the push.
//!
//! # Quotas
//!
//! Value bytes count against the store's total (`max_total_bytes`: a write or
//! an update's growth that does not fit gets 507 [`StoreError::StoreFull`];
//! reads and removes keep working) and against the writer key that owns the
//! item (`max_items_per_key`, `max_bytes_per_key`: 429
//! [`StoreError::QuotaExceeded`], also when an updater key's update would
//! grow the owner's bytes past it). A key's aliases count against
//! `max_aliases_per_key` (429). An update's new size replaces the old one; a
//! remove or expiry gives an item's share back, and an alias's share comes
//! back when its owner key expires (or another key takes the name after that).
//!
//! # Permissions
//!
//! | key | read | read with intent, update | remove, alias | write new item | make keys |
//! |---|---|---|---|---|---|
//! | owner (the writer key that wrote it) | yes | yes | yes | yes | 403 |
//! | updater key listed in `updaters` | yes | yes | 403 | 403 | 403 |
//! | reader key listed in `readers` | yes | 403 | 403 | 403 | 403 |
//! | any other valid access key | 403 | 403 | 403 | yes if a writer key, else 403 | 403 |
//! | boss key | 403 | 403 | 403 | 403 | yes |
//! | unknown or expired key | 401 | 401 | 401 | 401 | 401 |
//!
//! `readers` may hold only reader keys and `updaters` only updater keys
//! (anything else is 400); the listed keys need not exist yet. Listing
//! checks membership only: a listed key still has to be valid when used.
//! The event log of an item ([`Store::events`]) and a watch
//! ([`Store::check_read`]) need the right to read it. On an existing item, checks run
//! in the order 401 (key), 404 (item), 403 (permission), 413 (size), 423
//! (intent), 429/507 (quota).
//!
//! # Aliases
//!
//! An alias is a name for an item, made by [`Store::alias`] or by
//! [`WriteItem::alias`]. The rules:
//!
//! - One store-wide namespace. An alias belongs to the writer key that made it;
//!   only that key may re-point it, and only to an item that key owns. Creating
//!   or re-pointing an alias that another writer key owns is 409 Conflict.
//! - An alias is 1 to 128 bytes of printable ASCII without `/ ? # %` or
//!   spaces, and must not look like an item id (32 lowercase hex digits).
//! - Reading, updating, removing, watching and the event log resolve an alias
//!   to its item ([`Store::resolve`]): anything that takes an id takes an alias.
//! - Removing or expiry of the item leaves the alias pointing at the gone item
//!   (resolving it then gives 404) until its owner re-points it.
//! - An alias lives as long as its owner key; when that key expires the alias
//!   is deleted and the name is free for any writer.
//!
//! # Update intents
//!
//! A [`Store::read`] with `intent = true` (needs the right to update) locks the
//! item for the store's intent lifetime and returns an intent id and its
//! expiry. While the lock is in force every update and intent read gets 423
//! [`StoreError::Locked`], except an update that carries that intent id (it
//! succeeds and ends the lock) and the owner's update, which is never
//! locked out: it breaks the intent. The lock lapses by itself at its expiry.
//! Plain reads and the owner's remove ignore intents.
//!
//! An intent read by the key that took the item's last intent renews it (a
//! new intent id), in force or not, and belongs to the same run; no run locks
//! the item past the store's `intent_max_hold` from its first intent. After a
//! run has locked the item that long, the holder's intent reads get 423 for
//! one intent lifetime, while other keys may take the item. A holder that let
//! go before its hold ran out starts a new run once that time has passed.
//!
//! # Event log and live events
//!
//! Every update, remove and expire gets the next store-wide `seq` (a `u64`,
//! strictly increasing, never reused) and its wall-clock time ([`UnixMillis`](crate::protocol::time::UnixMillis)). Writing a new item
//! logs no event; its reply carries the store's latest seq so that a watch with
//! `after: seq` misses nothing. Each item's log keeps at most
//! `max_events_per_item` events, each for at most `event_retention`, also
//! after the item is gone, so a final `remove`/`expire` can still be replayed
//! (the gone item keeps its owner and reader lists for that permission check).
//! [`Store::events`] returns the events after `since` in seq order with the
//! oldest retained seq and a `gap` flag that is true when retention dropped
//! events after `since`, or when `since` is above the store's latest seq.
//!
//! [`Store::subscribe`] gives a `tokio::sync::broadcast` receiver of every
//! [`StoreEvent`]: each item [`Event`] ([`StoreEvent::Item`], in seq order;
//! `update` events carry the new value) and each alias re-point
//! ([`StoreEvent::AliasMoved`]), in the order the store made them. A re-point
//! takes no seq (seqs number item events only): it carries `since`, the
//! store's latest seq when it happened, and arrives after every event up to
//! `since` and before every later one. So a subscriber that follows an alias
//! knows exactly which events of the new item are after the re-point, and
//! with several nodes on one Redis every node learns of a re-point made on
//! any of them, in the same place among the events.
//!
//! A receiver that lags (`RecvError::Lagged`) lost events from the channel
//! but not from the log: it catches up by calling [`Store::events`] with
//! `since` = the last seq it handled, for each item it cares about, then goes
//! on receiving. Re-points have no log: a lagged receiver that follows
//! aliases resolves them again ([`Store::resolve`]).
//!
//! # Errors
//!
//! Every operation returns [`StoreError`], whose [`code`](StoreError::code) is
//! the REST status (400, 401, 403, 404, 409, 413, 423, 429, 500, 507).
//!
//! ```
//! use effex::protocol::rest::{KeyKind, KeysRequest};
//! use effex::store::{MemoryStore, MemoryStoreConfig, Store, WriteItem};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), effex::store::StoreError> {
//! let config = MemoryStoreConfig { boss_key: "a boss secret".into(), ..Default::default() };
//! let store = MemoryStore::new(config)?;
//! let writer = store.make_keys("a boss secret", KeysRequest::new(KeyKind::Writer)).await?;
//! let key = &writer.keys[0];
//! let written = store.write(key, WriteItem::new(json!({"hello": "world"}))).await?;
//! let read = store.read(key, &written.id.to_string(), false).await?;
//! assert_eq!(read.value.to_value()?, json!({"hello": "world"}));
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;

use tokio::sync::broadcast;

use crate::protocol::rest::{KeysReply, KeysRequest};

mod error;
mod event_log;
mod expiry;
mod intent;
mod json_text;
mod memory;
mod metrics;
mod on_time;
mod quota;
#[cfg(feature = "redis")]
mod redis;
mod time;
mod types;

pub use error::StoreError;
pub use json_text::JsonText;
pub use memory::{MemoryStore, MemoryStoreConfig};
pub use metrics::StoreMetrics;
#[cfg(feature = "redis")]
pub use redis::{
    redact_url as redact_redis_url, RedisStore, RedisStoreConfig,
    MAX_SWEEP_BATCH as REDIS_MAX_SWEEP_BATCH,
};
pub(crate) use types::parse_event_kind;
pub use types::{
    Aliased, Event, EventKind, EventQuery, EventsPage, ItemId, ItemRef, KeyKind, ReadItem, Removed,
    StoreEvent, StoreInfo, UpdateItem, Updated, WriteItem, Written,
};

/// The future every [`Store`] operation returns: boxed so that the trait stays
/// object-safe (`Arc<dyn Store>`) without an extra crate.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A backend that stores items, keys, aliases, intents and the event log.
///
/// Every operation takes the caller's key as given (the boss key or an access
/// key) and applies the rules in the [module docs](self). Anything that takes
/// `id` accepts an item id or an alias.
///
/// Implementations write `Box::pin(async move { … })` (or
/// `Box::pin(std::future::ready(…))` when the work is synchronous).
pub trait Store: Send + Sync {
    /// The backend's name for `GET /info`: `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;

    /// Counts and limits for `GET /info`.
    fn info(&self) -> StoreFuture<'_, StoreInfo>;

    /// Makes access keys; `boss` must be the boss key (401 unknown, 403 for an
    /// access key).
    fn make_keys<'a>(&'a self, boss: &'a str, request: KeysRequest) -> StoreFuture<'a, KeysReply>;

    /// Writes a new item owned by `key`, which must be a writer key. Logs no event.
    fn write<'a>(&'a self, key: &'a str, item: WriteItem) -> StoreFuture<'a, Written>;

    /// Reads an item; with `intent` also takes an update lock (see the module docs).
    fn read<'a>(&'a self, key: &'a str, id: &'a str, intent: bool) -> StoreFuture<'a, ReadItem>;

    /// Replaces an item's value, keeping its deadline; logs an `update` event.
    fn update<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        update: UpdateItem,
    ) -> StoreFuture<'a, Updated>;

    /// Removes an item (owner only); logs a `remove` event.
    fn remove<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, Removed>;

    /// Points `alias` at the item `id` (an id or another alias); owner only.
    fn alias<'a>(&'a self, key: &'a str, alias: &'a str, id: &'a str) -> StoreFuture<'a, Aliased>;

    /// The item id that `id` names: itself if it is an item id, else the item
    /// its alias points at (404 for an unknown alias). Checks no key and not
    /// whether the item still exists.
    fn resolve<'a>(&'a self, id: &'a str) -> StoreFuture<'a, ItemId>;

    /// Checks that `key` may read the item (as a read would: 401, 404, 403)
    /// without copying its value; for watches.
    fn check_read<'a>(&'a self, key: &'a str, id: &'a str) -> StoreFuture<'a, ItemRef>;

    /// The item's logged events after `query.since`, also after the item is
    /// gone while its log is retained; needs the right to read it.
    fn events<'a>(
        &'a self,
        key: &'a str,
        id: &'a str,
        query: EventQuery,
    ) -> StoreFuture<'a, EventsPage>;

    /// The store's latest event seq (0 before the first event).
    fn latest_seq(&self) -> StoreFuture<'_, u64>;

    /// A receiver of every item event and alias re-point from now on, in the
    /// order the store made them (see the module docs for that order and for
    /// what to do when it lags).
    fn subscribe(&self) -> broadcast::Receiver<StoreEvent>;

    /// The store's own metrics (expiry lateness), which a server serving it
    /// shows in `GET /metrics`. None by default: a custom store need not
    /// keep any.
    fn metrics(&self) -> Option<&StoreMetrics> {
        None
    }
}
