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

use crate::common::exchange::{client_config, Exchange, BOUND};
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

    /// A connection of the test's own to the cluster's Redis; a reply may
    /// take up to the test bound (a busy machine reads large pages slowly).
    pub async fn redis_conn(&self) -> MultiplexedConnection {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(BOUND))
            .set_response_timeout(Some(BOUND));
        redis::Client::open(self.redis.url())
            .expect("the fixture's Redis URL parses")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect to the test's redis-server")
    }

    /// Sets Redis's `appendfsync` to `everysec` (the fixture starts it with
    /// `always`): for tests that never kill Redis and need its speed, not
    /// its durability (each write then skips its own fsync).
    pub async fn fsync_every_second(&self) {
        let mut conn = self.redis_conn().await;
        let () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg("everysec")
            .query_async(&mut conn)
            .await
            .expect("CONFIG SET appendfsync everysec");
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

    /// Counts the `expire` events in the shared event stream
    /// (`effex:events`) inside Redis (a script: 100,000 entries are read
    /// there rather than shipped to the test), and how many of `ids` have
    /// one.
    pub async fn expires_in_stream(&self, ids: &[String]) -> ExpireCounts {
        let script = redis::Script::new(EXPIRE_COUNTS);
        let mut invocation = script.key("effex:events");
        for id in ids {
            invocation.arg(id);
        }
        let mut conn = self.redis_conn().await;
        let (total, distinct, of_given, repeated): (usize, usize, usize, Vec<String>) = invocation
            .invoke_async(&mut conn)
            .await
            .expect("count the expire events in effex:events");
        ExpireCounts {
            total,
            distinct,
            of_given,
            repeated,
        }
    }
}

/// What [`Cluster::expires_in_stream`] found.
#[derive(Debug)]
pub struct ExpireCounts {
    /// `expire` events in the stream.
    pub total: usize,
    /// Distinct items among them.
    pub distinct: usize,
    /// How many of the given ids expired.
    pub of_given: usize,
    /// Up to 5 items that expired more than once.
    pub repeated: Vec<String>,
}

/// KEYS[1] the stream, ARGV item ids → {expire events, distinct items, how
/// many of ARGV are among them, up to 5 items seen twice}.
const EXPIRE_COUNTS: &str = r#"
local total, distinct, repeated, seen = 0, 0, {}, {}
local from = '-'
while true do
  local page = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 10000)
  if #page == 0 then break end
  for _, entry in ipairs(page) do
    -- One event (`id`), or a sweep's expiries (`ids`, space-separated).
    local fields, event, ids = entry[2], nil, nil
    for i = 1, #fields, 2 do
      if fields[i] == 'event' then event = fields[i + 1] end
      if fields[i] == 'id' or fields[i] == 'ids' then ids = fields[i + 1] end
    end
    if event == 'expire' then
      for id in string.gmatch(ids, '%S+') do
        total = total + 1
        if seen[id] then
          if #repeated < 5 then table.insert(repeated, id) end
        else
          seen[id] = true
          distinct = distinct + 1
        end
      end
    end
  end
  from = '(' .. page[#page][1]
end
local of_given = 0
for _, id in ipairs(ARGV) do
  if seen[id] then of_given = of_given + 1 end
end
return {total, distinct, of_given, repeated}
"#;
