//! Group commit of writes: the writes that arrive while one `write` call is
//! in Redis go together in the next one.
//!
//! One task per store sends the writes: when none is in Redis it sends the
//! first that arrives at once (a lone write waits for nothing), and while
//! one call is in Redis the writes that arrive meanwhile queue, to go in the
//! next call, up to [`MAX_WRITES`] writes or [`MAX_BYTES`] of values per
//! call. Inside Redis the `write` function (`lua/write.lua`) applies them one
//! after another, each seeing the quotas the ones before it used, exactly as
//! separate calls would, and answers each on its own (a refusal of one is
//! not a refusal of the others); the batch is one atomic step.
//!
//! Why: the scaling-out benchmark's writes/s is bound by CPU, and a `write`
//! call of its own cost Redis ~75-80 µs of CPU per write on its 2-core
//! machine, much of it the call itself (reading and parsing it, starting
//! the function, the reply) and the per-write reads and bumps of the writer
//! key's and the store's counters (now two calls per writer key and two in
//! all, per batch). Measured back to back there (README, scaling out):
//! batches of ~6-7 writes under 64 clients, Redis CPU per write 62-67 µs,
//! the nodes' 65-73 µs instead of 76-91, and 23% more writes/s.
//!
//! Bounded: at most [`QUEUE`] writes wait for a call; when that many do, a
//! write waits for room before it joins them (its HTTP request waits), so
//! the queue adds no memory beyond the requests in flight.

use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};

use super::scripts::{Op, Outcome, Refusal};
use super::Shared;
use crate::store::{JsonText, StoreError};

/// The most writes in one call.
pub(super) const MAX_WRITES: usize = 64;

/// A call takes no more writes once its values hold this many bytes (a
/// write with a larger value goes alone).
pub(super) const MAX_BYTES: usize = 1 << 20;

/// The most writes waiting for a call.
pub(super) const QUEUE: usize = 1024;

/// One write, as the `write` function takes it (see `lua/write.lua`).
pub(super) struct WriteArgs {
    /// The writer key.
    pub(super) key: String,
    /// The new item's id.
    pub(super) id: String,
    /// The lifetime in ms, capped.
    pub(super) lifetime_ms: String,
    /// Reader keys, space-separated.
    pub(super) readers: String,
    /// Updater keys, space-separated.
    pub(super) updaters: String,
    /// The alias to point at the item, or "".
    pub(super) alias: String,
    pub(super) value: JsonText,
    /// The value's size, in bytes.
    pub(super) size: String,
}

impl WriteArgs {
    /// Appends its 8 arguments to `args`.
    fn push_to<'a>(&'a self, args: &mut Vec<&'a str>) {
        args.extend([
            self.key.as_str(),
            &self.id,
            &self.lifetime_ms,
            &self.readers,
            &self.updaters,
            &self.alias,
            self.value.as_str(),
            &self.size,
        ]);
    }
}

/// A write waiting for its call, and where its answer goes.
struct Pending {
    args: WriteArgs,
    answer: oneshot::Sender<Result<Outcome, StoreError>>,
}

/// Where a store's writes queue for their call.
pub(super) struct WriteQueue {
    pending: mpsc::Sender<Pending>,
}

/// The receiving end of a [`WriteQueue`], for [`run`].
pub(super) struct Queued(mpsc::Receiver<Pending>);

/// A new queue; start [`run`] with the other half.
pub(super) fn queue() -> (WriteQueue, Queued) {
    let (pending, queued) = mpsc::channel(QUEUE);
    (WriteQueue { pending }, Queued(queued))
}

fn store_gone() -> StoreError {
    StoreError::Unavailable("the Redis store is shutting down: try again".into())
}

impl WriteQueue {
    /// Runs `args` in the next `write` call; its own reply or refusal.
    pub(super) async fn write(&self, args: WriteArgs) -> Result<Outcome, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.pending
            .send(Pending { args, answer })
            .await
            .map_err(|_| store_gone())?;
        answered.await.map_err(|_| store_gone())?
    }
}

/// Sends the queued writes, one call at a time, until the store is gone.
pub(super) async fn run(shared: Weak<Shared>, Queued(mut queued): Queued) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_WRITES);
    while let Some(first) = queued.recv().await {
        let mut bytes = first.args.value.len();
        batch.push(first);
        while batch.len() < MAX_WRITES && bytes < MAX_BYTES {
            match queued.try_recv() {
                Ok(next) => {
                    bytes += next.args.value.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let Some(store) = shared.upgrade() else {
            return; // the waiters learn it from their dropped answers
        };
        let mut answers = commit(&store, &batch).await;
        drop(store);
        for pending in batch.drain(..) {
            // A waiter that went away (its request was cancelled) needs no
            // answer: its write happened or was refused all the same.
            let _ = pending.answer.send(answers.next_answer());
        }
    }
}

/// The answers of one call, in the order of its writes.
enum Answers {
    Each(std::vec::IntoIter<Outcome>),
    /// The call as a whole was refused: every write gets the refusal.
    Refused(Refusal),
    /// The call failed: every write gets the error.
    Failed(StoreError),
}

impl Answers {
    fn next_answer(&mut self) -> Result<Outcome, StoreError> {
        match self {
            Answers::Each(each) => each.next().ok_or_else(|| {
                StoreError::Backend(
                    "the Redis write function answered fewer writes than it was given: \
                     does this effex version match the library in Redis?"
                        .into(),
                )
            }),
            Answers::Refused(r) => Ok(Outcome::Refused(r.clone())),
            Answers::Failed(e) => Err(e.clone()),
        }
    }
}

/// One `write` call with `batch`.
async fn commit(store: &Shared, batch: &[Pending]) -> Answers {
    let count = batch.len().to_string();
    let mut args = Vec::with_capacity(1 + 8 * batch.len());
    args.push(count.as_str());
    for pending in batch {
        pending.args.push_to(&mut args);
    }
    match store.run(Op::Write, &args).await {
        Ok(Outcome::Ok(reply)) => match reply.outcomes() {
            Ok(each) => Answers::Each(each.into_iter()),
            Err(e) => Answers::Failed(e),
        },
        Ok(Outcome::Refused(r)) => Answers::Refused(r),
        Err(e) => Answers::Failed(e),
    }
}
