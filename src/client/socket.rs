//! One WebSocket: the awc connect, a writer task that owns the write half
//! (frames out, coalesced), and a reader stream that turns frames into
//! [`SocketEvent`]s tagged with the connect attempt's epoch. It knows nothing
//! of Engine.IO or Socket.IO above the frame level.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Framed;
use actix_service::Service;
use actix_tls::connect::{
    ConnectError as TcpConnectError, ConnectInfo, Connection, Connector as TcpConnector, Resolver,
};
use awc::http::Uri;
use awc::ws::{CloseCode, CloseReason, Codec, Frame, Message};
use awc::BoxedSocket;
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::error::DisconnectReason;

/// What arrived on a socket; `epoch` names the connect attempt it belongs to.
pub(crate) struct SocketEvent {
    pub epoch: u64,
    pub inbound: Inbound,
}

/// One inbound frame, continuation frames already joined.
pub(crate) enum Inbound {
    /// A text frame (one Engine.IO packet).
    Text(String),
    /// A binary frame (a Socket.IO attachment).
    Binary(Bytes),
    /// A WebSocket-level ping, to be answered with a pong.
    Ping(Bytes),
    /// The server's close frame; the stream ends after it.
    Closed { code: Option<u16>, reason: String },
    /// The socket failed or ended without a close frame; the stream ends after it.
    Failed(String),
}

/// The write half of an open WebSocket. Frames go through a bounded queue to
/// a writer task; dropping the handle closes the socket once queued frames
/// are written.
pub(crate) struct SocketWriter {
    frames: mpsc::Sender<Message>,
    capacity: usize,
    /// Ends (its sender drops) when the writer task has shut the connection.
    done: watch::Receiver<()>,
}

impl SocketWriter {
    /// Queues a text frame. Fails when the writer is gone or the queue is full.
    pub fn send_text(&self, text: String) -> Result<(), DisconnectReason> {
        self.send(Message::Text(text.into()))
    }

    /// Queues a WebSocket pong.
    pub fn send_pong(&self, data: Bytes) -> Result<(), DisconnectReason> {
        self.send(Message::Pong(data))
    }

    /// Queues a close frame; the writer closes the socket after writing it.
    pub fn close(&self, code: CloseCode) {
        // Best effort: a full or closed queue means the socket is going away anyway.
        let _ = self
            .frames
            .try_send(Message::Close(Some(CloseReason::from(code))));
    }

    /// Resolves once the writer task has shut the connection (after the
    /// close handshake, or [`CLOSE_LINGER`] at most, once closing began).
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let mut done = self.done.clone();
        async move {
            // Nothing is ever sent: this returns when the sender drops.
            while done.changed().await.is_ok() {}
        }
    }

    fn send(&self, message: Message) -> Result<(), DisconnectReason> {
        self.frames.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DisconnectReason::WriteQueueFull(self.capacity),
            mpsc::error::TrySendError::Closed(_) => {
                DisconnectReason::Transport("the socket writer has stopped".to_owned())
            }
        })
    }
}

/// Opens the WebSocket at `url` and starts its writer task (on the current
/// arbiter). Returns the write handle and the frame stream; errors are
/// human-readable descriptions for [`ConnectError::WebSocket`](super::ConnectError::WebSocket).
pub(crate) async fn open(
    client: awc::Client,
    url: String,
    max_frame_size: usize,
    write_queue: usize,
    epoch: u64,
) -> Result<(SocketWriter, FrameReader), String> {
    let (response, framed) = client
        .ws(url)
        .max_frame_size(max_frame_size)
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    log::debug!("WebSocket open (epoch {epoch}): HTTP {}", response.status());
    let (sink, stream) = framed.split();
    let (frames, queue) = mpsc::channel(write_queue);
    let (handoff, read_half) = oneshot::channel();
    let (finished, done) = watch::channel(());
    actix_rt::spawn(async move {
        write_frames(sink, queue, read_half).await;
        drop(finished);
    });
    Ok((
        SocketWriter {
            frames,
            capacity: write_queue,
            done,
        },
        FrameReader {
            stream: Some(stream),
            handoff: Some(handoff),
            epoch,
            max_frame_size,
            partial: None,
            done: false,
        },
    ))
}

/// An awc HTTP client whose TCP connections have `TCP_NODELAY` set (awc's
/// default connector leaves Nagle on, which holds a small frame — a pong, an
/// ack — behind an unacknowledged one for a delayed-ACK period, ~40 ms).
pub(crate) fn http_client(
    connect_timeout: std::time::Duration,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> awc::Client {
    let tcp = NoDelay(TcpConnector::new(Resolver::default()).service());
    // The actor's stage timer owns the connect deadline; awc's own timeouts
    // are only a backstop, set later so that the error names the stage.
    let backstop = connect_timeout + CLOSE_LINGER;
    let mut connector = awc::Connector::new().connector(tcp).timeout(backstop);
    if let Some(tls) = tls {
        connector = connector.rustls_0_23(tls);
    }
    awc::Client::builder()
        .connector(connector)
        .timeout(backstop)
        .finish()
}

/// Wraps a TCP connector service and sets `TCP_NODELAY` on what it connects.
#[derive(Clone)]
struct NoDelay<S>(S);

impl<S> Service<ConnectInfo<Uri>> for NoDelay<S>
where
    S: Service<ConnectInfo<Uri>, Response = Connection<Uri, TcpStream>, Error = TcpConnectError>,
    S::Future: 'static,
{
    type Response = Connection<Uri, TcpStream>;
    type Error = TcpConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.0.call(request);
        Box::pin(async move {
            let connection = connecting.await?;
            if let Err(e) = connection.io_ref().set_nodelay(true) {
                log::debug!("could not set TCP_NODELAY: {e}");
            }
            Ok(connection)
        })
    }
}

type WsSink = SplitSink<Framed<BoxedSocket, Codec>, Message>;
type WsStream = SplitStream<Framed<BoxedSocket, Codec>>;

/// How long a socket that sent its close frame waits for the server to close
/// the connection (RFC 6455 §7.1.1: the server closes TCP first). Closing our
/// side at once can make a server drop frames it has not read yet.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Writes queued frames. Every frame ready at once is encoded into the
/// buffer before a single flush, so a burst costs one write syscall. After a
/// close frame it takes the read half back from the [`FrameReader`] (handed
/// over when the reader is dropped) and reads until the server closes, within
/// [`CLOSE_LINGER`], before shutting the connection.
async fn write_frames(
    mut sink: WsSink,
    mut queue: mpsc::Receiver<Message>,
    read_half: oneshot::Receiver<WsStream>,
) {
    if write_until_close(&mut sink, &mut queue).await {
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            if let Ok(mut stream) = read_half.await {
                while let Some(Ok(frame)) = stream.next().await {
                    if matches!(frame, Frame::Close(_)) {
                        break;
                    }
                }
            }
        })
        .await;
    }
    let _ = sink.close().await;
}

/// Writes frames until a close frame was written (true) or the queue or the
/// socket ended (false).
async fn write_until_close(sink: &mut WsSink, queue: &mut mpsc::Receiver<Message>) -> bool {
    while let Some(first) = queue.recv().await {
        let mut closing = matches!(first, Message::Close(_));
        if sink.feed(first).await.is_err() {
            return false;
        }
        while !closing {
            match queue.try_recv() {
                Ok(next) => {
                    closing = matches!(next, Message::Close(_));
                    if sink.feed(next).await.is_err() {
                        return false;
                    }
                }
                Err(_) => break,
            }
        }
        if sink.flush().await.is_err() {
            return false;
        }
        if closing {
            return true;
        }
    }
    false
}

/// The read half as a stream of [`SocketEvent`]s. It ends after a
/// `Closed` or `Failed` event.
pub(crate) struct FrameReader {
    /// Always `Some` until dropped.
    stream: Option<WsStream>,
    /// Gives the read half to the writer task when this reader is dropped.
    handoff: Option<oneshot::Sender<WsStream>>,
    epoch: u64,
    max_frame_size: usize,
    partial: Option<(bool, BytesMut)>,
    done: bool,
}

impl FrameReader {
    fn event(&self, inbound: Inbound) -> Poll<Option<SocketEvent>> {
        Poll::Ready(Some(SocketEvent {
            epoch: self.epoch,
            inbound,
        }))
    }

    fn finish(&mut self, inbound: Inbound) -> Poll<Option<SocketEvent>> {
        self.done = true;
        self.event(inbound)
    }

    fn text(&mut self, bytes: Bytes) -> Poll<Option<SocketEvent>> {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => self.event(Inbound::Text(text)),
            Err(_) => self.finish(Inbound::Failed(
                "the server sent a text frame that is not UTF-8".to_owned(),
            )),
        }
    }

    /// Joins continuation frames; `Some` when a whole message is ready or an
    /// error ends the stream.
    fn continuation(&mut self, item: actix_http::ws::Item) -> Option<Poll<Option<SocketEvent>>> {
        use actix_http::ws::Item;
        let (is_text, chunk, last) = match item {
            Item::FirstText(b) => (Some(true), b, false),
            Item::FirstBinary(b) => (Some(false), b, false),
            Item::Continue(b) => (None, b, false),
            Item::Last(b) => (None, b, true),
        };
        match (is_text, self.partial.as_mut()) {
            (Some(is_text), None) => self.partial = Some((is_text, BytesMut::from(&chunk[..]))),
            (None, Some((_, buffer))) => buffer.extend_from_slice(&chunk),
            _ => {
                return Some(self.finish(Inbound::Failed(
                    "the server sent continuation frames out of order".to_owned(),
                )))
            }
        }
        let size = self.partial.as_ref().map_or(0, |(_, b)| b.len());
        if size > self.max_frame_size {
            return Some(self.finish(Inbound::Failed(format!(
                "the server sent a message of over {} bytes (max_frame_size)",
                self.max_frame_size
            ))));
        }
        if !last {
            return None;
        }
        let (is_text, buffer) = self.partial.take()?;
        Some(if is_text {
            self.text(buffer.freeze())
        } else {
            self.event(Inbound::Binary(buffer.freeze()))
        })
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        if let (Some(stream), Some(handoff)) = (self.stream.take(), self.handoff.take()) {
            let _ = handoff.send(stream);
        }
    }
}

impl Stream for FrameReader {
    type Item = SocketEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SocketEvent>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = match stream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return self.finish(Inbound::Failed(
                        "the connection ended without a close frame".to_owned(),
                    ))
                }
                Poll::Ready(Some(Err(e))) => return self.finish(Inbound::Failed(e.to_string())),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            match frame {
                Frame::Text(bytes) => return self.text(bytes),
                Frame::Binary(bytes) => return self.event(Inbound::Binary(bytes)),
                Frame::Ping(bytes) => return self.event(Inbound::Ping(bytes)),
                Frame::Pong(_) => continue,
                Frame::Close(reason) => {
                    let (code, reason) = match reason {
                        Some(r) => (Some(u16::from(r.code)), r.description.unwrap_or_default()),
                        None => (None, String::new()),
                    };
                    return self.finish(Inbound::Closed { code, reason });
                }
                Frame::Continuation(item) => {
                    if let Some(ready) = self.continuation(item) {
                        return ready;
                    }
                }
            }
        }
    }
}
