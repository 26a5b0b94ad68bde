//! `ClientConfig`: where the server is and how patient to be with it. A
//! consuming builder whose every setter documents its default; it touches no
//! socket.
//!
//! # Several nodes
//!
//! A config may list several server URLs: nodes of one exchange (sharing one
//! store, e.g. Redis). The [`ConnectionActor`](super::ConnectionActor)
//! starts at the first; after each failed attempt and after each lost
//! connection it moves on to the next, round robin, waiting the usual
//! [`Backoff`] between attempts. A working node is kept: a successful
//! connection does not move back to the first URL (so a recovered node does
//! not pull every client back at once, and a flapping one is not preferred).

use std::sync::Arc;
use std::time::Duration;

use rand::distr::{Alphanumeric, SampleString};

use super::backoff::Backoff;
use crate::protocol::messages::is_valid_push_id;

/// The Socket.IO path and query every effex server answers on.
pub const SOCKET_IO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// A mistake in a [`ClientConfigBuilder`], found by [`ClientConfigBuilder::build`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The server URL is not usable.
    #[error("invalid server url {url:?}: {problem} (expected e.g. ws://127.0.0.1:8150 or wss://effex.example.com)")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The push id breaks the protocol's rule.
    #[error("invalid push id {0:?}: use 1 to 128 printable ASCII characters without spaces")]
    PushId(String),
    /// [`ClientConfigBuilder::urls`] was given no URL.
    #[error("no server url: give at least one (e.g. ws://127.0.0.1:8150)")]
    NoUrl,
    /// A server URL is listed twice.
    #[error("server url {0:?} is listed twice: list each node once")]
    DuplicateUrl(String),
    /// A duration or size is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// The TLS settings could not be built.
    #[error("could not set up TLS: {0}")]
    Tls(String),
}

/// Everything a [`ConnectionActor`](super::ConnectionActor) needs to know.
///
/// ```
/// use std::time::Duration;
/// use effex::client::ClientConfig;
///
/// let config = ClientConfig::builder("ws://127.0.0.1:8150")
///     .pass("secret")
///     .push_id("inventory-service")
///     .connect_timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// assert_eq!(config.url(), "ws://127.0.0.1:8150/socket.io/?EIO=4&transport=websocket");
/// assert_eq!(config.push_id(), "inventory-service");
///
/// // Three nodes of one exchange: start at the first, fail over round robin.
/// let nodes = ClientConfig::builder("ws://10.0.0.1:8150")
///     .also("ws://10.0.0.2:8150")
///     .also("ws://10.0.0.3:8150")
///     .build()
///     .unwrap();
/// assert_eq!(nodes.urls().len(), 3);
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    /// Never empty: the builder starts with one URL and `build` refuses an empty list.
    urls: Vec<String>,
    pass: String,
    push_id: String,
    connect_timeout: Duration,
    pass_timeout: Duration,
    ack_timeout: Duration,
    max_frame_size: usize,
    max_pending_acks: usize,
    max_unacked_pushes: usize,
    write_queue: usize,
    reconnect: Backoff,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("urls", &self.urls)
            .field("pass", &"<hidden>")
            .field("push_id", &self.push_id)
            .field("connect_timeout", &self.connect_timeout)
            .field("pass_timeout", &self.pass_timeout)
            .field("ack_timeout", &self.ack_timeout)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_pending_acks", &self.max_pending_acks)
            .field("max_unacked_pushes", &self.max_unacked_pushes)
            .field("write_queue", &self.write_queue)
            .field("reconnect", &self.reconnect)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ClientConfig {
    /// Starts a builder for the server at `url`: `ws://host:port` or
    /// `wss://host:port` (`http`/`https` are accepted and mapped). The
    /// Socket.IO path is added unless the URL already has a path. More
    /// nodes of the same exchange are added with [`ClientConfigBuilder::also`].
    pub fn builder(url: impl Into<String>) -> ClientConfigBuilder {
        ClientConfigBuilder {
            config: ClientConfig {
                urls: vec![url.into()],
                pass: String::new(),
                push_id: random_push_id(),
                connect_timeout: Duration::from_secs(10),
                pass_timeout: Duration::from_secs(5),
                ack_timeout: Duration::from_secs(10),
                max_frame_size: 1 << 20,
                max_pending_acks: 1_000,
                max_unacked_pushes: 10_000,
                write_queue: 4_096,
                reconnect: Backoff::default(),
                tls: None,
            },
        }
    }

    /// The first server's full WebSocket URL, with the Socket.IO path and query.
    pub fn url(&self) -> &str {
        self.urls.first().map_or("", String::as_str)
    }

    /// Every server's full WebSocket URL, in the order they are tried (see
    /// the module docs); never empty.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The passphrase sent in the `pass` event.
    pub fn pass(&self) -> &str {
        &self.pass
    }

    /// The push id: this application's name across reconnects.
    pub fn push_id(&self) -> &str {
        &self.push_id
    }

    /// How long WebSocket open, Engine.IO open and Socket.IO connect may take together.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long the server may take to answer the `pass` event.
    pub fn pass_timeout(&self) -> Duration {
        self.pass_timeout
    }

    /// The default time to wait for an ack of an [`Emit`](super::Emit).
    pub fn ack_timeout(&self) -> Duration {
        self.ack_timeout
    }

    /// The largest frame accepted from the server, in bytes.
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The most emits awaiting an ack at once.
    pub fn max_pending_acks(&self) -> usize {
        self.max_pending_acks
    }

    /// The most pushes received on one connection and not yet acknowledged.
    pub fn max_unacked_pushes(&self) -> usize {
        self.max_unacked_pushes
    }

    /// The most frames queued for writing before the link counts as stalled.
    pub fn write_queue(&self) -> usize {
        self.write_queue
    }

    /// How automatic reconnects back off (while subscribers have watches).
    pub fn reconnect(&self) -> Backoff {
        self.reconnect
    }

    /// Whether any of the URLs asks for TLS.
    pub fn is_tls(&self) -> bool {
        self.urls.iter().any(|url| url.starts_with("wss://"))
    }

    /// The TLS settings used for `wss://` (the given ones, or Mozilla's roots
    /// from `webpki-roots`).
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }
}

/// Builds a [`ClientConfig`]; see [`ClientConfig::builder`].
#[derive(Clone, Debug)]
#[must_use = "call .build() to get the ClientConfig"]
pub struct ClientConfigBuilder {
    config: ClientConfig,
}

impl ClientConfigBuilder {
    /// Adds another node of the same exchange, tried after the URLs before
    /// it (round robin; see the module docs). Checked like the first one.
    /// By default there is only the builder's URL.
    pub fn also(mut self, url: impl Into<String>) -> Self {
        self.config.urls.push(url.into());
        self
    }

    /// Replaces every server URL (the builder's included) with `urls`, tried
    /// in this order (round robin; see the module docs). An empty list fails
    /// [`build`](Self::build) with [`ConfigError::NoUrl`]; a URL listed twice
    /// with [`ConfigError::DuplicateUrl`].
    pub fn urls<I>(mut self, urls: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.config.urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// The server's passphrase. By default empty (for servers configured
    /// without one, which accept any pass).
    pub fn pass(mut self, pass: impl Into<String>) -> Self {
        self.config.pass = pass.into();
        self
    }

    /// The push id that names this application across reconnects. By default
    /// `effex-` and 20 random alphanumerics, new for every builder.
    pub fn push_id(mut self, push_id: impl Into<String>) -> Self {
        self.config.push_id = push_id.into();
        self
    }

    /// Time allowed for WebSocket open, Engine.IO open and Socket.IO connect
    /// together. By default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Time allowed for the server to answer the `pass` event. By default 5 s.
    pub fn pass_timeout(mut self, timeout: Duration) -> Self {
        self.config.pass_timeout = timeout;
        self
    }

    /// The default time to wait for an ack of an emitted event. By default 10 s.
    pub fn ack_timeout(mut self, timeout: Duration) -> Self {
        self.config.ack_timeout = timeout;
        self
    }

    /// The largest frame accepted from the server. By default 1 MiB, above the
    /// effex server's 1,000,000-byte `maxPayload` (awc's own default, 64 KiB,
    /// is too small).
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.config.max_frame_size = bytes;
        self
    }

    /// The most emits awaiting an ack at once; one more fails with
    /// [`EmitError::TooManyPending`](super::EmitError::TooManyPending). By default 1,000.
    pub fn max_pending_acks(mut self, count: usize) -> Self {
        self.config.max_pending_acks = count;
        self
    }

    /// The most pushes received on one connection and not yet acknowledged
    /// by their subscribers. A server holds at most its in-flight window of
    /// unacked pushes per connection (1,000 by default for effex), so one
    /// that sends more is broken or hostile: the connection is closed as a
    /// protocol error (and re-made when watches need it; the server replays
    /// what was not acked). This bounds the memory a server can make the
    /// client queue when a subscriber is slow. By default 10,000.
    pub fn max_unacked_pushes(mut self, count: usize) -> Self {
        self.config.max_unacked_pushes = count;
        self
    }

    /// The most frames waiting to be written; when the socket cannot keep up
    /// beyond that the link is dropped (and reconnected when needed) rather
    /// than buffering without bound. By default 4,096.
    pub fn write_queue(mut self, frames: usize) -> Self {
        self.config.write_queue = frames;
        self
    }

    /// How a connection lost while subscribers have watches is re-made:
    /// exponential backoff with full jitter. By default [`Backoff::default`]:
    /// first wait up to 100 ms, doubling to at most 30 s, reset after 10 s
    /// of stable connection.
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.config.reconnect = backoff;
        self
    }

    /// TLS settings for `wss://` (e.g. with a private root certificate). By
    /// default Mozilla's root certificates (`webpki-roots`) with rustls' ring
    /// provider. ALPN is forced to `http/1.1`, which WebSocket needs.
    pub fn tls_config(mut self, tls: Arc<rustls::ClientConfig>) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Checks the settings and returns the config.
    pub fn build(mut self) -> Result<ClientConfig, ConfigError> {
        let c = &mut self.config;
        if c.urls.is_empty() {
            return Err(ConfigError::NoUrl);
        }
        let mut urls = Vec::with_capacity(c.urls.len());
        for url in &c.urls {
            let url = normalize_url(url)?;
            if urls.contains(&url) {
                return Err(ConfigError::DuplicateUrl(url));
            }
            urls.push(url);
        }
        c.urls = urls;
        if !is_valid_push_id(&c.push_id) {
            return Err(ConfigError::PushId(c.push_id.clone()));
        }
        for (name, value) in [
            ("connect_timeout", c.connect_timeout),
            ("pass_timeout", c.pass_timeout),
            ("ack_timeout", c.ack_timeout),
            ("reconnect.max", c.reconnect.max),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        for (name, value) in [
            ("max_frame_size", c.max_frame_size),
            ("max_pending_acks", c.max_pending_acks),
            ("max_unacked_pushes", c.max_unacked_pushes),
            ("write_queue", c.write_queue),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if c.is_tls() {
            let mut tls = match c.tls.take() {
                Some(tls) => (*tls).clone(),
                None => default_tls()?,
            };
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            c.tls = Some(Arc::new(tls));
        }
        Ok(self.config)
    }
}

fn random_push_id() -> String {
    format!("effex-{}", Alphanumeric.sample_string(&mut rand::rng(), 20))
}

fn default_tls() -> Result<rustls::ClientConfig, ConfigError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ConfigError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

fn normalize_url(url: &str) -> Result<String, ConfigError> {
    let bad = |problem| ConfigError::Url {
        url: url.to_owned(),
        problem,
    };
    let (scheme, rest) = url.split_once("://").ok_or(bad("missing scheme"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad("the scheme must be ws, wss, http or https")),
    };
    let (host, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let path = if path.is_empty() || path == "/" {
        SOCKET_IO_PATH
    } else {
        path
    };
    Ok(format!("{scheme}://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        for (given, expected) in [
            ("ws://h:1", "ws://h:1/socket.io/?EIO=4&transport=websocket"),
            (
                "http://h:1/",
                "ws://h:1/socket.io/?EIO=4&transport=websocket",
            ),
            ("HTTPS://h", "wss://h/socket.io/?EIO=4&transport=websocket"),
            (
                "ws://h:1/custom/?EIO=4&transport=websocket",
                "ws://h:1/custom/?EIO=4&transport=websocket",
            ),
        ] {
            assert_eq!(normalize_url(given).unwrap(), expected);
        }
        for bad in ["h:1", "ftp://h", "ws://", "ws:///x"] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_validation() {
        let config = ClientConfig::builder("ws://h").build().unwrap();
        assert!(config.push_id().starts_with("effex-"));
        assert_ne!(
            config.push_id(),
            ClientConfig::builder("ws://h").build().unwrap().push_id()
        );
        assert!(config.max_frame_size() >= 1_000_000);
        assert!(config.tls().is_none());
        assert!(matches!(
            ClientConfig::builder("ws://h").push_id("a b").build(),
            Err(ConfigError::PushId(_))
        ));
        assert_eq!(
            ClientConfig::builder("ws://h")
                .pass_timeout(Duration::ZERO)
                .build()
                .unwrap_err(),
            ConfigError::Zero("pass_timeout")
        );
        let tls = ClientConfig::builder("ws://h")
            .also("wss://g")
            .build()
            .unwrap();
        assert_eq!(
            tls.tls().unwrap().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn several_urls_are_each_checked_in_order() {
        let config = ClientConfig::builder("ws://a:1")
            .also("http://b:2/")
            .build()
            .unwrap();
        assert_eq!(
            config.urls(),
            [
                "ws://a:1/socket.io/?EIO=4&transport=websocket",
                "ws://b:2/socket.io/?EIO=4&transport=websocket"
            ]
        );
        assert_eq!(config.url(), config.urls()[0]);
        assert!(matches!(
            ClientConfig::builder("ws://a").also("ftp://b").build(),
            Err(ConfigError::Url { url, .. }) if url == "ftp://b"
        ));
        assert_eq!(
            ClientConfig::builder("ws://a")
                .urls(Vec::<String>::new())
                .build()
                .unwrap_err(),
            ConfigError::NoUrl
        );
        assert!(matches!(
            ClientConfig::builder("ws://a").also("http://a/").build(),
            Err(ConfigError::DuplicateUrl(_))
        ));
        let replaced = ClientConfig::builder("ws://a")
            .urls(["ws://b", "ws://c"])
            .build()
            .unwrap();
        assert_eq!(replaced.urls().len(), 2);
        assert!(replaced.url().starts_with("ws://b/"));
    }
}
