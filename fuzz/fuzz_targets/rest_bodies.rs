//! The REST request bodies: `MakeKeys` (`POST /keys`), `WriteItem`
//! (`POST /items`), `UpdateItem` (`PUT /items/{id}`), `EventQuery` (the
//! events query, as the store takes it), item values (`JsonText`), item ids
//! and key kinds. Every type is tried on every input.
//!
//! `PUT /aliases/{alias}` (`{"id":…}`) and `POST /watches` bodies are private
//! structs of the server; their fields are public types fuzzed here
//! (`EventKind` in the `messages` target, strings and JSON values here).
//!
//! Checks, besides "never panics":
//! - decode → encode → decode gives the same value (see
//!   `effex_fuzz::round_trip` for the one tolerated float difference);
//! - a decoded `WriteItem` and `UpdateItem` go through a real `MemoryStore`
//!   (write, update, remove) without a panic, and the reported size is the
//!   value's compact JSON length.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use effex::store::{
    EventQuery, ItemId, JsonText, KeyKind, MakeKeys, MemoryStore, MemoryStoreConfig, Store,
    StoreError, UpdateItem, WriteItem,
};
use effex_fuzz::round_trip;
use libfuzzer_sys::fuzz_target;

const BOSS: &str = "fuzzing boss key";

/// One store for the whole run, with the runtime it needs and a writer key.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    store: MemoryStore,
    writer: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime");
        let store = runtime
            .block_on(async {
                MemoryStore::new(MemoryStoreConfig {
                    boss_key: BOSS.into(),
                    // Written items are removed again; their events need not stay.
                    event_retention: Duration::from_secs(1),
                    ..MemoryStoreConfig::default()
                })
            })
            .expect("a memory store");
        let keys = runtime
            .block_on(store.make_keys(BOSS, MakeKeys::new(KeyKind::Writer)))
            .expect("a writer key");
        let writer = keys.keys[0].clone();
        Fixture {
            runtime,
            store,
            writer,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let _ = json.parse::<ItemId>();
    let _ = json.parse::<KeyKind>();
    round_trip::<ItemId>(json);
    round_trip::<KeyKind>(json);
    round_trip::<MakeKeys>(json);
    round_trip::<EventQuery>(json);
    round_trip::<WriteItem>(json);
    round_trip::<UpdateItem>(json);

    if let Ok(text) = JsonText::parse(json) {
        let encoded = serde_json::to_string(&text).expect("a JsonText encodes");
        assert_eq!(encoded, text.as_str(), "a JsonText is written as it is");
        assert_eq!(JsonText::parse(&encoded).ok(), Some(text.clone()));
        let _ = text.to_value();
    }

    if let Ok(item) = serde_json::from_str::<WriteItem>(json) {
        through_the_store(item, serde_json::from_str::<UpdateItem>(json).ok());
    }
});

/// Writes the item with the fixture's writer key, updates it, removes it.
fn through_the_store(item: WriteItem, update: Option<UpdateItem>) {
    let Fixture {
        runtime,
        store,
        writer,
    } = fixture();
    // The value is kept as the JSON text that was sent (whitespace between
    // tokens dropped): the size a write reports is that text's length.
    let size = item.value.len();
    let Ok(written) = runtime.block_on(store.write(writer, item)) else {
        return;
    };
    assert_eq!(written.size, size, "a write reports the value's size");
    let id = written.id.to_string();
    if let Some(update) = update {
        let _ = runtime.block_on(store.update(writer, &id, update));
    }
    match runtime.block_on(store.remove(writer, &id)) {
        // A lifetime of a few nanoseconds is accepted, and over by now.
        Ok(_) | Err(StoreError::NotFound(_)) => {}
        Err(error) => panic!("the writer cannot remove its own item: {error}"),
    }
}
