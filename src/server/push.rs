//! The push endpoint's HTTP side: the checks of `GET /socket.io/` before a
//! WebSocket upgrade ([`admit`]) and the start of the session on the upgraded
//! socket ([`serve`]); it must not speak Socket.IO itself.
//!
//! An upgrade request never reaches actix-web: the HTTP/1 dispatcher hands it
//! to the `upgrade` module, which calls [`admit`], writes the answer and runs
//! the session inside the connection's own task. actix-web's route here only
//! sees requests that cannot upgrade (no `Upgrade: websocket` header), and
//! answers them with the same checks and the same errors.
//!
//! The connection limits are checked here, before the upgrade: over
//! [`ServerConfig::max_connections`](super::ServerConfig::max_connections) in
//! total or
//! [`max_connections_per_address`](super::ServerConfig::max_connections_per_address)
//! from the client's address, the answer is HTTP 503 and no WebSocket opens.

use std::collections::HashMap;
use std::sync::Arc;

use actix_http::ws::handshake;
use actix_http::{RequestHead, ResponseBuilder};
use actix_web::{
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};

use super::client_addr::ClientKey;
use super::limits::ConnectionSlot;
use super::outlet::{self, SessionLink};
use super::session::{self, SessionStart};
use super::websocket::WebSocket;
use super::Shared;
use crate::protocol::engineio::PROTOCOL_VERSION;
use crate::protocol::messages::Failure;

/// The path Socket.IO clients connect to (with and without the trailing slash).
pub(crate) const SOCKET_IO_PATH: &str = "/socket.io/";

/// Whether `path` is the push endpoint's (with or without the trailing slash).
pub(crate) fn is_push_path(path: &str) -> bool {
    path == SOCKET_IO_PATH || path == SOCKET_IO_PATH.trim_end_matches('/')
}

/// Registers the push endpoint's routes on an app (requests that cannot upgrade).
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(SOCKET_IO_PATH, web::get().to(not_upgradable))
        .route("/socket.io", web::get().to(not_upgradable));
}

/// An effex error body with that code as the HTTP status.
pub(crate) fn failure(status: StatusCode, error: impl Into<String>) -> HttpResponse {
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

/// An upgrade request that passed every check of [`admit`].
pub(crate) struct Admitted {
    /// The client's address as the limits count it.
    pub(crate) client: ClientKey,
    /// The counted connection, freed when the session ends.
    pub(crate) slot: ConnectionSlot,
    /// The `101 Switching Protocols` answer (with `Sec-WebSocket-Accept`).
    pub(crate) switching: ResponseBuilder,
}

/// The push endpoint's checks of a `GET /socket.io/` request, in order: the
/// query (400), the page's origin (403), shutdown (503), the connection
/// limits (503, taking a slot), the WebSocket handshake headers (400). `Err`
/// is the answer to send instead of the upgrade.
pub(crate) fn admit(shared: &Shared, head: &RequestHead) -> Result<Admitted, Box<HttpResponse>> {
    if let Err(why) = check_query(head.uri.query().unwrap_or_default()) {
        log::debug!("push endpoint: refused {:?}: {why}", head.peer_addr);
        return Err(failure(StatusCode::BAD_REQUEST, why).into());
    }
    if !super::cors::websocket_origin_allowed(&shared.config, &head.headers) {
        log::debug!(
            "push endpoint: refused a WebSocket from origin {:?} (not in cors_origins)",
            head.headers.get(header::ORIGIN)
        );
        return Err(failure(
            StatusCode::FORBIDDEN,
            "this page's origin may not open the push socket: add it with --cors-origin",
        )
        .into());
    }
    if shared.registry.is_shutting_down() {
        return Err(shutting_down().into());
    }
    let client = shared.limits.client(head.peer_addr, &head.headers);
    let slot = match shared.limits.connections.open(client) {
        Ok(slot) => slot,
        Err(refused) => {
            log::debug!("push endpoint: refused a connection from {client}: {refused}");
            return Err(failure(StatusCode::SERVICE_UNAVAILABLE, refused.to_string()).into());
        }
    };
    match handshake(head) {
        Ok(switching) => Ok(Admitted {
            client,
            slot,
            switching,
        }),
        Err(e) => Err(failure(
            StatusCode::BAD_REQUEST,
            format!("expected a WebSocket upgrade request ({e})"),
        )
        .into()),
    }
}

fn shutting_down() -> HttpResponse {
    failure(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
}

/// `GET /socket.io/` that actix-web routes: a request without
/// `Upgrade: websocket` (or with a body), which cannot become a WebSocket.
/// The same checks as an upgrade, so the same answers; the last is 400.
async fn not_upgradable(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    match admit(&shared, req.head()) {
        Err(response) => *response,
        Ok(_) => failure(
            StatusCode::BAD_REQUEST,
            "expected a WebSocket upgrade request (without a request body)",
        ),
    }
}

/// A session registered for an admitted upgrade, not started yet.
pub(crate) struct Opening {
    start: SessionStart,
}

impl Opening {
    /// Registers a session for `admitted` (`Err`: 503, the server is
    /// shutting down). `ws` is attached by [`serve`].
    pub(crate) fn new(
        shared: &Arc<Shared>,
        admitted: Admitted,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<(Self, ResponseBuilder), Box<HttpResponse>> {
        let Admitted {
            client,
            slot,
            switching,
        } = admitted;
        let (mailbox_tx, mailbox) = outlet::mailbox();
        let Some(id) = shared.registry.open(mailbox_tx.clone()) else {
            return Err(shutting_down().into());
        };
        let start = SessionStart {
            id,
            link: Arc::new(SessionLink::new(
                id,
                mailbox_tx,
                shared.metrics.session_queue_depth.clone(),
            )),
            shared: shared.clone(),
            mailbox,
            peer: peer.map_or_else(|| "unknown peer".to_owned(), |a| a.to_string()),
            client,
            slot,
        };
        Ok((Self { start }, switching))
    }

    /// Forgets the session unstarted (the `101` could not be written).
    pub(crate) fn abandon(self) {
        self.start.shared.registry.close(self.start.id, None);
    }
}

/// Serves the session on the upgraded socket until it ends; the connection
/// stays counted until then.
///
/// The session's future is boxed: the connection's task is sized for its
/// largest state, and the session (its timers, its frame reader) should not
/// make every state of every connection that large; the box is sized exactly.
pub(crate) async fn serve(opening: Opening, ws: WebSocket) {
    Box::pin(session::run(opening.start, ws)).await;
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
