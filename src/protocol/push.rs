//! The server's `push` frames (protocol.md §2.4), written without building a
//! JSON tree: the hub serializes a watch's own part of the object once per
//! (re)watch ([`PushHead`]), each event's part once per event, and a
//! session glues them together as it writes:
//! `42<ack id>["push",{"watchable","event","id","alias"?,"seq","at","message"?,"value"?}]`.

use serde::Serialize;

use super::messages::{EventKind, PUSH_EVENT};
use super::time::UnixMillis;

/// A watch's part of its push objects, `{"watchable":…,"event":…,"id":…[,"alias":…]`
/// (no closing brace: the event's fields follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushHead(Box<str>);

#[derive(Serialize)]
struct Head<'a> {
    watchable: &'a str,
    event: EventKind,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<&'a str>,
}

impl PushHead {
    /// The head of the pushes of watch `watchable` of `event` on item `id`,
    /// made on `alias` if any.
    pub fn new(watchable: &str, event: EventKind, id: &str, alias: Option<&str>) -> Self {
        let head = Head {
            watchable,
            event,
            id,
            alias,
        };
        // Strings and an enum of unit variants always serialize.
        let mut text = serde_json::to_string(&head).unwrap_or_else(|_| "{".to_owned());
        text.pop(); // the closing brace: seq, at, … follow
        PushHead(text.into_boxed_str())
    }

    /// The head's JSON text (without its closing brace).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One event's part of a push object.
#[derive(Debug, Clone, Copy)]
pub struct PushBody<'a> {
    /// The event's seq.
    pub seq: u64,
    /// When the event happened.
    pub at: UnixMillis,
    /// The watch's `message`, as JSON text.
    pub message: Option<&'a str>,
    /// The new value, as JSON text (update events of a `withValue` watch).
    pub value: Option<&'a str>,
}

/// Appends `n` in decimal: a digit writer, not `fmt` (every push writes
/// three numbers; `fmt` was ~8% of a busy server's CPU per push).
fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends the push object `{head…,"seq","at","message"?,"value"?}`.
pub fn write_object(head: &PushHead, body: &PushBody<'_>, out: &mut String) {
    out.push_str(head.as_str());
    out.push_str(",\"seq\":");
    push_u64(out, body.seq);
    out.push_str(",\"at\":");
    push_u64(out, body.at.as_millis());
    if let Some(message) = body.message {
        out.push_str(",\"message\":");
        out.push_str(message);
    }
    if let Some(value) = body.value {
        out.push_str(",\"value\":");
        out.push_str(value);
    }
    out.push('}');
}

/// The bytes [`write_object`] appends, give or take (what the server's
/// queue bounds count; exact to within a few bytes for seqs and times of
/// up to 13 digits, a few bytes short above).
pub fn object_len(head: &PushHead, body: &PushBody<'_>) -> usize {
    head.0.len()
        + 48
        + body.message.map_or(0, |m| m.len() + 11)
        + body.value.map_or(0, |v| v.len() + 9)
}

/// The Engine.IO text of a push with `ack_id`: `42<ack id>["push",{…}]`.
pub fn frame(ack_id: u64, head: &PushHead, body: &PushBody<'_>) -> String {
    let mut text = String::with_capacity(object_len(head, body) + 32);
    text.push_str("42");
    push_u64(&mut text, ack_id);
    text.push_str("[\"");
    text.push_str(PUSH_EVENT);
    text.push_str("\",");
    write_object(head, body, &mut text);
    text.push(']');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_frames_have_the_protocol_shape() {
        let head = PushHead::new("w7", EventKind::Update, "i1", Some("my\"alias"));
        let body = PushBody {
            seq: 9,
            at: UnixMillis::from_millis(10),
            message: Some(r#"{"m":1}"#),
            value: Some("[1,2]"),
        };
        let text = frame(3, &head, &body);
        let json = text.strip_prefix("423").expect("42<ack id>");
        let parsed: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!(["push", {
                "watchable": "w7", "event": "update", "id": "i1",
                "alias": "my\"alias", "seq": 9, "at": 10, "message": {"m": 1}, "value": [1, 2]
            }])
        );
        assert!(text.len() <= object_len(&head, &body) + 32);
    }

    #[test]
    fn optional_fields_are_left_out() {
        let head = PushHead::new("w1", EventKind::Remove, "i2", None);
        let body = PushBody {
            seq: 1,
            at: UnixMillis::from_millis(1_700_000_000_000),
            message: None,
            value: None,
        };
        let mut object = String::new();
        write_object(&head, &body, &mut object);
        let parsed: serde_json::Value = serde_json::from_str(&object).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"watchable": "w1", "event": "remove", "id": "i2",
                "seq": 1, "at": 1_700_000_000_000_u64})
        );
        assert!(object.len() <= object_len(&head, &body));
    }
}
