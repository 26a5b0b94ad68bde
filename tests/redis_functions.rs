//! The Redis store's operations run as one Redis Function library: loaded
//! once when a store connects (every operation after that is an `FCALL`, no
//! script is sent or evaluated), loaded again when Redis has lost it
//! (`FUNCTION FLUSH`, or a restart without persistence) with the operation
//! that found it missing still answered, and a Redis without functions
//! (older than 7.0; here a Redis 7 with `FUNCTION` renamed away) refused at
//! start with an error naming the version effex needs.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashMap;

use common::redis::RedisServer;
use effex::protocol::rest::KeysRequest;
use effex::store::{KeyKind, RedisStore, Store, StoreError, WriteItem};
use redis::aio::MultiplexedConnection;
use serde_json::json;

const BOSS: &str = "test boss key";

/// `INFO commandstats` as command → calls.
async fn calls(conn: &MultiplexedConnection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn.clone())
        .await
        .expect("INFO commandstats");
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

async fn write_some(store: &RedisStore, writer: &str, count: usize) {
    for i in 0..count {
        store
            .write(writer, WriteItem::new(json!(i)))
            .await
            .expect("a write");
    }
}

async fn writer(store: &RedisStore) -> String {
    store
        .make_keys(BOSS, KeysRequest::new(KeyKind::Writer))
        .await
        .expect("the boss makes a key")
        .keys
        .remove(0)
}

#[tokio::test]
async fn the_library_is_loaded_once_and_every_operation_is_a_function_call() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let store = RedisStore::connect(redis.store_config(BOSS))
        .await
        .expect("connect to the test's redis-server");
    // A second node on the same Redis finds the library there.
    let other = RedisStore::connect(redis.store_config(BOSS))
        .await
        .expect("a second store connects");
    let key = writer(&store).await;
    write_some(&store, &key, 20).await;
    write_some(&other, &key, 20).await;
    let calls = calls(&conn).await;
    assert_eq!(
        calls.get("function|load"),
        Some(&2),
        "each store asks once (the second finds it there): {calls:?}"
    );
    assert!(
        calls.get("fcall").copied().unwrap_or(0) >= 41,
        "the key and 40 writes are function calls: {calls:?}"
    );
    for script in ["eval", "evalsha", "script|load"] {
        assert_eq!(calls.get(script), None, "no script is sent: {calls:?}");
    }
}

#[tokio::test]
async fn a_library_lost_by_redis_is_loaded_again_and_the_operation_answered() {
    let redis = RedisServer::start().await;
    let conn = redis.connection().await;
    let store = RedisStore::connect(redis.store_config(BOSS))
        .await
        .expect("connect to the test's redis-server");
    let key = writer(&store).await;
    write_some(&store, &key, 3).await;
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut conn.clone())
        .await
        .expect("FUNCTION FLUSH");
    // The first operation after the flush finds the library gone, loads it
    // and is answered as if nothing had happened.
    write_some(&store, &key, 3).await;
    let calls = calls(&conn).await;
    // The store's sweeper may find it gone first, and both load it.
    let loads = calls.get("function|load").copied().unwrap_or(0);
    assert!(
        (2..=3).contains(&loads),
        "loaded at start and again after the flush: {calls:?}"
    );
    let libraries: Vec<redis::Value> = redis::cmd("FUNCTION")
        .arg("LIST")
        .query_async(&mut conn.clone())
        .await
        .expect("FUNCTION LIST");
    assert_eq!(libraries.len(), 1, "the library is back: {libraries:?}");
}

#[tokio::test]
async fn a_redis_without_functions_is_refused_at_start_naming_the_version_needed() {
    let redis = RedisServer::start_with(&["--rename-command", "FUNCTION", ""]).await;
    let error = RedisStore::connect(redis.store_config(BOSS))
        .await
        .expect_err("a Redis without FUNCTION is refused");
    let text = error.to_string();
    assert!(
        matches!(error, StoreError::Backend(_)),
        "a Backend error (effex serve exits 1): {error:?}"
    );
    assert!(
        text.contains("Redis 7.0 or later") && text.contains(&redis.url()),
        "names the version needed and the URL: {text}"
    );
}
