//! The push endpoint (`effex::server`) over real sockets on 127.0.0.1:
//! handshake, heartbeat, CONNECT, the `pass` conversation, limits,
//! replacement and graceful stop (protocol.md §1, §2.1, §2.2, §2.6).
//!
//! Every wait is bounded: timers are configured short where a test is about
//! them, and long elsewhere so a busy machine cannot make them fire by accident.

mod common;

use std::time::{Duration, Instant};

use actix_ws::Item;
use awc::ws::Message;
use bytes::Bytes;
use common::poll::poll_until;
use common::server::start;
use common::wire::{http_client, Received, Wire, WAIT};
use effex::server::{Server, ServerConfig, ServerConfigError, ServerError, ServerHandle};
use serde_json::{json, Value};

const PASS: &str = "open sesame";

/// Timers long enough never to fire in a test that is not about them, a
/// passphrase and a small maxPayload.
fn config() -> ServerConfig {
    ServerConfig {
        passphrase: Some(PASS.to_owned()),
        max_payload: 4096,
        ..common::server::config()
    }
}

/// Waits (bounded) until the server's stats satisfy `ok`.
async fn stats_until(server: &ServerHandle, ok: impl Fn(&effex::server::ServerStats) -> bool) {
    poll_until("the server's stats to match", WAIT, || {
        let stats = server.stats();
        let matched = ok(&stats).then_some(());
        async move { matched }
    })
    .await;
    // (On a timeout the panic names the bound; the stats are logged here.)
}

fn assert_failure(reply: &Value, code: u64, error: &str) {
    assert_eq!(reply, &json!({"ok": false, "code": code, "error": error}));
}

// ---- HTTP side -------------------------------------------------------------

#[actix_rt::test]
async fn bad_query_gets_400_json_and_no_upgrade() {
    let server = start(config()).await;
    let client = http_client(None);
    for (query, hint) in [
        ("", "missing EIO"),
        ("?EIO=3&transport=websocket", "EIO=3"),
        ("?EIO=4", "missing transport"),
        ("?EIO=4&transport=polling", "polling"),
    ] {
        let url = format!("{}/socket.io/{query}", server.http_url());
        let mut response = client.get(&url).send().await.expect("request");
        assert_eq!(response.status().as_u16(), 400, "{url}");
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(body["ok"], json!(false));
        assert_eq!(body["code"], json!(400));
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(hint), "{error:?} should mention {hint:?}");
    }
    // A real WebSocket handshake with a bad query is refused too.
    let url = format!("{}/socket.io/?EIO=3&transport=websocket", server.http_url())
        .replace("http://", "ws://");
    match Wire::try_connect_with(&client, &url).await {
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            assert_eq!(status.as_u16(), 400)
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a bad query must not upgrade"),
    }
    // A good query without the upgrade headers is a 400 as well.
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", server.http_url());
    let response = client.get(&url).send().await.expect("request");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(server.stats().connections_opened, 0);
    server.stop().await;
}

#[actix_rt::test]
async fn invalid_config_is_a_typed_error() {
    let error = Server::start(ServerConfig {
        ping_timeout: Duration::ZERO,
        ..config()
    })
    .await
    .unwrap_err();
    assert!(matches!(
        error,
        ServerError::Config(ServerConfigError::TooShort {
            field: "ping_timeout",
            ..
        })
    ));
    assert!(error.to_string().contains("at least 1 ms"), "{error}");
}

#[test]
fn start_outside_a_system_is_a_typed_error() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let error = runtime.block_on(Server::start(config())).unwrap_err();
    assert!(matches!(error, ServerError::NoActixSystem), "{error}");
}

// ---- Engine.IO -------------------------------------------------------------

#[actix_rt::test]
async fn open_packet_carries_the_configured_values() {
    let server = start(config()).await;
    assert!(server.ws_url().starts_with(&format!(
        "ws://127.0.0.1:{}/socket.io/",
        server.addr().port()
    )));
    assert!(server.ws_url().ends_with("?EIO=4&transport=websocket"));
    let (_a, open_a) = Wire::open(&server.ws_url()).await;
    let (_b, open_b) = Wire::open(&server.ws_url()).await;
    let sid = open_a["sid"].as_str().expect("sid");
    assert_eq!(sid.len(), 20);
    assert!(sid
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_ne!(open_a["sid"], open_b["sid"]);
    assert_eq!(open_a["upgrades"], json!([]));
    assert_eq!(open_a["pingInterval"], json!(10_000));
    assert_eq!(open_a["pingTimeout"], json!(10_000));
    assert_eq!(open_a["maxPayload"], json!(4096));
    let stats = server.stats();
    assert_eq!(stats.connections_opened, 2);
    assert_eq!(stats.connections_active, 2);
    server.stop().await;
}

/// The heartbeat of the tests about it: long enough that a loaded machine
/// answers every ping in time, short enough for a quick test.
const PING_INTERVAL: Duration = Duration::from_millis(300);
const PING_TIMEOUT: Duration = Duration::from_millis(300);

fn heartbeat_config() -> ServerConfig {
    ServerConfig {
        ping_interval: PING_INTERVAL,
        ping_timeout: PING_TIMEOUT,
        ..config()
    }
}

#[actix_rt::test]
async fn pongs_keep_the_socket_alive() {
    let server = start(heartbeat_config()).await;
    let started = Instant::now();
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.auto_pong = false;
    for _ in 0..5 {
        wire.expect_text("2").await;
        wire.send_text("3").await;
    }
    // Five pings, each scheduled pingInterval after the previous pong (a
    // lower bound: a slow machine only makes it later). Three of them came
    // after a first pingInterval + pingTimeout had passed: pongs kept the
    // socket alive.
    assert!(
        started.elapsed() >= 5 * PING_INTERVAL,
        "{:?}",
        started.elapsed()
    );
    // Still alive: a CONNECT is answered.
    wire.auto_pong = true;
    wire.join().await;
    assert_eq!(server.stats().connections_active, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn a_missing_pong_closes_with_1002() {
    let server = start(heartbeat_config()).await;
    let started = Instant::now();
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.auto_pong = false;
    wire.expect_text("2").await;
    let (code, reason) = wire.expect_close().await;
    assert_eq!((code, reason.as_str()), (1002, "ping timeout"));
    // The ping goes out pingInterval after the open, the close pingTimeout
    // after the ping: a lower bound (a slow machine only makes it later);
    // the wire's bound is the upper one.
    let elapsed = started.elapsed();
    assert!(elapsed >= PING_INTERVAL + PING_TIMEOUT, "{elapsed:?}");
    stats_until(&server, |s| s.connections_active == 0).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_client_ping_closes_with_1002() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.send_text("2").await;
    let (code, reason) = wire.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (1002, "invalid heartbeat direction")
    );
    // The server ends the TCP connection too.
    wire.expect_ended().await;
    server.stop().await;
}

#[actix_rt::test]
async fn engineio_close_and_socketio_disconnect_close_with_1000() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    wire.send_text("41").await;
    wire.expect_close_code(1000).await;

    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.send_text("1").await;
    wire.expect_close_code(1000).await;

    // A client's own close frame is answered with a close frame.
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    wire.close(1000).await;
    assert!(matches!(
        wire.next().await,
        Received::Close(Some(1000), _) | Received::Ended
    ));
    stats_until(&server, |s| s.connections_active == 0).await;
    server.stop().await;
}

#[actix_rt::test]
async fn upgrade_and_noop_are_ignored() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.send_text("5").await;
    wire.send_text("6").await;
    wire.join().await;
    server.stop().await;
}

// ---- limits and malformed input --------------------------------------------

#[actix_rt::test]
async fn an_oversized_frame_closes_with_1009() {
    let server = start(config()).await;
    // Exactly maxPayload is fine (an ignored event without ack id).
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let head = r#"42["x",""#;
    let fill = 4096 - head.len() - 2;
    wire.send_text(format!("{head}{}\"]", "a".repeat(fill)))
        .await;
    still_served(&mut wire).await;

    // One byte more is not.
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    wire.send_text(format!("{head}{}\"]", "a".repeat(fill + 1)))
        .await;
    wire.expect_close_code(1009).await;

    // Nor is a message joined from continuation frames.
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let half = Bytes::from("a".repeat(2500));
    wire.send(Message::Continuation(Item::FirstText(half.clone())))
        .await;
    wire.send(Message::Continuation(Item::Last(half))).await;
    wire.expect_close_code(1009).await;
    server.stop().await;
}

#[actix_rt::test]
async fn continuation_frames_are_joined() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.send(Message::Continuation(Item::FirstText(Bytes::from("4"))))
        .await;
    wire.send(Message::Continuation(Item::Last(Bytes::from("0"))))
        .await;
    wire.expect_connect_ok().await;
    server.stop().await;
}

#[actix_rt::test]
async fn malformed_packets_close_with_1002() {
    let server = start(config()).await;
    for (frame, joined) in [
        ("", false),
        ("9", false),
        ("0{}", false),
        ("4zzz", false),
        ("42[\"a\"", true),
        ("42{}", true),
        ("42[1]", true),
        ("43[]", true),
        ("44{\"message\":\"x\"}", true),
        ("42[\"pass\",{}]", false), // an event before CONNECT
        ("40", true),               // a second CONNECT
    ] {
        let (mut wire, _) = if joined {
            let (wire, sid) = Wire::joined(&server.ws_url()).await;
            (wire, Value::String(sid))
        } else {
            Wire::open(&server.ws_url()).await
        };
        wire.send_text(frame).await;
        let (code, reason) = wire.expect_close().await;
        assert_eq!(code, 1002, "{frame:?} → {reason:?}");
        assert!(!reason.is_empty(), "{frame:?} should give a reason");
    }
    server.stop().await;
}

#[actix_rt::test]
async fn binary_frames_are_refused_or_ignored() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    // A stray binary frame: ignored.
    wire.send(Message::Binary(Bytes::from_static(&[1, 2, 3])))
        .await;
    // A BINARY_EVENT with ack: refused, its attachment swallowed.
    wire.send_text(r#"451-7["upload",{"_placeholder":true,"num":0}]"#)
        .await;
    wire.send(Message::Binary(Bytes::from_static(&[4, 5, 6])))
        .await;
    let reply = wire.expect_ack(7).await;
    assert_failure(&reply, 400, "binary attachments are not supported");
    // The socket still works.
    let reply = wire.pass(8, PASS, "app-1").await;
    assert_eq!(reply["ok"], json!(true));
    server.stop().await;
}

// ---- CONNECT and pass --------------------------------------------------------

#[actix_rt::test]
async fn plain_connect_then_pass_event() {
    let server = start(config()).await;
    let (mut wire, open) = Wire::open(&server.ws_url()).await;
    let sid = wire.join().await;
    assert_eq!(sid.len(), 20);
    assert_ne!(
        Value::String(sid.clone()),
        open["sid"],
        "Socket.IO sid ≠ Engine.IO sid"
    );
    let before = unix_millis();
    let reply = wire.pass(1, PASS, "app-1").await;
    let after = unix_millis();
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(reply["connection"], json!(sid));
    assert_eq!(reply["pushId"], json!("app-1"));
    let server_time = reply["serverTime"].as_u64().expect("serverTime");
    assert!((before..=after).contains(&server_time));
    // Passed: unknown events are answered as such.
    let reply = wire.call(2, "explode", json!({})).await;
    assert_failure(&reply, 400, "unknown event \"explode\"");
    // Passing again under the same push id is fine.
    let reply = wire.pass(3, PASS, "app-1").await;
    assert_eq!(reply["ok"], json!(true));
    let stats = server.stats();
    assert_eq!((stats.passes_ok, stats.passes_failed), (1, 0));
    server.stop().await;
}

#[actix_rt::test]
async fn a_wrong_pass_is_401_then_goodbye() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let reply = wire.pass(1, "guess", "app-1").await;
    assert_failure(&reply, 401, "bad passphrase");
    wire.expect_goodbye().await;
    assert_eq!(server.stats().passes_failed, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn a_bad_push_id_is_400_then_goodbye() {
    let server = start(config()).await;
    for arg in [
        json!({"pass": PASS, "pushId": "has space"}),
        json!({"pass": PASS}),
        json!({"pass": PASS, "pushId": "x".repeat(129)}),
        json!("not an object"),
    ] {
        let (mut wire, _) = Wire::joined(&server.ws_url()).await;
        let reply = wire.call(1, "pass", arg.clone()).await;
        assert_failure(&reply, 400, "bad pushId");
        wire.expect_goodbye().await;
    }
    // The push id is checked before the passphrase.
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let reply = wire.pass(1, "guess", "").await;
    assert_failure(&reply, 400, "bad pushId");
    wire.expect_goodbye().await;
    assert_eq!(server.stats().passes_failed, 5);
    server.stop().await;
}

#[actix_rt::test]
async fn events_before_the_pass_are_refused_and_no_ack_events_ignored() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let reply = wire.call(1, "watch", json!({"event": "update"})).await;
    assert_failure(&reply, 401, "pass first");
    // No ack id: nothing is sent back, so the next frame is the pass reply.
    wire.send_text(r#"42["watch",{}]"#).await;
    wire.send_text(r#"42["pass",{"pass":"open sesame","pushId":"app-1"}]"#)
        .await;
    let reply = wire.pass(2, PASS, "app-1").await;
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(server.stats().passes_ok, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn pass_in_connect_auth() {
    let server = start(config()).await;
    let url = server.ws_url();

    let (mut wire, _) = Wire::open(&url).await;
    wire.send_text(r#"40{"pass":"open sesame","pushId":"app-1"}"#)
        .await;
    wire.expect_connect_ok().await;
    // Passed: no `pass` event needed.
    let reply = wire.call(1, "x", json!(null)).await;
    assert_failure(&reply, 400, "unknown event \"x\"");

    let (mut wire, _) = Wire::open(&url).await;
    wire.send_text(r#"40{"pass":"guess","pushId":"app-2"}"#)
        .await;
    wire.expect_text(r#"44{"message":"bad passphrase","data":{"code":401}}"#)
        .await;
    wire.expect_close_code(1000).await;

    let (mut wire, _) = Wire::open(&url).await;
    wire.send_text(r#"40{"pass":"open sesame","pushId":""}"#)
        .await;
    wire.expect_text(r#"44{"message":"bad pushId","data":{"code":400}}"#)
        .await;
    wire.expect_close_code(1000).await;

    let (mut wire, _) = Wire::open(&url).await;
    wire.send_text(r#"40{"pass":"open sesame"}"#).await;
    wire.expect_text(r#"44{"message":"bad pushId","data":{"code":400}}"#)
        .await;
    wire.expect_close_code(1000).await;

    // Auth without a pass is a plain CONNECT: the pass event comes later.
    let (mut wire, _) = Wire::open(&url).await;
    wire.send_text(r#"40{"pushId":"app-3"}"#).await;
    wire.expect_connect_ok().await;
    let reply = wire.call(1, "x", json!(null)).await;
    assert_failure(&reply, 401, "pass first");

    let stats = server.stats();
    assert_eq!((stats.passes_ok, stats.passes_failed), (1, 3));
    server.stop().await;
}

#[actix_rt::test]
async fn a_server_without_passphrase_accepts_any_pass() {
    let server = start(ServerConfig {
        passphrase: None,
        ..config()
    })
    .await;
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let reply = wire.pass(1, "anything", "app-1").await;
    assert_eq!(reply["ok"], json!(true));
    let (mut wire, _) = Wire::joined(&server.ws_url()).await;
    let reply = wire.pass(1, "", "bad id").await;
    assert_failure(&reply, 400, "bad pushId");
    wire.expect_goodbye().await;
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.send_text(r#"40{"pass":"","pushId":"app-2"}"#).await;
    wire.expect_connect_ok().await;
    server.stop().await;
}

#[actix_rt::test]
async fn another_namespace_is_invalid() {
    let server = start(config()).await;
    let (mut wire, _) = Wire::open(&server.ws_url()).await;
    wire.send_text("40/admin,").await;
    wire.expect_text(r#"44/admin,{"message":"Invalid namespace"}"#)
        .await;
    // The socket stays usable for `/`.
    wire.join().await;
    let reply = wire.pass(1, PASS, "app-1").await;
    assert_eq!(reply["ok"], json!(true));
    server.stop().await;
}

#[actix_rt::test]
async fn the_pass_timeout_disconnects() {
    let server = start(ServerConfig {
        pass_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let started = Instant::now();
    let (mut joined, _) = Wire::joined(&server.ws_url()).await;
    let (mut opened, _) = Wire::open(&server.ws_url()).await;
    let (mut passed, _) = Wire::joined(&server.ws_url()).await;
    assert_eq!(passed.pass(1, PASS, "app-1").await["ok"], json!(true));
    joined.expect_goodbye().await;
    opened.expect_goodbye().await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(290), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
    // The passed socket stays.
    passed.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(server.stats().passes_ok, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn a_newer_connection_replaces_the_older_one() {
    let server = start(config()).await;
    let (mut older, _) = Wire::joined(&server.ws_url()).await;
    assert_eq!(older.pass(1, PASS, "app-1").await["ok"], json!(true));
    let (mut other, _) = Wire::joined(&server.ws_url()).await;
    assert_eq!(other.pass(1, PASS, "app-2").await["ok"], json!(true));
    let (mut newer, newer_sid) = Wire::joined(&server.ws_url()).await;
    let reply = newer.pass(1, PASS, "app-1").await;
    assert_eq!(reply["ok"], json!(true));
    assert_eq!(reply["connection"], json!(newer_sid));
    older.expect_goodbye().await;
    stats_until(&server, |s| s.connections_active == 2).await;
    // The newer one and the other push id are untouched.
    still_served(&mut newer).await;
    still_served(&mut other).await;
    // And a third connection replaces the newer one in turn.
    let (mut third, _) = Wire::open(&server.ws_url()).await;
    third
        .send_text(r#"40{"pass":"open sesame","pushId":"app-1"}"#)
        .await;
    third.expect_connect_ok().await;
    newer.expect_goodbye().await;
    let stats = server.stats();
    assert_eq!((stats.connections_opened, stats.passes_ok), (4, 4));
    server.stop().await;
}

// ---- stop and stats ----------------------------------------------------------

#[actix_rt::test]
async fn stop_says_goodbye_to_every_session() {
    let server = start(config()).await;
    let (mut opened, _) = Wire::open(&server.ws_url()).await;
    let (mut joined, _) = Wire::joined(&server.ws_url()).await;
    let (mut passed, _) = Wire::joined(&server.ws_url()).await;
    assert_eq!(passed.pass(1, PASS, "app-1").await["ok"], json!(true));
    assert_eq!(server.stats().connections_active, 3);

    let started = Instant::now();
    let stopping = actix_rt::spawn(server.clone().stop());
    for wire in [&mut opened, &mut joined, &mut passed] {
        wire.expect_goodbye().await;
    }
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("stop is bounded")
        .expect("stop task");
    // Bounded by shutdown_timeout (2 s) plus scheduling slack.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.stats().connections_active, 0);
    assert_eq!(server.stats().connections_opened, 3);
    // The server is gone.
    let again = Wire::try_connect_with(&http_client(None), &server.ws_url()).await;
    match again {
        // Refused at TCP: nothing listens any more (not a timeout, not an
        // HTTP answer from a server still half up).
        Err(awc::error::WsClientError::SendRequest(awc::error::SendRequestError::Connect(e))) => {
            assert!(e.to_string().to_lowercase().contains("refused"), "{e}")
        }
        Err(e) => panic!("expected the connection to be refused, got {e}"),
        Ok(_) => panic!("a new socket after stop"),
    }
    // Stopping twice is harmless.
    tokio::time::timeout(WAIT, server.stop())
        .await
        .expect("second stop is bounded");
}

#[actix_rt::test]
async fn stats_count_connections_and_passes() {
    let server = start(config()).await;
    assert_eq!(server.stats(), Default::default());
    let (mut a, _) = Wire::joined(&server.ws_url()).await;
    let (mut b, _) = Wire::joined(&server.ws_url()).await;
    assert_eq!(a.pass(1, PASS, "app-a").await["ok"], json!(true));
    assert_failure(&b.pass(1, "nope", "app-b").await, 401, "bad passphrase");
    b.expect_goodbye().await;
    stats_until(&server, |s| s.connections_active == 1).await;
    let stats = server.stats();
    assert_eq!(stats.connections_opened, 2);
    assert_eq!((stats.passes_ok, stats.passes_failed), (1, 1));
    a.send_text("41").await;
    a.expect_close_code(1000).await;
    stats_until(&server, |s| s.connections_active == 0).await;
    assert_eq!(server.stats().connections_opened, 2);
    server.stop().await;
}

// ---- TLS -------------------------------------------------------------------------

#[actix_rt::test]
async fn wss_with_a_self_signed_certificate() {
    let (tls, client_tls) = common::tls::self_signed("127.0.0.1");
    let server = start(ServerConfig {
        tls: Some(tls),
        ..config()
    })
    .await;
    assert!(server.ws_url().starts_with("wss://127.0.0.1:"));
    assert!(server.http_url().starts_with("https://127.0.0.1:"));

    let client = http_client(Some(client_tls));
    let mut wire = Wire::try_connect_with(&client, &server.ws_url())
        .await
        .expect("wss connects");
    wire.expect_open().await;
    wire.join().await;
    assert_eq!(wire.pass(1, PASS, "app-1").await["ok"], json!(true));
    server.stop().await;
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Proves the socket is still served: an event gets its ack.
async fn still_served(wire: &mut Wire) {
    let reply = wire.call(99, "ping?", json!(null)).await;
    assert_eq!(reply["ok"], json!(false), "{reply}");
}
