//! Alias re-points across nodes (issue 8, item 1d): two in-process nodes on
//! one `redis-server` of the test's own; a socket watch on an alias on node
//! A follows a re-point made through REST on node B at once (the re-point
//! is an entry of the shared event stream, not something a periodic sweep
//! notices seconds later), and ends with `ended` 403 when the alias now
//! names an item the watch's key may not read.
//!
//! Ordering, not wall-clock: right after the re-point B updates the old item
//! and then the new one; a node that learnt of the re-point in its place
//! among the events pushes the new item's update first and the old one's
//! never. Every wait is bounded ([`WAIT`], far below the 30 s the old alias
//! sweep took with these timers).
//!
//! At the store level: a re-point made on one `RedisStore` reaches another's
//! subscription exactly between the events around it, and once, also when
//! the reader's connection drops right after it delivered a re-point.
#![cfg(feature = "redis")]

mod common;

use std::sync::Arc;

use common::exchange::{Exchange, PASS};
use common::redis::RedisServer;
use common::wire::{ended_of, Wire, WAIT};
use effex::protocol::rest::KeysRequest;
use effex::protocol::rest::NewItem;
use effex::server::ServerConfig;
use effex::store::{
    ItemId, KeyKind, MemoryStoreConfig, RedisStore, RedisStoreConfig, Store, StoreEvent,
    UpdateItem, WriteItem,
};
use serde_json::json;
use tokio::sync::broadcast;

const BOSS: &str = "cluster alias boss key";

fn node_config(redis: &RedisServer) -> ServerConfig {
    ServerConfig {
        redis_url: Some(redis.url()),
        boss_key: Some(BOSS.into()),
        ..common::server::config()
    }
}

/// Two nodes on one Redis (they share keys: the Exchanges' keys are made on
/// the same store).
async fn two_nodes(redis: &RedisServer) -> (Exchange, Exchange) {
    let a = Exchange::start(node_config(redis)).await;
    let b = Exchange::start(node_config(redis)).await;
    (a, b)
}

/// Writes an item through `node` with `writer`, readable by `readers`, with
/// `alias` pointed at it; returns its id.
async fn write(node: &Exchange, writer: &str, readers: &[&str], alias: Option<&str>) -> String {
    let mut item = NewItem::new(json!("v"));
    for reader in readers {
        item = item.reader(*reader);
    }
    if let Some(alias) = alias {
        item = item.alias(alias);
    }
    node.rest.write(writer, &item).await.expect("write").id
}

async fn update(node: &Exchange, writer: &str, id: &str, n: u64) -> u64 {
    node.rest
        .update(writer, id, json!({ "n": n }), None)
        .await
        .expect("update")
        .seq
}

#[actix_rt::test]
async fn a_re_point_on_node_b_moves_an_alias_watch_on_node_a_at_once() {
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis).await;
    let (writer, reader) = (a.writer.clone(), a.reader.clone());
    let old = write(&b, &writer, &[&reader], Some("feed")).await;
    let new = write(&b, &writer, &[&reader], None).await;
    let mut wire = Wire::passed(&a.server.ws_url(), PASS, "alias-follower").await;
    let watchable = wire
        .watch_ok(1, json!({"event":"update","id":"feed","key":reader}))
        .await;

    // On node B: re-point, then an update of the old item, then one of the new.
    b.rest
        .alias(&writer, "feed", &new)
        .await
        .expect("re-point on B");
    update(&b, &writer, &old, 1).await;
    let on_new = update(&b, &writer, &new, 1).await;

    let push = tokio::time::timeout(WAIT, wire.next_push_acked())
        .await
        .expect("node A pushed nothing within the wait");
    assert_eq!(push["watchable"], json!(watchable));
    assert_eq!(
        push["id"],
        json!(new),
        "node A pushed the old item's update after the re-point: {push}"
    );
    assert_eq!(push["seq"], json!(on_new));
    assert_eq!(push["alias"], json!("feed"));

    // No more of the old item: its next update is not pushed before the
    // new item's next one.
    update(&b, &writer, &old, 2).await;
    let next = update(&b, &writer, &new, 2).await;
    let push = wire.next_push_acked().await;
    assert_eq!((&push["id"], &push["seq"]), (&json!(new), &json!(next)));
    a.server.stop().await;
    b.server.stop().await;
}

#[actix_rt::test]
async fn a_re_point_on_node_b_to_an_item_the_key_may_not_read_ends_the_watch_on_a_with_403() {
    let redis = RedisServer::start().await;
    let (a, b) = two_nodes(&redis).await;
    let (writer, reader) = (a.writer.clone(), a.reader.clone());
    write(&b, &writer, &[&reader], Some("board")).await;
    let public = write(&b, &writer, &[&reader], None).await;
    let private = write(&b, &writer, &[], None).await;
    let mut wire = Wire::passed(&a.server.ws_url(), PASS, "alias-reader").await;
    let on_alias = wire
        .watch_ok(
            1,
            json!({"event":"update","id":"board","key":reader,"withValue":true}),
        )
        .await;
    // The barrier: a direct watch of the public item.
    wire.watch_ok(2, json!({"event":"update","id":public,"key":reader}))
        .await;

    b.rest
        .alias(&writer, "board", &private)
        .await
        .expect("re-point on B");
    update(&b, &writer, &private, 1).await;
    let barrier = update(&b, &writer, &public, 1).await;

    let text = tokio::time::timeout(WAIT, wire.next_text())
        .await
        .expect("node A sent nothing within the wait");
    let ended = ended_of(&text).unwrap_or_else(|| panic!("an ended event first, got {text}"));
    assert_eq!(ended["watchable"], json!(on_alias));
    assert_eq!(ended["code"], json!(403));
    // Nothing of the private item came before the barrier's push.
    let push = wire.next_push_acked().await;
    assert_eq!(
        (&push["id"], &push["seq"]),
        (&json!(public), &json!(barrier))
    );
    a.server.stop().await;
    b.server.stop().await;
}

async fn redis_store(redis: &RedisServer) -> Arc<dyn Store> {
    let config = RedisStoreConfig {
        url: redis.url(),
        limits: MemoryStoreConfig {
            boss_key: BOSS.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

/// The next store event within [`WAIT`].
async fn next(rx: &mut broadcast::Receiver<StoreEvent>) -> StoreEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a store event within the wait")
        .expect("the subscription is open and did not lag")
}

fn moved(alias: &str, item: ItemId, since: u64) -> StoreEvent {
    StoreEvent::AliasMoved {
        alias: alias.into(),
        item,
        since,
    }
}

#[actix_rt::test]
async fn a_re_point_reaches_another_store_between_its_events_once_across_a_dropped_connection() {
    let redis = RedisServer::start().await;
    let a = redis_store(&redis).await;
    let owner = a
        .make_keys(BOSS, KeysRequest::new(KeyKind::Writer))
        .await
        .expect("a writer key")
        .keys
        .remove(0);
    let x = a
        .write(&owner, WriteItem::new(json!("x")))
        .await
        .unwrap()
        .id;
    let y = a
        .write(&owner, WriteItem::new(json!("y")))
        .await
        .unwrap()
        .id;
    let mut rx = a.subscribe();

    let first = a
        .update(&owner, &x.to_string(), UpdateItem::new(json!(1)))
        .await
        .unwrap()
        .seq;
    a.alias(&owner, "feed", &y.to_string()).await.unwrap();
    assert_eq!(next(&mut rx).await.item().map(|e| e.seq), Some(first));
    assert_eq!(next(&mut rx).await, moved("feed", y, first));

    // The reader's connection drops right after it delivered a re-point;
    // another node goes on meanwhile.
    assert!(redis.drop_clients().await >= 2, "the store's connections");
    let b = redis_store(&redis).await;
    b.alias(&owner, "feed", &x.to_string()).await.unwrap();
    let second = b
        .update(&owner, &y.to_string(), UpdateItem::new(json!(2)))
        .await
        .unwrap()
        .seq;
    b.alias(&owner, "feed", &y.to_string()).await.unwrap();
    let third = b
        .update(&owner, &x.to_string(), UpdateItem::new(json!(3)))
        .await
        .unwrap()
        .seq;
    // Resumed from the entry it delivered last: nothing doubled, nothing lost.
    assert_eq!(next(&mut rx).await, moved("feed", x, first));
    assert_eq!(next(&mut rx).await.item().map(|e| e.seq), Some(second));
    assert_eq!(next(&mut rx).await, moved("feed", y, second));
    assert_eq!(next(&mut rx).await.item().map(|e| e.seq), Some(third));
    // A re-point takes no seq.
    assert_eq!((second, third), (first + 1, first + 2));
}
