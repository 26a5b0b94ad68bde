//! One item's event log with its retention (count and age) and the `gap`
//! bookkeeping; knows nothing of locks, keys or the broadcast channel.

use std::collections::VecDeque;

use super::types::{Event, EventKind, ItemId};
use crate::protocol::time::UnixMillis;

/// One logged event: 24 bytes (values are not kept in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) seq: u64,
    pub(crate) at: u64,
    pub(crate) kind: EventKind,
}

/// Retention limits of every item's log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// At most this many events per item (≥ 1).
    pub(crate) max_events: usize,
    /// Events older than this many ms are dropped.
    pub(crate) max_age_ms: u64,
}

/// The events of one item, oldest first.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    entries: VecDeque<Logged>,
    /// Per kind, the highest seq dropped by retention (0 = none).
    dropped: [u64; 3],
}

/// What a query of one log found.
#[derive(Debug)]
pub(crate) struct LogQuery {
    pub(crate) events: Vec<Event>,
    pub(crate) oldest: Option<u64>,
    pub(crate) gap: bool,
    /// The newest retained event of any kind, if any.
    pub(crate) newest: Option<Logged>,
}

impl EventLog {
    /// Appends an event (seqs arrive in increasing order) and applies retention.
    pub(crate) fn push(&mut self, event: Logged, now_ms: u64, retention: Retention) {
        self.entries.push_back(event);
        while self.entries.len() > retention.max_events {
            self.drop_front();
        }
        self.prune_age(now_ms, retention);
    }

    /// Drops the events older than the retention age.
    pub(crate) fn prune_age(&mut self, now_ms: u64, retention: Retention) {
        let cutoff = now_ms.saturating_sub(retention.max_age_ms);
        while self.entries.front().is_some_and(|e| e.at < cutoff) {
            self.drop_front();
        }
    }

    fn drop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            let slot = &mut self.dropped[e.kind.index()];
            *slot = (*slot).max(e.seq);
        }
    }

    /// The events of `kind` (or every kind) with `seq > since`, treating events
    /// past the retention age as already dropped (so that a read lock suffices).
    pub(crate) fn query(
        &self,
        id: ItemId,
        since: u64,
        kind: Option<EventKind>,
        now_ms: u64,
        retention: Retention,
    ) -> LogQuery {
        let cutoff = now_ms.saturating_sub(retention.max_age_ms);
        let mut dropped = match kind {
            Some(k) => self.dropped[k.index()],
            None => self.dropped.iter().copied().max().unwrap_or(0),
        };
        let mut events = Vec::new();
        let mut oldest = None;
        let mut newest = None;
        for e in &self.entries {
            let wanted = kind.is_none_or(|k| k == e.kind);
            if e.at < cutoff {
                if wanted {
                    dropped = dropped.max(e.seq);
                }
                continue;
            }
            oldest.get_or_insert(e.seq);
            newest = Some(*e);
            if wanted && e.seq > since {
                events.push(Event {
                    seq: e.seq,
                    kind: e.kind,
                    id,
                    at: UnixMillis::from_millis(e.at),
                    value: None,
                });
            }
        }
        LogQuery {
            events,
            oldest,
            gap: dropped > since,
            newest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETENTION: Retention = Retention {
        max_events: 3,
        max_age_ms: 1_000,
    };

    fn logged(seq: u64, at: u64, kind: EventKind) -> Logged {
        Logged { seq, at, kind }
    }

    #[test]
    fn count_retention_records_a_gap_per_kind() {
        let mut log = EventLog::default();
        log.push(logged(1, 10, EventKind::Update), 10, RETENTION);
        log.push(logged(2, 10, EventKind::Update), 10, RETENTION);
        log.push(logged(3, 10, EventKind::Update), 10, RETENTION);
        log.push(logged(4, 10, EventKind::Remove), 10, RETENTION);
        let all = log.query(ItemId(1), 0, None, 10, RETENTION);
        assert_eq!(
            all.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(all.oldest, Some(2));
        assert!(all.gap);
        assert!(!log.query(ItemId(1), 1, None, 10, RETENTION).gap);
        // Only an update was dropped: a remove watch has no gap.
        assert!(
            !log.query(ItemId(1), 0, Some(EventKind::Remove), 10, RETENTION)
                .gap
        );
    }

    #[test]
    fn aged_events_count_as_dropped_before_pruning() {
        let mut log = EventLog::default();
        log.push(logged(5, 100, EventKind::Update), 100, RETENTION);
        log.push(logged(6, 900, EventKind::Update), 900, RETENTION);
        let q = log.query(ItemId(1), 0, None, 1_500, RETENTION);
        assert_eq!(q.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [6]);
        assert_eq!(q.oldest, Some(6));
        assert!(q.gap);
        assert!(!log.query(ItemId(1), 5, None, 1_500, RETENTION).gap);
    }
}
