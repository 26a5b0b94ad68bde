//! The store's data types: ids, key kinds, JSON text, events, and the request
//! and reply structs of every operation. Plain data: no I/O, no locking.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{JsonText, StoreError};
use crate::protocol::rest::{
    AliasReply, EventsReply, InfoReply, LoggedEvent, NewItem, ReadReply, RemoveReply, UpdateReply,
    UpdateRequest, WriteReply,
};
use crate::protocol::time::UnixMillis;

/// Hex digits of an item id, an intent id and the random part of an access key.
pub(crate) const ID_HEX_LEN: usize = 32;

/// Parses exactly 32 lowercase hex digits (128 bits).
pub(crate) fn parse_hex128(s: &str) -> Option<u128> {
    if s.len() != ID_HEX_LEN || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// 32 lowercase hex digits of `n`.
pub(crate) fn hex128(n: u128) -> String {
    format!("{n:032x}")
}

/// 128 random bits from the thread-local CSPRNG (ChaCha, seeded by the OS):
/// ids and keys made from them cannot be guessed.
pub(crate) fn random128() -> u128 {
    rand::random::<u128>()
}

/// The id of an item: 128 random bits, written as 32 lowercase hex digits.
///
/// Kept as a `u128` so that maps keyed by item id stay small and fast; it is
/// `Copy`, hashes cheaply, and serializes as its 32-digit string.
///
/// ```
/// use effex::store::ItemId;
///
/// let id: ItemId = "0123456789abcdef0123456789abcdef".parse().unwrap();
/// assert_eq!(id.to_string(), "0123456789abcdef0123456789abcdef");
/// assert!("not-an-id".parse::<ItemId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemId(pub u128);

impl ItemId {
    /// A new random (unguessable) id.
    pub(crate) fn random() -> Self {
        ItemId(random128())
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for ItemId {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex128(s).map(ItemId).ok_or_else(|| {
            StoreError::BadRequest(format!("{s:?} is not an item id (32 lowercase hex digits)"))
        })
    }
}

impl Serialize for ItemId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ItemId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What an access key may be used for: the REST API's [`KeyKind`](crate::protocol::rest::KeyKind).
pub use crate::protocol::rest::KeyKind;

/// An access key split into its kind and its 128 random bits
/// (`"wk" + 32 hex digits` and so on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AccessKey {
    pub(crate) kind: KeyKind,
    pub(crate) bits: u128,
}

impl AccessKey {
    /// Parses `wk…`, `rk…` or `uk…` followed by 32 lowercase hex digits.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let kind = match s.get(..2)? {
            "wk" => KeyKind::Writer,
            "rk" => KeyKind::Reader,
            "uk" => KeyKind::Updater,
            _ => return None,
        };
        let bits = parse_hex128(s.get(2..)?)?;
        Some(AccessKey { kind, bits })
    }
}

impl fmt::Display for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:032x}", self.kind.prefix(), self.bits)
    }
}

/// What happened to an item: the protocol's kind (update, remove, expire).
/// A new item logs no event (see [`Written::seq`]).
pub use crate::protocol::messages::EventKind;

/// Parses an event kind from a request, as the store's bad-request error.
pub(crate) fn parse_event_kind(s: &str) -> Result<EventKind, StoreError> {
    s.parse().map_err(StoreError::BadRequest)
}

/// One event of the store-wide log: live on [`Store::subscribe`](super::Store::subscribe),
/// replayed by [`Store::events`](super::Store::events).
///
/// On the REST API it is a [`LoggedEvent`].
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Store-wide sequence number: strictly increasing, never reused.
    pub seq: u64,
    /// What happened.
    pub kind: EventKind,
    /// The item it happened to.
    pub id: ItemId,
    /// When it happened (for `expire`: the item's deadline).
    pub at: UnixMillis,
    /// The new value, on live `update` events (so a push `withValue` needs no
    /// read; it shares the stored text). Replayed events carry it only where
    /// [`EventQuery::with_value`] asked and the store still has it (the newest
    /// update of a live item).
    pub value: Option<JsonText>,
}

/// What [`Store::subscribe`](super::Store::subscribe) carries: every change
/// that watchers follow, in the order the store made them.
///
/// Item events are numbered by `seq`; an alias re-point is not (the protocol's
/// seq numbers item events only) and instead says which seq it came after.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StoreEvent {
    /// An item's `update`, `remove` or `expire`, as logged.
    Item(Event),
    /// An alias was pointed at `item` (by [`Store::alias`](super::Store::alias)
    /// or a write naming it). Every item event with a seq above `since` came
    /// after the re-point, every one up to `since` before it.
    AliasMoved {
        /// The alias.
        alias: String,
        /// The item it names now.
        item: ItemId,
        /// The store's latest seq when it was re-pointed.
        since: u64,
    },
}

impl StoreEvent {
    /// The item event, if this is one.
    pub fn item(&self) -> Option<&Event> {
        match self {
            StoreEvent::Item(event) => Some(event),
            StoreEvent::AliasMoved { .. } => None,
        }
    }

    /// The item event, if this is one (by value).
    pub fn into_item(self) -> Option<Event> {
        match self {
            StoreEvent::Item(event) => Some(event),
            StoreEvent::AliasMoved { .. } => None,
        }
    }
}

/// A new item for [`Store::write`](super::Store::write): the body of
/// `POST /items` ([`NewItem`]) with its value kept as [`JsonText`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteItem {
    /// The value (any JSON), kept as its text: checked, never built into a
    /// tree. Defaults to `null`.
    pub value: JsonText,
    /// How long the item lives. Defaults to the store's `default_lifetime`;
    /// capped by its `max_lifetime` and by the writer key's own expiry.
    pub lifetime: Option<Duration>,
    /// Reader keys (`rk…`) that may read the item. Defaults to none.
    pub readers: Vec<String>,
    /// Updater keys (`uk…`) that may read and update the item. Defaults to none.
    pub updaters: Vec<String>,
    /// An alias to point at the new item (see the module docs). Defaults to none.
    pub alias: Option<String>,
}

impl From<NewItem<JsonText>> for WriteItem {
    fn from(item: NewItem<JsonText>) -> Self {
        WriteItem {
            value: item.value,
            lifetime: item.lifetime,
            readers: item.readers,
            updaters: item.updaters,
            alias: item.alias,
        }
    }
}

impl WriteItem {
    /// An item holding `value` (a `serde_json::Value` or a [`JsonText`]),
    /// with every other field defaulted.
    pub fn new(value: impl Into<JsonText>) -> Self {
        WriteItem {
            value: value.into(),
            ..WriteItem::default()
        }
    }
}

/// The reply to [`Store::write`](super::Store::write).
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The new item's id.
    pub id: ItemId,
    /// The lifetime it got (after capping).
    pub lifetime: Duration,
    /// Bytes of the serialized value.
    pub size: usize,
    /// When it was written.
    pub modified: UnixMillis,
    /// The item's deadline.
    pub valid_till: UnixMillis,
    /// The store's latest event seq when the item appeared (a new item logs no
    /// event): every later event of this item has a larger seq, so a watch with
    /// `after: seq` misses nothing.
    pub seq: u64,
    /// The alias pointed at the item, if one was asked for.
    pub alias: Option<String>,
}

/// The reply to [`Store::read`](super::Store::read).
#[derive(Debug, Clone, PartialEq)]
pub struct ReadItem {
    /// The item's id (also when it was read by alias).
    pub id: ItemId,
    /// The value, as JSON text (serializes as the JSON itself).
    pub value: JsonText,
    /// Bytes of the serialized value.
    pub size: usize,
    /// When it was last written or updated.
    pub modified: UnixMillis,
    /// The store's latest event seq at the read. The value returned includes
    /// every event of this item up to it, and every later event of this item
    /// gets a larger seq, so a watch with `after: seq` misses nothing.
    pub seq: u64,
    /// The item's deadline.
    pub valid_till: UnixMillis,
    /// The update-intent id, when the read asked for one.
    pub intent: Option<String>,
    /// When that intent lapses.
    pub intent_expires: Option<UnixMillis>,
}

/// A new value for [`Store::update`](super::Store::update): the body of
/// `PUT /items/{id}` ([`UpdateRequest`]) with its value kept as [`JsonText`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpdateItem {
    /// The new value (any JSON), kept as its text. Defaults to `null`.
    pub value: JsonText,
    /// The intent id from a read with intent, needed while that intent is in
    /// force. Defaults to none.
    pub intent: Option<String>,
}

impl From<UpdateRequest<JsonText>> for UpdateItem {
    fn from(update: UpdateRequest<JsonText>) -> Self {
        UpdateItem {
            value: update.value,
            intent: update.intent,
        }
    }
}

impl UpdateItem {
    /// An update to `value` (a `serde_json::Value` or a [`JsonText`]) without
    /// an intent.
    pub fn new(value: impl Into<JsonText>) -> Self {
        UpdateItem {
            value: value.into(),
            intent: None,
        }
    }

    /// The same update, carrying the intent id from a read with intent.
    pub fn with_intent(mut self, intent: impl Into<String>) -> Self {
        self.intent = Some(intent.into());
        self
    }
}

/// The reply to [`Store::update`](super::Store::update).
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The item's id.
    pub id: ItemId,
    /// When it was updated.
    pub modified: UnixMillis,
    /// The seq of the `update` event.
    pub seq: u64,
    /// Bytes of the new serialized value.
    pub size: usize,
}

/// The reply to [`Store::remove`](super::Store::remove).
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    /// The removed item's id.
    pub id: ItemId,
    /// The seq of the `remove` event.
    pub seq: u64,
}

/// The reply to [`Store::alias`](super::Store::alias).
#[derive(Debug, Clone, PartialEq)]
pub struct Aliased {
    /// The alias.
    pub alias: String,
    /// The item it now points at.
    pub id: ItemId,
}

/// A key's right to read an item, checked by [`Store::check_read`](super::Store::check_read)
/// (for a watch) without copying the value.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRef {
    /// The item's id.
    pub id: ItemId,
    /// The alias it was reached by, if any.
    pub alias: Option<String>,
    /// The item's deadline.
    pub valid_till: UnixMillis,
    /// The store's latest event seq at the check (as in [`ReadItem::seq`]).
    pub seq: u64,
    /// When the checking key expires (a watch made with it ends then;
    /// [`UnixMillis::MAX`] for a store that does not know).
    pub key_valid_till: UnixMillis,
}

/// Which logged events [`Store::events`](super::Store::events) returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventQuery {
    /// Only events with a larger seq (exclusive). Defaults to 0: all retained events.
    #[serde(default)]
    pub since: u64,
    /// Only events of this kind. Defaults to every kind.
    #[serde(default, rename = "event", skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventKind>,
    /// Attach the value to the newest `update` event when it is the item's
    /// current value (older values are not kept). Defaults to false.
    #[serde(default)]
    pub with_value: bool,
}

/// Logged events of one item, from [`Store::events`](super::Store::events).
#[derive(Debug, Clone, PartialEq)]
pub struct EventsPage {
    /// The item's id.
    pub id: ItemId,
    /// The matching events with `seq > since`, in seq order.
    pub events: Vec<Event>,
    /// The oldest seq still retained for this item (any kind), if any.
    pub oldest: Option<u64>,
    /// True when events (of the asked kind) with `seq > since` were dropped by
    /// retention, or when `since` is above the store's latest seq (the caller
    /// saw history this store no longer has): the caller missed events and
    /// should re-read the item.
    pub gap: bool,
    /// The store's latest event seq at the query.
    pub latest: u64,
}

/// What [`Store::info`](super::Store::info) reports.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInfo {
    /// The backend: `"memory"` or `"redis"`.
    pub store: &'static str,
    /// Items currently stored (live, not yet expired or removed).
    pub items: usize,
    /// Value bytes (serialized JSON) of those items, as counted against the
    /// store's total-bytes quota.
    pub bytes: usize,
    /// The store's latest event seq.
    pub latest_seq: u64,
    /// Largest serialized value accepted, in bytes.
    pub max_size: usize,
    /// Longest item lifetime granted.
    pub max_lifetime: Duration,
}

// ---------------------------------------------------------------------------
// The REST API's bodies: each store reply becomes its wire type here, in one
// place (ids as their 32-digit text, values as the stored JSON text).

impl From<Written> for WriteReply {
    fn from(written: Written) -> Self {
        WriteReply {
            id: written.id.to_string(),
            lifetime: written.lifetime,
            size: written.size,
            modified: written.modified,
            valid_till: written.valid_till,
            seq: written.seq,
            alias: written.alias,
        }
    }
}

impl From<ReadItem> for ReadReply<JsonText> {
    fn from(item: ReadItem) -> Self {
        ReadReply {
            id: item.id.to_string(),
            value: item.value,
            size: item.size,
            modified: item.modified,
            seq: item.seq,
            valid_till: item.valid_till,
            intent: item.intent,
            intent_expires: item.intent_expires,
        }
    }
}

impl From<Updated> for UpdateReply {
    fn from(updated: Updated) -> Self {
        UpdateReply {
            id: updated.id.to_string(),
            modified: updated.modified,
            seq: updated.seq,
            size: updated.size,
        }
    }
}

impl From<Removed> for RemoveReply {
    fn from(removed: Removed) -> Self {
        RemoveReply {
            id: removed.id.to_string(),
            seq: removed.seq,
        }
    }
}

impl From<Aliased> for AliasReply {
    fn from(aliased: Aliased) -> Self {
        AliasReply {
            alias: aliased.alias,
            id: aliased.id.to_string(),
        }
    }
}

impl From<Event> for LoggedEvent<JsonText> {
    fn from(event: Event) -> Self {
        LoggedEvent {
            seq: event.seq,
            event: event.kind,
            id: event.id.to_string(),
            at: event.at,
            value: event.value,
        }
    }
}

impl From<EventsPage> for EventsReply<JsonText> {
    fn from(page: EventsPage) -> Self {
        EventsReply {
            id: page.id.to_string(),
            events: page.events.into_iter().map(LoggedEvent::from).collect(),
            oldest: page.oldest,
            gap: page.gap,
            latest: page.latest,
        }
    }
}

impl From<StoreInfo> for InfoReply {
    /// With `api` "effex" and this crate's version.
    fn from(info: StoreInfo) -> Self {
        InfoReply {
            api: "effex".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            store: info.store.to_owned(),
            items: info.items,
            bytes: info.bytes,
            latest_seq: info.latest_seq,
            max_size: info.max_size,
            max_lifetime: info.max_lifetime,
        }
    }
}
