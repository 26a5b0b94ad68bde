//! The event reader: one task per store that follows the shared event stream
//! (`effex:events`) with `XREAD BLOCK` from the last seq it delivered and
//! sends each event on the store's broadcast channel, in seq order. It reads
//! the stream, not pub/sub, so a dropped connection loses nothing: it resumes
//! from that seq once Redis answers again.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use tokio::sync::{broadcast, watch};

use crate::store::{Event, ItemId, JsonText};

/// How long one `XREAD` waits for new events.
pub(super) const BLOCK: Duration = Duration::from_secs(1);

/// The most events one `XREAD` returns.
const BATCH: usize = 1000;

/// The longest pause between retries while Redis cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Follows the stream from `after` (the latest seq when the store started)
/// until `stop` turns true.
pub(super) async fn run(
    mut conn: ConnectionManager,
    events: broadcast::Sender<Event>,
    mut after: u64,
    mut stop: watch::Receiver<bool>,
    url: String,
) {
    let options = StreamReadOptions::default()
        .block(BLOCK.as_millis() as usize)
        .count(BATCH);
    let mut backoff = Duration::from_millis(50);
    loop {
        let last_id = [format!("{after}-0")];
        let read = conn.xread_options::<_, _, Option<StreamReadReply>>(
            &["effex:events"],
            &last_id,
            &options,
        );
        let reply = tokio::select! {
            reply = read => reply,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        let entries = match reply {
            Ok(Some(reply)) => reply.keys.into_iter().flat_map(|k| k.ids),
            Ok(None) => continue, // BLOCK ran out: nothing new
            Err(e) => {
                log::warn!(
                    "effex: reading events from Redis at {url} failed ({e}); \
                     retrying from seq {after} in {backoff:?}"
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
            let Some(event) = decode(&entry.map) else {
                log::error!(
                    "effex: skipping a malformed event {} in Redis stream effex:events",
                    entry.id
                );
                continue;
            };
            if event.seq <= after {
                continue;
            }
            if event.seq > after + 1 {
                log::warn!(
                    "effex: events {}..={} were trimmed from the Redis stream before this node \
                     read them (raise stream_max_len); watches catch up from the items' logs",
                    after + 1,
                    event.seq - 1
                );
            }
            after = event.seq;
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

/// One stream entry as an event (`None` when malformed).
fn decode(map: &std::collections::HashMap<String, Value>) -> Option<Event> {
    let value = match field(map, "value") {
        Some(text) => Some(JsonText::parse(&text).ok()?),
        None => None,
    };
    Some(Event {
        seq: field(map, "seq")?.parse().ok()?,
        kind: field(map, "event")?.parse().ok()?,
        id: field(map, "id")?.parse::<ItemId>().ok()?,
        at: field(map, "at")?.parse().ok()?,
        value,
    })
}
