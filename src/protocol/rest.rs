//! The REST API's request and reply bodies (protocol.md §3), defined once:
//! the server serializes the replies and reads the requests with these
//! types, and [`EffexClient`](crate::client::EffexClient) does the reverse.
//! Plain serde data, camelCase on the wire; nothing here does I/O.
//!
//! Every reply travels inside `{"ok":true, …}`
//! ([`Success`](super::messages::Success)); a refusal is
//! `{"ok":false,"code","error"}` ([`Failure`](super::messages::Failure)).
//! Timestamps are [`UnixMillis`], lifetimes are [`Duration`]s that travel as
//! (fractional) seconds.
//!
//! Types that carry an item's value are generic over how the value is held:
//! `V` defaults to [`serde_json::Value`] (what an application reads and
//! writes); the server uses its own JSON-text type so a value is never built
//! into a tree on its way through.
//!
//! The reply types read every field of protocol.md §3 and default the ones
//! an effex server adds beyond it, so a client also reads a server that
//! leaves them out.
//!
//! ```
//! use effex::protocol::rest::{KeyKind, KeysRequest, ReadReply};
//!
//! let request = KeysRequest::new(KeyKind::Reader).count(2);
//! assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"type":"reader","count":2}"#);
//!
//! let read: ReadReply = serde_json::from_str(
//!     r#"{"id":"i","value":{"a":1},"size":7,"modified":1,"seq":4,"validTill":9}"#,
//! )
//! .unwrap();
//! assert_eq!(read.value["a"], 1);
//! assert_eq!(read.valid_till.as_millis(), 9);
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::messages::EventKind;
use super::time::UnixMillis;

/// `Duration` ⇄ seconds as a JSON number (fractions allowed: `0.25` is 250 ms).
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes a `Duration` as (fractional) seconds.
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Deserializes non-negative (fractional) seconds into a `Duration`.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        from_secs(secs).map_err(serde::de::Error::custom)
    }

    fn from_secs(secs: f64) -> Result<Duration, String> {
        Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{secs} is not a number of seconds (must be 0 or more)"))
    }

    /// The same for `Option<Duration>` (absent or `null` is `None`).
    pub(super) mod option {
        use super::*;

        /// Serializes `Some(d)` as seconds and `None` as `null`.
        pub(in super::super) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_f64(d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }

        /// Deserializes seconds or `null`.
        pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<f64>::deserialize(d)?
                .map(from_secs)
                .transpose()
                .map_err(serde::de::Error::custom)
        }
    }
}

// ---------------------------------------------------------------------------
// Keys

/// What an access key may be used for (the `type` of `POST /keys`). The
/// boss key is not a kind: it only makes keys of these kinds.
///
/// ```
/// use effex::protocol::rest::KeyKind;
///
/// assert_eq!("reader".parse::<KeyKind>(), Ok(KeyKind::Reader));
/// assert_eq!(KeyKind::Writer.to_string(), "writer");
/// assert_eq!(KeyKind::Updater.prefix(), "uk");
/// assert!("boss".parse::<KeyKind>().is_err());
/// ```
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

/// A key type that is not `writer`, `reader` or `updater`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key type {0:?} is not one of \"writer\", \"reader\", \"updater\"")]
pub struct UnknownKeyKind(pub String);

impl FromStr for KeyKind {
    type Err = UnknownKeyKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "writer" => Ok(KeyKind::Writer),
            "reader" => Ok(KeyKind::Reader),
            "updater" => Ok(KeyKind::Updater),
            other => Err(UnknownKeyKind(other.to_owned())),
        }
    }
}

/// The body of `POST /keys` (with the boss key): which keys to make.
///
/// ```
/// use std::time::Duration;
/// use effex::protocol::rest::{KeyKind, KeysRequest};
///
/// let request = KeysRequest::new(KeyKind::Reader).count(3).seconds(Duration::from_secs(600));
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"type":"reader","count":3,"seconds":600.0}"#
/// );
/// let minimal: KeysRequest = serde_json::from_str(r#"{"type":"writer"}"#).unwrap();
/// assert_eq!(minimal, KeysRequest::new(KeyKind::Writer));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysRequest {
    /// Which kind of key to make.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// How many keys. `None` (absent) is 1; at most the server's
    /// `max_keys_per_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// How long the keys live. `None` (absent) is the server's key lifetime;
    /// capped by its max key lifetime. Seconds on the wire.
    #[serde(
        default,
        with = "seconds::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub seconds: Option<Duration>,
}

impl KeysRequest {
    /// One key of `kind` with the server's default lifetime.
    pub fn new(kind: KeyKind) -> Self {
        KeysRequest {
            kind,
            count: None,
            seconds: None,
        }
    }

    /// Asks for `count` keys.
    pub fn count(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    /// Asks for keys that live `lifetime` (capped by the server).
    pub fn seconds(mut self, lifetime: Duration) -> Self {
        self.seconds = Some(lifetime);
        self
    }
}

/// The reply of `POST /keys`.
///
/// ```
/// use effex::protocol::rest::{KeyKind, KeysReply};
///
/// let reply: KeysReply =
///     serde_json::from_str(r#"{"type":"writer","keys":["wk0"],"validTill":1}"#).unwrap();
/// assert_eq!((reply.kind, reply.keys.as_slice()), (KeyKind::Writer, &["wk0".to_owned()][..]));
/// assert_eq!(reply.valid_till.as_millis(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysReply {
    /// Their kind.
    #[serde(rename = "type")]
    pub kind: KeyKind,
    /// The keys (`wk…`, `rk…` or `uk…`).
    pub keys: Vec<String>,
    /// From when the keys are no longer accepted.
    pub valid_till: UnixMillis,
}

// ---------------------------------------------------------------------------
// Items

/// The body of `POST /items` (with a writer key): a new item.
///
/// ```
/// use std::time::Duration;
/// use effex::protocol::rest::NewItem;
/// use serde_json::json;
///
/// let item = NewItem::new(json!({"price": 3}))
///     .lifetime(Duration::from_millis(1500))
///     .reader("rk…")
///     .alias("latest-price");
/// assert_eq!(
///     serde_json::to_string(&item).unwrap(),
///     r#"{"value":{"price":3},"lifetime":1.5,"readers":["rk…"],"alias":"latest-price"}"#
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct NewItem<V = Value> {
    /// The value (any JSON).
    pub value: V,
    /// How long the item lives. `None` (absent) is the server's default
    /// lifetime; the server caps it by its max lifetime and by the writer
    /// key's own expiry. Seconds on the wire.
    #[serde(
        default,
        with = "seconds::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub lifetime: Option<Duration>,
    /// Reader keys (`rk…`) that may read the item. Defaults to none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<String>,
    /// Updater keys (`uk…`) that may read and update the item. Defaults to none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub updaters: Vec<String>,
    /// An alias to point at the new item. Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl NewItem {
    /// An item holding `value`, everything else left to the server.
    pub fn new(value: Value) -> Self {
        NewItem {
            value,
            ..NewItem::default()
        }
    }
}

impl<V> NewItem<V> {
    /// Asks for a lifetime (fractions of a second allowed).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Lets a reader key read the item.
    pub fn reader(mut self, key: impl Into<String>) -> Self {
        self.readers.push(key.into());
        self
    }

    /// Lets an updater key read and update the item.
    pub fn updater(mut self, key: impl Into<String>) -> Self {
        self.updaters.push(key.into());
        self
    }

    /// Points `alias` at the new item.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }
}

/// The reply of `POST /items`.
///
/// ```
/// use std::time::Duration;
/// use effex::protocol::rest::WriteReply;
///
/// let reply: WriteReply = serde_json::from_str(
///     r#"{"id":"0123456789abcdef0123456789abcdef","lifetime":2.5,"size":7,"modified":1,"validTill":2501,"seq":0}"#,
/// )
/// .unwrap();
/// assert_eq!(reply.lifetime, Duration::from_millis(2500));
/// assert_eq!(reply.valid_till.duration_since(reply.modified), reply.lifetime);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteReply {
    /// The new item's id (32 lowercase hex digits).
    pub id: String,
    /// The lifetime it got (after capping). Seconds on the wire.
    #[serde(with = "seconds")]
    pub lifetime: Duration,
    /// Bytes of its serialized value.
    pub size: usize,
    /// When it was written.
    pub modified: UnixMillis,
    /// Its deadline (the epoch if the server did not say).
    #[serde(default)]
    pub valid_till: UnixMillis,
    /// The store's latest event seq when the item appeared (a new item logs
    /// no event): a watch with `after: seq` misses nothing.
    pub seq: u64,
    /// The alias pointed at it, if one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// The reply of `GET /items/{id}` (and `?intent=update`).
///
/// ```
/// use effex::protocol::rest::ReadReply;
///
/// let reply: ReadReply = serde_json::from_str(
///     r#"{"id":"i","value":{"a":1},"modified":1,"seq":4,"validTill":9}"#,
/// )
/// .unwrap();
/// assert_eq!(reply.value["a"], 1);
/// assert_eq!(reply.intent, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct ReadReply<V = Value> {
    /// The item's id (also when it was read by alias).
    pub id: String,
    /// The value.
    pub value: V,
    /// Bytes of the serialized value (0 if the server did not say).
    #[serde(default)]
    pub size: usize,
    /// When it was last written or updated.
    pub modified: UnixMillis,
    /// The store's latest event seq at the read. The value includes every
    /// event of this item up to it, so a watch with `after: seq` misses nothing.
    pub seq: u64,
    /// The item's deadline.
    pub valid_till: UnixMillis,
    /// The update-intent id, after a read with `?intent=update`: send it
    /// with the update ([`UpdateRequest::intent`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// When that intent lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_expires: Option<UnixMillis>,
}

/// The body of `PUT /items/{id}` (with an updater key or the owner's): a
/// new value.
///
/// ```
/// use effex::protocol::rest::UpdateRequest;
/// use serde_json::json;
///
/// let update = UpdateRequest::new(json!([1, 2])).with_intent("0123");
/// assert_eq!(serde_json::to_string(&update).unwrap(), r#"{"value":[1,2],"intent":"0123"}"#);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct UpdateRequest<V = Value> {
    /// The new value (any JSON).
    pub value: V,
    /// The intent id from a read with intent, needed while that intent is in
    /// force. Defaults to none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

impl UpdateRequest {
    /// An update to `value` without an intent.
    pub fn new(value: Value) -> Self {
        UpdateRequest {
            value,
            intent: None,
        }
    }
}

impl<V> UpdateRequest<V> {
    /// The same update, carrying the intent id from a read with intent.
    pub fn with_intent(mut self, intent: impl Into<String>) -> Self {
        self.intent = Some(intent.into());
        self
    }
}

/// The reply of `PUT /items/{id}`.
///
/// ```
/// let reply: effex::protocol::rest::UpdateReply =
///     serde_json::from_str(r#"{"id":"i","modified":2,"seq":5,"size":3}"#).unwrap();
/// assert_eq!(reply.seq, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateReply {
    /// The item's id.
    pub id: String,
    /// When it was updated.
    pub modified: UnixMillis,
    /// The seq of the `update` event.
    pub seq: u64,
    /// Bytes of the new serialized value.
    pub size: usize,
}

/// The reply of `DELETE /items/{id}`.
///
/// ```
/// let reply: effex::protocol::rest::RemoveReply =
///     serde_json::from_str(r#"{"id":"i","seq":6}"#).unwrap();
/// assert_eq!(reply.seq, 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReply {
    /// The removed item's id.
    pub id: String,
    /// The seq of the `remove` event.
    pub seq: u64,
}

// ---------------------------------------------------------------------------
// Aliases

/// The body of `PUT /aliases/{alias}` (with the owner's key): the item to
/// point the alias at.
///
/// ```
/// let request = effex::protocol::rest::AliasRequest { id: "latest".into() };
/// assert_eq!(serde_json::to_string(&request).unwrap(), r#"{"id":"latest"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRequest {
    /// The item id (or another alias) to point at.
    pub id: String,
}

/// The reply of `PUT /aliases/{alias}`.
///
/// ```
/// let reply: effex::protocol::rest::AliasReply =
///     serde_json::from_str(r#"{"alias":"current","id":"i"}"#).unwrap();
/// assert_eq!(reply.alias, "current");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasReply {
    /// The alias.
    pub alias: String,
    /// The item it now points at.
    pub id: String,
}

// ---------------------------------------------------------------------------
// Events

/// One logged event in an [`EventsReply`].
///
/// ```
/// use effex::protocol::messages::EventKind;
/// use effex::protocol::rest::LoggedEvent;
///
/// let event: LoggedEvent =
///     serde_json::from_str(r#"{"seq":7,"event":"update","id":"i","at":1}"#).unwrap();
/// assert_eq!((event.event, event.at.as_millis()), (EventKind::Update, 1));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct LoggedEvent<V = Value> {
    /// The store-wide sequence number.
    pub seq: u64,
    /// What happened.
    pub event: EventKind,
    /// The item it happened to (empty if the server did not say).
    #[serde(default)]
    pub id: String,
    /// When it happened (for `expire`: the item's deadline).
    pub at: UnixMillis,
    /// The new value, when the server attached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<V>,
}

/// The reply of `GET /items/{id}/events?since=&event=`.
///
/// ```
/// let reply: effex::protocol::rest::EventsReply = serde_json::from_str(
///     r#"{"id":"i","events":[{"seq":7,"event":"remove","id":"i","at":1}],"oldest":3,"gap":false,"latest":7}"#,
/// )
/// .unwrap();
/// assert_eq!(reply.events[0].seq, 7);
/// assert_eq!(reply.oldest, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "V: Deserialize<'de>"))]
pub struct EventsReply<V = Value> {
    /// The item's id (empty if the server did not say).
    #[serde(default)]
    pub id: String,
    /// The matching events after `since`, in seq order.
    pub events: Vec<LoggedEvent<V>>,
    /// The oldest seq the server still holds for this item (any kind), if any.
    #[serde(default)]
    pub oldest: Option<u64>,
    /// True when events after `since` were dropped by retention, or when
    /// `since` is above the server's latest seq: the caller missed events
    /// and should re-read the item.
    #[serde(default)]
    pub gap: bool,
    /// The store's latest event seq at the query (0 if the server did not say).
    #[serde(default)]
    pub latest: u64,
}

// ---------------------------------------------------------------------------
// Webhook watches

/// The body of `POST /watches` (with a key that may read the item): a
/// webhook watch. Unknown fields are refused.
///
/// ```
/// use effex::protocol::rest::WebhookRequest;
///
/// let request: WebhookRequest = serde_json::from_str(
///     r#"{"event":"update","id":"latest","url":"https://hooks.example.com/effex"}"#,
/// )
/// .unwrap();
/// assert_eq!(request.method, None);
/// assert!(serde_json::from_str::<WebhookRequest>(r#"{"event":"update","id":"i","url":"u","x":1}"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Which event to follow.
    pub event: EventKind,
    /// The item id or alias.
    pub id: String,
    /// Where to deliver: an absolute `http://` or `https://` URL.
    pub url: String,
    /// `POST` (the default), `PUT` or `PATCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Any JSON, echoed in every delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Value>,
}

/// The reply of `POST /watches`.
///
/// ```
/// let reply: effex::protocol::rest::WebhookReply =
///     serde_json::from_str(r#"{"watchable":"w1"}"#).unwrap();
/// assert_eq!(reply.watchable, "w1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookReply {
    /// The watch's id, for `DELETE /watches/{watchable}`.
    pub watchable: String,
}

// ---------------------------------------------------------------------------
// Server

/// The reply of `GET /ping`: `{"value":"PONG"}`.
///
/// ```
/// let pong: effex::protocol::rest::PingReply = serde_json::from_str(r#"{"value":"PONG"}"#).unwrap();
/// assert!(pong.is_pong());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingReply {
    /// `PONG` from an effex server.
    pub value: String,
}

impl PingReply {
    /// The reply an effex server gives.
    pub fn pong() -> Self {
        PingReply {
            value: "PONG".to_owned(),
        }
    }

    /// Whether it is `PONG`.
    pub fn is_pong(&self) -> bool {
        self.value == "PONG"
    }
}

/// The reply of `GET /info`: the server's version, store and limits.
///
/// ```
/// let reply: effex::protocol::rest::InfoReply =
///     serde_json::from_str(r#"{"api":"effex","version":"0.1.0","store":"memory"}"#).unwrap();
/// assert_eq!(reply.store, "memory");
/// assert_eq!(reply.items, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoReply {
    /// Always `effex`.
    pub api: String,
    /// The server's version.
    pub version: String,
    /// The store's backend: `memory` or `redis`.
    pub store: String,
    /// Items stored now (0 if the server did not say).
    #[serde(default)]
    pub items: usize,
    /// Value bytes of those items, as counted against the store's
    /// total-bytes quota (0 if the server did not say).
    #[serde(default)]
    pub bytes: usize,
    /// The store's latest event seq (0 if the server did not say).
    #[serde(default)]
    pub latest_seq: u64,
    /// The largest item value accepted, in bytes (0 if the server did not say).
    #[serde(default)]
    pub max_size: usize,
    /// The longest item lifetime granted (0 if the server did not say).
    /// Seconds on the wire.
    #[serde(default, with = "seconds")]
    pub max_lifetime: Duration,
}

#[cfg(test)]
mod tests {
    //! The wire form is the contract: these pin today's JSON, byte for byte.

    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    /// `value` serializes to exactly `text`, and `text` reads back as `value`.
    fn pinned<T>(value: &T, text: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
    {
        assert_eq!(serde_json::to_string(value).unwrap(), text);
        assert_eq!(&serde_json::from_str::<T>(text).unwrap(), value);
    }

    const ID: &str = "0123456789abcdef0123456789abcdef";
    const AT: UnixMillis = UnixMillis::from_millis(1_700_000_000_000);

    #[test]
    fn key_bodies() {
        pinned(
            &KeysRequest::new(KeyKind::Updater)
                .count(2)
                .seconds(Duration::from_millis(1500)),
            r#"{"type":"updater","count":2,"seconds":1.5}"#,
        );
        pinned(&KeysRequest::new(KeyKind::Writer), r#"{"type":"writer"}"#);
        let null_seconds: KeysRequest =
            serde_json::from_str(r#"{"type":"reader","seconds":null}"#).unwrap();
        assert_eq!(null_seconds.seconds, None);
        let negative = serde_json::from_str::<KeysRequest>(r#"{"type":"reader","seconds":-1}"#)
            .unwrap_err()
            .to_string();
        assert!(
            negative.contains("-1 is not a number of seconds"),
            "{negative}"
        );
        assert!(serde_json::from_str::<KeysRequest>(r#"{"type":"boss"}"#).is_err());
        pinned(
            &KeysReply {
                kind: KeyKind::Reader,
                keys: vec![format!("rk{ID}")],
                valid_till: AT,
            },
            &format!(r#"{{"type":"reader","keys":["rk{ID}"],"validTill":1700000000000}}"#),
        );
    }

    #[test]
    fn item_bodies() {
        pinned(
            &NewItem::new(json!({"a": [1, 2]}))
                .lifetime(Duration::from_secs(60))
                .reader("rk1")
                .updater("uk1")
                .alias("current"),
            r#"{"value":{"a":[1,2]},"lifetime":60.0,"readers":["rk1"],"updaters":["uk1"],"alias":"current"}"#,
        );
        pinned(&NewItem::new(json!(null)), r#"{"value":null}"#);
        assert!(
            serde_json::from_str::<NewItem>(r#"{"lifetime":1}"#).is_err(),
            "value is required"
        );
        pinned(
            &WriteReply {
                id: ID.into(),
                lifetime: Duration::from_millis(2500),
                size: 7,
                modified: AT,
                valid_till: AT.saturating_add(Duration::from_millis(2500)),
                seq: 3,
                alias: Some("current".into()),
            },
            &format!(
                r#"{{"id":"{ID}","lifetime":2.5,"size":7,"modified":1700000000000,"validTill":1700000002500,"seq":3,"alias":"current"}}"#
            ),
        );
        pinned(
            &ReadReply {
                id: ID.into(),
                value: json!({"a": 1}),
                size: 7,
                modified: AT,
                seq: 4,
                valid_till: UnixMillis::from_millis(1_700_000_060_000),
                intent: Some("ab".into()),
                intent_expires: Some(UnixMillis::from_millis(1_700_000_005_000)),
            },
            &format!(
                r#"{{"id":"{ID}","value":{{"a":1}},"size":7,"modified":1700000000000,"seq":4,"validTill":1700000060000,"intent":"ab","intentExpires":1700000005000}}"#
            ),
        );
        pinned(&UpdateRequest::new(json!("x")), r#"{"value":"x"}"#);
        pinned(
            &UpdateReply {
                id: ID.into(),
                modified: AT,
                seq: 5,
                size: 3,
            },
            &format!(r#"{{"id":"{ID}","modified":1700000000000,"seq":5,"size":3}}"#),
        );
        pinned(
            &RemoveReply {
                id: ID.into(),
                seq: 6,
            },
            &format!(r#"{{"id":"{ID}","seq":6}}"#),
        );
    }

    #[test]
    fn alias_event_webhook_and_server_bodies() {
        pinned(
            &AliasRequest { id: ID.into() },
            &format!(r#"{{"id":"{ID}"}}"#),
        );
        pinned(
            &AliasReply {
                alias: "current".into(),
                id: ID.into(),
            },
            &format!(r#"{{"alias":"current","id":"{ID}"}}"#),
        );
        pinned(
            &EventsReply {
                id: ID.into(),
                events: vec![
                    LoggedEvent {
                        seq: 7,
                        event: EventKind::Update,
                        id: ID.into(),
                        at: AT,
                        value: Some(json!([1])),
                    },
                    LoggedEvent {
                        seq: 8,
                        event: EventKind::Expire,
                        id: ID.into(),
                        at: AT,
                        value: None,
                    },
                ],
                oldest: None,
                gap: true,
                latest: 9,
            },
            &format!(
                r#"{{"id":"{ID}","events":[{{"seq":7,"event":"update","id":"{ID}","at":1700000000000,"value":[1]}},{{"seq":8,"event":"expire","id":"{ID}","at":1700000000000}}],"oldest":null,"gap":true,"latest":9}}"#
            ),
        );
        pinned(
            &WebhookRequest {
                event: EventKind::Remove,
                id: "current".into(),
                url: "https://hooks.example.com/x".into(),
                method: Some("PUT".into()),
                message: Some(json!({"m": 1})),
            },
            r#"{"event":"remove","id":"current","url":"https://hooks.example.com/x","method":"PUT","message":{"m":1}}"#,
        );
        pinned(
            &WebhookReply {
                watchable: "w1".into(),
            },
            r#"{"watchable":"w1"}"#,
        );
        pinned(&PingReply::pong(), r#"{"value":"PONG"}"#);
        pinned(
            &InfoReply {
                api: "effex".into(),
                version: "0.1.0".into(),
                store: "memory".into(),
                items: 2,
                bytes: 14,
                latest_seq: 9,
                max_size: 1_048_576,
                max_lifetime: Duration::from_secs(86_400),
            },
            r#"{"api":"effex","version":"0.1.0","store":"memory","items":2,"bytes":14,"latestSeq":9,"maxSize":1048576,"maxLifetime":86400.0}"#,
        );
    }

    #[test]
    fn timestamps_beyond_the_clock_stay_numbers() {
        let reply = KeysReply {
            kind: KeyKind::Writer,
            keys: Vec::new(),
            valid_till: UnixMillis::MAX,
        };
        pinned(
            &reply,
            r#"{"type":"writer","keys":[],"validTill":18446744073709551615}"#,
        );
        assert!(
            serde_json::from_str::<KeysReply>(r#"{"type":"writer","keys":[],"validTill":-5}"#)
                .is_err()
        );
    }
}
