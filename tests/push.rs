//! Watches, pushes, replay and webhooks (protocol.md §2.3–2.5, §3's webhook
//! rows) against an in-process server over real sockets on 127.0.0.1, with
//! the raw wire client (so the server side is tested on its own).
//!
//! Every wait is bounded ([`WAIT`]). Where a test must show that something
//! does *not* arrive, it uses a barrier instead of a sleep: the hub handles
//! events in seq order, so once the push of a later event has arrived, the
//! push of an earlier one would have arrived before it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::logs;
use common::server::{config, start};
use common::watches;
use common::webhook_receiver::{allowing_receivers, Request, WebhookReceiver};
use common::wire::{http_client, Wire};
use effex::protocol::rest::KeysRequest;
use effex::server::{ServerConfig, ServerHandle};
use effex::store::{KeyKind, MemoryStoreConfig, Store, UpdateItem, WriteItem};
use serde_json::{json, Value};

/// The keys of one test: a writer, and readers listed on every item.
struct Keys {
    writer: String,
    readers: Vec<String>,
    /// A valid reader key that no item lists.
    stranger: String,
}

async fn keys(store: &Arc<dyn Store>, boss: &str, readers: usize) -> Keys {
    let writer = store
        .make_keys(boss, KeysRequest::new(KeyKind::Writer))
        .await
        .expect("writer key")
        .keys
        .remove(0);
    let mut request = KeysRequest::new(KeyKind::Reader);
    request.count = Some(readers + 1);
    let mut readers = store
        .make_keys(boss, request)
        .await
        .expect("reader keys")
        .keys;
    let stranger = readers.pop().expect("one more");
    Keys {
        writer,
        readers,
        stranger,
    }
}

/// Writes an item readable by `keys.readers`; returns its id and seq.
async fn write(store: &Arc<dyn Store>, keys: &Keys, value: Value) -> (String, u64) {
    write_with(store, keys, value, |_| {}).await
}

async fn write_with(
    store: &Arc<dyn Store>,
    keys: &Keys,
    value: Value,
    change: impl FnOnce(&mut WriteItem),
) -> (String, u64) {
    let mut item = WriteItem::new(value);
    item.readers = keys.readers.clone();
    change(&mut item);
    let written = store.write(&keys.writer, item).await.expect("write");
    (written.id.to_string(), written.seq)
}

async fn update(store: &Arc<dyn Store>, keys: &Keys, id: &str, value: Value) -> u64 {
    store
        .update(&keys.writer, id, UpdateItem::new(value))
        .await
        .expect("update")
        .seq
}

/// A server with its store and keys, and one passed socket.
struct Fixture {
    server: ServerHandle,
    store: Arc<dyn Store>,
    keys: Keys,
}

impl Fixture {
    async fn new(config: ServerConfig, readers: usize) -> Self {
        let server = start(config).await;
        let store = server.store().clone();
        let keys = keys(&store, server.boss_key().expect("embedded store"), readers).await;
        Fixture {
            server,
            store,
            keys,
        }
    }

    /// A server on a store of this config (boss key "boss"), one reader: a
    /// memory store, or a Redis store with the switch on (`common::store_switch`).
    async fn with_store(store_config: MemoryStoreConfig) -> Self {
        let store = common::store_switch::store(MemoryStoreConfig {
            boss_key: "boss".into(),
            ..store_config
        })
        .await;
        let server = start(ServerConfig {
            store: Some(store.clone()),
            ..config()
        })
        .await;
        let keys = keys(&store, "boss", 1).await;
        Fixture {
            server,
            store,
            keys,
        }
    }

    async fn wire(&self, push_id: &str) -> Wire {
        Wire::passed(&self.server.ws_url(), "any", push_id).await
    }

    fn reader(&self) -> &str {
        &self.keys.readers[0]
    }
}

/// `watch` and its reply, which must come before any push.
async fn watch(wire: &mut Wire, ack_id: u64, args: Value) -> Value {
    wire.call(ack_id, "watch", args).await
}

/// `watch` that must succeed; returns the watchable.
async fn watch_ok(wire: &mut Wire, ack_id: u64, args: Value) -> String {
    let reply = watch(wire, ack_id, args).await;
    assert_eq!(reply["ok"], json!(true), "watch refused: {reply}");
    reply["watchable"].as_str().expect("watchable").to_owned()
}

fn seqs(pushes: &[Value]) -> Vec<u64> {
    pushes
        .iter()
        .map(|p| p["seq"].as_u64().expect("seq"))
        .collect()
}

// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn every_event_is_one_push_per_watch_in_seq_order() {
    let f = Fixture::new(config(), 2).await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let with_value = watch_ok(
        &mut wire,
        1,
        json!({"event":"update","id":id,"key":f.reader(),"withValue":true,"message":{"tag":"v"}}),
    )
    .await;
    // The same item and kind with another key is another watch.
    let plain = watch_ok(
        &mut wire,
        2,
        json!({"event":"update","id":id,"key":f.keys.readers[1]}),
    )
    .await;
    assert_ne!(with_value, plain);
    let removal = watch_ok(
        &mut wire,
        3,
        json!({"event":"remove","id":id,"key":f.reader()}),
    )
    .await;
    let expiry = watch_ok(
        &mut wire,
        4,
        json!({"event":"expire","id":id,"key":f.reader()}),
    )
    .await;

    let mut updates = Vec::new();
    for n in 1..=3 {
        updates.push(update(&f.store, &f.keys, &id, json!({"n": n})).await);
    }
    let removed = f
        .store
        .remove(&f.keys.writer, &id)
        .await
        .expect("remove")
        .seq;

    // 3 updates × 2 watches, then the one remove push: 7 pushes, in seq order.
    let pushes = wire.pushes_acked(7).await;
    let mine = |w: &str| -> Vec<Value> {
        pushes
            .iter()
            .filter(|p| p["watchable"] == w)
            .cloned()
            .collect()
    };
    let valued = mine(&with_value);
    assert_eq!(seqs(&valued), updates);
    for (n, push) in valued.iter().enumerate() {
        assert_eq!(push["event"], "update");
        assert_eq!(push["id"], json!(id));
        assert_eq!(push["value"], json!({"n": n + 1}));
        assert_eq!(push["message"], json!({"tag": "v"}));
        assert!(push.get("alias").is_none());
        assert!(push["at"].as_u64().unwrap() > 1_600_000_000_000);
    }
    let bare = mine(&plain);
    assert_eq!(seqs(&bare), updates);
    assert!(bare
        .iter()
        .all(|p| p.get("value").is_none() && p.get("message").is_none()));
    let final_push = mine(&removal);
    assert_eq!(seqs(&final_push), [removed]);
    assert_eq!(final_push[0]["event"], "remove");
    assert!(final_push[0].get("value").is_none());
    assert!(mine(&expiry).is_empty());
    let all = seqs(&pushes);
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");

    // The final push was acked: every watch of the item has ended.
    for (n, watchable) in [&with_value, &plain, &removal, &expiry]
        .into_iter()
        .enumerate()
    {
        let reply = wire
            .call(10 + n as u64, "unwatch", json!({"watchable": watchable}))
            .await;
        assert_eq!(reply["code"], json!(404), "{watchable}: {reply}");
    }
    // And a re-watch of the gone item is 404.
    let reply = watch(
        &mut wire,
        20,
        json!({"event":"update","id":id,"key":f.reader()}),
    )
    .await;
    assert_eq!(reply["code"], json!(404));
    f.server.stop().await;
}

#[actix_rt::test]
async fn expiry_sends_the_final_push_and_ends_the_other_watches() {
    let f = Fixture::new(config(), 1).await;
    let (id, _) = write_with(&f.store, &f.keys, json!(1), |item| {
        item.lifetime = Some(Duration::from_millis(300));
    })
    .await;
    let mut wire = f.wire("app-1").await;
    let expiry = watch_ok(
        &mut wire,
        1,
        json!({"event":"expire","id":id,"key":f.reader()}),
    )
    .await;
    let updates = watch_ok(
        &mut wire,
        2,
        json!({"event":"update","id":id,"key":f.reader()}),
    )
    .await;
    let push = wire.next_push_acked().await;
    assert_eq!(push["watchable"], json!(expiry));
    assert_eq!(push["event"], "expire");
    for (ack, w) in [(3, &expiry), (4, &updates)] {
        let reply = wire.call(ack, "unwatch", json!({"watchable": w})).await;
        assert_eq!(reply["code"], json!(404), "{reply}");
    }
    f.server.stop().await;
}

#[actix_rt::test]
async fn replay_sends_the_backlog_then_live_events_without_duplicates() {
    let f = Fixture::new(config(), 1).await;
    let (id, written) = write(&f.store, &f.keys, json!(0)).await;
    let mut logged = Vec::new();
    for n in 1..=5 {
        logged.push(update(&f.store, &f.keys, &id, json!(n)).await);
    }
    let mut wire = f.wire("app-1").await;
    let reply = watch(
        &mut wire,
        1,
        json!({"event":"update","id":id,"key":f.reader(),"after":written}),
    )
    .await;
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(reply["seq"], json!(logged[4]));
    assert_eq!(reply["gap"], json!(false));
    // Live events while the backlog is still being acked.
    let mut live = Vec::new();
    for n in 6..=8 {
        live.push(update(&f.store, &f.keys, &id, json!(n)).await);
    }
    let pushes = wire.pushes_acked(8).await;
    let expected: Vec<u64> = logged.iter().chain(&live).copied().collect();
    assert_eq!(seqs(&pushes), expected);

    // From the middle of the log, on another push id.
    let mut other = f.wire("app-2").await;
    watch_ok(
        &mut other,
        1,
        json!({"event":"update","id":id,"key":f.reader(),"after":logged[2]}),
    )
    .await;
    let pushes = other.pushes_acked(5).await;
    assert_eq!(seqs(&pushes), expected[3..]);
    // Without `after`: live events only.
    let mut fresh = f.wire("app-3").await;
    let reply = watch(
        &mut fresh,
        1,
        json!({"event":"update","id":id,"key":f.reader()}),
    )
    .await;
    assert_eq!(reply["seq"], json!(live[2]));
    let next = update(&f.store, &f.keys, &id, json!(9)).await;
    assert_eq!(seqs(&[fresh.next_push_acked().await]), [next]);
    f.server.stop().await;
}

#[actix_rt::test]
async fn a_lagging_hub_catches_up_from_the_log() {
    let Fixture {
        server,
        store,
        keys,
    } = Fixture::with_store(MemoryStoreConfig {
        event_capacity: 4,
        ..Default::default()
    })
    .await;
    let (id, _) = write(&store, &keys, json!(0)).await;
    let mut wire = Wire::passed(&server.ws_url(), "any", "app-1").await;
    watch_ok(
        &mut wire,
        1,
        json!({"event":"update","id":id,"key":keys.readers[0]}),
    )
    .await;
    // Bursts of 50 concurrent updates. The memory store answers at once, so
    // a burst never yields; the Redis store's event reader hands the channel
    // a whole `XREAD` batch without yielding. Either way the hub (on this
    // thread) falls behind the 4-event channel. Should a burst on Redis
    // trickle in small batches, another follows (bounded).
    let lagged_before = logs::warnings_containing("hub: lagged").len();
    let mut lagged = Vec::new();
    for _ in 0..10 {
        let burst = (0..50).map(|n| update(&store, &keys, &id, json!(n)));
        let mut expected = futures_util::future::join_all(burst).await;
        expected.sort_unstable();
        let pushes = wire.pushes_acked(expected.len()).await;
        assert_eq!(seqs(&pushes), expected);
        // The hub logs its lag before it catches up, so before these
        // pushes. (No other test in this binary has a channel small enough
        // to lag.)
        lagged = logs::warnings_containing("hub: lagged");
        if lagged.len() > lagged_before {
            break;
        }
    }
    assert!(
        lagged.len() > lagged_before,
        "the hub never lagged, so catching up was not tested: {lagged:?}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn a_watch_is_idempotent_and_the_latest_call_applies() {
    let f = Fixture::new(config(), 1).await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let first = watch_ok(
        &mut wire,
        1,
        json!({"event":"update","id":id,"key":f.reader(),"message":"old"}),
    )
    .await;
    let second = watch_ok(
        &mut wire,
        2,
        json!({"event":"update","id":id,"key":f.reader(),"message":"new","withValue":true}),
    )
    .await;
    assert_eq!(first, second);
    let seq = update(&f.store, &f.keys, &id, json!("v")).await;
    let push = wire.next_push_acked().await;
    assert_eq!(push["seq"], json!(seq));
    assert_eq!(push["message"], json!("new"));
    assert_eq!(push["value"], json!("v"));
    // Exactly one push: the next event's push comes next.
    let seq = update(&f.store, &f.keys, &id, json!("w")).await;
    assert_eq!(wire.next_push_acked().await["seq"], json!(seq));
    f.server.stop().await;
}

#[actix_rt::test]
async fn gap_when_the_log_no_longer_holds_the_events() {
    let Fixture {
        server,
        store,
        keys,
    } = Fixture::with_store(MemoryStoreConfig {
        max_events_per_item: 3,
        ..Default::default()
    })
    .await;
    let (id, written) = write(&store, &keys, json!(0)).await;
    let mut seqs_written = Vec::new();
    for n in 1..=6 {
        seqs_written.push(update(&store, &keys, &id, json!(n)).await);
    }
    let mut wire = Wire::passed(&server.ws_url(), "any", "app-1").await;
    let reply = watch(
        &mut wire,
        1,
        json!({"event":"update","id":id,"key":keys.readers[0],"after":written}),
    )
    .await;
    assert_eq!(reply["gap"], json!(true), "{reply}");
    let pushes = wire.pushes_acked(3).await;
    assert_eq!(seqs(&pushes), seqs_written[3..]);
    // After a seq the log still covers: no gap.
    let mut other = Wire::passed(&server.ws_url(), "any", "app-2").await;
    let reply = watch(
        &mut other,
        1,
        json!({"event":"update","id":id,"key":keys.readers[0],"after":seqs_written[3]}),
    )
    .await;
    assert_eq!(reply["gap"], json!(false), "{reply}");
    server.stop().await;
}

#[actix_rt::test]
async fn unwatch_stops_pushes_and_foreign_watchables_are_404() {
    let f = Fixture::new(config(), 1).await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let (barrier, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let watchable = watch_ok(
        &mut wire,
        1,
        json!({"event":"update","id":id,"key":f.reader()}),
    )
    .await;
    watch_ok(
        &mut wire,
        2,
        json!({"event":"update","id":barrier,"key":f.reader()}),
    )
    .await;

    let mut other = f.wire("app-2").await;
    let reply = other
        .call(1, "unwatch", json!({"watchable": watchable}))
        .await;
    assert_eq!(
        reply["code"],
        json!(404),
        "another push id's watch: {reply}"
    );
    let reply = wire
        .call(3, "unwatch", json!({"watchable": "w-nope"}))
        .await;
    assert_eq!(reply["code"], json!(404));
    let reply = wire
        .call(4, "unwatch", json!({"watchable": watchable}))
        .await;
    assert_eq!(reply, json!({"ok": true}));

    update(&f.store, &f.keys, &id, json!(1)).await;
    let after = update(&f.store, &f.keys, &barrier, json!(1)).await;
    let push = wire.next_push_acked().await;
    assert_eq!(
        push["seq"],
        json!(after),
        "the unwatched item pushed: {push}"
    );
    f.server.stop().await;
}

#[actix_rt::test]
async fn watch_checks_the_key_and_the_payload() {
    let f = Fixture::new(config(), 1).await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let cases = [
        (json!({"event":"update","id":id,"key":f.keys.stranger}), 403),
        (
            json!({"event":"update","id":id,"key":"rk0123456789abcdef0123456789abcdef"}),
            401,
        ),
        (
            json!({"event":"update","id":"0123456789abcdef0123456789abcdef","key":f.reader()}),
            404,
        ),
        (
            json!({"event":"update","id":"no-such-alias","key":f.reader()}),
            404,
        ),
        (json!({"event":"explode","id":id,"key":f.reader()}), 400),
        (json!({"id":id}), 400),
    ];
    for (n, (args, code)) in cases.into_iter().enumerate() {
        let reply = watch(&mut wire, n as u64 + 1, args.clone()).await;
        assert_eq!(reply["ok"], json!(false), "{args}: {reply}");
        assert_eq!(reply["code"], json!(code), "{args}: {reply}");
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // Before a pass: 401.
    let (mut unpassed, _) = Wire::joined(&f.server.ws_url()).await;
    let reply = watch(
        &mut unpassed,
        1,
        json!({"event":"update","id":id,"key":f.reader()}),
    )
    .await;
    assert_eq!(reply["code"], json!(401));
    f.server.stop().await;
}

#[actix_rt::test]
async fn in_flight_bound_ack_timeout_and_redelivery_by_replay() {
    let f = Fixture::new(
        ServerConfig {
            max_in_flight: 5,
            ack_timeout: Duration::from_millis(700),
            ..config()
        },
        1,
    )
    .await;
    let (id, written) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let args = json!({"event":"update","id":id,"key":f.reader()});
    let watchable = watch_ok(&mut wire, 1, args.clone()).await;
    let mut expected = Vec::new();
    for n in 0..20 {
        expected.push(update(&f.store, &f.keys, &id, json!(n)).await);
    }
    // Never acked: exactly 5 pushes, then the ack timeout closes the socket.
    let (received, code) = wire.pushes_until_close().await;
    assert_eq!(code, Some(1002));
    assert_eq!(seqs(&received), expected[..5]);

    // The client reconnects and re-watches with its last handled seq (none
    // handled): every event comes again, acked as it goes.
    let mut again = f.wire("app-1").await;
    let mut rewatch = args.clone();
    rewatch["after"] = json!(written);
    assert_eq!(watch_ok(&mut again, 1, rewatch).await, watchable);
    let pushes = again.pushes_acked(20).await;
    assert_eq!(seqs(&pushes), expected);
    f.server.stop().await;
}

#[actix_rt::test]
async fn one_update_reaches_100_connections_with_10_watches_each() {
    let f = Fixture::new(config(), 10).await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut wires = Vec::new();
    for c in 0..100 {
        let mut wire = f.wire(&format!("app-{c}")).await;
        for (k, key) in f.keys.readers.iter().enumerate() {
            watch_ok(
                &mut wire,
                k as u64 + 1,
                json!({"event":"update","id":id,"key":key}),
            )
            .await;
        }
        wires.push(wire);
    }
    let seq = update(&f.store, &f.keys, &id, json!("all")).await;
    let mut total = 0;
    for wire in &mut wires {
        let pushes = wire.pushes_acked(10).await;
        assert!(pushes.iter().all(|p| p["seq"] == json!(seq)));
        let distinct: std::collections::HashSet<&str> = pushes
            .iter()
            .map(|p| p["watchable"].as_str().unwrap())
            .collect();
        assert_eq!(distinct.len(), 10);
        total += pushes.len();
    }
    assert_eq!(total, 1000);
    f.server.stop().await;
}

#[actix_rt::test]
async fn an_alias_watch_follows_the_alias() {
    let f = Fixture::new(config(), 1).await;
    let (first, _) = write_with(&f.store, &f.keys, json!("a"), |item| {
        item.alias = Some("current".into());
    })
    .await;
    let (second, _) = write(&f.store, &f.keys, json!("b")).await;
    let mut wire = f.wire("app-1").await;
    let watchable = watch_ok(
        &mut wire,
        1,
        json!({"event":"update","id":"current","key":f.reader()}),
    )
    .await;
    let seq = update(&f.store, &f.keys, &first, json!("a1")).await;
    let push = wire.next_push_acked().await;
    assert_eq!(push["seq"], json!(seq));
    assert_eq!(push["id"], json!(first));
    assert_eq!(push["alias"], json!("current"));

    f.store
        .alias(&f.keys.writer, "current", &second)
        .await
        .expect("re-point");
    update(&f.store, &f.keys, &first, json!("a2")).await;
    let seq = update(&f.store, &f.keys, &second, json!("b1")).await;
    let push = wire.next_push_acked().await;
    assert_eq!(push["seq"], json!(seq), "the old item pushed: {push}");
    assert_eq!(push["id"], json!(second));
    assert_eq!(push["watchable"], json!(watchable));
    // Watching the alias and the item itself are two watches.
    let direct = watch_ok(
        &mut wire,
        2,
        json!({"event":"update","id":second,"key":f.reader()}),
    )
    .await;
    assert_ne!(direct, watchable);
    f.server.stop().await;
}

#[actix_rt::test]
async fn the_final_push_is_replayed_to_a_client_that_missed_it() {
    let f = Fixture::new(config(), 1).await;
    let (id, written) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let args = json!({"event":"remove","id":id,"key":f.reader()});
    let watchable = watch_ok(&mut wire, 1, args.clone()).await;
    let removed = f
        .store
        .remove(&f.keys.writer, &id)
        .await
        .expect("remove")
        .seq;
    // Received, never acked: the client drops.
    let (_, push) = wire.next_push().await;
    assert_eq!(push["seq"], json!(removed));
    wire.close(1000).await;
    drop(wire);

    let mut again = f.wire("app-1").await;
    let mut rewatch = args.clone();
    rewatch["after"] = json!(written);
    assert_eq!(watch_ok(&mut again, 1, rewatch.clone()).await, watchable);
    let push = again.next_push_acked().await;
    assert_eq!(
        (push["seq"].clone(), push["event"].clone()),
        (json!(removed), json!("remove"))
    );
    // Acked now: the watch has ended, and the gone item is 404 from the final seq on.
    let reply = again
        .call(2, "unwatch", json!({"watchable": watchable}))
        .await;
    assert_eq!(reply["code"], json!(404));
    rewatch["after"] = json!(removed);
    let reply = watch(&mut again, 3, rewatch).await;
    assert_eq!(reply["code"], json!(404));
    f.server.stop().await;
}

// ---------------------------------------------------------------------------
// Webhooks

/// The test receivers listen on 127.0.0.1, which webhooks may reach only when
/// the operator allows it.
fn webhook_config() -> ServerConfig {
    allowing_receivers(config())
}

#[actix_rt::test]
async fn webhook_watch_is_delivered_retried_and_ended_after_its_budget() {
    let f = Fixture::new(
        ServerConfig {
            webhook_retry_base: Duration::from_millis(20),
            webhook_retries: 2,
            webhook_timeout: Duration::from_secs(2),
            ..webhook_config()
        },
        1,
    )
    .await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut hook = WebhookReceiver::start();
    let client = http_client(None);
    let url = f.server.http_url();

    // Without the allow-list, a receiver on 127.0.0.1 is refused.
    let closed = Fixture::new(config(), 1).await;
    let (closed_id, _) = write(&closed.store, &closed.keys, json!(0)).await;
    let (status, body) = watches::post(
        &closed.server.http_url(),
        closed.reader(),
        &json!({"event":"update","id":closed_id,"url":hook.url}),
    )
    .await;
    assert_eq!(status, 400);
    let error = body["error"].as_str().expect("error");
    assert!(error.contains("loopback"), "{error}");
    closed.server.stop().await;

    // Refused: a key that may not read the item, a bad URL.
    let (status, body) = watches::post(
        &url,
        &f.keys.stranger,
        &json!({"event":"update","id":id,"url":hook.url}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], json!(403));
    let (status, _) = watches::post(
        &url,
        f.reader(),
        &json!({"event":"update","id":id,"url":"ftp://x"}),
    )
    .await;
    assert_eq!(status, 400);

    let mut response = client
        .post(format!("{url}/watches?key={}", f.reader()))
        .send_json(&json!({"event":"update","id":id,"url":hook.url,"message":{"m":1}}))
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 201);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["ok"], json!(true));
    let watchable = body["watchable"].as_str().expect("watchable").to_owned();

    // Delivered after one 500.
    hook.fail_next(&[500]);
    let seq = update(&f.store, &f.keys, &id, json!(1)).await;
    let expected = json!({"watchable": watchable, "event": "update", "id": id,
        "seq": seq, "at": hook_at(&f.store, &f.keys, &id, seq).await, "message": {"m": 1}});
    let Request { status, body, .. } = hook.next().await;
    assert_eq!((status, body), (500, expected.clone()));
    let Request { status, body, .. } = hook.next().await;
    assert_eq!((status, body), (200, expected));
    // One delivery per event.
    let seq = update(&f.store, &f.keys, &id, json!(2)).await;
    let Request { status, body, .. } = hook.next().await;
    assert_eq!((status, body["seq"].clone()), (200, json!(seq)));

    // A URL that keeps failing: 1 attempt + 2 retries, then the watch ends.
    hook.fail_next(&[500, 502, 503]);
    let seq = update(&f.store, &f.keys, &id, json!(3)).await;
    for status in [500, 502, 503] {
        let Request {
            status: got, body, ..
        } = hook.next().await;
        assert_eq!((got, body["seq"].clone()), (status, json!(seq)));
    }
    update(&f.store, &f.keys, &id, json!(4)).await;
    hook.expect_none(Duration::from_millis(500)).await;
    let (status, body) = watches::delete(&url, f.reader(), &watchable).await;
    assert_eq!(status, 404, "the watch should have ended");
    assert_eq!(body["ok"], json!(false));
    hook.stop().await;
    f.server.stop().await;
}

#[actix_rt::test]
async fn webhook_watch_is_deleted_by_the_key_that_made_it() {
    let f = Fixture::new(webhook_config(), 2).await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let mut hook = WebhookReceiver::start();
    let url = f.server.http_url();
    let watchable = watches::create(
        &url,
        f.reader(),
        &json!({"event":"update","id":id,"url":hook.url}),
    )
    .await;
    let delete = |key: String| {
        let (url, watchable) = (url.clone(), watchable.clone());
        async move { watches::delete(&url, &key, &watchable).await.0 }
    };
    assert_eq!(delete(f.keys.readers[1].clone()).await, 404);
    assert_eq!(delete(f.reader().to_owned()).await, 200);
    assert_eq!(delete(f.reader().to_owned()).await, 404);
    // No delivery after the delete; a second webhook is the barrier.
    let mut barrier = WebhookReceiver::start();
    watches::create(
        &url,
        f.reader(),
        &json!({"event":"update","id":id,"url":barrier.url}),
    )
    .await;
    let seq = update(&f.store, &f.keys, &id, json!(1)).await;
    assert_eq!(barrier.next().await.body["seq"], json!(seq));
    hook.expect_none(Duration::from_millis(200)).await;
    hook.stop().await;
    barrier.stop().await;
    f.server.stop().await;
}

/// The `at` of event `seq` of an item, from the pull event log.
async fn hook_at(store: &Arc<dyn Store>, keys: &Keys, id: &str, seq: u64) -> u64 {
    let page = store
        .events(
            &keys.readers[0],
            id,
            effex::store::EventQuery {
                since: seq - 1,
                ..Default::default()
            },
        )
        .await
        .expect("events");
    page.events[0].at.as_millis()
}

#[actix_rt::test]
async fn a_full_push_queue_closes_with_1013_and_replay_loses_nothing() {
    let f = Fixture::new(
        ServerConfig {
            max_in_flight: 2,
            max_queued_pushes: 5,
            ..config()
        },
        1,
    )
    .await;
    let (id, written) = write(&f.store, &f.keys, json!(0)).await;
    let mut wire = f.wire("app-1").await;
    let args = json!({"event":"update","id":id,"key":f.reader()});
    watch_ok(&mut wire, 1, args.clone()).await;
    let mut expected = Vec::new();
    for n in 0..20 {
        expected.push(update(&f.store, &f.keys, &id, json!(n)).await);
    }
    let (received, code) = wire.pushes_until_close().await;
    assert_eq!(code, Some(1013));
    // Exactly the in-flight window, the first events: the session handles
    // its mailbox in order, and the hub's overflow notice comes after at
    // least max_queued_pushes pushes, so the first two fill the window (and
    // are written) before the close; the rest wait unsent.
    assert_eq!(seqs(&received), expected[..2]);

    let mut again = f.wire("app-1").await;
    let mut rewatch = args;
    rewatch["after"] = json!(written);
    watch_ok(&mut again, 1, rewatch).await;
    assert_eq!(seqs(&again.pushes_acked(20).await), expected);
    f.server.stop().await;
}

#[actix_rt::test]
async fn dormant_watches_get_no_live_pushes_and_are_forgotten_after_the_grace() {
    let f = Fixture::new(
        ServerConfig {
            watch_grace: Duration::from_millis(300),
            ..config()
        },
        1,
    )
    .await;
    let (id, _) = write(&f.store, &f.keys, json!(0)).await;
    let (barrier, _) = write(&f.store, &f.keys, json!(0)).await;
    let args = json!({"event":"update","id":id,"key":f.reader()});
    let mut wire = f.wire("app-1").await;
    let watchable = watch_ok(&mut wire, 1, args.clone()).await;

    // Reconnected (the older socket is replaced) but not re-watched: dormant.
    let mut again = f.wire("app-1").await;
    wire.expect_goodbye().await;
    watch_ok(
        &mut again,
        1,
        json!({"event":"update","id":barrier,"key":f.reader()}),
    )
    .await;
    update(&f.store, &f.keys, &id, json!(1)).await;
    let seq = update(&f.store, &f.keys, &barrier, json!(1)).await;
    assert_eq!(again.next_push_acked().await["seq"], json!(seq));
    // Within the grace a re-watch finds the same watch.
    assert_eq!(watch_ok(&mut again, 2, args.clone()).await, watchable);

    // Dormant for longer than the grace: forgotten, a re-watch makes a new one.
    drop(again);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut later = f.wire("app-1").await;
    assert_ne!(watch_ok(&mut later, 1, args).await, watchable);
    f.server.stop().await;
}
