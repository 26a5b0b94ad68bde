//! Three in-process effex nodes on one Redis (`ServerConfig::redis_url`),
//! each test on a `redis-server` of its own: a write on one node reaches
//! subscribers on the others once, keys and aliases made on one node work on
//! the others, REST answers 503 while Redis is down, every node restarted on
//! the same Redis keeps items, keys, aliases and seq, and a node (or
//! `effex serve --redis`) whose Redis is unreachable at start fails naming it.
//! The fault tests are in `cluster_faults.rs`, expiry in `cluster_expiry.rs`.
#![cfg(feature = "redis")]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{Cluster, BOSS};
use common::child::wait_exit;
use common::exchange::{subscriber, Exchange, BOUND};
use common::poll::poll_until;
use common::redis::RedisServer;
use effex::client::Subscribe;
use effex::protocol::messages::EventKind;
use effex::protocol::rest::{KeyKind, NewItem};
use effex::server::{Server, ServerConfig, ServerError};
use serde_json::json;

const EFFEX: &str = env!("CARGO_BIN_EXE_effex");

/// Writer key of node C, reader key of node A, item written on node B with
/// an alias made there, re-pointed on C: every node resolves it the same, and
/// the updates made through B and C reach subscribers on A and C once each,
/// in order.
#[actix_rt::test]
async fn a_write_on_one_node_reaches_subscribers_on_the_others_once() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    assert_eq!(a.rest.info().await.unwrap().store, "redis");

    let item = NewItem::new(json!(0)).reader(&a.reader).alias("shared");
    let first = b.rest.write(&c.writer, &item).await.unwrap();
    for node in [a, b, c] {
        assert_eq!(
            node.rest.read(&a.reader, "shared").await.unwrap().id,
            first.id
        );
    }
    let second = c
        .rest
        .write(&c.writer, &NewItem::new(json!(0)).reader(&a.reader))
        .await
        .unwrap();
    c.rest.alias(&c.writer, "shared", &second.id).await.unwrap();
    for node in [a, b, c] {
        assert_eq!(
            node.rest.read(&a.reader, "shared").await.unwrap().id,
            second.id,
            "the alias re-pointed on C resolves anew on {}",
            node.server.http_url()
        );
    }

    let (on_a, mut got_a) = subscriber(a.connect());
    let (on_c, mut got_c) = subscriber(c.connect());
    for sub in [&on_a, &on_c] {
        sub.send(Subscribe::new(EventKind::Update, "shared", &a.reader))
            .await
            .unwrap()
            .unwrap();
    }
    let mut seqs = Vec::new();
    for n in 1..=10 {
        let through = if n % 2 == 0 { b } else { c };
        let updated = through.rest.update(&c.writer, "shared", json!(n), None);
        seqs.push(updated.await.unwrap().seq);
    }
    for got in [&mut got_a, &mut got_c] {
        let pushed: Vec<u64> = got.pushes(10).await.iter().map(|p| p.seq).collect();
        assert_eq!(pushed, seqs, "every update once, in order");
        assert!(got.pushes.try_recv().is_err(), "no more pushes yet");
    }
    got_a.no_more_pushes(Duration::from_millis(300)).await;
    got_c.no_more_pushes(Duration::from_millis(100)).await;
}

#[actix_rt::test]
async fn rest_answers_503_on_every_node_while_redis_is_down_then_recovers() {
    let mut cluster = Cluster::start(3).await;
    let (id, _) = cluster
        .node(0)
        .write(json!(1), Duration::from_secs(60))
        .await;
    cluster.redis.kill();
    let url = cluster.redis.url();
    for i in 0..cluster.len() {
        let node = cluster.node(i);
        let down = node.rest.read(&node.reader, &id).await.unwrap_err();
        assert_eq!(down.code(), Some(503), "{down}");
        assert!(down.to_string().contains(&url), "{down}");
        // The readiness probe says so too, so a load balancer routes away.
        let (status, body) = ready(node).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("store does not answer"), "{body}");
    }
    cluster.redis.restart().await;
    for i in 0..cluster.len() {
        let node = cluster.node(i);
        poll_until("the node serves again", BOUND, || async {
            node.rest.read(&cluster.node(0).reader, &id).await.ok()
        })
        .await;
        let _ = Exchange::key(&node.rest, &node.boss, KeyKind::Reader).await;
        assert_eq!(ready(node).await.0, 200);
    }
}

/// `GET /ready` of a node: the status and the body.
async fn ready(node: &Exchange) -> (u16, String) {
    let url = format!("{}/ready", node.server.http_url());
    let mut response = awc::Client::default()
        .get(&url)
        .timeout(BOUND)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = response.body().await.expect("a body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Every node stops and three new ones start on the same Redis: the items,
/// keys and aliases made before are all there, and the seq continues above
/// the old latest (a watch with `after` replays what came before the
/// restart).
#[actix_rt::test]
async fn all_nodes_restarted_on_the_same_redis_keep_items_keys_aliases_and_seq() {
    let mut cluster = Cluster::start(3).await;
    let (writer, reader) = (
        cluster.node(1).writer.clone(),
        cluster.node(2).reader.clone(),
    );
    let mut items = Vec::new();
    for i in 0..3 {
        let item = NewItem::new(json!({ "made on": i }))
            .lifetime(Duration::from_secs(600))
            .reader(&reader)
            .alias(format!("alias-{i}"));
        items.push(cluster.node(i).rest.write(&writer, &item).await.unwrap().id);
    }
    let updated = cluster
        .node(0)
        .rest
        .update(&writer, &items[0], json!("updated"), None);
    let old_latest = updated.await.unwrap().seq;

    cluster.stop_all().await;
    for i in 0..cluster.len() {
        cluster.restart(i).await;
    }

    for (i, item) in items.iter().enumerate() {
        let node = cluster.node((i + 1) % cluster.len());
        let read = node
            .rest
            .read(&reader, &format!("alias-{i}"))
            .await
            .unwrap();
        assert_eq!(&read.id, item, "alias-{i} survives the restart");
        let expected = if i == 0 {
            json!("updated")
        } else {
            json!({ "made on": i })
        };
        assert_eq!(read.value, expected);
        assert!(
            read.seq >= old_latest,
            "seq {} went back below {old_latest}",
            read.seq
        );
    }
    // The old keys still write and read; the seq goes on above the old latest.
    let node = cluster.node(2);
    let (sub, mut got) = subscriber(node.connect());
    sub.send(Subscribe::new(EventKind::Update, &items[0], &reader).after(old_latest - 1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.push().await.seq,
        old_latest,
        "the event before the restart replays"
    );
    let next = node.rest.update(&writer, "alias-0", json!("again"), None);
    let next = next.await.unwrap().seq;
    assert!(
        next > old_latest,
        "seq {next} reused after the restart (old latest {old_latest})"
    );
    assert_eq!(got.push().await.seq, next);
    let fresh = NewItem::new(json!(1)).reader(&reader);
    let written = node.rest.write(&writer, &fresh).await.unwrap();
    assert_eq!(written.seq, next, "a write reports the store's latest seq");
    got.no_more_pushes(Duration::from_millis(300)).await;
}

/// A node whose Redis cannot be reached does not start: `Server::start`
/// fails with the store's 503 naming the URL.
#[actix_rt::test]
async fn a_node_with_unreachable_redis_fails_to_start_naming_the_url() {
    let url = {
        let redis = RedisServer::start().await;
        redis.url()
    }; // stopped: nothing listens there now
    common::logs::init();
    let config = ServerConfig {
        redis_url: Some(url.clone()),
        boss_key: Some(BOSS.into()),
        ..common::server::config()
    };
    let error = Server::start(config)
        .await
        .expect_err("Redis is unreachable");
    let ServerError::Store(store) = &error else {
        panic!("a store error, not {error:?}");
    };
    assert_eq!(store.code(), 503, "{error}");
    let text = error.to_string();
    assert!(text.contains(&url) && text.contains("Redis"), "{text}");
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
