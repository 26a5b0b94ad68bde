//! Interop across nodes (features `redis` and `interop`): Node's
//! socket.io-client 4.8.4, connected to node A of three effex nodes on one
//! Redis, receives a write made through node B.
//!
//! Needs `node`, `redis-server` and the pinned packages:
//!
//! ```text
//! (cd tests/interop && npm ci)
//! cargo test --features redis,interop --test cluster_interop
//! ```
//!
//! The Node side is `tests/interop/watcher.js` (see `tests/interop.rs`): it
//! takes one JSON command per stdin line and prints one JSON event per
//! stdout line.
#![cfg(all(feature = "redis", feature = "interop"))]

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use cluster::Cluster;
use common::exchange::PASS;
use common::node_watcher::NodeWatcher;
use serde_json::json;
use std::time::Duration;

/// Node's socket.io-client passes and watches on node A; updates made
/// through node B (with keys made on node C) reach it once each, in order.
#[actix_rt::test]
async fn node_client_on_one_node_receives_a_write_made_on_another() {
    let cluster = Cluster::start(3).await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let (id, first) = c.write(json!("first"), Duration::from_secs(600)).await;

    let mut node = NodeWatcher::start(&a.server.ws_url(), PASS, "node-on-a");
    node.connect().await;
    let watched = node
        .watch(
            json!({"event": "update", "id": id, "key": c.reader, "withValue": true}),
            None,
        )
        .await;
    assert_eq!(watched["ok"], true, "{watched}");
    assert!(watched["seq"].as_u64().unwrap() >= first, "{watched}");

    let mut seqs = Vec::new();
    for n in 1..=3 {
        let updated = b.rest.update(&c.writer, &id, json!({ "n": n }), None);
        seqs.push(updated.await.expect("an update through node B").seq);
    }
    for (n, seq) in (1..=3).zip(seqs) {
        let push = node.expect("push").await;
        assert_eq!(push["push"]["seq"], seq, "{push}");
        assert_eq!(push["push"]["id"], id.as_str(), "{push}");
        assert_eq!(push["push"]["value"], json!({ "n": n }), "{push}");
        assert_eq!(push["acked"], true, "{push}");
    }
    node.quit().await;
    assert_eq!(a.server.stats().passes_ok, 1, "Node passed on node A");
}
