//! Several in-process effex nodes on one Redis (`ServerConfig::redis_url`),
//! each on a `redis-server` of the test's own: a write on one node reaches a
//! subscriber on another, keys and aliases work across nodes, REST answers
//! 503 while Redis is down, `/info` says `redis`, and `effex serve --redis`
//! fails clearly when Redis is unreachable.
#![cfg(feature = "redis")]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::child::wait_exit;
use common::exchange::{subscriber, Exchange, BOUND};
use common::poll::poll_until;
use common::redis::RedisServer;
use effex::client::{KeyType, NewItem, Subscribe};
use effex::protocol::messages::EventKind;
use effex::server::ServerConfig;
use serde_json::json;

const BOSS: &str = "cluster boss key";
const EFFEX: &str = env!("CARGO_BIN_EXE_effex");

fn node_config(redis: &RedisServer) -> ServerConfig {
    ServerConfig {
        redis_url: Some(redis.url()),
        boss_key: Some(BOSS.into()),
        ..common::server::config()
    }
}

#[actix_rt::test]
async fn a_write_on_one_node_reaches_a_subscriber_on_another_once() {
    let redis = RedisServer::start().await;
    let a = Exchange::start(node_config(&redis)).await;
    let b = Exchange::start(node_config(&redis)).await;
    assert_eq!(a.rest.info().await.unwrap().store, "redis");
    // Keys made on A work on B; an alias made on B resolves on A.
    let item = NewItem::new(json!(0)).reader(&a.reader).alias("shared");
    let written = b.rest.write(&a.writer, &item).await.unwrap();
    assert_eq!(
        a.rest.read(&a.reader, "shared").await.unwrap().id,
        written.id
    );

    let (sub, mut got) = subscriber(a.connect());
    sub.send(Subscribe::new(EventKind::Update, "shared", &a.reader))
        .await
        .unwrap()
        .unwrap();
    let mut seqs = Vec::new();
    for n in 1..=10 {
        seqs.push(
            b.rest
                .update(&a.writer, &written.id, json!(n), None)
                .await
                .unwrap()
                .seq,
        );
    }
    let pushed: Vec<u64> = got.pushes(10).await.iter().map(|p| p.seq).collect();
    assert_eq!(pushed, seqs, "every update once, in order");
    got.no_more_pushes(Duration::from_millis(300)).await;
}

#[actix_rt::test]
async fn rest_answers_503_while_redis_is_down_then_recovers() {
    let mut redis = RedisServer::start().await;
    let node = Exchange::start(node_config(&redis)).await;
    let (id, _) = node.write(json!(1), Duration::from_secs(60)).await;
    redis.kill();
    let down = node.rest.read(&node.reader, &id).await.unwrap_err();
    assert_eq!(down.code(), Some(503), "{down}");
    assert!(down.to_string().contains(&redis.url()), "{down}");
    redis.restart().await;
    poll_until("the node serves again", BOUND, || async {
        node.rest.read(&node.reader, &id).await.ok()
    })
    .await;
    let _ = Exchange::key(&node.rest, &node.boss, KeyType::Reader).await;
}

#[actix_rt::test]
async fn serve_with_unreachable_redis_exits_1_naming_the_url() {
    let url = {
        let redis = RedisServer::start().await;
        redis.url()
    }; // stopped: nothing listens there now
    let mut child = Command::new(EFFEX)
        .args(["serve", "--port", "0", "--redis", &url, "--boss-key", BOSS])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run effex serve");
    let stderr = child.stderr.take().expect("piped stderr");
    let status = wait_exit(&mut child, BOUND)
        .await
        .expect("effex serve exits when Redis is unreachable");
    assert_eq!(status.code(), Some(1));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut { stderr }, &mut text).unwrap();
    assert!(text.contains(&url) && text.contains("Redis"), "{text}");

    let mut child = Command::new(EFFEX)
        .args(["serve", "--port", "0", "--redis", &url])
        .env_remove("EFFEX_BOSS_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run effex serve");
    let status = wait_exit(&mut child, BOUND).await.expect("exits at once");
    assert_eq!(status.code(), Some(1), "--redis needs --boss-key");
}
