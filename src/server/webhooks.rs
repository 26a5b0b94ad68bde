//! Webhook watches: the `POST /watches` and `DELETE /watches/{watchable}`
//! routes, and the delivery task of each webhook watch; it must not hold
//! watch state of its own (the hub does) or speak Socket.IO.
//!
//! | route | key | success |
//! |---|---|---|
//! | `POST /watches` `{"event","id","url","method"?,"message"?}` | one that may read the item | 201 `{"ok":true,"watchable"}` |
//! | `DELETE /watches/{watchable}` | the key that made it | 200 `{"ok":true}` |
//!
//! - The key travels as in the REST API: `Authorization: Bearer <key>` or
//!   `?key=<key>`. Watching checks the key like a read (401, 403, 404). A
//!   watchable that does not exist, or was made with another key, is 404.
//! - `method` is `POST` (the default), `PUT` or `PATCH`; `url` is an absolute
//!   `http://` or `https://` URL (https is checked against Mozilla's roots).
//! - The URL must not reach the server's own network: the `egress` module's
//!   rules (and the operator's [`ServerConfig::webhook_allow`]) are checked at
//!   `POST /watches` (400 saying why) and on every connection a delivery
//!   opens (a refused address is a failed attempt).
//!   Redirects are not followed: a 3xx reply is a failed attempt.
//! - At most [`ServerConfig::webhook_max_per_host`] requests are in flight to
//!   one host; further deliveries to it wait for one to end (the
//!   `host_limit` module).
//! - Logs show a webhook URL without its user info, query and fragment.
//! - A webhook watch follows its item (or alias) from the moment it is made
//!   (live events only, no `after`). Each push object — the same
//!   `{"watchable","event","id","alias"?,"seq","at","message"?}` a socket gets
//!   — is sent as a JSON request body. A 2xx reply acknowledges it; any other
//!   reply, a connection error or a timeout
//!   ([`ServerConfig::webhook_timeout`]) is retried after
//!   [`ServerConfig::webhook_retry_base`], doubling each time (at most
//!   [`MAX_RETRY_DELAY`]). After [`ServerConfig::webhook_retries`] retries of
//!   one push the watch is ended and a warning is logged; the item's pull
//!   event log (`GET /items/{id}/events`) still has every event.
//! - One delivery at a time per webhook watch, in seq order. The final push
//!   (`remove`/`expire`) ends the watch once acknowledged.
//!
//! [`ServerConfig::webhook_timeout`]: super::ServerConfig::webhook_timeout
//! [`ServerConfig::webhook_retry_base`]: super::ServerConfig::webhook_retry_base
//! [`ServerConfig::webhook_retries`]: super::ServerConfig::webhook_retries
//! [`ServerConfig::webhook_max_per_host`]: super::ServerConfig::webhook_max_per_host
//! [`ServerConfig::webhook_allow`]: super::ServerConfig::webhook_allow

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::egress::{EgressPolicy, GuardedConnector, WebhookUrl};
use super::host_limit::HostLimits;
use super::hub::{Outgoing, Request, WatchId, WeakHub};
use super::request::{access_key, json_body, RequestError};
use super::{ServerConfig, Shared};
use crate::protocol::messages::{Empty, Failure, Success};
use crate::store::EventKind;

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

impl From<&ServerConfig> for WebhookSettings {
    fn from(config: &ServerConfig) -> Self {
        WebhookSettings {
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
    url: WebhookUrl,
    method: Method,
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
    hub: WeakHub,
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
    hub: WeakHub,
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
                d.hub.send(Request::WebhookFailed { watch: d.watch });
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
        if push.last {
            d.hub.send(Request::FinalAcked { watch: d.watch });
        }
    }
}

// ---------------------------------------------------------------------------
// Routes

/// Registers `POST /watches` and `DELETE /watches/{watchable}` (mounted
/// before the REST routes, so these take the paths).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/watches")
            .route(web::post().to(create))
            .default_service(web::to(|req: HttpRequest| async move {
                method_not_allowed(&req, "POST")
            })),
    )
    .service(
        web::resource("/watches/{watchable}")
            .route(web::delete().to(delete))
            .default_service(web::to(|req: HttpRequest| async move {
                method_not_allowed(&req, "DELETE")
            })),
    );
}

fn error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(Failure::new(status.as_u16(), message))
}

fn from_failure(failure: Failure) -> HttpResponse {
    let status = StatusCode::from_u16(failure.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(failure)
}

fn method_not_allowed(req: &HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}: use {allow}",
            req.method(),
            req.path()
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

/// A request part that cannot be used, as a JSON error.
fn from_request_error(e: RequestError) -> HttpResponse {
    error(e.status(), e.to_string())
}

/// The body of `POST /watches`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    event: EventKind,
    id: String,
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

const SHAPE: &str = r#"{"event":"update"|"remove"|"expire","id":"<item id or alias>","url":"http(s)://…","method"?:"POST"|"PUT"|"PATCH","message"?:<json>}"#;

impl NewWebhook {
    /// The checked spec: a URL the egress `policy` allows, a known method.
    async fn check(self, policy: &EgressPolicy) -> Result<WebhookSpec, Failure> {
        let bad = |why: String| Failure::new(400, why);
        let method = match self
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some("PATCH") => Method::PATCH,
            Some(other) => {
                return Err(bad(format!(
                    "method {other:?} is not supported: use POST, PUT or PATCH"
                )))
            }
        };
        let url = policy
            .check_url(&self.url)
            .await
            .map_err(|e| bad(e.to_string()))?;
        Ok(WebhookSpec {
            kind: self.event,
            id: self.id,
            message: self.message,
            url,
            method,
        })
    }
}

/// `POST /watches`.
async fn create(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    #[derive(Serialize)]
    struct Made {
        watchable: String,
    }
    let key = match access_key(&req) {
        Ok(key) => key,
        Err(e) => return from_request_error(e),
    };
    let new: NewWebhook = match json_body(&req, payload, &shared, SHAPE).await {
        Ok(new) => new,
        Err(e) => return from_request_error(e),
    };
    // A handful of allow-list entries: cheap to read per request, and always
    // the config's current rules (validated when the server started).
    let policy = EgressPolicy::new(&shared.config.webhook_allow);
    let spec = match new.check(&policy).await {
        Ok(spec) => spec,
        Err(failure) => return from_failure(failure),
    };
    let (reply, answer) = oneshot::channel();
    if !shared.hub.send(Request::AddWebhook { key, spec, reply }) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(watchable)) => HttpResponse::Created().json(Success(Made { watchable })),
        Ok(Err(failure)) => from_failure(failure),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
    }
}

/// `DELETE /watches/{watchable}`.
async fn delete(
    req: HttpRequest,
    watchable: web::Path<String>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let key = match access_key(&req) {
        Ok(key) => key,
        Err(e) => return from_request_error(e),
    };
    let (reply, answer) = oneshot::channel();
    let request = Request::RemoveWebhook {
        key,
        watchable: watchable.into_inner(),
        reply,
    };
    if !shared.hub.send(request) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    match answer.await {
        Ok(Ok(())) => HttpResponse::Ok().json(Success(Empty {})),
        Ok(Err(failure)) => from_failure(failure),
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        ),
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
