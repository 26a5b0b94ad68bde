//! Store quotas, the update-intent total hold, `after` above the latest seq
//! and the raw JSON value path, through the REST API (and one socket watch)
//! of an in-process server on 127.0.0.1.
//!
//! Limits are configured small; waits are on logged events with a bounded
//! deadline ([`BOUND`]), never a bare sleep.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use awc::http::Method;
use common::exchange::{Exchange, BOUND, PASS};
use common::wire::Wire;
use effex::protocol::rest::KeyKind;
use effex::server::ServerConfig;
use serde_json::{json, Value};
use tokio::time::{sleep, timeout};

// --- a counting allocator: bytes held by the whole process, and their peak --

/// Counts every live allocation of the process and the peak since a reset.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let held = HELD.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(held, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Tests that measure the process's allocations run alone: the others of
/// this file take this lock too.
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// --- REST helpers ------------------------------------------------------------

/// A test's turn on [`ALONE`], held as long as its [`Api`].
enum Turn {
    Shared {
        _guard: tokio::sync::RwLockReadGuard<'static, ()>,
    },
    Alone {
        _guard: tokio::sync::RwLockWriteGuard<'static, ()>,
    },
}

/// A server with `config` (small limits) and a raw HTTP client for it.
struct Api {
    exchange: Exchange,
    http: awc::Client,
    /// Dropped last, after the server.
    _turn: Turn,
}

impl Api {
    /// A server beside the other tests of this file.
    async fn start(config: ServerConfig) -> Self {
        let turn = Turn::Shared {
            _guard: ALONE.read().await,
        };
        Self::start_in(turn, config).await
    }

    /// A server while no other test of this file runs (for measuring the
    /// process's allocations).
    async fn alone(config: ServerConfig) -> Self {
        let turn = Turn::Alone {
            _guard: ALONE.write().await,
        };
        Self::start_in(turn, config).await
    }

    async fn start_in(turn: Turn, config: ServerConfig) -> Self {
        let _ = env_logger::builder().is_test(true).try_init();
        Api {
            exchange: Exchange::start(config).await,
            http: awc::Client::builder().timeout(BOUND).finish(),
            _turn: turn,
        }
    }

    /// A request; returns the status and the JSON reply (checking that an
    /// error carries its code and a message).
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.exchange.server.http_url());
        let request = self.http.request(method.clone(), &url).bearer_auth(key);
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.body().limit(4 << 20).await.expect("a body");
        let reply: Value = serde_json::from_slice(&bytes).expect("a JSON reply");
        if status >= 400 {
            assert_eq!(reply["code"], json!(status), "{method} {path}: {reply}");
            assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
        (status, reply)
    }

    async fn key(&self, kind: KeyKind) -> String {
        Exchange::key(&self.exchange.rest, &self.exchange.boss, kind).await
    }

    /// `POST /items`: the status and the reply.
    async fn write(&self, key: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, "/items", key, Some(body)).await
    }

    /// Writes `value` with `key`; panics unless 201. Returns the id.
    async fn written(&self, key: &str, body: Value) -> String {
        let (status, reply) = self.write(key, body).await;
        assert_eq!(status, 201, "{reply}");
        reply["id"].as_str().expect("an id").to_owned()
    }

    async fn update(&self, key: &str, id: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, &format!("/items/{id}"), key, Some(body))
            .await
    }

    async fn read(&self, key: &str, id: &str, intent: bool) -> (u16, Value) {
        let query = if intent { "?intent=update" } else { "" };
        self.call(Method::GET, &format!("/items/{id}{query}"), key, None)
            .await
    }

    async fn remove(&self, key: &str, id: &str) -> u16 {
        self.call(Method::DELETE, &format!("/items/{id}"), key, None)
            .await
            .0
    }

    async fn alias(&self, key: &str, alias: &str, id: &str) -> u16 {
        let body = json!({ "id": id });
        self.call(Method::PUT, &format!("/aliases/{alias}"), key, Some(body))
            .await
            .0
    }

    async fn info(&self) -> Value {
        let (status, reply) = self.call(Method::GET, "/info", "", None).await;
        assert_eq!(status, 200, "{reply}");
        reply
    }

    /// Polls the item's log (bounded) until it holds an event of `kind`.
    async fn logged(&self, key: &str, id: &str, kind: &str) {
        let path = format!("/items/{id}/events?event={kind}");
        timeout(BOUND, async {
            loop {
                let (status, page) = self.call(Method::GET, &path, key, None).await;
                assert_eq!(status, 200, "{page}");
                if page["events"].as_array().is_some_and(|e| !e.is_empty()) {
                    return;
                }
                sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} event of {id} within {BOUND:?}"));
    }
}

/// Asserts that `reply` is a refusal with `status` whose message names
/// `limit`.
fn assert_refused((status, reply): &(u16, Value), expected: u16, limit: &str) {
    assert_eq!(*status, expected, "{reply}");
    let error = reply["error"].as_str().unwrap_or_default();
    assert!(error.contains(limit), "the message names {limit}: {reply}");
}

/// An item of `owner` that two new updater keys may update: (the
/// updaters, the item's id).
async fn contested(api: &Api, owner: &str) -> (String, String, String) {
    let holder = api.key(KeyKind::Updater).await;
    let rival = api.key(KeyKind::Updater).await;
    let id = api
        .written(owner, json!({ "value": 0, "updaters": [holder, rival] }))
        .await;
    (holder, rival, id)
}

/// A JSON string value whose text is exactly `bytes` long.
fn text_of(bytes: usize) -> Value {
    json!("x".repeat(bytes - 2))
}

// --- quotas ------------------------------------------------------------------

#[actix_rt::test]
async fn a_full_store_is_507_while_reads_work_and_a_remove_makes_room() {
    let api = Api::start(ServerConfig {
        max_item_size: 2000,
        max_total_bytes: 1000,
        ..ServerConfig::default()
    })
    .await;
    let writer = &api.exchange.writer;
    let other = api.key(KeyKind::Writer).await;
    let first = api.written(writer, json!({ "value": text_of(600) })).await;

    let full = api.write(&other, json!({ "value": text_of(500) })).await;
    assert_refused(&full, 507, "max_total_bytes");
    // An update that grows past the total is refused too; one that fits is not.
    assert_eq!(
        api.update(writer, &first, json!({ "value": text_of(1001) }))
            .await
            .0,
        507
    );
    assert_eq!(
        api.update(writer, &first, json!({ "value": text_of(700) }))
            .await
            .0,
        200
    );
    let (status, read) = api.read(writer, &first, false).await;
    assert_eq!((status, read["size"].as_u64()), (200, Some(700)));
    assert_eq!(api.info().await["bytes"], json!(700));

    assert_eq!(api.remove(writer, &first).await, 200);
    assert_eq!(
        api.info().await["bytes"],
        json!(0),
        "a remove gives its bytes back"
    );
    api.written(&other, json!({ "value": text_of(500) })).await;
}

#[actix_rt::test]
async fn per_key_items_and_bytes_are_429_while_another_writer_keeps_writing() {
    let api = Api::start(ServerConfig {
        max_items_per_key: 2,
        max_bytes_per_key: 100,
        ..ServerConfig::default()
    })
    .await;
    let writer = &api.exchange.writer;
    let other = api.key(KeyKind::Writer).await;
    let updater = api.key(KeyKind::Updater).await;

    // Items: the third is refused, another key is not held back, a remove frees one.
    let a = api.written(writer, json!({ "value": 1 })).await;
    api.written(writer, json!({ "value": 2 })).await;
    let refused = api.write(writer, json!({ "value": 3 })).await;
    assert_refused(&refused, 429, "max_items_per_key");
    api.written(&other, json!({ "value": 3 })).await;
    assert_eq!(api.remove(writer, &a).await, 200);
    api.written(writer, json!({ "value": 3 })).await;

    // Bytes: 60 held, 50 more do not fit.
    let third = api.key(KeyKind::Writer).await;
    let big = api
        .written(
            &third,
            json!({ "value": text_of(60), "updaters": [updater] }),
        )
        .await;
    let refused = api.write(&third, json!({ "value": text_of(50) })).await;
    assert_refused(&refused, 429, "max_bytes_per_key");
    // An updater's update grows the owner's bytes: refused past the quota.
    assert_eq!(
        api.update(&updater, &big, json!({ "value": text_of(101) }))
            .await
            .0,
        429
    );
    // Shrinking gives bytes back (the new size replaces the old).
    assert_eq!(
        api.update(&updater, &big, json!({ "value": text_of(10) }))
            .await
            .0,
        200
    );
    api.written(&third, json!({ "value": text_of(50) })).await;
    // Each key has its own bytes: `other` holds 1 byte, so 90 more fit.
    api.written(&other, json!({ "value": text_of(90) })).await;
}

#[actix_rt::test]
async fn an_expired_item_gives_its_quota_back() {
    let api = Api::start(ServerConfig {
        max_items_per_key: 1,
        ..ServerConfig::default()
    })
    .await;
    let writer = &api.exchange.writer;
    let short = api
        .written(writer, json!({ "value": 1, "lifetime": 0.3 }))
        .await;
    assert_eq!(api.write(writer, json!({ "value": 2 })).await.0, 429);
    api.logged(writer, &short, "expire").await;
    api.written(writer, json!({ "value": 2 })).await;
    assert_eq!(api.info().await["bytes"], json!(1));
}

#[actix_rt::test]
async fn aliases_per_key_are_429_and_repointing_is_free() {
    let api = Api::start(ServerConfig {
        max_aliases_per_key: 2,
        ..ServerConfig::default()
    })
    .await;
    let writer = &api.exchange.writer;
    let other = api.key(KeyKind::Writer).await;
    let a = api
        .written(writer, json!({ "value": 1, "alias": "first" }))
        .await;
    let b = api.written(writer, json!({ "value": 2 })).await;
    assert_eq!(api.alias(writer, "second", &a).await, 201);
    assert_eq!(api.alias(writer, "third", &b).await, 429);
    let refused = api
        .write(writer, json!({ "value": 3, "alias": "third" }))
        .await;
    assert_refused(&refused, 429, "max_aliases_per_key");
    assert_eq!(
        api.info().await["items"],
        json!(2),
        "a write refused for its alias stores nothing"
    );
    assert_eq!(
        api.alias(writer, "first", &b).await,
        201,
        "re-pointing is free"
    );
    let c = api.written(&other, json!({ "value": 4 })).await;
    assert_eq!(api.alias(&other, "third", &c).await, 201);
}

// --- update intents ------------------------------------------------------------

#[actix_rt::test]
async fn renewals_stop_at_the_total_hold_and_then_others_take_the_item() {
    let lifetime = Duration::from_millis(1000);
    let max_hold = Duration::from_millis(2000);
    let api = Api::start(ServerConfig {
        intent_lifetime: lifetime,
        intent_max_hold: max_hold,
        ..ServerConfig::default()
    })
    .await;
    let (holder, rival, id) = contested(&api, &api.exchange.writer).await;

    // The holder renews well within each intent's lifetime (and updates in
    // between) until refused.
    let (status, first) = api.read(&holder, &id, true).await;
    assert_eq!(status, 200, "{first}");
    let first_expires = first["intentExpires"].as_u64().unwrap();
    let hold_end = first_expires - lifetime.as_millis() as u64 + max_hold.as_millis() as u64;
    let mut renewals = 0;
    let refused = timeout(BOUND, async {
        loop {
            sleep(Duration::from_millis(100)).await;
            let (status, reply) = api.read(&holder, &id, true).await;
            if status != 200 {
                return (status, reply);
            }
            renewals += 1;
            let expires = reply["intentExpires"].as_u64().unwrap();
            // (Slack for the server's two clock readings on a loaded machine;
            // an uncapped renewal would end up to a lifetime, 1 s, later.)
            assert!(
                expires <= hold_end + 250,
                "a renewal's lock ends by the total hold: {expires} > {hold_end}"
            );
            // Updating with the intent between renewals does not restart the hold.
            if renewals % 2 == 0 {
                let body = json!({ "value": renewals, "intent": reply["intent"] });
                let (status, reply) = api.update(&holder, &id, body).await;
                assert_eq!(status, 200, "{reply}");
            }
        }
    })
    .await
    .expect("the holder's renewals are refused once its total hold has passed");
    assert_eq!(refused.0, 423, "{}", refused.1);
    assert!(renewals >= 5, "renewed until the hold ended ({renewals})");
    // Others can take the item now.
    let (status, taken) = api.read(&rival, &id, true).await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(api.read(&holder, &id, true).await.0, 423);
}

#[actix_rt::test]
async fn the_owners_update_breaks_an_intent() {
    let api = Api::start(ServerConfig {
        intent_lifetime: Duration::from_secs(60),
        intent_max_hold: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;
    let owner = &api.exchange.writer;
    let (holder, rival, id) = contested(&api, owner).await;
    let (status, held) = api.read(&holder, &id, true).await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(api.update(&rival, &id, json!({ "value": 1 })).await.0, 423);

    let (status, updated) = api.update(owner, &id, json!({ "value": "owner's" })).await;
    assert_eq!(status, 200, "the owner is never locked out: {updated}");
    // The lock is gone: another updater may take the item.
    assert_eq!(api.read(&rival, &id, true).await.0, 200);
    let (_, read) = api.read(owner, &id, false).await;
    assert_eq!(read["value"], json!("owner's"));
}

// --- `after` above the latest seq ------------------------------------------------

#[actix_rt::test]
async fn after_above_the_latest_seq_is_a_gap_on_pull_and_socket() {
    let api = Api::start(ServerConfig::default()).await;
    let reader = &api.exchange.reader;
    let (id, _) = api.exchange.write(json!(0), Duration::from_secs(60)).await;
    let seq = api.exchange.update(&id, json!(1)).await;
    let above = seq + 1000;

    let pull = |since: u64| format!("/items/{id}/events?since={since}");
    let (status, page) = api.call(Method::GET, &pull(above), reader, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["gap"], json!(true), "since above latest: {page}");
    assert_eq!(page["events"], json!([]));
    let (_, page) = api.call(Method::GET, &pull(seq), reader, None).await;
    assert_eq!(page["gap"], json!(false), "since = latest: no gap");

    let url = api.exchange.server.ws_url();
    let mut wire = Wire::passed(&url, PASS, "gap-client").await;
    let watch = |after: u64| json!({"event": "update", "id": id, "key": reader, "after": after});
    let ack = wire.call(1, "watch", watch(above)).await;
    assert_eq!(ack["ok"], json!(true), "{ack}");
    assert_eq!(ack["gap"], json!(true), "after above latest: {ack}");
    let ack = wire.call(2, "watch", watch(seq)).await;
    assert_eq!(
        (ack["ok"].clone(), ack["gap"].clone()),
        (json!(true), json!(false)),
        "{ack}"
    );
}

// --- raw JSON values -------------------------------------------------------------

#[actix_rt::test]
async fn a_1mb_json_array_costs_about_its_text_size() {
    const MAX: usize = 2 << 20;
    let api = Api::alone(ServerConfig {
        max_item_size: MAX,
        ..ServerConfig::default()
    })
    .await;
    let writer = &api.exchange.writer;
    // 1 MB of small numbers: ~16 MB as a serde_json::Value tree (32 bytes each).
    let array: Vec<u8> = (0..500_000).map(|i| (i % 10) as u8).collect();
    let text = serde_json::to_string(&array).unwrap();
    assert!(text.len() > 1_000_000);
    let body = format!(r#"{{"value":{text}}}"#);
    let url = format!("{}/items", api.exchange.server.http_url());

    let before = HELD.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let mut response = api
        .http
        .post(&url)
        .bearer_auth(writer)
        .content_type("application/json")
        .send_body(body)
        .await
        .expect("the write is answered");
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let reply: Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    assert_eq!(response.status().as_u16(), 201, "{reply}");

    // The store keeps the text itself, and counts exactly that.
    assert_eq!(reply["size"], json!(text.len()));
    assert_eq!(api.info().await["bytes"], json!(text.len()));
    let id = reply["id"].as_str().unwrap();
    let (status, read) = api.read(writer, id, false).await;
    assert_eq!(status, 200);
    assert_eq!(read["value"].as_array().map(Vec::len), Some(500_000));
    // On its way in the value was never a tree: the request's peak is a few
    // copies of the text (the client's and the server's buffers, the checked
    // text, the stored text: about 4.3 MB), far below the ~21 MB measured
    // when the body goes through a Value tree.
    assert!(
        peak < 8 * text.len(),
        "writing {} bytes of JSON peaked at {peak} bytes allocated",
        text.len()
    );
}

// --- settings --------------------------------------------------------------------

#[test]
fn quota_settings_are_validated_with_what_to_fix() {
    let zero = ServerConfig {
        max_items_per_key: 0,
        ..ServerConfig::default()
    };
    let err = zero.validate().unwrap_err().to_string();
    assert!(err.contains("max_items_per_key is 0"), "{err}");
    let short_hold = ServerConfig {
        intent_lifetime: Duration::from_secs(10),
        intent_max_hold: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let err = short_hold.validate().unwrap_err().to_string();
    assert!(
        err.contains("intent_max_hold") && err.contains("at least intent_lifetime"),
        "{err}"
    );
    assert!(ServerConfig::default().validate().is_ok());
}
