//! SubscriberActor + ConnectionActor against the in-process server: every
//! event reaches the handler exactly once, in order, through reconnects,
//! server restarts and unacknowledged pushes.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use common::exchange::{subscriber, Collector, Exchange, BOUND};
use effex::client::{Subscribe, SubscriberActor, SubscriberEvent, Unsubscribe, WatchError};
use effex::protocol::messages::{EventKind, Push};
use effex::protocol::rest::{KeyKind, NewItem};
use effex::server::ServerConfig;
use effex::store::{MemoryStoreConfig, UpdateItem};
use serde_json::json;
use tokio::sync::{mpsc, Notify};

const BOSS: &str = "test boss key";

fn refused(error: WatchError) -> u16 {
    match error {
        WatchError::Refused { code, .. } => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[actix_rt::test]
async fn every_event_reaches_the_handler_once_in_order_with_its_fields() {
    let ex = Exchange::start(ServerConfig::default()).await;
    let (removed, _) = ex.write(json!({"v": 0}), Duration::from_secs(60)).await;
    // Expires once the watches and the update below are in place: 3 s is many
    // times what they take even on a loaded machine.
    let (expiring, _) = ex.write(json!("short"), Duration::from_secs(3)).await;
    let (sub, mut got) = subscriber(ex.connect());
    let with_value = sub
        .send(
            Subscribe::new(EventKind::Update, &removed, &ex.reader)
                .with_value()
                .message(json!({"tag": 7})),
        )
        .await
        .unwrap()
        .unwrap();
    let removal = sub
        .send(Subscribe::new(EventKind::Remove, &removed, &ex.reader))
        .await
        .unwrap()
        .unwrap();
    let plain = sub
        .send(Subscribe::new(EventKind::Update, &expiring, &ex.reader))
        .await
        .unwrap()
        .unwrap();
    let expiry = sub
        .send(Subscribe::new(EventKind::Expire, &expiring, &ex.reader))
        .await
        .unwrap()
        .unwrap();

    let mut seqs = Vec::new();
    for n in 1..=3 {
        seqs.push(ex.update(&removed, json!({"v": n})).await);
    }
    let plain_seq = ex.update(&expiring, json!("changed")).await;
    let removed_seq = ex.rest.remove(&ex.writer, &removed).await.unwrap().seq;

    // 3 + 1 + 1 pushes, then the expiry.
    let mut by_watch: BTreeMap<String, Vec<Push>> = BTreeMap::new();
    for push in got.pushes(6).await {
        by_watch
            .entry(push.watchable.clone())
            .or_default()
            .push(push);
    }
    let updates = &by_watch[&with_value.watchable];
    assert_eq!(updates.iter().map(|p| p.seq).collect::<Vec<_>>(), seqs);
    for (n, push) in updates.iter().enumerate() {
        assert_eq!(push.event, EventKind::Update);
        assert_eq!(push.id, removed);
        assert_eq!(push.value, Some(json!({"v": n + 1})));
        assert_eq!(push.message, Some(json!({"tag": 7})));
        assert!(push.at > effex::protocol::time::UnixMillis::EPOCH);
    }
    let plain_pushes = &by_watch[&plain.watchable];
    assert_eq!(plain_pushes.len(), 1);
    assert_eq!(
        (plain_pushes[0].seq, plain_pushes[0].value.clone()),
        (plain_seq, None)
    );
    let removals = &by_watch[&removal.watchable];
    assert_eq!(
        (removals.len(), removals[0].event, removals[0].seq),
        (1, EventKind::Remove, removed_seq)
    );
    let expiries = &by_watch[&expiry.watchable];
    assert_eq!(
        (expiries.len(), expiries[0].event, expiries[0].id.as_str()),
        (1, EventKind::Expire, expiring.as_str())
    );
    assert!(expiries[0].seq > removed_seq);
    // The final pushes ended their watches; the subscriber says so.
    got.event(|e| matches!(e, SubscriberEvent::Ended { watchable, error: None } if *watchable == expiry.watchable))
        .await;
}

#[actix_rt::test]
async fn a_server_restart_on_the_same_store_loses_nothing() {
    let store = common::store_switch::store(MemoryStoreConfig {
        boss_key: BOSS.to_owned(),
        ..MemoryStoreConfig::default()
    })
    .await;
    let ex = Exchange::on_store(store.clone(), BOSS, None).await;
    let addr = ex.server.addr();
    let (id, _) = ex.write(json!(0), Duration::from_secs(60)).await;
    let (sub, mut got) = subscriber(ex.connect());
    sub.send(Subscribe::new(EventKind::Update, &id, &ex.reader))
        .await
        .unwrap()
        .unwrap();

    let mut expected = Vec::new();
    for n in 1..=3 {
        expected.push(ex.update(&id, json!(n)).await);
    }
    let mut seen: Vec<u64> = got.pushes(3).await.iter().map(|p| p.seq).collect();

    let Exchange {
        server,
        writer,
        reader,
        ..
    } = ex;
    server.stop().await;
    got.event(|e| matches!(e, SubscriberEvent::Disconnected(_)))
        .await;
    // Events keep happening while the server is down.
    for n in 4..=6 {
        let update = UpdateItem {
            value: json!(n).into(),
            intent: None,
        };
        expected.push(store.update(&writer, &id, update).await.unwrap().seq);
    }

    let ex = Exchange::on_store(store.clone(), BOSS, Some(addr)).await;
    got.event(|e| matches!(e, SubscriberEvent::Reconnected(_)))
        .await;
    for n in 7..=8 {
        // The item's writer key lives in the store; the restarted exchange's
        // own keys are new.
        let updated = ex.rest.update(&writer, &id, json!(n), None).await.unwrap();
        expected.push(updated.seq);
    }
    seen.extend(got.pushes(5).await.iter().map(|p| p.seq));

    assert_eq!(seen, expected, "every event once, in order");
    got.no_more_pushes(Duration::from_millis(300)).await;
    drop(reader);
    ex.server.stop().await;
}

/// A subscriber whose handler holds the first push (so nothing is acked)
/// until [`Gated::open_and_expect`].
struct Gated {
    open: Arc<Notify>,
    pushes: mpsc::UnboundedReceiver<Push>,
    events: common::exchange::Collected,
    _subscriber: Addr<SubscriberActor>,
}

impl Gated {
    /// Subscribes to `id`'s updates through `conn` behind a closed [`Gate`].
    async fn subscribe(
        ex: &Exchange,
        conn: Addr<effex::client::ConnectionActor>,
        id: &str,
    ) -> Self {
        let open = Arc::new(Notify::new());
        let (tx, pushes) = mpsc::unbounded_channel();
        let gate = Gate {
            open: open.clone(),
            held: false,
            pushes: tx,
        }
        .start();
        let (collector, events) = Collector::start_pair();
        let subscriber = SubscriberActor::new(conn, gate.recipient())
            .notify(collector.recipient())
            .start();
        subscriber
            .send(Subscribe::new(EventKind::Update, id, &ex.reader))
            .await
            .unwrap()
            .unwrap();
        Self {
            open,
            pushes,
            events,
            _subscriber: subscriber,
        }
    }

    /// Lets the held push go; then the handler sees exactly `expected`'s
    /// seqs, once each, in order.
    async fn open_and_expect(&mut self, expected: &[u64]) {
        self.open.notify_one();
        let mut seen = Vec::new();
        for _ in 0..expected.len() {
            let push = tokio::time::timeout(BOUND, self.pushes.recv())
                .await
                .unwrap()
                .unwrap();
            seen.push(push.seq);
        }
        assert_eq!(seen, expected, "every event once, in order");
        match tokio::time::timeout(Duration::from_millis(300), self.pushes.recv()).await {
            Err(_) => {}
            Ok(Some(extra)) => panic!("a push handled twice: {extra:?}"),
            Ok(None) => panic!("the gate is gone: cannot tell whether a push came twice"),
        }
    }
}

/// A push handler that holds the first push until it is let go.
struct Gate {
    open: Arc<Notify>,
    held: bool,
    pushes: mpsc::UnboundedSender<Push>,
}

impl Actor for Gate {
    type Context = Context<Self>;
}

impl Handler<Push> for Gate {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, push: Push, _: &mut Context<Self>) -> Self::Result {
        let hold = !std::mem::replace(&mut self.held, true);
        let (open, pushes) = (self.open.clone(), self.pushes.clone());
        Box::pin(async move {
            if hold {
                open.notified().await;
            }
            let _ = pushes.send(push);
        })
    }
}

#[actix_rt::test]
async fn an_unacked_push_closes_the_socket_and_every_event_comes_again_once() {
    let ex = Exchange::start(ServerConfig {
        ack_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let (id, _) = ex.write(json!(0), Duration::from_secs(60)).await;
    let mut gated = Gated::subscribe(&ex, ex.connect(), &id).await;

    let mut expected = Vec::new();
    for n in 1..=4 {
        expected.push(ex.update(&id, json!(n)).await);
    }
    // The first push is held: no ack, so the server's ack timeout closes the
    // socket and the client comes back and re-watches.
    gated
        .events
        .event(|e| matches!(e, SubscriberEvent::Disconnected(_)))
        .await;
    gated
        .events
        .event(|e| matches!(e, SubscriberEvent::Reconnected(_)))
        .await;
    gated.open_and_expect(&expected).await;
}

/// A server that sends more unacked pushes than the client allows
/// (`max_unacked_pushes`) is cut off as a protocol error instead of making
/// the client queue without bound; nothing is lost: the reconnect replays.
#[actix_rt::test]
async fn more_unacked_pushes_than_the_client_allows_drop_the_link_and_lose_nothing() {
    let ex = Exchange::start(ServerConfig::default()).await;
    let (id, _) = ex.write(json!(0), Duration::from_secs(60)).await;
    let config = ex.client().max_unacked_pushes(3).build().unwrap();
    let conn = effex::client::ConnectionActor::new(config).start();
    let mut gated = Gated::subscribe(&ex, conn, &id).await;

    // The first push is held by the handler, so none is acked: the fourth
    // one is over the client's bound (the server's window is 1,000).
    let mut expected = Vec::new();
    for n in 1..=6 {
        expected.push(ex.update(&id, json!(n)).await);
    }
    let reason = gated
        .events
        .event(|e| matches!(e, SubscriberEvent::Disconnected(_)))
        .await;
    match reason {
        SubscriberEvent::Disconnected(effex::client::DisconnectReason::Protocol(detail)) => {
            assert!(detail.contains("max_unacked_pushes"), "{detail}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    gated.open_and_expect(&expected).await;
}

/// `Stats` counts what the connection did: one attempt, one pass, the
/// pushes handed to the subscriber and their acks; a failed attempt leaves
/// its error.
#[actix_rt::test]
async fn stats_count_attempts_pushes_acks_and_the_last_error() {
    let ex = Exchange::start(ServerConfig::default()).await;
    let (id, _) = ex.write(json!(0), Duration::from_secs(60)).await;
    let conn = ex.connect();
    let (sub, mut got) = subscriber(conn.clone());
    sub.send(Subscribe::new(EventKind::Update, &id, &ex.reader))
        .await
        .unwrap()
        .unwrap();
    for n in 1..=2 {
        ex.update(&id, json!(n)).await;
    }
    got.pushes(2).await;
    // Acks are written once the handler returned: wait for them (bounded).
    let stats = common::poll::poll_until("both acks counted", BOUND, || async {
        let stats = conn.send(effex::client::Stats).await.unwrap();
        (stats.acks == 2).then_some(stats)
    })
    .await;
    assert_eq!(
        (
            stats.attempts,
            stats.connects,
            stats.reconnects,
            stats.pushes
        ),
        (1, 1, 0, 2)
    );
    assert_eq!(stats.last_error, None);

    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = common::exchange::client_config(&format!("ws://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let nowhere = effex::client::ConnectionActor::new(config).start();
    assert!(nowhere
        .send(effex::client::GetConnected)
        .await
        .unwrap()
        .is_err());
    let stats = nowhere.send(effex::client::Stats).await.unwrap();
    assert_eq!((stats.attempts, stats.connects), (1, 0));
    assert!(stats.last_error.is_some(), "{stats:?}");
}

#[actix_rt::test]
async fn one_update_reaches_a_thousand_handlers() {
    let ex = Exchange::start(ServerConfig::default()).await;
    let mut readers = Vec::new();
    for _ in 0..10 {
        readers.push(Exchange::key(&ex.rest, &ex.boss, KeyKind::Reader).await);
    }
    let mut item = NewItem::new(json!(0)).lifetime(Duration::from_secs(60));
    for reader in &readers {
        item = item.reader(reader);
    }
    let id = ex.rest.write(&ex.writer, &item).await.unwrap().id;

    let (tx, mut pushes) = mpsc::unbounded_channel::<(usize, String)>();
    let mut subscribers = Vec::new();
    for n in 0..100 {
        let tx = tx.clone();
        let sub = SubscriberActor::with_handler(ex.connect(), move |push| {
            let _ = tx.send((n, push.watchable.clone()));
        })
        .start();
        for reader in &readers {
            sub.send(Subscribe::new(EventKind::Update, &id, reader))
                .await
                .unwrap()
                .unwrap();
        }
        subscribers.push(sub);
    }
    assert_eq!(ex.server.stats().connections_opened, 100);

    ex.update(&id, json!(1)).await;

    let mut handlers = std::collections::HashSet::new();
    for _ in 0..1_000 {
        let hit = tokio::time::timeout(BOUND, pushes.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(handlers.insert(hit), "a handler got the update twice");
    }
    assert_eq!(handlers.len(), 1_000);
}

#[actix_rt::test]
async fn unsubscribe_stops_pushes_and_refusals_carry_their_codes() {
    let ex = Exchange::start(ServerConfig::default()).await;
    let (id, _) = ex.write(json!(0), Duration::from_secs(60)).await;
    let (sub, mut got) = subscriber(ex.connect());
    let updates = sub
        .send(Subscribe::new(EventKind::Update, &id, &ex.reader))
        .await
        .unwrap()
        .unwrap();
    sub.send(Subscribe::new(EventKind::Remove, &id, &ex.reader))
        .await
        .unwrap()
        .unwrap();
    sub.send(Unsubscribe {
        watchable: updates.watchable.clone(),
    })
    .await
    .unwrap()
    .unwrap();

    ex.update(&id, json!(1)).await;
    let removed = ex.rest.remove(&ex.writer, &id).await.unwrap().seq;
    // Pushes of one connection come in seq order: had the update been pushed,
    // it would have come before the removal.
    let first = got.push().await;
    assert_eq!((first.event, first.seq), (EventKind::Remove, removed));

    let unknown = sub
        .send(Unsubscribe {
            watchable: "no-such-watch".into(),
        })
        .await
        .unwrap();
    assert_eq!(refused(unknown.unwrap_err()), 404);

    let (other, _) = ex.write(json!(0), Duration::from_secs(60)).await;
    let stranger = Exchange::key(&ex.rest, &ex.boss, KeyKind::Reader).await;
    let forbidden = sub
        .send(Subscribe::new(EventKind::Update, &other, &stranger))
        .await
        .unwrap();
    assert_eq!(refused(forbidden.unwrap_err()), 403);
    let unknown_key = sub
        .send(Subscribe::new(EventKind::Update, &other, "rk-not-a-key"))
        .await
        .unwrap();
    assert_eq!(refused(unknown_key.unwrap_err()), 401);
    let missing = sub
        .send(Subscribe::new(
            EventKind::Update,
            "00000000000000000000000000000000",
            &ex.reader,
        ))
        .await
        .unwrap();
    assert_eq!(refused(missing.unwrap_err()), 404);
}

#[actix_rt::test]
async fn a_gap_is_reported_when_retention_dropped_the_events_asked_for() {
    let store = common::store_switch::store(MemoryStoreConfig {
        boss_key: BOSS.to_owned(),
        max_events_per_item: 2,
        ..MemoryStoreConfig::default()
    })
    .await;
    let ex = Exchange::on_store(store, BOSS, None).await;
    let (id, written_seq) = ex.write(json!(0), Duration::from_secs(60)).await;
    let mut seqs = Vec::new();
    for n in 1..=5 {
        seqs.push(ex.update(&id, json!(n)).await);
    }
    let (sub, mut got) = subscriber(ex.connect());

    let watch = sub
        .send(Subscribe::new(EventKind::Update, &id, &ex.reader).after(written_seq))
        .await
        .unwrap()
        .unwrap();

    assert!(watch.gap);
    got.event(
        |e| matches!(e, SubscriberEvent::Gap { watchable, .. } if *watchable == watch.watchable),
    )
    .await;
    // The log still holds the last two: they are replayed.
    let replayed: Vec<u64> = got.pushes(2).await.iter().map(|p| p.seq).collect();
    assert_eq!(replayed, seqs[3..]);
}
