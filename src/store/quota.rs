//! The store's quotas: total stored bytes (507 when full) and, per writer
//! key, items, bytes and aliases (429). Lock-free counters; knows nothing of
//! items, locks or the clock: the store charges and releases them.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::StoreError;

/// The limits, from the store's config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_total_bytes: usize,
    pub(crate) max_items_per_key: usize,
    pub(crate) max_bytes_per_key: usize,
    pub(crate) max_aliases_per_key: usize,
}

/// What one writer key holds: its live items, their value bytes and its
/// aliases. Shared (`Arc`) by the key and everything it owns, so that an item
/// or alias gives back its share without looking the key up.
#[derive(Debug, Default)]
pub(crate) struct KeyUsage {
    items: AtomicUsize,
    bytes: AtomicUsize,
    aliases: AtomicUsize,
}

/// The store-wide counter and the limits every charge is checked against.
#[derive(Debug)]
pub(crate) struct Quotas {
    limits: Limits,
    /// Value bytes of every live item.
    stored: AtomicUsize,
}

/// Adds `amount` to `counter` unless that would pass `max`; true when added.
fn take(counter: &AtomicUsize, amount: usize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            n.checked_add(amount).filter(|&total| total <= max)
        })
        .is_ok()
}

/// Takes `amount` off `counter` (never below 0).
fn give(counter: &AtomicUsize, amount: usize) {
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
        Some(n.saturating_sub(amount))
    });
}

impl Quotas {
    pub(crate) fn new(limits: Limits) -> Self {
        Quotas {
            limits,
            stored: AtomicUsize::new(0),
        }
    }

    /// Value bytes of every live item.
    pub(crate) fn stored_bytes(&self) -> usize {
        self.stored.load(Ordering::Relaxed)
    }

    /// Charges a new item of `bytes` to its writer key and the store: 429 when
    /// the key holds its most items or bytes, 507 when the store is full.
    /// Nothing is charged on error.
    pub(crate) fn charge_item(&self, key: &KeyUsage, bytes: usize) -> Result<(), StoreError> {
        let max_items = self.limits.max_items_per_key;
        if !take(&key.items, 1, max_items) {
            return Err(StoreError::QuotaExceeded(format!(
                "this writer key already holds its most items ({max_items}, \
                 max_items_per_key): remove items it no longer needs, or write with \
                 another writer key"
            )));
        }
        if let Err(e) = self.charge_bytes(key, bytes) {
            give(&key.items, 1);
            return Err(e);
        }
        Ok(())
    }

    /// Gives back a gone item's share.
    pub(crate) fn release_item(&self, key: &KeyUsage, bytes: usize) {
        give(&key.items, 1);
        self.release_bytes(key, bytes);
    }

    /// Charges an update from `old` to `new` bytes (the new size replaces the
    /// old) to the item's owner key and the store: 429 or 507 as for a new
    /// item, nothing charged on error. A smaller value gives bytes back.
    pub(crate) fn charge_resize(
        &self,
        key: &KeyUsage,
        old: usize,
        new: usize,
    ) -> Result<(), StoreError> {
        if new >= old {
            self.charge_bytes(key, new - old)
        } else {
            self.release_bytes(key, old - new);
            Ok(())
        }
    }

    /// Charges a new alias to its writer key: 429 when it holds its most.
    pub(crate) fn charge_alias(&self, key: &KeyUsage) -> Result<(), StoreError> {
        let max = self.limits.max_aliases_per_key;
        if take(&key.aliases, 1, max) {
            return Ok(());
        }
        Err(StoreError::QuotaExceeded(format!(
            "this writer key already holds its most aliases ({max}, \
             max_aliases_per_key): re-point one of its aliases instead, or use \
             another writer key"
        )))
    }

    /// Gives back a deleted alias's share.
    pub(crate) fn release_alias(&self, key: &KeyUsage) {
        give(&key.aliases, 1);
    }

    fn charge_bytes(&self, key: &KeyUsage, bytes: usize) -> Result<(), StoreError> {
        let max_key = self.limits.max_bytes_per_key;
        if !take(&key.bytes, bytes, max_key) {
            return Err(StoreError::QuotaExceeded(format!(
                "this writer key's items would hold more than {max_key} bytes \
                 (max_bytes_per_key) with {bytes} more: remove or shrink items it \
                 no longer needs, or write with another writer key"
            )));
        }
        let max = self.limits.max_total_bytes;
        if !take(&self.stored, bytes, max) {
            give(&key.bytes, bytes);
            return Err(StoreError::StoreFull {
                size: bytes,
                max_total: max,
            });
        }
        Ok(())
    }

    fn release_bytes(&self, key: &KeyUsage, bytes: usize) {
        give(&key.bytes, bytes);
        give(&self.stored, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_total_bytes: 100,
        max_items_per_key: 2,
        max_bytes_per_key: 60,
        max_aliases_per_key: 1,
    };

    #[test]
    fn charges_are_all_or_nothing_and_released_exactly() {
        let quotas = Quotas::new(LIMITS);
        let (a, b) = (KeyUsage::default(), KeyUsage::default());
        quotas.charge_item(&a, 50).unwrap();
        assert_eq!(quotas.charge_item(&a, 20).unwrap_err().code(), 429);
        quotas.charge_item(&b, 40).unwrap();
        // b: 1 item, 40 bytes; the store: 90 of 100.
        assert_eq!(quotas.charge_item(&b, 20).unwrap_err().code(), 507);
        assert_eq!(quotas.stored_bytes(), 90);
        quotas.charge_item(&b, 10).unwrap();
        assert_eq!(quotas.charge_item(&b, 0).unwrap_err().code(), 429);
        quotas.release_item(&a, 50);
        assert_eq!(quotas.stored_bytes(), 50);
        assert_eq!(quotas.charge_resize(&b, 10, 80).unwrap_err().code(), 429);
        quotas.charge_resize(&b, 40, 5).unwrap();
        assert_eq!(quotas.stored_bytes(), 15);
        quotas.charge_alias(&a).unwrap();
        assert_eq!(quotas.charge_alias(&a).unwrap_err().code(), 429);
        quotas.release_alias(&a);
        quotas.charge_alias(&a).unwrap();
    }
}
