//! [`Stats`]: what a [`ConnectionActor`](super::ConnectionActor) has done
//! since it started, for an application's own metrics and health checks.

use actix::Message;

/// Asks a [`ConnectionActor`](super::ConnectionActor) for its counters.
///
/// ```no_run
/// use actix::Actor;
/// use effex::client::{ClientConfig, ConnectionActor, Stats};
///
/// #[actix::main]
/// async fn main() {
///     let config = ClientConfig::builder("ws://127.0.0.1:8150").build().unwrap();
///     let conn = ConnectionActor::new(config).start();
///     let stats = conn.send(Stats).await.unwrap();
///     println!("{} connects, last error: {:?}", stats.connects, stats.last_error);
/// }
/// ```
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ConnectionStats")]
pub struct Stats;

/// A [`ConnectionActor`](super::ConnectionActor)'s counters since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Sockets dialed (every connect attempt, to any node).
    pub attempts: u64,
    /// Attempts that passed (the first connection and every reconnect).
    pub connects: u64,
    /// Passes after the first one: the connection came back.
    pub reconnects: u64,
    /// Pushes handed to subscribers.
    pub pushes: u64,
    /// Pushes acknowledged to the server (after their handler returned).
    pub acks: u64,
    /// The last failed attempt or lost connection, as its error says it.
    pub last_error: Option<String>,
}
