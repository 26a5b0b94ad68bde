//! ConnectionActor against real sockets: the in-process effex server for the
//! conversation, and the scripted fake server for fault cases.

mod common;

use std::time::{Duration, Instant};

use actix::prelude::*;
use common::exchange::{client_config as client, pass_config as server_config};
use common::fake_server::{FakeServer, Script, Seen};
use common::server::start as server;
use common::states::{next_state, state_within, watch_states};
use effex::client::{
    ConnectError, ConnectionActor, ConnectionState, Disconnect, DisconnectReason, Emit, EmitError,
    GetConnected, Stage, Stop,
};
use effex::server::ServerConfig;
use futures_util::future::join_all;
use serde_json::json;

const BOUND: Duration = Duration::from_secs(10);

#[actix_rt::test]
async fn a_thousand_concurrent_waiters_share_one_socket_and_one_session() {
    let server = server(server_config()).await;
    let conn = ConnectionActor::new(client(&server.ws_url()).build().unwrap()).start();

    let replies = join_all((0..1_000).map(|_| conn.send(GetConnected))).await;

    let sessions: Vec<_> = replies
        .into_iter()
        .map(|r| r.expect("actor alive").expect("connected"))
        .collect();
    assert_eq!(sessions.len(), 1_000);
    assert!(sessions.iter().all(|s| s.same_as(&sessions[0])));
    assert_eq!(server.stats().connections_opened, 1);
    assert_eq!(sessions[0].epoch(), 1);
    // Once connected, later callers get the same session without a new socket.
    let later = conn.send(GetConnected).await.unwrap().unwrap();
    assert!(later.same_as(&sessions[0]));
    assert_eq!(server.stats().connections_opened, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn a_stage_that_never_answers_times_out_naming_the_stage() {
    for (script, stage) in [
        (
            Script {
                send_open: false,
                answer_connect: false,
                ..Script::default()
            },
            Stage::EngineIoOpen,
        ),
        (
            Script {
                answer_connect: false,
                ..Script::default()
            },
            Stage::SocketIoConnect,
        ),
    ] {
        let fake = FakeServer::start(script);
        let timeout = Duration::from_millis(300);
        let config = client(&fake.url())
            .connect_timeout(timeout)
            .build()
            .unwrap();
        let conn = ConnectionActor::new(config).start();
        let started = Instant::now();
        let error = conn.send(GetConnected).await.unwrap().unwrap_err();
        assert_eq!(
            error,
            ConnectError::Timeout {
                stage,
                after: timeout
            }
        );
        assert!(started.elapsed() < timeout + Duration::from_secs(2));
        assert!(error.to_string().contains(&stage.to_string()));
        fake.stop().await;
    }
}

#[actix_rt::test]
async fn a_websocket_open_that_hangs_times_out() {
    // A TCP listener that accepts and never answers the HTTP upgrade.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let timeout = Duration::from_millis(300);
    let conn = ConnectionActor::new(client(&url).connect_timeout(timeout).build().unwrap()).start();
    let error = conn.send(GetConnected).await.unwrap().unwrap_err();
    assert_eq!(
        error,
        ConnectError::Timeout {
            stage: Stage::WebSocketOpen,
            after: timeout
        }
    );
    drop(listener);
}

#[actix_rt::test]
async fn a_refused_connection_is_a_websocket_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    let conn = ConnectionActor::new(client(&url).build().unwrap()).start();
    let error = conn.send(GetConnected).await.unwrap().unwrap_err();
    assert!(matches!(error, ConnectError::WebSocket { .. }), "{error:?}");
}

#[actix_rt::test]
async fn a_pass_never_acked_times_out_every_waiter_and_closes_the_socket() {
    let fake = FakeServer::start(Script {
        answer_pass: None,
        ..Script::default()
    });
    let pass_timeout = Duration::from_millis(300);
    let config = client(&fake.url())
        .pass_timeout(pass_timeout)
        .build()
        .unwrap();
    let conn = ConnectionActor::new(config).start();
    let started = Instant::now();

    let replies = join_all((0..50).map(|_| conn.send(GetConnected))).await;

    let elapsed = started.elapsed();
    for reply in replies {
        assert_eq!(
            reply.unwrap().unwrap_err(),
            ConnectError::Timeout {
                stage: Stage::Pass,
                after: pass_timeout
            }
        );
    }
    assert!(elapsed >= pass_timeout, "answered early: {elapsed:?}");
    assert!(
        elapsed < pass_timeout + Duration::from_secs(2),
        "answered late: {elapsed:?}"
    );
    fake.wait_for(BOUND, |s| {
        matches!(s, Seen::Close(1, Some(1000)) | Seen::Ended(1))
    })
    .await
    .expect("the client closes the socket after the pass timeout");
    assert_eq!(fake.connections(), 1);
}

#[actix_rt::test]
async fn a_late_pass_ack_from_an_abandoned_socket_is_ignored() {
    // Socket 1's pass ack is held until socket 2 sends its pass: it then
    // arrives on socket 1 (kept open by the fake past the client's close)
    // while attempt 2 waits for its own pass ack, with the same ack id 0.
    // The stale ack must not complete attempt 2, which times out as socket 2
    // never answers.
    let fake = FakeServer::start(Script {
        late_pass_ack: true,
        ..Script::default()
    });
    let pass_timeout = Duration::from_millis(500);
    let config = client(&fake.url())
        .pass_timeout(pass_timeout)
        .build()
        .unwrap();
    let conn = ConnectionActor::new(config).start();
    let mut states = watch_states(&conn).await;
    let timed_out = ConnectError::Timeout {
        stage: Stage::Pass,
        after: pass_timeout,
    };
    assert_eq!(
        conn.send(GetConnected).await.unwrap(),
        Err(timed_out.clone())
    );

    let second = actix_rt::spawn(conn.send(GetConnected));
    let seen = fake
        .wait_for(BOUND, |s| matches!(s, Seen::Sent(1, _) | Seen::Ended(1)))
        .await
        .expect("socket 1 either got its late ack written or ended");
    assert!(
        matches!(seen.last(), Some(Seen::Sent(1, ack)) if ack.starts_with("430[")),
        "the late ack (id 0) must reach the still-open socket 1: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|s| matches!(s, Seen::Text(2, t) if t.starts_with("420["))),
        "the ack went out while attempt 2 waited for its pass (id 0): {seen:?}"
    );
    let second = tokio::time::timeout(BOUND, second)
        .await
        .expect("attempt 2 answered")
        .unwrap()
        .unwrap();
    assert_eq!(second, Err(timed_out), "the stale ack completed attempt 2");
    assert_eq!(fake.connections(), 2);
    assert!(
        state_within(&mut states, Duration::ZERO, |s| matches!(
            s,
            ConnectionState::Connected(_)
        ))
        .await
        .is_none(),
        "no attempt may count as connected"
    );
}

#[actix_rt::test]
async fn a_wrong_pass_rejects_every_waiter_without_retrying() {
    let server = server(server_config()).await;
    let config = client(&server.ws_url()).pass("wrong").build().unwrap();
    let conn = ConnectionActor::new(config).start();
    let mut states = watch_states(&conn).await;

    let replies = join_all((0..20).map(|_| conn.send(GetConnected))).await;

    for reply in replies {
        assert_eq!(
            reply.unwrap().unwrap_err(),
            ConnectError::Rejected {
                code: 401,
                message: "bad passphrase".to_owned()
            }
        );
    }
    next_state(&mut states, |s| {
        matches!(s, ConnectionState::ConnectFailed(_))
    })
    .await;
    // No retry storm: nothing connects again on its own.
    let retry = state_within(&mut states, Duration::from_millis(500), |_| true).await;
    assert!(retry.is_none(), "unexpected state change: {retry:?}");
    assert_eq!(server.stats().connections_opened, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn a_server_that_stops_pinging_is_detected_within_the_window() {
    let interval = Duration::from_millis(300);
    let timeout = Duration::from_millis(300);
    let fake = FakeServer::start(Script {
        ping_interval: interval,
        ping_timeout: timeout,
        send_pings: false,
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    let mut states = watch_states(&conn).await;
    // The window starts at the open packet, which comes after this.
    let asked = Instant::now();
    conn.send(GetConnected).await.unwrap().unwrap();

    let state = next_state(&mut states, |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;

    let elapsed = asked.elapsed();
    let ConnectionState::Disconnected { reason, .. } = state else {
        unreachable!()
    };
    assert_eq!(
        reason,
        DisconnectReason::HeartbeatTimeout(interval + timeout)
    );
    // Not before the window (the watchdog must not count a live link as
    // dead); after it only within the bound (a loaded machine runs late).
    assert!(elapsed >= interval + timeout, "{elapsed:?}");
    // The next GetConnected opens a new socket.
    conn.send(GetConnected).await.unwrap().unwrap();
    assert_eq!(fake.connections(), 2);
}

#[actix_rt::test]
async fn pings_are_answered_and_the_client_never_pings() {
    let fake = FakeServer::start(Script {
        ping_interval: Duration::from_millis(30),
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    conn.send(GetConnected).await.unwrap().unwrap();
    let mut pongs = 0;
    let seen = fake
        .wait_for(BOUND, |s| {
            if matches!(s, Seen::Text(_, t) if t == "3") {
                pongs += 1;
            }
            pongs >= 5
        })
        .await
        .expect("five pongs");
    assert!(!seen
        .iter()
        .any(|s| matches!(s, Seen::Text(_, t) if t.starts_with('2') && !t.starts_with("42"))));
}

#[actix_rt::test]
async fn the_real_server_keeps_a_ponging_client_connected() {
    let ping = Duration::from_millis(300);
    let server = server(ServerConfig {
        ping_interval: ping,
        ping_timeout: ping,
        ..server_config()
    })
    .await;
    let conn = ConnectionActor::new(client(&server.ws_url()).build().unwrap()).start();
    let mut states = watch_states(&conn).await;
    let session = conn.send(GetConnected).await.unwrap().unwrap();
    // Five heartbeat windows: a client that failed to pong would be closed
    // after one (pingInterval + pingTimeout). A dead probe fails the wait.
    let dropped = state_within(&mut states, 10 * ping, |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;
    assert!(dropped.is_none(), "dropped: {dropped:?}");
    let stats = server.stats();
    assert_eq!(
        (stats.connections_opened, stats.connections_active),
        (1, 1),
        "{stats:?}"
    );
    assert!(conn
        .send(GetConnected)
        .await
        .unwrap()
        .unwrap()
        .same_as(&session));
    server.stop().await;
}

#[actix_rt::test]
async fn a_socket_dropped_mid_attempt_answers_waiters_with_disconnected() {
    let fake = FakeServer::start(Script {
        close_on_connect: true,
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    let replies = join_all((0..10).map(|_| conn.send(GetConnected))).await;
    for reply in replies {
        let error = reply.unwrap().unwrap_err();
        assert!(
            matches!(
                error,
                ConnectError::Disconnected {
                    stage: Stage::SocketIoConnect,
                    ..
                }
            ),
            "{error:?}"
        );
    }
}

#[actix_rt::test]
async fn a_server_stopped_mid_conversation_resets_and_the_next_request_reconnects() {
    let first = server(server_config()).await;
    let conn = ConnectionActor::new(client(&first.ws_url()).build().unwrap()).start();
    let mut states = watch_states(&conn).await;
    let session = conn.send(GetConnected).await.unwrap().unwrap();

    first.stop().await;

    let state = next_state(&mut states, |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;
    let ConnectionState::Disconnected { epoch, reason } = state else {
        unreachable!()
    };
    assert_eq!(epoch, session.epoch());
    assert_eq!(reason, DisconnectReason::ServerDisconnected);
    // The server is gone: the next request tries a new socket and says why it failed.
    let error = conn.send(GetConnected).await.unwrap().unwrap_err();
    assert!(matches!(error, ConnectError::WebSocket { .. }), "{error:?}");
}

#[actix_rt::test]
async fn a_replaced_connection_disconnects_and_the_next_request_gets_a_new_session() {
    let server = server(server_config()).await;
    let shared = client(&server.ws_url())
        .push_id("same-app")
        .build()
        .unwrap();
    let first = ConnectionActor::new(shared.clone()).start();
    let mut states = watch_states(&first).await;
    let old = first.send(GetConnected).await.unwrap().unwrap();

    let second = ConnectionActor::new(shared).start();
    second.send(GetConnected).await.unwrap().unwrap();

    next_state(&mut states, |s| {
        matches!(
            s,
            ConnectionState::Disconnected {
                reason: DisconnectReason::ServerDisconnected,
                ..
            }
        )
    })
    .await;
    let new = first.send(GetConnected).await.unwrap().unwrap();
    assert!(!new.same_as(&old));
    assert_eq!(new.epoch(), old.epoch() + 1);
    assert_ne!(new.connection(), old.connection());
    assert_eq!(new.push_id(), "same-app");
    assert_eq!(server.stats().connections_opened, 3);
    server.stop().await;
}

#[actix_rt::test]
async fn disconnect_closes_cleanly_and_answers_waiters() {
    let fake = FakeServer::start(Script::default());
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    conn.send(GetConnected).await.unwrap().unwrap();

    conn.send(Disconnect).await.unwrap();

    let seen = fake
        .wait_for(BOUND, |s| matches!(s, Seen::Close(1, _)))
        .await
        .expect("a close frame");
    let texts: Vec<_> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Text(1, t) if t != "3" => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts.last().copied(), Some("1"));
    assert_eq!(texts[texts.len() - 2], "41");
    assert_eq!(seen.last(), Some(&Seen::Close(1, Some(1000))));

    // A waiter in flight when Disconnect arrives is answered too.
    let never = FakeServer::start(Script {
        answer_pass: None,
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&never.url()).build().unwrap()).start();
    let waiter = actix_rt::spawn(conn.send(GetConnected));
    never
        .wait_for(
            BOUND,
            |s| matches!(s, Seen::Text(_, t) if t.starts_with("420")),
        )
        .await
        .expect("the pass was sent");
    conn.send(Disconnect).await.unwrap();
    let error = tokio::time::timeout(BOUND, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error,
        ConnectError::Disconnected {
            stage: Stage::Pass,
            reason: DisconnectReason::Requested
        }
    );
}

#[actix_rt::test]
async fn stopping_the_actor_answers_every_waiter_and_closes_the_socket() {
    let fake = FakeServer::start(Script {
        answer_pass: None,
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    let waiters: Vec<_> = (0..10)
        .map(|_| actix_rt::spawn(conn.send(GetConnected)))
        .collect();
    fake.wait_for(
        BOUND,
        |s| matches!(s, Seen::Text(_, t) if t.starts_with("420")),
    )
    .await
    .expect("the pass was sent");

    conn.send(Stop).await.unwrap();

    for waiter in waiters {
        let reply = tokio::time::timeout(BOUND, waiter)
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(reply.unwrap().unwrap_err(), ConnectError::Stopped);
    }
    // A stopped actor answers nothing more: its mailbox is closed.
    assert!(conn.send(GetConnected).await.is_err());
    // `Stop` answers once the socket is closed: the fake server reported the
    // close frame before it dropped the connection, so it is there already.
    let seen = fake
        .wait_for(Duration::ZERO, |s| matches!(s, Seen::Close(1, _)))
        .await
        .expect("the close frame, received before Stop answered");
    assert!(seen.contains(&Seen::Text(1, "41".to_owned())));
    assert_eq!(seen.last(), Some(&Seen::Close(1, Some(1000))));
}

#[actix_rt::test]
async fn state_changes_are_reported_in_order() {
    let server = server(server_config()).await;
    let conn = ConnectionActor::new(client(&server.ws_url()).build().unwrap()).start();
    let mut states = watch_states(&conn).await;
    let session = conn.send(GetConnected).await.unwrap().unwrap();
    conn.send(Disconnect).await.unwrap();

    assert!(matches!(
        next_state(&mut states, |_| true).await,
        ConnectionState::Connecting { epoch: 1 }
    ));
    match next_state(&mut states, |_| true).await {
        ConnectionState::Connected(s) => assert!(s.same_as(&session)),
        other => panic!("expected Connected, got {other:?}"),
    }
    match next_state(&mut states, |_| true).await {
        ConnectionState::Disconnected { epoch: 1, reason } => {
            assert_eq!(reason, DisconnectReason::Requested)
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    server.stop().await;
}

#[actix_rt::test]
async fn emit_gets_its_ack_and_ack_ids_count_per_connection() {
    let fake = FakeServer::start(Script::default());
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    // Emit connects on its own.
    let reply = conn
        .send(Emit::new("hello", json!({"n": 1})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply, vec![json!({"ok": true})]);
    conn.send(Emit::new("hello", json!({"n": 2})))
        .await
        .unwrap()
        .unwrap();
    conn.send(Disconnect).await.unwrap();
    conn.send(Emit::new("hello", json!({"n": 3})))
        .await
        .unwrap()
        .unwrap();

    let seen = fake
        .wait_for(
            BOUND,
            |s| matches!(s, Seen::Text(2, t) if t.contains("hello")),
        )
        .await
        .expect("the third emit");
    let ids: Vec<(usize, String)> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Text(n, t) if t.starts_with("42") => Some((
                *n,
                t[2..].chars().take_while(char::is_ascii_digit).collect(),
            )),
            _ => None,
        })
        .collect();
    let expected = [(1, "0"), (1, "1"), (1, "2"), (2, "0"), (2, "1")];
    let expected: Vec<_> = expected
        .iter()
        .map(|(n, id)| (*n, id.to_string()))
        .collect();
    assert_eq!(ids, expected);
}

#[actix_rt::test]
async fn emit_to_the_real_server_gets_its_reply() {
    let server = server(server_config()).await;
    let conn = ConnectionActor::new(client(&server.ws_url()).build().unwrap()).start();
    let reply = conn
        .send(Emit::new("no-such-event", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply[0]["ok"], json!(false));
    assert_eq!(reply[0]["code"], json!(400));
    server.stop().await;
}

#[actix_rt::test]
async fn an_unanswered_emit_times_out_and_frees_its_slot() {
    let fake = FakeServer::start(Script {
        ack_events: false,
        ..Script::default()
    });
    let config = client(&fake.url()).max_pending_acks(1).build().unwrap();
    let conn = ConnectionActor::new(config).start();
    conn.send(GetConnected).await.unwrap().unwrap();
    // Long enough that the slot is surely still taken when "b" comes, even
    // on a loaded machine; "b" and "c" never wait for it.
    let slow_timeout = Duration::from_secs(2);
    let timeout = Duration::from_millis(300);

    let slow = actix_rt::spawn(conn.send(Emit::new("a", json!(1)).timeout(slow_timeout)));
    // While the first is pending, the single slot is taken.
    fake.wait_for(
        BOUND,
        |s| matches!(s, Seen::Text(_, t) if t.starts_with("421")),
    )
    .await
    .expect("the first emit was sent");
    let busy = conn
        .send(Emit::new("b", json!(2)).timeout(timeout))
        .await
        .unwrap();
    assert_eq!(busy, Err(EmitError::TooManyPending(1)));

    assert_eq!(
        slow.await.unwrap().unwrap(),
        Err(EmitError::Timeout(slow_timeout))
    );
    // The slot is free again: the next emit is sent (and times out in turn).
    let again = conn
        .send(Emit::new("c", json!(3)).timeout(timeout))
        .await
        .unwrap();
    assert_eq!(again, Err(EmitError::Timeout(timeout)));
}

#[actix_rt::test]
async fn a_pending_emit_fails_with_disconnected_when_the_socket_drops() {
    let fake = FakeServer::start(Script {
        close_on_event: true,
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    let reply = conn.send(Emit::new("boom", json!(null))).await.unwrap();
    assert!(
        matches!(reply, Err(EmitError::Disconnected(_))),
        "{reply:?}"
    );
}

#[actix_rt::test]
async fn wss_connects_with_a_certificate_made_in_the_test() {
    let (tls_server, tls_client) = common::tls::self_signed("localhost");
    let server = server(ServerConfig {
        tls: Some(tls_server),
        ..server_config()
    })
    .await;
    let url = format!("wss://localhost:{}", server.addr().port());
    let config = client(&url).tls_config(tls_client).build().unwrap();
    let conn = ConnectionActor::new(config).start();

    let session = conn.send(GetConnected).await.unwrap().unwrap();

    assert!(!session.connection().is_empty());
    assert_eq!(server.stats().connections_opened, 1);
    server.stop().await;
}

#[actix_rt::test]
async fn an_actor_whose_addresses_are_all_dropped_closes_its_socket() {
    // The actor notices at its next heartbeat check (one window: 400 ms).
    let fake = FakeServer::start(Script {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(200),
        ..Script::default()
    });
    let conn = ConnectionActor::new(client(&fake.url()).build().unwrap()).start();
    conn.send(GetConnected).await.unwrap().unwrap();

    drop(conn);

    let seen = fake
        .wait_for(BOUND, |s| matches!(s, Seen::Close(1, _)))
        .await
        .expect("the orphaned actor closes its socket at its next heartbeat check");
    assert!(seen.contains(&Seen::Text(1, "41".to_owned())));
    assert_eq!(seen.last(), Some(&Seen::Close(1, Some(1000))));
}
