//! Webhook watches: the `POST /watches` and `DELETE /watches/{watchable}`
//! routes, and the delivery task of each webhook watch; it must not hold
//! watch state of its own (the hub does) or speak Socket.IO.
//!
//! | route | key | success |
//! |---|---|---|
//! | `POST /watches` [`WebhookRequest`] `{"event","id","url","method"?,"message"?}` | one that may read the item | 201 [`WebhookReply`] `{"ok":true,"watchable"}` |
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
//! [`MAX_RETRY_DELAY`]: super::outlet::webhook::MAX_RETRY_DELAY

use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use tokio::sync::oneshot;

use super::egress::EgressPolicy;
use super::hub::Request;
pub(crate) use super::outlet::WebhookSpec;
#[cfg(test)]
pub(crate) use super::outlet::{default_tls, delivery_client};
use super::request::{access_key, json_body, RequestError};
use super::Shared;
use crate::protocol::messages::{Empty, Failure, Success};
use crate::protocol::rest::{WebhookReply, WebhookRequest};

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

const SHAPE: &str = r#"{"event":"update"|"remove"|"expire","id":"<item id or alias>","url":"http(s)://…","method"?:"POST"|"PUT"|"PATCH","message"?:<json>}"#;

/// The checked spec of a `POST /watches` body: a URL the egress `policy`
/// allows, a known method.
async fn check(new: WebhookRequest, policy: &EgressPolicy) -> Result<WebhookSpec, Failure> {
    let bad = |why: String| Failure::new(400, why);
    let method = match new
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
        .check_url(&new.url)
        .await
        .map_err(|e| bad(e.to_string()))?;
    Ok(WebhookSpec {
        kind: new.event,
        id: new.id,
        message: new.message,
        url,
        method,
    })
}

/// `POST /watches`.
async fn create(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let key = match access_key(&req) {
        Ok(key) => key,
        Err(e) => return from_request_error(e),
    };
    let new: WebhookRequest = match json_body(&req, payload, &shared, SHAPE).await {
        Ok(new) => new,
        Err(e) => return from_request_error(e),
    };
    // A handful of allow-list entries: cheap to read per request, and always
    // the config's current rules (validated when the server started).
    let policy = EgressPolicy::new(&shared.config.webhook_allow);
    let spec = match check(new, &policy).await {
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
        Ok(Ok(watchable)) => HttpResponse::Created().json(Success(WebhookReply { watchable })),
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
