//! The effex payloads of the Socket.IO conversation (`effex::protocol::messages`):
//! `pass`, CONNECT auth, `watch`, `unwatch`, `push`, the replies and
//! `parse_reply`. Every type is tried on every input.
//!
//! Checks, besides "never panics":
//! - decode → encode → decode gives the same value for every type with both
//!   (see `effex_fuzz::round_trip` for the one tolerated float difference);
//! - `parse_reply` reads back what `Success` / `Failure` write;
//! - a payload read as an event's first argument (`Packet::first_arg`, the
//!   path the server takes) equals the payload read on its own.

#![no_main]

use std::fmt::Debug;

use effex::protocol::messages::{
    is_valid_push_id, parse_reply, ConnectAuth, ConnectOk, ConnectRefused, Empty, EventKind,
    Failure, Pass, PassOk, Push, Success, Unwatch, Watch, WatchOk,
};
use effex::protocol::socketio::Packet;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<Pass>(json);
    round_trip::<PassOk>(json);
    round_trip::<ConnectOk>(json);
    round_trip::<ConnectRefused>(json);
    round_trip::<WatchOk>(json);
    round_trip::<Unwatch>(json);
    round_trip::<Watch>(json);
    round_trip::<Push>(json);
    round_trip::<EventKind>(json);
    round_trip::<Empty>(json);

    if let Ok(pass) = serde_json::from_str::<Pass>(json) {
        let _ = is_valid_push_id(&pass.push_id);
    }
    if let Ok(auth) = serde_json::from_str::<ConnectAuth>(json) {
        as_event_argument(json, &auth);
        if let Some(push_id) = &auth.push_id {
            let _ = is_valid_push_id(push_id);
        }
    }
    if let Ok(refused) = serde_json::from_str::<ConnectRefused>(json) {
        let _ = refused.code();
    }

    reply_round_trip::<PassOk>(json);
    reply_round_trip::<WatchOk>(json);
    reply_round_trip::<Empty>(json);
});

/// decode → encode → decode, and the same payload as an event's first argument.
fn round_trip<T>(json: &str)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    if let Some(value) = effex_fuzz::round_trip::<T>(json) {
        as_event_argument(json, &value);
    }
}

/// Reads `json` as the argument of `2<id>["name",json]`, as the server reads
/// an effex event, and compares with `direct`.
fn as_event_argument<T>(json: &str, direct: &T)
where
    T: DeserializeOwned + PartialEq + Debug,
{
    let text = format!(r#"27["name",{json}]"#);
    let packet = Packet::decode(&text)
        .unwrap_or_else(|e| panic!("an event around valid JSON {json:?} does not decode: {e}"));
    match packet.first_arg::<T>() {
        Ok(argument) => assert_eq!(&argument, direct, "first_arg differs for {json:?}"),
        // One level deeper inside the event's array: only serde_json's
        // recursion limit may tell the two apart.
        Err(error) => assert!(
            error.to_string().contains("recursion limit"),
            "first_arg fails on {json:?}, which decodes alone: {error}"
        ),
    }
}

/// `parse_reply` reads back the success or failure it decoded, once re-encoded.
fn reply_round_trip<T>(json: &str)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug + Clone,
{
    let Ok(reply) = parse_reply::<T>(json) else {
        return;
    };
    let encoded = match &reply {
        Ok(body) => serde_json::to_string(&Success(body.clone())),
        Err(failure) => serde_json::to_string::<Failure>(failure),
    }
    .unwrap_or_else(|e| panic!("{reply:?} (from {json:?}) does not encode: {e}"));
    let again = parse_reply::<T>(&encoded)
        .unwrap_or_else(|e| panic!("{encoded:?} (from {json:?}) is not a reply: {e}"));
    assert_eq!(again, reply, "parse_reply round trip differs for {json:?}");
}
