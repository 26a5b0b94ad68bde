//! `Session` (a passed connection, as every `GetConnected` caller sees it)
//! and `ConnectionState` (what state listeners are told). Plain data.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Message;

use super::error::{ConnectError, DisconnectReason};
use crate::protocol::time::UnixMillis;

/// A passed connection. Cheap to clone: every waiter of one attempt gets a
/// clone of the same session.
#[derive(Clone, Debug)]
pub struct Session(Arc<SessionInfo>);

#[derive(Debug)]
struct SessionInfo {
    connection: String,
    push_id: String,
    server_time: UnixMillis,
    epoch: u64,
    passed_at: Instant,
    ping_interval: Duration,
    ping_timeout: Duration,
    max_payload: u64,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        connection: String,
        push_id: String,
        server_time: UnixMillis,
        epoch: u64,
        ping_interval: Duration,
        ping_timeout: Duration,
        max_payload: u64,
    ) -> Self {
        Self(Arc::new(SessionInfo {
            connection,
            push_id,
            server_time,
            epoch,
            passed_at: Instant::now(),
            ping_interval,
            ping_timeout,
            max_payload,
        }))
    }

    /// The Socket.IO session id the server gave this connection (new on every connection).
    pub fn connection(&self) -> &str {
        &self.0.connection
    }

    /// The push id the server registered (the same across reconnects).
    pub fn push_id(&self) -> &str {
        &self.0.push_id
    }

    /// The server's wall clock when it accepted the pass.
    pub fn server_time(&self) -> UnixMillis {
        self.0.server_time
    }

    /// The connect attempt this session came from; it grows by one per attempt.
    pub fn epoch(&self) -> u64 {
        self.0.epoch
    }

    /// When the pass ack arrived (local clock).
    pub fn passed_at(&self) -> Instant {
        self.0.passed_at
    }

    /// The server's ping interval.
    pub fn ping_interval(&self) -> Duration {
        self.0.ping_interval
    }

    /// The server's ping timeout.
    pub fn ping_timeout(&self) -> Duration {
        self.0.ping_timeout
    }

    /// The largest frame the server accepts, in bytes.
    pub fn max_payload(&self) -> u64 {
        self.0.max_payload
    }

    /// Whether two handles are the same session (same attempt).
    pub fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}

impl Eq for Session {}

/// A change of the connection's state, sent to every listener registered
/// with [`SubscribeState`](super::SubscribeState).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum ConnectionState {
    /// A connect attempt started.
    Connecting {
        /// The attempt's epoch.
        epoch: u64,
    },
    /// The attempt passed.
    Connected(Session),
    /// The attempt failed; every waiter got this error.
    ConnectFailed(ConnectError),
    /// A passed connection ended.
    Disconnected {
        /// The epoch of the session that ended.
        epoch: u64,
        /// Why it ended.
        reason: DisconnectReason,
    },
}
