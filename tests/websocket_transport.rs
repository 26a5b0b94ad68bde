//! The push endpoint's own WebSocket transport and upgrade path (issue #9):
//! raw frames written by hand over a plain TCP socket to the in-process
//! server, so that how they are split, joined, masked and sized is the
//! test's choice, and raw upgrade requests for the answers before the upgrade.

mod common;

use std::net::SocketAddr;

use common::raw_ws::{
    frame, text, upgrade_request, RawWs, CONTINUATION, PING, PONG, PUSH_TARGET, TEXT,
};
use common::server;
use effex::server::{ServerConfig, ServerHandle, MIN_MAX_PAYLOAD};

async fn start(config: ServerConfig) -> (ServerHandle, SocketAddr) {
    let server = server::start(config).await;
    let addr = server.addr();
    (server, addr)
}

/// The answer to a Socket.IO CONNECT on `/`.
fn is_connect_ok(text: &str) -> bool {
    text.starts_with("40{\"sid\":")
}

#[actix_rt::test]
async fn a_frame_split_into_single_bytes_is_read() {
    let (server, addr) = start(server::config()).await;
    let mut ws = RawWs::opened(addr).await;
    ws.send_bytewise(&text("40")).await;
    let answer = ws.next_text().await;
    assert!(is_connect_ok(&answer), "got {answer:?}");
    // And a longer one (16-bit length), also a byte at a time.
    let long = format!("421[\"nope\",{{\"x\":\"{}\"}}]", "y".repeat(300));
    ws.send_bytewise(&text(&long)).await;
    let ack = ws.next_text().await;
    assert!(
        ack.starts_with("431[{\"ok\":false,\"code\":401"),
        "got {ack:?}"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn several_frames_in_one_write_are_all_read() {
    let (server, addr) = start(server::config()).await;
    let mut ws = RawWs::opened(addr).await;
    let mut burst = text("40");
    for ack_id in 1..=3 {
        burst.extend(text(&format!("42{ack_id}[\"nope\",{{}}]")));
    }
    burst.extend(frame(true, PING, b"hi", true));
    ws.send(&burst).await;
    let answer = ws.next_text().await;
    assert!(is_connect_ok(&answer), "got {answer:?}");
    for ack_id in 1..=3 {
        let ack = ws.next_text().await;
        assert!(
            ack.starts_with(&format!("43{ack_id}[{{\"ok\":false,\"code\":401")),
            "ack {ack_id}: got {ack:?}"
        );
    }
    let pong = ws.next_frame().await;
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"hi"[..]));
    server.stop().await;
}

#[actix_rt::test]
async fn a_fragmented_text_message_is_joined() {
    let (server, addr) = start(server::config()).await;
    let mut ws = RawWs::opened(addr).await;
    let mut fragments = frame(false, TEXT, b"4", true);
    // A control frame may come between the fragments (RFC 6455 §5.4).
    fragments.extend(frame(true, PING, b"mid", true));
    fragments.extend(frame(true, CONTINUATION, b"0", true));
    ws.send_bytewise(&fragments).await;
    let pong = ws.next_frame().await;
    assert_eq!((pong.opcode, pong.payload.as_slice()), (PONG, &b"mid"[..]));
    let answer = ws.next_text().await;
    assert!(is_connect_ok(&answer), "the joined \"40\" got {answer:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn an_unmasked_client_frame_closes_with_1002() {
    let (server, addr) = start(server::config()).await;
    let mut ws = RawWs::opened(addr).await;
    ws.send(&frame(true, TEXT, b"40", false)).await;
    assert_eq!(ws.close_code().await, Some(1002));
    server.stop().await;
}

#[actix_rt::test]
async fn a_frame_over_max_payload_closes_with_1009_before_its_payload_comes() {
    let config = ServerConfig {
        max_payload: MIN_MAX_PAYLOAD,
        ..server::config()
    };
    let (server, addr) = start(config).await;
    let mut ws = RawWs::opened(addr).await;
    // Only the header of a frame one byte too large: the server must not
    // wait for (and buffer) the payload before refusing it.
    let oversized = frame(true, TEXT, &vec![b'a'; MIN_MAX_PAYLOAD + 1], true);
    ws.send(&oversized[..8]).await;
    assert_eq!(ws.close_code().await, Some(1009));
    server.stop().await;
}

#[actix_rt::test]
async fn fragments_joining_over_max_payload_close_with_1009() {
    let config = ServerConfig {
        max_payload: MIN_MAX_PAYLOAD,
        ..server::config()
    };
    let (server, addr) = start(config).await;
    let mut ws = RawWs::opened(addr).await;
    let half = vec![b'a'; MIN_MAX_PAYLOAD / 2 + 1];
    let mut fragments = frame(false, TEXT, &half, true);
    fragments.extend(frame(true, CONTINUATION, &half, true));
    ws.send(&fragments).await;
    assert_eq!(ws.close_code().await, Some(1009));
    server.stop().await;
}

#[actix_rt::test]
async fn an_upgrade_to_another_path_gets_404_and_connect_405() {
    let (server, addr) = start(server::config()).await;
    let (answer, mut raw) = RawWs::request(addr, &upgrade_request("GET", "/ping", &[])).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.body.contains("\"code\":404"), "{answer:?}");
    assert!(answer.head.contains("connection: close"), "{answer:?}");
    assert!(raw.closed().await);
    let (answer, _) = RawWs::request(addr, &upgrade_request("POST", PUSH_TARGET, &[])).await;
    assert_eq!(answer.status, 405, "{answer:?}");
    let (answer, _) = RawWs::request(
        addr,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert_eq!(answer.status, 405, "{answer:?}");
    server.stop().await;
}

#[actix_rt::test]
async fn requests_that_cannot_upgrade_keep_their_answers() {
    let (server, addr) = start(server::config()).await;
    // A plain GET (no upgrade headers) is actix-web's, as before: 400.
    let plain = format!("GET {PUSH_TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (answer, _) = RawWs::request(addr, &plain).await;
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("expected a WebSocket upgrade request"),
        "{answer:?}"
    );
    // An upgrade with a bad query, an unsupported version or a bad key: 400.
    for request in [
        upgrade_request("GET", "/socket.io/?EIO=3&transport=websocket", &[]),
        upgrade_request("GET", "/socket.io/?EIO=4", &[]),
        upgrade_request("GET", PUSH_TARGET, &[])
            .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
        upgrade_request("GET", PUSH_TARGET, &[]).replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
    ] {
        let (answer, _) = RawWs::request(addr, &request).await;
        assert_eq!(answer.status, 400, "{request:?} got {answer:?}");
        assert!(answer.body.contains("\"code\":400"), "{answer:?}");
    }
    // Without the trailing slash, too.
    let mut ws = RawWs::upgrade_to(addr, "/socket.io?EIO=4&transport=websocket").await;
    assert!(ws.next_text().await.starts_with("0{"));
    server.stop().await;
}

#[actix_rt::test]
async fn upgrades_count_in_metrics() {
    let (server, addr) = start(server::config()).await;
    let _open = RawWs::opened(addr).await;
    let (answer, _) = RawWs::request(addr, &upgrade_request("GET", "/socket.io/?EIO=3", &[])).await;
    assert_eq!(answer.status, 400);
    let (answer, _) = RawWs::request(addr, &upgrade_request("GET", "/nowhere", &[])).await;
    assert_eq!(answer.status, 404);
    let scrape = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let (metrics, _) = RawWs::request(addr, scrape).await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    for (name, labels, value) in [
        (
            "effex_http_requests_total",
            [
                ("route", "/socket.io/"),
                ("method", "GET"),
                ("status", "101"),
            ]
            .as_slice(),
            "1",
        ),
        (
            "effex_http_requests_total",
            &[
                ("route", "/socket.io/"),
                ("method", "GET"),
                ("status", "400"),
            ],
            "1",
        ),
        (
            "effex_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")],
            "1",
        ),
        (
            "effex_http_request_duration_seconds_count",
            &[("route", "/socket.io/"), ("method", "GET")],
            "2",
        ),
    ] {
        let found = metrics.body.lines().any(|line| {
            line.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
                && line.ends_with(&format!("}} {value}"))
        });
        assert!(found, "no {name} {labels:?} {value} in\n{}", metrics.body);
    }
    server.stop().await;
}

#[actix_rt::test]
async fn upgrades_count_against_the_per_address_request_rate() {
    let config = ServerConfig {
        requests_per_second_per_address: 1,
        request_burst_per_address: 3,
        ..server::config()
    };
    let (server, addr) = start(config).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(RawWs::upgrade(addr).await);
    }
    let (answer, _) = RawWs::request(addr, &upgrade_request("GET", PUSH_TARGET, &[])).await;
    assert_eq!(answer.status, 429, "{answer:?}");
    assert!(answer.head.contains("retry-after:"), "{answer:?}");
    // And the other way round: REST requests use up what upgrades may take.
    let ping = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let (answer, _) = RawWs::request(addr, ping).await;
    assert_eq!(answer.status, 429, "{answer:?}");
    assert_eq!(server.stats().connections_opened, 3);
    server.stop().await;
}
