//! The webhook outlet: the delivery task of each webhook watch, and the
//! hub's handle on it ([`WebhookLink`]). The routes that make and delete
//! webhook watches are the `webhooks` module's; the rules a delivery follows
//! are documented there.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::Method;
use prometheus::IntCounter;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Outgoing, Report, Reporter, WatchId};
use crate::protocol::messages::EventKind;
use crate::server::egress::{EgressPolicy, GuardedConnector, WebhookUrl};
use crate::server::host_limit::HostLimits;
use crate::server::metrics::Metrics;
use crate::server::ServerConfig;

/// The longest wait between two attempts of one webhook delivery.
pub(crate) const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// The delivery settings of every webhook watch.
#[derive(Clone)]
pub(crate) struct WebhookSettings {
    timeout: Duration,
    retry_base: Duration,
    retries: u32,
    tls: Arc<rustls::ClientConfig>,
    egress: Arc<EgressPolicy>,
    host_limits: Arc<HostLimits>,
    /// `effex_webhook_deliveries_total{result="ok"}`.
    delivered: IntCounter,
    /// `effex_webhook_deliveries_total{result="failed"}`.
    failed: IntCounter,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("timeout", &self.timeout)
            .field("retry_base", &self.retry_base)
            .field("retries", &self.retries)
            .field("egress", &self.egress)
            .finish_non_exhaustive()
    }
}

impl WebhookSettings {
    /// The webhook part of `config`; deliveries count into `metrics`.
    pub(crate) fn new(config: &ServerConfig, metrics: &Metrics) -> Self {
        WebhookSettings {
            delivered: metrics.webhook_ok.clone(),
            failed: metrics.webhook_failed.clone(),
            timeout: config.webhook_timeout,
            retry_base: config.webhook_retry_base,
            retries: config.webhook_retries,
            tls: Arc::new(default_tls()),
            egress: Arc::new(EgressPolicy::new(&config.webhook_allow)),
            host_limits: Arc::new(HostLimits::new(config.webhook_max_per_host)),
        }
    }
}

/// The HTTP client of one webhook watch's deliveries: every connection goes
/// through the egress guard, redirects are not followed, and one request
/// takes at most `timeout`.
pub(crate) fn delivery_client(
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    egress: Arc<EgressPolicy>,
) -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(timeout)
        .connector(
            awc::Connector::new()
                .connector(GuardedConnector::new(egress))
                .rustls_0_23(tls),
        )
        .finish()
}

/// Mozilla's root certificates with rustls' ring provider, HTTP/1.1 by ALPN.
pub(crate) fn default_tls() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
    .unwrap_or_else(|e| {
        // ring supports the default versions; if that ever changes, https
        // webhooks fail (and are logged) rather than the server.
        log::error!("webhooks: no TLS config ({e}); https URLs will fail");
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("ring supports TLS 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
    });
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls
}

/// What a webhook watch was asked for (checked).
#[derive(Debug, Clone)]
pub(crate) struct WebhookSpec {
    pub(crate) kind: EventKind,
    pub(crate) id: String,
    pub(crate) message: Option<Value>,
    /// Checked by the egress rules; its `Debug` is the redacted URL.
    pub(crate) url: WebhookUrl,
    pub(crate) method: Method,
}

impl WebhookSpec {
    /// The URL pushes go to (part of the watch's identity in the hub).
    pub(crate) fn url(&self) -> &str {
        self.url.url.as_str()
    }
}

/// The hub's handle on one webhook watch's delivery task.
#[derive(Debug)]
pub(crate) struct WebhookLink {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
}

impl WebhookLink {
    /// Queues a push; false when `max_queued` are already waiting (or the
    /// task is gone): the hub then ends the watch.
    pub(crate) fn push(&self, push: Outgoing, max_queued: usize) -> bool {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= max_queued {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.tx.send(push).is_ok()
    }
}

/// Starts the delivery task of a webhook watch (on the current actix-rt
/// arbiter: awc's client is not `Send`). It ends when the hub drops the link
/// and the queue is empty, or when the retry budget is spent.
pub(crate) fn spawn_delivery(
    watch: WatchId,
    watchable: String,
    spec: WebhookSpec,
    settings: WebhookSettings,
    hub: Reporter,
) -> WebhookLink {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    actix_rt::spawn(deliver(Delivery {
        watch,
        watchable,
        url: spec.url,
        method: spec.method,
        settings,
        hub,
        queued: queued.clone(),
        rx,
    }));
    WebhookLink { tx, queued }
}

struct Delivery {
    watch: WatchId,
    watchable: String,
    url: WebhookUrl,
    method: Method,
    settings: WebhookSettings,
    hub: Reporter,
    queued: Arc<AtomicUsize>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
}

/// The wait before retry number `retry` (0-based): base × 2^retry, capped.
fn backoff(base: Duration, retry: u32) -> Duration {
    base.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
        .min(MAX_RETRY_DELAY)
}

async fn deliver(mut d: Delivery) {
    let client = delivery_client(
        d.settings.timeout,
        d.settings.tls.clone(),
        d.settings.egress.clone(),
    );
    let host_gate = d.settings.host_limits.for_host(d.url.host());
    // What the logs show: never the user info or the query (secrets).
    let shown = d.url.redacted();
    let target = d.url.url.as_str();
    while let Some(push) = d.rx.recv().await {
        d.queued.fetch_sub(1, Ordering::Relaxed);
        if !push.view.is_live() {
            continue;
        }
        let body = push.object();
        let mut retry = 0;
        loop {
            let sent = {
                // The semaphore is never closed, so the permit always comes;
                // it is held for this one request.
                let _permit = host_gate.acquire().await.ok();
                client
                    .request(d.method.clone(), target)
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .send_body(body.clone())
                    .await
            };
            let why = match sent {
                Ok(response) if response.status().is_success() => break,
                Ok(response) if response.status().is_redirection() => {
                    format!("HTTP {} (redirects are not followed)", response.status())
                }
                Ok(response) => format!("HTTP {}", response.status()),
                Err(e) => e.to_string(),
            };
            if !push.view.is_live() {
                return; // deleted meanwhile
            }
            if retry >= d.settings.retries {
                log::warn!(
                    "webhook watch {}: {} {shown} failed {} time(s), last with {why}; the watch is ended \
                     (seq {} and later are still in GET /items/{{id}}/events)",
                    d.watchable,
                    d.method,
                    retry + 1,
                    push.event.seq
                );
                d.settings.failed.inc();
                d.hub.report(Report::WebhookFailed { watch: d.watch });
                return;
            }
            let delay = backoff(d.settings.retry_base, retry);
            retry += 1;
            log::info!(
                "webhook watch {}: {} {shown} failed ({why}); retry {retry} of {} in {delay:?}",
                d.watchable,
                d.method,
                d.settings.retries
            );
            tokio::time::sleep(delay).await;
            if !push.view.is_live() {
                return; // ended (or the server stopped) while waiting
            }
        }
        d.settings.delivered.inc();
        if push.last {
            d.hub.report(Report::FinalAcked { watch: d.watch });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 0), base);
        assert_eq!(backoff(base, 3), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), MAX_RETRY_DELAY);
    }
}
