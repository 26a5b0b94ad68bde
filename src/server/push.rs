//! The push endpoint's HTTP side: `GET /socket.io/` query checks and the
//! WebSocket upgrade, which hands the socket to a new session task
//! ([`session`](super::session)); it must not speak Socket.IO itself.
//!
//! The connection limits are checked here, before the upgrade: over
//! [`ServerConfig::max_connections`](super::ServerConfig::max_connections) in
//! total or
//! [`max_connections_per_address`](super::ServerConfig::max_connections_per_address)
//! from the client's address, the answer is HTTP 503 and no WebSocket opens.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};
use tokio::sync::mpsc;

use super::outlet::SessionLink;
use super::session::{self, SessionStart};
use super::Shared;
use crate::protocol::engineio::PROTOCOL_VERSION;
use crate::protocol::messages::Failure;

/// The path Socket.IO clients connect to (with and without the trailing slash).
pub(crate) const SOCKET_IO_PATH: &str = "/socket.io/";

/// Registers the push endpoint's routes on an app.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(SOCKET_IO_PATH, web::get().to(upgrade))
        .route("/socket.io", web::get().to(upgrade));
}

/// An effex error body with that code as the HTTP status.
fn failure(status: StatusCode, error: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(Failure::new(status.as_u16(), error))
}

/// Checks `EIO=4&transport=websocket`; the error says what to send instead.
fn check_query(query: &str) -> Result<(), String> {
    let params = web::Query::<HashMap<String, String>>::from_query(query)
        .map_err(|e| format!("unreadable query string ({e})"))?;
    let expected = format!("{PROTOCOL_VERSION}");
    match params.get("EIO") {
        None => return Err(format!("missing EIO query parameter: use EIO={expected}")),
        Some(v) if *v != expected => {
            return Err(format!(
                "unsupported Engine.IO version EIO={v}: effex speaks EIO={expected}"
            ))
        }
        Some(_) => {}
    }
    match params.get("transport").map(String::as_str) {
        None => Err("missing transport query parameter: use transport=websocket".to_owned()),
        Some("websocket") => Ok(()),
        Some(other) => Err(format!(
            "unsupported transport={other}: effex serves transport=websocket only"
        )),
    }
}

/// `GET /socket.io/?EIO=4&transport=websocket`: upgrade, then spawn the session.
async fn upgrade(req: HttpRequest, body: web::Payload, shared: web::Data<Shared>) -> HttpResponse {
    if let Err(why) = check_query(req.query_string()) {
        log::debug!("push endpoint: refused {:?}: {why}", req.peer_addr());
        return failure(StatusCode::BAD_REQUEST, why);
    }
    if !super::cors::websocket_origin_allowed(&shared.config, req.headers()) {
        log::debug!(
            "push endpoint: refused a WebSocket from origin {:?} (not in cors_origins)",
            req.headers().get(header::ORIGIN)
        );
        return failure(
            StatusCode::FORBIDDEN,
            "this page's origin may not open the push socket: add it with --cors-origin",
        );
    }
    if shared.registry.is_shutting_down() {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    let client = shared.limits.client(req.peer_addr(), req.headers());
    let slot = match shared.limits.connections.open(client) {
        Ok(slot) => slot,
        Err(refused) => {
            log::debug!("push endpoint: refused a connection from {client}: {refused}");
            return failure(StatusCode::SERVICE_UNAVAILABLE, refused.to_string());
        }
    };
    let (response, ws, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!("expected a WebSocket upgrade request ({e})"),
            )
        }
    };
    let (mailbox_tx, mailbox) = mpsc::unbounded_channel();
    let Some(id) = shared.registry.open(mailbox_tx.clone()) else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    };
    let max_payload = shared.config.max_payload;
    // One limit for a single frame and for a message joined from
    // continuation frames: both are "one Engine.IO packet".
    let stream = stream
        .max_frame_size(max_payload)
        .aggregate_continuations()
        .max_continuation_size(max_payload);
    let peer = req
        .peer_addr()
        .map_or_else(|| "unknown peer".to_owned(), |a| a.to_string());
    let start = SessionStart {
        id,
        link: Arc::new(SessionLink::new(
            id,
            mailbox_tx,
            shared.metrics.session_queue_depth.clone(),
        )),
        shared: shared.into_inner(),
        ws,
        stream,
        mailbox,
        peer,
        client,
    };
    // The session runs on this worker's thread: actix-ws' stream is !Send.
    // The connection stays counted until it ends.
    actix_rt::spawn(async move {
        session::run(start).await;
        drop(slot);
    });
    response
}

#[cfg(test)]
mod tests {
    use super::check_query;

    #[test]
    fn query_rules() {
        assert!(check_query("EIO=4&transport=websocket").is_ok());
        assert!(check_query("transport=websocket&EIO=4&t=x").is_ok());
        assert!(check_query("").unwrap_err().contains("missing EIO"));
        assert!(check_query("EIO=3&transport=websocket")
            .unwrap_err()
            .contains("EIO=3"));
        assert!(check_query("EIO=4")
            .unwrap_err()
            .contains("missing transport"));
        assert!(check_query("EIO=4&transport=polling")
            .unwrap_err()
            .contains("polling"));
    }
}
