//! Counts and times every HTTP request (`effex_http_requests_total`,
//! `effex_http_request_duration_seconds`), as the outermost middleware so
//! that refusals by the limits and CORS preflights count too. It must not
//! change a request or a response.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;

use crate::server::Shared;

/// The `route` of a path that matches no registered route.
pub(crate) const UNMATCHED: &str = "unmatched";

/// The `method` label: the standard methods by name, any other `other`
/// (a client may send any token as a method; the label stays bounded).
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Counts the request by its route pattern (e.g. `/items/{id}`, never the
/// raw path), method and status, and observes how long the answer took.
pub(crate) async fn count_requests<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let Some(shared) = req.app_data::<web::Data<Shared>>().cloned() else {
        // Every app of the server has it; nothing to count into without it.
        return next.call(req).await;
    };
    let started = Instant::now();
    // The pattern of the resource the path matches (looked up in the
    // app's resource map, so also for requests the limits refuse).
    let route = req.match_pattern();
    let method = method_label(req.method());
    let result = next.call(req).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    shared.metrics.observe_request(
        route.as_deref().unwrap_or(UNMATCHED),
        method,
        status.as_str(),
        started.elapsed(),
    );
    result
}
