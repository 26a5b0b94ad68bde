//! `JsonText`: an item's value kept as checked, compact JSON text from the
//! request body through the store to events and pushes, never as a
//! `serde_json::Value` tree.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::StoreError;

/// An item's value as serialized JSON text, shared (`Arc<str>`) and known to be valid.
///
/// Values travel in this form from the REST body through the store to the
/// `update` event and the push, rather than as a `serde_json::Value` tree: a
/// 1 KiB JSON document costs 1 KiB plus 16 bytes here, but often 2–3 KiB as a
/// `Value`, and a 1 MB array of small numbers about 16 MB (32 bytes per
/// element). Reads and events clone the `Arc`, and serializing a `JsonText`
/// with `serde_json` copies the text as it is (through [`RawValue`]), so
/// nothing re-parses it into a tree; [`JsonText::to_value`] parses it for code
/// that needs one.
///
/// The text is the value as sent, checked to be one JSON value, with the
/// whitespace between tokens dropped (whitespace inside strings is kept), so
/// an item's `size` does not depend on how the client formatted it. Numbers
/// and string escapes are kept as written.
///
/// ```
/// use effex::store::JsonText;
///
/// let text = JsonText::from_value(&serde_json::json!({"a": [1, 2]})).unwrap();
/// assert_eq!(text.as_str(), r#"{"a":[1,2]}"#);
/// let sent = JsonText::parse("{ \"a\" : [1, 2],\n \"b\": \"x y\" }").unwrap();
/// assert_eq!(sent.as_str(), r#"{"a":[1,2],"b":"x y"}"#);
/// let reply = serde_json::json!({ "ok": true, "value": text });
/// assert_eq!(reply["value"]["a"][1], 2);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonText(Arc<str>);

impl JsonText {
    /// Serializes `value` to compact JSON text.
    pub fn from_value(value: &Value) -> Result<Self, StoreError> {
        serde_json::to_string(value)
            .map(|s| JsonText(s.into()))
            .map_err(|e| StoreError::BadRequest(format!("value is not serializable: {e}")))
    }

    /// Checks that `text` is one JSON value and wraps it (compacted, see the
    /// type's docs); 400 when it is not JSON.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        serde_json::from_str::<&RawValue>(text)
            .map(|raw| JsonText::checked(raw.get()))
            .map_err(|e| StoreError::BadRequest(format!("value is not valid JSON: {e}")))
    }

    /// Wraps text already checked to be one JSON value.
    fn checked(text: &str) -> Self {
        JsonText(compact(text).into())
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Size of the text in bytes (an item's `size`).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false for a valid JSON value (kept for the `len`/`is_empty` pair).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the text into a `serde_json::Value` tree.
    pub fn to_value(&self) -> Result<Value, StoreError> {
        serde_json::from_str(&self.0)
            .map_err(|e| StoreError::Backend(format!("stored value does not parse: {e}")))
    }
}

impl Default for JsonText {
    /// `null`.
    fn default() -> Self {
        JsonText("null".into())
    }
}

impl From<&Value> for JsonText {
    fn from(value: &Value) -> Self {
        // Cannot fail: a `Value`'s map keys are strings and writing to a
        // `String` has no I/O error, which are serde_json's only failures.
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
        JsonText(text.into())
    }
}

impl From<Value> for JsonText {
    fn from(value: Value) -> Self {
        JsonText::from(&value)
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonText {
    /// With `serde_json` this writes the text as it is (no re-parse into a tree,
    /// only a validating scan).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    /// Takes the value's text as sent (checked by the JSON deserializer,
    /// never built into a tree), compacted.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Ok(JsonText::checked(raw.get()))
    }
}

/// `text` (valid JSON) without the whitespace between tokens; borrowed when
/// it has none, as with compact senders.
fn compact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut run_start = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b' ' | b'\t' | b'\n' | b'\r' => {
                // ASCII bytes are char boundaries, so the slices are valid.
                let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
                out.push_str(&text[run_start..i]);
                run_start = i + 1;
            }
            _ => {}
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[run_start..]);
            Cow::Owned(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_drops_whitespace_between_tokens_only() {
        assert_eq!(compact("[1,2]"), "[1,2]");
        assert!(matches!(compact("[1,2]"), Cow::Borrowed(_)));
        assert_eq!(compact(" [ 1 ,\t2 ]\r\n"), "[1,2]");
        assert_eq!(
            compact(r#"{ "a b" : "c \" d\\" , "e":[ ] }"#),
            r#"{"a b":"c \" d\\","e":[]}"#
        );
        assert_eq!(compact("\"é ü\" "), "\"é ü\"");
    }

    #[test]
    fn deserializing_keeps_the_text_without_a_tree() {
        #[derive(Deserialize)]
        struct Body {
            value: JsonText,
        }
        let body: Body =
            serde_json::from_str(r#"{"value": [1e400, 18446744073709551616, {"a": 1}]}"#)
                .expect("valid JSON");
        assert_eq!(
            body.value.as_str(),
            r#"[1e400,18446744073709551616,{"a":1}]"#
        );
        assert!(serde_json::from_str::<Body>(r#"{"value": [1,}"#).is_err());
    }

    #[test]
    fn from_value_round_trips() {
        let value = serde_json::json!({"k": [true, null, "s"]});
        assert_eq!(JsonText::from(&value).to_value().unwrap(), value);
        assert_eq!(JsonText::default().as_str(), "null");
    }
}
