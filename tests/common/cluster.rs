//! (Included by the tests/cluster*.rs files with `#[path]`, beside
//! `mod common`; feature `redis`.) Several in-process effex nodes on one
//! `redis-server` of the test's own (`ServerConfig::redis_url`): start them,
//! stop one, start it again on the same address, and reach into Redis itself
//! (read the event stream, drop one node's connections).
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use effex::client::ClientConfigBuilder;
use effex::server::ServerConfig;
use redis::aio::MultiplexedConnection;

use crate::common::exchange::{client_config, Exchange};
use crate::common::redis::RedisServer;

/// The boss key every node shares (required with `redis_url`).
pub const BOSS: &str = "cluster boss key";

/// The config of a node on `redis`, built on `base` (the test's timers and
/// limits).
pub fn node_config(redis: &RedisServer, base: &ServerConfig) -> ServerConfig {
    ServerConfig {
        redis_url: Some(redis.url()),
        boss_key: Some(BOSS.into()),
        ..base.clone()
    }
}

/// A Redis and the effex nodes on it. Each node's [`Exchange`] made its own
/// writer and reader key; keys live in Redis, so any node takes them.
pub struct Cluster {
    /// The test's own `redis-server`.
    pub redis: RedisServer,
    /// The running nodes (`None`: stopped).
    nodes: Vec<Option<Exchange>>,
    /// Where each node listens (kept across a stop, for its restart).
    addrs: Vec<SocketAddr>,
    /// What every node is started with (besides Redis and its address).
    base: ServerConfig,
}

impl Cluster {
    /// A fresh Redis and `n` nodes on it with the test timers of
    /// [`common::server::config`](crate::common::server::config).
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, crate::common::server::config()).await
    }

    /// A fresh Redis and `n` nodes on it, each started with `base`.
    pub async fn start_with(n: usize, base: ServerConfig) -> Self {
        let redis = RedisServer::start().await;
        let mut cluster = Cluster {
            redis,
            nodes: Vec::with_capacity(n),
            addrs: Vec::with_capacity(n),
            base,
        };
        for _ in 0..n {
            cluster.add_node().await;
        }
        cluster
    }

    /// Starts one more node on the same Redis; returns its index.
    pub async fn add_node(&mut self) -> usize {
        let node = Exchange::start(node_config(&self.redis, &self.base)).await;
        self.addrs.push(node.server.addr());
        self.nodes.push(Some(node));
        self.nodes.len() - 1
    }

    /// Node `i` (panics when it is stopped).
    pub fn node(&self, i: usize) -> &Exchange {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is stopped"))
    }

    /// How many nodes there are (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Stops node `i` gracefully (its sessions are told to go).
    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.server.stop().await;
        }
    }

    /// Stops every running node.
    pub async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// Starts node `i` again, on the address it had, on the same Redis.
    pub async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let config = ServerConfig {
            bind: self.addrs[i],
            ..node_config(&self.redis, &self.base)
        };
        self.nodes[i] = Some(Exchange::start(config).await);
    }

    /// Every node's push URL, in node order (stopped ones too).
    pub fn ws_urls(&self) -> Vec<String> {
        self.addrs
            .iter()
            .map(|addr| format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"))
            .collect()
    }

    /// A client config that knows every node, starting with node `first`,
    /// with reconnects that wait little (50 to 200 ms).
    pub fn client_from(&self, first: usize) -> ClientConfigBuilder {
        let mut urls = self.ws_urls();
        urls.rotate_left(first);
        client_config(&urls[0])
            .urls(urls)
            .reconnect(effex::client::Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(200),
                stable_after: Duration::from_secs(10),
            })
    }

    /// A connection of the test's own to the cluster's Redis.
    pub async fn redis_conn(&self) -> MultiplexedConnection {
        redis::Client::open(self.redis.url())
            .expect("the fixture's Redis URL parses")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis-server")
    }

    /// The ids of the clients connected to Redis now (`CLIENT LIST`).
    pub async fn client_ids(&self) -> HashSet<u64> {
        let mut conn = self.redis_conn().await;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await
            .expect("CLIENT LIST");
        let own: u64 = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn)
            .await
            .expect("CLIENT ID");
        list.lines()
            .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .filter(|id| *id != own)
            .collect()
    }

    /// Drops the Redis connections with these ids (`CLIENT KILL ID …`), as
    /// a network blip between one node and Redis would; returns how many
    /// were dropped.
    pub async fn kill_clients(&self, ids: &HashSet<u64>) -> usize {
        let mut conn = self.redis_conn().await;
        let mut killed = 0;
        for id in ids {
            let n: usize = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut conn)
                .await
                .expect("CLIENT KILL ID");
            killed += n;
        }
        killed
    }

    /// The `expire` events in the shared event stream (`effex:events`), as
    /// (seq, item id), in stream order.
    pub async fn expire_events_in_stream(&self) -> Vec<(u64, String)> {
        use redis::streams::StreamRangeReply;
        let mut conn = self.redis_conn().await;
        let mut found = Vec::new();
        let mut from = "-".to_owned();
        loop {
            let page: StreamRangeReply = redis::cmd("XRANGE")
                .arg("effex:events")
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await
                .expect("XRANGE effex:events");
            let Some(last) = page.ids.last() else {
                return found;
            };
            from = format!("({}", last.id);
            for entry in &page.ids {
                let text = |name: &str| -> Option<String> { entry.get(name) };
                if text("event").as_deref() == Some("expire") {
                    let seq = text("seq").and_then(|s| s.parse().ok()).expect("a seq");
                    found.push((seq, text("id").expect("an id")));
                }
            }
        }
    }
}
