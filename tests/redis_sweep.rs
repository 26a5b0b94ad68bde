//! The Redis store's expiry sweep (`lua/sweep.lua`), on a `redis-server` of
//! each test's own with the sweeper held (`hold_expiry_clock`), so each test
//! runs the sweeps itself: one sweep expires a batch with consecutive seqs and
//! gives every owner its quota back once; an owner key that expired with its
//! items is not made again by that give-back; a tombstone and its log are
//! dropped by their Redis TTL after the retention, with no deadline entry and
//! no second sweep.
//!
//! Deadlines run on Redis's clock: the tests wait for it (bounded polls of
//! Redis `TIME`), never sleep and hope.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::poll::poll_until;
use common::redis::RedisServer;
use effex::protocol::rest::KeysRequest;
use effex::protocol::time::UnixMillis;
use effex::store::{
    EventKind, EventQuery, KeyKind, MemoryStoreConfig, RedisStore, RedisStoreConfig, Store,
    StoreEvent, WriteItem,
};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::time::timeout;

const BOSS: &str = "test boss key";
const WAIT: Duration = Duration::from_secs(10);
const SHORT: Duration = Duration::from_millis(300);

/// A store on `redis` whose expiry clock only moves when the test sweeps.
async fn held_store(redis: &RedisServer, limits: MemoryStoreConfig) -> Arc<RedisStore> {
    let config = RedisStoreConfig {
        url: redis.url(),
        limits: MemoryStoreConfig {
            boss_key: BOSS.into(),
            hold_expiry_clock: true,
            ..limits
        },
        ..Default::default()
    };
    Arc::new(
        RedisStore::connect(config)
            .await
            .expect("connect to the test's redis-server"),
    )
}

async fn writers(store: &RedisStore, count: usize, seconds: Option<Duration>) -> Vec<String> {
    store
        .make_keys(
            BOSS,
            KeysRequest {
                kind: KeyKind::Writer,
                count: Some(count),
                seconds,
            },
        )
        .await
        .expect("the boss makes keys")
        .keys
}

/// Waits until Redis's clock has passed `deadline`.
async fn wait_for_redis_clock(conn: &MultiplexedConnection, deadline: UnixMillis) {
    let deadline_ms = deadline.as_millis();
    poll_until("Redis's clock passes the deadline", WAIT, || {
        let mut conn = conn.clone();
        async move {
            let (s, us): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.ok()?;
            (s * 1000 + us / 1000 > deadline_ms).then_some(())
        }
    })
    .await;
}

async fn exists(conn: &MultiplexedConnection, key: &str) -> bool {
    let n: u64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn.clone())
        .await
        .expect("EXISTS");
    n == 1
}

/// The next `count` expire events on `rx`, in the order they came.
async fn expires(
    rx: &mut broadcast::Receiver<StoreEvent>,
    count: usize,
) -> Vec<(u64, String, UnixMillis)> {
    let mut got = Vec::new();
    while got.len() < count {
        match timeout(WAIT, rx.recv()).await {
            Ok(Ok(StoreEvent::Item(e))) if e.kind == EventKind::Expire => {
                got.push((e.seq, e.id.to_string(), e.at))
            }
            Ok(Ok(_)) => {}
            other => panic!("{} of {count} expire events, then {other:?}", got.len()),
        }
    }
    got
}

#[tokio::test]
async fn one_sweep_expires_a_batch_with_consecutive_seqs_and_gives_each_owner_its_quota_back() {
    let redis = RedisServer::start().await;
    let limits = MemoryStoreConfig {
        max_items_per_key: 5,
        ..Default::default()
    };
    let store = held_store(&redis, limits).await;
    let conn = redis.connection().await;
    let owners = writers(&store, 3, None).await;
    let mut rx = store.subscribe();
    let mut ids = Vec::new();
    let mut last_deadline = UnixMillis::EPOCH;
    for owner in &owners {
        for i in 0..5 {
            let item = WriteItem {
                lifetime: Some(SHORT),
                ..WriteItem::new(json!(i))
            };
            let written = store
                .write(owner, item)
                .await
                .expect("a write within quota");
            last_deadline = last_deadline.max(written.valid_till);
            ids.push((written.id.to_string(), owner.clone()));
        }
    }
    let before = store.latest_seq().await.unwrap();
    wait_for_redis_clock(&conn, last_deadline).await;
    assert_eq!(
        store.sweep_once().await.unwrap(),
        15,
        "one sweep takes the whole batch"
    );

    let events = expires(&mut rx, 15).await;
    let seqs: Vec<u64> = events.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(
        seqs,
        (before + 1..=before + 15).collect::<Vec<_>>(),
        "consecutive seqs"
    );
    assert!(
        events.windows(2).all(|w| w[0].2 <= w[1].2),
        "seqs follow the deadlines: {events:?}"
    );
    let mut expired: Vec<String> = events.into_iter().map(|(_, id, _)| id).collect();
    expired.sort();
    ids.sort();
    let written: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(expired, written, "each item expired once");
    assert_eq!(store.latest_seq().await.unwrap(), before + 15);
    for (id, owner) in &ids {
        let page = store
            .events(owner, id, EventQuery::default())
            .await
            .expect("the tombstone keeps its log for the retention");
        assert_eq!(page.events.len(), 1, "{id}: the expire logged once");
    }

    let info = store.info().await.unwrap();
    assert_eq!(
        (info.items, info.bytes),
        (0, 0),
        "the stats gave back every item"
    );
    // Each owner has its five items back: five more fit, a sixth is 429.
    for owner in &owners {
        for i in 0..5 {
            store
                .write(owner, WriteItem::new(json!(i)))
                .await
                .expect("the expired items gave their quota back");
        }
        let sixth = store.write(owner, WriteItem::new(json!(6))).await;
        assert_eq!(sixth.map(|_| ()).map_err(|e| e.code()), Err(429));
    }
    assert_eq!(store.sweep_once().await.unwrap(), 0, "nothing left due");
}

#[tokio::test]
async fn an_owner_key_that_expired_with_its_items_is_not_made_again() {
    let redis = RedisServer::start().await;
    let store = held_store(&redis, MemoryStoreConfig::default()).await;
    let conn = redis.connection().await;
    // Long enough for the write below on a loaded machine.
    let owner = writers(&store, 1, Some(Duration::from_secs(2)))
        .await
        .remove(0);
    let mut rx = store.subscribe();
    // The item's deadline is its owner key's: both fall due together.
    let written = store.write(&owner, WriteItem::new(json!(1))).await.unwrap();
    wait_for_redis_clock(&conn, written.valid_till).await;
    assert_eq!(store.sweep_once().await.unwrap(), 2, "the key and the item");
    let events = expires(&mut rx, 1).await;
    assert_eq!(events[0].1, written.id.to_string());
    assert!(
        !exists(&conn, &format!("effex:{{key:{owner}}}")).await,
        "the expired owner key's hash was made again by the quota give-back"
    );
}

#[tokio::test]
async fn a_tombstone_and_its_log_go_with_the_retention_without_a_second_sweep() {
    let redis = RedisServer::start().await;
    let limits = MemoryStoreConfig {
        event_retention: SHORT,
        ..Default::default()
    };
    let store = held_store(&redis, limits).await;
    let conn = redis.connection().await;
    let owner = writers(&store, 1, None).await.remove(0);
    let item = WriteItem {
        lifetime: Some(SHORT),
        ..WriteItem::new(json!(1))
    };
    let written = store.write(&owner, item).await.unwrap();
    let id = written.id.to_string();
    wait_for_redis_clock(&conn, written.valid_till).await;
    assert_eq!(store.sweep_once().await.unwrap(), 1);
    let due: Option<f64> = redis::cmd("ZSCORE")
        .arg("effex:due")
        .arg(format!("i:{id}"))
        .query_async(&mut conn.clone())
        .await
        .unwrap();
    assert_eq!(due, None, "no deadline entry is left for the tombstone");
    let page = store
        .events(&owner, &id, EventQuery::default())
        .await
        .expect("the tombstone answers within the retention");
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].kind, EventKind::Expire);

    // No more sweeps: Redis's TTL drops the tombstone and its log.
    let (item_key, log_key) = (
        format!("effex:{{item:{id}}}"),
        format!("effex:{{item:{id}}}:log"),
    );
    poll_until("the tombstone and its log are dropped", WAIT, || {
        let (conn, item_key, log_key) = (conn.clone(), item_key.clone(), log_key.clone());
        async move {
            (!exists(&conn, &item_key).await && !exists(&conn, &log_key).await).then_some(())
        }
    })
    .await;
    let gone = store.events(&owner, &id, EventQuery::default()).await;
    assert_eq!(gone.map(|_| ()).map_err(|e| e.code()), Err(404));
}
