//! Faults in a cluster of three in-process effex nodes on one Redis, with
//! subscribers (the real client) on the nodes: a node stopped while 10,000
//! updates flow, Redis killed (`-9`) and restarted from its AOF mid-stream,
//! and one node's Redis connections dropped (`CLIENT KILL`). In each,
//! every handler sees every event once, in seq order.
#![cfg(feature = "redis")]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use cluster::Cluster;
use common::exchange::{subscriber, Collected, BOUND};
use common::poll::{poll_until, POLL_EVERY};
use effex::client::{ConnectionActor, Subscribe, SubscriberEvent};
use effex::protocol::messages::EventKind;
use effex::server::ServerConfig;
use serde_json::json;

/// How far the writers may run ahead of the subscriber: well inside the
/// 1,000 events an item's log keeps, so a replay after a failover always
/// finds every missed event (a longer lead would be a `gap`, which is
/// another test's matter).
const LEAD: u64 = 300;

/// Reads pushes until `want` have come, each within the bound; panics with
/// where it stopped.
async fn collect(got: &mut Collected, seen: &mut Vec<u64>, want: usize, what: &str) {
    while seen.len() < want {
        match tokio::time::timeout(BOUND, got.pushes.recv()).await {
            Ok(Some(push)) => seen.push(push.seq),
            _ => panic!(
                "{what}: {} of {want} pushes within the bound, the last {:?}",
                seen.len(),
                seen.last()
            ),
        }
    }
}

/// Asserts `seen` is `expected`, naming the first difference.
fn assert_same(seen: &[u64], expected: &[u64], what: &str) {
    if seen != expected {
        let first = seen
            .iter()
            .zip(expected)
            .position(|(s, e)| s != e)
            .unwrap_or(seen.len().min(expected.len()));
        panic!(
            "{what}: every event once, in seq order: first difference at {first} of {} seen, {} \
             expected (seen {:?}, expected {:?})",
            seen.len(),
            expected.len(),
            &seen[first..(first + 5).min(seen.len())],
            &expected[first..(first + 5).min(expected.len())],
        );
    }
}

/// Node A stops while 10,000 updates flow through the REST APIs of nodes B
/// and C: the subscriber (on A, knowing all three) moves on to another node
/// and its handler sees every event exactly once, in seq order.
#[actix_rt::test]
async fn a_subscriber_whose_node_stops_gets_every_event_once_from_another_node() {
    const UPDATES: usize = 10_000;
    const WRITERS: usize = 8;
    let mut cluster = Cluster::start_with(
        3,
        ServerConfig {
            // Redis is not at fault here: one test thread runs the three
            // nodes' Redis clients, and on a loaded machine a reply can wait
            // its turn for seconds.
            redis_timeout: BOUND * 3,
            ..common::server::config()
        },
    )
    .await;
    cluster.fsync_every_second().await; // Redis is not killed here
    let (writer, reader) = (
        cluster.node(0).writer.clone(),
        cluster.node(0).reader.clone(),
    );
    let (id, _) = cluster
        .node(0)
        .write(json!(0), Duration::from_secs(600))
        .await;

    let config = cluster.client_from(0).build().unwrap();
    let (sub, mut got) = subscriber(ConnectionActor::new(config).start());
    sub.send(Subscribe::new(EventKind::Update, &id, &reader))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cluster.node(0).server.stats().passes_ok, 1);

    // Writers through B and C, in parallel, never more than LEAD ahead of
    // what the subscriber has seen.
    let seen_count = Rc::new(Cell::new(0u64));
    let written = Rc::new(Cell::new(0u64));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let rest = cluster.node(1 + w % 2).rest.clone();
        let (writer, id) = (writer.clone(), id.clone());
        let (seen_count, written) = (seen_count.clone(), written.clone());
        writers.push(actix_rt::spawn(async move {
            let mut seqs = Vec::with_capacity(UPDATES / WRITERS);
            for n in 0..UPDATES / WRITERS {
                while written.get() >= seen_count.get() + LEAD {
                    tokio::time::sleep(POLL_EVERY).await;
                }
                written.set(written.get() + 1);
                let updated = rest.update(&writer, &id, json!(n), None).await;
                seqs.push(updated.expect("an update through node B or C").seq);
            }
            seqs
        }));
    }

    let mut seen: Vec<u64> = Vec::with_capacity(UPDATES);
    while seen.len() < UPDATES / 5 {
        let want = seen.len() + 1;
        collect(&mut got, &mut seen, want, "before the stop").await;
        seen_count.set(seen.len() as u64);
    }
    // The writers stall at LEAD while A stops; the collector buffers.
    cluster.stop(0).await;
    got.event(|e| matches!(e, SubscriberEvent::Reconnected(_)))
        .await;
    let moved = cluster.node(1).server.stats().passes_ok + cluster.node(2).server.stats().passes_ok;
    assert_eq!(moved, 1, "the subscriber moved to B or C");

    while seen.len() < UPDATES {
        let want = seen.len() + 1;
        collect(&mut got, &mut seen, want, "after the stop").await;
        seen_count.set(seen.len() as u64);
    }
    let mut expected = Vec::with_capacity(UPDATES);
    for writer in writers {
        let seqs = tokio::time::timeout(BOUND, writer)
            .await
            .expect("the writers finish within the bound")
            .expect("a writer task");
        expected.extend(seqs);
    }
    expected.sort_unstable();
    assert_same(&seen, &expected, "node A stopped");
    got.no_more_pushes(Duration::from_millis(300)).await;
}

/// What one subscriber of the Redis-kill test watches from, and saw.
struct Watcher {
    after: u64,
    got: Collected,
    seen: Vec<u64>,
    _sub: Addr<effex::client::SubscriberActor>,
}

/// Redis is killed with SIGKILL while updates (and new items) flow through
/// all three nodes, and restarted from its AOF (`appendfsync always`): REST
/// answers 503 on every node meanwhile; afterwards every item and update
/// acknowledged before the kill is there, and each subscriber (one per node,
/// each with its own `after`) gets every event after its `after` once, in
/// order, across the outage.
#[actix_rt::test]
async fn redis_killed_and_restarted_mid_stream_loses_nothing_acknowledged() {
    const BEFORE_KILL: usize = 150;
    const AFTER_RESTART: usize = 150;
    let mut cluster = Cluster::start(3).await;
    let (writer, reader) = (
        cluster.node(0).writer.clone(),
        cluster.node(0).reader.clone(),
    );
    let (id, _) = cluster
        .node(0)
        .write(json!(0), Duration::from_secs(600))
        .await;
    let mut history = Vec::new();
    for n in 1..=30 {
        let updated = cluster
            .node(n % 3)
            .rest
            .update(&writer, &id, json!(n), None);
        history.push(updated.await.unwrap().seq);
    }
    // Subscribers on A, B and C, from different points of the history.
    let mut watchers = Vec::new();
    for (node, after) in [(0, history[0]), (1, history[14]), (2, history[29])] {
        let (sub, got) = subscriber(cluster.node(node).connect());
        sub.send(Subscribe::new(EventKind::Update, &id, &reader).after(after))
            .await
            .unwrap()
            .unwrap();
        watchers.push(Watcher {
            after,
            got,
            seen: Vec::new(),
            _sub: sub,
        });
    }

    // One writer through every node in turn: an update, and every tenth
    // time a new item; what was acknowledged is recorded, failures counted.
    let acked_updates = Rc::new(RefCell::new(history.clone()));
    let acked_items = Rc::new(RefCell::new(Vec::<String>::new()));
    let failures = Rc::new(Cell::new(0usize));
    let stop = Rc::new(Cell::new(false));
    let rests: Vec<_> = (0..3).map(|i| cluster.node(i).rest.clone()).collect();
    let writing = {
        let (acked_updates, acked_items) = (acked_updates.clone(), acked_items.clone());
        let (failures, stop) = (failures.clone(), stop.clone());
        let (writer, reader, id) = (writer.clone(), reader.clone(), id.clone());
        actix_rt::spawn(async move {
            let mut n = 0usize;
            while !stop.get() {
                n += 1;
                let rest = &rests[n % 3];
                let ok = if n % 10 == 0 {
                    let item = effex::protocol::rest::NewItem::new(json!(n))
                        .lifetime(Duration::from_secs(600))
                        .reader(&reader);
                    match rest.write(&writer, &item).await {
                        Ok(written) => {
                            acked_items.borrow_mut().push(written.id);
                            true
                        }
                        Err(_) => false,
                    }
                } else {
                    match rest.update(&writer, &id, json!(n), None).await {
                        Ok(updated) => {
                            acked_updates.borrow_mut().push(updated.seq);
                            true
                        }
                        Err(_) => false,
                    }
                };
                if !ok {
                    failures.set(failures.get() + 1);
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        })
    };

    let acked = || acked_updates.borrow().len();
    poll_until("updates before the kill", BOUND, || {
        let done = acked() >= history.len() + BEFORE_KILL;
        async move { done.then_some(()) }
    })
    .await;
    cluster.redis.kill();
    let acked_before_kill = acked_updates.borrow().clone();
    let items_before_kill = acked_items.borrow().clone();
    let url = cluster.redis.url();
    for i in 0..cluster.len() {
        let node = cluster.node(i);
        let down = node.rest.read(&reader, &id).await.unwrap_err();
        assert_eq!(
            down.code(),
            Some(503),
            "node {i} while Redis is down: {down}"
        );
        assert!(down.to_string().contains(&url), "{down}");
    }
    // The writer keeps writing through the outage: wait (bounded) until one
    // of its writes has failed, so the restart comes mid-stream for it too
    // (a write in flight at the kill may take up to the Redis timeout).
    poll_until("the writer meets the outage", BOUND, || {
        let met = failures.get() > 0;
        async move { met.then_some(()) }
    })
    .await;
    cluster.redis.restart().await;
    let resumed_at = acked();
    poll_until("updates after the restart", BOUND * 2, || {
        let done = acked() >= resumed_at + AFTER_RESTART;
        async move { done.then_some(()) }
    })
    .await;
    stop.set(true);
    tokio::time::timeout(BOUND, writing)
        .await
        .expect("the writer stops within the bound")
        .unwrap();

    // Everything acknowledged before the kill is there.
    let node = cluster.node(1);
    for item in &items_before_kill {
        node.rest
            .read(&reader, item)
            .await
            .unwrap_or_else(|e| panic!("item {item} acknowledged before the kill: {e}"));
    }
    let log = node
        .rest
        .events(&reader, &id, 0, Some(EventKind::Update))
        .await
        .unwrap();
    assert!(!log.gap, "the item's log holds every update");
    let logged: Vec<u64> = log.events.iter().map(|e| e.seq).collect();
    let acked_all = acked_updates.borrow().clone();
    for seq in &acked_all {
        assert!(
            logged.binary_search(seq).is_ok(),
            "update {seq} was acknowledged (before the kill: {}) but is not logged",
            acked_before_kill.contains(seq)
        );
    }

    // Every subscriber gets every logged event after its `after`, once.
    for (i, watcher) in watchers.iter_mut().enumerate() {
        let expected: Vec<u64> = logged
            .iter()
            .copied()
            .filter(|s| *s > watcher.after)
            .collect();
        let what = format!("subscriber on node {i} after {}", watcher.after);
        collect(&mut watcher.got, &mut watcher.seen, expected.len(), &what).await;
        assert_same(&watcher.seen, &expected, &what);
    }
    for watcher in &mut watchers {
        watcher.got.no_more_pushes(Duration::from_millis(200)).await;
    }
}

/// Node A's Redis connections are dropped (`CLIENT KILL ID`; the other
/// nodes keep theirs) three times while updates flow through node B, each
/// kill followed at once by more updates, written while A's event reader is
/// away: it resumes from the last seq it applied, so A's subscriber still
/// gets every event once, in order.
#[actix_rt::test]
async fn a_node_whose_redis_connections_drop_catches_up_from_the_log() {
    const UPDATES: usize = 900;
    const KILL_EVERY: usize = 225;
    // Node A starts last, so its connections are the ones not there before.
    let mut cluster = Cluster::start(2).await;
    cluster.fsync_every_second().await; // Redis is not killed here
    let others = cluster.client_ids().await;
    let a = cluster.add_node().await;
    let a = cluster.node(a);
    let (writer, reader) = (a.writer.clone(), a.reader.clone());
    let (id, _) = a.write(json!(0), Duration::from_secs(600)).await;
    let (sub, mut got) = subscriber(a.connect());
    sub.send(Subscribe::new(EventKind::Update, &id, &reader))
        .await
        .unwrap()
        .unwrap();

    let b = &cluster.node(0).rest;
    let mut expected = Vec::with_capacity(UPDATES);
    let mut kills = 0;
    for n in 1..=UPDATES {
        if n % KILL_EVERY == 0 {
            // A's event reader is back from the previous kill (it reconnects
            // after a short backoff).
            let a_ids = poll_until("node A connected to Redis", BOUND, || async {
                let ids = cluster.client_ids().await;
                let a_ids: HashSet<u64> = ids.difference(&others).copied().collect();
                (!a_ids.is_empty()).then_some(a_ids)
            })
            .await;
            assert!(
                cluster.kill_clients(&a_ids).await > 0,
                "kill {kills} dropped A's connections"
            );
            kills += 1;
        }
        let updated = b.update(&writer, &id, json!(n), None).await;
        expected.push(updated.expect("an update through node B").seq);
    }
    assert!(
        others.is_subset(&cluster.client_ids().await),
        "the other nodes kept their connections"
    );
    let mut seen = Vec::with_capacity(UPDATES);
    collect(&mut got, &mut seen, UPDATES, "after the kills").await;
    assert_same(&seen, &expected, "node A's connections dropped");
    got.no_more_pushes(Duration::from_millis(300)).await;
}
