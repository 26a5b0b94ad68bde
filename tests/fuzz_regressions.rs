//! Inputs the fuzz targets in `fuzz/` found, each fed through the decoder it
//! broke (see fuzz/README.md for how the targets run).

use effex::protocol::rest::NewItem;
use effex::protocol::socketio::{Packet, PacketKind};
use effex::protocol::DecodeError;
use effex::store::JsonText;

/// Found by the `socketio` target: the event's array is valid JSON, but its
/// name holds a lone surrogate escape, which no Rust string can hold. `decode`
/// accepted it and `event_name()` then returned `None` for a decoded EVENT
/// (the server closed with "an EVENT without a name"; the client read an
/// event named ""). Now `decode` refuses it as malformed.
#[test]
fn an_event_name_with_a_lone_surrogate_escape_is_malformed() {
    let found = r#"21["hullo\ud800",1]"#;
    let decoded = Packet::decode(found);
    assert!(
        matches!(decoded, Err(DecodeError::Malformed(_))),
        "{found:?} decoded as {decoded:?}"
    );
    // The same for a binary event, and for a lone trailing surrogate.
    for found in [
        r#"51-["\ud800",{"_placeholder":true,"num":0}]"#,
        r#"2["\udc00"]"#,
    ] {
        assert!(Packet::decode(found).is_err(), "{found:?} decoded");
    }
}

/// The fix must not refuse escaped names that are valid Unicode: a surrogate
/// pair is one character.
#[test]
fn an_event_name_with_a_surrogate_pair_still_decodes() {
    let packet = Packet::decode(r#"23["\ud83d\ude00",{}]"#).expect("a valid event");
    assert_eq!(packet.kind, PacketKind::Event);
    assert_eq!(packet.event_name().as_deref(), Some("\u{1f600}"));
}

/// Found by the `rest_bodies` and `messages` targets: serde_json's default
/// float parser is not correctly rounded, so a number can decode one ulp away
/// from the nearest `f64`, also a shortest-form float as any JSON encoder
/// writes it (`6.941548256537246e-16` decoded as `…247e-16`), and drift again
/// on every round trip through a parsed tree (`WriteItem::new`, the client's
/// typed replies). The crate turns on serde_json's `float_roundtrip`.
#[test]
fn a_float_decodes_to_the_nearest_f64() {
    for (found, nearest) in [
        (
            r#"{"value":6.941548256537246e-16}"#,
            6.941_548_256_537_246e-16,
        ),
        (
            r#"{"value":66666666666666666666666666666666666666661e038}"#,
            6.666_666_666_666_667e78,
        ),
    ] {
        // Through a parsed tree: the nearest f64, stable over round trips.
        let tree: serde_json::Value = serde_json::from_str(found).expect("a valid body");
        assert_eq!(tree["value"].as_f64(), Some(nearest), "{found}");
        let encoded = serde_json::to_string(&tree).expect("encodes");
        let again: serde_json::Value = serde_json::from_str(&encoded).expect("decodes");
        assert_eq!(
            again, tree,
            "{found} changed after a round trip via {encoded}"
        );
        // A REST body's value is kept as the text that was sent.
        let item: NewItem<JsonText> = serde_json::from_str(found).expect("a valid body");
        assert_eq!(item.value.as_str(), &found[9..found.len() - 1]);
    }
}
