//! The effex conversation's payloads (serde): `pass`, `watch`, `push`,
//! `unwatch`, and the `{"ok":…}` replies. No I/O here.
//!
//! Every reply object has `ok`. A success is `{"ok":true, …fields}`; a failure is
//! `{"ok":false,"code":<http-like status>,"error":"<human message>"}`.
//!
//! ```
//! use effex::protocol::messages::{parse_reply, Failure, PassOk, Success};
//! use effex::protocol::time::UnixMillis;
//!
//! let ok = serde_json::to_string(&Success(PassOk {
//!     connection: "sid1".into(),
//!     push_id: "app-1".into(),
//!     server_time: UnixMillis::from_millis(1),
//! }))
//! .unwrap();
//! assert_eq!(ok, r#"{"ok":true,"connection":"sid1","pushId":"app-1","serverTime":1}"#);
//!
//! let reply = parse_reply::<PassOk>(r#"{"ok":false,"code":401,"error":"bad passphrase"}"#);
//! assert_eq!(reply.unwrap(), Err(Failure::new(401, "bad passphrase")));
//! ```

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::time::UnixMillis;

/// The event name of the passphrase conversation.
pub const PASS_EVENT: &str = "pass";
/// The event name that registers a watch.
pub const WATCH_EVENT: &str = "watch";
/// The event name that ends a watch.
pub const UNWATCH_EVENT: &str = "unwatch";
/// The event name of a server push.
pub const PUSH_EVENT: &str = "push";
/// The event name by which the server ends a watch for a reason other than
/// its final push (protocol.md §2.6).
pub const ENDED_EVENT: &str = "ended";

/// The longest push id, in bytes.
pub const MAX_PUSH_ID_LEN: usize = 128;

/// Whether `push_id` is a valid push id: 1 to 128 bytes of printable ASCII
/// (0x21–0x7E), no spaces.
pub fn is_valid_push_id(push_id: &str) -> bool {
    (1..=MAX_PUSH_ID_LEN).contains(&push_id.len())
        && push_id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// `["pass", {"pass":…,"pushId":…}]`; the same object is accepted as CONNECT auth.
/// Its `Debug` hides the passphrase.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pass {
    /// The server's passphrase.
    #[serde(default)]
    pub pass: String,
    /// The client's stable name across reconnects (see [`is_valid_push_id`]).
    #[serde(default)]
    pub push_id: String,
}

impl std::fmt::Debug for Pass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pass")
            .field("pass", &"<hidden>")
            .field("push_id", &self.push_id)
            .finish()
    }
}

/// The CONNECT auth payload as a server receives it: `pass` may be absent
/// (then the client passes later with the `pass` event). Its `Debug` hides
/// the passphrase.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAuth {
    /// The passphrase, if the client sent it with CONNECT.
    pub pass: Option<String>,
    /// The push id, if the client sent it with CONNECT.
    pub push_id: Option<String>,
}

impl std::fmt::Debug for ConnectAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectAuth")
            .field("pass", &self.pass.as_ref().map(|_| "<hidden>"))
            .field("push_id", &self.push_id)
            .finish()
    }
}

/// A successful `pass` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PassOk {
    /// The Socket.IO session id of this connection (changes on every connection).
    pub connection: String,
    /// The push id the server registered (unchanged across reconnects).
    pub push_id: String,
    /// The server's wall clock when it answered.
    pub server_time: UnixMillis,
}

/// The server's answer to CONNECT: `40{"sid":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectOk {
    /// The Socket.IO session id.
    pub sid: String,
}

/// The CONNECT_ERROR payload, in the Socket.IO v5 shape
/// (`44{"message":"bad passphrase","data":{"code":401}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectRefused {
    /// The human message (socket.io-client surfaces it as `err.message`).
    pub message: String,
    /// Extra data; effex puts the http-like code here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RefusalData>,
}

/// The `data` of a [`ConnectRefused`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalData {
    /// The http-like status code (400, 401, …).
    pub code: u16,
    /// With code 429: milliseconds until the server takes a pass from this
    /// address again (protocol.md §2.2).
    #[serde(
        default,
        rename = "retryAfter",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_after: Option<u64>,
}

impl ConnectRefused {
    /// A refusal with a code and message.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: Some(RefusalData {
                code,
                retry_after: None,
            }),
        }
    }

    /// A 429 refusal: retry after `retry_after_ms` milliseconds.
    pub fn limited(message: impl Into<String>, retry_after_ms: u64) -> Self {
        Self {
            message: message.into(),
            data: Some(RefusalData {
                code: 429,
                retry_after: Some(retry_after_ms),
            }),
        }
    }

    /// The code, 400 when the peer sent none.
    pub fn code(&self) -> u16 {
        self.data.as_ref().map_or(400, |d| d.code)
    }

    /// How long the server asked the client to wait (429 refusals).
    pub fn retry_after(&self) -> Option<Duration> {
        self.data
            .as_ref()
            .and_then(|d| d.retry_after)
            .map(Duration::from_millis)
    }
}

/// A failure reply: `{"ok":false,"code":…,"error":…}`, with
/// `"retryAfter":<ms>` when a limit refused it (code 429).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Failure {
    /// The http-like status (400, 401, 403, 404, 409, 413, 423, 429).
    pub code: u16,
    /// The human message.
    pub error: String,
    /// With code 429: milliseconds until the server takes the request again.
    #[serde(default, rename = "retryAfter")]
    pub retry_after: Option<u64>,
}

impl Failure {
    /// A failure with a code and message.
    pub fn new(code: u16, error: impl Into<String>) -> Self {
        Self {
            code,
            error: error.into(),
            retry_after: None,
        }
    }

    /// A 429 failure: retry after `retry_after_ms` milliseconds.
    pub fn limited(error: impl Into<String>, retry_after_ms: u64) -> Self {
        Self {
            code: 429,
            error: error.into(),
            retry_after: Some(retry_after_ms),
        }
    }

    /// How long the server asked the client to wait (429 failures).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after.map(Duration::from_millis)
    }
}

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = 3 + usize::from(self.retry_after.is_some());
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("ok", &false)?;
        map.serialize_entry("code", &self.code)?;
        map.serialize_entry("error", &self.error)?;
        if let Some(ms) = self.retry_after {
            map.serialize_entry("retryAfter", &ms)?;
        }
        map.end()
    }
}

/// Wraps a success body so it serializes as `{"ok":true, …body's fields}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Success<T>(pub T);

impl<T: Serialize> Serialize for Success<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a, T> {
            ok: bool,
            #[serde(flatten)]
            body: &'a T,
        }
        Flat {
            ok: true,
            body: &self.0,
        }
        .serialize(serializer)
    }
}

/// An empty success body: `{"ok":true}` as `Success(Empty {})`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Reads a reply: `Ok(Ok(body))` for `{"ok":true,…}`, `Ok(Err(failure))` for
/// `{"ok":false,…}`, and `Err` when the JSON fits neither.
pub fn parse_reply<T: DeserializeOwned>(
    json: &str,
) -> Result<Result<T, Failure>, serde_json::Error> {
    #[derive(Deserialize)]
    struct OkFlag {
        ok: bool,
    }
    let flag: OkFlag = serde_json::from_str(json)?;
    if flag.ok {
        serde_json::from_str(json).map(Ok)
    } else {
        serde_json::from_str(json).map(Err)
    }
}

/// The kinds of event a watch can follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EventKind {
    /// The item's value changed.
    Update,
    /// The item was removed by its owner.
    Remove,
    /// The item's lifetime ended.
    Expire,
}

impl EventKind {
    /// The wire name: `update`, `remove` or `expire`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Remove => "remove",
            Self::Expire => "expire",
        }
    }

    /// A dense index (0, 1, 2) for per-kind tables.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Update => 0,
            Self::Remove => 1,
            Self::Expire => 2,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "update" => Ok(Self::Update),
            "remove" => Ok(Self::Remove),
            "expire" => Ok(Self::Expire),
            other => Err(format!(
                "unknown event kind {other:?}: use update, remove or expire"
            )),
        }
    }
}

/// `["watch", {…}]`: follow one kind of event of an item. Its `Debug` hides
/// the access key.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watch {
    /// Which event to follow.
    pub event: EventKind,
    /// The item id or alias.
    pub id: String,
    /// An access key allowed to read the item.
    pub key: String,
    /// The last event seq this client handled for this watch (replay after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Any JSON, echoed in every push of this watch. Kept as its JSON text:
    /// the server only passes it through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Box<serde_json::value::RawValue>>,
    /// Whether update pushes carry the new value.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_value: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("event", &self.event)
            .field("id", &self.id)
            .field("key", &"<hidden>")
            .field("after", &self.after)
            .field("message", &self.message)
            .field("with_value", &self.with_value)
            .finish()
    }
}

/// Compares the `message` by its JSON text.
impl PartialEq for Watch {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
            && self.id == other.id
            && self.key == other.key
            && self.after == other.after
            && self.message.as_ref().map(|m| m.get()) == other.message.as_ref().map(|m| m.get())
            && self.with_value == other.with_value
    }
}

/// A successful `watch` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchOk {
    /// The watch id.
    pub watchable: String,
    /// The store's latest event seq.
    pub seq: u64,
    /// True when the event log no longer holds every event after `after`.
    #[serde(default)]
    pub gap: bool,
}

/// `["unwatch", {"watchable":…}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unwatch {
    /// The watch id to end.
    pub watchable: String,
}

/// `["push", {…}]`: one event of a watched item, sent with an ack id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Push {
    /// The watch this push belongs to.
    pub watchable: String,
    /// What happened.
    pub event: EventKind,
    /// The item id.
    pub id: String,
    /// The alias the watch was made on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The store-wide event sequence number.
    pub seq: u64,
    /// The server's wall clock when the event happened.
    pub at: UnixMillis,
    /// The watch's `message`, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<serde_json::Value>,
    /// The new value: only on update pushes of a watch made with `withValue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// `["ended", {"watchable","code","error"}]` (no ack id): the server ended
/// a watch because its key expired or may no longer read the item (401,
/// 403), or a quota or limit was reached (429). No push of that watch
/// follows, and the watchable is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// The watch that ended.
    pub watchable: String,
    /// The http-like code: 401, 403 or 429.
    pub code: u16,
    /// The human message: why, and what to do.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn push_ids() {
        assert!(is_valid_push_id("a"));
        assert!(is_valid_push_id(&"x".repeat(128)));
        assert!(!is_valid_push_id(""));
        assert!(!is_valid_push_id(&"x".repeat(129)));
        assert!(!is_valid_push_id("has space"));
        assert!(!is_valid_push_id("tab\t"));
        assert!(!is_valid_push_id("é"));
    }

    #[test]
    fn replies() {
        assert_eq!(
            serde_json::to_value(Failure::new(401, "pass first")).unwrap(),
            json!({"ok": false, "code": 401, "error": "pass first"})
        );
        assert_eq!(
            serde_json::to_string(&Success(Empty {})).unwrap(),
            r#"{"ok":true}"#
        );
        let ok = parse_reply::<WatchOk>(r#"{"ok":true,"watchable":"w","seq":3,"gap":false}"#);
        assert_eq!(
            ok.unwrap().unwrap(),
            WatchOk {
                watchable: "w".into(),
                seq: 3,
                gap: false
            }
        );
        assert!(parse_reply::<WatchOk>(r#"{"watchable":"w"}"#).is_err());
        assert!(parse_reply::<WatchOk>(r#"{"ok":true}"#).is_err());
    }

    #[test]
    fn watch_and_push_shapes() {
        let watch: Watch = serde_json::from_value(
            json!({"event":"expire","id":"i","key":"k","after":4,"withValue":true}),
        )
        .unwrap();
        assert_eq!(watch.event, EventKind::Expire);
        assert_eq!(watch.after, Some(4));
        assert!(watch.with_value);
        assert!(
            serde_json::from_value::<Watch>(json!({"event":"explode","id":"i","key":"k"})).is_err()
        );
        let push = Push {
            watchable: "w".into(),
            event: EventKind::Update,
            id: "i".into(),
            alias: None,
            seq: 9,
            at: UnixMillis::from_millis(10),
            message: None,
            value: Some(json!(1)),
        };
        assert_eq!(
            serde_json::to_value(&push).unwrap(),
            json!({"watchable":"w","event":"update","id":"i","seq":9,"at":10,"value":1})
        );
    }

    #[test]
    fn refusals() {
        let refusal = ConnectRefused::new(401, "bad passphrase");
        assert_eq!(
            serde_json::to_string(&refusal).unwrap(),
            r#"{"message":"bad passphrase","data":{"code":401}}"#
        );
        let bare: ConnectRefused = serde_json::from_str(r#"{"message":"nope"}"#).unwrap();
        assert_eq!(bare.code(), 400);
    }
}
