//! effex's actix client as a program of the comparison harness (issue 9,
//! client workloads): one `ConnectionActor`, one `SubscriberActor` watching
//! one item, and the application's handler behind a `Recipient<Push>` — the
//! way an application uses it (see examples/push_recipient.rs). The
//! `SubscriberActor` acks each push after the handler returned.
//!
//! The handler measures push → handler: the push source stamps each push's
//! `at` with CLOCK_MONOTONIC in µs (benchkit::mono_us), the handler reads the
//! same clock. When a push for the item `done` arrives it prints
//! `{"event":"result","pushes":N,"p50_us":…,"p99_us":…}` on stdout and keeps
//! running (the driver stops it).
//!
//! Usage: client-effex --url ws://127.0.0.1:PORT/socket.io/?EIO=4&transport=websocket
//!                     --pass P --item ID --key K

use std::collections::HashMap;

use actix::prelude::*;
use effex::client::{ClientConfig, ConnectionActor, Subscribe, SubscriberActor};
use effex::protocol::messages::{EventKind, Push};

/// The item id of the push source's last push: the handler then reports.
const DONE_ID: &str = "done";

/// The application's handler: counts pushes and keeps push → handler times.
struct Board {
    pushes: u64,
    latencies: Vec<u64>,
}

impl Actor for Board {
    type Context = Context<Self>;
}

impl Handler<Push> for Board {
    type Result = ();
    fn handle(&mut self, push: Push, _: &mut Context<Self>) {
        if push.id == DONE_ID {
            self.latencies.sort_unstable();
            println!(
                "{{\"event\":\"result\",\"pushes\":{},\"p50_us\":{},\"p99_us\":{}}}",
                self.pushes,
                benchkit::percentile(&self.latencies, 0.50),
                benchkit::percentile(&self.latencies, 0.99)
            );
            return;
        }
        self.pushes += 1;
        if self.latencies.len() < benchkit::MAX_SAMPLES {
            // The push source stamps CLOCK_MONOTONIC µs into `at` (not a
            // wall-clock time): read the raw number back.
            self.latencies
                .push(benchkit::mono_us().saturating_sub(push.at.as_millis()));
        }
    }
}

fn parse_args() -> Result<HashMap<String, String>, String> {
    let map = benchkit::option_map()?;
    for required in ["url", "pass", "item", "key"] {
        if !map.contains_key(required) {
            return Err(format!("--{required} is required"));
        }
    }
    Ok(map)
}

async fn run(args: HashMap<String, String>) -> Result<(), String> {
    let config = ClientConfig::builder(args["url"].clone())
        .pass(args["pass"].clone())
        .push_id("bench-client-effex")
        .build()
        .map_err(|e| e.to_string())?;
    let board = Board {
        pushes: 0,
        latencies: Vec::with_capacity(1 << 16),
    }
    .start();
    let conn = ConnectionActor::new(config).start();
    let subscriber = SubscriberActor::new(conn, board.recipient()).start();
    let watch = Subscribe::new(EventKind::Update, args["item"].clone(), args["key"].clone());
    subscriber
        .send(watch)
        .await
        .map_err(|e| format!("the subscriber is gone: {e}"))?
        .map_err(|e| format!("watch: {e}"))?;
    println!("{{\"event\":\"ready\"}}");
    // Run until the driver stops this process.
    std::future::pending::<()>().await;
    Ok(())
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("client-effex: {e}");
            std::process::exit(2);
        }
    };
    let system = actix::System::new();
    if let Err(e) = system.block_on(run(args)) {
        eprintln!("client-effex: {e}");
        println!("{{\"event\":\"error\",\"error\":{:?}}}", e);
        std::process::exit(1);
    }
}
