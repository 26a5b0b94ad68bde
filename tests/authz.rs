//! Authorization at send time (`ended`, protocol.md §2.6), the hub's quotas
//! and its supervision, against an in-process server over real sockets on
//! 127.0.0.1.
//!
//! Every wait is bounded. Where a test must show that a push does *not*
//! arrive, it uses a barrier: a second watch on the same socket whose push
//! of a later event arrives after any push of an earlier one would have.

mod common;
#[path = "common/authz.rs"]
mod fixtures;

use std::time::Duration;

use common::webhook_receiver::{Request, WebhookReceiver};
use common::wire::{classify, ended_of, Incoming, Wire};
use effex::client::{SubscriberEvent, WatchError};
use effex::server::ServerConfig;
use effex::store::KeyKind;
use fixtures::{config, Authz};
use serde_json::json;
use tokio::time::Instant;

/// The generous bound on events that take a while (a key's expiry).
const BOUND: Duration = Duration::from_secs(10);

/// The next text frame within `bound` (pings are answered by the wire).
async fn next_text_within(wire: &mut Wire, bound: Duration) -> String {
    match wire.next_within(bound).await {
        Some(common::wire::Received::Text(text)) => text,
        other => panic!("expected a text frame within {bound:?}, got {other:?}"),
    }
}

/// The alias breach of the issue: a reader watching an alias `withValue`
/// must not receive the value of the item the owner re-points the alias to
/// (the reader is not listed there); the watch ends with `ended` 403.
#[actix_rt::test]
async fn alias_repointed_to_an_item_the_key_may_not_read_ends_the_watch_with_403() {
    let f = Authz::start(config()).await;
    let reader = f.reader().await;
    let public = f.write(json!("public"), &[&reader], Some("board")).await;
    let private = f.write(json!("private"), &[], None).await;
    let mut wire = Wire::passed(&f.server.ws_url(), "", "alias-reader").await;
    let on_alias = wire
        .watch_ok(
            1,
            json!({"event":"update","id":"board","key":reader,"withValue":true}),
        )
        .await;
    // The barrier: a direct watch of the public item.
    wire.watch_ok(2, json!({"event":"update","id":public,"key":reader}))
        .await;

    f.alias("board", &private).await;
    f.update(&private, json!("secret")).await;
    let barrier = f.update(&public, json!("still public")).await;

    let ended = ended_of(&wire.next_text().await).expect("an ended event first");
    assert_eq!(ended["watchable"], json!(on_alias));
    assert_eq!(ended["code"], json!(403));
    assert!(
        ended["error"].as_str().unwrap().contains("board"),
        "{ended}"
    );
    // Nothing of the private item came before the barrier's push.
    let push = wire.next_push_acked().await;
    assert_eq!(push["seq"], json!(barrier), "{push}");
    assert_eq!(push["id"], json!(public));
    // The watchable is gone.
    let reply = wire
        .call(3, "unwatch", json!({"watchable": on_alias}))
        .await;
    assert_eq!(reply["code"], json!(404));
    f.server.stop().await;
}

/// A watch whose reader key expires gets `ended` 401 and no further push.
#[actix_rt::test]
async fn expired_key_ends_the_watch_with_401_and_no_further_push() {
    let f = Authz::start(config()).await;
    let short = f.keys(KeyKind::Reader, Some(Duration::from_secs(3))).await;
    let lasting = f.reader().await;
    let short_key = short.keys[0].clone();
    let id = f.write(json!(0), &[&short_key, &lasting], None).await;
    let mut wire = Wire::passed(&f.server.ws_url(), "", "expiring").await;
    let watchable = wire
        .watch_ok(1, json!({"event":"update","id":id,"key":short_key}))
        .await;
    wire.watch_ok(2, json!({"event":"update","id":id,"key":lasting}))
        .await;

    let ended = ended_of(&next_text_within(&mut wire, BOUND).await).expect("an ended event");
    assert_eq!(ended["watchable"], json!(watchable));
    assert_eq!(ended["code"], json!(401));
    // After the end, an update reaches only the lasting key's watch.
    let seq = f.update(&id, json!(1)).await;
    let push = wire.next_push_acked().await;
    assert_eq!(push["seq"], json!(seq));
    assert_ne!(push["watchable"], json!(watchable), "{push}");
    f.server.stop().await;
}

/// A webhook watch follows the same rule: once its key has expired, no
/// delivery is made, and the watch is gone.
///
/// The receiver is on 127.0.0.1: once the webhook egress guard is merged,
/// this test needs its allow-list for loopback.
#[actix_rt::test]
async fn expired_key_ends_a_webhook_watch() {
    let f = Authz::start(config()).await;
    let short = f.keys(KeyKind::Reader, Some(Duration::from_secs(3))).await;
    let lasting = f.reader().await;
    let short_key = short.keys[0].clone();
    let id = f.write(json!(0), &[&short_key, &lasting], None).await;
    let mut hook = WebhookReceiver::start();
    let watchable = f
        .webhook(
            &short_key,
            &json!({"event":"update","id":id,"url":format!("{}/short", hook.url)}),
        )
        .await;
    f.webhook(
        &lasting,
        &json!({"event":"update","id":id,"url":format!("{}/lasting", hook.url)}),
    )
    .await;

    // Wait (bounded) until the short key has expired.
    let deadline = Instant::now() + BOUND;
    while effex::store::Store::check_read(&*f.store, &short_key, &id)
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the key did not expire in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seq = f.update(&id, json!(1)).await;
    let Request { path, body, .. } = hook.next().await;
    assert_eq!(
        (path.as_str(), body["seq"].clone()),
        ("/lasting", json!(seq))
    );
    hook.expect_none(Duration::from_millis(300)).await;
    // The watch has ended: deleting it with its key finds nothing.
    assert_eq!(f.delete_webhook(&short_key, &watchable).await, 404);
    hook.stop().await;
    f.server.stop().await;
}

/// A webhook watch on an alias follows the same rule: re-pointed at an item
/// its key may not read, it delivers nothing of that item and is gone.
#[actix_rt::test]
async fn alias_repointed_ends_a_webhook_watch() {
    let f = Authz::start(config()).await;
    let reader = f.reader().await;
    let public = f.write(json!("public"), &[&reader], Some("feed")).await;
    let private = f.write(json!("private"), &[], None).await;
    let mut hook = WebhookReceiver::start();
    let watchable = f
        .webhook(
            &reader,
            &json!({"event":"update","id":"feed","url":format!("{}/alias", hook.url)}),
        )
        .await;
    f.webhook(
        &reader,
        &json!({"event":"update","id":public,"url":format!("{}/direct", hook.url)}),
    )
    .await;

    f.alias("feed", &private).await;
    f.update(&private, json!("secret")).await;
    let seq = f.update(&public, json!("still public")).await;
    let Request { path, body, .. } = hook.next().await;
    assert_eq!(
        (path.as_str(), body["seq"].clone()),
        ("/direct", json!(seq))
    );
    hook.expect_none(Duration::from_millis(300)).await;
    assert_eq!(
        f.delete_webhook(&reader, &watchable).await,
        404,
        "the watch should have ended"
    );
    hook.stop().await;
    f.server.stop().await;
}

/// Watches per push id and the size of a watch's message: over the quota
/// is 429 (413 for a message too large); other clients keep working.
#[actix_rt::test]
async fn watch_quotas_answer_with_their_codes_and_others_keep_working() {
    let f = Authz::start(ServerConfig {
        max_watches_per_push_id: 2,
        max_message_size: 64,
        ..config()
    })
    .await;
    let (reader, id) = f.readable_item().await;
    let mut greedy = Wire::passed(&f.server.ws_url(), "", "greedy").await;
    greedy
        .watch_ok(1, json!({"event":"update","id":id,"key":reader}))
        .await;
    greedy
        .watch_ok(2, json!({"event":"remove","id":id,"key":reader}))
        .await;
    let reply = greedy
        .call(3, "watch", json!({"event":"expire","id":id,"key":reader}))
        .await;
    assert_eq!(
        (reply["ok"].clone(), reply["code"].clone()),
        (json!(false), json!(429))
    );
    assert!(
        reply["error"].as_str().unwrap().contains("unwatch"),
        "{reply}"
    );
    // The same watch again is no new watch: still fine.
    greedy
        .watch_ok(4, json!({"event":"update","id":id,"key":reader}))
        .await;

    let mut other = Wire::passed(&f.server.ws_url(), "", "modest").await;
    let big = "x".repeat(100);
    let reply = other
        .call(
            1,
            "watch",
            json!({"event":"update","id":id,"key":reader,"message":big}),
        )
        .await;
    assert_eq!(reply["code"], json!(413), "{reply}");
    other
        .watch_ok(
            2,
            json!({"event":"update","id":id,"key":reader,"message":{"m":1}}),
        )
        .await;
    let seq = f.update(&id, json!(1)).await;
    assert_eq!(other.next_push_acked().await["seq"], json!(seq));
    assert_eq!(greedy.next_push_acked().await["seq"], json!(seq));
    f.server.stop().await;
}

/// Webhook watches per key: an identical watch is the same watch (same
/// watchable); one more distinct watch is 429; another key still may.
#[actix_rt::test]
async fn webhook_watches_are_one_per_identity_and_capped_per_key() {
    let f = Authz::start(ServerConfig {
        max_webhooks_per_key: 1,
        ..config()
    })
    .await;
    let reader = f.reader().await;
    let other = f.reader().await;
    let id = f.write(json!(0), &[&reader, &other], None).await;
    let mut hook = WebhookReceiver::start();
    let spec = json!({"event":"update","id":id,"url":format!("{}/a", hook.url)});
    let (status, first) = f.post_webhook(&reader, &spec).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = f.post_webhook(&reader, &spec).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["watchable"], first["watchable"]);
    let (status, body) = f
        .post_webhook(
            &reader,
            &json!({"event":"update","id":id,"url":format!("{}/b", hook.url)}),
        )
        .await;
    assert_eq!((status, body["code"].clone()), (429, json!(429)), "{body}");
    let (status, body) = f.post_webhook(&other, &spec).await;
    assert_eq!(status, 201, "{body}");
    // One delivery per watch: two watches (two keys), not three.
    let seq = f.update(&id, json!(1)).await;
    for _ in 0..2 {
        let Request { path, body, .. } = hook.next().await;
        assert_eq!((path.as_str(), body["seq"].clone()), ("/a", json!(seq)));
    }
    hook.expect_none(Duration::from_millis(300)).await;
    hook.stop().await;
    f.server.stop().await;
}

/// Offline push ids are bounded: when one more goes offline, the watches of
/// the one offline longest are forgotten (its re-watch makes a new watch),
/// while the newer one's are kept.
#[actix_rt::test]
async fn offline_push_ids_are_bounded_oldest_first() {
    let f = Authz::start(ServerConfig {
        max_offline_push_ids: 1,
        ..config()
    })
    .await;
    let (reader, id) = f.readable_item().await;
    let args = json!({"event":"update","id":id,"key":reader});
    let url = f.server.ws_url();
    let mut watchables = Vec::new();
    for push_id in ["first-out", "second-out"] {
        let mut wire = Wire::passed(&url, "", push_id).await;
        watchables.push(wire.watch_ok(1, args.clone()).await);
        wire.send_text("41").await;
        wire.expect_close_code(1000).await;
        // Wait (bounded) until the session has ended: it tells the hub then.
        let deadline = Instant::now() + BOUND;
        while f.server.stats().connections_active > 0 {
            assert!(Instant::now() < deadline, "the session did not end");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut second = Wire::passed(&url, "", "second-out").await;
    assert_eq!(second.watch_ok(1, args.clone()).await, watchables[1]);
    let mut first = Wire::passed(&url, "", "first-out").await;
    assert_ne!(first.watch_ok(1, args.clone()).await, watchables[0]);
    f.server.stop().await;
}

/// A session's queue is bounded in bytes: values that fit the count bound
/// close the socket with 1013 when their bytes do not fit; another client
/// keeps getting its pushes. The replay of a backlog larger than the bound
/// counts against it and goes out window by window: everything arrives,
/// in order, and the socket is not closed again.
#[actix_rt::test]
async fn the_session_queue_is_bounded_in_bytes_and_replays_fit_in_it() {
    let f = Authz::start(ServerConfig {
        max_item_size: 10_000,
        max_queued_bytes: 40_000,
        max_queued_pushes: 6,
        max_in_flight: 1,
        ..config()
    })
    .await;
    let (reader, id) = f.readable_item().await;
    let start = f.update(&id, json!(0)).await;
    let url = f.server.ws_url();
    let mut slow = Wire::passed(&url, "", "slow").await;
    let args = json!({"event":"update","id":id,"key":reader,"withValue":true});
    slow.watch_ok(1, args.clone()).await;
    let mut light = Wire::passed(&url, "", "light").await;
    light
        .watch_ok(1, json!({"event":"update","id":id,"key":reader}))
        .await;

    let value = "v".repeat(9_000);
    let mut seqs = Vec::new();
    for n in 0..5 {
        let seq = f.update(&id, json!(format!("{n}{value}"))).await;
        // The other client keeps getting its pushes.
        assert_eq!(light.next_push_acked().await["seq"], json!(seq));
        seqs.push(seq);
    }
    // The slow client acks nothing: 4 pushes of ~9 kB fit 40 kB (one in
    // flight, three waiting: under the count bound), the 5th does not.
    let (pushes, code) = slow.pushes_until_close().await;
    assert_eq!(code, Some(1013));
    assert_eq!(pushes.len(), 1, "the in-flight window is 1");
    for n in 5..10 {
        let seq = f.update(&id, json!(n)).await;
        assert_eq!(light.next_push_acked().await["seq"], json!(seq));
        seqs.push(seq);
    }

    // Ten replayed pushes exceed the count bound (6): all at once they would
    // close the socket again, on every reconnect. In windows of half the
    // bound they all come, in order, without a gap.
    let mut back = Wire::passed(&url, "", "slow").await;
    let mut rewatch = args.clone();
    rewatch["after"] = json!(start);
    let reply = back.call(1, "watch", rewatch).await;
    assert_eq!(
        (reply["ok"].clone(), reply["gap"].clone()),
        (json!(true), json!(false)),
        "{reply}"
    );
    let replayed = back.pushes_acked(seqs.len()).await;
    assert_eq!(
        replayed
            .iter()
            .map(|p| p["seq"].clone())
            .collect::<Vec<_>>(),
        seqs.iter().map(|s| json!(s)).collect::<Vec<_>>()
    );
    let seq = f.update(&id, json!("live")).await;
    assert_eq!(back.next_push_acked().await["seq"], json!(seq));
    f.server.stop().await;
}

/// The hub is supervised: if its task dies, every push session is closed
/// with 1011 and `GET /ready` answers 503 (200 before).
#[actix_rt::test]
async fn a_dead_hub_closes_sessions_with_1011_and_ready_answers_503() {
    let f = Authz::start(config()).await;
    assert_eq!(f.get("/ready").await, (200, json!({"ok": true})));
    let (reader, id) = f.readable_item().await;
    let mut wire = Wire::passed(&f.server.ws_url(), "", "watcher").await;
    wire.watch_ok(1, json!({"event":"update","id":id,"key":reader}))
        .await;

    f.server.inject_hub_panic();
    let (code, why) = wire.expect_close().await;
    assert_eq!(code, 1011, "{why}");
    let (status, body) = f.get("/ready").await;
    assert_eq!((status, body["code"].clone()), (503, json!(503)), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("panicked"),
        "{body}"
    );
    f.server.stop().await;
}

/// Webhook deliveries stop when the server stops: a URL that keeps failing
/// is not retried after `stop()`.
#[actix_rt::test]
async fn webhook_deliveries_stop_with_the_server() {
    let f = Authz::start(ServerConfig {
        webhook_retry_base: Duration::from_millis(200),
        webhook_retries: 20,
        webhook_timeout: Duration::from_secs(2),
        shutdown_timeout: Duration::from_secs(1),
        ..config()
    })
    .await;
    let (reader, id) = f.readable_item().await;
    let mut hook = WebhookReceiver::start();
    hook.answer(500);
    f.webhook(&reader, &json!({"event":"update","id":id,"url":hook.url}))
        .await;
    f.update(&id, json!(1)).await;
    hook.next().await;
    f.server.stop().await;
    // Retries would come at 0.2, 0.6, 1.4 s after the first attempt.
    hook.expect_none(Duration::from_millis(1500)).await;
    hook.stop().await;
}

/// The effex client reports a server-ended watch as
/// `SubscriberEvent::Ended { error: Some(WatchError::Ended { .. }) }`.
#[actix_rt::test]
async fn the_client_maps_ended_to_subscriber_event_ended() {
    let f = Authz::start(config()).await;
    let reader = f.reader().await;
    f.write(json!("public"), &[&reader], Some("news")).await;
    let private = f.write(json!("private"), &[], None).await;
    let conn = effex::client::ConnectionActor::new(
        effex::client::ClientConfig::builder(f.server.ws_url())
            .build()
            .expect("client config"),
    );
    let conn = actix::Actor::start(conn);
    let (subscriber, mut collected) = common::exchange::subscriber(conn);
    let ok = subscriber
        .send(effex::client::Subscribe::new(
            effex::protocol::messages::EventKind::Update,
            "news",
            reader.as_str(),
        ))
        .await
        .expect("subscriber alive")
        .expect("watch accepted");
    f.alias("news", &private).await;
    let event = collected
        .event(|e| matches!(e, SubscriberEvent::Ended { .. }))
        .await;
    match event {
        SubscriberEvent::Ended {
            watchable,
            error: Some(WatchError::Ended { code, message }),
        } => {
            assert_eq!(watchable, ok.watchable);
            assert_eq!(code, 403, "{message}");
        }
        other => panic!("expected Ended with WatchError::Ended, got {other:?}"),
    }
    f.server.stop().await;
}

/// `effex watch` exits 1 with the server's message when the server ends
/// the watch.
#[cfg(feature = "cli")]
#[actix_rt::test]
async fn effex_watch_exits_1_when_the_server_ends_the_watch() {
    use common::effex_bin::Watch;

    let f = Authz::start(config()).await;
    let reader = f.reader().await;
    let public = f.write(json!("public"), &[&reader], Some("ticker")).await;
    let private = f.write(json!("private"), &[], None).await;
    let mut watch = Watch::start(
        &f.server.http_url(),
        &reader,
        None,
        &["ticker", "--event", "update"],
    );
    // The watch is in place once the item's watch count… is not visible:
    // wait (bounded) until the CLI says so on stderr.
    watch.watching().await;
    let _ = public;
    f.alias("ticker", &private).await;
    let (status, _, said) = watch.exit().await;
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("403") && said.contains("ticker"), "{said}");
}

/// The classify helper still sees pushes (sanity for the barrier logic).
#[test]
fn ended_frames_are_not_pushes() {
    let text = r#"42["ended",{"watchable":"w","code":401,"error":"e"}]"#;
    assert!(matches!(classify(text), Incoming::Other(_)));
    assert_eq!(ended_of(text).unwrap()["code"], json!(401));
}
