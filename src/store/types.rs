//! The store's data types: ids, key kinds, JSON text, events, and the request
//! and reply structs of every operation. Plain data: no I/O, no locking.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{JsonText, StoreError};

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

/// What an access key may be used for. The boss key (from the store's config)
/// is not a kind: it only makes keys of these kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyKind {
    /// Writes items and owns them (`wk…`): may read, update, remove and alias its items.
    Writer,
    /// Reads the items that list it in `readers` (`rk…`).
    Reader,
    /// Reads and updates the items that list it in `updaters` (`uk…`).
    Updater,
}

impl KeyKind {
    /// The two-letter prefix that makes keys of this kind recognisable.
    pub fn prefix(self) -> &'static str {
        match self {
            KeyKind::Writer => "wk",
            KeyKind::Reader => "rk",
            KeyKind::Updater => "uk",
        }
    }

    /// The lowercase name used on the wire (`"writer"`, `"reader"`, `"updater"`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Writer => "writer",
            KeyKind::Reader => "reader",
            KeyKind::Updater => "updater",
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "writer" => Ok(KeyKind::Writer),
            "reader" => Ok(KeyKind::Reader),
            "updater" => Ok(KeyKind::Updater),
            other => Err(StoreError::BadRequest(format!(
                "key type {other:?} is not one of \"writer\", \"reader\", \"updater\""
            ))),
        }
    }
}

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
/// Serializes as `{"seq","event","id","at","value"?}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Store-wide sequence number: strictly increasing, never reused.
    pub seq: u64,
    /// What happened.
    #[serde(rename = "event")]
    pub kind: EventKind,
    /// The item it happened to.
    pub id: ItemId,
    /// Unix ms when it happened (for `expire`: the item's deadline).
    pub at: u64,
    /// The new value, on live `update` events (so a push `withValue` needs no
    /// read; it shares the stored text). Replayed events carry it only where
    /// [`EventQuery::with_value`] asked and the store still has it (the newest
    /// update of a live item).
    #[serde(skip_serializing_if = "Option::is_none")]
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

/// `Duration` ⇄ seconds as a JSON number (fractions allowed: `0.25` is 250 ms).
pub mod seconds {
    use super::*;

    /// Serializes a `Duration` as (fractional) seconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Deserializes non-negative (fractional) seconds into a `Duration`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(|_| {
            serde::de::Error::custom(format!(
                "{secs} is not a number of seconds (must be 0 or more)"
            ))
        })
    }

    /// The same for `Option<Duration>` (absent or `null` is `None`).
    pub mod option {
        use super::*;

        /// Serializes `Some(d)` as seconds and `None` as `null`.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_f64(d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }

        /// Deserializes seconds or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<f64>::deserialize(d)? {
                None => Ok(None),
                Some(secs) => Duration::try_from_secs_f64(secs).map(Some).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{secs} is not a number of seconds (must be 0 or more)"
                    ))
                }),
            }
        }
    }
}

/// A request for access keys (the body of `POST /keys`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MakeKeys {
    /// Which kind of key to make.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// How many keys. Defaults to 1; at most the store's `max_keys_per_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// How long the keys live. Defaults to the store's `key_lifetime`; capped by
    /// its `max_key_lifetime`. Seconds on the wire.
    #[serde(
        default,
        with = "seconds::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub seconds: Option<Duration>,
}

impl MakeKeys {
    /// One key of `kind` with the store's default lifetime.
    pub fn new(kind: KeyKind) -> Self {
        MakeKeys {
            kind,
            count: None,
            seconds: None,
        }
    }
}

/// Keys made by [`Store::make_keys`](super::Store::make_keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keys {
    /// Their kind.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// The keys (`wk…`, `rk…` or `uk…`).
    pub keys: Vec<String>,
    /// Unix ms from which the keys are no longer accepted.
    pub valid_till: u64,
}

/// A new item (the body of `POST /items`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteItem {
    /// The value (any JSON), kept as its text: checked, never built into a
    /// tree. Defaults to `null`.
    pub value: JsonText,
    /// How long the item lives. Defaults to the store's `default_lifetime`;
    /// capped by its `max_lifetime` and by the writer key's own expiry.
    /// Seconds on the wire.
    #[serde(
        default,
        with = "seconds::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime: Option<Duration>,
    /// Reader keys (`rk…`) that may read the item. Defaults to none.
    #[serde(default)]
    pub readers: Vec<String>,
    /// Updater keys (`uk…`) that may read and update the item. Defaults to none.
    #[serde(default)]
    pub updaters: Vec<String>,
    /// An alias to point at the new item (see the module docs). Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// The new item's id.
    pub id: ItemId,
    /// The lifetime it got (after capping). Seconds on the wire.
    #[serde(with = "seconds")]
    pub lifetime: Duration,
    /// Bytes of the serialized value.
    pub size: usize,
    /// Unix ms of the write.
    pub modified: u64,
    /// Unix ms of the item's deadline.
    pub valid_till: u64,
    /// The store's latest event seq when the item appeared (a new item logs no
    /// event): every later event of this item has a larger seq, so a watch with
    /// `after: seq` misses nothing.
    pub seq: u64,
    /// The alias pointed at the item, if one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// The reply to [`Store::read`](super::Store::read).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadItem {
    /// The item's id (also when it was read by alias).
    pub id: ItemId,
    /// The value, as JSON text (serializes as the JSON itself).
    pub value: JsonText,
    /// Bytes of the serialized value.
    pub size: usize,
    /// Unix ms of the last write or update.
    pub modified: u64,
    /// The store's latest event seq at the read. The value returned includes
    /// every event of this item up to it, and every later event of this item
    /// gets a larger seq, so a watch with `after: seq` misses nothing.
    pub seq: u64,
    /// Unix ms of the item's deadline.
    pub valid_till: u64,
    /// The update-intent id, when the read asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Unix ms when that intent lapses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_expires: Option<u64>,
}

/// A new value for an item (the body of `PUT /items/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateItem {
    /// The new value (any JSON), kept as its text. Defaults to `null`.
    pub value: JsonText,
    /// The intent id from a read with intent, needed while that intent is in
    /// force. Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Updated {
    /// The item's id.
    pub id: ItemId,
    /// Unix ms of the update.
    pub modified: u64,
    /// The seq of the `update` event.
    pub seq: u64,
    /// Bytes of the new serialized value.
    pub size: usize,
}

/// The reply to [`Store::remove`](super::Store::remove).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// The removed item's id.
    pub id: ItemId,
    /// The seq of the `remove` event.
    pub seq: u64,
}

/// The reply to [`Store::alias`](super::Store::alias).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Aliased {
    /// The alias.
    pub alias: String,
    /// The item it now points at.
    pub id: ItemId,
}

/// A key's right to read an item, checked by [`Store::check_read`](super::Store::check_read)
/// (for a watch) without copying the value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemRef {
    /// The item's id.
    pub id: ItemId,
    /// The alias it was reached by, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Unix ms of the item's deadline.
    pub valid_till: u64,
    /// The store's latest event seq at the check (as in [`ReadItem::seq`]).
    pub seq: u64,
    /// Unix ms when the checking key expires (a watch made with it ends
    /// then; `u64::MAX` for a store that does not know).
    pub key_valid_till: u64,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// Longest item lifetime granted. Seconds on the wire.
    #[serde(with = "seconds")]
    pub max_lifetime: Duration,
}
