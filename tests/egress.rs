//! The webhook egress guard and the secrets rules (protocol.md §3's webhook
//! address rule), against an in-process server over real sockets on
//! 127.0.0.1: SSRF targets refused at `POST /watches`, the allow-list, no
//! redirects, the per-host bound on deliveries, webhook URLs in logs without
//! their secrets, no secrets in `Debug`, and the shared body reader's
//! `Content-Length` check on the webhook route.
//!
//! Every wait is bounded ([`BOUND`]). (DNS rebinding at delivery is
//! unit-tested in `src/server/egress.rs` through a resolver seam.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::exchange::{Exchange, BOUND};
use common::logs;
use common::poll::poll_until;
use common::watches;
use common::webhook_receiver::{allowing_receivers, Answer, WebhookReceiver};
use effex::client::ClientConfig;
use effex::protocol::messages::{ConnectAuth, Pass, Watch};
use effex::server::ServerConfig;
use effex::store::MemoryStoreConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// `POST /watches` with `url`; (status, body).
async fn post_watch(fx: &Exchange, id: &str, url: &str) -> (u16, Value) {
    let spec = json!({"event": "update", "id": id, "url": url});
    watches::post(&fx.server.http_url(), &fx.reader, &spec).await
}

/// `POST /watches` that must succeed; returns the watchable.
async fn watch_ok(fx: &Exchange, id: &str, url: &str) -> String {
    let spec = json!({"event": "update", "id": id, "url": url});
    watches::create(&fx.server.http_url(), &fx.reader, &spec).await
}

/// The local allow-list, with one retry 10 ms after a failed delivery.
fn one_quick_retry() -> ServerConfig {
    allowing_receivers(ServerConfig {
        webhook_retries: 1,
        webhook_retry_base: Duration::from_millis(10),
        ..Default::default()
    })
}

#[actix_rt::test]
async fn ssrf_targets_are_refused_at_post_watches() {
    let fx = Exchange::start(ServerConfig::default()).await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(60)).await;
    for (url, why) in [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost:9/hook", "loopback"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]:9/hook", "IPv4-mapped"),
        ("http://2130706433/hook", "loopback"),
        ("http://0x7f.1/hook", "loopback"),
        ("http://017700000001/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.1/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.64.0.1/hook", "CGNAT"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://[fd00::1]/hook", "unique-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[64:ff9b::7f00:1]/hook", "NAT64"),
        ("http://[2002:c0a8:101::1]/hook", "6to4"),
    ] {
        let (status, body) = post_watch(&fx, &id, url).await;
        assert_eq!(status, 400, "{url}: {body}");
        let error = body["error"].as_str().expect("an error message");
        assert!(error.contains(why), "{url}: {error}");
        assert!(error.contains("--webhook-allow"), "{url}: {error}");
    }
    let long = format!("https://example.com/{}", "a".repeat(9000));
    for (url, why) in [
        ("ftp://example.com/hook", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("not a url", "not a URL"),
        (long.as_str(), "the limit is 8192 bytes"),
    ] {
        let (status, body) = post_watch(&fx, &id, url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"].as_str().expect("error").contains(why),
            "{body}"
        );
    }
    fx.server.stop().await;
}

#[actix_rt::test]
async fn the_allow_list_lets_a_local_receiver_work() {
    let fx = Exchange::start(ServerConfig {
        webhook_allow: vec!["127.0.0.0/8".into()],
        ..Default::default()
    })
    .await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(60)).await;
    let mut hook = WebhookReceiver::start();
    watch_ok(&fx, &id, &format!("{}/allowed", hook.url)).await;
    // Only the listed network: ::1 is still refused.
    let port = hook.url.rsplit(':').next().expect("a port");
    let (status, _) = post_watch(&fx, &id, &format!("http://[::1]:{port}/v6")).await;
    assert_eq!(status, 400);
    fx.update(&id, json!(1)).await;
    assert_eq!(hook.next().await.path, "/allowed");
    hook.stop().await;
    fx.server.stop().await;
}

#[actix_rt::test]
async fn redirects_are_failed_deliveries_and_never_followed() {
    let fx = Exchange::start(one_quick_retry()).await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(60)).await;
    let mut second = WebhookReceiver::start();
    let mut first = WebhookReceiver::answering(Answer::Redirect(format!("{}/second", second.url)));
    watch_ok(&fx, &id, &format!("{}/first", first.url)).await;
    fx.update(&id, json!(1)).await;
    assert_eq!(first.next().await.path, "/first");
    // The 302 was a failed attempt, so the push is tried again. A followed
    // redirect would have reached the second receiver (answering 200) within
    // the first attempt, and there would be no retry.
    assert_eq!(first.next().await.path, "/first");
    second.expect_none_yet();
    first.stop().await;
    second.stop().await;
    fx.server.stop().await;
}

#[actix_rt::test]
async fn deliveries_to_one_host_are_bounded() {
    let fx = Exchange::start(allowing_receivers(ServerConfig {
        webhook_max_per_host: 2,
        ..Default::default()
    }))
    .await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(60)).await;
    let gate = Arc::new(Semaphore::new(0));
    let mut hook = WebhookReceiver::answering(Answer::Hold(gate.clone()));
    for n in 0..5 {
        watch_ok(&fx, &id, &format!("{}/hook{n}", hook.url)).await;
    }
    fx.update(&id, json!(1)).await;
    // Two requests arrive and are held; the other three wait their turn.
    hook.next().await;
    hook.next().await;
    // (No third request to the host while two are in flight.)
    hook.expect_none(Duration::from_millis(300)).await;
    gate.add_permits(5);
    for _ in 0..3 {
        hook.next().await;
    }
    assert_eq!(hook.most_in_flight(), 2);
    hook.stop().await;
    fx.server.stop().await;
}

#[actix_rt::test]
async fn webhook_urls_are_logged_without_credentials_or_query() {
    let fx = Exchange::start(one_quick_retry()).await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(60)).await;
    let mut hook = WebhookReceiver::answering(Answer::Status(500));
    let shown = format!("{}/secret-path", hook.url);
    let url = shown.replacen("http://", "http://hookuser:hookpassword@", 1)
        + "?token=querysecret#fragmentsecret";
    let watchable = watch_ok(&fx, &id, &url).await;
    fx.update(&id, json!(1)).await;
    hook.next().await;
    hook.next().await;
    // The watch is ended, with a warning, after the last failed attempt.
    // (Both log lines of a delivery show the same redacted URL; the capture
    // keeps warnings.)
    let ended = poll_until("the end of the watch is logged", BOUND, || async {
        let lines = logs::warnings_containing(&watchable);
        lines
            .iter()
            .any(|line| line.contains("ended"))
            .then_some(lines)
    })
    .await;
    assert!(
        ended.iter().any(|line| line.contains(&shown)),
        "the warning shows the URL without its secrets: {ended:#?}"
    );
    for secret in ["hookuser", "hookpassword", "querysecret", "fragmentsecret"] {
        let leaked = logs::warnings_containing(secret);
        assert!(leaked.is_empty(), "{secret} was logged: {leaked:#?}");
    }
    hook.stop().await;
    fx.server.stop().await;
}

#[actix_rt::test]
async fn keys_and_passphrases_never_show_in_debug_output() {
    let config = ServerConfig {
        passphrase: Some("passphrase-secret".into()),
        boss_key: Some("boss-secret".into()),
        webhook_allow: vec!["127.0.0.1".into()],
        ..Default::default()
    };
    let shown = format!("{config:?} {config:#?}");
    let server = common::server::start(config).await;
    let shown = format!("{shown} {server:?} {server:#?}");
    let client = ClientConfig::builder(server.ws_url())
        .pass("client-pass-secret")
        .build()
        .expect("a client config");
    let store = MemoryStoreConfig {
        boss_key: "store-boss-secret".into(),
        ..Default::default()
    };
    let pass = Pass {
        pass: "pass-event-secret".into(),
        push_id: "app-1".into(),
    };
    let auth: ConnectAuth =
        serde_json::from_value(json!({"pass": "connect-secret", "pushId": "app-1"})).expect("auth");
    let watch: Watch =
        serde_json::from_value(json!({"event": "update", "id": "item", "key": "watch-key-secret"}))
            .expect("watch");
    let shown = format!("{shown} {client:?} {store:?} {pass:?} {auth:?} {watch:?}");
    for secret in [
        "passphrase-secret",
        "boss-secret",
        "client-pass-secret",
        "store-boss-secret",
        "pass-event-secret",
        "connect-secret",
        "watch-key-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("127.0.0.1"), "the allow-list is no secret");
    server.stop().await;
}

#[test]
fn a_bad_allow_list_entry_says_what_to_give() {
    for entry in ["http://10.0.0.1", "10.0.0.0/40", "host:80", ""] {
        let config = ServerConfig {
            webhook_allow: vec![entry.into()],
            ..Default::default()
        };
        let error = config.validate().expect_err(entry).to_string();
        assert!(error.starts_with("webhook_allow"), "{entry:?}: {error}");
    }
    let zero = ServerConfig {
        webhook_max_per_host: 0,
        ..Default::default()
    };
    assert!(zero.validate().is_err());
}

#[actix_rt::test]
async fn an_oversized_webhook_body_is_refused_before_it_is_read() {
    let fx = Exchange::start(ServerConfig {
        max_item_size: 1000,
        ..Default::default()
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(fx.server.addr())
        .await
        .expect("connect");
    // Announces 10 MB and sends none of it: the answer must not wait for it.
    let head = format!(
        "POST /watches HTTP/1.1\r\nHost: effex\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
        fx.reader
    );
    socket.write_all(head.as_bytes()).await.expect("send");
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        while !reply.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buffer).await.expect("read");
            assert!(n > 0, "closed without a reply");
            reply.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("a reply without the body being sent");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    fx.server.stop().await;
}
