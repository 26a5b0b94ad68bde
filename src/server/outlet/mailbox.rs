//! A session's mailbox: a queue of [`Command`]s that costs nothing while it
//! is empty.
//!
//! Every passed push connection owns one, and most connections are idle most
//! of the time: tokio's unbounded channel allocated a 32-slot block (1.8 KiB)
//! and 512 B of shared state per connection up front, a quarter of an idle
//! connection's heap (issue #9, goal (b)). Here the queue is a `VecDeque`
//! behind a mutex, allocated on the first command and released when a burst
//! of more than [`KEPT_CAPACITY`] commands has drained, and a [`Notify`]
//! wakes the session: about 100 bytes per connection when idle.
//!
//! The bound is the senders' (see [`Command`]): the hub counts the pushes it
//! queues against `max_queued_pushes` and sends `Overflow` past it; replies
//! are bounded by the session's calls in flight.
//!
//! The lock is held only to push or pop one command (never across an
//! `await`), by the hub's thread and the session's worker; a poisoned lock
//! is taken over, since a queue of plain values cannot be left half-changed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::Command;

/// The queue's capacity kept after it drains; a larger one (after a burst)
/// is released.
const KEPT_CAPACITY: usize = 8;

/// A new mailbox: the sending handle (cloned for the hub and the registry)
/// and the session's receiving end.
pub(crate) fn mailbox() -> (Mailbox, MailboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        ready: Notify::new(),
    });
    (Mailbox(shared.clone()), MailboxReceiver(shared))
}

/// Sends commands to one session; never blocks.
#[derive(Clone)]
pub(crate) struct Mailbox(Arc<Shared>);

/// The session's end of its mailbox. Dropping it closes the mailbox: later
/// sends fail and what was queued is dropped.
pub(crate) struct MailboxReceiver(Arc<Shared>);

struct Shared {
    queue: Mutex<Queue>,
    ready: Notify,
}

#[derive(Default)]
struct Queue {
    commands: VecDeque<Command>,
    /// The receiver is gone.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Mailbox {
    /// Queues `command` and wakes the session; gives the command back when
    /// the session has ended.
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        self.send_without_wake(command)?;
        self.wake();
        Ok(())
    }

    /// Queues `command` without waking the session: the caller must call
    /// [`Mailbox::wake`] before it waits on anything, or the command may
    /// sit until the session wakes for another reason. The hub queues all
    /// pushes of one event this way and wakes each session once, so that
    /// a session handles (and writes) them together.
    pub(crate) fn send_without_wake(&self, command: Command) -> Result<(), Command> {
        let mut queue = self.0.lock();
        if queue.closed {
            return Err(command);
        }
        queue.commands.push_back(command);
        Ok(())
    }

    /// Wakes the session to look at its queue.
    pub(crate) fn wake(&self) {
        self.0.ready.notify_one();
    }

    /// Whether the session has ended (its receiver is gone).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().closed
    }
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mailbox")
    }
}

impl MailboxReceiver {
    /// The next command if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Command> {
        let mut queue = self.0.lock();
        let command = queue.commands.pop_front();
        if queue.commands.is_empty() && queue.commands.capacity() > KEPT_CAPACITY {
            queue.commands = VecDeque::new();
        }
        command
    }

    /// The next command, waiting for one. Cancel-safe (it sits in the
    /// session's `select!`): a command is taken only when it is returned,
    /// and every call looks at the queue before it waits.
    pub(crate) async fn recv(&mut self) -> Command {
        loop {
            if let Some(command) = self.try_recv() {
                return command;
            }
            // A send between the look and this wait leaves a permit, so
            // the wait ends at once.
            self.0.ready.notified().await;
        }
    }
}

impl Drop for MailboxReceiver {
    fn drop(&mut self) {
        let dropped = {
            let mut queue = self.0.lock();
            queue.closed = true;
            std::mem::take(&mut queue.commands)
        };
        // Commands (pushes hold their events) are dropped outside the lock.
        drop(dropped);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use super::*;

    fn reply(ack_id: u64) -> Command {
        Command::Reply {
            ack_id,
            body: serde_json::value::RawValue::from_string("{}".to_owned()).expect("JSON"),
        }
    }

    fn ack_id(command: Command) -> u64 {
        match command {
            Command::Reply { ack_id, .. } => ack_id,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn an_idle_mailbox_holds_no_queue_and_a_drained_burst_is_released() {
        let (tx, mut rx) = mailbox();
        assert_eq!(rx.0.lock().commands.capacity(), 0);
        for n in 0..100 {
            tx.send(reply(n)).expect("open");
        }
        for n in 0..100 {
            assert_eq!(ack_id(rx.try_recv().expect("queued")), n, "in order");
        }
        assert!(rx.try_recv().is_none());
        assert_eq!(
            rx.0.lock().commands.capacity(),
            0,
            "released after the burst"
        );
    }

    #[test]
    fn a_dropped_receiver_closes_the_mailbox() {
        let (tx, rx) = mailbox();
        tx.send(reply(1)).expect("open");
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert!(tx.send(reply(2)).is_err());
        assert!(tx.0.lock().commands.is_empty(), "queued commands dropped");
    }

    /// A waker that counts its wakes.
    struct CountingWaker(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_send_without_wake_waits_for_the_wake() {
        use std::sync::atomic::Ordering;
        use std::task::{Context, Poll, Waker};

        let (tx, mut rx) = mailbox();
        let counter = Arc::new(CountingWaker(Default::default()));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut recv = Box::pin(rx.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        tx.send_without_wake(reply(7)).expect("open");
        tx.send_without_wake(reply(8)).expect("open");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "queued without a wake");
        tx.wake();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "one wake for the batch"
        );
        match recv.as_mut().poll(&mut cx) {
            Poll::Ready(command) => assert_eq!(ack_id(command), 7),
            Poll::Pending => panic!("woken, the first command is there"),
        }
        drop(recv);
        assert_eq!(ack_id(rx.try_recv().expect("the second")), 8);
    }

    #[tokio::test]
    async fn recv_waits_for_a_send_from_another_thread_and_is_cancel_safe() {
        let (tx, mut rx) = mailbox();
        // Cancelled while waiting: nothing is lost.
        let waited = tokio::time::timeout(Duration::from_millis(10), rx.recv()).await;
        assert!(waited.is_err());
        let sender = std::thread::spawn(move || {
            for n in 0..1000 {
                tx.send(reply(n)).expect("open");
            }
        });
        for n in 0..1000 {
            let command = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("a command within the bound");
            assert_eq!(ack_id(command), n);
        }
        sender.join().expect("sender thread");
    }
}
