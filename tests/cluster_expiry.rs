//! Expiry across three in-process effex nodes on one Redis: 100,000 items
//! with lifetimes spread over 10 s, a sample of them watched for `expire`
//! through each node. Every node sweeps the shared deadline set; each item
//! expires exactly once: one `expire` in the shared event log and in the
//! item's own log, and one push per watch.
#![cfg(feature = "redis")]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cluster::Cluster;
use common::exchange::{subscriber, BOUND};
use common::poll::poll_until;
use effex::client::Subscribe;
use effex::protocol::messages::EventKind;
use effex::server::ServerConfig;
use effex::store::WriteItem;
use futures_util::StreamExt;
use serde_json::json;

const ITEMS: usize = 100_000;
/// Every how many items one is watched (1,000 watches on each node).
const SAMPLE_EVERY: usize = 100;
/// How many writes are in flight at once.
const IN_FLIGHT: usize = 32;
/// How many watch calls one subscriber has in flight at once (the server
/// answers 429 above 64 per session).
const WATCHES_IN_FLIGHT: usize = 32;

/// Item `i`'s lifetime: 5 s plus a share of 10 s, the items' order
/// scrambled (7,919 is prime, so `i ↦ i·7919 mod ITEMS` is a permutation).
/// The 5 s leave time to make the watches on a loaded machine: a watch
/// (without `after`) made after its item's deadline is 404, the item gone.
fn lifetime(i: usize) -> Duration {
    let share = (i * 7919) % ITEMS;
    Duration::from_secs(5) + Duration::from_millis((share * 10_000 / ITEMS) as u64)
}

/// 100,000 items, a third written through each node's store (the writes are
/// only the setup: what is under test, the sweepers and the pushes, runs as
/// in production), their lifetimes spread over 10 s. 1,000 of them, written
/// first, are watched for `expire` on each of the three nodes (with `after`,
/// so a watch made late still gets the push). Each item's `expire` is in the
/// shared log exactly once, the watched ones once in their own logs, and
/// each watch gets its push once.
#[actix_rt::test]
async fn each_of_100_000_items_expires_once_logged_once_and_pushed_once_per_watch() {
    let cluster = Cluster::start_with(
        3,
        ServerConfig {
            // The stream keeps every one of the 100,000 expire events.
            redis_stream_max_len: 2 * ITEMS,
            // One test thread runs the three nodes' Redis clients, readers
            // and hubs: on a loaded machine a reply can wait its turn for
            // seconds, which is not what this test is about.
            redis_timeout: BOUND * 3,
            ..common::server::config()
        },
    )
    .await;
    cluster.fsync_every_second().await; // Redis is not killed here
    let nodes: Vec<_> = (0..cluster.len()).map(|i| cluster.node(i)).collect();
    // Two writer keys: each stays under its quota of 100,000 items.
    let writers = [&nodes[0].writer, &nodes[1].writer];
    let reader = nodes[0].reader.clone();
    let write = |i: usize| {
        let store = nodes[i % nodes.len()].server.store().clone();
        let writer = writers[i % writers.len()].clone();
        let mut item = WriteItem::new(json!(i));
        item.lifetime = Some(lifetime(i));
        item.readers = vec![reader.clone()];
        async move {
            let written = store.write(&writer, item).await;
            let written = written.unwrap_or_else(|e| panic!("write item {i}: {e}"));
            (written.id.to_string(), written.seq)
        }
    };

    let sample: Vec<(String, u64)> = futures_util::stream::iter((0..ITEMS).step_by(SAMPLE_EVERY))
        .map(write)
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let mut watchers = Vec::new();
    for node in &nodes {
        let (sub, got) = subscriber(node.connect());
        // Below the server's bound on a session's unanswered watch calls.
        let answers: Vec<_> = futures_util::stream::iter(&sample)
            .map(|(id, seq)| sub.send(Subscribe::new(EventKind::Expire, id, &reader).after(*seq)))
            .buffered(WATCHES_IN_FLIGHT)
            .collect()
            .await;
        for (answer, (id, _)) in answers.into_iter().zip(&sample) {
            answer
                .unwrap()
                .unwrap_or_else(|e| panic!("watch {id} on {}: {e:?}", node.server.http_url()));
        }
        watchers.push((sub, got));
    }
    let rest: Vec<(String, u64)> =
        futures_util::stream::iter((0..ITEMS).filter(|i| i % SAMPLE_EVERY != 0))
            .map(write)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
    let all: HashSet<&String> = sample.iter().chain(&rest).map(|(id, _)| id).collect();
    assert_eq!(all.len(), ITEMS, "100,000 distinct items");

    // Every watch gets its push once.
    let watched: HashSet<&String> = sample.iter().map(|(id, _)| id).collect();
    for (i, (_, got)) in watchers.iter_mut().enumerate() {
        let mut pushed: HashMap<String, usize> = HashMap::new();
        let within = BOUND * 3; // the last item expires ~15 s after its write
        for n in 0..sample.len() {
            let push = tokio::time::timeout(within, got.pushes.recv())
                .await
                .unwrap_or_else(|_| panic!("node {i}: {n} of {} expire pushes", sample.len()))
                .expect("collector alive");
            assert_eq!(push.event, EventKind::Expire, "{push:?}");
            *pushed.entry(push.id).or_default() += 1;
        }
        let twice: Vec<_> = pushed.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "node {i}: pushed more than once: {twice:?}"
        );
        let ids: HashSet<&String> = pushed.keys().collect();
        assert_eq!(ids, watched, "node {i}: one push per watched item");
    }

    // Every item's expire is in the shared log exactly once.
    let conn = cluster.redis_conn().await;
    // Only expiries take a seq here (writes do not), and each takes its
    // stream entry in the same atomic step.
    poll_until("100,000 expire events in the stream", BOUND * 3, || {
        let mut conn = conn.clone();
        async move {
            let seq: Option<usize> = redis::cmd("GET")
                .arg("effex:seq")
                .query_async(&mut conn)
                .await
                .ok()?;
            (seq? >= ITEMS).then_some(())
        }
    })
    .await;
    drop(conn);
    let sample_ids: Vec<String> = sample.iter().map(|(id, _)| id.clone()).collect();
    let counts = cluster.expires_in_stream(&sample_ids).await;
    assert!(
        counts.repeated.is_empty(),
        "expired more than once: {counts:?}"
    );
    assert_eq!(
        (counts.total, counts.distinct, counts.of_given),
        (ITEMS, ITEMS, sample.len()),
        "one expire per item in the shared log (only these items are in this Redis)"
    );
    // ... and in the item's own log (pulled over REST), for a part of the sample.
    for (id, _) in sample.iter().step_by(20) {
        let page = nodes[2].rest.events(&reader, id, 0, None).await.unwrap();
        let expires = page
            .events
            .iter()
            .filter(|e| e.event == EventKind::Expire)
            .count();
        assert_eq!(expires, 1, "item {id}'s log: {:?}", page.events);
    }
    for (_, got) in &mut watchers {
        got.no_more_pushes(Duration::from_millis(200)).await;
    }
}
