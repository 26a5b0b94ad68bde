//! [`EffexClient`]: typed calls of the REST API (protocol.md §3) over awc,
//! and their error type; it owns no push connection (that is the
//! [`ConnectionActor`](super::ConnectionActor)'s) and no state besides its
//! HTTP connection pool.
//!
//! The request and reply bodies are [`protocol::rest`](crate::protocol::rest)'s,
//! the same types the server answers with, so an application built with only
//! the `client` feature uses them too.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use awc::http::header;
use awc::http::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::protocol::messages::{parse_reply, EventKind};
use crate::protocol::rest::{
    AliasReply, AliasRequest, EventsReply, InfoReply, KeysReply, KeysRequest, NewItem, PingReply,
    ReadReply, RemoveReply, UpdateReply, UpdateRequest, WebhookReply, WebhookRequest, WriteReply,
};

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
/// use effex::client::EffexClient;
/// use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
/// use effex::server::{Server, ServerConfig};
/// use serde_json::json;
///
/// # actix_rt::System::new().block_on(async {
/// let server = Server::start(ServerConfig::default()).await?;
/// let boss = server.boss_key().unwrap();
/// let effex = EffexClient::new(server.http_url())?;
///
/// let writer = effex.make_keys(boss, KeysRequest::new(KeyKind::Writer)).await?.keys.remove(0);
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
        let url = self.url("/ping");
        let pong: PingReply = self.call(Method::GET, &url, None, None).await?;
        if pong.is_pong() {
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
    /// use effex::protocol::rest::{KeyKind, KeysRequest};
    /// let readers = effex.make_keys("the boss key", KeysRequest::new(KeyKind::Reader).count(2)).await?;
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
    /// use effex::protocol::rest::NewItem;
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
        let url = self.url(&format!("/items/{}", encode(id)));
        let body = to_body(&UpdateRequest {
            value,
            intent: intent.map(str::to_owned),
        });
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
        let url = self.url(&format!("/aliases/{}", encode(alias)));
        let body = to_body(&AliasRequest { id: id.to_owned() });
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

    /// `POST /watches`: a webhook watch. The server delivers each `event` of
    /// the item (or alias) to `url` as an HTTP request, checking the key's
    /// read permission again at every delivery; the watch ends with the item,
    /// when the key can no longer read it, or after its retry budget. The
    /// server refuses a URL its egress policy does not allow (400 saying
    /// why; loopback and private addresses are refused unless listed).
    ///
    /// ```no_run
    /// # async fn demo(effex: effex::client::EffexClient, reader: &str) -> Result<(), effex::client::EffexError> {
    /// use effex::protocol::messages::EventKind;
    /// use effex::protocol::rest::WebhookRequest;
    /// let watch = effex
    ///     .watch_webhook(
    ///         reader,
    ///         &WebhookRequest {
    ///             event: EventKind::Update,
    ///             id: "latest-price".into(),
    ///             url: "https://hooks.example.com/effex".into(),
    ///             method: None,
    ///             message: None,
    ///         },
    ///     )
    ///     .await?;
    /// // … later, with the same key:
    /// effex.unwatch_webhook(reader, &watch.watchable).await?;
    /// # Ok(()) }
    /// ```
    pub async fn watch_webhook(
        &self,
        key: &str,
        request: &WebhookRequest,
    ) -> Result<WebhookReply, EffexError> {
        let body = to_body(request);
        self.call(Method::POST, &self.url("/watches"), Some(key), Some(body))
            .await
    }

    /// `DELETE /watches/{watchable}`: ends a webhook watch (only the key that
    /// made it may; another key, or a watch already ended, is a 404).
    pub async fn unwatch_webhook(&self, key: &str, watchable: &str) -> Result<(), EffexError> {
        let url = self.url(&format!("/watches/{}", encode(watchable)));
        self.call::<serde::de::IgnoredAny>(Method::DELETE, &url, Some(key), None)
            .await
            .map(drop)
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
