//! A server-side WebSocket (RFC 6455) over an owned byte stream: the push
//! endpoint's transport once the upgrade has been answered. It must not know
//! Engine.IO or Socket.IO; it only reads and writes frames.
//!
//! Frames are parsed and written with [`actix_http::ws::Parser`]. Client
//! frames must be masked; continuation frames are joined into one message of
//! at most `max_payload` bytes; a frame that announces more is refused as soon
//! as its header is read (it is never buffered).
//!
//! # Memory
//!
//! An idle socket holds no buffer at all: [`WebSocket::recv`] reads into a
//! small stack buffer (inside one poll, never across an await) and copies
//! what it read into the heap read buffer, which lives only while a frame is
//! in flight: the messages handed out own their payload, and the buffer is
//! released (capacity 0) as soon as it is empty. The write buffer lives from
//! the first queued frame to the end of [`WebSocket::flush`]; past
//! [`KEEP_WRITE_CAPACITY`] it is released then too.

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use actix_http::ws::{CloseReason, OpCode, Parser, ProtocolError};
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The stack buffer one read fills (bytes that complete no frame are copied
/// to the heap).
const READ_CHUNK: usize = 4096;

/// The write buffer's capacity kept between flushes; a larger one is freed.
pub(crate) const KEEP_WRITE_CAPACITY: usize = 1024;

/// A byte stream a WebSocket can run over: TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// One message or control frame from the peer.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A text message (joined from its continuations), valid UTF-8.
    Text(ByteString),
    /// A binary message (joined from its continuations).
    Binary(Bytes),
    /// A ping; [`WebSocket::queue_pong`] answers it.
    Ping(Bytes),
    /// A pong (its payload is of no use to the server).
    Pong,
    /// The peer's close frame, with its reason if it sent one.
    Close(Option<CloseReason>),
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecvError {
    /// A frame or a joined message is larger than `max_payload` (close 1009).
    #[error("a message larger than {max_payload} bytes")]
    TooLarge {
        /// The configured limit.
        max_payload: usize,
    },
    /// The peer broke the WebSocket protocol (close 1002).
    #[error("{0}")]
    Protocol(String),
    /// The connection failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
}

/// A message being joined from continuation frames.
struct Partial {
    text: bool,
    data: BytesMut,
}

/// The server side of one WebSocket.
pub(crate) struct WebSocket {
    io: Box<dyn Io>,
    /// Bytes read and not handed out yet; empty (capacity 0) between frames.
    read_buf: BytesMut,
    /// Frames queued and not written yet; see [`KEEP_WRITE_CAPACITY`].
    write_buf: BytesMut,
    /// The largest frame, and the largest joined message.
    max_payload: usize,
    partial: Option<Partial>,
    /// The peer closed its side of the stream.
    eof: bool,
}

impl WebSocket {
    /// A WebSocket over `io`, whose first bytes (read with the upgrade
    /// request, past its head) are `already_read`.
    pub(crate) fn new(io: Box<dyn Io>, already_read: &[u8], max_payload: usize) -> Self {
        Self {
            io,
            read_buf: BytesMut::from(already_read),
            write_buf: BytesMut::new(),
            max_payload,
            partial: None,
            eof: false,
        }
    }

    /// The next message or control frame; `None` once the peer has closed
    /// the stream. Cancel-safe: what was read stays buffered for the next call.
    pub(crate) async fn recv(&mut self) -> Option<Result<Incoming, RecvError>> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, RecvError>>> {
        loop {
            match self.next_buffered() {
                Ok(Some(incoming)) => return Poll::Ready(Some(Ok(incoming))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            if self.eof {
                return Poll::Ready(None);
            }
            // Uninitialised: zeroing 4 KiB on every poll (each turn of the
            // session's select polls here) cost more than all the rest.
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut chunk);
            match ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf)) {
                Err(e) => return Poll::Ready(Some(Err(RecvError::Io(e)))),
                Ok(()) if buf.filled().is_empty() => {
                    self.eof = true;
                    self.read_buf = BytesMut::new();
                }
                Ok(()) => self.read_buf.extend_from_slice(buf.filled()),
            }
        }
    }

    /// The next message or control frame if the read buffer already holds
    /// it complete; never reads from the socket.
    pub(crate) fn try_recv_buffered(&mut self) -> Option<Result<Incoming, RecvError>> {
        self.next_buffered().transpose()
    }

    /// The next complete message or control frame in the read buffer.
    fn next_buffered(&mut self) -> Result<Option<Incoming>, RecvError> {
        loop {
            if self.read_buf.is_empty() {
                // Free the allocation between frames (an idle socket holds none).
                self.read_buf = BytesMut::new();
                return Ok(None);
            }
            if announced_length(&self.read_buf).is_some_and(|len| len > self.max_payload as u64) {
                return Err(self.too_large());
            }
            let parsed = Parser::parse(&mut self.read_buf, true, self.max_payload)
                .map_err(|e| self.protocol_error(e))?;
            let Some((fin, opcode, payload)) = parsed else {
                return Ok(None);
            };
            let payload = payload.unwrap_or_default();
            if self.read_buf.is_empty() {
                self.read_buf = BytesMut::new();
            }
            match opcode {
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(RecvError::Protocol(
                            "a new message started before the last one's continuations ended"
                                .to_owned(),
                        ));
                    }
                    let text = opcode == OpCode::Text;
                    if fin {
                        return message(text, payload).map(Some);
                    }
                    self.partial = Some(Partial {
                        text,
                        data: payload,
                    });
                }
                OpCode::Continue => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(RecvError::Protocol(
                            "a continuation frame without a message to continue".to_owned(),
                        ));
                    };
                    if partial.data.len().saturating_add(payload.len()) > self.max_payload {
                        self.partial = None;
                        return Err(self.too_large());
                    }
                    partial.data.extend_from_slice(&payload);
                    if fin {
                        if let Some(done) = self.partial.take() {
                            return message(done.text, done.data).map(Some);
                        }
                    }
                }
                OpCode::Ping => return Ok(Some(Incoming::Ping(payload.freeze()))),
                OpCode::Pong => return Ok(Some(Incoming::Pong)),
                OpCode::Close => {
                    let reason = Parser::try_parse_close_payload(&payload)
                        .map_err(|e| self.protocol_error(e))?;
                    return Ok(Some(Incoming::Close(reason)));
                }
                OpCode::Bad => return Err(RecvError::Protocol("bad opcode".to_owned())),
            }
        }
    }

    fn too_large(&self) -> RecvError {
        RecvError::TooLarge {
            max_payload: self.max_payload,
        }
    }

    fn protocol_error(&self, error: ProtocolError) -> RecvError {
        match error {
            ProtocolError::Overflow => self.too_large(),
            other => RecvError::Protocol(other.to_string()),
        }
    }

    /// Queues a text frame (written by the next [`WebSocket::flush`]).
    pub(crate) fn queue_text(&mut self, text: &str) {
        Parser::write_message(&mut self.write_buf, text, OpCode::Text, true, false);
    }

    /// Queues the pong answering a ping with `data`.
    pub(crate) fn queue_pong(&mut self, data: &[u8]) {
        Parser::write_message(&mut self.write_buf, data, OpCode::Pong, true, false);
    }

    /// Queues a close frame.
    pub(crate) fn queue_close(&mut self, reason: Option<CloseReason>) {
        Parser::write_close(&mut self.write_buf, reason, false);
    }

    /// Whether frames wait for [`WebSocket::flush`].
    pub(crate) fn has_queued(&self) -> bool {
        !self.write_buf.is_empty()
    }

    /// Forgets the queued frames (the peer is being dropped).
    pub(crate) fn discard_queued(&mut self) {
        self.write_buf = BytesMut::new();
    }

    /// Writes every queued frame and flushes the stream. Not cancel-safe
    /// for the frames: a cancelled flush leaves the rest queued.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_buf.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.write_buf))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.advance(written);
        }
        if self.write_buf.capacity() > KEEP_WRITE_CAPACITY {
            self.write_buf = BytesMut::new();
        } else {
            self.write_buf.clear();
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Shuts the write side down (TLS: close_notify), after the close handshake.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

/// A finished text or binary message.
fn message(text: bool, data: BytesMut) -> Result<Incoming, RecvError> {
    if !text {
        return Ok(Incoming::Binary(data.freeze()));
    }
    ByteString::try_from(data.freeze())
        .map(Incoming::Text)
        .map_err(|e| RecvError::Protocol(format!("text frame is not UTF-8 ({e})")))
}

/// The payload length a frame header at the start of `buf` announces, once
/// enough of the header is there to tell.
fn announced_length(buf: &[u8]) -> Option<u64> {
    let short = *buf.get(1)? & 0x7f;
    match short {
        126 => buf
            .get(2..4)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| u64::from(u16::from_be_bytes(b))),
        127 => buf
            .get(2..10)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes),
        len => Some(u64::from(len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        Parser::write_message(&mut out, payload, OpCode::Text, fin, true);
        out[0] = (out[0] & 0xf0) | opcode;
        if !fin {
            out[0] &= 0x7f;
        }
        out.to_vec()
    }

    async fn socket(bytes: Vec<u8>, max_payload: usize) -> WebSocket {
        let (client, server) = tokio::io::duplex(64);
        let mut client = client;
        tokio::spawn(async move {
            // One byte at a time: every frame arrives in pieces.
            for byte in bytes {
                if client.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
            let _ = client.shutdown().await;
        });
        WebSocket::new(Box::new(server), &[], max_payload)
    }

    #[tokio::test]
    async fn joins_continuations_read_a_byte_at_a_time() {
        let mut bytes = client_frame(false, 0x1, b"hel");
        bytes.extend(client_frame(false, 0x0, b"lo "));
        bytes.extend(client_frame(true, 0x9, b"p")); // a ping in between
        bytes.extend(client_frame(true, 0x0, b"world"));
        let mut ws = socket(bytes, 100).await;
        assert!(matches!(ws.recv().await, Some(Ok(Incoming::Ping(p))) if &p[..] == b"p"));
        match ws.recv().await {
            Some(Ok(Incoming::Text(text))) => assert_eq!(&*text, "hello world"),
            other => panic!("expected the joined text, got {other:?}"),
        }
        assert!(ws.recv().await.is_none());
        assert_eq!(ws.read_buf.capacity(), 0);
    }

    #[tokio::test]
    async fn refuses_a_joined_message_over_the_limit() {
        let mut bytes = client_frame(false, 0x1, &[b'a'; 60]);
        bytes.extend(client_frame(true, 0x0, &[b'a'; 60]));
        let mut ws = socket(bytes, 100).await;
        assert!(matches!(
            ws.recv().await,
            Some(Err(RecvError::TooLarge { max_payload: 100 }))
        ));
    }

    #[test]
    fn reads_the_announced_length_early() {
        assert_eq!(announced_length(&[0x81]), None);
        assert_eq!(announced_length(&[0x81, 0x85]), Some(5));
        assert_eq!(announced_length(&[0x81, 0xfe, 0x01]), None);
        assert_eq!(announced_length(&[0x81, 0xfe, 0x01, 0x00]), Some(256));
        assert_eq!(
            announced_length(&[0x81, 0xff, 0, 0, 0, 1, 0, 0, 0, 0]),
            Some(1 << 32)
        );
    }
}
