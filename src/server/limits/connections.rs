//! [`Connections`]: the push connections open in total and per client
//! address, checked before the WebSocket upgrade (a refusal is HTTP 503).
//! It must not open or close sockets itself.
//!
//! The per-address table holds only addresses with an open connection, so it
//! is bounded by `max_connections`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::hits::Hits;
use crate::server::client_addr::ClientKey;

/// Why a new push connection is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectionRefused {
    /// `max_connections` are open.
    #[error(
        "the server has {0} push connections open, its limit: retry later, \
         or raise max_connections (--max-connections)"
    )]
    Total(usize),
    /// `max_connections_per_address` are open from this client address.
    #[error(
        "your address has {0} push connections open, the limit per address: \
         close some (one per application is enough), or retry later"
    )]
    PerClient(usize),
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<ClientKey, usize>,
}

/// The open push connections, counted.
pub(crate) struct Connections {
    max_total: usize,
    max_per_client: usize,
    open: Arc<Mutex<Open>>,
    /// Connections refused at `max_connections` (`effex_rate_limited_total`).
    pub(crate) refused_total: Hits,
    /// Connections refused at `max_connections_per_address`.
    pub(crate) refused_per_client: Hits,
}

/// One counted connection; dropping it (when the session ends) frees it.
pub(crate) struct ConnectionSlot {
    open: Arc<Mutex<Open>>,
    client: ClientKey,
}

fn lock(open: &Mutex<Open>) -> MutexGuard<'_, Open> {
    // Plain counters: still consistent after a panic elsewhere.
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Connections {
    /// At most `max_total` connections, `max_per_client` from one address.
    pub(crate) fn new(max_total: usize, max_per_client: usize) -> Self {
        Self {
            max_total,
            max_per_client,
            open: Arc::default(),
            refused_total: Hits::default(),
            refused_per_client: Hits::default(),
        }
    }

    /// Counts a new connection from `client`, or says which limit it meets.
    pub(crate) fn open(&self, client: ClientKey) -> Result<ConnectionSlot, ConnectionRefused> {
        let mut open = lock(&self.open);
        if open.total >= self.max_total {
            self.refused_total.hit();
            return Err(ConnectionRefused::Total(self.max_total));
        }
        let from_client = open.per_client.entry(client).or_insert(0);
        if *from_client >= self.max_per_client {
            self.refused_per_client.hit();
            return Err(ConnectionRefused::PerClient(self.max_per_client));
        }
        *from_client += 1;
        open.total += 1;
        Ok(ConnectionSlot {
            open: self.open.clone(),
            client,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn client(last: u8) -> ClientKey {
        ClientKey::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
    }

    #[test]
    fn limits_total_and_per_address_and_frees_on_drop() {
        let connections = Connections::new(3, 2);
        let a1 = connections.open(client(1)).unwrap();
        let _a2 = connections.open(client(1)).unwrap();
        assert_eq!(
            connections.open(client(1)).err(),
            Some(ConnectionRefused::PerClient(2))
        );
        let _b1 = connections.open(client(2)).unwrap();
        assert_eq!(
            connections.open(client(3)).err(),
            Some(ConnectionRefused::Total(3))
        );
        drop(a1);
        let _a3 = connections.open(client(1)).unwrap();
        assert_eq!(lock(&connections.open).per_client.len(), 2);
    }
}
