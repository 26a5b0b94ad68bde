//! `GET /metrics` of a server on the Redis store (a `redis-server` of the
//! test's own): the script latencies by script name, and the reconnects
//! after Redis drops every client connection (`CLIENT KILL`), as a network
//! blip would.
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::poll::poll_until;
use common::redis::RedisServer;
use common::wire::http_client;
use effex::server::{Server, ServerConfig, ServerHandle};
use serde_json::{json, Value};

/// The bound on every wait.
const BOUND: Duration = Duration::from_secs(10);

/// The value of the sample line `series` (name and labels exactly as the
/// server writes them), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn scrape(server: &ServerHandle) -> String {
    let mut response = http_client(None)
        .get(format!("{}/metrics", server.http_url()))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let body = response.body().await.expect("a body");
    String::from_utf8_lossy(&body).into_owned()
}

#[actix_rt::test]
async fn redis_scripts_are_timed_and_reconnects_counted() {
    common::logs::init();
    let redis = RedisServer::start().await;
    let server = Server::start(ServerConfig {
        redis_url: Some(redis.url()),
        boss_key: Some("bk-metrics-redis".into()),
        ..common::server::config()
    })
    .await
    .expect("start on Redis");
    let http = http_client(None);
    let mut made = http
        .post(format!("{}/keys", server.http_url()))
        .bearer_auth("bk-metrics-redis")
        .send_json(&json!({"type": "writer", "count": 1}))
        .await
        .expect("POST /keys");
    let keys: Value = made.json().await.expect("keys");
    let writer = keys["keys"][0].as_str().expect("a key").to_owned();
    let written = http
        .post(format!("{}/items", server.http_url()))
        .bearer_auth(&writer)
        .send_json(&json!({"value": 1}))
        .await
        .expect("POST /items");
    assert_eq!(written.status().as_u16(), 201);

    let text = scrape(&server).await;
    let writes = sample(
        &text,
        r#"effex_redis_command_duration_seconds_count{command="write"}"#,
    );
    assert_eq!(writes, Some(1.0), "{text}");
    assert!(
        sample(
            &text,
            r#"effex_redis_command_duration_seconds_count{command="sweep"}"#
        )
        .is_some_and(|sweeps| sweeps >= 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "effex_redis_reconnects_total"), Some(0.0));
    assert_eq!(sample(&text, "effex_items_stored"), Some(1.0));

    assert!(redis.drop_clients().await >= 2, "the store's connections");
    poll_until("a reconnect counted", BOUND, || async {
        let text = scrape(&server).await;
        sample(&text, "effex_redis_reconnects_total")
            .filter(|n| *n >= 1.0)
            .map(|_| ())
    })
    .await;
    server.stop().await;
}
