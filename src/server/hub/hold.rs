//! Holding a session's messages while one of its calls waits on the store.
//!
//! The hub answers a `watch` (and re-checks an alias watch) beside its loop,
//! so other events go on meanwhile. For the *other* sessions that is the
//! point; for the session whose call is out it would reorder what it sees
//! (a push of an event made after its `watch` before that watch's ack; a
//! push of another watch before the `ended` of an alias watch re-pointed
//! before that event). So while a call of a session is out, whatever the hub
//! sends that session waits here, in hub order; when the call reports back,
//! its own answers (ack, replay, `ended`) take the call's place in that
//! order, and what follows up to the next call still out is sent. The
//! session sees exactly what a hub that waited for the store would have
//! sent, and no other session waits.
//!
//! **Bound.** Pushes held here were counted against the session's queue
//! bounds when the hub queued them (`max_queued_pushes`,
//! `max_queued_bytes`), replies are bounded by the watch calls a session
//! may have in flight, and `ended` by its watches.

use std::collections::{HashMap, VecDeque};

use crate::server::registry::{Command, SessionId};

/// One call of a session that is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CallId {
    session: SessionId,
    n: u64,
}

enum Held {
    /// A call still out: what follows it waits for it.
    Call(u64),
    Send(Command),
}

/// The sessions with calls out, and what waits for them.
#[derive(Default)]
pub(crate) struct Holds {
    sessions: HashMap<SessionId, VecDeque<Held>>,
    next: u64,
}

impl Holds {
    /// A call of `session` goes out: what the hub sends it from now on
    /// waits until [`Holds::finish`].
    pub(crate) fn begin(&mut self, session: SessionId) -> CallId {
        self.next += 1;
        self.sessions
            .entry(session)
            .or_default()
            .push_back(Held::Call(self.next));
        CallId {
            session,
            n: self.next,
        }
    }

    /// Where `command` for `session` goes: held (in order; at the place of
    /// `answering` when it is this session's call being answered), or
    /// given back to be sent now.
    pub(crate) fn hold(
        &mut self,
        session: SessionId,
        answering: Option<CallId>,
        command: Command,
    ) -> Result<(), Command> {
        let Some(items) = self.sessions.get_mut(&session) else {
            return Err(command);
        };
        let at = answering
            .filter(|call| call.session == session)
            .and_then(|call| {
                items
                    .iter()
                    .position(|held| matches!(held, Held::Call(n) if *n == call.n))
            });
        match at {
            Some(at) => items.insert(at, Held::Send(command)),
            None => items.push_back(Held::Send(command)),
        }
        Ok(())
    }

    /// `call` reported back: returns what may now be sent to its session,
    /// in order.
    pub(crate) fn finish(&mut self, call: CallId) -> Vec<Command> {
        let Some(items) = self.sessions.get_mut(&call.session) else {
            return Vec::new();
        };
        items.retain(|held| !matches!(held, Held::Call(n) if *n == call.n));
        let mut free = Vec::new();
        while let Some(Held::Send(_)) = items.front() {
            if let Some(Held::Send(command)) = items.pop_front() {
                free.push(command);
            }
        }
        if items.is_empty() {
            self.sessions.remove(&call.session);
        }
        free
    }

    /// Whether any session has a call out (a fast path for the hub).
    pub(crate) fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(ack_id: u64) -> Command {
        Command::Reply {
            ack_id,
            body: serde_json::value::RawValue::from_string("{}".into()).expect("JSON"),
        }
    }

    fn acks(commands: &[Command]) -> Vec<u64> {
        commands
            .iter()
            .map(|c| match c {
                Command::Reply { ack_id, .. } => *ack_id,
                other => panic!("not a reply: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_session_without_calls_out_is_not_held() {
        let mut holds = Holds::default();
        assert!(holds.hold(1, None, reply(1)).is_err());
        let call = holds.begin(2);
        assert!(holds.hold(1, Some(call), reply(1)).is_err());
        assert!(holds.finish(call).is_empty());
        assert!(holds.is_empty());
    }

    #[test]
    fn a_calls_answers_go_before_what_came_after_it() {
        let mut holds = Holds::default();
        let call = holds.begin(1);
        holds.hold(1, None, reply(10)).expect("held");
        holds.hold(1, Some(call), reply(1)).expect("held");
        holds.hold(1, Some(call), reply(2)).expect("held");
        assert_eq!(acks(&holds.finish(call)), vec![1, 2, 10]);
        assert!(holds.is_empty());
    }

    #[test]
    fn a_later_call_keeps_holding_what_came_after_it() {
        let mut holds = Holds::default();
        let first = holds.begin(1);
        holds.hold(1, None, reply(10)).expect("held");
        let second = holds.begin(1);
        holds.hold(1, None, reply(20)).expect("held");
        // The second call answers first: its answer waits behind the first.
        holds.hold(1, Some(second), reply(2)).expect("held");
        assert!(holds.finish(second).is_empty());
        holds.hold(1, Some(first), reply(1)).expect("held");
        assert_eq!(acks(&holds.finish(first)), vec![1, 10, 2, 20]);
        assert!(holds.is_empty());
    }
}
