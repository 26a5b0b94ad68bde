//! Socket.IO v5 packets: `Packet::decode` (the text inside an Engine.IO `4`
//! message) and the accessors the server and client call on what it returns.
//!
//! Checks, besides "never panics":
//! - decode → encode → decode gives the same packet, and the encoding is canonical;
//! - the Engine.IO layer carries the encoding unchanged (`to_engineio_text`);
//! - every decoded EVENT has a name (`event_name`), the first element of its array;
//! - `first_arg` and `args` agree on the first argument.

#![no_main]

use effex::protocol::engineio;
use effex::protocol::socketio::{Packet, PacketKind, MAX_ATTACHMENTS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let packet = match Packet::decode(text) {
        Ok(packet) => packet,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };

    let encoded = packet.encode();
    let again = Packet::decode(&encoded)
        .unwrap_or_else(|e| panic!("{encoded:?} (from {text:?}) does not decode: {e}"));
    assert_eq!(again, packet, "decode(encode(p)) != p for {text:?}");
    assert_eq!(
        again.encode(),
        encoded,
        "encoding is not canonical for {text:?}"
    );

    let frame = packet.to_engineio_text();
    assert_eq!(
        engineio::Packet::decode_text(&frame),
        Ok(engineio::Packet::Message(encoded.clone())),
        "the Engine.IO layer changed {frame:?}"
    );

    assert!(packet.attachments <= MAX_ATTACHMENTS);
    if !packet.kind.is_binary() {
        assert_eq!(packet.attachments, 0);
    }
    if matches!(packet.kind, PacketKind::Ack | PacketKind::BinaryAck) {
        assert!(packet.ack_id.is_some(), "an ACK decoded without an ack id");
    }

    let args = packet.args();
    let is_event = matches!(packet.kind, PacketKind::Event | PacketKind::BinaryEvent);
    let name = packet.event_name();
    if is_event {
        let name = name.unwrap_or_else(|| panic!("an EVENT decoded without a name: {text:?}"));
        let items: Vec<Value> = match serde_json::from_str(packet.data.as_ref().unwrap().get()) {
            Ok(items) => items,
            // Deeper than serde_json's recursion limit as a tree: the raw
            // checks above do not build one.
            Err(_) => return,
        };
        assert_eq!(items.first(), Some(&Value::String(name)), "{text:?}");
        assert_eq!(args.len(), items.len() - 1, "{text:?}");
    } else {
        assert_eq!(name, None);
    }

    match packet.first_arg::<Value>() {
        Ok(first) => {
            let raw = args
                .first()
                .unwrap_or_else(|| panic!("first_arg found an argument args() missed: {text:?}"));
            let parsed: Value = serde_json::from_str(raw.get())
                .unwrap_or_else(|e| panic!("args()[0] of {text:?} does not parse: {e}"));
            assert_eq!(parsed, first, "first_arg and args disagree on {text:?}");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
