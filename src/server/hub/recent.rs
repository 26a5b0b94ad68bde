//! The events the hub handled while store calls ran beside it.
//!
//! The hub never awaits the store: a `watch` check, a replay window or an
//! alias re-check runs in a task of its own and reports back. Until it does,
//! its watch is not (or not yet on that item) in the hub's indexes, so the
//! live events of its item go past it. Each such call takes a [`Ticket`]
//! when it starts; the hub records every event it handles while any ticket
//! is out, and when the call reports back, the events of its item since its
//! ticket are applied to its watch in seq order (the watch's cursor drops
//! those its store answer already had): nothing lost, nothing doubled.
//!
//! **Bound.** At most [`MAX_RECENT`] events are kept; above it the oldest
//! are dropped and the tickets that still needed them are *lost*: their
//! watch catches up from the store's log instead (a replay window), which
//! loses nothing either, only costs one more store call.

use std::collections::{BTreeMap, VecDeque};

use crate::store::{Event, ItemId};

/// The most events kept for store calls in flight (a few seconds of a
/// busy store; a call slower than that catches up from the log).
pub(crate) const MAX_RECENT: usize = 65_536;

/// The position in the recent events at which a store call started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// The events handled since the oldest ticket still out.
#[derive(Debug)]
pub(crate) struct Recent {
    /// The position of `events[0]`.
    base: u64,
    events: VecDeque<Event>,
    /// Tickets out, by position, and how many at each.
    open: BTreeMap<u64, usize>,
    max: usize,
}

impl Default for Recent {
    fn default() -> Self {
        Recent::with_max(MAX_RECENT)
    }
}

impl Recent {
    /// Keeps at most `max` events.
    pub(crate) fn with_max(max: usize) -> Self {
        Recent {
            base: 0,
            events: VecDeque::new(),
            open: BTreeMap::new(),
            max: max.max(1),
        }
    }

    fn end(&self) -> u64 {
        self.base + self.events.len() as u64
    }

    /// A store call starts: events handled from now on are kept for it.
    pub(crate) fn begin(&mut self) -> Ticket {
        let at = self.end();
        *self.open.entry(at).or_default() += 1;
        Ticket(at)
    }

    /// The hub handled `event`: kept while any ticket is out.
    pub(crate) fn record(&mut self, event: &Event) {
        if self.open.is_empty() {
            return;
        }
        if self.events.len() >= self.max {
            self.events.pop_front();
            self.base += 1;
        }
        self.events.push_back(event.clone());
    }

    /// Ends `ticket` and returns the events of `item` handled since it, in
    /// seq order; `None` when some were dropped (over [`MAX_RECENT`]): the
    /// caller reads the log instead.
    pub(crate) fn finish(&mut self, ticket: Ticket, item: Option<ItemId>) -> Option<Vec<Event>> {
        let found = (ticket.0 >= self.base).then(|| {
            let skip = usize::try_from(ticket.0 - self.base).unwrap_or(usize::MAX);
            self.events
                .iter()
                .skip(skip)
                .filter(|e| Some(e.id) == item)
                .cloned()
                .collect()
        });
        self.release(ticket);
        found
    }

    /// Ends `ticket` without looking at its events.
    pub(crate) fn release(&mut self, ticket: Ticket) {
        if let Some(n) = self.open.get_mut(&ticket.0) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ticket.0);
            }
        }
        // Drop what no ticket still needs.
        match self.open.first_key_value() {
            None => {
                self.base = self.end();
                self.events.clear();
            }
            Some((&oldest, _)) => {
                while self.base < oldest && self.events.pop_front().is_some() {
                    self.base += 1;
                }
            }
        }
    }

    /// Every ticket out is lost (the hub missed events: its receiver
    /// lagged); their callers read the log instead.
    pub(crate) fn lose_all(&mut self) {
        self.base = self.end() + 1;
        self.events.clear();
    }

    /// How many events are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventKind;

    fn event(seq: u64, item: u64) -> Event {
        Event {
            seq,
            kind: EventKind::Update,
            id: ItemId(u128::from(item)),
            at: crate::protocol::time::UnixMillis::EPOCH,
            value: None,
        }
    }

    fn seqs(events: Option<Vec<Event>>) -> Option<Vec<u64>> {
        events.map(|e| e.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn nothing_is_kept_without_a_ticket() {
        let mut recent = Recent::default();
        recent.record(&event(1, 1));
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_ticket_gets_its_items_events_since_it_started() {
        let mut recent = Recent::default();
        let first = recent.begin();
        recent.record(&event(1, 1));
        recent.record(&event(2, 2));
        let second = recent.begin();
        recent.record(&event(3, 1));
        assert_eq!(seqs(recent.finish(second, Some(ItemId(1)))), Some(vec![3]));
        assert_eq!(recent.len(), 3);
        assert_eq!(
            seqs(recent.finish(first, Some(ItemId(1)))),
            Some(vec![1, 3])
        );
        assert_eq!(recent.len(), 0);
        let empty = recent.begin();
        assert_eq!(seqs(recent.finish(empty, None)), Some(vec![]));
    }

    #[test]
    fn events_no_ticket_needs_are_dropped() {
        let mut recent = Recent::default();
        let first = recent.begin();
        recent.record(&event(1, 1));
        let second = recent.begin();
        recent.record(&event(2, 1));
        recent.release(first);
        assert_eq!(recent.len(), 1);
        assert_eq!(seqs(recent.finish(second, Some(ItemId(1)))), Some(vec![2]));
    }

    #[test]
    fn a_ticket_whose_events_overflowed_is_lost() {
        let mut recent = Recent::with_max(2);
        let old = recent.begin();
        for seq in 1..=3 {
            recent.record(&event(seq, 1));
        }
        let new = recent.begin();
        recent.record(&event(4, 1));
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.finish(old, Some(ItemId(1))), None);
        assert_eq!(seqs(recent.finish(new, Some(ItemId(1)))), Some(vec![4]));
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn a_lag_loses_every_ticket_out() {
        let mut recent = Recent::default();
        let old = recent.begin();
        recent.record(&event(1, 1));
        recent.lose_all();
        let new = recent.begin();
        recent.record(&event(2, 1));
        assert_eq!(recent.finish(old, Some(ItemId(1))), None);
        assert_eq!(seqs(recent.finish(new, Some(ItemId(1)))), Some(vec![2]));
    }
}
