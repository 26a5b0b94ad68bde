//! The part an actix application depends on: [`ConnectionActor`] keeps one
//! authenticated push connection per application, however many parts of it
//! ask at once.
//!
//! | item | what it is |
//! |---|---|
//! | [`ClientConfig`] | server URL, pass, push id, timeouts, limits (builder with documented defaults) |
//! | [`ConnectionActor`] | owns the socket; answers [`GetConnected`], [`Emit`], [`Disconnect`], [`Stop`], [`SubscribeState`] |
//! | [`Session`] | a passed connection; every waiter of one attempt gets the same one |
//! | [`ConnectionState`] | connecting / connected / failed / disconnected notifications |
//! | [`ConnectError`], [`EmitError`], [`DisconnectReason`], [`Stage`] | typed outcomes |

mod config;
mod connection;
mod error;
mod session;
mod socket;

pub use config::{ClientConfig, ClientConfigBuilder, ConfigError, SOCKET_IO_PATH};
pub use connection::{
    ConnectedReply, ConnectionActor, Disconnect, Emit, GetConnected, Stop, SubscribeState,
};
pub use error::{ConnectError, DisconnectReason, EmitError, Stage};
pub use session::{ConnectionState, Session};
