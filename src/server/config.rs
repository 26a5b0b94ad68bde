//! [`ServerConfig`]: every knob of the embedded server, with its default and
//! its validation; it holds settings only and must not touch sockets or the store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::store::{MemoryStoreConfig, Store};

/// The smallest accepted [`ServerConfig::max_payload`]: room for a `pass`
/// event with a 128-byte push id and a long passphrase.
pub const MIN_MAX_PAYLOAD: usize = 512;

/// The settings of an effex server.
///
/// A plain struct: start from [`ServerConfig::default`] and set what you
/// need. Every field has a default, so `..Default::default()` keeps
/// compiling when fields are added.
///
/// The store settings (`boss_key`, `max_item_size`, the lifetimes) configure
/// the embedded [`MemoryStore`](crate::store::MemoryStore); set
/// [`store`](ServerConfig::store) to bring another [`Store`] instead.
///
/// ```
/// use std::time::Duration;
/// use effex::server::ServerConfig;
///
/// let config = ServerConfig {
///     passphrase: Some("let me in".into()),
///     ping_interval: Duration::from_secs(10),
///     ..Default::default()
/// };
/// assert!(config.validate().is_ok());
/// assert_eq!(config.bind.port(), 0);
/// ```
#[derive(Clone)]
pub struct ServerConfig {
    /// The address to listen on. Port 0 picks a free port (read it back with
    /// [`ServerHandle::addr`](super::ServerHandle::addr)).
    ///
    /// Defaults to `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// The passphrase a push client must present (`pass` event or CONNECT
    /// auth). `None` accepts any pass; a valid push id is still required.
    ///
    /// Defaults to `None`.
    pub passphrase: Option<String>,
    /// How often the server sends an Engine.IO ping; the next ping is
    /// scheduled this long after each pong.
    ///
    /// Defaults to 25 s.
    pub ping_interval: Duration,
    /// How long the server waits for a pong before it closes the socket
    /// with 1002.
    ///
    /// Defaults to 20 s.
    pub ping_timeout: Duration,
    /// The largest WebSocket message, in bytes (after continuation frames are
    /// joined). A larger one closes the socket with 1009. At least
    /// [`MIN_MAX_PAYLOAD`].
    ///
    /// Defaults to 1,000,000.
    pub max_payload: usize,
    /// How long a new socket may take to pass (CONNECT auth or `pass` event)
    /// before the server disconnects it (`41`, then close 1000).
    ///
    /// Defaults to 10 s.
    pub pass_timeout: Duration,
    /// How long [`ServerHandle::stop`](super::ServerHandle::stop) waits for
    /// live sessions to say goodbye and for HTTP connections to end before it
    /// drops what is left.
    ///
    /// Defaults to 5 s.
    pub shutdown_timeout: Duration,
    /// The number of actix worker threads. One is plenty for an embedded
    /// server (sessions are cheap tasks); a standalone `effex serve` may
    /// raise it to the number of cores.
    ///
    /// Defaults to 1.
    pub workers: usize,
    /// TLS: when set, the server serves `https://` and `wss://` only. Build it
    /// with [`ServerConfig::tls_config`] (which picks the `ring` provider
    /// explicitly), or bring your own `rustls` 0.23 config.
    ///
    /// Defaults to `None` (plain `ws://`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The boss key of the embedded store: the secret that makes access keys
    /// (`POST /keys`). `None` generates a random one at start; read it back
    /// with [`ServerHandle::boss_key`](super::ServerHandle::boss_key).
    /// Ignored when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to `None`.
    pub boss_key: Option<String>,
    /// The largest item value accepted (its serialized JSON), in bytes; a
    /// larger one gets 413. A REST request body may be this plus
    /// [`BODY_HEADROOM`] (for the rest of the request); a larger body gets 413
    /// before it is parsed. Ignored when [`store`](ServerConfig::store) is set
    /// (the body limit then follows that store's `max_size`).
    ///
    /// Defaults to 1 MiB (1,048,576).
    pub max_item_size: usize,
    /// An item's lifetime when a write gives none. Ignored when
    /// [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 3600 s.
    pub default_lifetime: Duration,
    /// The longest lifetime an item gets (longer requests are capped, not
    /// refused). Ignored when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 86,400 s (one day).
    pub max_lifetime: Duration,
    /// How long an update intent (`GET /items/{id}?intent=update`) locks an
    /// item. Ignored when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 10 s.
    pub intent_lifetime: Duration,
    /// The longest one key may hold an item's update intent in a row, however
    /// often it renews; after such a hold its own intent reads get 423 for one
    /// `intent_lifetime` while others may take the item. At least
    /// `intent_lifetime`. Ignored when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 60 s.
    pub intent_max_hold: Duration,
    /// The most value bytes the embedded store holds over all live items; a
    /// write or update that does not fit gets 507. Ignored when
    /// [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 1 GiB (1,073,741,824).
    pub max_total_bytes: usize,
    /// The most live items one writer key owns; one more gets 429. Ignored
    /// when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 100,000.
    pub max_items_per_key: usize,
    /// The most value bytes one writer key's live items hold; more gets 429.
    /// Ignored when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 256 MiB (268,435,456).
    pub max_bytes_per_key: usize,
    /// The most aliases one writer key holds; one more gets 429. Ignored when
    /// [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to 10,000.
    pub max_aliases_per_key: usize,
    /// A store to serve instead of the embedded
    /// [`MemoryStore`](crate::store::MemoryStore) built from the fields above
    /// (e.g. one shared with the application, or a Redis store). Its boss key
    /// is the one it was configured with.
    ///
    /// Defaults to `None` (the embedded memory store).
    pub store: Option<Arc<dyn Store>>,
    /// The Redis server (`redis://host:port/db`) to keep the exchange in
    /// (a [`RedisStore`](crate::store::RedisStore)), so that several nodes
    /// on it serve one exchange; the store settings above apply, and every
    /// node on one Redis needs the same ones and the same `boss_key`, which
    /// is then required. Unreachable at start: [`Server::start`](super::Server::start)
    /// fails naming the URL. Ignored when [`store`](ServerConfig::store) is set.
    ///
    /// Defaults to `None` (the embedded memory store).
    #[cfg(feature = "redis")]
    pub redis_url: Option<String>,
    /// About how many events the Redis event stream keeps (values
    /// included); a node whose Redis connection drops catches up from it, and
    /// one away for more events than this loses the older ones from its live
    /// feed (logged; watches catch up from the items' own logs).
    ///
    /// Defaults to 100,000.
    #[cfg(feature = "redis")]
    pub redis_stream_max_len: usize,
    /// The longest a node goes without looking for due deadlines in Redis;
    /// between looks it wakes when the next known deadline falls due, so
    /// this bounds only the lateness of a deadline written meanwhile by
    /// another node.
    ///
    /// Defaults to 5 ms.
    #[cfg(feature = "redis")]
    pub redis_sweep_interval: Duration,
    /// The most due deadlines one sweep handles in one Redis script (Redis
    /// runs it alone); more are left for the next sweep, which follows at once.
    /// It bounds how long one sweep holds Redis from every other node's calls.
    ///
    /// Defaults to 200.
    #[cfg(feature = "redis")]
    pub redis_sweep_batch: usize,
    /// How long one Redis call or connection attempt may take before the
    /// request fails with 503.
    ///
    /// Defaults to 2 s.
    #[cfg(feature = "redis")]
    pub redis_timeout: Duration,
    /// The most pushes one push connection may have sent and not yet
    /// acknowledged; more wait, in order, until acks come (protocol.md §2.4).
    ///
    /// Defaults to 1,000.
    pub max_in_flight: usize,
    /// The most pushes that may wait for one connection (not yet written:
    /// beyond [`max_in_flight`](ServerConfig::max_in_flight), or not yet
    /// picked up by its session). When it is exceeded the server closes that
    /// socket with 1013 ("try again later") and writes none of its later
    /// pushes, so the client's replay (`after` = its last handled seq) loses
    /// nothing. Replayed pushes count too: a replay goes out in windows of at
    /// most half this bound (the next when the client acks the last of the
    /// previous), so a large backlog never closes the socket by itself. A
    /// webhook watch whose URL falls this far behind is ended (and logged).
    ///
    /// Defaults to 10,000.
    pub max_queued_pushes: usize,
    /// How long a push may stay unacknowledged before the server closes the
    /// socket with 1002 ("push ack timeout"); the client reconnects and
    /// replays.
    ///
    /// Defaults to 30 s.
    pub ack_timeout: Duration,
    /// How long the watches of a push id stay registered while it has no
    /// connection (or has reconnected without re-watching); then the server
    /// forgets them.
    ///
    /// Defaults to 10 minutes.
    pub watch_grace: Duration,
    /// How long one webhook request may take before it counts as failed.
    ///
    /// Defaults to 10 s.
    pub webhook_timeout: Duration,
    /// The wait before a webhook's first retry; each further retry waits
    /// twice as long as the one before (at most 5 minutes).
    ///
    /// Defaults to 1 s.
    pub webhook_retry_base: Duration,
    /// How many times a failed webhook delivery is retried before the watch
    /// is ended (and logged). With the defaults, a URL that keeps failing is
    /// given up after about 4 minutes (1 + 2 + 4 + … + 128 s).
    ///
    /// Defaults to 8.
    pub webhook_retries: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client: only from a
    /// peer inside one of these networks is the header read (the right-most
    /// address in it that is not itself a listed proxy is the client). The
    /// per-address limits count every other request under its TCP peer.
    ///
    /// Defaults to none (the header is ignored).
    pub trusted_proxies: Vec<IpNet>,
    /// The sustained rate of HTTP requests (every route, the push upgrade
    /// too) one client address may make, per second. Over it (and its
    /// burst): 429 with `Retry-After`. IPv6 addresses count by /64.
    ///
    /// Defaults to 100,000: above what one node serves (about 60,000
    /// requests/s on 2 cores), so only a flood meets it; lower it to cap
    /// what one address may take of a deployment.
    pub requests_per_second_per_address: u32,
    /// How many HTTP requests one client address may make at once, above
    /// its sustained rate.
    ///
    /// Defaults to 200,000.
    pub request_burst_per_address: u32,
    /// The sustained rate of writes and updates (`POST /items`,
    /// `PUT /items/{id}`) one access key may make, per second. Over it (and
    /// its burst): 429 with `Retry-After`.
    ///
    /// Defaults to 50,000: a ceiling that one
    /// key's writes cannot pass, to be lowered where keys must share a node
    /// fairly.
    pub writes_per_second_per_key: u32,
    /// How many writes and updates one access key may make at once, above
    /// its sustained rate.
    ///
    /// Defaults to 100,000.
    pub write_burst_per_key: u32,
    /// How many failed authentications (HTTP 401: missing, unknown or
    /// expired key; a refused `pass`) one client address may have at once
    /// before it is locked out. After the burst, one more per
    /// [`failed_auth_period`](ServerConfig::failed_auth_period).
    ///
    /// Defaults to 50.
    pub failed_auth_burst: u32,
    /// How often one more failed authentication is allowed after the burst,
    /// and the first lockout's length; each further lockout of the same
    /// address is twice as long, up to
    /// [`failed_auth_max_lockout`](ServerConfig::failed_auth_max_lockout).
    /// A locked-out address gets 429 with `Retry-After` on HTTP and
    /// `{"ok":false,"code":429,"error":"too many attempts","retryAfter":<ms>}`
    /// to a pass, without its credentials being checked.
    ///
    /// Defaults to 1 s.
    pub failed_auth_period: Duration,
    /// The longest lockout, and how long an address must stay out of
    /// lockout before its lockouts start again from the shortest.
    ///
    /// Defaults to 15 minutes.
    pub failed_auth_max_lockout: Duration,
    /// The most push connections open at once. A new one over it is refused
    /// with 503 before the WebSocket upgrade.
    ///
    /// Defaults to 50,000 (about 1 GB of connection buffers).
    pub max_connections: usize,
    /// The most push connections open at once from one client address
    /// (IPv6: one /64). A new one over it is refused with 503 before the
    /// upgrade.
    ///
    /// Defaults to 5,000.
    pub max_connections_per_address: usize,
    /// The most client addresses (and, in its own table, access keys) each
    /// rate-limit table tracks. Past it, new ones share one entry (they are
    /// limited together, and a warning is logged) until idle entries are
    /// pruned (every 10 s).
    ///
    /// Defaults to 100,000.
    pub max_tracked_clients: usize,
    /// Webhook targets allowed although they are in the server's own network
    /// (loopback, private, link-local, CGNAT, …, which are refused by
    /// default at `POST /watches` and at every delivery). Each entry is a
    /// network (`10.1.0.0/16`, `fd00::/8`), an address (`127.0.0.1`, `::1`)
    /// or a host name (`hooks.internal`: that exact name, whatever it
    /// resolves to).
    ///
    /// Defaults to empty (nothing local is allowed).
    pub webhook_allow: Vec<String>,
    /// The web origins (`https://app.example.com`, as browsers send them)
    /// whose pages may call the REST API and open the push socket. Empty:
    /// any origin may call the REST API (keys travel in `Authorization`,
    /// never cookies, so no credentials mode). A list: only those origins
    /// get CORS headers, and a WebSocket upgrade whose `Origin` names
    /// another one is refused with 403 (requests without `Origin` — not
    /// from a browser — are let through).
    ///
    /// Defaults to empty (any origin).
    pub cors_origins: Vec<String>,
    /// The most webhook requests in flight to one target host at once; more
    /// deliveries to that host wait (in order) until one ends. Waiting does
    /// not count as a failed attempt.
    ///
    /// Defaults to 64.
    pub webhook_max_per_host: usize,
    /// The most bytes of pushes one push connection may hold (queued for it,
    /// and written but not yet acknowledged), replays included. When it is
    /// exceeded the server closes that socket with 1013, as for
    /// [`max_queued_pushes`](ServerConfig::max_queued_pushes). A watch's
    /// replay (`after`) goes out in windows of at most half of this bound
    /// and of `max_queued_pushes`, so a reconnect never overflows by replay
    /// alone. At least twice `max_item_size` (one push always fits).
    ///
    /// Defaults to 64 MiB (67,108,864).
    pub max_queued_bytes: usize,
    /// The most watches one push id may hold; one more `watch` gets
    /// `{"ok":false,"code":429}`.
    ///
    /// Defaults to 10,000.
    pub max_watches_per_push_id: usize,
    /// The most push ids whose watches are held while they are offline (see
    /// [`watch_grace`](ServerConfig::watch_grace)). When one more goes
    /// offline, the watches of the one offline longest are forgotten (and
    /// logged); its client re-watches with `after` and loses nothing the
    /// event log still holds.
    ///
    /// Defaults to 100,000.
    pub max_offline_push_ids: usize,
    /// The most webhook watches one access key may hold; one more
    /// `POST /watches` gets 429. (An identical watch — same key, item or
    /// alias, event and URL — is the same watch and does not count twice.)
    ///
    /// Defaults to 1,000.
    pub max_webhooks_per_key: usize,
    /// The largest `message` of a watch (its JSON text), in bytes; a larger
    /// one gets 413.
    ///
    /// Defaults to 64 KiB (65,536).
    pub max_message_size: usize,
    /// The key `GET /metrics` asks for, as `Authorization: Bearer <key>`
    /// (compared in constant time); without it, or with another, the
    /// endpoint answers 401 (which counts as a failed authentication of the
    /// address, like a bad access key). `None` serves the metrics to anyone
    /// who can reach the port: they are figures only (counts, sizes,
    /// latencies; no keys, ids or values). Printable ASCII without spaces.
    ///
    /// Defaults to `None` (open).
    pub metrics_key: Option<String>,
}

/// How much larger than [`ServerConfig::max_item_size`] a REST request body
/// may be: room for the item's reader and updater lists, its alias, and
/// whitespace around the value.
pub const BODY_HEADROOM: usize = 64 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            passphrase: None,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            pass_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            workers: 1,
            tls: None,
            boss_key: None,
            #[cfg(feature = "redis")]
            redis_url: None,
            #[cfg(feature = "redis")]
            redis_stream_max_len: 100_000,
            #[cfg(feature = "redis")]
            redis_sweep_interval: Duration::from_millis(5),
            #[cfg(feature = "redis")]
            redis_sweep_batch: 200,
            #[cfg(feature = "redis")]
            redis_timeout: Duration::from_secs(2),
            max_item_size: 1024 * 1024,
            default_lifetime: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(86_400),
            intent_lifetime: Duration::from_secs(10),
            intent_max_hold: Duration::from_secs(60),
            max_total_bytes: 1 << 30,
            max_items_per_key: 100_000,
            max_bytes_per_key: 256 << 20,
            max_aliases_per_key: 10_000,
            store: None,
            max_in_flight: 1000,
            max_queued_pushes: 10_000,
            ack_timeout: Duration::from_secs(30),
            watch_grace: Duration::from_secs(600),
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_base: Duration::from_secs(1),
            webhook_retries: 8,
            trusted_proxies: Vec::new(),
            requests_per_second_per_address: 100_000,
            request_burst_per_address: 200_000,
            writes_per_second_per_key: 50_000,
            write_burst_per_key: 100_000,
            failed_auth_burst: 50,
            failed_auth_period: Duration::from_secs(1),
            failed_auth_max_lockout: Duration::from_secs(15 * 60),
            max_connections: 50_000,
            max_connections_per_address: 5_000,
            max_tracked_clients: 100_000,
            webhook_allow: Vec::new(),
            cors_origins: Vec::new(),
            webhook_max_per_host: 64,
            max_queued_bytes: 64 * 1024 * 1024,
            max_watches_per_push_id: 10_000,
            max_offline_push_ids: 100_000,
            max_webhooks_per_key: 1000,
            max_message_size: 64 * 1024,
            metrics_key: None,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bind", &self.bind)
            // Never print the passphrase.
            .field("passphrase", &self.passphrase.as_ref().map(|_| "<set>"))
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("max_payload", &self.max_payload)
            .field("pass_timeout", &self.pass_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("workers", &self.workers)
            .field("tls", &self.tls.is_some())
            // Never print the boss key either.
            .field("boss_key", &self.boss_key.as_ref().map(|_| "<set>"))
            .field("max_item_size", &self.max_item_size)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("intent_lifetime", &self.intent_lifetime)
            .field("intent_max_hold", &self.intent_max_hold)
            .field("max_total_bytes", &self.max_total_bytes)
            .field("max_items_per_key", &self.max_items_per_key)
            .field("max_bytes_per_key", &self.max_bytes_per_key)
            .field("max_aliases_per_key", &self.max_aliases_per_key)
            .field("store", &self.store.as_ref().map(|s| s.kind()))
            .field("max_in_flight", &self.max_in_flight)
            .field("max_queued_pushes", &self.max_queued_pushes)
            .field("ack_timeout", &self.ack_timeout)
            .field("watch_grace", &self.watch_grace)
            .field("webhook_timeout", &self.webhook_timeout)
            .field("webhook_retry_base", &self.webhook_retry_base)
            .field("webhook_retries", &self.webhook_retries)
            .field("trusted_proxies", &self.trusted_proxies)
            .field(
                "requests_per_second_per_address",
                &self.requests_per_second_per_address,
            )
            .field("request_burst_per_address", &self.request_burst_per_address)
            .field("writes_per_second_per_key", &self.writes_per_second_per_key)
            .field("write_burst_per_key", &self.write_burst_per_key)
            .field("failed_auth_burst", &self.failed_auth_burst)
            .field("failed_auth_period", &self.failed_auth_period)
            .field("failed_auth_max_lockout", &self.failed_auth_max_lockout)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("max_tracked_clients", &self.max_tracked_clients)
            .field("webhook_allow", &self.webhook_allow)
            .field("cors_origins", &self.cors_origins)
            .field("webhook_max_per_host", &self.webhook_max_per_host)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("max_watches_per_push_id", &self.max_watches_per_push_id)
            .field("max_offline_push_ids", &self.max_offline_push_ids)
            .field("max_webhooks_per_key", &self.max_webhooks_per_key)
            .field("max_message_size", &self.max_message_size)
            // Never print the metrics key.
            .field("metrics_key", &self.metrics_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why a [`ServerConfig`] cannot be used; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerConfigError {
    /// `redis_url` is set without a `boss_key`: the nodes on one Redis must share it.
    #[cfg(feature = "redis")]
    #[error(
        "redis_url is set but boss_key is not: every node on one Redis must use the \
         same boss key, so set it (--boss-key or EFFEX_BOSS_KEY)"
    )]
    RedisNeedsBossKey,
    /// A duration that travels in milliseconds (or drives a timer) is below 1 ms.
    #[error("{field} is {value:?}: set it to at least 1 ms")]
    TooShort {
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: Duration,
    },
    /// A duration does not fit the open packet's millisecond fields.
    #[error("{field} is {value:?}: set it to at most {max:?}")]
    TooLong {
        /// The field's name.
        field: &'static str,
        /// The value found.
        value: Duration,
        /// The largest accepted value.
        max: Duration,
    },
    /// `max_payload` is too small to carry a `pass` event.
    #[error("max_payload is {0} bytes: set it to at least {MIN_MAX_PAYLOAD}")]
    MaxPayloadTooSmall(usize),
    /// `workers` is zero.
    #[error("workers is 0: set it to at least 1")]
    NoWorkers,
    /// The passphrase is the empty string.
    #[error("passphrase is empty: use None to accept any pass, or set a non-empty passphrase")]
    EmptyPassphrase,
    /// The boss key is the empty string.
    #[error("boss_key is empty: use None to generate a random one, or set a non-empty secret")]
    EmptyBossKey,
    /// `max_item_size` is zero.
    #[error("max_item_size is 0: set it to at least 1 byte (the default is 1 MiB)")]
    NoMaxItemSize,
    /// A count that must be at least 1 is 0 (`max_in_flight`,
    /// `max_queued_pushes`, `max_queued_bytes`, the watch and store quotas).
    #[error("{0} is 0: set it to at least 1")]
    Zero(&'static str),
    /// A rate or connection limit is 0 (it cannot be turned off).
    #[error("{0} is 0: set it to at least 1 (to lift the limit, set a large number)")]
    ZeroLimit(&'static str),
    /// An entry of `cors_origins` is not an origin.
    #[error("cors_origins: {0}")]
    CorsOrigin(String),
    /// An entry of `webhook_allow` is not a network, an address or a host name.
    #[error("webhook_allow: {0}")]
    WebhookAllow(String),
    /// `intent_max_hold` is shorter than `intent_lifetime`.
    #[error(
        "intent_max_hold is {hold:?}, shorter than intent_lifetime {lifetime:?}: \
         set it to at least intent_lifetime (the default is 60 s)"
    )]
    IntentHoldTooShort {
        /// The `intent_max_hold` found.
        hold: Duration,
        /// The `intent_lifetime` found.
        lifetime: Duration,
    },
    /// `max_queued_bytes` cannot hold two of the largest items (a replay
    /// uses half of it).
    #[error(
        "max_queued_bytes is {queued_bytes}: set it to at least twice max_item_size ({max_item_size})"
    )]
    QueuedBytesTooSmall {
        /// The value found.
        queued_bytes: usize,
        /// The embedded store's largest item.
        max_item_size: usize,
    },
    /// The certificate or key given to [`ServerConfig::tls_config`] was refused.
    #[error("TLS certificate or key refused by rustls: {0}")]
    Tls(String),
    /// `metrics_key` is empty or has characters an `Authorization` header
    /// cannot carry as one token.
    #[error(
        "metrics_key must be 1 or more printable ASCII characters without spaces \
         (it travels as Authorization: Bearer <key>); use None to serve /metrics openly"
    )]
    BadMetricsKey,
}

/// Timers longer than this are certainly a mistake (and a day is well within
/// what tokio's timer wheel and the open packet's `u64` milliseconds hold).
const MAX_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// A duration setting of at least 1 ms.
fn at_least_1ms(field: &'static str, value: Duration) -> Result<(), ServerConfigError> {
    if value < Duration::from_millis(1) {
        return Err(ServerConfigError::TooShort { field, value });
    }
    Ok(())
}

/// A duration setting of at most [`MAX_TIMER`].
fn at_most_max_timer(field: &'static str, value: Duration) -> Result<(), ServerConfigError> {
    if value > MAX_TIMER {
        return Err(ServerConfigError::TooLong {
            field,
            value,
            max: MAX_TIMER,
        });
    }
    Ok(())
}

/// A timer: at least 1 ms, at most [`MAX_TIMER`].
fn check_timer(field: &'static str, value: Duration) -> Result<(), ServerConfigError> {
    at_least_1ms(field, value)?;
    at_most_max_timer(field, value)
}

impl ServerConfig {
    /// Checks every field; [`Server::start`](super::Server::start) calls it.
    pub fn validate(&self) -> Result<(), ServerConfigError> {
        for (field, value) in [
            ("ping_interval", self.ping_interval),
            ("ping_timeout", self.ping_timeout),
            ("pass_timeout", self.pass_timeout),
        ] {
            check_timer(field, value)?;
        }
        at_most_max_timer("shutdown_timeout", self.shutdown_timeout)?;
        if self.max_payload < MIN_MAX_PAYLOAD {
            return Err(ServerConfigError::MaxPayloadTooSmall(self.max_payload));
        }
        if self.workers == 0 {
            return Err(ServerConfigError::NoWorkers);
        }
        if self.passphrase.as_deref() == Some("") {
            return Err(ServerConfigError::EmptyPassphrase);
        }
        self.validate_push_settings()?;
        self.validate_limits()?;
        self.validate_webhook_egress()?;
        for origin in &self.cors_origins {
            super::cors::check_origin(origin).map_err(ServerConfigError::CorsOrigin)?;
        }
        if let Some(key) = &self.metrics_key {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ServerConfigError::BadMetricsKey);
            }
        }
        if self.store.is_none() {
            self.validate_store_settings()?;
            #[cfg(feature = "redis")]
            self.validate_redis_settings()?;
        }
        Ok(())
    }

    /// The checks of the watch and push settings.
    fn validate_push_settings(&self) -> Result<(), ServerConfigError> {
        for (field, value) in [
            ("ack_timeout", self.ack_timeout),
            ("watch_grace", self.watch_grace),
            ("webhook_timeout", self.webhook_timeout),
            ("webhook_retry_base", self.webhook_retry_base),
        ] {
            check_timer(field, value)?;
        }
        for (field, value) in [
            ("max_in_flight", self.max_in_flight),
            ("max_queued_pushes", self.max_queued_pushes),
            ("max_queued_bytes", self.max_queued_bytes),
            ("max_watches_per_push_id", self.max_watches_per_push_id),
            ("max_offline_push_ids", self.max_offline_push_ids),
            ("max_webhooks_per_key", self.max_webhooks_per_key),
            ("max_message_size", self.max_message_size),
        ] {
            if value == 0 {
                return Err(ServerConfigError::Zero(field));
            }
        }
        Ok(())
    }

    /// The checks of the rate and connection limits: every count at least 1,
    /// the failed-auth durations timers.
    fn validate_limits(&self) -> Result<(), ServerConfigError> {
        for (field, value) in [
            (
                "requests_per_second_per_address",
                self.requests_per_second_per_address as usize,
            ),
            (
                "request_burst_per_address",
                self.request_burst_per_address as usize,
            ),
            (
                "writes_per_second_per_key",
                self.writes_per_second_per_key as usize,
            ),
            ("write_burst_per_key", self.write_burst_per_key as usize),
            ("failed_auth_burst", self.failed_auth_burst as usize),
            ("max_connections", self.max_connections),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            ("max_tracked_clients", self.max_tracked_clients),
        ] {
            if value == 0 {
                return Err(ServerConfigError::ZeroLimit(field));
            }
        }
        for (field, value) in [
            ("failed_auth_period", self.failed_auth_period),
            ("failed_auth_max_lockout", self.failed_auth_max_lockout),
        ] {
            check_timer(field, value)?;
        }
        Ok(())
    }

    /// The checks of the webhook egress settings.
    fn validate_webhook_egress(&self) -> Result<(), ServerConfigError> {
        for entry in &self.webhook_allow {
            super::egress::AllowRule::parse(entry)
                .map_err(|e| ServerConfigError::WebhookAllow(e.to_string()))?;
        }
        if self.webhook_max_per_host == 0 {
            return Err(ServerConfigError::Zero("webhook_max_per_host"));
        }
        Ok(())
    }

    /// The checks of the embedded store's settings.
    fn validate_store_settings(&self) -> Result<(), ServerConfigError> {
        if self.boss_key.as_deref() == Some("") {
            return Err(ServerConfigError::EmptyBossKey);
        }
        if self.max_item_size == 0 {
            return Err(ServerConfigError::NoMaxItemSize);
        }
        if self.max_queued_bytes / 2 < self.max_item_size {
            return Err(ServerConfigError::QueuedBytesTooSmall {
                queued_bytes: self.max_queued_bytes,
                max_item_size: self.max_item_size,
            });
        }
        for (field, value) in [
            ("default_lifetime", self.default_lifetime),
            ("max_lifetime", self.max_lifetime),
            ("intent_lifetime", self.intent_lifetime),
            ("intent_max_hold", self.intent_max_hold),
        ] {
            at_least_1ms(field, value)?;
        }
        if self.intent_max_hold < self.intent_lifetime {
            return Err(ServerConfigError::IntentHoldTooShort {
                hold: self.intent_max_hold,
                lifetime: self.intent_lifetime,
            });
        }
        for (field, value) in [
            ("max_total_bytes", self.max_total_bytes),
            ("max_items_per_key", self.max_items_per_key),
            ("max_bytes_per_key", self.max_bytes_per_key),
            ("max_aliases_per_key", self.max_aliases_per_key),
        ] {
            if value == 0 {
                return Err(ServerConfigError::Zero(field));
            }
        }
        Ok(())
    }

    /// The checks of the Redis store's settings (when `redis_url` is set).
    #[cfg(feature = "redis")]
    fn validate_redis_settings(&self) -> Result<(), ServerConfigError> {
        if self.redis_url.is_none() {
            return Ok(());
        }
        if self.boss_key.is_none() {
            return Err(ServerConfigError::RedisNeedsBossKey);
        }
        at_least_1ms("redis_sweep_interval", self.redis_sweep_interval)?;
        at_least_1ms("redis_timeout", self.redis_timeout)?;
        for (field, value) in [
            ("redis_stream_max_len", self.redis_stream_max_len),
            ("redis_sweep_batch", self.redis_sweep_batch),
        ] {
            if value == 0 {
                return Err(ServerConfigError::Zero(field));
            }
        }
        Ok(())
    }

    /// The Redis store's config for `url`, with `boss_key` as its boss key
    /// and the store settings of the memory store.
    #[cfg(feature = "redis")]
    pub(crate) fn redis_store_config(
        &self,
        url: &str,
        boss_key: String,
    ) -> crate::store::RedisStoreConfig {
        crate::store::RedisStoreConfig {
            url: url.to_owned(),
            limits: self.memory_store_config(boss_key),
            stream_max_len: self.redis_stream_max_len,
            sweep_interval: self.redis_sweep_interval,
            sweep_batch: self.redis_sweep_batch,
            timeout: self.redis_timeout,
        }
    }

    /// The embedded memory store's config, with `boss_key` as its boss key.
    pub(crate) fn memory_store_config(&self, boss_key: String) -> MemoryStoreConfig {
        MemoryStoreConfig {
            boss_key,
            default_lifetime: self.default_lifetime,
            max_lifetime: self.max_lifetime,
            max_size: self.max_item_size,
            intent_lifetime: self.intent_lifetime,
            intent_max_hold: self.intent_max_hold,
            max_total_bytes: self.max_total_bytes,
            max_items_per_key: self.max_items_per_key,
            max_bytes_per_key: self.max_bytes_per_key,
            max_aliases_per_key: self.max_aliases_per_key,
            ..MemoryStoreConfig::default()
        }
    }

    /// Builds a TLS config for [`ServerConfig::tls`] from a certificate chain
    /// (leaf first) and its private key, with the `ring` crypto provider chosen
    /// explicitly, so no process-wide default provider is needed (actix-web
    /// adds the `http/1.1` ALPN protocol itself).
    ///
    /// ```
    /// use effex::server::ServerConfig;
    /// # use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    /// # let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    /// # let cert = CertificateDer::from(ck.cert.der().to_vec());
    /// # let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    /// let config = ServerConfig {
    ///     tls: Some(ServerConfig::tls_config(vec![cert], key)?),
    ///     ..Default::default()
    /// };
    /// # Ok::<(), effex::server::ServerConfigError>(())
    /// ```
    pub fn tls_config(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<rustls::ServerConfig>, ServerConfigError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerConfigError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)
            .map_err(|e| ServerConfigError::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ServerConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_say_what_to_fix() {
        let zero = ServerConfig {
            ping_interval: Duration::ZERO,
            ..Default::default()
        };
        let err = zero.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "ping_interval is 0ns: set it to at least 1 ms"
        );

        let small = ServerConfig {
            max_payload: 10,
            ..Default::default()
        };
        assert_eq!(
            small.validate().unwrap_err(),
            ServerConfigError::MaxPayloadTooSmall(10)
        );
        let empty = ServerConfig {
            passphrase: Some(String::new()),
            ..Default::default()
        };
        assert!(empty
            .validate()
            .unwrap_err()
            .to_string()
            .contains("use None"));
        let no_workers = ServerConfig {
            workers: 0,
            ..Default::default()
        };
        assert_eq!(no_workers.validate(), Err(ServerConfigError::NoWorkers));
    }

    #[test]
    fn hub_quotas_say_what_to_fix() {
        for config in [
            ServerConfig {
                max_watches_per_push_id: 0,
                ..Default::default()
            },
            ServerConfig {
                max_message_size: 0,
                ..Default::default()
            },
        ] {
            assert!(matches!(config.validate(), Err(ServerConfigError::Zero(_))));
        }
        let small = ServerConfig {
            max_queued_bytes: 1024 * 1024,
            ..Default::default()
        };
        assert!(small
            .validate()
            .unwrap_err()
            .to_string()
            .contains("at least twice max_item_size"));
    }

    #[test]
    fn debug_hides_the_passphrase() {
        let config = ServerConfig {
            passphrase: Some("secret".into()),
            boss_key: Some("boss secret".into()),
            ..Default::default()
        };
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn store_settings_say_what_to_fix() {
        let empty = ServerConfig {
            boss_key: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(empty.validate(), Err(ServerConfigError::EmptyBossKey));
        let zero = ServerConfig {
            max_item_size: 0,
            ..Default::default()
        };
        assert!(zero.validate().unwrap_err().to_string().contains("1 MiB"));
        let instant = ServerConfig {
            intent_lifetime: Duration::ZERO,
            ..Default::default()
        };
        assert!(instant
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("intent_lifetime"));
    }
}
