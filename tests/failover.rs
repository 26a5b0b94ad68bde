//! Client failover across nodes of one exchange, without Redis: in-process
//! servers sharing one `MemoryStore` act as the nodes. A client given every
//! node's URL moves on to the next when its node stops or is down, passes
//! with the same push id, re-watches with `after`, and its handler sees every
//! event once, in seq order.

mod common;
#[path = "common/failover.rs"]
mod nodes;

use std::time::Duration;

use actix::prelude::*;
use common::exchange::{subscriber, Collector, Exchange, BOUND, PASS};
use common::poll::poll_until;
use effex::client::{
    ConnectError, ConnectionActor, GetConnected, Subscribe, SubscriberActor, SubscriberEvent,
};
use effex::protocol::messages::{EventKind, Push};
use effex::store::UpdateItem;
use nodes::{free_addr, node, nodes_config, shared_store, ws_url};
use serde_json::json;

/// Updates `id` to `n` through the REST API of `node`, with the item's
/// writer key (made on another node: keys live in the shared store).
async fn update_through(node: &Exchange, writer: &str, id: &str, n: u64) -> u64 {
    let updated = node.rest.update(writer, id, json!(n), None).await;
    updated.expect("an update through the node").seq
}

/// Node A stops while 10,000 updates flow through the store: the subscriber
/// (connected to A, configured with [A, B]) reconnects to B and its handler
/// sees every event exactly once, in seq order.
#[actix_rt::test]
async fn a_subscriber_whose_node_stops_gets_every_event_once_from_the_next_node() {
    const UPDATES: usize = 10_000;
    let store = shared_store(2 * UPDATES);
    let a = node(&store, None).await;
    let b = node(&store, None).await;
    let (id, _) = a.write(json!(0), Duration::from_secs(600)).await;

    let config = nodes_config(&[a.server.ws_url(), b.server.ws_url()])
        .build()
        .unwrap();
    let (sub, mut got) = subscriber(ConnectionActor::new(config).start());
    sub.send(Subscribe::new(EventKind::Update, &id, &a.reader))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.server.stats().passes_ok, b.server.stats().passes_ok),
        (1, 0)
    );

    // The updates go straight to the shared store, beside the test.
    let writer_store = store.clone();
    let writer_key = a.writer.clone();
    let item = id.clone();
    let writer = actix_rt::spawn(async move {
        let mut seqs = Vec::with_capacity(UPDATES);
        for n in 1..=UPDATES {
            let update = UpdateItem {
                value: json!(n).into(),
                intent: None,
            };
            let updated = writer_store.update(&writer_key, &item, update).await;
            seqs.push(updated.expect("an update through the store").seq);
            if n % 50 == 0 {
                // Let the nodes and the subscriber run meanwhile.
                tokio::task::yield_now().await;
            }
        }
        seqs
    });

    let mut seen: Vec<u64> = Vec::with_capacity(UPDATES);
    seen.extend(got.pushes(UPDATES / 5).await.iter().map(|p| p.seq));
    a.server.stop().await;
    got.event(|e| matches!(e, SubscriberEvent::Disconnected(_)))
        .await;
    got.event(|e| matches!(e, SubscriberEvent::Reconnected(_)))
        .await;
    assert_eq!(b.server.stats().passes_ok, 1, "the subscriber moved to B");

    let expected = tokio::time::timeout(BOUND, writer)
        .await
        .expect("the updates finish within the bound")
        .expect("the writer task");
    while seen.len() < UPDATES {
        match tokio::time::timeout(BOUND, got.pushes.recv()).await {
            Ok(Some(push)) => seen.push(push.seq),
            _ => panic!(
                "{} of {UPDATES} pushes within the bound, the last {:?}, {} before the stop",
                seen.len(),
                seen.last(),
                UPDATES / 5
            ),
        }
    }
    if seen != expected {
        let first_wrong = seen.iter().zip(&expected).position(|(s, e)| s != e);
        panic!(
            "every event once, in seq order: first difference at {first_wrong:?} of {} (seen {:?}…)",
            seen.len(),
            first_wrong.map(|i| &seen[i..(i + 5).min(seen.len())])
        );
    }
    got.no_more_pushes(Duration::from_millis(300)).await;
    b.server.stop().await;
}

/// The first node is down at the start: the first `GetConnected` gets a
/// session from the second, and a subscription works through it.
#[actix_rt::test]
async fn a_first_node_down_at_start_connects_to_the_second() {
    let store = shared_store(1_000);
    let b = node(&store, None).await;
    let (id, _) = b.write(json!(0), Duration::from_secs(600)).await;
    let down = ws_url(free_addr());

    let config = nodes_config(&[down, b.server.ws_url()]).build().unwrap();
    let conn = ConnectionActor::new(config).start();
    let session = tokio::time::timeout(BOUND, conn.send(GetConnected))
        .await
        .expect("an answer within the bound")
        .unwrap()
        .expect("a session from the second node");
    assert_eq!(b.server.stats().passes_ok, 1);

    let (sub, mut got) = subscriber(conn);
    sub.send(Subscribe::new(EventKind::Update, &id, &b.reader))
        .await
        .unwrap()
        .unwrap();
    let seq = b.update(&id, json!(1)).await;
    assert_eq!(got.push().await.seq, seq);
    drop(session);
    b.server.stop().await;
}

/// Every node down: the waiters of an attempt get its error (once every node
/// was tried); when a node comes back, the automatic reconnect reaches it and
/// the events missed meanwhile arrive once, in order.
#[actix_rt::test]
async fn with_every_node_down_waiters_get_the_error_and_a_node_coming_back_is_reached() {
    let store = shared_store(1_000);
    let a = node(&store, None).await;
    let b_addr = free_addr();
    let (id, first) = a.write(json!(0), Duration::from_secs(600)).await;
    let writer = a.writer.clone();

    let config = nodes_config(&[a.server.ws_url(), ws_url(b_addr)])
        .build()
        .unwrap();
    let conn = ConnectionActor::new(config).start();
    let (sub, mut got) = subscriber(conn.clone());
    sub.send(Subscribe::new(EventKind::Update, &id, &a.reader).after(first))
        .await
        .unwrap()
        .unwrap();
    let mut expected = vec![a.update(&id, json!(1)).await];
    let mut seen = vec![got.push().await.seq];

    a.server.stop().await;
    got.event(|e| matches!(e, SubscriberEvent::Disconnected(_)))
        .await;
    // Two callers at once: one attempt over both nodes, both answered with
    // its error.
    let (one, two) = tokio::time::timeout(
        BOUND,
        futures_util::future::join(conn.send(GetConnected), conn.send(GetConnected)),
    )
    .await
    .expect("both waiters answered within the bound");
    let (one, two) = (one.unwrap().unwrap_err(), two.unwrap().unwrap_err());
    assert!(
        matches!(
            &one,
            ConnectError::WebSocket { .. } | ConnectError::Disconnected { .. }
        ),
        "{one:?}"
    );
    assert!(
        matches!(
            &two,
            ConnectError::WebSocket { .. } | ConnectError::Disconnected { .. }
        ),
        "{two:?}"
    );
    for n in 2..=4 {
        let update = UpdateItem {
            value: json!(n).into(),
            intent: None,
        };
        expected.push(store.update(&writer, &id, update).await.unwrap().seq);
    }

    // Node B starts where nothing listened.
    let b = node(&store, Some(b_addr)).await;
    got.event(|e| matches!(e, SubscriberEvent::Reconnected(_)))
        .await;
    expected.push(update_through(&b, &writer, &id, 5).await);
    seen.extend(got.pushes(4).await.iter().map(|p| p.seq));
    assert_eq!(seen, expected, "every event once, in order");
    got.no_more_pushes(Duration::from_millis(300)).await;
    b.server.stop().await;
}

/// `effex watch --url a,b`: node A stops, the CLI moves to B and prints every
/// push once, in order (the updates made while it was away, then one made
/// through B; a repeat would show before that last one).
#[cfg(feature = "cli")]
#[actix_rt::test]
async fn effex_watch_fails_over_to_the_next_url() {
    use common::child::lines_of;
    use std::process::{Command, Stdio};

    let store = shared_store(1_000);
    let a = node(&store, None).await;
    let b = node(&store, None).await;
    let (id, written) = a.write(json!(0), Duration::from_secs(600)).await;

    let urls = format!("{},{}", a.server.http_url(), b.server.http_url());
    let mut child = Command::new(env!("CARGO_BIN_EXE_effex"))
        .args(["watch", &id, "--event", "update", "--after"])
        .arg(written.to_string())
        .args(["--url", &urls, "--key", &a.reader])
        .env("EFFEX_PASS", PASS)
        .env_remove("EFFEX_TIMEOUT")
        .env_remove("EFFEX_PUSH_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the effex binary runs");
    let mut stdout = lines_of(child.stdout.take().unwrap());
    let stderr = lines_of(child.stderr.take().unwrap());
    let mut next_seq = async || -> u64 {
        let line = tokio::time::timeout(BOUND, stdout.recv())
            .await
            .expect("a push line within the bound")
            .expect("effex watch is running");
        let push: serde_json::Value = serde_json::from_str(&line).expect("a JSON push line");
        push["seq"].as_u64().expect("a seq")
    };

    let mut expected = vec![a.update(&id, json!(1)).await];
    let mut seen = vec![next_seq().await];
    a.server.stop().await;
    for n in 2..=4 {
        let update = UpdateItem {
            value: json!(n).into(),
            intent: None,
        };
        expected.push(store.update(&a.writer, &id, update).await.unwrap().seq);
    }
    let last = update_through(&b, &a.writer, &id, 5).await;
    expected.push(last);
    while seen.last() != Some(&last) && seen.len() <= expected.len() {
        seen.push(next_seq().await);
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = stderr;
    assert_eq!(seen, expected, "every push once, in order");
    assert!(
        b.server.stats().passes_ok > 0,
        "effex watch passed on node B"
    );
    b.server.stop().await;
}

/// A push handler that holds the first push until it is let go.
struct Gate {
    seen: tokio::sync::mpsc::UnboundedSender<u64>,
    hold: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Actor for Gate {
    type Context = Context<Self>;
}

impl Handler<Push> for Gate {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, push: Push, _: &mut Context<Self>) -> Self::Result {
        let _ = self.seen.send(push.seq);
        let hold = self.hold.take();
        Box::pin(async move {
            if let Some(hold) = hold {
                let _ = hold.await;
            }
        })
    }
}

/// A push still in the handler when its node stops: the next node names the
/// watch anew and replays that push; the subscriber records the handled seq
/// on the renamed watch, so the replay is known as a repeat and the push is
/// not handed over a second time.
#[actix_rt::test]
async fn a_push_in_the_handler_during_a_failover_is_not_handed_over_again() {
    let store = shared_store(1_000);
    let a = node(&store, None).await;
    let b = node(&store, None).await;
    let (id, first) = a.write(json!(0), Duration::from_secs(600)).await;

    let config = nodes_config(&[a.server.ws_url(), b.server.ws_url()])
        .build()
        .unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let (release, hold) = tokio::sync::oneshot::channel();
    let gate = Gate {
        seen: seen_tx,
        hold: Some(hold),
    }
    .start();
    let (events, mut got) = Collector::start_pair();
    let sub = SubscriberActor::new(ConnectionActor::new(config).start(), gate.recipient())
        .notify(events.recipient())
        .start();
    sub.send(Subscribe::new(EventKind::Update, &id, &a.reader).after(first))
        .await
        .unwrap()
        .unwrap();
    let mut next_seen = async || {
        tokio::time::timeout(BOUND, seen_rx.recv())
            .await
            .expect("a push in the handler within the bound")
            .expect("the gate is alive")
    };

    let held = a.update(&id, json!(1)).await;
    assert_eq!(next_seen().await, held);
    a.server.stop().await;
    got.event(|e| matches!(e, SubscriberEvent::Disconnected(_)))
        .await;
    poll_until("a pass on node B", BOUND, || {
        let passed = b.server.stats().passes_ok > 0;
        async move { passed.then_some(()) }
    })
    .await;
    // A round trip through B: time for a re-watch sent at once to be answered.
    let later = update_through(&b, &a.writer, &id, 2).await;
    release.send(()).expect("the gate holds the push");

    assert_eq!(
        next_seen().await,
        later,
        "the held push is not handed over again"
    );
    got.event(|e| matches!(e, SubscriberEvent::Reconnected(_)))
        .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), seen_rx.recv()).await;
    assert!(quiet.is_err(), "an unexpected extra push: {quiet:?}");
    b.server.stop().await;
}
