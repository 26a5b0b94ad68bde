//! The exchange server, embeddable in-process: it owns the HTTP server, the
//! Socket.IO push endpoint and the sessions' lifecycle; it must not touch the
//! client or the wire formats of [`crate::protocol`] (it only uses them).
//!
//! # Contents
//!
//! - [`Server::start`] runs the server on the current actix-rt System and
//!   returns a [`ServerHandle`] (address, URLs, [`ServerStats`], graceful
//!   [`ServerHandle::stop`]).
//! - [`ServerConfig`]: bind address, passphrase, heartbeat, limits, TLS, and
//!   the store (the embedded [`MemoryStore`] by
//!   default, with a generated boss key unless one is given).
//! - The push endpoint: `GET /socket.io/?EIO=4&transport=websocket` (protocol.md
//!   §1, §2) with `watch`, `unwatch` and acked pushes: the `hub` module
//!   holds the watches and fans events out, the `session` module writes the
//!   pushes (in-flight window, ack timeout, coalesced writes).
//! - Webhook watches: `POST /watches`, `DELETE /watches/{watchable}` (the
//!   `webhooks` module).
//! - `GET /metrics`: Prometheus text, behind the optional
//!   [`ServerConfig::metrics_key`] (the `metrics` module).
//! - The REST API on the same port (protocol.md §3): `/ping`, `/ready`, `/info`, `/keys`,
//!   `/items`, `/aliases`, `/items/{id}/events`; see the `http` module for its
//!   routes, status codes and limits.
//! - The live console: `GET /console`, a page embedded in the binary (the
//!   `console` module).
//! - [`tune_malloc`]: glibc's allocator without the merge pass that stalled
//!   a busy node for tens of ms; call it first in a server's `main`.
//!
//! # Design
//!
//! One port serves REST and push: actix-server accepts, actix-http's HTTP/1
//! dispatcher reads each request head; WebSocket upgrades go to the `upgrade`
//! module (effex's own transport, the `websocket` module, with no buffer held
//! while a socket is idle), every other request to the actix-web app. Each
//! WebSocket is served by one *session actor* (architecture.md), realised as
//! a future inside the connection's task whose mailbox is a channel bounded
//! by what the hub puts in it: the hub needs a cheap `Send` handle to reach a
//! session from any worker. The session loop, its timers and its write batching are
//! described in the `session` module. Sessions find each other only through a
//! registry (push id → session mailbox, shared by the workers behind a mutex
//! that is taken on open, pass and close, never on the push path), which also
//! lets [`ServerHandle::stop`] say goodbye (`41`, close 1000) to every live
//! session before the HTTP server stops.
//!
//! ```
//! use effex::server::{Server, ServerConfig};
//!
//! # actix_rt::System::new().block_on(async {
//! let server = Server::start(ServerConfig::default()).await?;
//! assert!(server.ws_url().starts_with("ws://127.0.0.1:"));
//! assert_eq!(server.stats().connections_opened, 0);
//! server.stop().await;
//! # Ok::<(), effex::server::ServerError>(())
//! # }).unwrap();
//! ```

mod client_addr;
mod config;
mod console;
mod cors;
mod egress;
mod host_limit;
mod http;
mod hub;
mod limits;
mod malloc;
mod metrics;
mod outlet;
mod push;
mod registry;
mod request;
mod session;
mod upgrade;
mod webhooks;
mod websocket;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_service::{map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use tokio::time::Instant;

pub use self::config::{ServerConfig, ServerConfigError, BODY_HEADROOM, MIN_MAX_PAYLOAD};
pub use self::malloc::tune_malloc;
use self::registry::{send_command, Command, Registry};
use crate::store::{MemoryStore, Store, StoreError};
/// A network (`10.0.0.0/8`, `2001:db8::/32`), as [`ServerConfig::trusted_proxies`] lists them.
pub use ipnet::IpNet;

/// State shared by every worker's app and every session.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Registry,
    /// The items, keys, aliases and event log (REST and, later, the hub).
    pub(crate) store: Arc<dyn Store>,
    /// The largest REST request body: the store's max item size plus
    /// [`BODY_HEADROOM`].
    pub(crate) body_limit: usize,
    /// The watch registry and fan-out (see the `hub` module).
    pub(crate) hub: hub::HubHandle,
    /// Rate and connection limits (see the `limits` module).
    pub(crate) limits: Arc<limits::Limits>,
    /// The series of `GET /metrics` (see the `metrics` module).
    pub(crate) metrics: Arc<metrics::Metrics>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The configuration is invalid; the message says what to fix.
    #[error("invalid server config: {0}")]
    Config(#[from] ServerConfigError),
    /// [`Server::start`] was called outside an actix-rt System.
    #[error(
        "Server::start must run inside an actix-rt System \
         (use #[actix_rt::main], #[actix_rt::test] or actix_rt::System::new().block_on)"
    )]
    NoActixSystem,
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be created or did not answer `info`.
    #[error("the store could not start: {0}")]
    Store(#[from] StoreError),
    /// The metrics of `GET /metrics` could not be defined (a bug in effex:
    /// please report it).
    #[error("the metrics could not be set up (a bug in effex, please report it): {0}")]
    Metrics(String),
}

/// The effex server. See [`Server::start`].
#[derive(Debug)]
pub struct Server {
    _private: (),
}

impl Server {
    /// Validates `config`, binds, and runs the server in the background on
    /// the current actix-rt System (the HTTP server's future is spawned; its
    /// workers are their own threads).
    ///
    /// Fails with [`ServerError::NoActixSystem`] outside a System,
    /// [`ServerError::Config`] for an invalid config and
    /// [`ServerError::Bind`] when the address is taken.
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        config.validate()?;
        if actix_rt::System::try_current().is_none() {
            return Err(ServerError::NoActixSystem);
        }
        let bind = config.bind;
        let tls = config.tls.clone();
        let workers = config.workers;
        let shutdown_timeout = config.shutdown_timeout;
        let (store, boss_key) = match config.store.clone() {
            Some(store) => (store, None),
            #[cfg(feature = "redis")]
            None if config.redis_url.is_some() => {
                let url = config.redis_url.as_deref().unwrap_or_default();
                let boss_key = config.boss_key.clone().unwrap_or_else(random_boss_key);
                let redis = config.redis_store_config(url, boss_key.clone());
                let store: Arc<dyn Store> =
                    Arc::new(crate::store::RedisStore::connect(redis).await?);
                (store, Some(boss_key))
            }
            None => {
                let boss_key = config.boss_key.clone().unwrap_or_else(random_boss_key);
                let store: Arc<dyn Store> = Arc::new(MemoryStore::new(
                    config.memory_store_config(boss_key.clone()),
                )?);
                (store, Some(boss_key))
            }
        };
        let max_item_size = store.info().await?.max_size;
        let metrics = Arc::new(
            metrics::Metrics::new(store.metrics())
                .map_err(|e| ServerError::Metrics(e.to_string()))?,
        );
        // The hub follows the store's events and alias re-points.
        let (hub, hub_task) = hub::start(
            store.clone(),
            hub::HubSettings::new(&config, metrics.clone()),
        );
        let limits = Arc::new(limits::Limits::new(&config));
        limits::Limits::start_pruning(&limits);
        let shared = web::Data::new(Shared {
            limits,
            metrics,
            hub,
            config,
            registry: Registry::new(),
            store,
            body_limit: max_item_size.saturating_add(BODY_HEADROOM),
        });
        actix_rt::spawn(hub::supervise(hub_task, shared.clone().into_inner()));
        let listener = listen(bind).map_err(|source| ServerError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr: bind, source })?;
        let server = actix_server::Server::build()
            .workers(workers)
            // Every push connection may land on one worker.
            .max_concurrent_connections(
                shared
                    .config
                    .max_connections
                    .saturating_add(HTTP_CONNECTION_HEADROOM)
                    .max(ACTIX_MAX_CONNECTIONS),
            )
            // Embedded: the application owns the signals and calls `stop`.
            .disable_signals()
            .shutdown_timeout(whole_seconds(shutdown_timeout));
        let signal = server.graceful_shutdown_signal();
        let app_shared = shared.clone();
        // One HTTP/1 service per worker: WebSocket upgrades go to the
        // `upgrade` module, every other request to the actix-web app.
        macro_rules! http_service {
            () => {{
                let signal = signal.clone();
                let upgrade_shared = app_shared.clone().into_inner();
                actix_http::HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let signal = signal.clone();
                        async move { signal.notified().await }
                    })
                    // actix-web's defaults (`HttpServer`), kept as they were.
                    .keep_alive(actix_http::KeepAlive::default())
                    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
                    .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
                    .h1_allow_half_closed(true)
                    // Small frames (pings, acks, pushes) must leave at once: Nagle would
                    // hold one behind an unacknowledged segment for a delayed-ACK period.
                    .tcp_nodelay(true)
                    .local_addr(addr)
                    .upgrade(upgrade::service(upgrade_shared))
                    .finish(map_config(
                        app(app_shared.clone())
                            .into_factory()
                            .map_err(|e: actix_web::Error| e.error_response()),
                        |_| AppConfig::default(),
                    ))
            }};
        }
        let server = match tls {
            // The config is built with an explicit crypto provider (see
            // `ServerConfig::tls_config`), so no process default is needed;
            // actix-http adds the "http/1.1" ALPN protocol.
            Some(tls) => server.listen("effex-https", listener, move || {
                http_service!().rustls_0_23((*tls).clone())
            }),
            None => server.listen("effex-http", listener, move || http_service!().tcp()),
        }
        .map_err(|source| ServerError::Bind { addr: bind, source })?
        .run();
        let http_handle = server.handle();
        actix_rt::spawn(async move {
            if let Err(e) = server.await {
                log::error!("effex server on {addr} failed: {e}");
            }
        });
        log::info!("effex server listening on {addr}");
        Ok(ServerHandle {
            inner: Arc::new(HandleInner {
                addr,
                tls: shared.config.tls.is_some(),
                boss_key,
                shared: shared.into_inner(),
                http: http_handle,
            }),
        })
    }
}

/// actix-web's default for the time a client may take to send a request head.
const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// actix-web's default for the time a closing connection may take to go.
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// actix-web's default listen backlog.
const BACKLOG: u32 = 1024;

/// actix-server's default for the connections one worker holds at most.
const ACTIX_MAX_CONNECTIONS: usize = 25_000;

/// Room for plain HTTP connections beside `max_connections` push sockets
/// on one worker (the push limit itself answers 503 before the upgrade).
const HTTP_CONNECTION_HEADROOM: usize = 1024;

/// The actix-web app: every route but the WebSocket upgrades, with the
/// counting, limiting and CORS middleware.
fn app(
    shared: web::Data<Shared>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(shared.clone())
        .wrap(cors::middleware(&shared.config))
        // Outside CORS, so that preflights count against the
        // per-address rate too; its 429s carry CORS headers of their own
        // (`cors::add_refusal_headers`), so a page can read them.
        .wrap(actix_web::middleware::from_fn(limits::limit_requests))
        // Outermost of all: every request is counted and timed.
        .wrap(actix_web::middleware::from_fn(metrics::count_requests))
        .configure(push::routes)
        .configure(metrics::routes)
        // Before the REST routes, so that these take /watches.
        .configure(webhooks::routes)
        .configure(console::routes)
        .configure(http::routes)
}

/// The listening socket, as actix-web opened it: `SO_REUSEADDR`, backlog
/// [`BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)?.into_std()
}

/// A boss key for a server configured without one: 128 random bits from the
/// OS-seeded CSPRNG, as 32 hex digits behind `bk`.
fn random_boss_key() -> String {
    format!("bk{:032x}", rand::random::<u128>())
}

/// actix's shutdown timeout counts whole seconds: round up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// A running server: its address, counters, and [`ServerHandle::stop`].
/// Cheap to clone; any clone may stop the server.
#[derive(Clone)]
pub struct ServerHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    addr: SocketAddr,
    tls: bool,
    boss_key: Option<String>,
    shared: Arc<Shared>,
    http: actix_server::ServerHandle,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.inner.addr)
            .field("tls", &self.inner.tls)
            .finish_non_exhaustive()
    }
}

/// A snapshot of the server's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Push sockets opened (WebSocket upgrades accepted) since the start.
    pub connections_opened: u64,
    /// Push sockets open now.
    pub connections_active: u64,
    /// Successful passes (`pass` event or CONNECT auth).
    pub passes_ok: u64,
    /// Refused passes (bad pushId, bad passphrase).
    pub passes_failed: u64,
}

impl ServerHandle {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The address clients should dial: the bound one, with a wildcard IP
    /// replaced by loopback.
    fn dial_addr(&self) -> SocketAddr {
        let mut addr = self.inner.addr;
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        addr
    }

    /// The push endpoint's URL, e.g.
    /// `ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket` (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.inner.tls { "wss" } else { "ws" };
        format!(
            "{scheme}://{}{}?EIO=4&transport=websocket",
            self.dial_addr(),
            push::SOCKET_IO_PATH
        )
    }

    /// The base URL of the HTTP API, e.g. `http://127.0.0.1:PORT` (`https://`
    /// with TLS), without a trailing slash.
    pub fn http_url(&self) -> String {
        let scheme = if self.inner.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.dial_addr())
    }

    /// The boss key of the embedded store (the one configured, or the one
    /// generated at start): it makes access keys with `POST /keys`. `None`
    /// when the server serves a store given in [`ServerConfig::store`], whose
    /// boss key the application set itself.
    ///
    /// ```
    /// use effex::server::{Server, ServerConfig};
    ///
    /// # actix_rt::System::new().block_on(async {
    /// let server = Server::start(ServerConfig::default()).await?;
    /// let boss_key = server.boss_key().expect("the embedded store has one");
    /// assert_eq!(boss_key.len(), 34);
    /// server.stop().await;
    /// # Ok::<(), effex::server::ServerError>(())
    /// # }).unwrap();
    /// ```
    pub fn boss_key(&self) -> Option<&str> {
        self.inner.boss_key.as_deref()
    }

    /// The store the server serves: for the application's own direct use,
    /// e.g. [`Store::subscribe`] to follow every event. Changes made on it
    /// (alias re-points too) reach watches as REST's do: the hub follows the
    /// store's subscription.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.shared.store
    }

    /// The server's counters now.
    pub fn stats(&self) -> ServerStats {
        let registry = &self.inner.shared.registry;
        let counters = &registry.counters;
        ServerStats {
            connections_opened: counters.connections_opened.load(Ordering::Relaxed),
            connections_active: registry.active() as u64,
            passes_ok: counters.passes_ok.load(Ordering::Relaxed),
            passes_failed: counters.passes_failed.load(Ordering::Relaxed),
        }
    }

    /// Test hook: makes the hub task panic, to exercise its supervision
    /// (every push session is closed with 1011, `GET /ready` answers 503).
    /// Not part of the API.
    #[doc(hidden)]
    pub fn inject_hub_panic(&self) {
        self.inner.shared.hub.send(hub::Request::InjectPanic);
    }

    /// Stops the server gracefully: new sockets are refused (503), every live
    /// session sends `41` and closes with 1000, then the HTTP server stops.
    /// The whole stop is bounded by [`ServerConfig::shutdown_timeout`]; what
    /// is left then is dropped. Stopping twice is harmless.
    pub async fn stop(self) {
        let inner = &self.inner;
        let timeout = inner.shared.config.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        let registry = &inner.shared.registry;
        for mailbox in registry.begin_shutdown() {
            send_command(&mailbox, Command::Shutdown);
        }
        if !registry.wait_idle(timeout).await {
            log::warn!(
                "effex server on {}: {} session(s) still open after the shutdown timeout",
                inner.addr,
                registry.active()
            );
        }
        // The sessions are gone; what remains are plain HTTP connections.
        // actix bounds its own graceful stop by the same timeout (in whole
        // seconds), and keeps going in the background if we stop waiting.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        if tokio::time::timeout(left, inner.http.stop(true))
            .await
            .is_err()
        {
            log::warn!(
                "effex server on {}: HTTP connections still open after the shutdown timeout",
                inner.addr
            );
        }
        // The hub ends its webhook deliveries with it.
        inner.shared.hub.send(hub::Request::Shutdown);
        log::info!("effex server on {} stopped", inner.addr);
    }
}
