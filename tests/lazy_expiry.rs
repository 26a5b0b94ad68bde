//! Lazy expiry on the memory store (protocol.md §2.3): a `watch` with `after`
//! made after an item's deadline but before the expiry clock has logged its
//! `expire` still gets that final push replayed, not 404, because the watch's
//! own store calls expire the due item (once) through the clock's claim.
//!
//! The clock is held (`MemoryStoreConfig::hold_expiry_clock`), so the window
//! between the deadline and the clock's expiry stays open for as long as the
//! test needs: nothing here races the clock. Every wait is bounded.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::server::{config, start};
use common::wire::Wire;
use effex::protocol::rest::KeysRequest;
use effex::server::ServerConfig;
use effex::store::{
    EventKind, EventQuery, KeyKind, MemoryStore, MemoryStoreConfig, Store, StoreEvent, UpdateItem,
    WriteItem,
};
use serde_json::json;
use tokio::sync::broadcast;

/// The item's lifetime: its deadline is this long after the write returns
/// at the latest.
const LIFETIME: Duration = Duration::from_millis(50);

async fn key(store: &Arc<dyn Store>, kind: KeyKind) -> String {
    store
        .make_keys("boss", KeysRequest::new(kind))
        .await
        .expect("the boss makes keys")
        .keys
        .remove(0)
}

/// The `expire` events of `id` the live channel holds now.
fn expires_of(rx: &mut broadcast::Receiver<StoreEvent>, id: &str) -> Vec<u64> {
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|e| match e {
            StoreEvent::Item(e) if e.kind == EventKind::Expire && e.id.to_string() == id => {
                Some(e.seq)
            }
            _ => None,
        })
        .collect()
}

#[actix_rt::test]
async fn a_watch_after_the_deadline_replays_the_expire_the_clock_has_not_logged() {
    let store: Arc<dyn Store> = Arc::new(
        MemoryStore::new(MemoryStoreConfig {
            boss_key: "boss".into(),
            hold_expiry_clock: true,
            ..Default::default()
        })
        .expect("a memory store"),
    );
    let server = start(ServerConfig {
        store: Some(Arc::clone(&store)),
        ..config()
    })
    .await;
    let writer = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let mut live = store.subscribe();
    let mut item = WriteItem::new(json!("short-lived"));
    item.readers = vec![reader.clone()];
    item.lifetime = Some(LIFETIME);
    let written = store.write(&writer, item).await.expect("write");
    let id = written.id.to_string();
    // The deadline is an instant at most LIFETIME after the write returned:
    // after this it has passed, and the held clock has not expired the item.
    tokio::time::sleep(LIFETIME + Duration::from_millis(20)).await;
    assert_eq!(
        store.latest_seq().await.expect("latest seq"),
        written.seq,
        "nothing may have logged the expire yet"
    );

    let mut wire = Wire::passed(&server.ws_url(), "any", "app-1").await;
    let reply = wire
        .call(
            1,
            "watch",
            json!({"event":"expire","id":id,"key":reader,"after":written.seq}),
        )
        .await;
    assert_eq!(reply["ok"], json!(true), "watch refused: {reply}");
    let push = wire.next_push_acked().await;
    assert_eq!(push["event"], "expire", "{push}");
    assert_eq!(push["id"], json!(id));
    assert_eq!(push["watchable"], reply["watchable"]);
    let seq = push["seq"].as_u64().expect("seq");
    assert_eq!(seq, written.seq + 1, "the expire takes the next seq");

    // Logged once: more accesses find it gone and log nothing more.
    assert_eq!(
        store.check_read(&reader, &id).await.unwrap_err().code(),
        404
    );
    assert_eq!(
        store.read(&reader, &id, false).await.unwrap_err().code(),
        404
    );
    let page = store
        .events(
            &reader,
            &id,
            EventQuery {
                since: 0,
                kind: None,
                with_value: false,
            },
        )
        .await
        .expect("the item's log");
    let logged: Vec<_> = page.events.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(logged, vec![(seq, EventKind::Expire)]);
    assert_eq!(store.latest_seq().await.expect("latest seq"), seq);
    // And sent live once (the channel holds everything sent so far).
    assert_eq!(expires_of(&mut live, &id), vec![seq]);
    server.stop().await;
}

#[actix_rt::test]
async fn every_access_path_expires_a_due_item_once() {
    let store = MemoryStore::new(MemoryStoreConfig {
        boss_key: "boss".into(),
        hold_expiry_clock: true,
        ..Default::default()
    })
    .expect("a memory store");
    let store: Arc<dyn Store> = Arc::new(store);
    let writer = key(&store, KeyKind::Writer).await;
    let mut live = store.subscribe();
    for path in ["check_read", "read", "read with intent", "update", "remove"] {
        let mut item = WriteItem::new(json!(1));
        item.lifetime = Some(LIFETIME);
        let written = store.write(&writer, item).await.expect("write");
        let id = written.id.to_string();
        tokio::time::sleep(LIFETIME + Duration::from_millis(20)).await;
        for _ in 0..2 {
            let refused = match path {
                "check_read" => store.check_read(&writer, &id).await.err(),
                "read" => store.read(&writer, &id, false).await.err(),
                "read with intent" => store.read(&writer, &id, true).await.err(),
                "update" => store
                    .update(&writer, &id, UpdateItem::new(json!(2)))
                    .await
                    .err(),
                _ => store.remove(&writer, &id).await.err(),
            };
            assert_eq!(refused.map(|e| e.code()), Some(404), "{path}");
            // This access logged the expire (once), not a later one.
            let latest = store.latest_seq().await.expect("latest seq");
            assert_eq!(latest, written.seq + 1, "{path}");
        }
        let page = store
            .events(
                &writer,
                &id,
                EventQuery {
                    since: written.seq,
                    kind: Some(EventKind::Expire),
                    with_value: false,
                },
            )
            .await
            .expect("the item's log");
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![written.seq + 1], "{path}");
        assert_eq!(expires_of(&mut live, &id), seqs, "{path}");
    }
}
