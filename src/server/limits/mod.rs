//! The server's protective limits (issue 7): request rates per client
//! address, the failed-authentication penalty, write rates per access key and
//! push connections in total and per address. Each is configured on
//! [`ServerConfig`](super::ServerConfig); it must not serve requests itself.
//!
//! | limit | key | answer when reached |
//! |---|---|---|
//! | requests (every HTTP request, also the push upgrade) | client address | 429 + `Retry-After` |
//! | failed authentication (401 on HTTP, refused `pass`, `watch` refused 401) | client address | lockout: 429 + `Retry-After` on HTTP, `retryAfter` on a pass or a watch ([`failed_auth`]) |
//! | writes (`POST /items`, `PUT /items/{id}`) | access key | 429 + `Retry-After` |
//! | push connections | total, client address | 503 before the upgrade |
//!
//! The client address is the TCP peer's, or the one a trusted proxy
//! forwarded (see the `client_addr` module), IPv6 grouped by /64.
//!
//! Rates are governor's GCRA (a burst, then a steady rate). Every table keyed
//! by client address or access key holds at most `max_tracked_clients` keys;
//! past that, new keys share one entry (they are limited together) until
//! the pruning (every [`PRUNE_EVERY`]) forgets the idle ones.

mod answer;
mod bounded_store;
mod connections;
pub(crate) mod failed_auth;
mod hits;
mod middleware;
mod rate;

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

pub(crate) use self::answer::Limited;
pub(crate) use self::connections::ConnectionSlot;
use self::connections::Connections;
use self::failed_auth::FailedAuth;
pub(crate) use self::middleware::{check_request, limit_requests};
use self::rate::{KeyedRate, Rate};
use super::client_addr::{client_key, ClientKey};
use super::ServerConfig;

/// How often idle entries are dropped from the limit tables.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// Every limit of one server.
pub(crate) struct Limits {
    /// HTTP requests per client address.
    pub(crate) requests: KeyedRate<ClientKey>,
    /// Writes and updates per access key.
    pub(crate) writes: KeyedRate<String>,
    /// The failed-authentication penalty per client address.
    pub(crate) failed_auth: FailedAuth,
    /// Open push connections.
    pub(crate) connections: Connections,
    trusted_proxies: Vec<IpNet>,
}

impl Limits {
    /// The limits `config` sets (already validated).
    pub(crate) fn new(config: &ServerConfig) -> Self {
        let cap = config.max_tracked_clients;
        Self {
            requests: KeyedRate::new(
                Rate::per_second(
                    config.requests_per_second_per_address,
                    config.request_burst_per_address,
                ),
                cap,
                "client addresses (requests)",
                "too many requests from your address",
            ),
            writes: KeyedRate::new(
                Rate::per_second(config.writes_per_second_per_key, config.write_burst_per_key),
                cap,
                "access keys (writes)",
                "too many writes with this key",
            ),
            failed_auth: FailedAuth::new(
                Rate {
                    burst: config.failed_auth_burst,
                    period: config.failed_auth_period,
                },
                config.failed_auth_max_lockout,
                cap,
            ),
            connections: Connections::new(
                config.max_connections,
                config.max_connections_per_address,
            ),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    /// The client key of a request from `peer` with these headers.
    pub(crate) fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> ClientKey {
        client_key(peer, headers, &self.trusted_proxies)
    }

    /// Forgets idle entries of every table.
    fn prune(&self) {
        self.requests.prune();
        self.writes.prune();
        self.failed_auth.prune();
    }

    /// Prunes every [`PRUNE_EVERY`] on the current actix-rt System until the
    /// limits are dropped.
    pub(crate) fn start_pruning(limits: &Arc<Self>) {
        let limits: Weak<Self> = Arc::downgrade(limits);
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                limits.prune();
            }
        });
    }
}
