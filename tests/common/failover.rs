//! (Included by tests/failover.rs with `#[path]`, beside `mod common`.)
//! Several nodes of one exchange without Redis: in-process servers sharing
//! one `MemoryStore` (each server's hub follows the same store), plus ports
//! where no node listens yet, for the failover tests.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use effex::client::{Backoff, ClientConfigBuilder};
use effex::store::{MemoryStore, MemoryStoreConfig, Store};

use crate::common::exchange::{client_config, Exchange};

/// The boss key of the shared store.
pub const BOSS: &str = "failover boss key";

/// A store that several nodes share; its log keeps `max_events_per_item`
/// events per item, so a replay after a failover finds every missed event.
pub fn shared_store(max_events_per_item: usize) -> Arc<dyn Store> {
    Arc::new(
        MemoryStore::new(MemoryStoreConfig {
            boss_key: BOSS.to_owned(),
            max_events_per_item,
            ..MemoryStoreConfig::default()
        })
        .expect("a memory store config"),
    )
}

/// A node of the exchange on `store`, on `bind` (port 0 when `None`).
pub async fn node(store: &Arc<dyn Store>, bind: Option<SocketAddr>) -> Exchange {
    Exchange::on_store(store.clone(), BOSS, bind).await
}

/// A loopback address where nothing listens (a port the OS just gave out
/// and took back), for a node that is down and may start later.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("the probe port's address")
}

/// The push URL a node on `addr` answers on.
pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

/// Reconnects that wait little, so a failover is quick even under load.
pub fn short_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        stable_after: Duration::from_secs(10),
    }
}

/// A client config for the nodes at `urls`, in this order, with the test
/// pass, 3 s connect timeouts and [`short_backoff`].
pub fn nodes_config(urls: &[String]) -> ClientConfigBuilder {
    client_config(&urls[0])
        .urls(urls.iter().cloned())
        .reconnect(short_backoff())
}
