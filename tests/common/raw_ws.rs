//! A hand-made WebSocket client over a plain `tokio::net::TcpStream`, for
//! tests of the server's own transport: the upgrade request and raw frames
//! written byte for byte (masked or not, fragmented, split across writes).
//! Test code: it panics with a clear message instead of returning errors;
//! every wait is bounded by [`WAIT`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Frame opcodes (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xa;

/// The handshake key of RFC 6455 §1.3 (any 16 bytes in base64 will do).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A client frame: masked (as clients must) when `masked`, FIN when `fin`.
pub fn frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 | opcode } else { opcode }];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len if len < 126 => out.push(mask_bit | len as u8),
        len if len <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend((len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend((len as u64).to_be_bytes());
        }
    }
    if masked {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        out.extend(mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend(payload);
    }
    out
}

/// A masked, final text frame.
pub fn text(payload: &str) -> Vec<u8> {
    frame(true, TEXT, payload.as_bytes(), true)
}

/// An HTTP answer: status, head (lowercased), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// A close frame's code.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// A raw connection to the server.
pub struct RawWs {
    stream: TcpStream,
    /// Bytes read past what was handed out.
    buf: Vec<u8>,
}

/// The upgrade request for `target` (path and query) with `extra` header lines.
pub fn upgrade_request(method: &str, target: &str, extra: &[&str]) -> String {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

/// The push endpoint's path and query.
pub const PUSH_TARGET: &str = "/socket.io/?EIO=4&transport=websocket";

impl RawWs {
    /// Connects and sends `request` (written as is); returns the answer's head
    /// and the connection (upgraded when the status is 101).
    pub async fn request(addr: SocketAddr, request: &str) -> (Answer, Self) {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connecting took too long")
            .expect("connect to the server");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let mut raw = Self {
            stream,
            buf: Vec::new(),
        };
        raw.send(request.as_bytes()).await;
        let answer = raw.read_answer().await;
        (answer, raw)
    }

    /// Opens the push socket; panics unless the answer is 101.
    pub async fn upgrade(addr: SocketAddr) -> Self {
        Self::upgrade_to(addr, PUSH_TARGET).await
    }

    /// Opens a WebSocket at `target` (path and query); panics unless the answer is 101.
    pub async fn upgrade_to(addr: SocketAddr, target: &str) -> Self {
        let (answer, raw) = Self::request(addr, &upgrade_request("GET", target, &[])).await;
        assert_eq!(answer.status, 101, "the upgrade was refused: {answer:?}");
        raw
    }

    /// Opens the push socket and reads the Engine.IO open packet.
    pub async fn opened(addr: SocketAddr) -> Self {
        let mut raw = Self::upgrade(addr).await;
        let open = raw.next_frame().await;
        assert!(
            open.text().starts_with("0{"),
            "expected the open packet, got {open:?}"
        );
        raw
    }

    /// Writes `bytes` in one write.
    pub async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("writing took too long")
            .expect("write to the server");
    }

    /// Writes `bytes` one byte per write (each its own TCP segment with
    /// TCP_NODELAY, most of the time).
    pub async fn send_bytewise(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.send(std::slice::from_ref(byte)).await;
            self.stream.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
    }

    /// Reads more bytes; `false` at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("nothing came from the server within {WAIT:?}"))
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// Reads an HTTP answer's head, and its body when it has a Content-Length.
    async fn read_answer(&mut self) -> Answer {
        let end = loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(self.fill().await, "the server closed before answering");
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
        self.buf.drain(..end);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().expect("a numeric content-length"));
        while self.buf.len() < length {
            assert!(self.fill().await, "the server closed inside the body");
        }
        let body = String::from_utf8_lossy(&self.buf[..length]).into_owned();
        self.buf.drain(..length);
        Answer { status, head, body }
    }

    /// The next frame from the server (unmasked, as servers send them).
    pub async fn next_frame(&mut self) -> Frame {
        self.try_next_frame()
            .await
            .expect("the server closed the connection instead of sending a frame")
    }

    /// The next frame, or `None` when the connection ends first.
    pub async fn try_next_frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next text frame's payload, skipping Engine.IO pings (answered).
    pub async fn next_text(&mut self) -> String {
        loop {
            let frame = self.next_frame().await;
            assert_eq!(frame.opcode, TEXT, "expected a text frame, got {frame:?}");
            if frame.payload == b"2" {
                self.send(&text("3")).await;
                continue;
            }
            return frame.text();
        }
    }

    /// Reads until the server's close frame; its code. Texts before it are skipped.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.try_next_frame().await {
                None => panic!("the connection ended without a close frame"),
                Some(frame) if frame.opcode == CLOSE => return frame.close_code(),
                Some(_) => {}
            }
        }
    }

    /// Whether the server closes the TCP connection within [`WAIT`].
    pub async fn closed(&mut self) -> bool {
        loop {
            if !self.fill().await {
                return true;
            }
        }
    }
}

/// One unmasked frame at the start of `buf`, and its length.
fn parse_server_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let first = *buf.first()?;
    let second = *buf.get(1)?;
    assert_eq!(second & 0x80, 0, "a server frame must not be masked");
    let (len, at) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (usize::try_from(u64::from_be_bytes(bytes)).ok()?, 10)
        }
        len => (usize::from(len), 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    Some((
        Frame {
            fin: first & 0x80 != 0,
            opcode: first & 0x0f,
            payload,
        },
        at + len,
    ))
}
