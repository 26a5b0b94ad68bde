//! Wire formats only, shared by client and server: Engine.IO v4 packets,
//! Socket.IO v5 packets, the effex payloads, the REST bodies ([`rest`]) and
//! the timestamp type they all use ([`time::UnixMillis`]). Nothing here does I/O.
//!
//! Every decoder returns a [`DecodeError`] on bad input and never panics:
//! the property tests in `tests/protocol.rs` feed them random and truncated
//! frames.

pub mod engineio;
pub mod messages;
pub mod push;
pub mod rest;
pub mod socketio;
pub mod time;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame was empty.
    #[error("empty frame")]
    Empty,
    /// The type digit is not one the layer knows.
    #[error("unknown {layer} packet type {found:?}")]
    UnknownType {
        /// `Engine.IO` or `Socket.IO`.
        layer: &'static str,
        /// The character found where the type digit belongs.
        found: char,
    },
    /// The packet breaks a structural rule of the protocol.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The JSON payload is invalid or does not have the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
}
