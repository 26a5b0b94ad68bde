//! Engine.IO v4 packets over WebSocket: one packet per frame, no I/O here.
//!
//! A text frame is `<type digit><data>`; a binary frame is a message whose
//! payload is raw bytes (Socket.IO binary attachments ride in those).
//!
//! ```
//! use effex::protocol::engineio::Packet;
//!
//! assert_eq!(Packet::decode_text("2").unwrap(), Packet::Ping(String::new()));
//! assert_eq!(Packet::Pong(String::new()).encode_text().as_deref(), Some("3"));
//! assert_eq!(Packet::Message("40".into()).encode_text().as_deref(), Some("440"));
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::DecodeError;

/// The Engine.IO protocol revision spoken here (`EIO=4` in the URL).
pub const PROTOCOL_VERSION: u8 = 4;

/// The handshake the server sends right after the WebSocket opens
/// (`0{"sid":…,"upgrades":[],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenPacket {
    /// The Engine.IO session id.
    pub sid: String,
    /// Transports the client may upgrade to; always empty for a WebSocket-only server.
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong before it closes the connection.
    pub ping_timeout: u64,
    /// The largest frame, in bytes, the server accepts.
    #[serde(default = "default_max_payload")]
    pub max_payload: u64,
}

fn default_max_payload() -> u64 {
    1_000_000
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0` — the server's handshake.
    Open(OpenPacket),
    /// `1` — the sender closes the session.
    Close,
    /// `2` — heartbeat request, sent by the server in v4 (the data is echoed in the pong).
    Ping(String),
    /// `3` — heartbeat answer.
    Pong(String),
    /// `4` — a text message (a Socket.IO packet).
    Message(String),
    /// A binary frame: a binary message (Socket.IO attachment).
    Binary(Bytes),
    /// `5` — transport upgrade (never used over WebSocket-only links).
    Upgrade,
    /// `6` — no-op (never used over WebSocket-only links).
    Noop,
}

impl Packet {
    /// Decodes one text frame.
    ///
    /// Returns an error for an empty frame, an unknown type digit, or an open
    /// packet whose JSON is not a valid handshake; never panics.
    pub fn decode_text(frame: &str) -> Result<Self, DecodeError> {
        let mut chars = frame.chars();
        let kind = chars.next().ok_or(DecodeError::Empty)?;
        let data = chars.as_str();
        Ok(match kind {
            '0' => Packet::Open(
                serde_json::from_str(data)
                    .map_err(|e| DecodeError::Json(format!("bad Engine.IO open packet: {e}")))?,
            ),
            '1' => Packet::Close,
            '2' => Packet::Ping(data.to_owned()),
            '3' => Packet::Pong(data.to_owned()),
            '4' => Packet::Message(data.to_owned()),
            '5' => Packet::Upgrade,
            '6' => Packet::Noop,
            other => {
                return Err(DecodeError::UnknownType {
                    layer: "Engine.IO",
                    found: other,
                })
            }
        })
    }

    /// Decodes one binary frame: always a binary message in Engine.IO v4.
    pub fn decode_binary(frame: Bytes) -> Self {
        Packet::Binary(frame)
    }

    /// Encodes the packet as a text frame; `None` for [`Packet::Binary`], which
    /// travels as a binary frame holding exactly its bytes.
    pub fn encode_text(&self) -> Option<String> {
        Some(match self {
            Packet::Open(open) => {
                // Serializing a struct of strings and integers cannot fail.
                let json = serde_json::to_string(open).unwrap_or_default();
                let mut out = String::with_capacity(json.len() + 1);
                out.push('0');
                out.push_str(&json);
                out
            }
            Packet::Close => "1".to_owned(),
            Packet::Ping(data) => prefixed('2', data),
            Packet::Pong(data) => prefixed('3', data),
            Packet::Message(data) => prefixed('4', data),
            Packet::Upgrade => "5".to_owned(),
            Packet::Noop => "6".to_owned(),
            Packet::Binary(_) => return None,
        })
    }
}

fn prefixed(kind: char, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 1);
    out.push(kind);
    out.push_str(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_from_the_protocol_page() {
        let frame = r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let packet = Packet::decode_text(frame).unwrap();
        let Packet::Open(open) = &packet else {
            panic!("expected open, got {packet:?}")
        };
        assert_eq!(open.sid, "abc");
        assert_eq!(open.ping_interval, 25000);
        assert_eq!(open.ping_timeout, 20000);
        assert_eq!(open.max_payload, 1_000_000);
        assert_eq!(packet.encode_text().unwrap(), frame);
    }

    #[test]
    fn every_type_round_trips() {
        for text in ["1", "2", "2probe", "3", "3probe", "440", "4", "5", "6"] {
            let packet = Packet::decode_text(text).unwrap();
            assert_eq!(packet.encode_text().unwrap(), text);
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        assert_eq!(Packet::decode_text(""), Err(DecodeError::Empty));
        assert!(matches!(
            Packet::decode_text("7"),
            Err(DecodeError::UnknownType { found: '7', .. })
        ));
        assert!(matches!(
            Packet::decode_text("0{"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            Packet::decode_text("é"),
            Err(DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn binary_frames_are_messages() {
        let packet = Packet::decode_binary(Bytes::from_static(&[1, 2, 3]));
        assert_eq!(packet, Packet::Binary(Bytes::from_static(&[1, 2, 3])));
        assert_eq!(packet.encode_text(), None);
    }
}
