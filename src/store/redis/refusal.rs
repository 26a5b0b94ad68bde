//! What a script's refusal means to the caller: the [`StoreError`] with the
//! same code and advice as the memory store gives.

use redis::RedisError;

use super::scripts::Refusal;
use crate::store::{MemoryStoreConfig, StoreError};

/// The operation a refusal came from, for the wording of 403s.
#[derive(Debug, Clone, Copy)]
pub(super) struct Doing(pub(super) &'static str);

/// The error for a script's refusal while `doing` something.
pub(super) fn to_error(refusal: Refusal, doing: Doing, limits: &MemoryStoreConfig) -> StoreError {
    let detail = refusal.detail;
    let number = || detail.parse::<f64>().unwrap_or(0.0);
    match refusal.kind.as_str() {
        "unknown_key" => StoreError::UnknownKey,
        "not_writer" => StoreError::Forbidden(format!(
            "{} needs a writer key; this is not a writer key",
            doing.0
        )),
        "no_alias" => StoreError::NotFound(format!(
            "no item or alias {detail:?}: it may have expired or been removed"
        )),
        "gone" => StoreError::NotFound(format!(
            "item {detail} does not exist: it may have expired or been removed"
        )),
        "no_log" => StoreError::NotFound(format!(
            "item {detail} does not exist, or has been gone longer than the event log is kept"
        )),
        "cannot_read" => StoreError::Forbidden(format!(
            "this key may not read item {detail}: use its writer key or a key listed in its readers or updaters"
        )),
        "cannot_update" => StoreError::Forbidden(format!(
            "this key may not {}: item {detail} can be updated only by its writer key or a key listed in its updaters",
            doing.0
        )),
        "not_owner_remove" => StoreError::Forbidden(format!(
            "only the writer key that wrote item {detail} may remove it"
        )),
        "not_owner_alias" => StoreError::Forbidden(format!(
            "an alias may only point at an item its writer key wrote; item {detail} is not yours"
        )),
        "conflict" => StoreError::Conflict(format!(
            "alias {detail:?} belongs to another writer key: choose another name"
        )),
        "too_large" => StoreError::TooLarge {
            size: number() as usize,
            max: limits.max_size,
        },
        "locked" => StoreError::Locked {
            seconds_left: (number()).ceil() / 1000.0,
        },
        "quota_items" => StoreError::QuotaExceeded(format!(
            "this writer key already holds its most items ({}, max_items_per_key): \
             remove items it no longer needs, or write with another writer key",
            limits.max_items_per_key
        )),
        "quota_bytes" => StoreError::QuotaExceeded(format!(
            "this writer key's items would hold more than {} bytes (max_bytes_per_key) \
             with {detail} more: remove or shrink items it no longer needs, or write \
             with another writer key",
            limits.max_bytes_per_key
        )),
        "quota_aliases" => StoreError::QuotaExceeded(format!(
            "this writer key already holds its most aliases ({}, max_aliases_per_key): \
             re-point one of its aliases instead, or use another writer key",
            limits.max_aliases_per_key
        )),
        "full" => StoreError::StoreFull {
            size: number() as usize,
            max_total: limits.max_total_bytes,
        },
        other => StoreError::Backend(format!(
            "the Redis store refused with {other:?} ({detail}): this effex version does not know that answer"
        )),
    }
}

/// The error for a failed Redis call: 503 while Redis cannot be reached (the
/// caller may retry), 500 for anything else.
pub(super) fn from_redis(error: RedisError, url: &str) -> StoreError {
    if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
    {
        StoreError::Unavailable(format!(
            "Redis at {url} cannot be reached ({error}): retry shortly; if it lasts, \
             check that Redis is running and reachable from this node"
        ))
    } else {
        StoreError::Backend(format!("Redis at {url} failed: {error}"))
    }
}
