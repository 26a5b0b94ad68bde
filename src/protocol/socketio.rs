//! Socket.IO v5 packets (namespaces, ack ids, the binary-attachment header);
//! they ride inside Engine.IO `4` messages. No I/O here.
//!
//! Wire form: `<type>[<attachments>-][<nsp>,][<ack id>][<JSON>]`, with the
//! namespace omitted for `/`.
//!
//! ```
//! use effex::protocol::socketio::{Packet, PacketKind};
//!
//! let packet = Packet::decode(r#"212["pass",{"pass":"secret","pushId":"p1"}]"#).unwrap();
//! assert_eq!(packet.kind, PacketKind::Event);
//! assert_eq!(packet.ack_id, Some(12));
//! assert_eq!(packet.event_name().as_deref(), Some("pass"));
//!
//! let ack = Packet::ack(12, &serde_json::json!({"ok": true}));
//! assert_eq!(ack.to_engineio_text(), r#"4312[{"ok":true}]"#);
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use super::DecodeError;

/// The default namespace, omitted on the wire.
pub const DEFAULT_NAMESPACE: &str = "/";

/// The most binary attachments one packet may announce; more is a protocol error.
pub const MAX_ATTACHMENTS: usize = 64;

/// Socket.IO packet types (the first digit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// `0` — join a namespace (client), or accept the join (server).
    Connect,
    /// `1` — leave a namespace.
    Disconnect,
    /// `2` — an event: `["name", args…]`.
    Event,
    /// `3` — the answer to an event that carried an ack id: `[args…]`.
    Ack,
    /// `4` — the server refuses a CONNECT: `{"message":…,"data":…}`.
    ConnectError,
    /// `5` — an event whose arguments include binary attachments.
    BinaryEvent,
    /// `6` — an ack whose arguments include binary attachments.
    BinaryAck,
}

impl PacketKind {
    fn from_digit(digit: u8) -> Option<Self> {
        Some(match digit {
            b'0' => Self::Connect,
            b'1' => Self::Disconnect,
            b'2' => Self::Event,
            b'3' => Self::Ack,
            b'4' => Self::ConnectError,
            b'5' => Self::BinaryEvent,
            b'6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }

    /// Whether packets of this kind carry the `<attachments>-` header.
    pub fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// One Socket.IO packet. The JSON payload is kept raw (validated, not parsed
/// into a tree) so that it can be deserialized straight into typed structs.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The packet type.
    pub kind: PacketKind,
    /// The namespace, `/` by default.
    pub namespace: String,
    /// How many binary frames follow (binary kinds only, else 0).
    pub attachments: usize,
    /// The ack id: present on an event that wants an answer, and on every ack.
    pub ack_id: Option<u64>,
    /// The JSON payload, if any.
    pub data: Option<Box<RawValue>>,
}

impl PartialEq for Packet {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.namespace == other.namespace
            && self.attachments == other.attachments
            && self.ack_id == other.ack_id
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}

impl Packet {
    fn new(kind: PacketKind, ack_id: Option<u64>, data: Option<Box<RawValue>>) -> Self {
        Self {
            kind,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            attachments: 0,
            ack_id,
            data,
        }
    }

    /// CONNECT to `/`, optionally with an auth payload (which must serialize
    /// to a JSON object).
    pub fn connect(auth: Option<&impl Serialize>) -> Self {
        Self::new(PacketKind::Connect, None, auth.map(raw))
    }

    /// DISCONNECT from `/`.
    pub fn disconnect() -> Self {
        Self::new(PacketKind::Disconnect, None, None)
    }

    /// CONNECT_ERROR on `/` with a payload (the v5 shape is `{"message","data"}`).
    pub fn connect_error(payload: &impl Serialize) -> Self {
        Self::new(PacketKind::ConnectError, None, Some(raw(payload)))
    }

    /// An EVENT `["name", arg]` on `/`, asking for an ack when `ack_id` is set.
    pub fn event(name: &str, arg: &impl Serialize, ack_id: Option<u64>) -> Self {
        Self::new(PacketKind::Event, ack_id, Some(raw(&(name, arg))))
    }

    /// An ACK `[arg]` answering the event with this ack id.
    pub fn ack(ack_id: u64, arg: &impl Serialize) -> Self {
        Self::new(PacketKind::Ack, Some(ack_id), Some(raw(&[arg])))
    }

    /// Decodes the Socket.IO text of an Engine.IO message (the part after `4`).
    ///
    /// Enforces the v5 rules: an EVENT's JSON is a non-empty array whose first
    /// element is a string, an ACK has an id and an array, a CONNECT's payload
    /// is an object, a DISCONNECT has none. Errors, never panics.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let bytes = text.as_bytes();
        let first = *bytes.first().ok_or(DecodeError::Empty)?;
        let kind = PacketKind::from_digit(first).ok_or(DecodeError::UnknownType {
            layer: "Socket.IO",
            // `first` may be the start of a multi-byte char: report the char.
            found: text.chars().next().unwrap_or('?'),
        })?;
        let mut pos = 1;

        let mut attachments = 0;
        if kind.is_binary() {
            let digits = count_digits(&bytes[pos..]);
            if digits == 0 || bytes.get(pos + digits) != Some(&b'-') {
                return Err(DecodeError::Malformed(
                    "a binary packet must start with `<attachments>-`",
                ));
            }
            attachments = text[pos..pos + digits]
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_ATTACHMENTS)
                .ok_or(DecodeError::Malformed("too many binary attachments"))?;
            pos += digits + 1;
        }

        let mut namespace = DEFAULT_NAMESPACE.to_owned();
        if bytes.get(pos) == Some(&b'/') {
            let end = text[pos..].find(',').map_or(text.len(), |i| pos + i);
            namespace = text[pos..end].to_owned();
            pos = (end + 1).min(text.len());
        }

        let mut ack_id = None;
        let digits = count_digits(&bytes[pos..]);
        if digits > 0 {
            ack_id = Some(
                text[pos..pos + digits]
                    .parse::<u64>()
                    .map_err(|_| DecodeError::Malformed("ack id does not fit in 64 bits"))?,
            );
            pos += digits;
        }

        let rest = &text[pos..];
        let data = if rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Box<RawValue>>(rest)
                    .map_err(|e| DecodeError::Json(format!("bad Socket.IO payload: {e}")))?,
            )
        };

        let packet = Self {
            kind,
            namespace,
            attachments,
            ack_id,
            data,
        };
        packet.validate()?;
        Ok(packet)
    }

    fn validate(&self) -> Result<(), DecodeError> {
        let shape = self.data.as_deref().map(json_shape);
        match self.kind {
            PacketKind::Connect => match shape {
                None | Some(JsonShape::Object) => Ok(()),
                _ => Err(DecodeError::Malformed(
                    "a CONNECT payload must be an object",
                )),
            },
            PacketKind::Disconnect => match shape {
                None => Ok(()),
                _ => Err(DecodeError::Malformed("a DISCONNECT has no payload")),
            },
            PacketKind::ConnectError => match shape {
                Some(JsonShape::Object | JsonShape::String) => Ok(()),
                _ => Err(DecodeError::Malformed(
                    "a CONNECT_ERROR payload must be an object",
                )),
            },
            // The payload is valid JSON (RawValue checked it), so looking at
            // its first tokens is enough: no second scan of the whole array.
            PacketKind::Event | PacketKind::BinaryEvent => match (shape, self.first_token()) {
                // Valid JSON may still hold a string Rust cannot represent (a
                // lone surrogate escape such as `"\ud800"`): reading the name
                // (the first element only) tells.
                (Some(JsonShape::Array), Some(b'"')) => match self.event_name() {
                    Some(_) => Ok(()),
                    None => Err(DecodeError::Malformed(
                        "an event name must be valid Unicode (no lone surrogate escapes)",
                    )),
                },
                (Some(JsonShape::Array), Some(b']') | None) | (None, _) => Err(
                    DecodeError::Malformed("an EVENT payload must be a non-empty array"),
                ),
                (Some(JsonShape::Array), Some(_)) => {
                    Err(DecodeError::Malformed("an event name must be a string"))
                }
                (Some(_), _) => Err(DecodeError::Malformed(
                    "an EVENT payload must be a non-empty array",
                )),
            },
            PacketKind::Ack | PacketKind::BinaryAck => {
                if self.ack_id.is_none() {
                    return Err(DecodeError::Malformed("an ACK needs an ack id"));
                }
                match shape {
                    Some(JsonShape::Array) => Ok(()),
                    _ => Err(DecodeError::Malformed("this packet needs a JSON array")),
                }
            }
        }
    }

    /// The first byte inside the payload's array, after white space.
    fn first_token(&self) -> Option<u8> {
        let data = self.data.as_deref()?.get().as_bytes();
        data.get(1..)?
            .iter()
            .copied()
            .find(|b| !b.is_ascii_whitespace())
    }

    fn array_items(&self) -> Result<Vec<&RawValue>, DecodeError> {
        let data = self
            .data
            .as_deref()
            .ok_or(DecodeError::Malformed("this packet needs a JSON array"))?;
        serde_json::from_str::<Vec<&RawValue>>(data.get())
            .map_err(|_| DecodeError::Malformed("this packet needs a JSON array"))
    }

    /// The event name of an EVENT (or BINARY_EVENT) packet.
    pub fn event_name(&self) -> Option<String> {
        if !matches!(self.kind, PacketKind::Event | PacketKind::BinaryEvent) {
            return None;
        }
        // Reads only the name: the array's first element.
        let data = self.data.as_deref()?.get();
        let inner = data.strip_prefix('[')?;
        serde_json::Deserializer::from_str(inner)
            .into_iter::<String>()
            .next()?
            .ok()
    }

    /// The arguments: an event's array after its name, or an ack's whole array.
    pub fn args(&self) -> Vec<&RawValue> {
        let mut items = self.array_items().unwrap_or_default();
        if matches!(self.kind, PacketKind::Event | PacketKind::BinaryEvent) && !items.is_empty() {
            items.remove(0);
        }
        items
    }

    /// Deserializes the first argument (the effex payload) into `T`.
    pub fn first_arg<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let data = self
            .data
            .as_deref()
            .ok_or(DecodeError::Malformed("the packet has no argument"))?;
        // One pass: skip the event name (if any), read the argument, skip the rest.
        let skip = usize::from(matches!(
            self.kind,
            PacketKind::Event | PacketKind::BinaryEvent
        ));
        let mut deserializer = serde_json::Deserializer::from_str(data.get());
        let arg =
            serde::Deserializer::deserialize_seq(&mut deserializer, NthElement::<T>::new(skip))
                .map_err(|e| DecodeError::Json(e.to_string()))?;
        arg.ok_or(DecodeError::Malformed("the packet has no argument"))
    }

    /// Encodes the Socket.IO text (without the Engine.IO `4`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_into(&mut out);
        out
    }

    /// Encodes as a complete Engine.IO message frame: `4` + the Socket.IO text.
    pub fn to_engineio_text(&self) -> String {
        let mut out = String::from('4');
        self.encode_into(&mut out);
        out
    }

    /// Appends the Socket.IO text to `out`.
    pub fn encode_into(&self, out: &mut String) {
        use std::fmt::Write;
        let data = self.data.as_deref().map(RawValue::get).unwrap_or("");
        out.reserve(data.len() + self.namespace.len() + 24);
        out.push(self.kind.digit());
        if self.kind.is_binary() {
            // Writing into a String cannot fail.
            let _ = write!(out, "{}-", self.attachments);
        }
        if self.namespace != DEFAULT_NAMESPACE {
            out.push_str(&self.namespace);
            out.push(',');
        }
        if let Some(id) = self.ack_id {
            let _ = write!(out, "{id}");
        }
        out.push_str(data);
    }
}

/// Reads element `skip` of a JSON array as `T`, ignoring the others.
struct NthElement<T> {
    skip: usize,
    _element: std::marker::PhantomData<T>,
}

impl<T> NthElement<T> {
    fn new(skip: usize) -> Self {
        Self {
            skip,
            _element: std::marker::PhantomData,
        }
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for NthElement<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        for _ in 0..self.skip {
            if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Ok(None);
            }
        }
        let wanted = seq.next_element::<T>()?;
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(wanted)
    }
}

/// Serializes a payload to raw JSON. effex payloads are plain structs, maps
/// and JSON values, whose serialization cannot fail; a type that does fail
/// (a map with non-string keys) becomes `null` rather than a panic.
fn raw(value: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|e| {
        log::error!("payload is not serializable as JSON ({e}); sending null");
        // "null" is valid JSON, so this cannot fail.
        RawValue::from_string("null".to_owned()).expect("null is valid JSON")
    })
}

/// The id of `text` when it is a plain acknowledgement on `/` as clients
/// send them for pushes, `3<id>[]` or `3<id>[{"ok":true}]`; `None` for
/// anything else (decode it with [`Packet::decode`]). A byte scan, for the
/// server's hot path: such an ACK decodes to the same packet kind and id.
pub fn plain_ack_id(text: &str) -> Option<u64> {
    let rest = text.strip_prefix('3')?;
    let digits = count_digits(rest.as_bytes());
    let (id, payload) = rest.split_at(digits);
    if digits == 0 || !matches!(payload, "[]" | r#"[{"ok":true}]"#) {
        return None;
    }
    id.parse().ok()
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[derive(Debug, PartialEq, Eq)]
enum JsonShape {
    Object,
    Array,
    String,
    Other,
}

fn json_shape(value: &RawValue) -> JsonShape {
    // A RawValue is valid JSON with no leading whitespace.
    match value.get().as_bytes().first() {
        Some(b'{') => JsonShape::Object,
        Some(b'[') => JsonShape::Array,
        Some(b'"') => JsonShape::String,
        _ => JsonShape::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_acks_are_recognised_as_the_decoder_reads_them() {
        for text in [r#"37[{"ok":true}]"#, "37[]", "318446744073709551615[]"] {
            let packet = Packet::decode(text).expect("a valid ACK");
            assert_eq!(packet.kind, PacketKind::Ack);
            assert_eq!(plain_ack_id(text), packet.ack_id, "{text}");
        }
        for text in [
            "3[]",
            "37",
            r#"37[{"ok":false}]"#,
            "37[] ",
            "/x,37[]",
            "61-7[]",
            "47[]",
            "318446744073709551616[]",
        ] {
            assert_eq!(plain_ack_id(text), None, "{text}");
        }
    }
    use serde_json::json;

    fn round_trip(text: &str) -> Packet {
        let packet = Packet::decode(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(packet.encode(), text);
        packet
    }

    #[test]
    fn wire_examples_from_the_protocol_page() {
        let connect = round_trip("0");
        assert_eq!(connect.kind, PacketKind::Connect);
        assert!(connect.data.is_none());

        let accepted = round_trip(r#"0{"sid":"x"}"#);
        assert_eq!(accepted.data.unwrap().get(), r#"{"sid":"x"}"#);

        let pass = round_trip(r#"212["pass",{"pass":"p","pushId":"id"}]"#);
        assert_eq!(pass.kind, PacketKind::Event);
        assert_eq!(pass.ack_id, Some(12));
        assert_eq!(pass.event_name().as_deref(), Some("pass"));
        assert_eq!(pass.args().len(), 1);

        let ack = round_trip(r#"312[{"ok":true}]"#);
        assert_eq!(ack.kind, PacketKind::Ack);
        assert_eq!(ack.ack_id, Some(12));
        let reply: serde_json::Value = ack.first_arg().unwrap();
        assert_eq!(reply, json!({"ok": true}));

        assert_eq!(round_trip("1").kind, PacketKind::Disconnect);
        let refused = round_trip(r#"4{"message":"bad passphrase","data":{"code":401}}"#);
        assert_eq!(refused.kind, PacketKind::ConnectError);
    }

    #[test]
    fn namespaces_and_binary_headers() {
        let p = round_trip(r#"2/admin,7["hello",1]"#);
        assert_eq!(p.namespace, "/admin");
        assert_eq!(p.ack_id, Some(7));
        let p = round_trip("0/admin,");
        assert_eq!(p.namespace, "/admin");
        // A namespace with no trailing comma is read to the end.
        assert_eq!(Packet::decode("1/admin").unwrap().namespace, "/admin");
        let p = round_trip(r#"51-["upload",{"_placeholder":true,"num":0}]"#);
        assert_eq!(p.kind, PacketKind::BinaryEvent);
        assert_eq!(p.attachments, 1);
        let p = round_trip(r#"62-/admin,3[{"_placeholder":true,"num":0}]"#);
        assert_eq!((p.attachments, p.ack_id), (2, Some(3)));
        assert_eq!(p.namespace, "/admin");
    }

    #[test]
    fn constructors_encode_as_expected() {
        assert_eq!(Packet::disconnect().to_engineio_text(), "41");
        assert_eq!(Packet::connect(None::<&()>).to_engineio_text(), "40");
        assert_eq!(
            Packet::event("pass", &json!({"pass":"p"}), Some(0)).to_engineio_text(),
            r#"420["pass",{"pass":"p"}]"#
        );
        assert_eq!(
            Packet::connect_error(&json!({"message":"m"})).encode(),
            r#"4{"message":"m"}"#
        );
    }

    #[test]
    fn rule_breaking_packets_are_errors() {
        for bad in [
            "",
            "7",
            "2",
            "2[]",
            "2{}",
            "2[1]",
            "3[]",
            "31{}",
            "1{}",
            "0[]",
            "0\"x\"",
            "2[\"a\"",
            "5[\"a\"]",
            "5x-[\"a\"]",
            "599-[\"a\"]",
            "299999999999999999999[\"a\"]",
            "4",
        ] {
            assert!(Packet::decode(bad).is_err(), "{bad:?} should not decode");
        }
    }
}
