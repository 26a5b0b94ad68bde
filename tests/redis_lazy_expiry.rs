//! Lazy expiry on the Redis store: an item whose deadline has passed but
//! which no sweep has expired yet is expired by the first script that looks
//! at it (check_read, events, …), through the sweep's own claim, so its
//! `expire` is logged and streamed exactly once, even when two stores race,
//! and a `watch` with `after` replays it instead of answering 404.
//!
//! The stores hold their sweepers (`MemoryStoreConfig::hold_expiry_clock`):
//! the sweeper would otherwise wake at the item's deadline, and the window
//! this is about would close by itself. Deadlines run on Redis's clock (the
//! same host clock here); every wait is bounded.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::redis::RedisServer;
use common::server::{config, start};
use common::wire::Wire;
use effex::protocol::rest::KeysRequest;
use effex::server::ServerConfig;
use effex::store::{
    EventKind, EventQuery, KeyKind, MemoryStoreConfig, RedisStore, RedisStoreConfig, Store,
    StoreEvent, UpdateItem, WriteItem,
};
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::timeout;

const BOSS: &str = "test boss key";
const WAIT: Duration = Duration::from_secs(10);
/// The items' lifetime: each deadline is at most this long after its write
/// returned.
const LIFETIME: Duration = Duration::from_millis(100);

/// A store on `redis` whose sweeper never runs; a huge sweep interval too.
async fn held_store(redis: &RedisServer) -> Arc<RedisStore> {
    Arc::new(
        RedisStore::connect(RedisStoreConfig {
            url: redis.url(),
            limits: MemoryStoreConfig {
                boss_key: BOSS.into(),
                hold_expiry_clock: true,
                ..Default::default()
            },
            sweep_interval: Duration::from_secs(3600),
            ..Default::default()
        })
        .await
        .expect("connect to the test's redis-server"),
    )
}

async fn key(store: &RedisStore, kind: KeyKind) -> String {
    store
        .make_keys(BOSS, KeysRequest::new(kind))
        .await
        .expect("the boss makes keys")
        .keys
        .remove(0)
}

/// Writes a short-lived item readable by `reader` and waits until its
/// deadline has passed; returns its id and the seq before it.
async fn due_item(store: &RedisStore, writer: &str, reader: &str) -> (String, u64) {
    let mut item = WriteItem::new(json!("short-lived"));
    item.readers = vec![reader.to_owned()];
    item.lifetime = Some(LIFETIME);
    let written = store.write(writer, item).await.expect("write");
    tokio::time::sleep(LIFETIME + Duration::from_millis(50)).await;
    (written.id.to_string(), written.seq)
}

fn expire_query(since: u64) -> EventQuery {
    EventQuery {
        since,
        kind: Some(EventKind::Expire),
        with_value: false,
    }
}

/// The next `expire` of `id` on a store's live channel (bounded wait).
async fn next_expire(rx: &mut broadcast::Receiver<StoreEvent>, id: &str) -> u64 {
    timeout(WAIT, async {
        loop {
            match rx.recv().await.expect("the live channel") {
                StoreEvent::Item(e) if e.kind == EventKind::Expire && e.id.to_string() == id => {
                    return e.seq
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the expire arrives live")
}

/// Every item event on the live channel up to and including seq `until`
/// (bounded wait): as the stream is in seq order, nothing of a lower seq
/// can come after it.
async fn events_until(
    rx: &mut broadcast::Receiver<StoreEvent>,
    until: u64,
) -> Vec<(u64, EventKind)> {
    timeout(WAIT, async {
        let mut seen = Vec::new();
        loop {
            if let StoreEvent::Item(e) = rx.recv().await.expect("the live channel") {
                seen.push((e.seq, e.kind));
                if e.seq >= until {
                    return seen;
                }
            }
        }
    })
    .await
    .expect("the events arrive live")
}

#[tokio::test]
async fn two_racing_stores_log_the_expire_once_and_the_sweep_finds_nothing() {
    let redis = RedisServer::start().await;
    let (a, b) = (held_store(&redis).await, held_store(&redis).await);
    let writer = key(&a, KeyKind::Writer).await;
    let reader = key(&a, KeyKind::Reader).await;
    let (mut live_a, mut live_b) = (a.subscribe(), b.subscribe());
    let (id, before) = due_item(&a, &writer, &reader).await;
    assert_eq!(a.latest_seq().await.expect("latest seq"), before);

    // Both stores notice the due item at once, on both paths.
    let (read_a, events_b, events_a, read_b) = tokio::join!(
        a.check_read(&reader, &id),
        b.events(&reader, &id, expire_query(before)),
        a.events(&reader, &id, expire_query(before)),
        b.check_read(&reader, &id),
    );
    assert_eq!(read_a.unwrap_err().code(), 404);
    assert_eq!(read_b.unwrap_err().code(), 404);
    let expire = before + 1;
    for page in [
        events_b.expect("events on b"),
        events_a.expect("events on a"),
    ] {
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![expire], "each query sees the one expire");
    }
    assert_eq!(a.latest_seq().await.expect("latest seq"), expire);

    // A later event, as a barrier: each node's stream carries the expire
    // once, in seq order, before it.
    let other = a
        .write(&writer, WriteItem::new(json!(0)))
        .await
        .expect("write");
    let barrier = a
        .update(&writer, &other.id.to_string(), UpdateItem::new(json!(1)))
        .await
        .expect("update")
        .seq;
    for live in [&mut live_a, &mut live_b] {
        assert_eq!(
            events_until(live, barrier).await,
            vec![(expire, EventKind::Expire), (barrier, EventKind::Update)]
        );
    }
    // The sweep has nothing left to do for it (key and tombstone deadlines
    // are an hour away).
    assert_eq!(a.sweep_once().await.expect("a sweep"), 0);
    assert_eq!(b.sweep_once().await.expect("a sweep"), 0);
    let all = a
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
    let logged: Vec<_> = all.events.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(logged, vec![(expire, EventKind::Expire)]);
}

#[tokio::test]
async fn the_sweep_and_an_access_share_one_claim() {
    let redis = RedisServer::start().await;
    let store = held_store(&redis).await;
    let writer = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let mut live = store.subscribe();
    let (id, before) = due_item(&store, &writer, &reader).await;
    // The sweep claims it first; the access after finds it gone, logs nothing.
    assert_eq!(store.sweep_once().await.expect("a sweep"), 1);
    assert_eq!(next_expire(&mut live, &id).await, before + 1);
    assert_eq!(
        store.check_read(&reader, &id).await.unwrap_err().code(),
        404
    );
    let page = store
        .events(&reader, &id, expire_query(0))
        .await
        .expect("the item's log");
    assert_eq!(page.events.len(), 1, "{:?}", page.events);
    assert_eq!(store.latest_seq().await.expect("latest seq"), before + 1);
}

#[actix_rt::test]
async fn a_watch_after_the_deadline_replays_the_expire_no_sweep_logged() {
    let redis = RedisServer::start().await;
    let store = held_store(&redis).await;
    let server = start(ServerConfig {
        store: Some(Arc::clone(&store) as Arc<dyn Store>),
        boss_key: Some(BOSS.to_owned()),
        ..config()
    })
    .await;
    let writer = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let (id, before) = due_item(&store, &writer, &reader).await;
    assert_eq!(store.latest_seq().await.expect("latest seq"), before);

    let mut wire = Wire::passed(&server.ws_url(), "any", "app-1").await;
    let reply = wire
        .call(
            1,
            "watch",
            json!({"event":"expire","id":id,"key":reader,"after":before}),
        )
        .await;
    assert_eq!(reply["ok"], json!(true), "watch refused: {reply}");
    let push = wire.next_push_acked().await;
    assert_eq!(push["event"], "expire", "{push}");
    assert_eq!(push["id"], json!(id));
    assert_eq!(push["watchable"], reply["watchable"]);
    assert_eq!(push["seq"], json!(before + 1));
    let page = store
        .events(&reader, &id, expire_query(0))
        .await
        .expect("the item's log");
    assert_eq!(page.events.len(), 1, "logged once: {:?}", page.events);
    assert_eq!(store.sweep_once().await.expect("a sweep"), 0);
    server.stop().await;
}
