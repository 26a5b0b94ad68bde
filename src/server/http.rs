//! The REST API (protocol.md §3): routes, access keys from the request,
//! body limits and JSON errors; it turns HTTP into [`Store`](crate::store::Store)
//! calls and must not hold item state of its own or speak Socket.IO.
//!
//! The bodies are the [`protocol::rest`](crate::protocol::rest) types, shared
//! with the client; the store's replies become them through their `From`
//! conversions (ids as text, values as the stored JSON text).
//!
//! | route | key | success |
//! |---|---|---|
//! | `GET /ping` | none | 200 [`PingReply`] `{"ok":true,"value":"PONG"}` |
//! | `GET /ready` | none | 200 `{"ok":true}`; 503 when the watch hub has failed or the server stops |
//! | `GET /metrics` | the metrics key, if one is set | 200 Prometheus text: served by the `metrics` module |
//! | `GET /info` | none | 200 [`InfoReply`] |
//! | `POST /keys` [`KeysRequest`] | boss | 201 [`KeysReply`] |
//! | `POST /items` [`NewItem`] | writer | 201 [`WriteReply`] |
//! | `GET /items/{id or alias}` (`?intent=update`) | reader, updater, owner | 200 [`ReadReply`] |
//! | `PUT /items/{id or alias}` [`UpdateRequest`] | updater, owner | 200 [`UpdateReply`] |
//! | `DELETE /items/{id or alias}` | owner | 200 [`RemoveReply`] |
//! | `PUT /aliases/{alias}` [`AliasRequest`] | owner | 201 [`AliasReply`] |
//! | `GET /items/{id}/events?since=&event=` | reader | 200 [`EventsReply`] |
//! | `POST /watches`, `DELETE /watches/{id}` | reader | served by the `webhooks` module, mounted before these routes |
//!
//! - The key travels in `Authorization: Bearer <key>` or `?key=<key>` (the
//!   header wins when both are given). No key at all is 401. The key, query
//!   and body readers are the `request` module's, shared with the webhook routes.
//! - Every error is `{"ok":false,"code","error"}` with `code` as the HTTP
//!   status: the store's errors keep their code and message
//!   ([`StoreError::code`]); a body over the limit is 413 (before it is
//!   parsed), malformed JSON 400 (the message says what and where), an unknown
//!   route 404 and a wrong method 405 (with `Allow`).
//! - The body limit is the store's `max_size` plus
//!   [`BODY_HEADROOM`](super::BODY_HEADROOM). A body that announces a larger
//!   `Content-Length` is refused before any of it is read; a chunked one when
//!   it crosses the limit. (actix-http then lingers on the connection, reading
//!   and dropping the rest for a moment, so the client gets the 413 instead of
//!   a reset.) The body is read into memory only up to the limit.
//! - Writes and updates are rate-limited per access key (429 with
//!   `Retry-After`); the per-address limits wrap every route (see the
//!   `limits` module).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use super::request::{access_key, json_body, query, RequestError};
use super::Shared;
use crate::protocol::messages::{Failure, Success};
use crate::protocol::rest::{
    AliasReply, AliasRequest, EventsReply, InfoReply, KeysReply, KeysRequest, NewItem, PingReply,
    ReadReply, RemoveReply, UpdateReply, UpdateRequest, WriteReply,
};
use crate::store::{parse_event_kind, EventQuery, JsonText, StoreError};

/// Registers the REST routes, the JSON 405s and the JSON 404 for every
/// unknown route.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/ping", vec![(Method::GET, web::get().to(ping))]))
        .service(resource(
            "/ready",
            vec![(Method::GET, web::get().to(ready))],
        ))
        .service(resource("/info", vec![(Method::GET, web::get().to(info))]))
        .service(resource(
            "/keys",
            vec![(Method::POST, web::post().to(make_keys))],
        ))
        .service(resource(
            "/items",
            vec![(Method::POST, web::post().to(write))],
        ))
        .service(resource(
            "/items/{id}",
            vec![
                (Method::GET, web::get().to(read)),
                (Method::PUT, web::put().to(update)),
                (Method::DELETE, web::delete().to(remove)),
            ],
        ))
        .service(resource(
            "/items/{id}/events",
            vec![(Method::GET, web::get().to(events))],
        ))
        .service(resource(
            "/aliases/{alias}",
            vec![(Method::PUT, web::put().to(alias))],
        ))
        // The push endpoint's own routes (registered first) take GET; any other
        // method on its path gets the same JSON 405 as the REST routes.
        .service(with_405(
            web::resource(super::push::SOCKET_IO_PATH),
            "GET".into(),
        ))
        .service(with_405(web::resource("/socket.io"), "GET".into()))
        .default_service(web::to(not_found));
}

/// A resource with `routes` and, for any other method, a JSON 405 with `Allow`.
pub(crate) fn resource(path: &str, routes: Vec<(Method, actix_web::Route)>) -> actix_web::Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let resource = routes
        .into_iter()
        .fold(web::resource(path), |resource, (_, route)| {
            resource.route(route)
        });
    with_405(resource, allow)
}

/// `resource` answering any method it has no route for with a JSON 405 that
/// lists `allow`.
fn with_405(resource: actix_web::Resource, allow: String) -> actix_web::Resource {
    resource.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move { method_not_allowed(&req, &allow) }
    }))
}

/// 405: `allow` lists the methods the path takes.
fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let message = format!(
        "{} is not allowed on {}: use {allow}",
        req.method(),
        req.path()
    );
    let mut response = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message).error_response();
    if let Ok(value) = HeaderValue::from_str(allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// 404 for any path that is not a route.
async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}: the REST API serves /ping, /info, /keys, /items, \
             /items/{{id}}, /items/{{id}}/events, /aliases/{{alias}} and /watches",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}

// ---------------------------------------------------------------------------
// Errors and replies

/// A failed request: `{"ok":false,"code","error"}` with `code` as the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(Failure::new(self.status.as_u16(), &self.message))
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        ApiError::new(error.status(), error.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        let status =
            StatusCode::from_u16(error.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            log::error!("REST: store failed: {error}");
        }
        ApiError::new(status, error.to_string())
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

/// `{"ok":true, …body}` with `status`.
fn reply<T: Serialize>(status: StatusCode, body: T) -> HttpResponse {
    HttpResponse::build(status).json(Success(body))
}

// ---------------------------------------------------------------------------
// Request parts

// `query`, `access_key` and `json_body` are shared with the webhook routes:
// see the `request` module.

// ---------------------------------------------------------------------------
// Handlers

/// `GET /ping`.
async fn ping() -> HttpResponse {
    reply(StatusCode::OK, PingReply::pong())
}

/// How long `GET /ready` waits for the store before answering 503.
const READY_STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /ready`: 200 `{"ok":true}` while the server can serve: its store
/// answers and its watch hub runs; 503 with the reason otherwise (the store
/// is down or slow, e.g. Redis unreachable; the hub failed: restart the
/// server; or it is stopping). `GET /ping` is the liveness probe: it
/// answers as long as the process serves HTTP at all.
async fn ready(shared: web::Data<Shared>) -> HttpResponse {
    let why = match shared.hub.failure() {
        Some(failure) => format!("not ready: {failure}; restart the server"),
        None if shared.registry.is_shutting_down() => "not ready: the server is stopping".into(),
        None => match tokio::time::timeout(READY_STORE_WAIT, shared.store.latest_seq()).await {
            Ok(Ok(_)) => return reply(StatusCode::OK, crate::protocol::messages::Empty {}),
            Ok(Err(e)) => format!("not ready: the store does not answer ({e})"),
            Err(_) => format!("not ready: the store did not answer within {READY_STORE_WAIT:?}"),
        },
    };
    HttpResponse::ServiceUnavailable().json(Failure::new(503, why))
}

/// `GET /info`: the API, the crate version and the store's counts and limits.
async fn info(shared: web::Data<Shared>) -> ApiResult {
    let store = shared.store.info().await?;
    Ok(reply(StatusCode::OK, InfoReply::from(store)))
}

/// `POST /keys` with the boss key.
async fn make_keys(
    req: HttpRequest,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> ApiResult {
    let key = access_key(&req)?;
    let request: KeysRequest = json_body(
        &req,
        payload,
        &shared,
        r#"{"type":"writer"|"reader"|"updater","count"?:<n>,"seconds"?:<s>}"#,
    )
    .await?;
    let keys: KeysReply = shared.store.make_keys(&key, request).await?;
    Ok(reply(StatusCode::CREATED, keys))
}

/// `POST /items` with a writer key.
async fn write(req: HttpRequest, payload: web::Payload, shared: web::Data<Shared>) -> ApiResult {
    let key = access_key(&req)?;
    if let Err(limited) = shared.limits.writes.check(&key) {
        return Ok(limited.response());
    }
    let item: NewItem<JsonText> = json_body(
        &req,
        payload,
        &shared,
        r#"{"value":<json>,"lifetime"?:<s>,"readers"?:[…],"updaters"?:[…],"alias"?:"…"}"#,
    )
    .await?;
    let written = shared.store.write(&key, item.into()).await?;
    Ok(reply(StatusCode::CREATED, WriteReply::from(written)))
}

/// `GET /items/{id}` (`?intent=update` takes an update lock).
async fn read(req: HttpRequest, id: web::Path<String>, shared: web::Data<Shared>) -> ApiResult {
    let key = access_key(&req)?;
    let intent = match query(&req)?.get("intent").map(String::as_str) {
        None => false,
        Some("update") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
            "intent={other:?} is not understood: use ?intent=update to lock the item for an update"
        )))
        }
    };
    let item = shared.store.read(&key, &id, intent).await?;
    Ok(reply(StatusCode::OK, ReadReply::<JsonText>::from(item)))
}

/// `PUT /items/{id}` with an updater key or the owner's.
async fn update(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> ApiResult {
    let key = access_key(&req)?;
    if let Err(limited) = shared.limits.writes.check(&key) {
        return Ok(limited.response());
    }
    let update: UpdateRequest<JsonText> =
        json_body(&req, payload, &shared, r#"{"value":<json>,"intent"?:"…"}"#).await?;
    let updated = shared.store.update(&key, &id, update.into()).await?;
    Ok(reply(StatusCode::OK, UpdateReply::from(updated)))
}

/// `DELETE /items/{id}` with the owner's key.
async fn remove(req: HttpRequest, id: web::Path<String>, shared: web::Data<Shared>) -> ApiResult {
    let key = access_key(&req)?;
    let removed = shared.store.remove(&key, &id).await?;
    Ok(reply(StatusCode::OK, RemoveReply::from(removed)))
}

/// `PUT /aliases/{alias}` with the owner's key.
async fn alias(
    req: HttpRequest,
    alias: web::Path<String>,
    payload: web::Payload,
    shared: web::Data<Shared>,
) -> ApiResult {
    let key = access_key(&req)?;
    let target: AliasRequest = json_body(&req, payload, &shared, r#"{"id":"<item id>"}"#).await?;
    let aliased = shared.store.alias(&key, &alias, &target.id).await?;
    Ok(reply(StatusCode::CREATED, AliasReply::from(aliased)))
}

/// `GET /items/{id}/events?since=<seq>&event=<kind>` with a key that may read.
async fn events(req: HttpRequest, id: web::Path<String>, shared: web::Data<Shared>) -> ApiResult {
    let key = access_key(&req)?;
    let params = query(&req)?;
    let since = match params.get("since") {
        None => 0,
        Some(since) => since.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "since={since:?} is not an event seq: use a whole number (0 for every retained event)"
            ))
        })?,
    };
    let kind = params
        .get("event")
        .map(|kind| parse_event_kind(kind))
        .transpose()?;
    let query = EventQuery {
        since,
        kind,
        with_value: false,
    };
    let page = shared.store.events(&key, &id, query).await?;
    Ok(reply(StatusCode::OK, EventsReply::<JsonText>::from(page)))
}
