//! The wire formats: exact frames from protocol.md, round trips, and property
//! tests that feed random and truncated input to every decoder (an error,
//! never a panic).

use effex::protocol::engineio;
use effex::protocol::messages::{
    self, parse_reply, ConnectRefused, Pass, PassOk, Push, Watch, WatchOk,
};
use effex::protocol::socketio::{Packet, PacketKind};
use effex::protocol::time::UnixMillis;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn the_pass_conversation_as_on_the_wire() {
    // client → server: 4212["pass",{…}]
    let pass = Pass {
        pass: "secret".into(),
        push_id: "app-1".into(),
    };
    let frame = Packet::event(messages::PASS_EVENT, &pass, Some(12)).to_engineio_text();
    assert_eq!(frame, r#"4212["pass",{"pass":"secret","pushId":"app-1"}]"#);

    // server side: decode both layers and read the payload
    let engineio::Packet::Message(sio) = engineio::Packet::decode_text(&frame).unwrap() else {
        panic!("a message")
    };
    let packet = Packet::decode(&sio).unwrap();
    assert_eq!(packet.event_name().as_deref(), Some("pass"));
    assert_eq!(packet.first_arg::<Pass>().unwrap(), pass);

    // server → client: 4312[{…}]
    let ok = messages::Success(PassOk {
        connection: "sid".into(),
        push_id: "app-1".into(),
        server_time: UnixMillis::from_millis(7),
    });
    let reply = Packet::ack(12, &ok).to_engineio_text();
    assert_eq!(
        reply,
        r#"4312[{"ok":true,"connection":"sid","pushId":"app-1","serverTime":7}]"#
    );
    let packet = Packet::decode(&reply[1..]).unwrap();
    let raw = packet.args()[0].get().to_owned();
    assert_eq!(
        parse_reply::<PassOk>(&raw)
            .unwrap()
            .unwrap()
            .server_time
            .as_millis(),
        7
    );

    // a refusal in CONNECT_ERROR form
    let refused = Packet::connect_error(&ConnectRefused::new(401, "bad passphrase"));
    assert_eq!(
        refused.to_engineio_text(),
        r#"44{"message":"bad passphrase","data":{"code":401}}"#
    );
}

#[test]
fn watch_and_push_payloads_round_trip_through_packets() {
    let watch = Watch {
        event: messages::EventKind::Update,
        id: "item".into(),
        key: "rk1".into(),
        after: Some(41),
        message: Some(serde_json::value::to_raw_value(&json!({"tag": 1})).unwrap()),
        with_value: true,
    };
    let text = Packet::event(messages::WATCH_EVENT, &watch, Some(3)).encode();
    assert_eq!(
        Packet::decode(&text).unwrap().first_arg::<Watch>().unwrap(),
        watch
    );

    let push = Push {
        watchable: "w1".into(),
        event: messages::EventKind::Expire,
        id: "item".into(),
        alias: Some("latest".into()),
        seq: 42,
        at: UnixMillis::from_millis(1_700_000_000_000),
        message: None,
        value: None,
    };
    let text = Packet::event(messages::PUSH_EVENT, &push, Some(9)).encode();
    assert_eq!(
        Packet::decode(&text).unwrap().first_arg::<Push>().unwrap(),
        push
    );

    let ack = Packet::ack(
        3,
        &messages::Success(WatchOk {
            watchable: "w1".into(),
            seq: 42,
            gap: true,
        }),
    )
    .encode();
    let decoded = Packet::decode(&ack).unwrap();
    assert_eq!(decoded.kind, PacketKind::Ack);
    let reply = parse_reply::<WatchOk>(decoded.args()[0].get())
        .unwrap()
        .unwrap();
    assert!(reply.gap);
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Valid Socket.IO packets of every kind.
fn packet() -> impl Strategy<Value = Packet> {
    let namespace = prop_oneof![Just("/".to_owned()), "/[a-z]{1,8}"];
    let kind = prop_oneof![
        Just(PacketKind::Connect),
        Just(PacketKind::Disconnect),
        Just(PacketKind::Event),
        Just(PacketKind::Ack),
        Just(PacketKind::ConnectError),
        Just(PacketKind::BinaryEvent),
        Just(PacketKind::BinaryAck),
    ];
    (
        kind,
        namespace,
        0usize..5,
        any::<u32>(),
        "[a-z]{1,8}",
        prop::collection::vec(json_value(), 0..3),
    )
        .prop_map(|(kind, namespace, attachments, id, name, args)| {
            let raw = |v: &serde_json::Value| serde_json::value::to_raw_value(v).unwrap();
            let (ack_id, data, attachments) = match kind {
                PacketKind::Connect => (None, Some(raw(&json!({"pass": name}))), 0),
                PacketKind::Disconnect => (None, None, 0),
                PacketKind::ConnectError => (None, Some(raw(&json!({"message": name}))), 0),
                PacketKind::Event | PacketKind::BinaryEvent => {
                    let mut items = vec![json!(name)];
                    items.extend(args);
                    let binary = usize::from(kind == PacketKind::BinaryEvent) * attachments;
                    (Some(u64::from(id)), Some(raw(&json!(items))), binary)
                }
                PacketKind::Ack | PacketKind::BinaryAck => {
                    let binary = usize::from(kind == PacketKind::BinaryAck) * attachments;
                    (Some(u64::from(id)), Some(raw(&json!(args))), binary)
                }
            };
            Packet {
                kind,
                namespace,
                attachments,
                ack_id,
                data,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_valid_packet_round_trips(packet in packet()) {
        let text = packet.encode();
        let decoded = Packet::decode(&text).unwrap();
        prop_assert_eq!(&decoded, &packet);
        prop_assert_eq!(decoded.encode(), text);
        let frame = packet.to_engineio_text();
        prop_assert_eq!(
            engineio::Packet::decode_text(&frame).unwrap(),
            engineio::Packet::Message(packet.encode())
        );
    }

    #[test]
    fn truncated_packets_never_panic(packet in packet(), cut in any::<prop::sample::Index>()) {
        let text = packet.to_engineio_text();
        let boundaries: Vec<usize> = (0..=text.len()).filter(|i| text.is_char_boundary(*i)).collect();
        let prefix = &text[..*cut.get(&boundaries)];
        if let Ok(engineio::Packet::Message(sio)) = engineio::Packet::decode_text(prefix) {
            if let Ok(p) = Packet::decode(&sio) {
                // Whatever decodes must be well-formed enough to re-encode and read.
                let _ = (p.encode(), p.event_name(), p.args());
            }
        }
    }

    #[test]
    fn random_text_never_panics_any_decoder(text in "\\PC{0,64}") {
        let _ = engineio::Packet::decode_text(&text);
        if let Ok(p) = Packet::decode(&text) {
            let _ = (p.encode(), p.event_name(), p.args(), p.first_arg::<Push>());
        }
        let _ = parse_reply::<PassOk>(&text);
        let _ = serde_json::from_str::<Watch>(&text);
    }

    #[test]
    fn protocol_shaped_noise_never_panics(
        prefix in "[0-6]{1,2}[0-9-]{0,4}(/[a-z]{0,3},?)?[0-9]{0,25}",
        json in "[\\[\\]{}\",:a-z0-9 ]{0,24}",
    ) {
        let text = format!("{prefix}{json}");
        let _ = engineio::Packet::decode_text(&text);
        if let Ok(p) = Packet::decode(&text) {
            let _ = (p.encode(), p.event_name(), p.args());
        }
        let _ = engineio::Packet::decode_binary(bytes::Bytes::from(text.into_bytes()));
    }

    #[test]
    fn random_push_ids_are_judged_without_panicking(id in "\\PC{0,140}") {
        let valid = messages::is_valid_push_id(&id);
        prop_assert_eq!(valid, !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }
}
