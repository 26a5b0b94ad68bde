//! Benchmark: how the ConnectionActor answers many concurrent waiters, and
//! how long one handshake takes, against the in-process server on loopback.
//!
//! ```text
//! cargo run --release --example bench_connect
//! ```
//!
//! Prints two tables: for N concurrent `GetConnected`, the sockets opened and
//! the time from the pass ack to the last waiter answered; and the handshake
//! latency (GetConnected sent → Ok, a fresh socket each time) over 1,000
//! sequential connections. Goals: 100,000 waiters answered within 50 ms of the
//! pass ack; handshake p50 under 250 µs.

#[path = "support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use actix::Actor;
use effex::client::{ClientConfig, ConnectionActor, Disconnect, GetConnected, Session};
use effex::server::{Server, ServerConfig};
use support::{fmt, machine, percentile};
use tokio::sync::Notify;

const PASS: &str = "bench";
const HANDSHAKES: usize = 1_000;

#[actix::main]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let server = Server::start(ServerConfig {
        passphrase: Some(PASS.to_owned()),
        ..ServerConfig::default()
    })
    .await
    .expect("start the in-process server");
    let config = |push_id: String| {
        ClientConfig::builder(server.ws_url())
            .pass(PASS)
            .push_id(push_id)
            .build()
            .expect("valid client config")
    };

    println!("effex bench_connect — {}", machine());
    println!();
    println!("| concurrent GetConnected | sockets opened | pass ack → first waiter answered | pass ack → last waiter answered | all answered Ok |");
    println!("|---:|---:|---:|---:|:---:|");
    for n in [1usize, 100, 10_000, 100_000] {
        let before = server.stats().connections_opened;
        let conn = ConnectionActor::new(config(format!("bench-waiters-{n}"))).start();
        // Each caller is its own task holding its own address, as separate
        // parts of an application are. The first and the last to be answered
        // note the time; every caller checks it got the one shared session.
        let tally = Rc::new(RefCell::new(Tally::default()));
        let all_answered = Rc::new(Notify::new());
        for _ in 0..n {
            let part = conn.clone();
            let (tally, all_answered) = (tally.clone(), all_answered.clone());
            actix_rt::spawn(async move {
                let reply = part.send(GetConnected).await;
                let mut tally = tally.borrow_mut();
                tally.record(reply.ok().and_then(Result::ok));
                if tally.answered == n {
                    tally.last = Some(Instant::now());
                    all_answered.notify_one();
                }
            });
        }
        all_answered.notified().await;
        let tally = std::mem::take(&mut *tally.borrow_mut());
        let (session, all_ok) = (tally.session, tally.all_ok);
        let (first_answer, last_answer) = (
            tally.first.unwrap_or_else(Instant::now),
            tally.last.unwrap_or_else(Instant::now),
        );
        let opened = server.stats().connections_opened - before;
        let since_pass = |at: Instant| {
            session
                .as_ref()
                .map(|s| at.saturating_duration_since(s.passed_at()))
                .unwrap_or_default()
        };
        println!(
            "| {n} | {opened} | {} | {} | {} |",
            fmt(since_pass(first_answer)),
            fmt(since_pass(last_answer)),
            if all_ok { "yes" } else { "NO" }
        );
        conn.send(Disconnect).await.ok();
    }

    let conn = ConnectionActor::new(config("bench-handshake".to_owned())).start();
    // One warm-up connection (first TLS-free connect pays for lazy setup).
    conn.send(GetConnected).await.ok();
    conn.send(Disconnect).await.ok();
    let mut samples = Vec::with_capacity(HANDSHAKES);
    for _ in 0..HANDSHAKES {
        let start = Instant::now();
        let reply = conn.send(GetConnected).await;
        samples.push(start.elapsed());
        assert!(matches!(reply, Ok(Ok(_))), "handshake failed: {reply:?}");
        conn.send(Disconnect).await.ok();
    }
    samples.sort();
    println!();
    println!("| handshake (fresh socket, {HANDSHAKES} sequential) | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    println!(
        "| GetConnected → Ok | {} | {} | {} |",
        fmt(percentile(&samples, 50.0)),
        fmt(percentile(&samples, 99.0)),
        fmt(samples[samples.len() - 1])
    );
    server.stop().await;
}

/// What the waiters of one round saw.
#[derive(Default)]
struct Tally {
    answered: usize,
    session: Option<Session>,
    all_ok: bool,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Tally {
    fn record(&mut self, reply: Option<Session>) {
        if self.answered == 0 {
            self.first = Some(Instant::now());
            self.all_ok = reply.is_some();
            self.session = reply;
        } else {
            self.all_ok &=
                matches!((&reply, &self.session), (Some(s), Some(first)) if s.same_as(first));
        }
        self.answered += 1;
    }
}
