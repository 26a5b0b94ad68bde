//! The server's Prometheus metrics (`GET /metrics`, issue 10 item 2): every
//! series, one registry per server, and the text the endpoint answers. The
//! parts that count hold the handles they need (sessions, hub, webhook
//! deliveries, the HTTP middleware); it must not serve requests or decide
//! anything itself.
//!
//! # Design
//!
//! - **A registry per server**, not a process-global recorder: several
//!   servers in one process (every test, or an embedder) keep their figures
//!   apart. The `prometheus` crate (tikv's, without protobuf) gives typed
//!   series over plain atomics and writes the 0.0.4 text format that
//!   Prometheus scrapes.
//! - **Cheap on the push path**: a push is counted with one relaxed atomic
//!   increment of a series resolved at start (no label lookup, no allocation).
//! - **Read at scrape time**, not counted twice: open connections and passes
//!   (the registry's counters, which [`ServerStats`](super::ServerStats)
//!   shows too), items and bytes stored ([`Store::info`]), the limits'
//!   refusals, the active watches (kept by the hub in [`WatchCounts`]).
//!   [`render`] copies them into their series under one lock, so two
//!   scrapes at once cannot interleave.
//! - The store's own series (expiry lateness) are the store's
//!   ([`StoreMetrics`]): registered here, counted there.
//!
//! # Series
//!
//! | series | type | labels |
//! |---|---|---|
//! | `effex_connections_open` | gauge | |
//! | `effex_connections_opened_total` | counter | |
//! | `effex_passes_total` | counter | `result`: ok, failed, limited |
//! | `effex_watches` | gauge | `kind`: update, remove, expire; `outlet`: socket, webhook |
//! | `effex_pushes_sent_total` | counter | |
//! | `effex_pushes_acked_total` | counter | |
//! | `effex_pushes_replayed_total` | counter | |
//! | `effex_ack_timeouts_total` | counter | |
//! | `effex_session_queue_depth` | gauge | |
//! | `effex_http_requests_total` | counter | `route` (the pattern, or `unmatched`), `method`, `status` |
//! | `effex_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `effex_items_stored` | gauge | |
//! | `effex_item_bytes_stored` | gauge | |
//! | `effex_expiry_lateness_seconds` | histogram | (the store's) |
//! | `effex_webhook_deliveries_total` | counter | `result`: ok, failed |
//! | `effex_rate_limited_total` | counter | `limit`: requests, writes, failed_auth, connections, connections_per_address |
//! | `effex_build_info` | gauge (1) | `version` |
//!
//! Every label has a bounded set of values: routes are the registered
//! patterns (any other path is `unmatched`), methods outside the standard
//! nine are `other`, statuses are three digits.

mod endpoint;
mod middleware;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub(crate) use self::endpoint::routes;
pub(crate) use self::middleware::{count_requests, method_label, UNMATCHED};
use super::Shared;
use crate::store::{EventKind, StoreMetrics};

/// The buckets of `effex_http_request_duration_seconds`: 0.5 ms to 10 s.
const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a scrape waits for the store's counts before it shows the last
/// ones it had.
const STORE_WAIT: Duration = Duration::from_secs(2);

/// Where a watch's pushes go, as the `outlet` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outlet {
    /// A push socket (`watch` event).
    Socket = 0,
    /// A webhook (`POST /watches`).
    Webhook = 1,
}

const KINDS: [EventKind; 3] = [EventKind::Update, EventKind::Remove, EventKind::Expire];
const OUTLETS: [(Outlet, &str); 2] = [(Outlet::Socket, "socket"), (Outlet::Webhook, "webhook")];

/// The active watches by kind and outlet, kept by the hub as it adds and
/// removes them (it owns every watch) and read at scrape time.
#[derive(Debug, Default)]
pub(crate) struct WatchCounts([[AtomicI64; 2]; 3]);

impl WatchCounts {
    /// One watch of `kind` to `outlet` more (`delta` 1) or fewer (-1).
    pub(crate) fn add(&self, kind: EventKind, outlet: Outlet, delta: i64) {
        self.0[kind.index()][outlet as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// Forgets every watch (the hub that held them is gone).
    pub(crate) fn clear(&self) {
        for per_kind in &self.0 {
            for count in per_kind {
                count.store(0, Ordering::Relaxed);
            }
        }
    }

    fn get(&self, kind: EventKind, outlet: Outlet) -> i64 {
        self.0[kind.index()][outlet as usize].load(Ordering::Relaxed)
    }
}

/// The series of `effex_rate_limited_total`, one per kind of limit.
struct RateLimited {
    requests: IntCounter,
    writes: IntCounter,
    failed_auth: IntCounter,
    connections: IntCounter,
    connections_per_address: IntCounter,
}

/// Why the metrics could not be defined: a bug in effex (the series are
/// constants), reported as [`ServerError::Metrics`](super::ServerError::Metrics).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct MetricsError(#[from] prometheus::Error);

/// One server's series (see the module docs).
pub(crate) struct Metrics {
    registry: Registry,
    /// Held while a scrape copies the figures read at scrape time and
    /// encodes them.
    scrape: Mutex<()>,
    connections_open: IntGauge,
    connections_opened: IntCounter,
    passes_ok: IntCounter,
    passes_failed: IntCounter,
    /// Passes refused unchecked during a failed-authentication lockout.
    pub(crate) passes_limited: IntCounter,
    /// `[kind][outlet]`, copied from [`Metrics::watch_counts`].
    watches: [[IntGauge; 2]; 3],
    /// Kept by the hub.
    pub(crate) watch_counts: Arc<WatchCounts>,
    /// Pushes written to a socket.
    pub(crate) pushes_sent: IntCounter,
    /// Pushes a socket client acknowledged.
    pub(crate) pushes_acked: IntCounter,
    /// Pushes queued from the event log (a watch with `after`, or a later
    /// replay window).
    pub(crate) pushes_replayed: IntCounter,
    /// Sessions closed because a push was not acknowledged in time.
    pub(crate) ack_timeouts: IntCounter,
    /// Pushes queued for sessions and not yet written (every session's
    /// [`SessionLink`](super::outlet::SessionLink) adds its own).
    pub(crate) session_queue_depth: IntGauge,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    items_stored: IntGauge,
    item_bytes_stored: IntGauge,
    /// Webhook pushes delivered (2xx).
    pub(crate) webhook_ok: IntCounter,
    /// Webhook watches ended after spending their retries.
    pub(crate) webhook_failed: IntCounter,
    rate_limited: RateLimited,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("pushes_sent", &self.pushes_sent.get())
            .finish_non_exhaustive()
    }
}

/// Registers `collector` and hands it back.
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    register(registry, IntCounter::new(name, help)?)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    register(registry, IntGauge::new(name, help)?)
}

/// Sets a counter to a value read elsewhere (under the scrape lock).
fn copy_counter(counter: &IntCounter, value: u64) {
    counter.reset();
    counter.inc_by(value);
}

impl Metrics {
    /// Every series of a new server, and the store's own (`store`).
    pub(crate) fn new(store: Option<&StoreMetrics>) -> Result<Self, MetricsError> {
        let r = Registry::new();
        let passes = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "effex_passes_total",
                    "Push socket passes: ok, failed (bad pushId or passphrase), limited \
                     (refused unchecked while the address is locked out).",
                ),
                &["result"],
            )?,
        )?;
        let watches_vec = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "effex_watches",
                    "Active watches by event kind and outlet (dormant socket watches included).",
                ),
                &["kind", "outlet"],
            )?,
        )?;
        let watch = |kind: EventKind, outlet: usize| {
            watches_vec.with_label_values(&[kind.as_str(), OUTLETS[outlet].1])
        };
        let watches = KINDS.map(|kind| [watch(kind, 0), watch(kind, 1)]);
        let webhooks = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "effex_webhook_deliveries_total",
                    "Webhook pushes: ok (delivered with a 2xx), failed (the watch spent its \
                     retries and ended).",
                ),
                &["result"],
            )?,
        )?;
        let limited = register(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "effex_rate_limited_total",
                    "Requests, passes and connections refused by a limit, by limit.",
                ),
                &["limit"],
            )?,
        )?;
        let build = register(
            &r,
            IntGaugeVec::new(
                Opts::new("effex_build_info", "The effex version serving (always 1)."),
                &["version"],
            )?,
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        if let Some(store) = store {
            for collector in store.collectors() {
                r.register(collector)?;
            }
        }
        Ok(Metrics {
            connections_open: gauge(&r, "effex_connections_open", "Push sockets open now.")?,
            connections_opened: counter(
                &r,
                "effex_connections_opened_total",
                "Push sockets opened (WebSocket upgrades accepted).",
            )?,
            passes_ok: passes.with_label_values(&["ok"]),
            passes_failed: passes.with_label_values(&["failed"]),
            passes_limited: passes.with_label_values(&["limited"]),
            watches,
            watch_counts: Arc::default(),
            pushes_sent: counter(
                &r,
                "effex_pushes_sent_total",
                "Pushes written to push sockets.",
            )?,
            pushes_acked: counter(
                &r,
                "effex_pushes_acked_total",
                "Pushes acknowledged by push socket clients.",
            )?,
            pushes_replayed: counter(
                &r,
                "effex_pushes_replayed_total",
                "Pushes queued from the event log (watches with `after`, replay windows).",
            )?,
            ack_timeouts: counter(
                &r,
                "effex_ack_timeouts_total",
                "Push sockets closed because a push was not acknowledged within ack_timeout.",
            )?,
            session_queue_depth: gauge(
                &r,
                "effex_session_queue_depth",
                "Pushes queued for push sockets and not yet written, all sessions together.",
            )?,
            http_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "effex_http_requests_total",
                        "HTTP requests by route pattern, method and status.",
                    ),
                    &["route", "method", "status"],
                )?,
            )?,
            http_duration: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "effex_http_request_duration_seconds",
                        "HTTP request handling time (to the response head) by route pattern \
                         and method, in seconds.",
                    )
                    .buckets(HTTP_BUCKETS.to_vec()),
                    &["route", "method"],
                )?,
            )?,
            items_stored: gauge(&r, "effex_items_stored", "Live items in the store.")?,
            item_bytes_stored: gauge(
                &r,
                "effex_item_bytes_stored",
                "Bytes of live item values in the store.",
            )?,
            webhook_ok: webhooks.with_label_values(&["ok"]),
            webhook_failed: webhooks.with_label_values(&["failed"]),
            rate_limited: RateLimited {
                requests: limited.with_label_values(&["requests"]),
                writes: limited.with_label_values(&["writes"]),
                failed_auth: limited.with_label_values(&["failed_auth"]),
                connections: limited.with_label_values(&["connections"]),
                connections_per_address: limited.with_label_values(&["connections_per_address"]),
            },
            registry: r,
            scrape: Mutex::new(()),
        })
    }

    /// Counts one HTTP request answered with `status` after `took`.
    /// Counts and times one HTTP request (also a WebSocket upgrade, which
    /// does not pass through the middleware).
    pub(crate) fn observe_request(&self, route: &str, method: &str, status: &str, took: Duration) {
        self.http_requests
            .with_label_values(&[route, method, status])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(took.as_secs_f64());
    }

    /// Copies the figures kept elsewhere into their series.
    fn copy_figures(&self, shared: &Shared) {
        let registry = &shared.registry;
        let counters = &registry.counters;
        self.connections_open
            .set(i64::try_from(registry.active()).unwrap_or(i64::MAX));
        copy_counter(
            &self.connections_opened,
            counters.connections_opened.load(Ordering::Relaxed),
        );
        copy_counter(&self.passes_ok, counters.passes_ok.load(Ordering::Relaxed));
        // The registry counts every refused pass; the locked-out ones are
        // `limited` here.
        copy_counter(
            &self.passes_failed,
            counters
                .passes_failed
                .load(Ordering::Relaxed)
                .saturating_sub(self.passes_limited.get()),
        );
        for kind in KINDS {
            for (outlet, _) in OUTLETS {
                self.watches[kind.index()][outlet as usize]
                    .set(self.watch_counts.get(kind, outlet));
            }
        }
        let limits = &shared.limits;
        let limited = &self.rate_limited;
        copy_counter(&limited.requests, limits.requests.hits.get());
        copy_counter(&limited.writes, limits.writes.hits.get());
        copy_counter(&limited.failed_auth, limits.failed_auth.hits.get());
        copy_counter(&limited.connections, limits.connections.refused_total.get());
        copy_counter(
            &limited.connections_per_address,
            limits.connections.refused_per_client.get(),
        );
    }
}

/// The metrics of the server as Prometheus text (format 0.0.4).
pub(crate) async fn render(shared: &Shared) -> Result<String, MetricsError> {
    let stored = tokio::time::timeout(STORE_WAIT, shared.store.info()).await;
    let metrics = &shared.metrics;
    // Plain data behind the lock: still usable after a panic elsewhere.
    let _one_scrape = metrics
        .scrape
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match stored {
        Ok(Ok(info)) => {
            metrics
                .items_stored
                .set(i64::try_from(info.items).unwrap_or(i64::MAX));
            metrics
                .item_bytes_stored
                .set(i64::try_from(info.bytes).unwrap_or(i64::MAX));
        }
        // The last counts stay; GET /ready tells whether the store answers.
        Ok(Err(e)) => log::warn!("metrics: the store did not give its counts: {e}"),
        Err(_) => log::warn!("metrics: the store did not give its counts within {STORE_WAIT:?}"),
    }
    metrics.copy_figures(shared);
    Ok(TextEncoder::new().encode_to_string(&metrics.registry.gather())?)
}

/// A gauge that is not registered anywhere: for unit tests of code that
/// takes one.
#[cfg(test)]
pub(crate) fn loose_gauge() -> IntGauge {
    IntGauge::new("effex_test_gauge", "test").expect("a valid constant name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_defined_once_with_help() {
        let store = StoreMetrics::new().unwrap();
        let metrics = Metrics::new(Some(&store)).unwrap();
        metrics.pushes_sent.inc();
        metrics.observe_request("/items/{id}", "GET", "200", Duration::from_millis(1));
        let text = TextEncoder::new()
            .encode_to_string(&metrics.registry.gather())
            .unwrap();
        for name in [
            "effex_connections_open",
            "effex_pushes_sent_total",
            "effex_items_stored",
            "effex_expiry_lateness_seconds",
            "effex_http_request_duration_seconds",
            "effex_build_info",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
        }
        assert!(text.contains("effex_pushes_sent_total 1\n"), "{text}");
        assert!(
            text.contains(
                r#"effex_http_requests_total{method="GET",route="/items/{id}",status="200"} 1"#
            ),
            "{text}"
        );
    }
}
