//! The event reader: one task per store that follows the shared event stream
//! (`effex:events`) with `XREAD BLOCK` from the last entry it delivered and
//! sends each item event and alias re-point on the store's broadcast channel,
//! in stream order. It reads the stream, not pub/sub, so a dropped connection
//! loses nothing: it resumes from that entry once Redis answers again.
//!
//! It decodes the raw `XREAD` reply in place (fields borrowed from it, numbers
//! and ids parsed from the bytes): with every node reading every event, the
//! reader's allocations were most of a node's CPU per event.
//!
//! An item event's entry id is `<seq>-0`; an alias re-point's is
//! `<latest seq>-<n>` with n ≥ 1 (see `point_alias` in `lua/common.lua`), so
//! the position is a whole entry id, never a seq alone: resuming from a seq
//! would deliver the re-points after it twice.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::StreamReadOptions;
use redis::{AsyncCommands, Value};
use tokio::sync::{broadcast, watch};

use super::sweeper::{Coverage, Covered};
use crate::protocol::time::UnixMillis;
use crate::store::{Event, EventKind, ItemId, JsonText, StoreEvent, StoreMetrics};

/// How long one `XREAD` waits for new events.
pub(super) const BLOCK: Duration = Duration::from_secs(1);

/// The most entries one `XREAD` asks for.
const BATCH: usize = 1000;

/// About the most bytes of entries one `XREAD` asks for (a node that fell
/// behind reads its backlog in replies of at most this size).
const READ_BUDGET: usize = 32 << 20;

/// The most bytes of one entry besides the value or the ids it carries.
const ENTRY_OVERHEAD: usize = 256;

/// The most bytes a sweep's entry spends per expiry: an id (32 hex), a
/// deadline (13 digits) and their separators.
const SWEPT_BYTES: usize = 48;

/// How many entries one `XREAD` asks for: [`BATCH`], or fewer when entries
/// may be large (a value of up to `max_size` bytes, or a sweep of
/// `sweep_batch` expiries), so that a reply stays within [`READ_BUDGET`].
pub(super) fn entries_per_read(max_size: usize, sweep_batch: usize) -> usize {
    let largest = max_size.max(sweep_batch.saturating_mul(SWEPT_BYTES));
    (READ_BUDGET / largest.saturating_add(ENTRY_OVERHEAD)).clamp(1, BATCH)
}

/// The longest pause between retries while Redis cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A stream entry id: `<ms>-<n>` (here `<seq>-<n>`), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(super) struct EntryId {
    pub(super) seq: u64,
    pub(super) n: u64,
}

impl EntryId {
    /// Parses `<seq>-<n>` (`None` when malformed).
    pub(super) fn parse(text: &str) -> Option<Self> {
        let (seq, n) = text.split_once('-')?;
        Some(EntryId {
            seq: seq.parse().ok()?,
            n: n.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.seq, self.n)
    }
}

/// Follows the stream after entry `from` (its end when the store started),
/// `count` entries a read at most ([`entries_per_read`]), until `stop` turns
/// true. What each sweep covered goes to `coverage`, for this node's sweeper.
pub(super) async fn run(
    mut conn: ConnectionManager,
    events: broadcast::Sender<StoreEvent>,
    coverage: Arc<Coverage>,
    (from, count): (EntryId, usize),
    mut stop: watch::Receiver<bool>,
    url: String,
    metrics: StoreMetrics,
) {
    // The last entry delivered, and the last item event's seq (for the
    // trimmed-events warning).
    let mut position = from;
    let mut after = from.seq;
    let options = StreamReadOptions::default()
        .block(BLOCK.as_millis() as usize)
        .count(count);
    let mut backoff = Duration::from_millis(50);
    // A read failed since the last that worked: the next that works is a reconnect.
    let mut failed = false;
    loop {
        let last_id = [position.to_string()];
        let read = conn.xread_options::<_, _, Value>(&["effex:events"], &last_id, &options);
        let reply = tokio::select! {
            reply = read => reply,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        if reply.is_ok() && std::mem::take(&mut failed) {
            metrics.redis_reconnected();
        }
        let reply = match reply {
            Ok(Value::Nil) => continue, // BLOCK ran out: nothing new
            Ok(reply) => reply,
            Err(e) => {
                failed = true;
                log::warn!(
                    "effex: reading events from Redis at {url} failed ({e}); \
                     retrying after entry {position} in {backoff:?}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        for (raw_id, fields) in entries(&reply) {
            let Some(id) = text(raw_id).and_then(EntryId::parse) else {
                log::error!(
                    "effex: skipping an entry with a foreign id {:?} in Redis stream effex:events",
                    raw_id
                );
                continue;
            };
            if id <= position {
                continue;
            }
            position = id;
            match decode(fields) {
                Some(Decoded::One(event)) => deliver(event, &mut after, &events),
                Some(Decoded::Expired(batch, covered)) => {
                    if let Some(covered) = covered {
                        coverage.record(covered);
                    }
                    for event in batch {
                        deliver(event, &mut after, &events);
                    }
                }
                None => log::error!(
                    "effex: skipping a malformed event {id} in Redis stream effex:events"
                ),
            }
        }
    }
}

/// Sends one decoded event on, unless it is an item event at or before
/// `after` (the last item event's seq sent), which it then becomes.
fn deliver(event: StoreEvent, after: &mut u64, events: &broadcast::Sender<StoreEvent>) {
    if let StoreEvent::Item(item) = &event {
        if item.seq <= *after {
            return;
        }
        if item.seq > *after + 1 {
            log::warn!(
                "effex: events {}..={} were trimmed from the Redis stream before this \
                 node read them (raise stream_max_len); watches catch up from the items' \
                 logs, and alias re-points among them are not seen",
                *after + 1,
                item.seq - 1
            );
        }
        *after = item.seq;
    }
    // Err only means nobody is subscribed.
    let _ = events.send(event);
}

/// A reply element's bytes (entry ids and fields are bulk strings).
fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(value: &Value) -> Option<&str> {
    std::str::from_utf8(bytes(value)?).ok()
}

/// The entries of an `XREAD` reply of one stream, in order: each one's id
/// and its flat field/value list, borrowed. RESP2 answers
/// `[[stream, [[id, [f, v, …]], …]]]`, RESP3 `{stream: [[id, [f, v, …]], …]}`;
/// anything else has no entries.
fn entries(reply: &Value) -> impl Iterator<Item = (&Value, &[Value])> {
    let streams: Vec<&Value> = match reply {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => pair.get(1),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.iter().map(|(_, entries)| entries).collect(),
        _ => Vec::new(),
    };
    streams
        .into_iter()
        .filter_map(|entries| match entries {
            Value::Array(entries) => Some(entries.iter()),
            _ => None,
        })
        .flatten()
        .filter_map(|entry| match entry {
            Value::Array(parts) => match parts.as_slice() {
                [id, Value::Array(fields)] => Some((id, fields.as_slice())),
                _ => None,
            },
            _ => None,
        })
}

/// What one stream entry holds.
#[derive(Debug)]
enum Decoded {
    /// An item event or an alias re-point.
    One(StoreEvent),
    /// A sweep's expiries, in seq order (see `lua/sweep.lua`), and what the
    /// sweep covered (`None` after a full batch).
    Expired(Vec<StoreEvent>, Option<Covered>),
}

/// One entry's fields (`[name, value, name, value, …]`) as an item event, an
/// alias re-point or a sweep's expiries; `None` when malformed.
fn decode(fields: &[Value]) -> Option<Decoded> {
    let (mut seq, mut kind, mut id, mut at, mut value, mut alias, mut since) =
        (None, None, None, None, None, None, None);
    let (mut ids, mut ats, mut through, mut next) = (None, None, None, None);
    for pair in fields.chunks_exact(2) {
        let slot = match bytes(&pair[0])? {
            b"seq" => &mut seq,
            b"event" => &mut kind,
            b"id" => &mut id,
            b"at" => &mut at,
            b"value" => &mut value,
            b"alias" => &mut alias,
            b"since" => &mut since,
            b"ids" => &mut ids,
            b"ats" => &mut ats,
            b"through" => &mut through,
            b"next" => &mut next,
            _ => continue,
        };
        *slot = Some(text(&pair[1])?);
    }
    if let Some(alias) = alias {
        return Some(Decoded::One(StoreEvent::AliasMoved {
            alias: alias.to_owned(),
            item: id?.parse::<ItemId>().ok()?,
            since: since?.parse().ok()?,
        }));
    }
    let seq: u64 = seq?.parse().ok()?;
    let kind: EventKind = kind?.parse().ok()?;
    if let (Some(ids), Some(ats)) = (ids, ats) {
        // Coverage is advice for the sweepers: a value that does not parse
        // is ignored (they sweep as if no entry had said it), never a
        // reason to lose the expiries.
        let covered = match (through.map(str::parse), next.map(str::parse::<i64>)) {
            (Some(Ok(through)), Some(Ok(next))) => Some(Covered {
                through,
                next: Some(next).filter(|at| *at >= 0),
            }),
            _ => None,
        };
        return expired_batch(seq, kind, ids, ats).map(|batch| Decoded::Expired(batch, covered));
    }
    let value = match value {
        Some(text) => Some(JsonText::parse(text).ok()?),
        None => None,
    };
    Some(Decoded::One(StoreEvent::Item(Event {
        seq,
        kind,
        id: id?.parse::<ItemId>().ok()?,
        at: UnixMillis::from_millis(at?.parse().ok()?),
        value,
    })))
}

/// A batch entry's events: `ids` and `ats` space-separated and as many, the
/// seqs consecutive from `first`.
fn expired_batch(first: u64, kind: EventKind, ids: &str, ats: &str) -> Option<Vec<StoreEvent>> {
    let mut batch = Vec::with_capacity(ids.len() / 33 + 1);
    let mut ats = ats.split(' ');
    for (i, id) in ids.split(' ').enumerate() {
        batch.push(StoreEvent::Item(Event {
            seq: first.checked_add(i as u64)?,
            kind,
            id: id.parse::<ItemId>().ok()?,
            at: UnixMillis::from_millis(ats.next()?.parse().ok()?),
            value: None,
        }));
    }
    ats.next().is_none().then_some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    const ITEM: &str = "0123456789abcdef0123456789abcdef";
    const OTHER: &str = "fedcba9876543210fedcba9876543210";

    /// The one event an entry holds (`None`: malformed or a batch).
    fn one(fields: &[Value]) -> Option<StoreEvent> {
        match decode(fields)? {
            Decoded::One(event) => Some(event),
            Decoded::Expired(..) => None,
        }
    }

    fn fields(list: &[&str]) -> Vec<Value> {
        list.iter().map(|f| bulk(f)).collect()
    }

    #[test]
    fn a_sweep_entry_decodes_to_its_expiries_with_consecutive_seqs() {
        let ids = format!("{ITEM} {OTHER}");
        let batch = fields(&[
            "seq",
            "41",
            "event",
            "expire",
            "ids",
            &ids,
            "ats",
            "1000 1005",
        ]);
        let Some(Decoded::Expired(events, None)) = decode(&batch) else {
            panic!("a full batch, got {:?}", decode(&batch));
        };
        let got: Vec<(u64, String, u64)> = events
            .iter()
            .map(|e| match e {
                StoreEvent::Item(e) => {
                    assert_eq!((e.kind, e.value.is_none()), (EventKind::Expire, true));
                    (e.seq, e.id.to_string(), e.at.as_millis())
                }
                other => panic!("an item event, got {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![(41, ITEM.to_owned(), 1000), (42, OTHER.to_owned(), 1005)]
        );
    }

    #[test]
    fn a_sweep_entry_tells_what_the_sweep_covered() {
        let entry = |next: &str| {
            fields(&[
                "seq", "41", "event", "expire", "ids", ITEM, "ats", "1000", "through", "1003",
                "next", next,
            ])
        };
        let Some(Decoded::Expired(events, Some(covered))) = decode(&entry("1010")) else {
            panic!("a batch that covered, got {:?}", decode(&entry("1010")));
        };
        assert_eq!(events.len(), 1);
        let expected = Covered {
            through: 1003,
            next: Some(1010),
        };
        assert_eq!(covered, expected);
        let Some(Decoded::Expired(_, Some(covered))) = decode(&entry("-1")) else {
            panic!("a batch that covered all");
        };
        assert_eq!(covered.next, None);
        // A bad coverage value is ignored; the expiries still come.
        let Some(Decoded::Expired(events, None)) = decode(&entry("soon")) else {
            panic!(
                "the expiries without coverage, got {:?}",
                decode(&entry("soon"))
            );
        };
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn a_sweep_entry_with_more_ids_than_times_or_a_bad_id_is_malformed() {
        let ids = format!("{ITEM} {OTHER}");
        for (ids, ats) in [
            (ids.as_str(), "1000"),
            (ids.as_str(), "1000 1005 1010"),
            (ITEM, "soon"),
            ("not-hex", "1000"),
        ] {
            let batch = fields(&["seq", "41", "event", "expire", "ids", ids, "ats", ats]);
            assert!(decode(&batch).is_none(), "{ids:?} / {ats:?}");
        }
    }

    #[test]
    fn delivery_skips_what_was_sent_and_sends_in_order() {
        let (tx, mut rx) = broadcast::channel(8);
        let expire = |seq| {
            StoreEvent::Item(Event {
                seq,
                kind: EventKind::Expire,
                id: ITEM.parse().unwrap(),
                at: UnixMillis::from_millis(1),
                value: None,
            })
        };
        let mut after = 5;
        for seq in [4, 5, 6, 6, 7] {
            deliver(expire(seq), &mut after, &tx);
        }
        let mut sent = Vec::new();
        while let Ok(StoreEvent::Item(e)) = rx.try_recv() {
            sent.push(e.seq);
        }
        assert_eq!((sent, after), (vec![6, 7], 7));
    }

    #[test]
    fn a_resp2_reply_decodes_item_events_and_re_points_in_order() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("effex:events"),
            Value::Array(vec![
                entry(
                    "7-0",
                    &[
                        "seq",
                        "7",
                        "event",
                        "update",
                        "id",
                        ITEM,
                        "at",
                        "1000",
                        "value",
                        "{\"a\":1}",
                    ],
                ),
                entry("7-1", &["alias", "home", "id", ITEM, "since", "7"]),
            ]),
        ])]);
        let decoded: Vec<(Option<EntryId>, Option<StoreEvent>)> = entries(&reply)
            .map(|(id, fields)| (text(id).and_then(EntryId::parse), one(fields)))
            .collect();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].0, EntryId::parse("7-0"));
        match &decoded[0].1 {
            Some(StoreEvent::Item(e)) => {
                assert_eq!((e.seq, e.id.to_string().as_str()), (7, ITEM));
                assert_eq!(e.at, UnixMillis::from_millis(1000));
                assert_eq!(
                    e.value.as_ref().map(|v| v.to_string()),
                    Some("{\"a\":1}".into())
                );
            }
            other => panic!("an item event, got {other:?}"),
        }
        match &decoded[1].1 {
            Some(StoreEvent::AliasMoved { alias, since, .. }) => {
                assert_eq!((alias.as_str(), *since), ("home", 7));
            }
            other => panic!("a re-point, got {other:?}"),
        }
    }

    #[test]
    fn a_resp3_reply_decodes_too_and_a_malformed_entry_is_none() {
        let reply = Value::Map(vec![(
            bulk("effex:events"),
            Value::Array(vec![
                entry(
                    "8-0",
                    &["seq", "8", "event", "expire", "id", ITEM, "at", "5"],
                ),
                entry(
                    "9-0",
                    &["seq", "9", "event", "expire", "id", "not hex", "at", "5"],
                ),
            ]),
        )]);
        let decoded: Vec<Option<StoreEvent>> =
            entries(&reply).map(|(_, fields)| one(fields)).collect();
        assert!(
            matches!(&decoded[0], Some(StoreEvent::Item(e)) if e.seq == 8 && e.value.is_none())
        );
        assert!(decoded[1].is_none());
        assert_eq!(entries(&Value::Nil).count(), 0);
    }

    #[test]
    fn a_read_asks_for_fewer_entries_when_entries_may_be_large() {
        // Small values and sweeps: the most entries.
        assert_eq!(entries_per_read(4096, 200), BATCH);
        // 1 MiB values (the default max_size): a reply stays near 32 MiB.
        let count = entries_per_read(1 << 20, 200);
        assert_eq!(count, 31);
        assert!(count * ((1 << 20) + ENTRY_OVERHEAD) <= READ_BUDGET);
        // A large sweep batch bounds it too; never below one entry.
        assert_eq!(entries_per_read(1024, 10_000), 69);
        assert_eq!(entries_per_read(usize::MAX, 1), 1);
    }

    #[test]
    fn entry_ids_order_re_points_after_their_seq() {
        let event = EntryId::parse("7-0").unwrap();
        let moved = EntryId::parse("7-1").unwrap();
        let next = EntryId::parse("8-0").unwrap();
        assert!(event < moved && moved < next);
        assert_eq!(moved.to_string(), "7-1");
        assert_eq!(EntryId::parse("7"), None);
        assert_eq!(EntryId::parse("x-1"), None);
    }
}
