//! `EffexClient::watch_webhook` / `unwatch_webhook` against an in-process
//! server and a webhook receiver on 127.0.0.1 (protocol.md §3's
//! `POST /watches` and `DELETE /watches/{watchable}`).

mod common;

use std::time::Duration;

use common::exchange::Exchange;
use common::server::config;
use common::webhook_receiver::{allowing_receivers, WebhookReceiver};
use effex::client::EffexError;
use effex::protocol::messages::EventKind;
use effex::protocol::rest::WebhookRequest;
use serde_json::json;

fn update_hook(id: &str, url: &str) -> WebhookRequest {
    WebhookRequest {
        event: EventKind::Update,
        id: id.to_owned(),
        url: url.to_owned(),
        method: None,
        message: Some(json!({"from": "the client"})),
    }
}

#[actix_rt::test]
async fn the_client_makes_and_ends_a_webhook_watch() {
    let fx = Exchange::start(allowing_receivers(config())).await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(600)).await;
    let mut hook = WebhookReceiver::start();

    let watch = fx
        .rest
        .watch_webhook(&fx.reader, &update_hook(&id, &hook.url))
        .await
        .expect("a webhook watch");
    let seq = fx.update(&id, json!(1)).await;
    let delivered = hook.next().await;
    assert_eq!(delivered.body["seq"], json!(seq), "{delivered:?}");
    assert_eq!(delivered.body["watchable"], json!(watch.watchable));
    assert_eq!(delivered.body["message"], json!({"from": "the client"}));

    // Another key may not end it; the key that made it may, once.
    let other = Exchange::key(&fx.rest, &fx.boss, effex::protocol::rest::KeyKind::Reader).await;
    match fx.rest.unwatch_webhook(&other, &watch.watchable).await {
        Err(EffexError::Server { code: 404, .. }) => {}
        other => panic!("another key's unwatch: {other:?}"),
    }
    fx.rest
        .unwatch_webhook(&fx.reader, &watch.watchable)
        .await
        .expect("the maker's unwatch");
    match fx.rest.unwatch_webhook(&fx.reader, &watch.watchable).await {
        Err(EffexError::Server { code: 404, .. }) => {}
        other => panic!("a second unwatch: {other:?}"),
    }

    // Nothing reaches the ended watch; a second webhook is the barrier.
    let mut barrier = WebhookReceiver::start();
    fx.rest
        .watch_webhook(&fx.reader, &update_hook(&id, &barrier.url))
        .await
        .expect("the barrier's watch");
    let seq = fx.update(&id, json!(2)).await;
    assert_eq!(barrier.next().await.body["seq"], json!(seq));
    hook.expect_none(Duration::from_millis(200)).await;
    hook.stop().await;
    barrier.stop().await;
    fx.server.stop().await;
}

#[actix_rt::test]
async fn a_refused_webhook_url_is_the_servers_400_with_its_reason() {
    // Loopback is not allowed by default (protocol.md §3).
    let fx = Exchange::start(config()).await;
    let (id, _) = fx.write(json!(0), Duration::from_secs(600)).await;
    match fx
        .rest
        .watch_webhook(&fx.reader, &update_hook(&id, "http://127.0.0.1:9/hook"))
        .await
    {
        Err(EffexError::Server { code: 400, message }) => {
            assert!(message.contains("127.0.0.1"), "{message}");
        }
        other => panic!("a loopback webhook: {other:?}"),
    }
    fx.server.stop().await;
}
