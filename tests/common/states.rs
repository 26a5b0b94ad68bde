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

/// The bound on a state wait in [`next_state`].
pub const STATE_BOUND: Duration = Duration::from_secs(10);

/// The next state change matching `want`, within [`STATE_BOUND`]; panics on
/// a timeout or when the probe is gone (neither counts as the state).
pub async fn next_state(
    rx: &mut mpsc::UnboundedReceiver<ConnectionState>,
    want: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    state_within(rx, STATE_BOUND, want)
        .await
        .unwrap_or_else(|| panic!("no matching state change within {STATE_BOUND:?}"))
}

/// The first state change matching `want` within `bound`, or `None` when
/// none came. Panics when the probe is gone: a closed channel is not a quiet
/// one.
pub async fn state_within(
    rx: &mut mpsc::UnboundedReceiver<ConnectionState>,
    bound: Duration,
    want: impl Fn(&ConnectionState) -> bool,
) -> Option<ConnectionState> {
    tokio::time::timeout(bound, async {
        loop {
            let state = rx
                .recv()
                .await
                .expect("the state probe ended: the connection actor is gone");
            if want(&state) {
                return state;
            }
        }
    })
    .await
    .ok()
}
