//! The part an actix application depends on: [`ConnectionActor`] keeps one
//! authenticated push connection per application, however many parts of it
//! ask at once.
//!
//! | item | what it is |
//! |---|---|
//! | [`ClientConfig`] | server URL, pass, push id, timeouts, limits (builder with documented defaults) |
//! | [`ConnectionActor`] | owns the socket; answers [`GetConnected`], [`Emit`], [`Disconnect`], [`Stop`], [`SubscribeState`] |
//! | [`Session`] | a passed connection; every waiter of one attempt gets the same one |
//! | [`Stats`], [`ConnectionStats`] | a connection's counters: attempts, reconnects, pushes, acks, last error |
//! | [`ConnectionState`] | connecting / connected / failed / disconnected notifications |
//! | [`SubscriberActor`] | registers watches ([`Subscribe`], [`Unsubscribe`]) and hands each push to the application once, in order, acking after the handler |
//! | [`SubscriberEvent`] | disconnected / reconnected / gap / ended notifications |
//! | [`Backoff`] | how automatic reconnects wait (exponential, full jitter) |
//! | [`ConnectError`], [`EmitError`], [`WatchError`], [`DisconnectReason`], [`Stage`] | typed outcomes |
//! | [`EffexClient`] | typed REST calls (keys, write, read, update, remove, alias, events) with [`EffexError`]; the bodies are [`protocol::rest`](crate::protocol::rest)'s |

mod backoff;
mod config;
mod connection;
mod error;
mod rest;
mod session;
mod socket;
mod stats;
mod subscriber;

pub use backoff::Backoff;
pub use config::{ClientConfig, ClientConfigBuilder, ConfigError, SOCKET_IO_PATH};
pub use connection::{ConnectionActor, Disconnect, Emit, GetConnected, Stop, SubscribeState};
pub use error::{ConnectError, DisconnectReason, EmitError, Stage, WatchError};
pub use rest::{EffexClient, EffexClientBuilder, EffexError};
pub use session::{ConnectionState, Session};
pub use stats::{ConnectionStats, Stats};
pub use subscriber::{Subscribe, SubscriberActor, SubscriberEvent, Unsubscribe};
