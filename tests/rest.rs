//! The REST API (protocol.md §3) through real HTTP on an in-process server on
//! port 0: status codes and bodies with raw awc requests, and the typed
//! `EffexClient` on top.
//!
//! Time-dependent behaviour uses sub-second configured lifetimes; waits are
//! on the store's own events or bounded polling, never a bare sleep.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use awc::http::Method;
use bytes::Bytes;
use effex::client::{EffexClient, EffexError};
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{Server, ServerConfig, ServerHandle, BODY_HEADROOM};
use effex::store::{EventKind, MemoryStoreConfig};
use serde_json::{json, Value};
use tokio::time::timeout;

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(5);
const MAX_ITEM_SIZE: usize = 1024;
const MAX_LIFETIME: Duration = Duration::from_secs(60);
/// Long enough that no intent lapses in a test that does not wait for it.
const INTENT_LIFETIME: Duration = Duration::from_secs(60);
/// The intent lifetime of the test that waits for one to lapse: several
/// round trips long even on a loaded machine, yet a short wait.
const LAPSING_INTENT: Duration = Duration::from_secs(2);

fn config() -> ServerConfig {
    ServerConfig {
        max_item_size: MAX_ITEM_SIZE,
        max_lifetime: MAX_LIFETIME,
        intent_lifetime: INTENT_LIFETIME,
        shutdown_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// An in-process server and a raw HTTP client for it.
struct Fixture {
    server: ServerHandle,
    http: awc::Client,
    boss: String,
}

/// What a raw request got back.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    allow: Option<String>,
}

impl Reply {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

async fn start(config: ServerConfig) -> Fixture {
    let server = common::server::start(config).await;
    let boss = server.boss_key().expect("the embedded store").to_owned();
    Fixture {
        server,
        http: awc::Client::builder().timeout(WAIT).finish(),
        boss,
    }
}

/// A request body: JSON, raw bytes, or a chunked stream of bytes.
enum Body {
    None,
    Json(Value),
    Raw(&'static str),
    Bytes(Vec<u8>),
    Chunked(Vec<u8>),
}

impl Fixture {
    /// Sends a request and checks the protocol's invariants on the reply:
    /// JSON with `ok`; on an error `{"ok":false,"code","error"}` with `code`
    /// as the status and a message.
    async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Body) -> Reply {
        let url = format!("{}{path}", self.server.http_url());
        let mut request = self.http.request(method.clone(), &url);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let sent = match body {
            Body::None => request.send().await,
            Body::Json(value) => request.send_json(&value).await,
            Body::Raw(text) => request.send_body(text).await,
            Body::Bytes(bytes) => request.send_body(bytes).await,
            Body::Chunked(bytes) => {
                let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
                    .chunks(16 * 1024)
                    .map(|c| Ok(Bytes::copy_from_slice(c)))
                    .collect();
                request
                    .send_stream(futures_util::stream::iter(chunks))
                    .await
            }
        };
        let mut response = sent.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let allow = response
            .headers()
            .get("allow")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.body().await.expect("a body");
        let body: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(body["ok"], json!(status < 400), "{method} {path}: {body}");
        if status >= 400 {
            assert_eq!(body["code"], json!(status), "{method} {path}: {body}");
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{method} {path}: {body}"
            );
            assert_eq!(
                body.as_object().unwrap().len(),
                3,
                "only ok, code, error: {body}"
            );
        }
        Reply {
            status,
            body,
            allow,
        }
    }

    async fn keys(&self, kind: &str, count: usize, seconds: Option<f64>) -> Vec<String> {
        let mut request = json!({"type": kind, "count": count});
        if let Some(seconds) = seconds {
            request["seconds"] = json!(seconds);
        }
        let reply = self
            .call(Method::POST, "/keys", Some(&self.boss), Body::Json(request))
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        assert_eq!(reply.body["type"], kind);
        serde_json::from_value(reply.body["keys"].clone()).unwrap()
    }

    async fn key(&self, kind: &str) -> String {
        self.keys(kind, 1, None).await.remove(0)
    }

    /// Writes an item and returns its id (201 expected).
    async fn write(&self, key: &str, item: Value) -> String {
        let reply = self
            .call(Method::POST, "/items", Some(key), Body::Json(item))
            .await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Removes an item (by id or alias) and returns the reply's body (200
    /// expected).
    async fn remove(&self, key: &str, item: &str) -> Value {
        let reply = self
            .call(
                Method::DELETE,
                &format!("/items/{item}"),
                Some(key),
                Body::None,
            )
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Polls `attempt` (bounded by [`WAIT`]) until it returns `Some`.
async fn poll<T, F, Fut>(what: &str, attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    common::poll::poll_until(what, WAIT, attempt).await
}

// ---- liveness, info, routes ---------------------------------------------------

#[actix_rt::test]
async fn ping_and_info() {
    let fx = start(config()).await;
    let ping = fx.call(Method::GET, "/ping", None, Body::None).await;
    assert_eq!(
        (ping.status, ping.body),
        (200, json!({"ok": true, "value": "PONG"}))
    );
    let info = fx.call(Method::GET, "/info", None, Body::None).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.body["api"], "effex");
    assert_eq!(info.body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info.body["store"], common::store_switch::chosen().name());
    assert_eq!(info.body["maxSize"], MAX_ITEM_SIZE);
    assert_eq!(info.body["maxLifetime"], 60.0);
    fx.server.stop().await;
}

#[actix_rt::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_json() {
    let fx = start(config()).await;
    for path in ["/", "/nope", "/items/a/b/c", "/keys/extra", "/aliases"] {
        let reply = fx.call(Method::GET, path, None, Body::None).await;
        assert_eq!(reply.status, 404, "{path}: {:?}", reply.body);
        assert!(reply.error().contains("no route"), "{}", reply.error());
    }
    for (method, path, allow) in [
        (Method::POST, "/ping", "GET"),
        (Method::DELETE, "/keys", "POST"),
        (Method::GET, "/items", "POST"),
        (Method::PATCH, "/items/x", "GET, PUT, DELETE"),
        (Method::GET, "/aliases/x", "PUT"),
        (Method::DELETE, "/items/x/events", "GET"),
        (Method::POST, "/socket.io/", "GET"),
    ] {
        let reply = fx.call(method.clone(), path, None, Body::None).await;
        assert_eq!(reply.status, 405, "{method} {path}: {:?}", reply.body);
        assert_eq!(reply.allow.as_deref(), Some(allow), "{method} {path}");
        assert!(reply.error().contains(allow), "{}", reply.error());
    }
    // The push endpoint still answers its own GET.
    let push = fx
        .call(Method::GET, "/socket.io/?EIO=3", None, Body::None)
        .await;
    assert_eq!(push.status, 400);
    fx.server.stop().await;
}

#[actix_rt::test]
async fn webhook_watch_routes_are_served_by_the_hub() {
    // Their behaviour is tested in tests/push.rs; here: mounted, JSON errors.
    let fx = start(config()).await;
    let writer = fx.key("writer").await;
    let post = fx
        .call(Method::POST, "/watches", None, Body::Json(json!({})))
        .await;
    assert_eq!(post.status, 401);
    assert!(post.error().contains("Bearer"), "{}", post.error());
    let bad = fx
        .call(
            Method::POST,
            "/watches",
            Some(&writer),
            Body::Json(json!({})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let delete = fx
        .call(Method::DELETE, "/watches/w1", Some(&writer), Body::None)
        .await;
    // The hub's 404 (no such watch), not the router's (an unmounted route
    // answers 404 too, saying "no route").
    assert_eq!(delete.status, 404);
    assert!(
        delete.error().contains("no watch \"w1\""),
        "{}",
        delete.error()
    );
    fx.server.stop().await;
}

// ---- keys ----------------------------------------------------------------------

#[actix_rt::test]
async fn keys_travel_in_the_header_or_the_query_and_are_checked() {
    let fx = start(config()).await;
    let writer = fx.key("writer").await;
    let id = fx.write(&writer, json!({"value": 1})).await;

    let by_query = fx
        .call(
            Method::GET,
            &format!("/items/{id}?key={writer}"),
            None,
            Body::None,
        )
        .await;
    assert_eq!((by_query.status, &by_query.body["value"]), (200, &json!(1)));

    let none = fx
        .call(Method::GET, &format!("/items/{id}"), None, Body::None)
        .await;
    assert_eq!(none.status, 401);
    assert!(
        none.error().contains("Authorization: Bearer"),
        "{}",
        none.error()
    );

    let url = format!("{}/items/{id}", fx.server.http_url());
    let mut basic = fx
        .http
        .get(&url)
        .insert_header(("Authorization", format!("Basic {writer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    let body: Value = basic.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");

    let unknown = format!("wk{}", "0".repeat(32));
    for key in [unknown.as_str(), "not-a-key-at-all"] {
        let reply = fx
            .call(Method::GET, &format!("/items/{id}"), Some(key), Body::None)
            .await;
        assert_eq!(reply.status, 401, "{key}");
    }
    fx.server.stop().await;
}

#[actix_rt::test]
async fn make_keys_needs_the_boss_key_and_a_valid_request() {
    let fx = start(config()).await;
    let made = fx
        .call(
            Method::POST,
            "/keys",
            Some(&fx.boss),
            Body::Json(json!({"type": "reader", "count": 3, "seconds": 120})),
        )
        .await;
    assert_eq!(made.status, 201);
    let keys = made.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.as_str().unwrap().starts_with("rk")));
    let valid_till = made.body["validTill"].as_u64().unwrap();
    assert!(
        valid_till.abs_diff(now_ms() + 120_000) < 5_000,
        "{valid_till}"
    );

    let bad_type = fx
        .call(
            Method::POST,
            "/keys",
            Some(&fx.boss),
            Body::Json(json!({"type": "boss"})),
        )
        .await;
    assert_eq!(bad_type.status, 400);
    assert!(
        bad_type.error().contains("unknown variant"),
        "{}",
        bad_type.error()
    );
    fx.server.stop().await;
}

// ---- the permission matrix ------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keys,
    Write,
    Read,
    ReadIntent,
    Update,
    Remove,
    Alias,
    Events,
}

const OPS: [Op; 8] = [
    Op::Keys,
    Op::Write,
    Op::Read,
    Op::ReadIntent,
    Op::Update,
    Op::Remove,
    Op::Alias,
    Op::Events,
];

/// Each key type × each operation → the status, on a fresh item per cell
/// (written by `owner` with `readers: [listed reader, expired reader]` and
/// `updaters: [listed updater]`), so no cell sees another's lock or removal.
#[actix_rt::test]
async fn permission_matrix() {
    let fx = start(config()).await;
    let owner = fx.key("writer").await;
    let other_writer = fx.key("writer").await;
    let reader = fx.key("reader").await;
    let updater = fx.key("updater").await;
    let unlisted_reader = fx.key("reader").await;
    let unlisted_updater = fx.key("updater").await;
    let expired = fx.keys("reader", 1, Some(0.05)).await.remove(0);
    let unknown = format!("rk{}", "0".repeat(32));
    // Wait (bounded) until the short-lived key is refused.
    let probe = fx
        .write(&owner, json!({"value": 0, "readers": [expired.clone()]}))
        .await;
    poll("the short-lived key expires", || {
        let fx = &fx;
        let (expired, probe) = (expired.clone(), probe.clone());
        async move {
            let reply = fx
                .call(
                    Method::GET,
                    &format!("/items/{probe}"),
                    Some(&expired),
                    Body::None,
                )
                .await;
            (reply.status == 401).then_some(())
        }
    })
    .await;

    let boss = fx.boss.clone();
    #[rustfmt::skip]
    let matrix: Vec<(&str, Option<&str>, [u16; 8])> = vec![
        //                                     keys write read intent update remove alias events
        ("boss",             Some(&boss),             [201, 403, 403, 403, 403, 403, 403, 403]),
        ("owner",            Some(&owner),            [403, 201, 200, 200, 200, 200, 201, 200]),
        ("other writer",     Some(&other_writer),     [403, 201, 403, 403, 403, 403, 403, 403]),
        ("listed reader",    Some(&reader),           [403, 403, 200, 403, 403, 403, 403, 200]),
        ("listed updater",   Some(&updater),          [403, 403, 200, 200, 200, 403, 403, 200]),
        ("unlisted reader",  Some(&unlisted_reader),  [403, 403, 403, 403, 403, 403, 403, 403]),
        ("unlisted updater", Some(&unlisted_updater), [403, 403, 403, 403, 403, 403, 403, 403]),
        ("expired reader",   Some(&expired),          [401, 401, 401, 401, 401, 401, 401, 401]),
        ("unknown key",      Some(&unknown),          [401, 401, 401, 401, 401, 401, 401, 401]),
        ("no key",           None,                    [401, 401, 401, 401, 401, 401, 401, 401]),
    ];
    let mut wrong = Vec::new();
    for (who, key, expected) in &matrix {
        for (op, want) in OPS.iter().zip(expected) {
            let id = fx
                .write(
                    &owner,
                    json!({"value": "v", "readers": [reader, expired], "updaters": [updater]}),
                )
                .await;
            let (method, path, body) = match op {
                Op::Keys => (
                    Method::POST,
                    "/keys".to_owned(),
                    Body::Json(json!({"type": "reader"})),
                ),
                Op::Write => (
                    Method::POST,
                    "/items".to_owned(),
                    Body::Json(json!({"value": 1})),
                ),
                Op::Read => (Method::GET, format!("/items/{id}"), Body::None),
                Op::ReadIntent => (
                    Method::GET,
                    format!("/items/{id}?intent=update"),
                    Body::None,
                ),
                Op::Update => (
                    Method::PUT,
                    format!("/items/{id}"),
                    Body::Json(json!({"value": 2})),
                ),
                Op::Remove => (Method::DELETE, format!("/items/{id}"), Body::None),
                Op::Alias => (
                    Method::PUT,
                    format!("/aliases/matrix-{}", &id[..12]),
                    Body::Json(json!({"id": id})),
                ),
                Op::Events => (Method::GET, format!("/items/{id}/events"), Body::None),
            };
            let reply = fx.call(method, &path, *key, body).await;
            if reply.status != *want {
                wrong.push(format!(
                    "{who} × {op:?}: got {} want {want} ({})",
                    reply.status,
                    reply.error()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "permission matrix:\n{}", wrong.join("\n"));
    fx.server.stop().await;
}

// ---- lifetimes and expiry ---------------------------------------------------------

#[actix_rt::test]
async fn lifetimes_are_capped_by_the_server_and_the_key() {
    let fx = start(config()).await;
    let writer = fx.key("writer").await;
    let asked = |lifetime: f64| json!({"value": 1, "lifetime": lifetime});

    let long = fx
        .call(
            Method::POST,
            "/items",
            Some(&writer),
            Body::Json(asked(3600.0)),
        )
        .await;
    assert_eq!(long.status, 201);
    assert_eq!(long.body["lifetime"], json!(60.0), "capped by maxLifetime");
    let valid_till = long.body["validTill"].as_u64().unwrap();
    assert!(valid_till.abs_diff(now_ms() + 60_000) < 5_000);

    let fraction = fx
        .call(
            Method::POST,
            "/items",
            Some(&writer),
            Body::Json(asked(0.25)),
        )
        .await;
    assert_eq!(
        fraction.body["lifetime"],
        json!(0.25),
        "fractions of a second"
    );

    let default = fx
        .call(
            Method::POST,
            "/items",
            Some(&writer),
            Body::Json(json!({"value": 1})),
        )
        .await;
    assert_eq!(
        default.body["lifetime"],
        json!(60.0),
        "the default, capped too"
    );

    let short_key = fx.keys("writer", 1, Some(2.0)).await.remove(0);
    let by_key = fx
        .call(
            Method::POST,
            "/items",
            Some(&short_key),
            Body::Json(asked(30.0)),
        )
        .await;
    assert_eq!(by_key.status, 201);
    let lifetime = by_key.body["lifetime"].as_f64().unwrap();
    assert!(lifetime <= 2.0, "never outlives its key: {lifetime}");

    let negative = fx
        .call(
            Method::POST,
            "/items",
            Some(&writer),
            Body::Json(asked(-1.0)),
        )
        .await;
    assert_eq!(negative.status, 400);
    assert!(negative.error().contains("seconds"), "{}", negative.error());
    fx.server.stop().await;
}

#[actix_rt::test]
async fn an_item_is_unreadable_once_it_expires() {
    let fx = start(config()).await;
    let writer = fx.key("writer").await;
    let mut events = fx.server.store().subscribe();
    let id = fx
        .write(&writer, json!({"value": "brief", "lifetime": 0.2}))
        .await;
    let read = fx
        .call(
            Method::GET,
            &format!("/items/{id}"),
            Some(&writer),
            Body::None,
        )
        .await;
    assert_eq!((read.status, &read.body["value"]), (200, &json!("brief")));
    let valid_till = read.body["validTill"].as_u64().unwrap();

    // Wait on the store's own expire event (bounded), not a guessed sleep.
    let expired = timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("the store's events");
            let Some(event) = event.into_item() else {
                continue;
            };
            if event.kind == EventKind::Expire && event.id.to_string() == id {
                return event;
            }
        }
    })
    .await
    .expect("the item expires within the wait");
    assert_eq!(expired.at.as_millis(), valid_till);
    assert!(now_ms() >= valid_till);

    let gone = fx
        .call(
            Method::GET,
            &format!("/items/{id}"),
            Some(&writer),
            Body::None,
        )
        .await;
    assert_eq!(gone.status, 404, "{:?}", gone.body);
    let update = fx
        .call(
            Method::PUT,
            &format!("/items/{id}"),
            Some(&writer),
            Body::Json(json!({"value": 2})),
        )
        .await;
    assert_eq!(update.status, 404);
    // The final event stays in the log for those who may read it.
    let log = fx
        .call(
            Method::GET,
            &format!("/items/{id}/events"),
            Some(&writer),
            Body::None,
        )
        .await;
    assert_eq!(log.status, 200);
    assert_eq!(log.body["events"][0]["event"], "expire");
    assert_eq!(log.body["events"][0]["seq"], expired.seq);
    fx.server.stop().await;
}

/// A gone item's last event (kept with its tombstone) leaves only to the
/// keys that could read the item: its owner and listed reader see the
/// `remove`; another key gets 403, and an unknown key 401.
#[actix_rt::test]
async fn a_gone_items_final_event_is_read_only_by_its_readers() {
    let fx = start(config()).await;
    let owner = fx.key("writer").await;
    let reader = fx.key("reader").await;
    let stranger = fx.key("reader").await;
    let id = fx
        .write(&owner, json!({"value": "v", "readers": [reader]}))
        .await;
    fx.remove(&owner, &id).await;
    let path = format!("/items/{id}/events");
    for key in [&owner, &reader] {
        let log = fx.call(Method::GET, &path, Some(key), Body::None).await;
        assert_eq!(log.status, 200, "{:?}", log.body);
        assert_eq!(log.body["events"][0]["event"], "remove", "{:?}", log.body);
    }
    let refused = fx
        .call(Method::GET, &path, Some(&stranger), Body::None)
        .await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(refused.body.get("events").is_none(), "{:?}", refused.body);
    let unknown = fx
        .call(Method::GET, &path, Some("rk-not-a-key"), Body::None)
        .await;
    assert_eq!(unknown.status, 401, "{:?}", unknown.body);
    fx.server.stop().await;
}

// ---- update intents -------------------------------------------------------------------

/// An item with an owner and two updaters, on `fx`.
struct Contested {
    owner: String,
    holder: String,
    other: String,
    item: String,
}

impl Contested {
    async fn on(fx: &Fixture) -> Self {
        let owner = fx.key("writer").await;
        let holder = fx.key("updater").await;
        let other = fx.key("updater").await;
        let id = fx
            .write(&owner, json!({"value": 0, "updaters": [holder, other]}))
            .await;
        Contested {
            owner,
            holder,
            other,
            item: format!("/items/{id}"),
        }
    }

    /// PUT with `key`, and the intent id if given.
    async fn update(&self, fx: &Fixture, key: &str, value: i64, intent: Option<&str>) -> Reply {
        let mut body = json!({"value": value});
        if let Some(intent) = intent {
            body["intent"] = json!(intent);
        }
        fx.call(Method::PUT, &self.item, Some(key), Body::Json(body))
            .await
    }

    /// GET ?intent=update with `key`.
    async fn take_intent(&self, fx: &Fixture, key: &str) -> Reply {
        let path = format!("{}?intent=update", self.item);
        fx.call(Method::GET, &path, Some(key), Body::None).await
    }
}

#[actix_rt::test]
async fn an_intent_locks_out_others_until_used() {
    let fx = start(config()).await;
    let c = Contested::on(&fx).await;

    let before = now_ms();
    let held = c.take_intent(&fx, &c.holder).await;
    let after = now_ms();
    assert_eq!(held.status, 200);
    let intent = held.body["intent"].as_str().unwrap().to_owned();
    let expires = held.body["intentExpires"].as_u64().unwrap();
    let lifetime = INTENT_LIFETIME.as_millis() as u64;
    assert!(
        (before + lifetime..=after + lifetime).contains(&expires),
        "intentExpires {expires} is not the intent lifetime after the read ({before}..={after})"
    );

    for (who, key) in [
        ("another updater", &c.other),
        ("the holder without the id", &c.holder),
    ] {
        let reply = c.update(&fx, key, 1, None).await;
        assert_eq!(reply.status, 423, "{who}: {:?}", reply.body);
        assert!(reply.error().contains("locked"), "{}", reply.error());
    }
    assert_eq!(c.take_intent(&fx, &c.other).await.status, 423);
    let plain = fx
        .call(Method::GET, &c.item, Some(&c.other), Body::None)
        .await;
    assert_eq!(plain.status, 200, "plain reads ignore intents");

    let used = c.update(&fx, &c.holder, 7, Some(&intent)).await;
    assert_eq!(used.status, 200, "the holder updates with its intent id");
    assert_eq!(
        c.update(&fx, &c.other, 8, None).await.status,
        200,
        "the lock is gone"
    );
    // The owner's update is never locked out: it breaks another's intent.
    assert_eq!(c.take_intent(&fx, &c.holder).await.status, 200);
    assert_eq!(c.update(&fx, &c.owner, 9, None).await.status, 200);
    assert_eq!(c.take_intent(&fx, &c.other).await.status, 200);

    let bad = fx
        .call(
            Method::GET,
            &format!("{}?intent=yes", c.item),
            Some(&c.holder),
            Body::None,
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.error().contains("intent=update"), "{}", bad.error());
    fx.server.stop().await;
}

#[actix_rt::test]
async fn an_intent_lapses_by_itself() {
    let fx = start(ServerConfig {
        intent_lifetime: LAPSING_INTENT,
        ..config()
    })
    .await;
    let c = Contested::on(&fx).await;
    let held = c.take_intent(&fx, &c.holder).await;
    assert_eq!(held.status, 200);
    let expires = held.body["intentExpires"].as_u64().unwrap();
    // Locked until it lapses, then the other updater gets in. Every answer
    // is checked against the clock, so a slow round trip cannot fail this.
    let got_in_at = poll("the intent lapses", || {
        let attempt = c.update(&fx, &c.other, 10, None);
        async move {
            let reply = attempt.await;
            let at = now_ms();
            match reply.status {
                423 => None,
                200 => {
                    // +2: the server's and this clock's millisecond roundings.
                    assert!(
                        at + 2 >= expires,
                        "got in at {at}, before the lapse at {expires}"
                    );
                    Some(at)
                }
                _ => panic!("{:?}", reply.body),
            }
        }
    })
    .await;
    assert!(got_in_at + 2 >= expires);
    fx.server.stop().await;
}

// ---- aliases ------------------------------------------------------------------------

#[actix_rt::test]
async fn an_alias_can_be_repointed_by_its_owner_only() {
    let fx = start(config()).await;
    let owner = fx.key("writer").await;
    let rival = fx.key("writer").await;
    let first = fx.write(&owner, json!({"value": "first"})).await;
    let second = fx.write(&owner, json!({"value": "second"})).await;
    let rivals = fx.write(&rival, json!({"value": "rival"})).await;
    let point = |key: String, alias: &'static str, id: String| {
        let fx = &fx;
        async move {
            fx.call(
                Method::PUT,
                &format!("/aliases/{alias}"),
                Some(&key),
                Body::Json(json!({"id": id})),
            )
            .await
        }
    };
    let value_of = |alias: &'static str| {
        let fx = &fx;
        let owner = owner.clone();
        async move {
            fx.call(
                Method::GET,
                &format!("/items/{alias}"),
                Some(&owner),
                Body::None,
            )
            .await
        }
    };

    let made = point(owner.clone(), "current", first.clone()).await;
    assert_eq!(made.status, 201);
    assert_eq!(
        made.body,
        json!({"ok": true, "alias": "current", "id": first})
    );
    assert_eq!(value_of("current").await.body["value"], "first");

    assert_eq!(
        point(owner.clone(), "current", second.clone()).await.status,
        201
    );
    let now = value_of("current").await;
    assert_eq!(
        (now.body["value"].clone(), now.body["id"].clone()),
        (json!("second"), json!(second))
    );

    let taken = point(rival.clone(), "current", rivals).await;
    assert_eq!(taken.status, 409, "{:?}", taken.body);

    // Updates and removes through the alias reach the item it points at.
    let updated = fx
        .call(
            Method::PUT,
            "/items/current",
            Some(&owner),
            Body::Json(json!({"value": "second, updated"})),
        )
        .await;
    assert_eq!(updated.body["id"], json!(second));
    assert_eq!(fx.remove(&owner, "current").await["id"], json!(second));
    assert_eq!(
        value_of("current").await.status,
        404,
        "it points at a gone item"
    );
    assert_eq!(point(owner.clone(), "current", first).await.status, 201);
    assert_eq!(value_of("current").await.body["value"], "first");

    assert_eq!(value_of("never-made").await.status, 404);
    let bad = point(owner.clone(), "has%20space", second).await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    fx.server.stop().await;
}

// ---- limits and malformed requests ---------------------------------------------------

#[actix_rt::test]
async fn too_large_is_413_with_the_limit_in_the_message() {
    let fx = start(config()).await;
    let writer = fx.key("writer").await;
    let id = fx.write(&writer, json!({"value": 1})).await;

    // Over the store's maxSize, within the body limit: the store's 413.
    let big = json!({"value": "x".repeat(2000)});
    let item = fx
        .call(
            Method::POST,
            "/items",
            Some(&writer),
            Body::Json(big.clone()),
        )
        .await;
    assert_eq!(item.status, 413);
    assert!(
        item.error().contains("maxSize is 1024 bytes"),
        "{}",
        item.error()
    );
    let update = fx
        .call(
            Method::PUT,
            &format!("/items/{id}"),
            Some(&writer),
            Body::Json(big),
        )
        .await;
    assert_eq!(update.status, 413);

    // Over the body limit: refused before parsing, announced or chunked.
    let limit = MAX_ITEM_SIZE + BODY_HEADROOM;
    let huge = format!(r#"{{"value":"{}"}}"#, "y".repeat(limit + 10)).into_bytes();
    let announced = fx
        .call(
            Method::POST,
            "/items",
            Some(&writer),
            Body::Bytes(huge.clone()),
        )
        .await;
    assert_eq!(announced.status, 413);
    assert!(
        announced
            .error()
            .contains(&format!("the limit is {limit} bytes")),
        "{}",
        announced.error()
    );
    let chunked = fx
        .call(Method::POST, "/items", Some(&writer), Body::Chunked(huge))
        .await;
    assert_eq!(chunked.status, 413);
    assert!(
        chunked.error().contains(&limit.to_string()),
        "{}",
        chunked.error()
    );

    // The connection pool is still healthy afterwards.
    let ping = fx.call(Method::GET, "/ping", None, Body::None).await;
    assert_eq!(ping.status, 200);
    fx.server.stop().await;
}

#[actix_rt::test]
async fn malformed_requests_are_400_saying_what_is_wrong() {
    let fx = start(config()).await;
    let writer = fx.key("writer").await;
    let id = fx.write(&writer, json!({"value": 1})).await;
    let item = format!("/items/{id}");
    for (method, path, body, says) in [
        (
            Method::POST,
            "/items",
            Body::Raw(r#"{"value":"#),
            "line 1 column 9",
        ),
        (
            Method::POST,
            "/items",
            Body::Raw("not json"),
            "not valid JSON",
        ),
        (Method::POST, "/items", Body::Raw(""), "empty"),
        (
            Method::POST,
            "/items",
            Body::Json(json!({"valu": 1})),
            "missing field `value`",
        ),
        (
            Method::POST,
            "/items",
            Body::Json(json!({"value": 1, "readers": "rk"})),
            "invalid type",
        ),
        (
            Method::POST,
            "/items",
            Body::Json(json!({"value": 1, "readers": ["wk1"]})),
            "reader",
        ),
        (Method::PUT, &item, Body::Raw("{"), "not valid JSON"),
        (
            Method::PUT,
            "/aliases/x",
            Body::Json(json!({"item": id})),
            "missing field `id`",
        ),
        (
            Method::POST,
            "/keys",
            Body::Json(json!({"count": 1})),
            "missing field `type`",
        ),
    ] {
        let key = if path == "/keys" {
            fx.boss.clone()
        } else {
            writer.clone()
        };
        let reply = fx.call(method.clone(), path, Some(&key), body).await;
        assert_eq!(reply.status, 400, "{method} {path}: {:?}", reply.body);
        assert!(
            reply.error().contains(says),
            "{method} {path}: {}",
            reply.error()
        );
    }
    for (query, says) in [
        ("since=-1", "since"),
        ("since=x", "since"),
        ("event=explode", "explode"),
    ] {
        let reply = fx
            .call(
                Method::GET,
                &format!("{item}/events?{query}"),
                Some(&writer),
                Body::None,
            )
            .await;
        assert_eq!(reply.status, 400, "{query}");
        assert!(reply.error().contains(says), "{query}: {}", reply.error());
    }
    let unknown = fx
        .call(
            Method::GET,
            &format!("/items/{}", "0".repeat(32)),
            Some(&writer),
            Body::None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    fx.server.stop().await;
}

// ---- the event log ---------------------------------------------------------------------

#[actix_rt::test]
async fn events_since_returns_exactly_the_later_events_in_order() {
    let fx = start(config()).await;
    let owner = fx.key("writer").await;
    let reader = fx.key("reader").await;
    let id = fx
        .write(&owner, json!({"value": 0, "readers": [reader]}))
        .await;
    let noise = fx.write(&owner, json!({"value": 0})).await;
    let mut seqs = Vec::new();
    for i in 1..=5 {
        let reply = fx
            .call(
                Method::PUT,
                &format!("/items/{id}"),
                Some(&owner),
                Body::Json(json!({"value": i})),
            )
            .await;
        seqs.push(reply.body["seq"].as_u64().unwrap());
        // Another item's events interleave, so seqs of this item have gaps.
        fx.call(
            Method::PUT,
            &format!("/items/{noise}"),
            Some(&owner),
            Body::Json(json!({"value": i})),
        )
        .await;
    }
    let events = |query: String| {
        let fx = &fx;
        let (reader, id) = (reader.clone(), id.clone());
        async move {
            let reply = fx
                .call(
                    Method::GET,
                    &format!("/items/{id}/events?{query}"),
                    Some(&reader),
                    Body::None,
                )
                .await;
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            reply.body
        }
    };
    let seq_list = |body: &Value| -> Vec<u64> {
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };

    let later = events(format!("since={}", seqs[1])).await;
    assert_eq!(seq_list(&later), seqs[2..].to_vec());
    assert!(later["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["event"] == "update"));
    assert_eq!(later["oldest"], json!(seqs[0]));
    assert_eq!(seq_list(&events("since=0".into()).await), seqs);
    assert_eq!(
        seq_list(&events(String::new()).await),
        seqs,
        "since defaults to 0"
    );
    assert_eq!(
        seq_list(&events(format!("since={}", seqs[4])).await),
        Vec::<u64>::new()
    );
    assert_eq!(
        seq_list(&events("event=remove".into()).await),
        Vec::<u64>::new()
    );

    let remove_seq = fx.remove(&owner, &id).await["seq"].as_u64().unwrap();
    let after = events(format!("since={}", seqs[4])).await;
    assert_eq!(seq_list(&after), vec![remove_seq]);
    assert_eq!(after["events"][0]["event"], "remove");
    let updates_only = events(format!("since={}&event=update", seqs[2])).await;
    assert_eq!(seq_list(&updates_only), seqs[3..].to_vec());
    fx.server.stop().await;
}

// ---- the typed client ---------------------------------------------------------------------

#[actix_rt::test]
async fn effex_client_covers_every_operation() {
    let fx = start(config()).await;
    // A push URL works as well: it is mapped to the HTTP base.
    let effex = EffexClient::new(fx.server.ws_url()).unwrap();
    assert_eq!(effex.base_url(), fx.server.http_url());
    effex.ping().await.unwrap();
    let info = effex.info().await.unwrap();
    assert_eq!(
        (info.api.as_str(), info.store.as_str(), info.max_size),
        (
            "effex",
            common::store_switch::chosen().name(),
            MAX_ITEM_SIZE
        )
    );
    assert_eq!(info.max_lifetime, MAX_LIFETIME);

    let writer = effex
        .make_keys(&fx.boss, KeysRequest::new(KeyKind::Writer))
        .await
        .unwrap()
        .keys
        .remove(0);
    let readers = effex
        .make_keys(
            &fx.boss,
            KeysRequest::new(KeyKind::Reader)
                .count(2)
                .seconds(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    assert_eq!((readers.kind, readers.keys.len()), (KeyKind::Reader, 2));
    let updater = effex
        .make_keys(&fx.boss, KeysRequest::new(KeyKind::Updater))
        .await
        .unwrap()
        .keys
        .remove(0);

    let alias = "prices/eu?+&#"; // not a valid alias: the server says so
    let err = effex
        .write(&writer, &NewItem::new(json!(1)).alias(alias))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(400), "{err}");

    let alias = "price+eur:latest"; // needs percent-encoding in a path
    let item = NewItem::new(json!({"price": 3}))
        .lifetime(Duration::from_secs(3600))
        .reader(&readers.keys[0])
        .updater(&updater)
        .alias(alias);
    let written = effex.write(&writer, &item).await.unwrap();
    assert_eq!(written.lifetime, MAX_LIFETIME);
    assert_eq!(written.alias.as_deref(), Some(alias));

    let read = effex.read(&readers.keys[0], alias).await.unwrap();
    assert_eq!(
        (read.id.as_str(), &read.value),
        (written.id.as_str(), &json!({"price": 3}))
    );
    let held = effex.read_with_intent(&updater, alias).await.unwrap();
    let intent = held.intent.clone().expect("an intent id");
    assert!(held.intent_expires.is_some());
    let locked = effex
        .update(&updater, alias, json!(0), None)
        .await
        .unwrap_err();
    assert!(
        matches!(locked, EffexError::Server { code: 423, .. }),
        "{locked}"
    );
    let updated = effex
        .update(&updater, alias, json!({"price": 4}), Some(&intent))
        .await
        .unwrap();
    assert!(updated.seq > written.seq);

    let page = effex
        .events(
            &readers.keys[0],
            &written.id,
            written.seq,
            Some(EventKind::Update),
        )
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(
        (page.events[0].seq, page.events[0].event),
        (updated.seq, EventKind::Update)
    );

    let second = effex
        .write(&writer, &NewItem::new(json!("two")))
        .await
        .unwrap();
    let aliased = effex.alias(&writer, alias, &second.id).await.unwrap();
    assert_eq!(aliased.id, second.id);
    assert_eq!(
        effex.read(&writer, alias).await.unwrap().value,
        json!("two")
    );

    let forbidden = effex
        .remove(&readers.keys[1], &second.id)
        .await
        .unwrap_err();
    match &forbidden {
        EffexError::Server { code, message } => {
            assert_eq!(*code, 403);
            assert!(message.starts_with("forbidden"), "{message}");
        }
        other => panic!("expected a server refusal, got {other:?}"),
    }
    let removed = effex.remove(&writer, alias).await.unwrap();
    assert_eq!(removed.id, second.id);
    let gone = effex.read(&writer, &second.id).await.unwrap_err();
    assert_eq!(gone.code(), Some(404));
    assert!(gone.to_string().contains("(404)"), "{gone}");
    fx.server.stop().await;
}

#[actix_rt::test]
async fn effex_client_errors_say_what_to_do() {
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let effex = EffexClient::new(format!("http://127.0.0.1:{port}")).unwrap();
    let err = effex.ping().await.unwrap_err();
    assert!(matches!(err, EffexError::Transport { .. }), "{err:?}");
    assert!(err.to_string().contains("effex serve"), "{err}");

    // Something that is not an effex server.
    let other = actix_web::HttpServer::new(|| {
        actix_web::App::new().default_service(actix_web::web::to(|| async {
            actix_web::HttpResponse::BadGateway().body("<html>bad gateway</html>")
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = other.addrs()[0];
    let other = other.run();
    let handle = other.handle();
    actix_rt::spawn(other);
    let err = EffexClient::new(format!("http://{addr}"))
        .unwrap()
        .info()
        .await
        .unwrap_err();
    match &err {
        EffexError::Decode { status, reason, .. } => {
            assert_eq!(*status, 502);
            assert!(reason.contains("<html>"), "{reason}");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(
        err.to_string().contains("is that URL an effex server"),
        "{err}"
    );
    handle.stop(false).await;

    let bad = EffexClient::new("127.0.0.1:8150").unwrap_err();
    assert!(matches!(bad, EffexError::Url { .. }), "{bad:?}");
}

// ---- configuration ---------------------------------------------------------------------------

#[actix_rt::test]
async fn a_given_boss_key_or_an_injected_store_is_served() {
    let fx = start(ServerConfig {
        boss_key: Some("my boss key".into()),
        ..config()
    })
    .await;
    assert_eq!(fx.boss, "my boss key");
    assert_eq!(fx.keys("writer", 1, None).await.len(), 1);
    fx.server.stop().await;

    let store = common::store_switch::store(MemoryStoreConfig {
        boss_key: "injected boss".into(),
        max_size: 100,
        ..MemoryStoreConfig::default()
    })
    .await;
    let server = Server::start(ServerConfig {
        store: Some(store),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(
        server.boss_key(),
        None,
        "the application set the store's key"
    );
    let effex = EffexClient::new(server.http_url()).unwrap();
    let writer = effex
        .make_keys("injected boss", KeysRequest::new(KeyKind::Writer))
        .await
        .unwrap()
        .keys
        .remove(0);
    let info = effex.info().await.unwrap();
    assert_eq!(info.max_size, 100);
    let limit = 100 + BODY_HEADROOM;
    let huge = NewItem::new(json!("z".repeat(limit)));
    let err = effex.write(&writer, &huge).await.unwrap_err();
    assert_eq!(err.code(), Some(413));
    assert!(
        err.to_string()
            .contains(&format!("the limit is {limit} bytes")),
        "{err}"
    );
    assert_eq!(server.store().info().await.unwrap().items, 0);
    server.stop().await;
}
