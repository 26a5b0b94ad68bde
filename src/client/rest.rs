//! [`EffexClient`]: typed calls of the REST API (protocol.md §3) over awc,
//! and their request, reply and error types; it owns no push connection
//! (that is the [`ConnectionActor`](super::ConnectionActor)'s) and no state
//! besides its HTTP connection pool.
//!
//! The reply types are the client's own (not [`effex::store`](crate)'s), so an
//! application built with only the `client` feature can use them; they read
//! every field of protocol.md §3 and default the extras an effex server adds.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use awc::http::header;
use awc::http::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::messages::{parse_reply, EventKind};

/// Why an [`EffexClient`] call failed.
///
/// [`EffexError::Server`] carries the server's own code and message (the
/// request reached the server and was refused); the other variants say what
/// went wrong on the way and what to do about it.
///
/// ```
/// use effex::client::EffexError;
///
/// let refused = EffexError::Server { code: 403, message: "forbidden: owner only".into() };
/// assert_eq!(refused.code(), Some(403));
/// assert_eq!(refused.to_string(), "the effex server refused the request (403): forbidden: owner only");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EffexError {
    /// The server URL given to [`EffexClient::new`] is not usable.
    #[error("invalid effex server URL {url:?}: {problem} (expected e.g. http://127.0.0.1:8150)")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The server answered `{"ok":false,"code","error"}`.
    #[error("the effex server refused the request ({code}): {message}")]
    Server {
        /// The status code (400, 401, 403, 404, 409, 413, 423, 429, 500, …).
        code: u16,
        /// The server's message, which says what to change.
        message: String,
    },
    /// The request could not be sent or its reply not received.
    #[error(
        "could not talk to the effex server at {url}: {reason} \
         (is a server running there? check the URL, or start one with `effex serve`)"
    )]
    Transport {
        /// The request's URL.
        url: String,
        /// What failed (connect, send, receive).
        reason: String,
    },
    /// No reply came within the client's timeout.
    #[error(
        "no reply from the effex server at {url} within {timeout:?}: it is \
         overloaded or unreachable; retry, or raise the client's timeout"
    )]
    Timeout {
        /// The request's URL.
        url: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// A reply came, but it is not an effex reply.
    #[error(
        "the reply from {url} (HTTP {status}) is not an effex reply: {reason} \
         (is that URL an effex server of a compatible version?)"
    )]
    Decode {
        /// The request's URL.
        url: String,
        /// The HTTP status of the reply.
        status: u16,
        /// Why it could not be read.
        reason: String,
    },
    /// The TLS settings for an `https://` URL could not be built.
    #[error("could not set up TLS: {0}")]
    Tls(String),
}

impl EffexError {
    /// The server's status code, for [`EffexError::Server`].
    ///
    /// ```
    /// use effex::client::EffexError;
    ///
    /// let err = EffexError::Tls("no provider".into());
    /// assert_eq!(err.code(), None);
    /// ```
    pub fn code(&self) -> Option<u16> {
        match self {
            EffexError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What an access key may be used for (the `type` of `POST /keys`).
///
/// ```
/// use effex::client::KeyType;
///
/// assert_eq!("reader".parse::<KeyType>(), Ok(KeyType::Reader));
/// assert_eq!(KeyType::Writer.to_string(), "writer");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyType {
    /// Writes items and owns them (`wk…`).
    Writer,
    /// Reads the items that list it in `readers` (`rk…`).
    Reader,
    /// Reads and updates the items that list it in `updaters` (`uk…`).
    Updater,
}

impl KeyType {
    /// The wire name: `writer`, `reader` or `updater`.
    ///
    /// ```
    /// assert_eq!(effex::client::KeyType::Updater.as_str(), "updater");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Writer => "writer",
            KeyType::Reader => "reader",
            KeyType::Updater => "updater",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "writer" => Ok(KeyType::Writer),
            "reader" => Ok(KeyType::Reader),
            "updater" => Ok(KeyType::Updater),
            other => Err(format!(
                "unknown key type {other:?}: use writer, reader or updater"
            )),
        }
    }
}

/// `Duration` ⇄ (fractional) seconds, as lifetimes travel on the wire.
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }

    pub(super) mod option {
        use super::*;

        pub(in super::super) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_f64(d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }
    }
}

/// The body of `POST /keys`: which keys to make.
///
/// ```
/// use std::time::Duration;
/// use effex::client::{KeyType, KeysRequest};
///
/// let request = KeysRequest::new(KeyType::Reader).count(3).seconds(Duration::from_secs(600));
/// assert_eq!(
///     serde_json::to_string(&request).unwrap(),
///     r#"{"type":"reader","count":3,"seconds":600.0}"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeysRequest {
    /// Which kind of key.
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// How many. `None` lets the server decide (one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    /// How long they live. `None` lets the server decide (its key lifetime).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "seconds::option::serialize"
    )]
    pub seconds: Option<Duration>,
}

impl KeysRequest {
    /// One key of `kind` with the server's default lifetime.
    ///
    /// ```
    /// let request = effex::client::KeysRequest::new(effex::client::KeyType::Writer);
    /// assert_eq!(request.count, None);
    /// ```
    pub fn new(kind: KeyType) -> Self {
        KeysRequest {
            kind,
            count: None,
            seconds: None,
        }
    }

    /// Asks for `count` keys.
    ///
    /// ```
    /// use effex::client::{KeyType, KeysRequest};
    /// assert_eq!(KeysRequest::new(KeyType::Writer).count(5).count, Some(5));
    /// ```
    pub fn count(mut self, count: usize) -> Self {
        self.count = Some(count);
        self
    }

    /// Asks for keys that live `lifetime` (capped by the server).
    ///
    /// ```
    /// use std::time::Duration;
    /// use effex::client::{KeyType, KeysRequest};
    /// let request = KeysRequest::new(KeyType::Writer).seconds(Duration::from_secs(60));
    /// assert_eq!(request.seconds, Some(Duration::from_secs(60)));
    /// ```
    pub fn seconds(mut self, lifetime: Duration) -> Self {
        self.seconds = Some(lifetime);
        self
    }
}

/// The reply of `POST /keys`.
///
/// ```
/// let reply: effex::client::KeysReply =
///     serde_json::from_str(r#"{"type":"writer","keys":["wk0"],"validTill":1}"#).unwrap();
/// assert_eq!(reply.keys, ["wk0"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeysReply {
    /// Their kind.
    #[serde(rename = "type")]
    pub kind: KeyType,
    /// The keys.
    pub keys: Vec<String>,
    /// Unix ms from which they are no longer accepted.
    pub valid_till: u64,
}

/// The body of `POST /items`: a new item.
///
/// ```
/// use std::time::Duration;
/// use effex::client::NewItem;
/// use serde_json::json;
///
/// let item = NewItem::new(json!({"price": 3}))
///     .lifetime(Duration::from_millis(1500))
///     .reader("rk…")
///     .alias("latest-price");
/// assert_eq!(
///     serde_json::to_value(&item).unwrap(),
///     json!({"value": {"price": 3}, "lifetime": 1.5, "readers": ["rk…"], "alias": "latest-price"})
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewItem {
    /// The value (any JSON).
    pub value: Value,
    /// How long it lives. `None` lets the server decide (its default
    /// lifetime); the server caps it by its max lifetime and the key's own.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "seconds::option::serialize"
    )]
    pub lifetime: Option<Duration>,
    /// Reader keys (`rk…`) that may read it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<String>,
    /// Updater keys (`uk…`) that may read and update it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub updaters: Vec<String>,
    /// An alias to point at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl NewItem {
    /// An item holding `value`, everything else left to the server.
    ///
    /// ```
    /// let item = effex::client::NewItem::new(serde_json::json!("hello"));
    /// assert!(item.readers.is_empty());
    /// ```
    pub fn new(value: Value) -> Self {
        NewItem {
            value,
            ..NewItem::default()
        }
    }

    /// Asks for a lifetime (fractions of a second allowed).
    ///
    /// ```
    /// use std::time::Duration;
    /// let item = effex::client::NewItem::new(1.into()).lifetime(Duration::from_secs(60));
    /// assert_eq!(item.lifetime, Some(Duration::from_secs(60)));
    /// ```
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = Some(lifetime);
        self
    }

    /// Lets a reader key read the item.
    ///
    /// ```
    /// let item = effex::client::NewItem::new(1.into()).reader("rk1").reader("rk2");
    /// assert_eq!(item.readers, ["rk1", "rk2"]);
    /// ```
    pub fn reader(mut self, key: impl Into<String>) -> Self {
        self.readers.push(key.into());
        self
    }

    /// Lets an updater key read and update the item.
    ///
    /// ```
    /// let item = effex::client::NewItem::new(1.into()).updater("uk1");
    /// assert_eq!(item.updaters, ["uk1"]);
    /// ```
    pub fn updater(mut self, key: impl Into<String>) -> Self {
        self.updaters.push(key.into());
        self
    }

    /// Points `alias` at the new item.
    ///
    /// ```
    /// let item = effex::client::NewItem::new(1.into()).alias("current");
    /// assert_eq!(item.alias.as_deref(), Some("current"));
    /// ```
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }
}

/// The reply of `POST /items`.
///
/// ```
/// let reply: effex::client::WriteReply = serde_json::from_str(
///     r#"{"id":"0123456789abcdef0123456789abcdef","lifetime":2.5,"size":7,"modified":1,"seq":0}"#,
/// )
/// .unwrap();
/// assert_eq!(reply.lifetime, std::time::Duration::from_millis(2500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteReply {
    /// The new item's id.
    pub id: String,
    /// The lifetime it got (after capping).
    #[serde(with = "seconds")]
    pub lifetime: Duration,
    /// Bytes of its serialized value.
    pub size: usize,
    /// Unix ms of the write.
    pub modified: u64,
    /// The store's latest event seq: a watch with `after: seq` misses nothing.
    pub seq: u64,
    /// Unix ms of its deadline (0 if the server did not say).
    #[serde(default)]
    pub valid_till: u64,
    /// The alias pointed at it, if one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

/// The reply of `GET /items/{id}`.
///
/// ```
/// let reply: effex::client::ReadReply = serde_json::from_str(
///     r#"{"id":"i","value":{"a":1},"modified":1,"seq":4,"validTill":9}"#,
/// )
/// .unwrap();
/// assert_eq!(reply.value["a"], 1);
/// assert_eq!(reply.intent, None);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReply {
    /// The item's id (also when read by alias).
    pub id: String,
    /// The value.
    pub value: Value,
    /// Unix ms of the last write or update.
    pub modified: u64,
    /// The store's latest event seq at the read.
    pub seq: u64,
    /// Unix ms of the item's deadline.
    pub valid_till: u64,
    /// Bytes of the serialized value (0 if the server did not say).
    #[serde(default)]
    pub size: usize,
    /// The update-intent id, after [`EffexClient::read_with_intent`]: pass it
    /// to [`EffexClient::update`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Unix ms when that intent lapses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_expires: Option<u64>,
}

/// The reply of `PUT /items/{id}`.
///
/// ```
/// let reply: effex::client::UpdateReply =
///     serde_json::from_str(r#"{"id":"i","modified":2,"seq":5,"size":3}"#).unwrap();
/// assert_eq!(reply.seq, 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateReply {
    /// The item's id.
    pub id: String,
    /// Unix ms of the update.
    pub modified: u64,
    /// The seq of the `update` event.
    pub seq: u64,
    /// Bytes of the new serialized value.
    pub size: usize,
}

/// The reply of `DELETE /items/{id}`.
///
/// ```
/// let reply: effex::client::RemoveReply = serde_json::from_str(r#"{"id":"i","seq":6}"#).unwrap();
/// assert_eq!(reply.seq, 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveReply {
    /// The removed item's id.
    pub id: String,
    /// The seq of the `remove` event.
    pub seq: u64,
}

/// The reply of `PUT /aliases/{alias}`.
///
/// ```
/// let reply: effex::client::AliasReply =
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

/// One logged event in an [`EventsReply`].
///
/// ```
/// use effex::client::LoggedEvent;
/// use effex::protocol::messages::EventKind;
///
/// let event: LoggedEvent = serde_json::from_str(r#"{"seq":7,"event":"update","at":1}"#).unwrap();
/// assert_eq!(event.event, EventKind::Update);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// The store-wide sequence number.
    pub seq: u64,
    /// What happened.
    pub event: EventKind,
    /// Unix ms when it happened.
    pub at: u64,
    /// The new value, when the server attached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The reply of `GET /items/{id}/events`.
///
/// ```
/// let reply: effex::client::EventsReply =
///     serde_json::from_str(r#"{"events":[{"seq":7,"event":"remove","at":1}],"oldest":3}"#).unwrap();
/// assert_eq!(reply.events[0].seq, 7);
/// assert_eq!(reply.oldest, Some(3));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsReply {
    /// The matching events after `since`, in seq order.
    pub events: Vec<LoggedEvent>,
    /// The oldest seq the server still holds for this item, if any.
    #[serde(default)]
    pub oldest: Option<u64>,
    /// The item's id (empty if the server did not say).
    #[serde(default)]
    pub id: String,
    /// True when events after `since` were dropped by retention, or when
    /// `since` is above the server's latest seq: re-read the item.
    #[serde(default)]
    pub gap: bool,
    /// The store's latest event seq (0 if the server did not say).
    #[serde(default)]
    pub latest: u64,
}

/// The reply of `GET /info`.
///
/// ```
/// let reply: effex::client::InfoReply =
///     serde_json::from_str(r#"{"api":"effex","version":"0.1.0","store":"memory"}"#).unwrap();
/// assert_eq!(reply.store, "memory");
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
    /// The store's latest event seq (0 if the server did not say).
    #[serde(default)]
    pub latest_seq: u64,
    /// The largest item value accepted, in bytes (0 if the server did not say).
    #[serde(default)]
    pub max_size: usize,
    /// The longest item lifetime granted (0 if the server did not say).
    #[serde(default, with = "seconds")]
    pub max_lifetime: Duration,
}

/// A typed client of an effex server's REST API.
///
/// Every call takes the access key it acts with (the boss key for
/// [`make_keys`](EffexClient::make_keys)), because one application usually
/// holds several: a writer key for its own items, reader keys from others.
/// Refusals come back as [`EffexError::Server`] with the server's code and
/// message.
///
/// Like awc's client it is `!Send`: make one per thread (clones share the
/// keep-alive connection pool). Built on the current actix-rt System.
///
/// ```
/// use effex::client::{EffexClient, KeyType, KeysRequest, NewItem};
/// use effex::server::{Server, ServerConfig};
/// use serde_json::json;
///
/// # actix_rt::System::new().block_on(async {
/// let server = Server::start(ServerConfig::default()).await?;
/// let boss = server.boss_key().unwrap();
/// let effex = EffexClient::new(server.http_url())?;
///
/// let writer = effex.make_keys(boss, KeysRequest::new(KeyType::Writer)).await?.keys.remove(0);
/// let written = effex.write(&writer, &NewItem::new(json!({"hello": "world"}))).await?;
/// let read = effex.read(&writer, &written.id).await?;
/// assert_eq!(read.value, json!({"hello": "world"}));
///
/// let err = effex.read("rk-not-a-key", &written.id).await.unwrap_err();
/// assert_eq!(err.code(), Some(401));
/// server.stop().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct EffexClient {
    base: Arc<str>,
    http: awc::Client,
    timeout: Duration,
    max_reply_size: usize,
}

impl fmt::Debug for EffexClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EffexClient")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("max_reply_size", &self.max_reply_size)
            .finish_non_exhaustive()
    }
}

/// Builds an [`EffexClient`]; see [`EffexClient::builder`].
#[derive(Clone)]
#[must_use = "call .build() to get the EffexClient"]
pub struct EffexClientBuilder {
    url: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_reply_size: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for EffexClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EffexClientBuilder")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_reply_size", &self.max_reply_size)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl EffexClientBuilder {
    /// How long one call may take, connect included. By default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = effex::client::EffexClient::builder("http://127.0.0.1:8150")
    ///     .timeout(Duration::from_secs(2));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long opening a connection may take. By default 5 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = effex::client::EffexClient::builder("http://127.0.0.1:8150")
    ///     .connect_timeout(Duration::from_secs(1));
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The largest reply body read, in bytes (a larger one is an
    /// [`EffexError::Decode`]). By default 16 MiB, well above the server's
    /// default 1 MiB max item size.
    ///
    /// ```
    /// let builder = effex::client::EffexClient::builder("http://127.0.0.1:8150")
    ///     .max_reply_size(64 << 20);
    /// ```
    pub fn max_reply_size(mut self, bytes: usize) -> Self {
        self.max_reply_size = bytes;
        self
    }

    /// TLS settings for `https://` (e.g. with a private root certificate). By
    /// default Mozilla's root certificates (`webpki-roots`) with rustls' ring
    /// provider.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let roots = rustls::RootCertStore::empty();
    /// let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()
    /// .unwrap()
    /// .with_root_certificates(roots)
    /// .with_no_client_auth();
    /// let builder = effex::client::EffexClient::builder("https://effex.example.com")
    ///     .tls_config(Arc::new(tls));
    /// ```
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the URL and settings and makes the client.
    ///
    /// ```
    /// # actix_rt::System::new().block_on(async {
    /// let effex = effex::client::EffexClient::builder("ws://127.0.0.1:8150").build()?;
    /// assert_eq!(effex.base_url(), "http://127.0.0.1:8150");
    /// # Ok::<(), effex::client::EffexError>(())
    /// # }).unwrap();
    /// ```
    pub fn build(self) -> Result<EffexClient, EffexError> {
        let base = base_url(&self.url)?;
        for (name, value) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if value.is_zero() {
                return Err(EffexError::Url {
                    url: self.url,
                    problem: format!("{name} is 0: give it at least 1 ms"),
                });
            }
        }
        let tls = if base.starts_with("https://") {
            let mut tls = match self.tls {
                Some(tls) => (*tls).clone(),
                None => default_tls()?,
            };
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            Some(Arc::new(tls))
        } else {
            None
        };
        Ok(EffexClient {
            base: base.into(),
            http: super::socket::http_client(self.connect_timeout, tls),
            timeout: self.timeout,
            max_reply_size: self.max_reply_size,
        })
    }
}

impl EffexClient {
    /// A client of the server at `url` with the default settings:
    /// `http://host:port` or `https://host:port` (`ws://` and `wss://` are
    /// accepted and mapped, and a `/socket.io/…` path is dropped, so a push
    /// URL works too). A path prefix (behind a proxy) is kept.
    ///
    /// ```
    /// # actix_rt::System::new().block_on(async {
    /// use effex::client::EffexClient;
    ///
    /// let effex = EffexClient::new("ws://127.0.0.1:8150/socket.io/?EIO=4&transport=websocket")?;
    /// assert_eq!(effex.base_url(), "http://127.0.0.1:8150");
    /// assert!(EffexClient::new("ftp://127.0.0.1").is_err());
    /// # Ok::<(), effex::client::EffexError>(())
    /// # }).unwrap();
    /// ```
    pub fn new(url: impl Into<String>) -> Result<Self, EffexError> {
        Self::builder(url).build()
    }

    /// A builder for a client of the server at `url` (see [`EffexClient::new`]).
    ///
    /// ```
    /// # actix_rt::System::new().block_on(async {
    /// use std::time::Duration;
    /// let effex = effex::client::EffexClient::builder("http://127.0.0.1:8150")
    ///     .timeout(Duration::from_secs(3))
    ///     .build()?;
    /// # Ok::<(), effex::client::EffexError>(())
    /// # }).unwrap();
    /// ```
    pub fn builder(url: impl Into<String>) -> EffexClientBuilder {
        EffexClientBuilder {
            url: url.into(),
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_reply_size: 16 << 20,
            tls: None,
        }
    }

    /// The base URL requests go to, e.g. `http://127.0.0.1:8150`.
    ///
    /// ```
    /// # actix_rt::System::new().block_on(async {
    /// let effex = effex::client::EffexClient::new("https://effex.example.com/")?;
    /// assert_eq!(effex.base_url(), "https://effex.example.com");
    /// # Ok::<(), effex::client::EffexError>(())
    /// # }).unwrap();
    /// ```
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /ping`: whether the server answers (`Ok(())` on `PONG`).
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient) -> Result<(), effex::client::EffexError> {
    /// effex.ping().await?;
    /// # Ok(()) }
    /// ```
    pub async fn ping(&self) -> Result<(), EffexError> {
        #[derive(Deserialize)]
        struct Pong {
            value: String,
        }
        let url = self.url("/ping");
        let pong: Pong = self.call(Method::GET, &url, None, None).await?;
        if pong.value == "PONG" {
            Ok(())
        } else {
            Err(EffexError::Decode {
                url,
                status: 200,
                reason: format!("ping answered {:?} instead of \"PONG\"", pong.value),
            })
        }
    }

    /// `GET /info`: the server's version, store and limits.
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient) -> Result<(), effex::client::EffexError> {
    /// let info = effex.info().await?;
    /// println!("effex {} with a {} store, max item {} bytes", info.version, info.store, info.max_size);
    /// # Ok(()) }
    /// ```
    pub async fn info(&self) -> Result<InfoReply, EffexError> {
        self.call(Method::GET, &self.url("/info"), None, None).await
    }

    /// `POST /keys` with the boss key: makes access keys.
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient) -> Result<(), effex::client::EffexError> {
    /// use effex::client::{KeyType, KeysRequest};
    /// let readers = effex.make_keys("the boss key", KeysRequest::new(KeyType::Reader).count(2)).await?;
    /// assert_eq!(readers.keys.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn make_keys(
        &self,
        boss_key: &str,
        request: KeysRequest,
    ) -> Result<KeysReply, EffexError> {
        let body = to_body(&request);
        self.call(Method::POST, &self.url("/keys"), Some(boss_key), Some(body))
            .await
    }

    /// `POST /items` with a writer key: stores a new item, owned by that key.
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, writer: &str, reader: &str) -> Result<(), effex::client::EffexError> {
    /// use std::time::Duration;
    /// use effex::client::NewItem;
    /// let item = NewItem::new(serde_json::json!([1, 2, 3]))
    ///     .lifetime(Duration::from_secs(300))
    ///     .reader(reader);
    /// let written = effex.write(writer, &item).await?;
    /// println!("stored {} for {:?}", written.id, written.lifetime);
    /// # Ok(()) }
    /// ```
    pub async fn write(&self, key: &str, item: &NewItem) -> Result<WriteReply, EffexError> {
        let body = to_body(item);
        self.call(Method::POST, &self.url("/items"), Some(key), Some(body))
            .await
    }

    /// `GET /items/{id}`: reads an item by id or alias (reader, updater or owner).
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, reader: &str) -> Result<(), effex::client::EffexError> {
    /// let item = effex.read(reader, "latest-price").await?;
    /// println!("{} (id {})", item.value, item.id);
    /// # Ok(()) }
    /// ```
    pub async fn read(&self, key: &str, id: &str) -> Result<ReadReply, EffexError> {
        let url = self.url(&format!("/items/{}", encode(id)));
        self.call(Method::GET, &url, Some(key), None).await
    }

    /// `GET /items/{id}?intent=update`: reads an item and locks it for an
    /// update by this key (updater or owner). Pass the reply's
    /// [`intent`](ReadReply::intent) to [`update`](EffexClient::update);
    /// everyone else's updates get 423 until then or until the lock lapses
    /// at [`intent_expires`](ReadReply::intent_expires).
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, updater: &str) -> Result<(), effex::client::EffexError> {
    /// let held = effex.read_with_intent(updater, "counter").await?;
    /// let next = held.value.as_i64().unwrap_or(0) + 1;
    /// effex.update(updater, "counter", next.into(), held.intent.as_deref()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read_with_intent(&self, key: &str, id: &str) -> Result<ReadReply, EffexError> {
        let url = self.url(&format!("/items/{}?intent=update", encode(id)));
        self.call(Method::GET, &url, Some(key), None).await
    }

    /// `PUT /items/{id}`: replaces an item's value (updater or owner), keeping
    /// its expiry. `intent` is the id from
    /// [`read_with_intent`](EffexClient::read_with_intent), needed while that
    /// intent is in force.
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, owner: &str) -> Result<(), effex::client::EffexError> {
    /// let updated = effex.update(owner, "latest-price", serde_json::json!({"price": 4}), None).await?;
    /// println!("update event seq {}", updated.seq);
    /// # Ok(()) }
    /// ```
    pub async fn update(
        &self,
        key: &str,
        id: &str,
        value: Value,
        intent: Option<&str>,
    ) -> Result<UpdateReply, EffexError> {
        #[derive(Serialize)]
        struct Body<'a> {
            value: Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            intent: Option<&'a str>,
        }
        let url = self.url(&format!("/items/{}", encode(id)));
        let body = to_body(&Body { value, intent });
        self.call(Method::PUT, &url, Some(key), Some(body)).await
    }

    /// `DELETE /items/{id}`: removes an item (owner only).
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, owner: &str) -> Result<(), effex::client::EffexError> {
    /// let removed = effex.remove(owner, "latest-price").await?;
    /// println!("removed {} at seq {}", removed.id, removed.seq);
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, key: &str, id: &str) -> Result<RemoveReply, EffexError> {
        let url = self.url(&format!("/items/{}", encode(id)));
        self.call(Method::DELETE, &url, Some(key), None).await
    }

    /// `PUT /aliases/{alias}`: points `alias` at the item `id` (owner only;
    /// re-pointing an alias is how readers follow "the current" item).
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, owner: &str, id: &str) -> Result<(), effex::client::EffexError> {
    /// effex.alias(owner, "latest-price", id).await?;
    /// # Ok(()) }
    /// ```
    pub async fn alias(&self, key: &str, alias: &str, id: &str) -> Result<AliasReply, EffexError> {
        #[derive(Serialize)]
        struct Body<'a> {
            id: &'a str,
        }
        let url = self.url(&format!("/aliases/{}", encode(alias)));
        let body = to_body(&Body { id });
        self.call(Method::PUT, &url, Some(key), Some(body)).await
    }

    /// `GET /items/{id}/events?since=&event=`: the item's logged events with a
    /// seq above `since` (0 for all retained), of one kind or all, in seq order.
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, reader: &str) -> Result<(), effex::client::EffexError> {
    /// use effex::protocol::messages::EventKind;
    /// let page = effex.events(reader, "latest-price", 0, Some(EventKind::Update)).await?;
    /// for event in &page.events {
    ///     println!("{} {} at {}", event.seq, event.event, event.at);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn events(
        &self,
        key: &str,
        id: &str,
        since: u64,
        kind: Option<EventKind>,
    ) -> Result<EventsReply, EffexError> {
        let mut path = format!("/items/{}/events?since={since}", encode(id));
        if let Some(kind) = kind {
            path.push_str("&event=");
            path.push_str(kind.as_str());
        }
        self.call(Method::GET, &self.url(&path), Some(key), None)
            .await
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Sends one request and reads its `{"ok":…}` reply.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<T, EffexError> {
        let mut request = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .insert_header((header::ACCEPT, "application/json"));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let sent = match body {
            Some(body) => {
                request
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .send_body(body)
                    .await
            }
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| match e {
            awc::error::SendRequestError::Timeout => EffexError::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            },
            other => EffexError::Transport {
                url: url.to_owned(),
                reason: other.to_string(),
            },
        })?;
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(self.max_reply_size)
            .await
            .map_err(|e| match e {
                awc::error::PayloadError::Overflow => EffexError::Decode {
                    url: url.to_owned(),
                    status,
                    reason: format!(
                        "the reply is larger than the client's max_reply_size ({} bytes)",
                        self.max_reply_size
                    ),
                },
                other => EffexError::Transport {
                    url: url.to_owned(),
                    reason: format!("the reply could not be read: {other}"),
                },
            })?;
        let decode = |reason: String| EffexError::Decode {
            url: url.to_owned(),
            status,
            reason,
        };
        let text = std::str::from_utf8(&body)
            .map_err(|e| decode(format!("the body is not UTF-8 ({e})")))?;
        match parse_reply::<T>(text) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(failure)) => Err(EffexError::Server {
                code: failure.code,
                message: failure.error,
            }),
            Err(e) => Err(decode(format!("{e}; the body starts {:?}", head(text)))),
        }
    }
}

/// At most 120 characters of `text`, for an error message.
fn head(text: &str) -> &str {
    match text.char_indices().nth(120) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Serializes a request body (plain data: cannot fail).
fn to_body<T: Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).expect("request bodies are plain JSON data")
}

/// Percent-encodes one path segment: everything but `A-Z a-z 0-9 - . _ ~`.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `http(s)://host[:port][/prefix]` from what the user gave (see [`EffexClient::new`]).
fn base_url(url: &str) -> Result<String, EffexError> {
    let bad = |problem: &str| EffexError::Url {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    let (scheme, rest) = url
        .trim()
        .split_once("://")
        .ok_or_else(|| bad("missing scheme"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "http",
        "https" | "wss" => "https",
        _ => return Err(bad("the scheme must be http, https, ws or wss")),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(bad("missing host"));
    }
    if authority.contains('@') {
        return Err(bad(
            "credentials in the URL are not used: pass keys to each call",
        ));
    }
    let path = if path.starts_with("/socket.io") {
        ""
    } else if path.contains(['?', '#']) {
        return Err(bad("a query or fragment has no meaning here"));
    } else {
        path.trim_end_matches('/')
    };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Mozilla's root certificates with rustls' ring provider.
fn default_tls() -> Result<rustls::ClientConfig, EffexError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EffexError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        for (given, want) in [
            ("http://127.0.0.1:8150", "http://127.0.0.1:8150"),
            ("http://127.0.0.1:8150/", "http://127.0.0.1:8150"),
            ("ws://h:1", "http://h:1"),
            ("WSS://h", "https://h"),
            ("https://h/effex/", "https://h/effex"),
            (
                "ws://h:1/socket.io/?EIO=4&transport=websocket",
                "http://h:1",
            ),
        ] {
            assert_eq!(base_url(given).unwrap(), want, "{given}");
        }
        for bad in ["h:1", "ftp://h", "http://", "http://u:p@h", "http://h/?x=1"] {
            let err = base_url(bad).unwrap_err();
            assert!(err.to_string().contains("expected e.g. http://"), "{err}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode("abc-1.2_~"), "abc-1.2_~");
        assert_eq!(encode("a+b&c=d é"), "a%2Bb%26c%3Dd%20%C3%A9");
    }
}
