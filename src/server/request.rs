//! Reading an HTTP request's parts, shared by the REST API and the webhook
//! routes: the access key, the query string and the JSON body (with its size
//! limit). It must not route, reply or touch the store.
//!
//! - The key travels in `Authorization: Bearer <key>` or `?key=<key>` (the
//!   header wins when both are given). No key at all is 401.
//! - The body limit is the store's `max_size` plus
//!   [`BODY_HEADROOM`](super::BODY_HEADROOM). A body that announces a larger
//!   `Content-Length` is refused (413) before any of it is read; a chunked one
//!   when it crosses the limit. The body is read into memory only up to the
//!   limit.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::Shared;

/// A request part that cannot be used; the message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    /// No usable access key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A malformed query or body (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is over the limit (413).
    #[error("{0}")]
    TooLarge(String),
}

impl RequestError {
    /// The HTTP status that answers it.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            RequestError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            RequestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// The query string's parameters (400 when it does not decode).
pub(crate) fn query(req: &HttpRequest) -> Result<HashMap<String, String>, RequestError> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| RequestError::BadRequest(format!("unreadable query string: {e}")))
}

/// The caller's key: `Authorization: Bearer <key>`, else `?key=<key>`.
pub(crate) fn access_key(req: &HttpRequest) -> Result<String, RequestError> {
    const HOW: &str = "send Authorization: Bearer <key> or ?key=<key>";
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            RequestError::Unauthorized(format!(
                "the Authorization header is not readable text: {HOW}"
            ))
        })?;
        let (scheme, key) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RequestError::Unauthorized(format!(
                "Authorization scheme {scheme:?} is not supported: {HOW}"
            )));
        }
        let key = key.trim();
        if key.is_empty() {
            return Err(RequestError::Unauthorized(format!(
                "the Authorization header has no key: {HOW}"
            )));
        }
        return Ok(key.to_owned());
    }
    match query(req)?.remove("key") {
        Some(key) if !key.is_empty() => Ok(key),
        _ => Err(RequestError::Unauthorized(format!("no access key: {HOW}"))),
    }
}

/// Reads the body (at most `shared.body_limit` bytes, else 413) and parses it
/// as `T` (400 saying what is wrong and what `shape` was expected).
pub(crate) async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
    shared: &Shared,
    shape: &str,
) -> Result<T, RequestError> {
    let limit = shared.body_limit;
    let too_large = |size: &str| {
        RequestError::TooLarge(format!(
            "request body is {size} bytes; the limit is {limit} bytes \
             (the server's maxSize {} plus {} for the rest of the request): \
             store a smaller value or split it over several items",
            limit.saturating_sub(super::BODY_HEADROOM),
            super::BODY_HEADROOM
        ))
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = announced {
        if length > limit as u64 {
            return Err(too_large(&length.to_string()));
        }
    }
    // Within the limit (checked above), so the capacity is bounded too.
    let mut body = web::BytesMut::with_capacity(announced.map_or(1024, |n| n as usize));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            RequestError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large("more than that"));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError::BadRequest(format!(
            "the request body is empty: send a JSON object {shape}"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| {
        use serde_json::error::Category;
        RequestError::BadRequest(match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                format!("the request body is not valid JSON ({e}): send a JSON object {shape}")
            }
            Category::Data => format!("the request body does not fit: {e}; send {shape}"),
        })
    })
}
