//! # effex — Ephemeral Exchange for Rust
//!
//! A cache whose items live for a set time, with push notifications when an
//! item is updated, removed or expires, and an actix client that keeps one
//! authenticated push connection per application however many parts of it
//! ask at once.
//!
//! | module | what it owns |
//! |---|---|
//! | [`protocol`] | wire formats only: Engine.IO v4, Socket.IO v5, the effex payloads, the REST bodies ([`protocol::rest`]) and timestamps ([`UnixMillis`](protocol::time::UnixMillis)) |
//! | [`client`] (feature `client`) | [`ConnectionActor`](client::ConnectionActor), [`SubscriberActor`](client::SubscriberActor), [`EffexClient`](client::EffexClient) |
//! | [`server`] (feature `server`) | the embeddable server: REST API and the Socket.IO push endpoint |
//! | [`store`] (feature `server`) | the [`Store`](store::Store) trait and the in-memory store |
//!
//! Features: `client` and `server` are on by default; an application that
//! only subscribes uses `default-features = false, features = ["client"]`.
//! `cli` builds the `effex` binary; `interop` only switches on the tests
//! that need Node (run `npm ci` in `tests/interop` first).
//!
//! ## One connection, many askers
//!
//! ```
//! use actix::Actor;
//! use effex::client::{ClientConfig, ConnectionActor, GetConnected};
//! use effex::server::{Server, ServerConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! actix::System::new().block_on(async {
//!     // An embedded server on a free loopback port.
//!     let server = Server::start(ServerConfig {
//!         passphrase: Some("secret".into()),
//!         ..ServerConfig::default()
//!     })
//!     .await?;
//!
//!     let config = ClientConfig::builder(server.ws_url()).pass("secret").build()?;
//!     let conn = ConnectionActor::new(config).start();
//!
//!     // Two parts of the application ask at once: one socket, one session.
//!     let (a, b) = futures_util::join!(conn.send(GetConnected), conn.send(GetConnected));
//!     assert!(a??.same_as(&b??));
//!     assert_eq!(server.stats().connections_opened, 1);
//!
//!     server.stop().await;
//!     Ok(())
//! })
//! # }
//! ```
#![warn(missing_docs)]

pub mod protocol;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
pub mod store;

#[cfg(feature = "server")]
mod secret;

/// The README's examples, compiled as doctests so they cannot rot.
#[cfg(all(doctest, feature = "client", feature = "server"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
