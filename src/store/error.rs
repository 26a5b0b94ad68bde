//! `StoreError`: every way a store operation can fail, with its HTTP-like code.

/// Why a store operation failed.
///
/// Each variant maps to the status code the REST API and the push protocol
/// answer with ([`StoreError::code`]); the `Display` text is meant for the
/// person using the API and says what to do about it.
///
/// ```
/// use effex::store::StoreError;
///
/// let err = StoreError::TooLarge { size: 2_000_000, max: 1_048_576 };
/// assert_eq!(err.code(), 413);
/// assert!(err.to_string().contains("maxSize is 1048576 bytes"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// 400: the request is malformed (the text says which field and why).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: the access key is unknown or has expired.
    #[error(
        "unknown or expired access key: ask the key issuer for a new key \
         (POST /keys with the boss key)"
    )]
    UnknownKey,
    /// 403: the key is valid but not allowed to do this (the text says who is).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such item or alias (it may have expired or been removed).
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the alias belongs to another writer key.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 413: the serialized value is larger than the store's `maxSize`.
    #[error(
        "item is {size} bytes; the server's maxSize is {max} bytes: \
         store a smaller value or split it over several items"
    )]
    TooLarge {
        /// Bytes of the serialized value that was refused.
        size: usize,
        /// The store's `max_size` in bytes.
        max: usize,
    },
    /// 423: another holder's update intent is in force on the item.
    #[error(
        "the item is locked by another update intent for {seconds_left:.3} more \
         seconds: retry after that, or update with the intent id you were given"
    )]
    Locked {
        /// Seconds until the lock lapses by itself (fractional).
        seconds_left: f64,
    },
    /// 429: the writer key that owns the item holds its most items, bytes or
    /// aliases (the text says which quota and what to do).
    #[error("quota reached: {0}")]
    QuotaExceeded(String),
    /// 507: the store holds its most value bytes (`max_total_bytes`); reads,
    /// removes and writes that fit keep working.
    #[error(
        "the store is full: it cannot take {size} more bytes of values \
         (max_total_bytes is {max_total}): remove items you no longer need, \
         wait for some to expire, or ask the operator to raise max_total_bytes"
    )]
    StoreFull {
        /// Bytes that did not fit (a new value, or an update's growth).
        size: usize,
        /// The store's `max_total_bytes`.
        max_total: usize,
    },
    /// 500: the backend failed (for the memory store: a broken invariant).
    #[error("store backend failed: {0}")]
    Backend(String),
    /// 503: the backend cannot be reached for now (the Redis store while
    /// Redis is down); the same request may succeed when retried later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// The HTTP-like status code of this error (400, 401, 403, 404, 409, 413,
    /// 423, 429, 500, 503 or 507).
    pub fn code(&self) -> u16 {
        match self {
            StoreError::BadRequest(_) => 400,
            StoreError::UnknownKey => 401,
            StoreError::Forbidden(_) => 403,
            StoreError::NotFound(_) => 404,
            StoreError::Conflict(_) => 409,
            StoreError::TooLarge { .. } => 413,
            StoreError::Locked { .. } => 423,
            StoreError::QuotaExceeded(_) => 429,
            StoreError::StoreFull { .. } => 507,
            StoreError::Backend(_) => 500,
            StoreError::Unavailable(_) => 503,
        }
    }
}
