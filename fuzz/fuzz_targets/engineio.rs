//! Engine.IO v4 frames: `Packet::decode_text` and `Packet::decode_binary`.
//!
//! Checks, besides "never panics": every decoded text packet encodes as text,
//! re-decodes to the same packet, and encodes the same way again (the encoding
//! is canonical); ping, pong and message frames keep their data byte for byte.

#![no_main]

use bytes::Bytes;
use effex::protocol::engineio::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let binary = Packet::decode_binary(Bytes::copy_from_slice(data));
    assert_eq!(binary, Packet::Binary(Bytes::copy_from_slice(data)));
    assert_eq!(
        binary.encode_text(),
        None,
        "a binary packet has no text form"
    );

    let Ok(frame) = std::str::from_utf8(data) else {
        return;
    };
    let packet = match Packet::decode_text(frame) {
        Ok(packet) => packet,
        Err(error) => {
            // The message is what a peer's log shows: building it must not panic.
            let _ = error.to_string();
            return;
        }
    };
    let encoded = packet
        .encode_text()
        .expect("a packet decoded from text encodes as text");
    let again = Packet::decode_text(&encoded)
        .unwrap_or_else(|e| panic!("{encoded:?} (from {frame:?}) does not decode: {e}"));
    assert_eq!(again, packet, "decode(encode(p)) != p for {frame:?}");
    assert_eq!(
        again.encode_text().as_deref(),
        Some(encoded.as_str()),
        "encoding is not canonical for {frame:?}"
    );
    if matches!(
        packet,
        Packet::Ping(_) | Packet::Pong(_) | Packet::Message(_)
    ) {
        assert_eq!(encoded, frame, "data frames must round-trip byte for byte");
    }
});
