//! The server's protective limits (issue 7) through real HTTP and real
//! WebSockets on an in-process server on port 0: request rates per client
//! address, the failed-authentication lockout (REST and both kinds of pass),
//! the write rate per access key, push connections in total and per address,
//! and `X-Forwarded-For` from trusted proxies only.
//!
//! Two client addresses on one machine: Linux routes all of 127.0.0.0/8 to
//! the loopback interface, so a client bound to 127.0.0.2 is another address
//! than one on 127.0.0.1. Limits are configured small (bursts of a few, one
//! more per second or per minute), so a test sends a handful of requests and
//! sees the limit; no test depends on timing finer than a second.
#![cfg(all(feature = "server", feature = "client"))]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use actix::Actor;
use awc::error::WsClientError;
use awc::http::{Method, StatusCode};
use common::exchange::{Exchange, PASS};
use common::wire::{Received, Wire};
use effex::server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

/// The bound on every wait.
const BOUND: Duration = Duration::from_secs(10);
/// More requests than any limit configured here lets through.
const FLOOD: usize = 50;
/// A period long enough that nothing comes back during a test.
const MINUTE: Duration = Duration::from_secs(60);

/// The loopback address 127.0.0.`last`.
fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// An HTTP/1.1 client whose connections come from 127.0.0.`last`.
fn client_from(last: u8) -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().local_address(loopback(last)))
        .timeout(BOUND)
        .finish()
}

/// What a raw request got back.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    body: Value,
}

/// Sends `method url` (with `headers`, a JSON `body` if any) from 127.0.0.`from`.
async fn request(
    from: u8,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = client_from(from).request(method, url);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let sent = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    let mut response = sent.unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
    let bytes = response.body().await.expect("a body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status: response.status(),
        retry_after,
        body,
    }
}

/// `GET url` from 127.0.0.`from` with `headers`.
async fn get(from: u8, url: &str, headers: &[(&str, &str)]) -> Reply {
    request(from, Method::GET, url, headers, None).await
}

/// `method url` from 127.0.0.`from` with `key` as the bearer and a JSON
/// `body` if any.
async fn with_key(from: u8, method: Method, url: &str, key: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {key}");
    request(from, method, url, &[("authorization", auth.as_str())], body).await
}

/// Repeats `send` until it answers 429 (at most [`FLOOD`] times); returns
/// the 429 and the statuses before it.
async fn until_429<F, Fut>(mut send: F) -> (Reply, Vec<StatusCode>)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let mut before = Vec::new();
    for i in 0..FLOOD {
        let reply = send(i).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            return (reply, before);
        }
        before.push(reply.status);
    }
    panic!("no 429 after {FLOOD} requests: {before:?}");
}

/// Asserts a 429 in the REST shape: code 429 in the body, a `Retry-After`
/// of at least 1 s and at most `max`.
fn assert_limited(reply: &Reply, max: Duration) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.body["ok"], json!(false));
    assert_eq!(reply.body["code"], json!(429));
    let retry_after = reply.retry_after.expect("a Retry-After header");
    assert!(
        (1..=max.as_secs()).contains(&retry_after),
        "Retry-After {retry_after} s, expected 1..={} s",
        max.as_secs()
    );
}

/// Asserts the 429's message says `words`.
fn assert_says(reply: &Reply, words: &str) {
    let error = reply.body["error"].as_str().unwrap_or_default();
    assert!(error.contains(words), "{reply:?}");
}

/// The in-process server (common start, test logging) with `config` and a
/// short shutdown.
async fn start(config: ServerConfig) -> ServerHandle {
    common::server::start(ServerConfig {
        shutdown_timeout: Duration::from_secs(2),
        ..config
    })
    .await
}

#[actix_rt::test]
async fn requests_over_the_rate_of_one_address_get_429_and_others_go_on() {
    let server = start(ServerConfig {
        requests_per_second_per_address: 1,
        request_burst_per_address: 3,
        ..ServerConfig::default()
    })
    .await;
    let ping = format!("{}/ping", server.http_url());
    let (limited, before) = until_429(|_| get(1, &ping, &[])).await;
    assert!(before.len() >= 3, "the burst of 3 passes: {before:?}");
    assert!(before.iter().all(|s| *s == StatusCode::OK));
    assert_limited(&limited, Duration::from_secs(1));
    assert_says(&limited, "too many requests from your address");
    // Another address has its own allowance.
    let other = get(2, &ping, &[]).await;
    assert_eq!(other.status, StatusCode::OK, "{other:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_flood_of_invalid_keys_locks_the_address_out() {
    let server = start(ServerConfig {
        failed_auth_burst: 3,
        failed_auth_period: MINUTE,
        ..ServerConfig::default()
    })
    .await;
    let boss = server.boss_key().unwrap().to_owned();
    let item = format!("{}/items/some-item", server.http_url());
    let (limited, before) = until_429(|i| {
        let item = item.clone();
        async move {
            let key = format!("not-a-key-{i}");
            with_key(1, Method::GET, &item, &key, None).await
        }
    })
    .await;
    // The burst and the failure that used it up were answered; then the lockout.
    assert_eq!(before, vec![StatusCode::UNAUTHORIZED; 4]);
    assert_limited(&limited, MINUTE);
    assert_says(&limited, "too many failed authentications");
    // Locked out: even a valid key is refused from that address, unchecked.
    let keys = format!("{}/keys", server.http_url());
    let writer_key = || Some(json!({"type": "writer"}));
    let refused = with_key(1, Method::POST, &keys, &boss, writer_key()).await;
    assert_limited(&refused, MINUTE);
    // Another address is not locked out: its bad key is a plain 401, its
    // good key works.
    let other = with_key(2, Method::GET, &item, "not-a-key", None).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED, "{other:?}");
    let made = with_key(2, Method::POST, &keys, &boss, writer_key()).await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn each_further_lockout_is_longer() {
    // One failure at once, one more each 2 s; lockouts of 2 s, then 4 s, …
    let server = start(ServerConfig {
        failed_auth_burst: 1,
        failed_auth_period: Duration::from_secs(2),
        ..ServerConfig::default()
    })
    .await;
    let item = format!("{}/items/some-item", server.http_url());
    let bad_key = || with_key(1, Method::GET, &item, "not-a-key", None);
    let (first, _) = until_429(|_| bad_key()).await;
    assert_limited(&first, Duration::from_secs(2));
    // Wait (bounded) for the lockout to end: the next answer is a checked 401.
    let deadline = Instant::now() + BOUND;
    loop {
        let reply = bad_key().await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "still locked out after {BOUND:?}"
        );
        sleep(Duration::from_millis(50)).await;
    }
    // The next lockout is twice as long: 4 s, so more than the first's 2 s
    // are left when it is first answered (a margin of over a second).
    let (second, _) = until_429(|_| bad_key()).await;
    assert_limited(&second, Duration::from_secs(4));
    assert!(second.retry_after >= Some(3), "{second:?}");
    server.stop().await;
}

/// Opens a push socket from 127.0.0.`from` and reads the open packet.
async fn open_from(from: u8, url: &str) -> Wire {
    try_open(from, url)
        .await
        .unwrap_or_else(|status| panic!("cannot open {url} from 127.0.0.{from}: {status}"))
}

/// A server with a passphrase whose addresses get 2 failed passes, then a
/// lockout of a minute.
async fn pass_server() -> ServerHandle {
    start(ServerConfig {
        passphrase: Some(PASS.to_owned()),
        failed_auth_burst: 2,
        failed_auth_period: MINUTE,
        ..ServerConfig::default()
    })
    .await
}

/// Locks 127.0.0.1 out of a [`pass_server`]: its burst of 2 wrong passes
/// and the failure past it are checked (401).
async fn lock_out_127_0_0_1(url: &str) {
    for attempt in 0..3 {
        let mut wire = open_from(1, url).await;
        wire.join().await;
        let reply = wire.pass(0, "wrong", &format!("p{attempt}")).await;
        assert_eq!(reply["code"], json!(401), "attempt {attempt}: {reply}");
        wire.expect_goodbye().await;
    }
}

/// Asserts `retryAfter` is a wait in ms of at most a minute.
fn assert_retry_after_ms(value: &Value) {
    let ms = value["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfter in {value}"));
    assert!((1..=60_000).contains(&ms), "retryAfter {ms}");
}

#[actix_rt::test]
async fn wrong_passphrases_get_429_with_retry_after_and_others_still_pass() {
    let server = pass_server().await;
    let url = server.ws_url();
    lock_out_127_0_0_1(&url).await;
    // Then every pass from that address is refused unchecked: the right one too.
    for pass in ["wrong", PASS] {
        let mut wire = open_from(1, &url).await;
        wire.join().await;
        let reply = wire.pass(0, pass, "p-locked").await;
        assert_eq!(reply["ok"], json!(false), "{reply}");
        assert_eq!(reply["code"], json!(429), "{reply}");
        assert_eq!(reply["error"], json!("too many attempts"), "{reply}");
        assert_retry_after_ms(&reply);
        wire.expect_goodbye().await;
    }
    // Another address passes.
    let mut wire = open_from(2, &url).await;
    wire.join().await;
    let reply = wire.pass(0, PASS, "p-other").await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    server.stop().await;
}

/// The actix client reads a 429 pass answer as a wait, not as a final
/// refusal: `ConnectError::Limited` with the server's `retryAfter`.
#[actix_rt::test]
async fn the_client_reports_a_locked_out_pass_as_limited_with_its_wait() {
    let server = pass_server().await;
    let url = server.ws_url();
    lock_out_127_0_0_1(&url).await;
    let config = common::exchange::client_config(&url).build().unwrap();
    let conn = effex::client::ConnectionActor::new(config).start();
    let answer = tokio::time::timeout(BOUND, conn.send(effex::client::GetConnected))
        .await
        .expect("an answer within the bound")
        .expect("the actor is alive");
    match answer {
        Err(effex::client::ConnectError::Limited { retry_after, .. }) => assert!(
            retry_after > Duration::ZERO && retry_after <= MINUTE,
            "retry after {retry_after:?}"
        ),
        other => panic!("expected ConnectError::Limited, got {other:?}"),
    }
    server.stop().await;
}

/// Key guessing through `watch` on a passed socket counts against the
/// address's failed-authentication allowance like REST 401s, and a
/// locked-out address gets 429 to its watches (valid keys too).
#[actix_rt::test]
async fn watches_with_bad_keys_lock_the_address_out_like_rest() {
    let ex = Exchange::start(ServerConfig {
        failed_auth_burst: 2,
        failed_auth_period: MINUTE,
        ..ServerConfig::default()
    })
    .await;
    let (id, _) = ex.write(json!(1), MINUTE).await;
    let url = ex.server.ws_url();
    let mut wire = open_from(1, &url).await;
    wire.join().await;
    assert_eq!(wire.pass(0, PASS, "p-guess").await["ok"], json!(true));
    let watch = |key: &str| json!({"event": "update", "id": id, "key": key});
    // The burst of 2 and the failure past it are checked (401).
    for attempt in 1..=3 {
        let reply = wire.call(attempt, "watch", watch("guess")).await;
        assert_eq!(reply["code"], json!(401), "attempt {attempt}: {reply}");
    }
    // Then watches from that address are refused unchecked: the reader too.
    for (n, key) in [(4, "guess"), (5, ex.reader.as_str())] {
        let reply = wire.call(n, "watch", watch(key)).await;
        assert_eq!(reply["code"], json!(429), "{reply}");
        assert_retry_after_ms(&reply);
    }
    // REST from that address is locked out too: one allowance per address.
    let ping = format!("{}/ping", ex.server.http_url());
    assert_eq!(
        get(1, &ping, &[]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another address watches with the reader key.
    let mut other = open_from(2, &url).await;
    other.join().await;
    assert_eq!(other.pass(0, PASS, "p-other").await["ok"], json!(true));
    let reply = other.call(1, "watch", watch(&ex.reader)).await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    ex.server.stop().await;
}

/// Sends CONNECT with the pass as auth; returns the reply text.
async fn connect_with_pass(wire: &mut Wire, pass: &str, push_id: &str) -> String {
    wire.send_text(format!("40{}", json!({"pass": pass, "pushId": push_id})))
        .await;
    wire.next_text().await
}

/// The JSON of a CONNECT_ERROR (`44{…}`).
fn connect_error(text: &str) -> Value {
    let json = text
        .strip_prefix("44")
        .unwrap_or_else(|| panic!("expected CONNECT_ERROR, got {text:?}"));
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad CONNECT_ERROR {text:?}: {e}"))
}

#[actix_rt::test]
async fn wrong_passes_inside_connect_get_connect_error_429() {
    let server = pass_server().await;
    let url = server.ws_url();
    for attempt in 0..3 {
        let mut wire = open_from(1, &url).await;
        let refusal = connect_error(&connect_with_pass(&mut wire, "wrong", "p").await);
        assert_eq!(
            refusal["data"]["code"],
            json!(401),
            "attempt {attempt}: {refusal}"
        );
        wire.expect_close_code(1000).await;
    }
    for pass in ["wrong", PASS] {
        let mut wire = open_from(1, &url).await;
        let refusal = connect_error(&connect_with_pass(&mut wire, pass, "p").await);
        assert_eq!(refusal["message"], json!("too many attempts"), "{refusal}");
        assert_eq!(refusal["data"]["code"], json!(429), "{refusal}");
        assert_retry_after_ms(&refusal["data"]);
        wire.expect_close_code(1000).await;
    }
    let mut wire = open_from(2, &url).await;
    let reply = connect_with_pass(&mut wire, PASS, "p-other").await;
    assert!(
        reply.starts_with("40{"),
        "another address connects: {reply}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn writes_over_the_rate_of_one_key_get_429_while_another_key_writes() {
    let exchange = Exchange::start(ServerConfig {
        writes_per_second_per_key: 1,
        write_burst_per_key: 3,
        ..ServerConfig::default()
    })
    .await;
    let items = format!("{}/items", exchange.server.http_url());
    let writer = &exchange.writer;
    let (limited, before) = until_429(|i| {
        let items = items.clone();
        async move { with_key(1, Method::POST, &items, writer, Some(json!({"value": i}))).await }
    })
    .await;
    assert!(before.len() >= 3, "the burst of 3 passes: {before:?}");
    assert!(
        before.iter().all(|s| *s == StatusCode::CREATED),
        "{before:?}"
    );
    assert_limited(&limited, Duration::from_secs(1));
    assert_says(&limited, "too many writes with this key");
    // Another writer key, from the same address, still writes.
    let other = Exchange::key(
        &exchange.rest,
        &exchange.boss,
        effex::protocol::rest::KeyKind::Writer,
    )
    .await;
    let written = with_key(
        1,
        Method::POST,
        &items,
        &other,
        Some(json!({"value": "other"})),
    )
    .await;
    assert_eq!(written.status, StatusCode::CREATED, "{written:?}");
    // Updates count against the same key's rate.
    let id = written.body["id"].as_str().expect("an item id");
    let update = format!("{items}/{id}");
    let (limited, _) =
        until_429(|_| with_key(1, Method::PUT, &update, &other, Some(json!({"value": 2})))).await;
    assert_limited(&limited, Duration::from_secs(1));
    exchange.server.stop().await;
}

/// Tries to open a push socket from 127.0.0.`from`: the open packet, or
/// the HTTP status that refused the upgrade.
async fn try_open(from: u8, url: &str) -> Result<Wire, StatusCode> {
    match Wire::try_connect_with(&client_from(from), url).await {
        Ok(mut wire) => {
            wire.expect_open().await;
            Ok(wire)
        }
        Err(WsClientError::InvalidResponseStatus(status)) => Err(status),
        Err(e) => panic!("opening {url} from 127.0.0.{from} failed: {e}"),
    }
}

/// Retries opening from 127.0.0.`from` until it works (a closed socket's
/// slot is freed when its session ends), within [`BOUND`].
async fn open_eventually(from: u8, url: &str) -> Wire {
    let deadline = Instant::now() + BOUND;
    loop {
        match try_open(from, url).await {
            Ok(wire) => return wire,
            Err(status) if Instant::now() < deadline => {
                assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("still refused ({status}) after {BOUND:?}"),
        }
    }
}

/// Asserts that opening from 127.0.0.`from` is refused with 503.
async fn assert_refused(from: u8, url: &str) {
    assert_eq!(
        try_open(from, url).await.err(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
}

/// Closes `open` (1000), then opens from 127.0.0.`from` once its slot is
/// free (within [`BOUND`]).
async fn close_then_open(mut open: Wire, from: u8, url: &str) -> Wire {
    open.close(1000).await;
    assert!(matches!(open.next().await, Received::Close(..)));
    open_eventually(from, url).await
}

#[actix_rt::test]
async fn connections_over_the_per_address_limit_get_503_and_others_connect() {
    let server = start(ServerConfig {
        max_connections_per_address: 2,
        ..ServerConfig::default()
    })
    .await;
    let url = server.ws_url();
    let first = try_open(1, &url).await.expect("1st from 127.0.0.1");
    let _second = try_open(1, &url).await.expect("2nd from 127.0.0.1");
    assert_refused(1, &url).await;
    let _other = try_open(2, &url).await.expect("another address connects");
    // Closing one frees its place.
    let _again = close_then_open(first, 1, &url).await;
    server.stop().await;
}

#[actix_rt::test]
async fn connections_over_the_total_limit_get_503() {
    let server = start(ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    })
    .await;
    let url = server.ws_url();
    let first = try_open(1, &url).await.expect("1st");
    let _second = try_open(2, &url).await.expect("2nd");
    assert_refused(3, &url).await;
    let _third = close_then_open(first, 3, &url).await;
    server.stop().await;
}

#[actix_rt::test]
async fn x_forwarded_for_counts_only_from_a_listed_proxy() {
    let server = start(ServerConfig {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        requests_per_second_per_address: 1,
        request_burst_per_address: 3,
        ..ServerConfig::default()
    })
    .await;
    let ping = format!("{}/ping", server.http_url());
    // Through the listed proxy, the forwarded address is the client …
    let (limited, _) = until_429(|_| get(1, &ping, &[("x-forwarded-for", "203.0.113.1")])).await;
    assert_limited(&limited, Duration::from_secs(1));
    // … so another forwarded address has its own allowance, through the same proxy.
    let other = get(1, &ping, &[("x-forwarded-for", "203.0.113.2")]).await;
    assert_eq!(other.status, StatusCode::OK, "{other:?}");
    // From a peer that is not listed, the header is ignored: a new forged
    // address each time does not escape the peer's own limit.
    let (limited, before) = until_429(|i| {
        let ping = ping.clone();
        async move {
            let forged = format!("198.51.100.{i}");
            get(2, &ping, &[("x-forwarded-for", forged.as_str())]).await
        }
    })
    .await;
    assert!(before.len() < 10, "limited as 127.0.0.2: {before:?}");
    assert_limited(&limited, Duration::from_secs(1));
    server.stop().await;
}
