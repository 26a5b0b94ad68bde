//! Tests of `effex::store` through the `Store` trait on a `MemoryStore`.
//!
//! Time-dependent behaviour uses short configured lifetimes, on tokio's
//! paused time where a test's steps must fit in them (the store's deadlines
//! and its expiry clock run on tokio time). Waiting for the expiry clock is
//! always on the broadcast receiver under a bounded timeout; sleeps are used
//! only to pass a deadline that every access checks exactly.
#![cfg(feature = "server")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use effex::protocol::rest::{KeysRequest, LoggedEvent, ReadReply, WriteReply};
use effex::store::{
    Event, EventKind, EventQuery, ItemId, JsonText, KeyKind, MemoryStore, MemoryStoreConfig, Store,
    StoreError, StoreEvent, UpdateItem, WriteItem,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::time::{sleep, timeout};

const BOSS: &str = "test boss key";
const WAIT: Duration = Duration::from_secs(5);

fn config() -> MemoryStoreConfig {
    MemoryStoreConfig {
        boss_key: BOSS.into(),
        ..Default::default()
    }
}

fn store_with(config: MemoryStoreConfig) -> Arc<dyn Store> {
    Arc::new(MemoryStore::new(config).expect("valid config inside a runtime"))
}

async fn key(store: &Arc<dyn Store>, kind: KeyKind) -> String {
    keys(store, kind, 1, None).await.remove(0)
}

async fn key_for(store: &Arc<dyn Store>, kind: KeyKind, lifetime: Duration) -> String {
    keys(store, kind, 1, Some(lifetime)).await.remove(0)
}

async fn keys(
    store: &Arc<dyn Store>,
    kind: KeyKind,
    count: usize,
    seconds: Option<Duration>,
) -> Vec<String> {
    store
        .make_keys(
            BOSS,
            KeysRequest {
                kind,
                count: Some(count),
                seconds,
            },
        )
        .await
        .expect("the boss makes keys")
        .keys
}

fn item(value: Value) -> WriteItem {
    WriteItem::new(value)
}

/// An item (value 0) of a new writer key that two new updater keys may
/// update: (the writer, the updaters, the item's id).
async fn item_with_two_updaters(store: &Arc<dyn Store>) -> (String, [String; 2], String) {
    let owner = key(store, KeyKind::Writer).await;
    let updaters = [
        key(store, KeyKind::Updater).await,
        key(store, KeyKind::Updater).await,
    ];
    let written = store
        .write(
            &owner,
            WriteItem {
                updaters: updaters.to_vec(),
                ..item(json!(0))
            },
        )
        .await
        .unwrap();
    (owner, updaters, written.id.to_string())
}

/// Writes `value` with `key`: the new item's id.
async fn write_id(store: &Arc<dyn Store>, key: &str, value: Value) -> String {
    let written = store.write(key, item(value)).await.expect("the write");
    written.id.to_string()
}

/// Updates item `id` to `value` with `key`: the event's seq.
async fn update_seq(store: &Arc<dyn Store>, key: &str, id: &str, value: Value) -> u64 {
    let updated = store.update(key, id, UpdateItem::new(value)).await;
    updated.expect("the update").seq
}

/// An item (value 1) aliased "shared" by a writer key living 60 ms: the
/// item's id, and the store's events from before the write.
async fn aliased_by_a_brief_key(
    store: &Arc<dyn Store>,
) -> (ItemId, broadcast::Receiver<StoreEvent>) {
    let brief = key_for(store, KeyKind::Writer, Duration::from_millis(60)).await;
    let events = store.subscribe();
    let id = store.write(&brief, item(json!(1))).await.unwrap().id;
    let alias = store.alias(&brief, "shared", &id.to_string()).await;
    alias.expect("the brief key aliases its item");
    (id, events)
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

// --- keys and config ----------------------------------------------------------

#[tokio::test]
async fn keys_are_prefixed_random_and_need_the_boss() {
    let store = store_with(config());
    let made = store
        .make_keys(
            BOSS,
            KeysRequest {
                kind: KeyKind::Reader,
                count: Some(3),
                seconds: Some(Duration::from_secs(60)),
            },
        )
        .await
        .unwrap();
    assert_eq!(made.kind, KeyKind::Reader);
    assert_eq!(made.keys.len(), 3);
    for k in &made.keys {
        assert!(k.starts_with("rk") && k.len() == 34, "{k}");
        assert!(k[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
    assert_eq!(made.keys.iter().collect::<HashSet<_>>().len(), 3);
    assert!(key(&store, KeyKind::Writer).await.starts_with("wk"));
    assert!(key(&store, KeyKind::Updater).await.starts_with("uk"));

    let writer = key(&store, KeyKind::Writer).await;
    let by_writer = store
        .make_keys(&writer, KeysRequest::new(KeyKind::Writer))
        .await;
    assert!(
        matches!(by_writer, Err(StoreError::Forbidden(_))),
        "{by_writer:?}"
    );
    let unknown = store
        .make_keys("not the boss", KeysRequest::new(KeyKind::Writer))
        .await;
    assert_eq!(unknown, Err(StoreError::UnknownKey));

    let zero = KeysRequest {
        kind: KeyKind::Writer,
        count: Some(0),
        seconds: None,
    };
    assert_eq!(code(&store.make_keys(BOSS, zero).await), 400);
    let too_many = KeysRequest {
        kind: KeyKind::Writer,
        count: Some(101),
        seconds: None,
    };
    assert_eq!(code(&store.make_keys(BOSS, too_many).await), 400);
}

// Paused time: no step can take longer than the short lifetimes here on
// a loaded machine; the sleeps and the clock advance it.
#[tokio::test(start_paused = true)]
async fn key_lifetime_is_capped_and_keys_expire_exactly() {
    let store = store_with(MemoryStoreConfig {
        max_key_lifetime: Duration::from_secs(60),
        ..config()
    });
    let before = effex_unix_ms();
    let made = store
        .make_keys(
            BOSS,
            KeysRequest {
                kind: KeyKind::Writer,
                count: None,
                seconds: Some(Duration::from_secs(3600)),
            },
        )
        .await
        .unwrap();
    let valid_till = made.valid_till.as_millis();
    assert!(valid_till <= effex_unix_ms() + 60_000 && valid_till >= before + 59_000);

    let short = key_for(&store, KeyKind::Writer, Duration::from_millis(40)).await;
    assert!(store.write(&short, item(json!(1))).await.is_ok());
    sleep(Duration::from_millis(50)).await; // past the key's deadline, checked on every use
    assert_eq!(
        store.write(&short, item(json!(1))).await,
        Err(StoreError::UnknownKey)
    );
}

fn effex_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn new_needs_a_boss_key_and_a_runtime() {
    let err = MemoryStore::new(MemoryStoreConfig::default()).unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(err.to_string().contains("boss_key"), "{err}");
    let err = MemoryStore::new(config()).unwrap_err();
    assert_eq!(err.code(), 500);
    assert!(err.to_string().contains("tokio runtime"), "{err}");
    assert!(
        !format!("{:?}", config()).contains(BOSS),
        "Debug hides the boss key"
    );
}

// --- the permission matrix -------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Op {
    Read,
    IntentRead,
    Update,
    Remove,
    Alias,
    CheckRead,
    Events,
    Write,
    KeysRequest,
}

const OPS: [Op; 9] = [
    Op::Read,
    Op::IntentRead,
    Op::Update,
    Op::Remove,
    Op::Alias,
    Op::CheckRead,
    Op::Events,
    Op::Write,
    Op::KeysRequest,
];

async fn run_op(store: &Arc<dyn Store>, op: Op, key: &str, id: &str, n: usize) -> u16 {
    match op {
        Op::Read => code(&store.read(key, id, false).await),
        Op::IntentRead => code(&store.read(key, id, true).await),
        Op::Update => code(&store.update(key, id, UpdateItem::new(json!(n))).await),
        Op::Remove => code(&store.remove(key, id).await),
        Op::Alias => code(&store.alias(key, &format!("alias-{n}"), id).await),
        Op::CheckRead => code(&store.check_read(key, id).await),
        Op::Events => code(&store.events(key, id, EventQuery::default()).await),
        Op::Write => code(&store.write(key, item(json!(n))).await),
        Op::KeysRequest => code(
            &store
                .make_keys(key, KeysRequest::new(KeyKind::Reader))
                .await,
        ),
    }
}

#[tokio::test]
async fn permission_matrix() {
    let store = store_with(config());
    let owner = key(&store, KeyKind::Writer).await;
    let other_writer = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let other_reader = key(&store, KeyKind::Reader).await;
    let updater = key(&store, KeyKind::Updater).await;
    let other_updater = key(&store, KeyKind::Updater).await;
    let expired = key_for(&store, KeyKind::Writer, Duration::from_millis(20)).await;
    sleep(Duration::from_millis(30)).await;
    let unknown = format!("wk{}", "0".repeat(32));

    //            read intent update remove alias check events write make_keys
    let table: [(&str, &str, [u16; 9]); 10] = [
        (
            "owner",
            &owner,
            [200, 200, 200, 200, 200, 200, 200, 200, 403],
        ),
        (
            "other writer",
            &other_writer,
            [403, 403, 403, 403, 403, 403, 403, 200, 403],
        ),
        (
            "listed reader",
            &reader,
            [200, 403, 403, 403, 403, 200, 200, 403, 403],
        ),
        (
            "other reader",
            &other_reader,
            [403, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        (
            "listed updater",
            &updater,
            [200, 200, 200, 403, 403, 200, 200, 403, 403],
        ),
        (
            "other updater",
            &other_updater,
            [403, 403, 403, 403, 403, 403, 403, 403, 403],
        ),
        ("boss", BOSS, [403, 403, 403, 403, 403, 403, 403, 403, 200]),
        ("unknown key", &unknown, [401; 9]),
        ("expired key", &expired, [401; 9]),
        ("garbage", "hello", [401; 9]),
    ];
    let mut n = 0;
    for (who, caller, expected) in table {
        for (op, want) in OPS.into_iter().zip(expected) {
            n += 1;
            let written = store
                .write(
                    &owner,
                    WriteItem {
                        readers: vec![reader.clone()],
                        updaters: vec![updater.clone()],
                        ..item(json!({"n": n}))
                    },
                )
                .await
                .unwrap();
            let got = run_op(&store, op, caller, &written.id.to_string(), n).await;
            assert_eq!(got, want, "{who} × {op:?}");
        }
    }
}

#[tokio::test]
async fn lists_accept_only_their_kind_of_key() {
    let store = store_with(config());
    let writer = key(&store, KeyKind::Writer).await;
    let updater = key(&store, KeyKind::Updater).await;
    let bad = WriteItem {
        readers: vec![updater.clone()],
        ..item(json!(1))
    };
    let err = store.write(&writer, bad).await.unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(
        err.to_string().contains("readers[0] is not a reader key"),
        "{err}"
    );
    let bad = WriteItem {
        updaters: vec!["uk-short".into()],
        ..item(json!(1))
    };
    assert_eq!(code(&store.write(&writer, bad).await), 400);
    // A listed key that does not exist yet is fine (membership only).
    let future_reader = format!("rk{}", "ab".repeat(16));
    let ok = WriteItem {
        readers: vec![future_reader],
        updaters: vec![updater],
        ..item(json!(1))
    };
    assert!(store.write(&writer, ok).await.is_ok());
}

// --- items, lifetimes, size ---------------------------------------------------

#[tokio::test]
async fn write_read_update_round_trip() {
    let store = store_with(config());
    // Outlives the default item lifetime, which would otherwise be capped by it.
    let writer = key_for(&store, KeyKind::Writer, Duration::from_secs(7200)).await;
    let value = json!({"name": "effex", "list": [1, 2, 3], "nested": {"ok": true}});
    let written = store.write(&writer, item(value.clone())).await.unwrap();
    assert_eq!(written.size, serde_json::to_string(&value).unwrap().len());
    assert_eq!(written.lifetime, Duration::from_secs(3600));
    assert_eq!(
        written.seq,
        store.latest_seq().await.unwrap(),
        "a write logs no event"
    );
    let id = written.id.to_string();
    assert_eq!(id.len(), 32);
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

    let read = store.read(&writer, &id, false).await.unwrap();
    assert_eq!(read.id, written.id);
    assert_eq!(read.value.to_value().unwrap(), value);
    assert_eq!(read.valid_till, written.valid_till);
    assert_eq!(read.intent, None);

    let updated = store
        .update(&writer, &id, UpdateItem::new(json!("new")))
        .await
        .unwrap();
    assert_eq!(updated.size, 5);
    assert!(updated.seq > written.seq);
    let read = store.read(&writer, &id, false).await.unwrap();
    assert_eq!(read.value.as_str(), "\"new\"");
    assert_eq!(
        read.valid_till, written.valid_till,
        "an update keeps the expiry"
    );

    // Replies serialize camelCase, with the value as JSON (not a string).
    let reply = serde_json::to_value(ReadReply::<JsonText>::from(read.clone())).unwrap();
    assert_eq!(reply["value"], json!("new"));
    assert_eq!(reply["validTill"], json!(written.valid_till));
    assert!(reply.get("intent").is_none());
    let reply = serde_json::to_value(WriteReply::from(written.clone())).unwrap();
    assert_eq!(reply["lifetime"], json!(3600.0));
    assert_eq!(reply["id"], json!(id));

    assert_eq!(
        code(&store.read(&writer, &"f".repeat(32), false).await),
        404
    );
    let info = store.info().await.unwrap();
    assert_eq!((info.store, info.items), ("memory", 1));
    assert_eq!(store.kind(), "memory");
}

// Paused time: no step can take longer than the short lifetimes here on
// a loaded machine; the sleeps and the clock advance it.
#[tokio::test(start_paused = true)]
async fn lifetime_is_capped_by_max_lifetime_and_writer_key() {
    let store = store_with(MemoryStoreConfig {
        default_lifetime: Duration::from_secs(5),
        max_lifetime: Duration::from_secs(2),
        ..config()
    });
    let writer = key(&store, KeyKind::Writer).await;
    let default = store.write(&writer, item(json!(1))).await.unwrap();
    assert_eq!(default.lifetime, Duration::from_secs(2));
    let asked = WriteItem {
        lifetime: Some(Duration::from_secs(100)),
        ..item(json!(1))
    };
    assert_eq!(
        store.write(&writer, asked).await.unwrap().lifetime,
        Duration::from_secs(2)
    );
    let short = WriteItem {
        lifetime: Some(Duration::from_millis(1500)),
        ..item(json!(1))
    };
    assert_eq!(
        store.write(&writer, short).await.unwrap().lifetime,
        Duration::from_millis(1500)
    );
    let zero = WriteItem {
        lifetime: Some(Duration::ZERO),
        ..item(json!(1))
    };
    assert_eq!(code(&store.write(&writer, zero).await), 400);

    // The writer key lives 300 ms: its items never outlive it, and expire with it.
    let brief = key_for(&store, KeyKind::Writer, Duration::from_millis(300)).await;
    let mut rx = store.subscribe();
    let written = store.write(&brief, item(json!("brief"))).await.unwrap();
    // On paused time no time passed since the key was made: exactly its life.
    assert_eq!(written.lifetime, Duration::from_millis(300));
    let expired = next_event(&mut rx, |e| e.id == written.id).await;
    assert_eq!(expired.kind, EventKind::Expire);
}

#[tokio::test]
async fn too_large_is_413_with_a_clear_message() {
    let store = store_with(MemoryStoreConfig {
        max_size: 100,
        ..config()
    });
    let writer = key(&store, KeyKind::Writer).await;
    let big = json!("x".repeat(200));
    let err = store.write(&writer, item(big.clone())).await.unwrap_err();
    assert_eq!(
        err,
        StoreError::TooLarge {
            size: 202,
            max: 100
        }
    );
    assert_eq!(err.code(), 413);
    assert!(
        err.to_string()
            .contains("item is 202 bytes; the server's maxSize is 100 bytes"),
        "{err}"
    );
    let fits = json!("x".repeat(98)); // 100 bytes with the quotes
    let written = store.write(&writer, item(fits)).await.unwrap();
    assert_eq!(written.size, 100);
    let err = store
        .update(&writer, &written.id.to_string(), UpdateItem::new(big))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 413);
}

// --- expiry -------------------------------------------------------------------

#[tokio::test]
async fn an_item_is_unreadable_from_its_deadline_even_before_the_clock_runs() {
    let store = store_with(config());
    let writer = key(&store, KeyKind::Writer).await;
    let mut rx = store.subscribe();
    let written = store
        .write(
            &writer,
            WriteItem {
                lifetime: Some(Duration::from_millis(30)),
                ..item(json!(1))
            },
        )
        .await
        .unwrap();
    let id = written.id.to_string();
    // Block this (only) runtime thread past the deadline: the clock cannot run.
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(code(&store.read(&writer, &id, false).await), 404);
    assert_eq!(
        code(&store.update(&writer, &id, UpdateItem::new(json!(2))).await),
        404
    );
    assert_eq!(code(&store.check_read(&writer, &id).await), 404);
    // The clock could not run: the first access expired the due item itself
    // (lazy expiry), so its expire is logged and sent once, before any 404.
    let expired = next_event(&mut rx, |_| true).await;
    assert_eq!((expired.kind, expired.id), (EventKind::Expire, written.id));
    assert_eq!(expired.seq, written.seq + 1);
    assert_eq!(
        expired.at, written.valid_till,
        "an expire event is dated at the deadline"
    );
    assert_eq!(expired.value, None);
    assert_eq!(store.info().await.unwrap().items, 0);
    assert!(
        matches!(rx.try_recv(), Err(broadcast::error::TryRecvError::Empty)),
        "the expire is sent once, however many accesses noticed the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn expire_events_come_at_their_deadline() {
    // Paused time: the clock task runs on this test's runtime, and time moves
    // only when every task waits, straight to the next timer. The lateness
    // measured is then the clock's own, free of a loaded machine's
    // scheduling: tokio's timer rounds a deadline up to the next millisecond,
    // nothing more. (Real-time lateness percentiles are a benchmark:
    // `cargo run --release --example bench_rest`.)
    let store = store_with(config());
    let writer = key(&store, KeyKind::Writer).await;
    // expiry_lateness also checks that no item expires before its deadline.
    let lateness = expiry::expiry_lateness(&store, &writer, 500, Duration::from_millis(500)).await;
    assert_eq!(lateness.len(), 500);
    let latest = lateness[lateness.len() - 1];
    assert!(
        latest <= Duration::from_millis(1),
        "an expire event came {latest:?} after its deadline"
    );
}

#[tokio::test]
async fn one_clock_task_that_stops_with_the_store() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let store = store_with(config());
    let writer = key(&store, KeyKind::Writer).await;
    for i in 0..100 {
        let short = WriteItem {
            lifetime: Some(Duration::from_millis(10 + i)),
            ..item(json!(i))
        };
        store.write(&writer, short).await.unwrap();
    }
    assert_eq!(
        metrics.num_alive_tasks(),
        before + 1,
        "one clock, not a task per item"
    );
    let mut rx = store.subscribe();
    drop(store);
    let closed = timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Err(broadcast::error::RecvError::Closed) => return,
                _ => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "dropping the store dropped its state");
    timeout(WAIT, async {
        while metrics.num_alive_tasks() > before {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the clock task ended");
}

// --- intents ------------------------------------------------------------------

// Paused time: no step can take longer than the short lifetimes here on
// a loaded machine; the sleeps and the clock advance it.
#[tokio::test(start_paused = true)]
async fn update_intents_lock_out_others_until_used_or_lapsed() {
    let store = store_with(MemoryStoreConfig {
        intent_lifetime: Duration::from_millis(200),
        ..config()
    });
    let (owner, [holder, other], id) = item_with_two_updaters(&store).await;

    let read = store.read(&holder, &id, true).await.unwrap();
    let intent = read.intent.clone().expect("an intent id");
    assert_eq!(intent.len(), 32);
    let expires = read.intent_expires.expect("an intent expiry");
    assert!(expires > read.modified && expires.as_millis() <= effex_unix_ms() + 200);

    let locked = store.update(&other, &id, UpdateItem::new(json!(1))).await;
    match locked {
        Err(StoreError::Locked { seconds_left }) => {
            assert!(seconds_left > 0.0 && seconds_left <= 0.2, "{seconds_left}")
        }
        other => panic!("expected 423, got {other:?}"),
    }
    assert_eq!(code(&store.read(&other, &id, true).await), 423);
    let wrong = UpdateItem {
        value: json!(1).into(),
        intent: Some("0".repeat(32)),
    };
    assert_eq!(code(&store.update(&holder, &id, wrong).await), 423);
    let malformed = UpdateItem {
        value: json!(1).into(),
        intent: Some("nope".into()),
    };
    assert_eq!(code(&store.update(&holder, &id, malformed).await), 400);
    assert_eq!(
        code(&store.read(&other, &id, false).await),
        200,
        "plain reads ignore intents"
    );

    let with_intent = UpdateItem {
        value: json!("held").into(),
        intent: Some(intent.clone()),
    };
    store.update(&holder, &id, with_intent).await.unwrap();
    store
        .update(&other, &id, UpdateItem::new(json!("free again")))
        .await
        .expect("the lock was cleared by the holder's update");

    // The same key may renew its intent; the old id then no longer opens the lock.
    let first = store
        .read(&holder, &id, true)
        .await
        .unwrap()
        .intent
        .unwrap();
    let second = store
        .read(&holder, &id, true)
        .await
        .unwrap()
        .intent
        .unwrap();
    assert_ne!(first, second);
    let stale = UpdateItem {
        value: json!(2).into(),
        intent: Some(first),
    };
    assert_eq!(code(&store.update(&holder, &id, stale).await), 423);

    // The lock lapses by itself.
    sleep(Duration::from_millis(220)).await;
    store
        .update(&other, &id, UpdateItem::new(json!("after the lapse")))
        .await
        .expect("the intent lapsed");
    // The owner's remove ignores intents.
    store.read(&holder, &id, true).await.unwrap();
    assert!(store.remove(&owner, &id).await.is_ok());
}

// --- aliases ------------------------------------------------------------------

#[tokio::test]
async fn aliases_resolve_repoint_and_conflict() {
    let store = store_with(config());
    let owner = key(&store, KeyKind::Writer).await;
    let rival = key(&store, KeyKind::Writer).await;
    let a = store.write(&owner, item(json!("a"))).await.unwrap().id;
    let b = store.write(&owner, item(json!("b"))).await.unwrap().id;
    let rivals = store.write(&rival, item(json!("r"))).await.unwrap().id;

    let aliased = store.alias(&owner, "config", &a.to_string()).await.unwrap();
    assert_eq!((aliased.alias.as_str(), aliased.id), ("config", a));
    assert_eq!(store.resolve("config").await.unwrap(), a);
    assert_eq!(
        store
            .read(&owner, "config", false)
            .await
            .unwrap()
            .value
            .as_str(),
        "\"a\""
    );

    // Re-point to another item the owner has; an alias may name the target too.
    store.alias(&owner, "other", &b.to_string()).await.unwrap();
    store.alias(&owner, "config", "other").await.unwrap();
    assert_eq!(store.resolve("config").await.unwrap(), b);
    let updated = store
        .update(&owner, "config", UpdateItem::new(json!("b2")))
        .await
        .unwrap();
    assert_eq!(updated.id, b);
    let checked = store.check_read(&owner, "config").await.unwrap();
    assert_eq!((checked.id, checked.alias.as_deref()), (b, Some("config")));
    let page = store
        .events(&owner, "config", EventQuery::default())
        .await
        .unwrap();
    assert_eq!(page.id, b);
    assert_eq!(page.events.len(), 1);

    // Another writer: 409 on the name, 403 on the item.
    let taken = store.alias(&rival, "config", &rivals.to_string()).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    let before = store.info().await.unwrap().items;
    let write_taken = WriteItem {
        alias: Some("config".into()),
        ..item(json!("r2"))
    };
    assert_eq!(code(&store.write(&rival, write_taken).await), 409);
    assert_eq!(
        store.info().await.unwrap().items,
        before,
        "no item was written"
    );
    assert_eq!(
        code(&store.alias(&rival, "mine", &a.to_string()).await),
        403
    );
    assert_eq!(
        code(&store.alias(&owner, "theirs", &rivals.to_string()).await),
        403
    );

    // Bad names.
    for bad in ["", "a/b", "has space", &"x".repeat(129), &"a".repeat(32)] {
        assert_eq!(
            code(&store.alias(&owner, bad, &a.to_string()).await),
            400,
            "{bad:?}"
        );
    }
    assert_eq!(code(&store.resolve("nobody").await), 404);

    // A write can set the alias; removing the item leaves the alias dangling.
    let c = store
        .write(
            &owner,
            WriteItem {
                alias: Some("config".into()),
                ..item(json!("c"))
            },
        )
        .await
        .unwrap();
    assert_eq!(c.alias.as_deref(), Some("config"));
    assert_eq!(store.resolve("config").await.unwrap(), c.id);
    store.remove(&owner, "config").await.unwrap();
    assert_eq!(code(&store.read(&owner, "config", false).await), 404);
    store.alias(&owner, "config", &a.to_string()).await.unwrap();
    assert_eq!(store.read(&owner, "config", false).await.unwrap().id, a);
}

// Paused time: no step can take longer than the short lifetimes here on
// a loaded machine; the sleeps and the clock advance it.
#[tokio::test(start_paused = true)]
async fn an_alias_is_freed_when_its_owner_key_expires() {
    let store = store_with(config());
    let rival = key(&store, KeyKind::Writer).await;
    let (briefs, mut rx) = aliased_by_a_brief_key(&store).await;
    let rivals = store.write(&rival, item(json!(2))).await.unwrap().id;
    assert_eq!(
        code(&store.alias(&rival, "shared", &rivals.to_string()).await),
        409
    );
    // The brief key's item expires with the key; the alias goes with it.
    next_event(&mut rx, |e| e.id == briefs && e.kind == EventKind::Expire).await;
    assert_eq!(code(&store.resolve("shared").await), 404);
    store
        .alias(&rival, "shared", &rivals.to_string())
        .await
        .unwrap();
    assert_eq!(store.resolve("shared").await.unwrap(), rivals);
}

// --- the event log ------------------------------------------------------------

#[tokio::test]
async fn events_since_returns_exactly_the_later_events_in_order() {
    let store = store_with(config());
    let owner = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    let stranger = key(&store, KeyKind::Reader).await;
    let mut rx = store.subscribe();
    let written = store
        .write(
            &owner,
            WriteItem {
                readers: vec![reader.clone()],
                ..item(json!(0))
            },
        )
        .await
        .unwrap();
    let id = written.id.to_string();
    let mut seqs = Vec::new();
    for n in 1..=5 {
        let up = store
            .update(&owner, &id, UpdateItem::new(json!(n)))
            .await
            .unwrap();
        assert!(up.seq > written.seq);
        seqs.push(up.seq);
        let live = next_event(&mut rx, |_| true).await;
        assert_eq!(
            (live.seq, live.kind, live.id),
            (up.seq, EventKind::Update, written.id)
        );
        assert_eq!(
            live.value.map(|v| v.to_value().unwrap()),
            Some(json!(n)),
            "live updates carry the value"
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));

    let all = store
        .events(&reader, &id, EventQuery::default())
        .await
        .unwrap();
    assert_eq!(all.events.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(all.oldest, Some(seqs[0]));
    assert!(!all.gap);
    let since = EventQuery {
        since: seqs[1],
        ..Default::default()
    };
    let later = store.events(&reader, &id, since).await.unwrap();
    assert_eq!(
        later.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        seqs[2..]
    );
    assert!(later
        .events
        .iter()
        .all(|e| e.kind == EventKind::Update && e.value.is_none()));

    let with_value = EventQuery {
        since: seqs[3],
        with_value: true,
        ..Default::default()
    };
    let newest = store.events(&reader, &id, with_value).await.unwrap();
    assert_eq!(newest.events.len(), 1);
    assert_eq!(
        newest.events[0]
            .value
            .as_ref()
            .map(|v| v.to_value().unwrap()),
        Some(json!(5))
    );

    let removes = EventQuery {
        kind: Some(EventKind::Remove),
        ..Default::default()
    };
    assert!(store
        .events(&reader, &id, removes.clone())
        .await
        .unwrap()
        .events
        .is_empty());
    assert_eq!(
        code(&store.events(&stranger, &id, EventQuery::default()).await),
        403
    );

    // The final event stays replayable after the item is gone.
    let removed = store.remove(&owner, &id).await.unwrap();
    assert!(removed.seq > seqs[4]);
    let page = store.events(&reader, &id, removes).await.unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(
        (page.events[0].seq, page.events[0].kind),
        (removed.seq, EventKind::Remove)
    );
    let json = serde_json::to_value(LoggedEvent::<JsonText>::from(page.events[0].clone())).unwrap();
    assert_eq!(json["event"], json!("remove"));
    assert_eq!(json["seq"], json!(removed.seq));
    assert_eq!(code(&store.read(&reader, &id, false).await), 404);
    assert_eq!(store.latest_seq().await.unwrap(), removed.seq);
}

#[tokio::test]
async fn retention_by_count_reports_a_gap() {
    let store = store_with(MemoryStoreConfig {
        max_events_per_item: 3,
        ..config()
    });
    let owner = key(&store, KeyKind::Writer).await;
    let id = write_id(&store, &owner, json!(0)).await;
    let mut seqs = Vec::new();
    for n in 1..=5 {
        seqs.push(update_seq(&store, &owner, &id, json!(n)).await);
    }
    let page = store
        .events(&owner, &id, EventQuery::default())
        .await
        .unwrap();
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        seqs[2..]
    );
    assert_eq!(page.oldest, Some(seqs[2]));
    assert!(page.gap, "seqs {} and {} were dropped", seqs[0], seqs[1]);
    let after_dropped = EventQuery {
        since: seqs[1],
        ..Default::default()
    };
    let page = store.events(&owner, &id, after_dropped).await.unwrap();
    assert_eq!(page.events.len(), 3);
    assert!(!page.gap);
}

// Real time: event ages are wall-clock (unix ms). The retention is long
// enough for the steps between a remove and the read after it.
#[tokio::test]
async fn retention_by_age_reports_a_gap_and_forgets_gone_items() {
    let store = store_with(MemoryStoreConfig {
        event_retention: Duration::from_millis(500),
        ..config()
    });
    let owner = key(&store, KeyKind::Writer).await;
    let id = write_id(&store, &owner, json!(0)).await;
    let seq = update_seq(&store, &owner, &id, json!(1)).await;
    sleep(Duration::from_millis(600)).await; // past the event's age limit
    let page = store
        .events(&owner, &id, EventQuery::default())
        .await
        .unwrap();
    assert!(page.events.is_empty());
    assert_eq!(page.oldest, None);
    assert!(page.gap);
    let since = EventQuery {
        since: seq,
        ..Default::default()
    };
    assert!(!store.events(&owner, &id, since).await.unwrap().gap);

    // A gone item's log is dropped (by the clock) once its last event ages out.
    store.remove(&owner, &id).await.unwrap();
    assert_eq!(
        store
            .events(&owner, &id, EventQuery::default())
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    timeout(WAIT, async {
        while store
            .events(&owner, &id, EventQuery::default())
            .await
            .is_ok()
        {
            sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the tombstone was dropped");
    assert_eq!(
        code(&store.events(&owner, &id, EventQuery::default()).await),
        404
    );
}

#[tokio::test]
async fn seq_is_strictly_increasing_across_concurrent_updates() {
    let store = store_with(config());
    let owner = key(&store, KeyKind::Writer).await;
    let shared = store.write(&owner, item(json!(0))).await.unwrap().id;
    let mut own = Vec::new();
    for t in 0..4 {
        own.push(store.write(&owner, item(json!(t))).await.unwrap().id);
    }
    let mut rx = store.subscribe();
    const PER_THREAD: usize = 200;
    // Real threads, each with its own runtime, updating at the same time.
    let returned: Vec<Vec<(ItemId, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = own
            .iter()
            .map(|&mine| {
                let store = Arc::clone(&store);
                let owner = owner.clone();
                scope.spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    runtime.block_on(async {
                        let mut seqs = Vec::new();
                        for n in 0..PER_THREAD {
                            let target = if n % 2 == 0 { shared } else { mine };
                            let up = store
                                .update(&owner, &target.to_string(), UpdateItem::new(json!(n)))
                                .await
                                .unwrap();
                            seqs.push((target, up.seq));
                        }
                        seqs
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = 4 * PER_THREAD;
    let mut all: Vec<u64> = returned.iter().flatten().map(|&(_, s)| s).collect();
    for per_thread in &returned {
        assert!(per_thread.windows(2).all(|w| w[0].1 < w[1].1));
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), total, "no seq was given twice");

    let mut live = Vec::new();
    while let Ok(event) = rx.try_recv() {
        live.extend(event.item().map(|e| e.seq));
    }
    assert_eq!(live.len(), total);
    assert!(
        live.windows(2).all(|w| w[0] < w[1]),
        "broadcast in seq order"
    );
    assert_eq!(live, all);
    assert_eq!(store.latest_seq().await.unwrap(), all[total - 1]);
    let log = store
        .events(&owner, &shared.to_string(), EventQuery::default())
        .await
        .unwrap();
    assert_eq!(log.events.len(), total / 2);
    assert!(log.events.windows(2).all(|w| w[0].seq < w[1].seq));
}

// --- memory -------------------------------------------------------------------

/// The counting allocator `bench_rest` uses too. Everything of a
/// current-thread runtime, the expiry clock included, runs on the test's own
/// thread, so other tests do not disturb the count.
#[path = "../examples/support/counting.rs"]
mod counting;

/// The expiry measurement `bench_rest` uses too.
#[path = "../examples/support/expiry.rs"]
mod expiry;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

#[tokio::test]
async fn a_stored_1kib_item_costs_under_2kib() {
    let store = store_with(config());
    let writer = key(&store, KeyKind::Writer).await;
    let reader = key(&store, KeyKind::Reader).await;
    // Two shapes of ~1 KiB: one long string, and an object of 20 small fields.
    let string = json!("x".repeat(1022));
    let object = Value::Object(
        (0..20)
            .map(|i| (format!("field{i:02}"), json!(format!("{i:0>37}"))))
            .collect(),
    );
    for (shape, value) in [("string", string), ("object", object)] {
        let size = serde_json::to_string(&value).unwrap().len();
        assert!((1000..=1100).contains(&size), "{shape}: {size} bytes");
        const ITEMS: i64 = 10_000;
        let before = counting::held();
        for _ in 0..ITEMS {
            let write = WriteItem {
                readers: vec![reader.clone()],
                ..item(value.clone())
            };
            store.write(&writer, write).await.unwrap();
        }
        let per_item = (counting::held() - before) / ITEMS;
        eprintln!("a {size}-byte {shape} item costs {per_item} bytes in the store");
        assert!(per_item < 2048, "{shape}: {per_item} bytes per item");
    }
}

// --- quotas, intent hold, gap above latest (issue 7) --------------------------

#[tokio::test]
async fn quota_accounting_follows_writes_updates_removes_and_expiry() {
    let store = store_with(MemoryStoreConfig {
        max_total_bytes: 100,
        max_items_per_key: 2,
        max_aliases_per_key: 1,
        ..config()
    });
    let owner = key(&store, KeyKind::Writer).await;
    let mut rx = store.subscribe();
    let bytes = |store: &Arc<dyn Store>| {
        let store = Arc::clone(store);
        async move { store.info().await.unwrap().bytes }
    };
    let a = store
        .write(&owner, item(json!("abcdefgh")))
        .await
        .unwrap()
        .id; // 10 bytes
    assert_eq!(bytes(&store).await, 10);
    store
        .update(&owner, &a.to_string(), UpdateItem::new(json!([1, 2, 3])))
        .await
        .unwrap(); // 7 bytes replace 10
    assert_eq!(bytes(&store).await, 7);

    // A write refused for its alias quota stores and charges nothing.
    store.alias(&owner, "mine", &a.to_string()).await.unwrap();
    let refused = store
        .write(
            &owner,
            WriteItem {
                alias: Some("another".into()),
                ..item(json!(1))
            },
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::QuotaExceeded(_))),
        "{refused:?}"
    );
    let info = store.info().await.unwrap();
    assert_eq!((info.items, info.bytes), (1, 7));

    // Too large for the store: 507, nothing charged.
    let full = store.write(&owner, item(json!("x".repeat(98)))).await;
    assert!(
        matches!(full, Err(StoreError::StoreFull { .. })),
        "{full:?}"
    );
    assert_eq!(code(&full), 507);
    assert_eq!(bytes(&store).await, 7);

    // Expiry and remove give bytes and items back.
    let short = WriteItem {
        lifetime: Some(Duration::from_millis(50)),
        ..item(json!("x".repeat(91)))
    };
    let b = store.write(&owner, short).await.unwrap().id;
    assert_eq!(bytes(&store).await, 100);
    assert_eq!(code(&store.write(&owner, item(json!(1))).await), 429);
    next_event(&mut rx, |e| e.id == b && e.kind == EventKind::Expire).await;
    assert_eq!(bytes(&store).await, 7);
    store.remove(&owner, &a.to_string()).await.unwrap();
    let info = store.info().await.unwrap();
    assert_eq!((info.items, info.bytes), (0, 0));
    store.write(&owner, item(json!(1))).await.unwrap();
    store.write(&owner, item(json!(2))).await.unwrap();
}

#[tokio::test]
async fn an_alias_freed_by_its_owners_expiry_counts_for_its_next_owner() {
    let store = store_with(MemoryStoreConfig {
        max_aliases_per_key: 1,
        ..config()
    });
    let heir = key(&store, KeyKind::Writer).await;
    let (briefs, mut rx) = aliased_by_a_brief_key(&store).await;
    next_event(&mut rx, |e| e.id == briefs && e.kind == EventKind::Expire).await;
    let heirs = write_id(&store, &heir, json!(2)).await;
    store.alias(&heir, "shared", &heirs).await.unwrap();
    assert_eq!(code(&store.alias(&heir, "second", &heirs).await), 429);
    store.alias(&heir, "shared", &heirs).await.unwrap();
}

#[tokio::test]
async fn the_owners_update_breaks_an_intent_and_renewals_stop_at_the_hold() {
    let store = store_with(MemoryStoreConfig {
        intent_lifetime: Duration::from_secs(60),
        intent_max_hold: Duration::from_secs(60),
        ..config()
    });
    let (owner, [holder, rival], id) = item_with_two_updaters(&store).await;
    let first = store.read(&holder, &id, true).await.unwrap();
    let renewed = store.read(&holder, &id, true).await.unwrap();
    let (first_ms, renewed_ms) = (
        first.intent_expires.unwrap(),
        renewed.intent_expires.unwrap(),
    );
    assert!(
        renewed_ms.as_millis().abs_diff(first_ms.as_millis()) <= 1,
        "a renewal keeps the run's total hold (60 s = one lifetime here): {first_ms} {renewed_ms}"
    );
    assert_eq!(code(&store.read(&rival, &id, true).await), 423);
    store
        .update(&owner, &id, UpdateItem::new(json!("owner")))
        .await
        .expect("the owner's update is never locked out");
    store
        .read(&rival, &id, true)
        .await
        .expect("the owner's update broke the intent");
    let stale = UpdateItem::new(json!("holder")).with_intent(renewed.intent.unwrap());
    assert_eq!(code(&store.update(&holder, &id, stale).await), 423);
}

#[tokio::test]
async fn events_after_the_latest_seq_report_a_gap() {
    let store = store_with(config());
    let owner = key(&store, KeyKind::Writer).await;
    let id = write_id(&store, &owner, json!(0)).await;
    let seq = update_seq(&store, &owner, &id, json!(1)).await;
    let at = |since| EventQuery {
        since,
        ..Default::default()
    };
    let page = store.events(&owner, &id, at(seq + 5)).await.unwrap();
    assert!(page.gap && page.events.is_empty(), "{page:?}");
    assert_eq!(page.latest, seq);
    assert!(!store.events(&owner, &id, at(seq)).await.unwrap().gap);
}

#[tokio::test]
async fn quota_settings_are_validated() {
    for bad in [
        MemoryStoreConfig {
            max_total_bytes: 0,
            ..config()
        },
        MemoryStoreConfig {
            max_aliases_per_key: 0,
            ..config()
        },
        MemoryStoreConfig {
            intent_lifetime: Duration::from_secs(10),
            intent_max_hold: Duration::from_secs(5),
            ..config()
        },
    ] {
        let err = MemoryStore::new(bad).unwrap_err();
        assert_eq!(err.code(), 400, "{err}");
    }
}
