//! The HTTP side of the per-address limits, as an actix middleware around
//! every route: the failed-authentication lockout, the request rate, and the
//! counting of 401 answers as failed authentication. It must not know the
//! routes beyond the push endpoint's path.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{RequestHead, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::server::client_addr::ClientKey;
use crate::server::cors;
use crate::server::push::SOCKET_IO_PATH;
use crate::server::Shared;

/// The limits' decision on one request from `client`: the failed-auth
/// lockout (except on the push endpoint, whose `pass` answers it), then the
/// request rate. `Err` is the 429 to answer instead, with the CORS headers
/// that let the page read it. Also called for WebSocket upgrades, which do
/// not pass through the middleware.
pub(crate) fn check_request(
    shared: &Shared,
    client: ClientKey,
    head: &RequestHead,
) -> Result<(), Box<HttpResponse>> {
    let limits = &shared.limits;
    let path = head.uri.path();
    let push_endpoint = path.trim_end_matches('/') == SOCKET_IO_PATH.trim_end_matches('/');
    let refused = if push_endpoint {
        Ok(())
    } else {
        limits.failed_auth.check(client)
    }
    .and_then(|()| limits.requests.check(&client));
    refused.map_err(|limited| {
        log::debug!(
            "client {client}: {} {path}: {}",
            head.method,
            limited.message
        );
        let mut response = limited.response();
        cors::add_refusal_headers(&shared.config, &head.headers, response.headers_mut());
        Box::new(response)
    })
}

/// Refuses a locked-out address (429, except on the push endpoint, whose
/// `pass` answers it) and an address over its request rate (429); counts a
/// 401 answer as a failed authentication of the address.
pub(crate) async fn limit_requests<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(shared) = req.app_data::<web::Data<Shared>>().cloned() else {
        // Every app of the server has it; nothing to limit without it.
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let limits = &shared.limits;
    let client = limits.client(req.peer_addr(), req.headers());
    if let Err(response) = check_request(&shared, client, req.head()) {
        return Ok(req.into_response(*response).map_into_right_body());
    }
    let response = next.call(req).await?;
    if response.status() == StatusCode::UNAUTHORIZED {
        limits.failed_auth.record_failure(client);
    }
    Ok(response.map_into_left_body())
}
