//! Watching a ConnectionActor's state changes from a test.

use std::time::Duration;

use actix::prelude::*;
use effex::client::{ConnectionActor, ConnectionState, SubscribeState};
use tokio::sync::mpsc;

/// Forwards state changes into a channel the test can wait on.
struct StateProbe(mpsc::UnboundedSender<ConnectionState>);

impl Actor for StateProbe {
    type Context = Context<Self>;
}

impl Handler<ConnectionState> for StateProbe {
    type Result = ();
    fn handle(&mut self, state: ConnectionState, _: &mut Context<Self>) {
        let _ = self.0.send(state);
    }
}

/// Subscribes to `conn`'s state changes.
pub async fn watch_states(
    conn: &Addr<ConnectionActor>,
) -> mpsc::UnboundedReceiver<ConnectionState> {
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = StateProbe(tx).start();
    tokio::time::timeout(
        Duration::from_secs(5),
        conn.send(SubscribeState(probe.recipient())),
    )
    .await
    .expect("SubscribeState answered in time")
    .expect("connection actor alive");
    rx
}
