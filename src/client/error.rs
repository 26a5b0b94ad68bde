//! The client's typed errors and disconnect reasons. Every error is `Clone`
//! because one connect attempt answers every waiter with the same outcome.

use std::time::Duration;

/// The stages of one connect attempt, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// TCP (+ TLS) connect and the HTTP upgrade to WebSocket.
    WebSocketOpen,
    /// Waiting for the server's Engine.IO open packet (`0{…}`).
    EngineIoOpen,
    /// Socket.IO CONNECT sent, waiting for `40{"sid":…}`.
    SocketIoConnect,
    /// `pass` sent, waiting for its ack.
    Pass,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::WebSocketOpen => "WebSocket open",
            Stage::EngineIoOpen => "Engine.IO open",
            Stage::SocketIoConnect => "Socket.IO connect",
            Stage::Pass => "pass",
        })
    }
}

/// Why a connection (or a connect attempt) ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The application sent [`Disconnect`](super::Disconnect) or stopped the actor.
    #[error("the application asked to disconnect")]
    Requested,
    /// The server sent Socket.IO DISCONNECT (`41`): e.g. a newer connection
    /// with the same push id replaced this one, or the server shut down.
    #[error("the server ended the session")]
    ServerDisconnected,
    /// The server closed the Engine.IO session or the WebSocket.
    #[error("the server closed the connection (code {code:?}{})", fmt_reason(.reason))]
    ServerClosed {
        /// The WebSocket close code, if any (1000 orderly, 1002 protocol error, 1009 too big).
        code: Option<u16>,
        /// The close reason text, if any.
        reason: String,
    },
    /// The socket failed or ended without a close frame.
    #[error("the connection was lost: {0}")]
    Transport(String),
    /// No ping arrived for pingInterval + pingTimeout.
    #[error("no ping from the server for {0:?}: the link is dead")]
    HeartbeatTimeout(Duration),
    /// The server sent something that breaks the protocol.
    #[error("protocol error from the server: {0}")]
    Protocol(String),
    /// The socket could not take frames as fast as they were queued.
    #[error("the write queue is full ({0} frames): the socket is stalled")]
    WriteQueueFull(usize),
}

fn fmt_reason(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Why [`GetConnected`](super::GetConnected) could not deliver a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The WebSocket could not be opened (refused, DNS, TLS, HTTP status…).
    #[error("could not open the WebSocket to {url}: {detail}; check the server address and that it is running")]
    WebSocket {
        /// The URL tried.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A stage took longer than its timeout.
    #[error("timed out after {after:?} waiting for {stage}")]
    Timeout {
        /// The stage that was still running.
        stage: Stage,
        /// The timeout that ran out (connect timeout, or pass timeout for [`Stage::Pass`]).
        after: Duration,
    },
    /// The server refused the pass or the CONNECT. Final for that attempt:
    /// no automatic retry follows.
    #[error("the server rejected the connection ({code}): {message}")]
    Rejected {
        /// The server's http-like code (401 bad passphrase, 400 bad push id, …).
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The server refused the pass for now (429): too many failed attempts
    /// from this address. Not final: the next attempt waits at least
    /// `retry_after` (and may go to another node first).
    #[error("the server refuses passes from this address for now ({message}); retrying in {retry_after:?}")]
    Limited {
        /// The server's message.
        message: String,
        /// How long the server asked the client to wait.
        retry_after: Duration,
    },
    /// The socket dropped before the attempt finished.
    #[error("the connection dropped during {stage}: {reason}")]
    Disconnected {
        /// The stage the attempt was in.
        stage: Stage,
        /// Why it dropped.
        reason: DisconnectReason,
    },
    /// The [`ConnectionActor`](super::ConnectionActor) has stopped.
    #[error("the connection actor has stopped")]
    Stopped,
}

/// Why an [`Emit`](super::Emit) got no ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// No connection could be made to send it on.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The ack did not arrive in time; the pending entry was freed.
    #[error("no ack within {0:?}")]
    Timeout(Duration),
    /// The connection dropped before the ack arrived.
    #[error("the connection dropped before the ack arrived: {0}")]
    Disconnected(DisconnectReason),
    /// Too many emits are awaiting acks already.
    #[error(
        "{0} emits are already awaiting acks; wait for some to finish or raise max_pending_acks"
    )]
    TooManyPending(usize),
    /// The [`ConnectionActor`](super::ConnectionActor) has stopped.
    #[error("the connection actor has stopped")]
    Stopped,
}

/// Why a [`Subscribe`](super::Subscribe) or [`Unsubscribe`](super::Unsubscribe) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The request could not be sent or got no ack.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The server refused: 401 unknown or expired key, 403 key not allowed
    /// to read the item, 404 no such item, alias or watchable.
    #[error("the server refused the watch ({code}): {message}")]
    Refused {
        /// The server's http-like code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The server's reply does not have the protocol's shape.
    #[error("the server's reply does not fit the protocol: {0}")]
    BadReply(String),
    /// The server ended the watch (protocol.md 2.6): 401 its key expired,
    /// 403 the alias it follows now names an item the key may not read,
    /// 429 a quota or limit. Watch again with a key that may read the item.
    #[error("the server ended the watch ({code}): {message}")]
    Ended {
        /// The server's http-like code.
        code: u16,
        /// The server's message.
        message: String,
    },
}

impl WatchError {
    /// Reads the first ack argument as an effex reply.
    pub(crate) fn from_reply<T: serde::de::DeserializeOwned>(
        args: Vec<serde_json::Value>,
    ) -> Result<T, WatchError> {
        let reply = args
            .into_iter()
            .next()
            .ok_or_else(|| WatchError::BadReply("an empty ack".to_owned()))?;
        let text = reply.to_string();
        match crate::protocol::messages::parse_reply::<T>(&text) {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(failure)) => Err(WatchError::Refused {
                code: failure.code,
                message: failure.error,
            }),
            Err(e) => Err(WatchError::BadReply(format!("{e}: {text}"))),
        }
    }

    /// Whether retrying cannot help (the server said no).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            WatchError::Refused { .. } | WatchError::BadReply(_) | WatchError::Ended { .. }
        )
    }
}
