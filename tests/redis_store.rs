//! Tests of `effex::store::RedisStore` through the `Store` trait, each on a
//! `redis-server` of its own (tests/common/redis.rs): every operation and
//! error code, several stores on one Redis (events in seq order, expiry
//! exactly once), seq persistence, and Redis being unreachable.
//!
//! Deadlines run on Redis's clock, so waits are on the event channel (or
//! bounded polls) with generous bounds.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::poll::poll_until;
use common::redis::RedisServer;
use effex::protocol::rest::KeysRequest;
use effex::store::{
    Event, EventKind, EventQuery, KeyKind, MemoryStoreConfig, RedisStore, RedisStoreConfig, Store,
    StoreError, StoreEvent, UpdateItem, WriteItem,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::time::timeout;

const BOSS: &str = "test boss key";
const WAIT: Duration = Duration::from_secs(10);

async fn store_with(config: RedisStoreConfig) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::connect(config)
            .await
            .expect("connect to the test's redis-server"),
    )
}

async fn keys(
    store: &Arc<dyn Store>,
    kind: KeyKind,
    count: usize,
    seconds: Option<Duration>,
) -> Vec<String> {
    let request = KeysRequest {
        kind,
        count: Some(count),
        seconds,
    };
    store
        .make_keys(BOSS, request)
        .await
        .expect("the boss makes keys")
        .keys
}

async fn key(store: &Arc<dyn Store>, kind: KeyKind) -> String {
    keys(store, kind, 1, None).await.remove(0)
}

/// Writes an item (value 0) as `owner` and updates it `updates` times
/// (values 1, 2, …); returns its id.
async fn updated_item(store: &Arc<dyn Store>, owner: &str, updates: u64) -> String {
    let id = store
        .write(owner, WriteItem::new(json!(0)))
        .await
        .unwrap()
        .id
        .to_string();
    for n in 1..=updates {
        store
            .update(owner, &id, UpdateItem::new(json!(n)))
            .await
            .unwrap();
    }
    id
}

fn code<T>(result: &Result<T, StoreError>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(e) => e.code(),
    }
}

/// The next event matching `want`, or a panic after `WAIT`.
async fn next_event(
    rx: &mut broadcast::Receiver<StoreEvent>,
    want: impl Fn(&Event) -> bool,
) -> Event {
    timeout(WAIT, async {
        loop {
            match rx.recv().await.map(StoreEvent::into_item) {
                Ok(Some(event)) if want(&event) => return event,
                Ok(_) => continue,
                Err(e) => panic!("event channel failed: {e}"),
            }
        }
    })
    .await
    .expect("the event arrived in time")
}

#[tokio::test]
async fn keys_need_the_boss_and_report_the_store() {
    let redis = RedisServer::start().await;
    let store = store_with(redis.store_config(BOSS)).await;
    assert_eq!(store.kind(), "redis");
    let made = store
        .make_keys(
            BOSS,
            KeysRequest {
                kind: KeyKind::Writer,
                count: Some(3),
                seconds: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(made.keys.len(), 3);
    assert!(made
        .keys
        .iter()
        .all(|k| k.starts_with("wk") && k.len() == 34));
    assert_eq!(
        code(
            &store
                .make_keys("not a key", KeysRequest::new(KeyKind::Reader))
                .await
        ),
        401
    );
    assert_eq!(
        code(
            &store
                .make_keys(&made.keys[0], KeysRequest::new(KeyKind::Reader))
                .await
        ),
        403
    );
    let unknown = format!("wk{}", "0".repeat(32));
    assert_eq!(
        code(
            &store
                .make_keys(&unknown, KeysRequest::new(KeyKind::Reader))
                .await
        ),
        401
    );
    let too_many = KeysRequest {
        kind: KeyKind::Reader,
        count: Some(101),
        seconds: None,
    };
    assert_eq!(code(&store.make_keys(BOSS, too_many).await), 400);
    let info = store.info().await.unwrap();
    assert_eq!((info.store, info.items, info.latest_seq), ("redis", 0, 0));
}

#[tokio::test]
async fn permission_matrix_and_round_trip() {
    let redis = RedisServer::start().await;
    let store = store_with(redis.store_config(BOSS)).await;
    let owner = key(&store, KeyKind::Writer).await;
    let other_writer = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let updater = key(&store, KeyKind::Updater).await;
    let stranger = key(&store, KeyKind::Reader).await;
    let unknown = format!("rk{}", "1".repeat(32));
    let mut write = WriteItem::new(json!({"n": 1}));
    write.readers = vec![reader.clone()];
    write.updaters = vec![updater.clone()];
    let written = store.write(&owner, write).await.unwrap();
    let id = written.id.to_string();
    assert_eq!(written.size, 7);
    assert_eq!(store.info().await.unwrap().items, 1);

    // read: owner, updater, reader yes; stranger 403; boss 403; unknown 401.
    for k in [&owner, &updater, &reader] {
        assert_eq!(
            store
                .read(k, &id, false)
                .await
                .unwrap()
                .value
                .to_value()
                .unwrap(),
            json!({"n": 1})
        );
    }
    assert_eq!(code(&store.read(&stranger, &id, false).await), 403);
    assert_eq!(code(&store.read(&other_writer, &id, false).await), 403);
    assert_eq!(code(&store.read(BOSS, &id, false).await), 403);
    assert_eq!(code(&store.read(&unknown, &id, false).await), 401);
    assert_eq!(code(&store.read(&owner, &"a".repeat(32), false).await), 404);
    assert_eq!(code(&store.check_read(&reader, &id).await), 200);
    assert_eq!(code(&store.check_read(&stranger, &id).await), 403);

    // update: owner and updater; reader 403; too large 413.
    let mut rx = store.subscribe();
    let updated = store
        .update(&updater, &id, UpdateItem::new(json!({"n": 2})))
        .await
        .unwrap();
    assert_eq!(updated.seq, 1);
    let event = next_event(&mut rx, |_| true).await;
    assert_eq!((event.seq, event.kind), (1, EventKind::Update));
    assert_eq!(event.value.unwrap().to_value().unwrap(), json!({"n": 2}));
    assert_eq!(
        code(&store.update(&reader, &id, UpdateItem::new(json!(3))).await),
        403
    );
    let big = UpdateItem::new(json!("x".repeat(1024 * 1024)));
    assert_eq!(code(&store.update(&owner, &id, big).await), 413);
    assert_eq!(store.read(&reader, &id, false).await.unwrap().seq, 1);

    // lists take only their kind of key.
    let mut bad = WriteItem::new(json!(1));
    bad.readers = vec![updater.clone()];
    assert_eq!(code(&store.write(&owner, bad.clone()).await), 400);
    assert_eq!(
        code(&store.write(&reader, bad).await),
        403,
        "the key's 403 comes first"
    );
    assert_eq!(
        code(&store.write(&reader, WriteItem::new(json!(1))).await),
        403
    );

    // remove: owner only; then 404; the log keeps the remove for the reader.
    assert_eq!(code(&store.remove(&updater, &id).await), 403);
    let removed = store.remove(&owner, &id).await.unwrap();
    assert_eq!(removed.seq, 2);
    assert_eq!(code(&store.read(&owner, &id, false).await), 404);
    let page = store
        .events(&reader, &id, EventQuery::default())
        .await
        .unwrap();
    let kinds: Vec<_> = page.events.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(kinds, [(1, EventKind::Update), (2, EventKind::Remove)]);
    assert_eq!((page.oldest, page.gap, page.latest), (Some(1), false, 2));
    assert_eq!(
        code(&store.events(&stranger, &id, EventQuery::default()).await),
        403
    );
    assert_eq!(store.info().await.unwrap().items, 0);
}

#[tokio::test]
async fn aliases_resolve_repoint_and_conflict() {
    let redis = RedisServer::start().await;
    let store = store_with(redis.store_config(BOSS)).await;
    let a = key(&store, KeyKind::Writer).await;
    let b = key(&store, KeyKind::Writer).await;
    let mut first = WriteItem::new(json!(1));
    first.alias = Some("news".into());
    let first = store.write(&a, first).await.unwrap();
    assert_eq!(store.resolve("news").await.unwrap(), first.id);
    assert_eq!(store.read(&a, "news", false).await.unwrap().id, first.id);
    let second = store.write(&a, WriteItem::new(json!(2))).await.unwrap();
    store
        .alias(&a, "news", &second.id.to_string())
        .await
        .unwrap();
    assert_eq!(store.resolve("news").await.unwrap(), second.id);
    let theirs = store.write(&b, WriteItem::new(json!(3))).await.unwrap();
    assert_eq!(
        code(&store.alias(&b, "news", &theirs.id.to_string()).await),
        409
    );
    assert_eq!(
        code(&store.alias(&a, "news", &theirs.id.to_string()).await),
        403
    );
    assert_eq!(
        code(
            &store
                .alias(&a, &"b".repeat(32), &second.id.to_string())
                .await
        ),
        400
    );
    assert_eq!(
        code(&store.alias(&a, "has space", &second.id.to_string()).await),
        400
    );
    assert_eq!(code(&store.resolve("nothing").await), 404);
    let check = store.check_read(&a, "news").await.unwrap();
    assert_eq!(
        (check.id, check.alias.as_deref()),
        (second.id, Some("news"))
    );
    // Removing the item leaves the alias on the gone item: 404 through it.
    store.remove(&a, "news").await.unwrap();
    assert_eq!(code(&store.read(&a, "news", false).await), 404);
}

#[tokio::test]
async fn update_intents_lock_out_others_until_used() {
    let redis = RedisServer::start().await;
    let store = store_with(redis.store_config(BOSS)).await;
    let owner = key(&store, KeyKind::Writer).await;
    let ups = keys(&store, KeyKind::Updater, 2, None).await;
    let reader = key(&store, KeyKind::Reader).await;
    let mut write = WriteItem::new(json!(0));
    write.updaters = ups.clone();
    write.readers = vec![reader.clone()];
    let id = store.write(&owner, write).await.unwrap().id.to_string();
    assert_eq!(code(&store.read(&reader, &id, true).await), 403);
    let held = store.read(&ups[0], &id, true).await.unwrap();
    let intent = held.intent.expect("an intent id");
    assert!(held.intent_expires.is_some());
    match store.read(&ups[1], &id, true).await {
        Err(StoreError::Locked { seconds_left }) => {
            assert!(seconds_left > 0.0 && seconds_left <= 10.0)
        }
        other => panic!("expected 423, got {other:?}"),
    }
    assert_eq!(
        code(&store.update(&ups[1], &id, UpdateItem::new(json!(1))).await),
        423
    );
    let bad = UpdateItem::new(json!(1)).with_intent("not an intent");
    assert_eq!(code(&store.update(&ups[0], &id, bad).await), 400);
    store
        .update(&ups[0], &id, UpdateItem::new(json!(1)).with_intent(intent))
        .await
        .unwrap();
    // The update ended the lock: the other updater may take it now.
    let theirs = store.read(&ups[1], &id, true).await.unwrap();
    assert!(theirs.intent.is_some());
    // The owner is never locked out.
    store
        .update(&owner, &id, UpdateItem::new(json!(2)))
        .await
        .unwrap();
    assert_eq!(code(&store.read(&ups[0], &id, true).await), 200);
}

#[tokio::test]
async fn quotas_refuse_and_give_back() {
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.max_items_per_key = 2;
    cfg.limits.max_bytes_per_key = 40;
    cfg.limits.max_total_bytes = 45;
    cfg.limits.max_aliases_per_key = 1;
    let store = store_with(cfg).await;
    let a = key(&store, KeyKind::Writer).await;
    let b = key(&store, KeyKind::Writer).await;
    let ten = json!("12345678"); // 10 bytes
    let first = store.write(&a, WriteItem::new(ten.clone())).await.unwrap();
    store.write(&a, WriteItem::new(ten.clone())).await.unwrap();
    assert_eq!(
        code(&store.write(&a, WriteItem::new(json!(1))).await),
        429,
        "items"
    );
    let thirty_one = UpdateItem::new(json!("x".repeat(29)));
    assert_eq!(
        code(&store.update(&a, &first.id.to_string(), thirty_one).await),
        429,
        "bytes"
    );
    store
        .write(&b, WriteItem::new(json!("x".repeat(18))))
        .await
        .unwrap();
    // The store holds 40 of 45 bytes; b holds 20 of its 40.
    assert_eq!(
        code(&store.write(&b, WriteItem::new(ten.clone())).await),
        507
    );
    assert_eq!(store.info().await.unwrap().bytes, 40);
    store.remove(&a, &first.id.to_string()).await.unwrap();
    assert_eq!(store.info().await.unwrap().bytes, 30);
    let again = store.write(&a, WriteItem::new(ten.clone())).await.unwrap();
    store.alias(&a, "one", &again.id.to_string()).await.unwrap();
    store.alias(&a, "one", &again.id.to_string()).await.unwrap();
    assert_eq!(
        code(&store.alias(&a, "two", &again.id.to_string()).await),
        429,
        "aliases"
    );
}

/// `FCALL`s Redis has run so far (`INFO commandstats`).
async fn fcalls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO commandstats");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_fcall:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Writes that arrive together go in one `write` call (group commit), and
/// each keeps the answer it would have had alone, in arrival order: the
/// item quota counts the batch's writes before it, an alias taken earlier in
/// the batch is a conflict for another key, a reader key or an unknown key
/// is refused without failing the others, and the counters the batch moved
/// are right afterwards.
#[tokio::test]
async fn writes_in_one_batch_keep_their_own_answers() {
    const A_WRITES: usize = 12;
    const A_MAX: usize = 5;
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.max_items_per_key = A_MAX;
    let store = store_with(cfg).await;
    let a = key(&store, KeyKind::Writer).await;
    let b = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let unknown = format!("wk{:032x}", 7);
    let with_alias = |value: Value| {
        let mut item = WriteItem::new(value);
        item.alias = Some("shared".into());
        item
    };
    let mut conn = redis.connection().await;
    let calls_before = fcalls(&mut conn).await;
    // Queued in this order before the store's write task runs (the test's
    // runtime has one thread): b's alias first, then a's writes, then a's
    // claim of b's alias and the keys that may not write.
    let mut writes = vec![(b.clone(), with_alias(json!("b")))];
    writes.extend((0..A_WRITES).map(|n| (a.clone(), WriteItem::new(json!(n)))));
    writes.push((a.clone(), with_alias(json!("a"))));
    writes.push((reader.clone(), WriteItem::new(json!("r"))));
    writes.push((unknown.clone(), WriteItem::new(json!("u"))));
    let results = futures_util::future::join_all(writes.into_iter().map(|(key, item)| {
        let store = &store;
        async move { store.write(&key, item).await }
    }))
    .await;
    let calls = fcalls(&mut conn).await - calls_before;
    let codes: Vec<u16> = results.iter().map(code).collect();
    let mut expected = vec![200];
    expected.extend((0..A_WRITES).map(|n| if n < A_MAX { 200 } else { 429 }));
    expected.extend([409, 403, 401]);
    assert_eq!(codes, expected, "each write's own answer, in order");
    assert!(
        calls < results.len() as u64 / 2,
        "{} writes arriving together took {calls} write calls: they were not batched",
        results.len()
    );
    let b_item = results[0].as_ref().unwrap();
    assert_eq!(store.resolve("shared").await.unwrap(), b_item.id);
    assert_eq!(store.info().await.unwrap().items, A_MAX + 1);
    // The key's counter moved by the batch's five: one gone, one more fits.
    let first_a = results[1].as_ref().unwrap().id.to_string();
    store.remove(&a, &first_a).await.unwrap();
    store
        .write(&a, WriteItem::new(json!("again")))
        .await
        .unwrap();
    assert_eq!(
        code(&store.write(&a, WriteItem::new(json!("over"))).await),
        429
    );
}

/// More writes than the write queue holds (1,024), arriving while Redis is
/// paused: the ones past the bound wait for room instead of being refused
/// or lost, every one is written once Redis is back, and no call carries
/// more than 64 writes.
#[tokio::test]
async fn writes_past_the_queue_bound_wait_and_none_is_lost() {
    const WRITES: usize = 1_024 + 200;
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.max_items_per_key = 2 * WRITES;
    let store = store_with(cfg).await;
    let a = key(&store, KeyKind::Writer).await;
    let mut conn = redis.connection().await;
    let calls_before = fcalls(&mut conn).await;
    // Redis holds every write command for 500 ms, so the writes pile up.
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(500)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .expect("CLIENT PAUSE");
    let results = timeout(
        WAIT,
        futures_util::future::join_all((0..WRITES).map(|n| {
            let (store, a) = (&store, &a);
            async move { store.write(a, WriteItem::new(json!(n))).await }
        })),
    )
    .await
    .expect("every write answered once Redis was back");
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        refused.is_empty(),
        "writes refused at the bound: {refused:?}"
    );
    assert_eq!(store.info().await.unwrap().items, WRITES);
    let calls = fcalls(&mut conn).await - calls_before;
    assert!(
        calls as usize >= WRITES.div_ceil(64),
        "{WRITES} writes in {calls} calls: a call carried more than 64"
    );
}

#[tokio::test]
async fn retention_by_count_and_since_above_latest_report_a_gap() {
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.max_events_per_item = 3;
    let store = store_with(cfg).await;
    let owner = key(&store, KeyKind::Writer).await;
    let id = updated_item(&store, &owner, 5).await;
    let query = EventQuery {
        with_value: true,
        ..Default::default()
    };
    let page = store.events(&owner, &id, query).await.unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(page.gap);
    assert_eq!(page.oldest, Some(3));
    assert_eq!(
        page.events[2].value.as_ref().unwrap().to_value().unwrap(),
        json!(5)
    );
    let later = store
        .events(
            &owner,
            &id,
            EventQuery {
                since: 2,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!later.gap);
    let removes = EventQuery {
        kind: Some(EventKind::Remove),
        ..Default::default()
    };
    assert!(!store.events(&owner, &id, removes).await.unwrap().gap);
    let above = store
        .events(
            &owner,
            &id,
            EventQuery {
                since: 99,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(above.gap && above.events.is_empty());
    assert_eq!(store.latest_seq().await.unwrap(), 5);
}

/// The pages `events` gives for an item updated five times then removed,
/// with at most three events kept: all events, only updates, only removes.
async fn pages_after_remove_past_the_most_events(store: Arc<dyn Store>) -> Vec<(Vec<u64>, bool)> {
    let owner = key(&store, KeyKind::Writer).await;
    let id = updated_item(&store, &owner, 5).await;
    store.remove(&owner, &id).await.unwrap();
    let mut pages = Vec::new();
    for kind in [None, Some(EventKind::Update), Some(EventKind::Remove)] {
        let query = EventQuery {
            kind,
            ..Default::default()
        };
        let page = store.events(&owner, &id, query).await.unwrap();
        pages.push((page.events.iter().map(|e| e.seq).collect(), page.gap));
    }
    pages
}

// A gone item's last event is kept in its tombstone, beside the list of its
// updates (lua/common.lua `retire`); it still counts towards the most events
// kept, exactly as the memory store counts it.
#[tokio::test]
async fn a_final_event_past_the_most_events_drops_the_oldest_as_in_memory() {
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.max_events_per_item = 3;
    let memory = effex::store::MemoryStore::new(cfg.limits.clone()).unwrap();
    let expected = vec![(vec![4, 5, 6], true), (vec![4, 5], true), (vec![6], false)];
    assert_eq!(
        pages_after_remove_past_the_most_events(Arc::new(memory)).await,
        expected,
        "memory store"
    );
    assert_eq!(
        pages_after_remove_past_the_most_events(store_with(cfg).await).await,
        expected,
        "Redis store"
    );
}

/// How many `LINDEX` calls Redis has run since the last `CONFIG RESETSTAT`.
async fn lindex_calls(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_lindex:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// The length of item `id`'s log list (see the key layout in
/// src/store/redis/mod.rs).
async fn log_len(conn: &mut redis::aio::MultiplexedConnection, id: &str) -> usize {
    redis::cmd("LLEN")
        .arg(format!("effex:{{item:{id}}}:log"))
        .query_async(conn)
        .await
        .unwrap()
}

// An update reads its item's log list only when an entry may have aged out:
// the item hash keeps when the list's first entry was logged (`log`). Past
// the retention the aged entries still go from the list.
#[tokio::test]
async fn updates_trim_aged_log_entries_without_reading_the_log_until_then() {
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.event_retention = Duration::from_millis(500);
    let store = store_with(cfg).await;
    let mut conn = redis.connection().await;
    let owner = key(&store, KeyKind::Writer).await;
    let id = updated_item(&store, &owner, 0).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    for n in 1..=3 {
        store
            .update(&owner, &id, UpdateItem::new(json!(n)))
            .await
            .unwrap();
    }
    assert_eq!(lindex_calls(&mut conn).await, 0, "nothing had aged out");
    assert_eq!(log_len(&mut conn, &id).await, 3);
    tokio::time::sleep(Duration::from_millis(600)).await; // past the retention
    let last = store
        .update(&owner, &id, UpdateItem::new(json!(4)))
        .await
        .unwrap();
    assert_eq!(
        log_len(&mut conn, &id).await,
        1,
        "the three aged updates left the list"
    );
    let page = store
        .events(&owner, &id, EventQuery::default())
        .await
        .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [last.seq]
    );
    assert!(page.gap);
}

// An item written by an effex version before the `log` field (its hash has
// none; its log list holds its updates) keeps its log through updates and its
// end, and the list still gets the tombstone's TTL.
#[tokio::test]
async fn an_item_from_before_the_log_field_keeps_its_log() {
    let redis = RedisServer::start().await;
    let store = store_with(redis.store_config(BOSS)).await;
    let mut conn = redis.connection().await;
    let owner = key(&store, KeyKind::Writer).await;
    let id = updated_item(&store, &owner, 2).await;
    let removed: u32 = redis::cmd("HDEL")
        .arg(format!("effex:{{item:{id}}}"))
        .arg("log")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed, 1, "a new item has the field");
    store
        .update(&owner, &id, UpdateItem::new(json!(3)))
        .await
        .unwrap();
    let gone = store.remove(&owner, &id).await.unwrap();
    let page = store
        .events(&owner, &id, EventQuery::default())
        .await
        .unwrap();
    let seqs: Vec<(u64, EventKind)> = page.events.iter().map(|e| (e.seq, e.kind)).collect();
    use EventKind::{Remove, Update};
    assert_eq!(
        seqs,
        [(1, Update), (2, Update), (3, Update), (gone.seq, Remove)]
    );
    assert_eq!(log_len(&mut conn, &id).await, 3);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("effex:{{item:{id}}}:log"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "the log list goes with the tombstone: PTTL {ttl}");
}

#[tokio::test]
async fn retention_by_age_reports_a_gap_and_forgets_gone_items() {
    let redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.limits.event_retention = Duration::from_millis(300);
    let store = store_with(cfg).await;
    let owner = key(&store, KeyKind::Writer).await;
    let id = store
        .write(&owner, WriteItem::new(json!(0)))
        .await
        .unwrap()
        .id
        .to_string();
    store
        .update(&owner, &id, UpdateItem::new(json!(1)))
        .await
        .unwrap();
    let fresh = store
        .events(&owner, &id, EventQuery::default())
        .await
        .unwrap();
    assert_eq!((fresh.events.len(), fresh.gap), (1, false));
    poll_until("the update ages out of the log", WAIT, || {
        let (store, owner, id) = (Arc::clone(&store), owner.clone(), id.clone());
        async move {
            let page = store
                .events(&owner, &id, EventQuery::default())
                .await
                .unwrap();
            (page.gap && page.events.is_empty() && page.oldest.is_none()).then_some(())
        }
    })
    .await;
    store.remove(&owner, &id).await.unwrap();
    // The gone item's tombstone (and log) is dropped once its retention passes.
    poll_until("the tombstone is dropped", WAIT, || {
        let (store, owner, id) = (Arc::clone(&store), owner.clone(), id.clone());
        async move {
            let page = store.events(&owner, &id, EventQuery::default()).await;
            (code(&page) == 404).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn two_stores_on_one_redis_see_each_others_events_in_seq_order() {
    let redis = RedisServer::start().await;
    let a = store_with(redis.store_config(BOSS)).await;
    let b = store_with(redis.store_config(BOSS)).await;
    let owner = key(&a, KeyKind::Writer).await;
    let id = a
        .write(&owner, WriteItem::new(json!(0)))
        .await
        .unwrap()
        .id
        .to_string();
    let (mut rx_a, mut rx_b) = (a.subscribe(), b.subscribe());
    // Writes alternate between the stores, 50 each, concurrently.
    let (wa, wb) = (Arc::clone(&a), Arc::clone(&b));
    let (ka, kb, ia, ib) = (owner.clone(), owner.clone(), id.clone(), id.clone());
    let one = tokio::spawn(async move {
        for n in 0..50 {
            wa.update(&ka, &ia, UpdateItem::new(json!(n)))
                .await
                .unwrap();
        }
    });
    let two = tokio::spawn(async move {
        for n in 0..50 {
            wb.update(&kb, &ib, UpdateItem::new(json!(n)))
                .await
                .unwrap();
        }
    });
    one.await.unwrap();
    two.await.unwrap();
    for rx in [&mut rx_a, &mut rx_b] {
        let mut seqs = Vec::new();
        while seqs.len() < 100 {
            seqs.push(next_event(rx, |_| true).await.seq);
        }
        assert_eq!(
            seqs,
            (1..=100).collect::<Vec<u64>>(),
            "every event once, in seq order"
        );
    }
    assert_eq!(b.read(&owner, &id, false).await.unwrap().seq, 100);
}

#[tokio::test]
async fn items_expire_once_across_two_stores_and_keys_take_their_aliases() {
    let redis = RedisServer::start().await;
    let a = store_with(redis.store_config(BOSS)).await;
    let b = store_with(redis.store_config(BOSS)).await;
    let owner = key(&a, KeyKind::Writer).await;
    let mut rx = a.subscribe();
    let mut ids = Vec::new();
    for n in 0..40 {
        let mut write = WriteItem::new(json!(n));
        write.lifetime = Some(Duration::from_millis(300 + 10 * n));
        ids.push(a.write(&owner, write).await.unwrap().id);
    }
    let mut expired: HashMap<_, usize> = HashMap::new();
    while expired.len() < ids.len() {
        let event = next_event(&mut rx, |e| e.kind == EventKind::Expire).await;
        *expired.entry(event.id).or_default() += 1;
    }
    // Both sweepers ran; each item's log has its expire exactly once.
    for id in &ids {
        let page = b
            .events(&owner, &id.to_string(), EventQuery::default())
            .await
            .unwrap();
        let expires = page
            .events
            .iter()
            .filter(|e| e.kind == EventKind::Expire)
            .count();
        assert_eq!(expires, 1, "item {id} expired once");
        assert_eq!(code(&b.read(&owner, &id.to_string(), false).await), 404);
    }
    assert!(
        expired.values().all(|&n| n == 1),
        "each expire delivered once: {expired:?}"
    );
    assert_eq!(a.latest_seq().await.unwrap(), ids.len() as u64);
    assert_eq!(b.info().await.unwrap().items, 0);

    // A short-lived writer key: its alias goes with it, the name is free.
    let brief = keys(&a, KeyKind::Writer, 1, Some(Duration::from_millis(500)))
        .await
        .remove(0);
    let other = key(&a, KeyKind::Writer).await;
    let mut write = WriteItem::new(json!("x"));
    write.alias = Some("short".into());
    a.write(&brief, write).await.unwrap();
    let theirs = b.write(&other, WriteItem::new(json!("y"))).await.unwrap();
    poll_until("the expired key's alias is free", WAIT, || {
        let b = Arc::clone(&b);
        let other = other.clone();
        let id = theirs.id.to_string();
        async move { b.alias(&other, "short", &id).await.ok() }
    })
    .await;
    assert_eq!(code(&b.read(&brief, "short", false).await), 401);
}

#[tokio::test]
async fn seq_and_data_survive_store_and_redis_restarts() {
    let mut redis = RedisServer::start().await;
    let (owner, id) = {
        let store = store_with(redis.store_config(BOSS)).await;
        let owner = key(&store, KeyKind::Writer).await;
        let mut write = WriteItem::new(json!("kept"));
        write.alias = Some("kept".into());
        let id = store.write(&owner, write).await.unwrap().id.to_string();
        for n in 0..3 {
            store
                .update(&owner, &id, UpdateItem::new(json!(n)))
                .await
                .unwrap();
        }
        (owner, id)
    };
    let store = store_with(redis.store_config(BOSS)).await;
    assert_eq!(store.latest_seq().await.unwrap(), 3);
    assert_eq!(
        store
            .update(&owner, &id, UpdateItem::new(json!(3)))
            .await
            .unwrap()
            .seq,
        4
    );
    drop(store);
    redis.restart().await; // kill -9, then from the AOF
    let store = store_with(redis.store_config(BOSS)).await;
    assert_eq!(store.latest_seq().await.unwrap(), 4, "seq is never reused");
    assert_eq!(
        store
            .read(&owner, "kept", false)
            .await
            .unwrap()
            .value
            .to_value()
            .unwrap(),
        json!(3)
    );
    assert_eq!(
        store
            .update(&owner, &id, UpdateItem::new(json!(4)))
            .await
            .unwrap()
            .seq,
        5
    );
}

#[tokio::test]
async fn redis_down_is_503_and_the_reader_catches_up_after() {
    let mut redis = RedisServer::start().await;
    let mut cfg = redis.store_config(BOSS);
    cfg.timeout = Duration::from_millis(500);
    let a = store_with(cfg.clone()).await;
    let owner = key(&a, KeyKind::Writer).await;
    let id = a
        .write(&owner, WriteItem::new(json!(0)))
        .await
        .unwrap()
        .id
        .to_string();
    let mut rx = a.subscribe();
    redis.kill();
    let down = a.read(&owner, &id, false).await;
    match &down {
        Err(e @ StoreError::Unavailable(msg)) => {
            assert_eq!(e.code(), 503);
            assert!(msg.contains(&redis.url()), "names the URL: {msg}");
        }
        other => panic!("expected 503 while Redis is down, got {other:?}"),
    }
    redis.restart().await;
    // Another node writes while this one's reader may still be reconnecting.
    let b = store_with(cfg).await;
    for n in 1..=3 {
        b.update(&owner, &id, UpdateItem::new(json!(n)))
            .await
            .unwrap();
    }
    for seq in 1..=3 {
        assert_eq!(next_event(&mut rx, |_| true).await.seq, seq);
    }
    poll_until("the store answers again", WAIT, || {
        let a = Arc::clone(&a);
        let (owner, id) = (owner.clone(), id.clone());
        async move { a.read(&owner, &id, false).await.ok() }
    })
    .await;
}

#[tokio::test]
async fn a_store_whose_connections_drop_catches_up_from_the_stream() {
    let redis = RedisServer::start().await;
    let a = store_with(redis.store_config(BOSS)).await;
    let owner = key(&a, KeyKind::Writer).await;
    let id = a
        .write(&owner, WriteItem::new(json!(0)))
        .await
        .unwrap()
        .id
        .to_string();
    let mut rx = a.subscribe();
    assert!(redis.drop_clients().await >= 2, "the store's connections");
    // Another node writes while this one's reader reconnects.
    let b = store_with(redis.store_config(BOSS)).await;
    for n in 1..=20 {
        b.update(&owner, &id, UpdateItem::new(json!(n)))
            .await
            .unwrap();
    }
    for seq in 1..=20 {
        assert_eq!(next_event(&mut rx, |_| true).await.seq, seq);
    }
}

// Checked before any connection: no Redis needed.
#[tokio::test]
async fn a_sweep_batch_above_the_most_is_refused_with_the_reason() {
    let mut cfg = RedisStoreConfig {
        limits: MemoryStoreConfig {
            boss_key: BOSS.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    cfg.sweep_batch = effex::store::REDIS_MAX_SWEEP_BATCH + 1;
    match RedisStore::connect(cfg.clone()).await {
        Err(StoreError::BadRequest(msg)) => {
            assert!(msg.contains("sweep_batch must be 1 to 10000"), "{msg}");
        }
        other => panic!("expected the configuration refused, got {:?}", other.err()),
    }
    cfg.sweep_batch = 0;
    assert!(matches!(
        RedisStore::connect(cfg).await,
        Err(StoreError::BadRequest(_))
    ));
}

#[tokio::test]
async fn unreachable_redis_at_start_is_a_clear_error() {
    let url = {
        let redis = RedisServer::start().await;
        redis.url()
    }; // stopped: nothing listens there now
    let mut cfg = RedisStoreConfig {
        url: url.clone(),
        limits: MemoryStoreConfig {
            boss_key: BOSS.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    cfg.timeout = Duration::from_millis(500);
    let err = RedisStore::connect(cfg.clone()).await.unwrap_err();
    assert_eq!(err.code(), 503);
    assert!(err.to_string().contains(&url), "{err}");
    cfg.url = "http://not-redis".into();
    assert_eq!(RedisStore::connect(cfg).await.unwrap_err().code(), 400);
}

/// Values round-trip as the JSON text they were written as.
#[tokio::test]
async fn values_keep_their_json_text() {
    let redis = RedisServer::start().await;
    let store = store_with(redis.store_config(BOSS)).await;
    let owner = key(&store, KeyKind::Writer).await;
    let value: Value = json!({"s": "a \"quoted\" ü", "n": [1.5, -2, null], "t": true});
    let id = store
        .write(&owner, WriteItem::new(value.clone()))
        .await
        .unwrap()
        .id
        .to_string();
    assert_eq!(
        store
            .read(&owner, &id, false)
            .await
            .unwrap()
            .value
            .to_value()
            .unwrap(),
        value
    );
}
