//! The event reader: one task per store that follows the shared event stream
//! (`effex:events`) with `XREAD BLOCK` from the last entry it delivered and
//! sends each item event and alias re-point on the store's broadcast channel,
//! in stream order. It reads the stream, not pub/sub, so a dropped connection
//! loses nothing: it resumes from that entry once Redis answers again.
//!
//! An item event's entry id is `<seq>-0`; an alias re-point's is
//! `<latest seq>-<n>` with n ≥ 1 (see `point_alias` in `lua/common.lua`), so
//! the position is a whole entry id, never a seq alone: resuming from a seq
//! would deliver the re-points after it twice.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio::sync::{broadcast, watch};

use crate::protocol::time::UnixMillis;
use crate::store::{Event, ItemId, JsonText, StoreEvent, StoreMetrics};

/// How long one `XREAD` waits for new events.
pub(super) const BLOCK: Duration = Duration::from_secs(1);

/// The most events one `XREAD` returns.
const BATCH: usize = 1000;

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

/// Follows the stream after entry `from` (its end when the store started)
/// until `stop` turns true.
pub(super) async fn run(
    mut conn: ConnectionManager,
    events: broadcast::Sender<StoreEvent>,
    from: EntryId,
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
        .count(BATCH);
    let mut backoff = Duration::from_millis(50);
    // A read failed since the last that worked: the next that works is a reconnect.
    let mut failed = false;
    loop {
        let last_id = [position.to_string()];
        let read = conn.xread_options::<_, _, Option<StreamReadReply>>(
            &["effex:events"],
            &last_id,
            &options,
        );
        let reply = tokio::select! {
            reply = read => reply,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        if reply.is_ok() && std::mem::take(&mut failed) {
            metrics.redis_reconnected();
        }
        let entries = match reply {
            Ok(Some(reply)) => reply.keys.into_iter().flat_map(|k| k.ids),
            Ok(None) => continue, // BLOCK ran out: nothing new
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
        for entry in entries {
            let Some(id) = EntryId::parse(&entry.id) else {
                log::error!(
                    "effex: skipping an entry with a foreign id {} in Redis stream effex:events",
                    entry.id
                );
                continue;
            };
            if id <= position {
                continue;
            }
            position = id;
            let Some(event) = decode(&entry.map) else {
                log::error!(
                    "effex: skipping a malformed event {} in Redis stream effex:events",
                    entry.id
                );
                continue;
            };
            if let StoreEvent::Item(item) = &event {
                if item.seq <= after {
                    continue;
                }
                if item.seq > after + 1 {
                    log::warn!(
                        "effex: events {}..={} were trimmed from the Redis stream before this \
                         node read them (raise stream_max_len); watches catch up from the items' \
                         logs, and alias re-points among them are not seen",
                        after + 1,
                        item.seq - 1
                    );
                }
                after = item.seq;
            }
            // Err only means nobody is subscribed.
            let _ = events.send(event);
        }
    }
}

fn field(map: &std::collections::HashMap<String, Value>, name: &str) -> Option<String> {
    match map.get(name)? {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One stream entry as an item event or an alias re-point (`None` when
/// malformed).
fn decode(map: &std::collections::HashMap<String, Value>) -> Option<StoreEvent> {
    if let Some(alias) = field(map, "alias") {
        return Some(StoreEvent::AliasMoved {
            alias,
            item: field(map, "id")?.parse::<ItemId>().ok()?,
            since: field(map, "since")?.parse().ok()?,
        });
    }
    let value = match field(map, "value") {
        Some(text) => Some(JsonText::parse(&text).ok()?),
        None => None,
    };
    Some(StoreEvent::Item(Event {
        seq: field(map, "seq")?.parse().ok()?,
        kind: field(map, "event")?.parse().ok()?,
        id: field(map, "id")?.parse::<ItemId>().ok()?,
        at: UnixMillis::from_millis(field(map, "at")?.parse().ok()?),
        value,
    }))
}

#[cfg(test)]
mod tests {
    use super::EntryId;

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
