//! The bound on concurrent webhook deliveries per target host
//! ([`ServerConfig::webhook_max_per_host`]): one semaphore per host name (or
//! address) as written in the webhook URL, shared by every webhook watch that
//! targets it. It must not know about HTTP or watches.
//!
//! When a host has that many requests in flight, further deliveries to it wait
//! (in order, each watch keeping its own seq order) until one ends; waiting is
//! not a failed attempt. The map holds only hosts that some delivery task
//! still targets (dead entries are dropped as new hosts come), so it is
//! bounded by the number of webhook watches.
//!
//! [`ServerConfig::webhook_max_per_host`]: super::ServerConfig::webhook_max_per_host

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::Semaphore;

/// The per-host semaphores of webhook deliveries.
#[derive(Debug)]
pub(crate) struct HostLimits {
    per_host: usize,
    hosts: Mutex<HashMap<String, Weak<Semaphore>>>,
}

impl HostLimits {
    /// At most `per_host` concurrent requests to any one host (at least 1).
    pub(crate) fn new(per_host: usize) -> Self {
        HostLimits {
            per_host: per_host.max(1),
            hosts: Mutex::new(HashMap::new()),
        }
    }

    /// The semaphore of `host`, shared with every other holder of it; keep it
    /// for as long as deliveries go to that host.
    pub(crate) fn for_host(&self, host: &str) -> Arc<Semaphore> {
        let key = host.to_ascii_lowercase();
        // A panic while holding this lock cannot leave the map inconsistent
        // (every change is one insert or retain), so a poisoned lock is used.
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = hosts.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        hosts.retain(|_, semaphore| semaphore.strong_count() > 0);
        let semaphore = Arc::new(Semaphore::new(self.per_host));
        hosts.insert(key, Arc::downgrade(&semaphore));
        semaphore
    }

    /// How many hosts are tracked now (tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_semaphore_per_host_and_forgotten_when_unused() {
        let limits = HostLimits::new(2);
        let a = limits.for_host("Hooks.Example");
        let b = limits.for_host("hooks.example");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.available_permits(), 2);
        let other = limits.for_host("other.example");
        assert!(!Arc::ptr_eq(&a, &other));
        drop((a, b, other));
        let _c = limits.for_host("third.example");
        assert_eq!(limits.tracked(), 1, "dead hosts are dropped");
    }
}
