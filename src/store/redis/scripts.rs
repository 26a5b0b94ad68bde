//! The Lua scripts of the Redis store (one per operation, each one atomic
//! step in Redis) and the decoding of their replies into values or
//! [`StoreError`]s.

use redis::{Script, Value};

use crate::store::StoreError;

/// Prepends the helpers every script shares.
macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            "\n",
            include_str!($file)
        ))
    };
}

/// The store's scripts, loaded once per store (Redis caches them by SHA; the
/// crate loads a script again after `NOSCRIPT`, e.g. after a Redis restart).
pub(super) struct Scripts {
    pub(super) make_keys: Script,
    pub(super) key_check: Script,
    pub(super) write: Script,
    pub(super) read: Script,
    pub(super) update: Script,
    pub(super) remove: Script,
    pub(super) alias: Script,
    pub(super) resolve: Script,
    pub(super) check_read: Script,
    pub(super) events: Script,
    pub(super) sweep: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            make_keys: script!("lua/make_keys.lua"),
            key_check: script!("lua/key_check.lua"),
            write: script!("lua/write.lua"),
            read: script!("lua/read.lua"),
            update: script!("lua/update.lua"),
            remove: script!("lua/remove.lua"),
            alias: script!("lua/alias.lua"),
            resolve: script!("lua/resolve.lua"),
            check_read: script!("lua/check_read.lua"),
            events: script!("lua/events.lua"),
            sweep: script!("lua/sweep.lua"),
        }
    }

    /// The name of one of these scripts (its file's), for the
    /// `effex_redis_command_duration_seconds` label; `other` for a script
    /// that is not one of them.
    pub(super) fn name_of(&self, script: &Script) -> &'static str {
        [
            (&self.make_keys, "make_keys"),
            (&self.key_check, "key_check"),
            (&self.write, "write"),
            (&self.read, "read"),
            (&self.update, "update"),
            (&self.remove, "remove"),
            (&self.alias, "alias"),
            (&self.resolve, "resolve"),
            (&self.check_read, "check_read"),
            (&self.events, "events"),
            (&self.sweep, "sweep"),
        ]
        .into_iter()
        .find(|(ours, _)| std::ptr::eq(*ours, script))
        .map_or("other", |(_, name)| name)
    }
}

/// What a script refused, as it reports it: `{'err', kind, detail}`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Refusal {
    pub(super) kind: String,
    pub(super) detail: String,
}

/// A script's reply: `{'ok', fields…}` or a [`Refusal`].
pub(super) enum Outcome {
    Ok(Reply),
    Refused(Refusal),
}

/// The fields of an `ok` reply (after the `'ok'`).
#[derive(Debug)]
pub(super) struct Reply(Vec<Value>);

fn malformed(what: &str) -> StoreError {
    StoreError::Backend(format!(
        "the Redis store got a reply it does not understand ({what}): \
         is another program using the effex:* keys, or does this effex version not match the data?"
    ))
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Outcome {
    /// Decodes a script's raw reply.
    pub(super) fn decode(value: Value) -> Result<Self, StoreError> {
        let Value::Array(mut items) = value else {
            return Err(malformed("not an array"));
        };
        if items.is_empty() {
            return Err(malformed("an empty array"));
        }
        let status = text_of(&items.remove(0)).ok_or_else(|| malformed("no status"))?;
        match status.as_str() {
            "ok" => Ok(Outcome::Ok(Reply(items))),
            "err" => {
                let reply = Reply(items);
                Ok(Outcome::Refused(Refusal {
                    kind: reply.text(0)?,
                    detail: reply.text(1).unwrap_or_default(),
                }))
            }
            other => Err(malformed(&format!("status {other:?}"))),
        }
    }
}

impl Reply {
    /// How many fields the reply has.
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// Field `i` as text.
    pub(super) fn text(&self, i: usize) -> Result<String, StoreError> {
        self.0
            .get(i)
            .and_then(text_of)
            .ok_or_else(|| malformed(&format!("field {i} is not text")))
    }

    /// Field `i` as a signed integer.
    pub(super) fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.0.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(other) => text_of(other)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| malformed(&format!("field {i} is not a number"))),
            None => Err(malformed(&format!("field {i} is missing"))),
        }
    }

    /// Field `i` as an unsigned integer (unix ms, seq, sizes).
    pub(super) fn num(&self, i: usize) -> Result<u64, StoreError> {
        u64::try_from(self.int(i)?).map_err(|_| malformed(&format!("field {i} is negative")))
    }
}
