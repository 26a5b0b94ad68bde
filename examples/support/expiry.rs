//! Expiry accuracy: writes items whose deadlines are spread over a window and
//! measures how late each `expire` event arrives. Shared by `bench_rest` and
//! `tests/store.rs` (via `#[path]`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use effex::protocol::messages::EventKind;
use effex::store::{Store, WriteItem};
use serde_json::json;
use tokio::time::Instant;

/// Writes `count` items with `writer`, their deadlines spread evenly over
/// `spread` (starting once all are written), and returns the lateness of each
/// `expire` event (time received − the deadline asked for), sorted.
pub async fn expiry_lateness(
    store: &Arc<dyn Store>,
    writer: &str,
    count: usize,
    spread: Duration,
) -> Vec<Duration> {
    let mut rx = store.subscribe();
    let mut deadlines = HashMap::with_capacity(count);
    // Writing takes a while (more in a debug build): the first deadline comes after it.
    let first =
        Instant::now() + Duration::from_millis(50) + Duration::from_micros(20) * count as u32;
    for i in 0..count {
        let deadline = first + spread * i as u32 / count as u32;
        let item = WriteItem {
            lifetime: Some(deadline - Instant::now()),
            ..WriteItem::new(json!({ "i": i }))
        };
        let written = store
            .write(writer, item)
            .await
            .expect("write an expiring item");
        deadlines.insert(written.id, deadline);
        if i % 1000 == 999 {
            tokio::task::yield_now().await; // let the clock run, as other threads would
        }
    }
    let written_all = Instant::now();
    assert!(
        written_all < first,
        "writing took {:?} too long",
        written_all - first
    );
    let mut lateness = Vec::with_capacity(count);
    tokio::time::timeout(spread + Duration::from_secs(10), async {
        while lateness.len() < count {
            let event = rx.recv().await.expect("no lag, channel open");
            let now = Instant::now();
            let Some(event) = event.into_item() else {
                continue;
            };
            if event.kind == EventKind::Expire {
                let deadline = deadlines[&event.id];
                assert!(now >= deadline, "expired before its deadline");
                lateness.push(now - deadline);
            }
        }
    })
    .await
    .expect("every item expired in time");
    lateness.sort();
    lateness
}
