//! WebSocket upgrades on the server's one port, served without actix-web: the
//! HTTP/1 dispatcher hands every request with `Upgrade: websocket` (and every
//! `CONNECT`) to [`service`] together with the connection, and this module
//! answers it and, once upgraded, runs the push session inside the
//! connection's own task. It must not speak Socket.IO (the `session` module
//! does) nor decide the push endpoint's checks (the `push` module does).
//!
//! Why: through actix-web, an upgraded connection kept the dispatcher's read
//! and write buffers (8 KiB each) for its whole life, a second task for the
//! session, and a channel per direction that every frame went through
//! (issue #9). Here the dispatcher's buffers are dropped after the upgrade,
//! the session is polled by the connection's task, and frames go straight
//! between the socket and the session ([`WebSocket`]).
//!
//! A request is answered as actix-web's middleware and routes answered it
//! before, in the same order: counted and timed in `/metrics` (route
//! `/socket.io/`, status 101 on success), the per-address request rate (429),
//! the path (a JSON 404 elsewhere, 405 for another method than GET), then
//! [`push::admit`]'s checks. An error answer carries `Connection: close`.

use std::sync::Arc;
use std::time::Instant;

use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::body::{self, BodySize, MessageBody};
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Method, Request, Response, StatusCode};
use actix_service::{fn_service, ServiceFactory};
use actix_web::HttpResponse;
use futures_util::SinkExt;

use super::limits::check_request;
use super::metrics::{method_label, UNMATCHED};
use super::push::{self, failure, is_push_path, Opening, SOCKET_IO_PATH};
use super::websocket::WebSocket;
use super::Shared;

/// The upgrade service of the HTTP/1 dispatcher for connections of type `T`
/// (TCP or TLS). It never fails: every outcome is answered on the socket.
pub(crate) fn service<T>(
    shared: Arc<Shared>,
) -> impl ServiceFactory<
    (Request, Framed<T, Codec>),
    Config = (),
    Response = (),
    Error = actix_http::Error,
    InitError = (),
>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    fn_service(move |(request, framed): (Request, Framed<T, Codec>)| {
        let shared = shared.clone();
        async move {
            upgrade(shared, request, framed).await;
            Ok(())
        }
    })
}

/// Answers one upgrade request; on success serves the session until it ends.
async fn upgrade<T>(shared: Arc<Shared>, request: Request, mut framed: Framed<T, Codec>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let started = Instant::now();
    let head = request.head();
    let path = head.uri.path();
    let route = if is_push_path(path) {
        // The pattern actix-web matched: the path as registered.
        if path == SOCKET_IO_PATH {
            SOCKET_IO_PATH
        } else {
            "/socket.io"
        }
    } else {
        UNMATCHED
    };
    let method = method_label(&head.method);
    let observe = |status: StatusCode| {
        shared
            .metrics
            .observe_request(route, method, status.as_str(), started.elapsed());
    };
    let peer = head.peer_addr;
    let admitted = admit(&shared, &request);
    // The request is not kept for the life of the session.
    drop(request);
    let (opening, mut switching) = match admitted {
        Ok(admitted) => admitted,
        Err(refusal) => {
            observe(refusal.status());
            if let Err(e) = write_refusal(&mut framed, *refusal).await {
                log::debug!("push endpoint: could not answer {peer:?}: {e}");
            }
            return;
        }
    };
    let mut switching = switching.finish().drop_body();
    switching
        .head_mut()
        .set_connection_type(ConnectionType::Upgrade);
    observe(switching.status());
    if let Err(e) = framed
        .send(Message::Item((switching, BodySize::None)))
        .await
    {
        log::debug!("push endpoint: could not answer the upgrade of {peer:?}: {e}");
        opening.abandon();
        return;
    }
    // Only the socket and the bytes read past the request head go on: the
    // dispatcher's buffers and codec are freed here.
    let parts = framed.into_parts();
    let ws = WebSocket::new(
        Box::new(parts.io),
        &parts.read_buf,
        shared.config.max_payload,
    );
    drop(parts.read_buf);
    drop(parts.write_buf);
    push::serve(opening, ws).await;
}

/// The checks, in actix-web's order: rate limit, route, push endpoint.
fn admit(
    shared: &Arc<Shared>,
    request: &Request,
) -> Result<(Opening, actix_http::ResponseBuilder), Box<HttpResponse>> {
    let head = request.head();
    let client = shared.limits.client(head.peer_addr, &head.headers);
    check_request(shared, client, head)?;
    if head.method == Method::CONNECT {
        // A proxy request: effex is no proxy.
        return Err(failure(
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not allowed: effex is not a proxy",
        )
        .into());
    }
    if !is_push_path(head.uri.path()) {
        return Err(failure(
            StatusCode::NOT_FOUND,
            format!(
                "no WebSocket endpoint at {}: open the push socket at {SOCKET_IO_PATH}",
                head.uri.path()
            ),
        )
        .into());
    }
    if head.method != Method::GET {
        return Err(failure(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed on {}: use GET",
                head.method,
                head.uri.path()
            ),
        )
        .into());
    }
    let admitted = push::admit(shared, head)?;
    Opening::new(shared, admitted, head.peer_addr)
}

/// Writes an error answer (its body in one piece) and shuts the write side;
/// the connection closes when the upgrade future ends.
async fn write_refusal<T>(
    framed: &mut Framed<T, Codec>,
    refusal: HttpResponse,
) -> std::io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let refusal: Response<_> = refusal.into();
    let (mut head, body) = refusal.into_parts();
    let bytes = match body.try_into_bytes() {
        Ok(bytes) => bytes,
        // Every refusal is a JSON body in one piece; read any other anyway.
        Err(body) => body::to_bytes(body)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?,
    };
    head.head_mut().set_connection_type(ConnectionType::Close);
    framed
        .feed(Message::Item((head, BodySize::Sized(bytes.len() as u64))))
        .await?;
    if !bytes.is_empty() {
        framed.feed(Message::Chunk(Some(bytes))).await?;
    }
    // Framed's `close` shuts the socket without writing Framed's own
    // buffer: `send` flushes it first. Then the write side is shut, so the
    // client reads the whole answer before the connection closes.
    framed.send(Message::Chunk(None)).await?;
    framed.close().await
}
