//! The store's operations as one Redis Function library (one function per
//! file of `lua/`, each one atomic step in Redis, all sharing the helpers of
//! `lua/common.lua`, which Redis defines once when it loads the library,
//! not on every call as a script prefix would), and the decoding of their
//! replies into values or [`StoreError`]s.
//!
//! The library's name carries a hash of its code (`effex_<12 hex>`), and so
//! do its functions' names: nodes of different effex versions on one Redis
//! each load and call their own, and a node loads it with `FUNCTION LOAD`
//! (no `REPLACE`: a library of that name already holds the same code).

use redis::{Script, Value};

use crate::store::StoreError;

/// One operation: a file of `lua/` and a function of the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    MakeKeys,
    KeyCheck,
    Write,
    Read,
    Update,
    Remove,
    Alias,
    Resolve,
    CheckRead,
    Events,
    Sweep,
}

impl Op {
    /// Every operation, in declaration order.
    const ALL: [Op; 11] = [
        Op::MakeKeys,
        Op::KeyCheck,
        Op::Write,
        Op::Read,
        Op::Update,
        Op::Remove,
        Op::Alias,
        Op::Resolve,
        Op::CheckRead,
        Op::Events,
        Op::Sweep,
    ];

    /// Its file's name: the function's name in the library and the
    /// `effex_redis_command_duration_seconds` label.
    pub(super) fn name(self) -> &'static str {
        match self {
            Op::MakeKeys => "make_keys",
            Op::KeyCheck => "key_check",
            Op::Write => "write",
            Op::Read => "read",
            Op::Update => "update",
            Op::Remove => "remove",
            Op::Alias => "alias",
            Op::Resolve => "resolve",
            Op::CheckRead => "check_read",
            Op::Events => "events",
            Op::Sweep => "sweep",
        }
    }
}

/// What stands for the library's name in [`TEMPLATE`].
const NAME_HOLDER: &str = "__EFFEX_LIBRARY__";

/// One operation's file as a registered function: its body runs as is (a
/// top-level `return` ends the call) after `begin` took the call's arguments.
macro_rules! operation {
    ($name:literal) => {
        concat!(
            "register('",
            $name,
            "', function()\n",
            include_str!(concat!("lua/", $name, ".lua")),
            "\nend)\n"
        )
    };
}

/// The library's code, its name still [`NAME_HOLDER`].
const TEMPLATE: &str = concat!(
    "#!lua name=__EFFEX_LIBRARY__\n",
    include_str!("lua/common.lua"),
    "\nlocal function register(name, body)\n",
    "  redis.register_function('__EFFEX_LIBRARY__' .. '_' .. name,\n",
    "    function(_, args) begin(args) return body() end)\n",
    "end\n",
    operation!("make_keys"),
    operation!("key_check"),
    operation!("write"),
    operation!("read"),
    operation!("update"),
    operation!("remove"),
    operation!("alias"),
    operation!("resolve"),
    operation!("check_read"),
    operation!("events"),
    operation!("sweep"),
);

/// The effex function library: its code and its functions' names.
pub(super) struct Library {
    name: String,
    code: String,
    /// Each [`Op`]'s function, in [`Op::ALL`] order.
    functions: Vec<String>,
}

impl Library {
    pub(super) fn new() -> Self {
        // The SHA-1 of the code (the redis crate computes it for scripts).
        let hash = Script::new(TEMPLATE).get_hash().to_owned();
        let name = format!("effex_{}", &hash[..12.min(hash.len())]);
        let code = TEMPLATE.replace(NAME_HOLDER, &name);
        let functions = Op::ALL
            .iter()
            .map(|op| format!("{name}_{}", op.name()))
            .collect();
        Library {
            name,
            code,
            functions,
        }
    }

    /// `effex_<12 hex>`.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// What `FUNCTION LOAD` takes.
    pub(super) fn code(&self) -> &str {
        &self.code
    }

    /// The name `FCALL` takes for `op`.
    pub(super) fn function(&self, op: Op) -> &str {
        // `functions` holds one name per entry of Op::ALL, which lists the
        // variants in declaration order: `op as usize` is in range.
        &self.functions[op as usize]
    }
}

/// Whether `error` says the library is not in Redis (a Redis restarted
/// without persistence, or `FUNCTION FLUSH`): load it and call again.
pub(super) fn is_not_loaded(error: &redis::RedisError) -> bool {
    error.to_string().contains("Function not found")
}

/// Whether `error` answers `FUNCTION LOAD` for a library already there
/// (another node, or this one before, loaded the same code).
pub(super) fn is_already_loaded(error: &redis::RedisError) -> bool {
    error.to_string().contains("already exists")
}

/// Whether `error` answers a Redis that has no `FUNCTION` command (older
/// than 7.0, or the command renamed away).
pub(super) fn is_unknown_command(error: &redis::RedisError) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    text.contains("unknown command") || text.contains("unknown subcommand")
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

    /// Every field as a reply of its own (a batch call's replies, one per
    /// operation in it).
    pub(super) fn outcomes(self) -> Result<Vec<Outcome>, StoreError> {
        self.0.into_iter().map(Outcome::decode).collect()
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
