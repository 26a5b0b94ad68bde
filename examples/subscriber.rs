//! The example subscriber: the whole effex story in one program.
//!
//! ```text
//! cargo run --release --example subscriber
//! cargo run --release --example subscriber -- --url http://host:8150 --pass secret --key rk… --id item-id
//! ```
//!
//! With no server address it starts an embedded effex server in-process,
//! makes keys, writes two items with short lifetimes, and subscribes to
//! their update, remove and expire events with two subscribers sharing one
//! connection. It updates the items a few times, removes one and lets the
//! other expire, prints each push with its end-to-end latency, and exits 0
//! after the expire push.
//!
//! With `--url`, `--key` and `--id` (or `EFFEX_URL`, `EFFEX_KEY`,
//! `EFFEX_ID`, `EFFEX_PASS`) it watches that item on a real server until Ctrl-C.

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use effex::client::{ClientConfig, ConnectionActor, EffexClient, Subscribe, SubscriberActor};
use effex::protocol::messages::{EventKind, Push};
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{Server, ServerConfig};
use serde_json::json;
use tokio::sync::Notify;

const KINDS: [EventKind; 3] = [EventKind::Update, EventKind::Remove, EventKind::Expire];

#[actix::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse()?;
    match (&args.url, &args.key, &args.id) {
        (Some(url), Some(key), Some(id)) => watch_forever(url, &args.pass, key, id).await,
        (None, None, None) => demo(&args.pass).await,
        _ => Err("give --url, --key and --id together, or none of them for the demo".into()),
    }
}

/// The demo against an embedded server.
async fn demo(pass: &str) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(ServerConfig {
        passphrase: Some(pass.to_owned()),
        ..ServerConfig::default()
    })
    .await?;
    println!("embedded effex server on {}", server.http_url());
    let rest = EffexClient::new(server.http_url())?;
    let boss = server
        .boss_key()
        .ok_or("the embedded server has a boss key")?;
    let writer = rest
        .make_keys(boss, KeysRequest::new(KeyKind::Writer))
        .await?
        .keys
        .remove(0);
    let reader = rest
        .make_keys(boss, KeysRequest::new(KeyKind::Reader))
        .await?
        .keys
        .remove(0);

    let item = |secs| {
        NewItem::new(json!({"sentAt": now_us()}))
            .lifetime(Duration::from_secs(secs))
            .reader(&reader)
    };
    let removed = rest.write(&writer, &item(30)).await?;
    let expiring = rest.write(&writer, &item(2)).await?;
    println!(
        "wrote {} (to be removed) and {} (lives 2 s)",
        removed.id, expiring.id
    );

    // Two subscribers, one connection.
    let conn =
        ConnectionActor::new(ClientConfig::builder(server.ws_url()).pass(pass).build()?).start();
    let done = Rc::new(Notify::new());
    for (name, id) in [("first", &removed.id), ("second", &expiring.id)] {
        let (done, expiring_id) = (done.clone(), expiring.id.clone());
        let subscriber = SubscriberActor::with_handler(conn.clone(), move |push| {
            println!("[{name}] {}", describe(push));
            if push.event == EventKind::Expire && push.id == expiring_id {
                done.notify_one();
            }
        })
        .start();
        for kind in KINDS {
            subscriber
                .send(Subscribe::new(kind, id.as_str(), reader.as_str()).with_value())
                .await??;
        }
    }

    for round in 1..=3 {
        for id in [&removed.id, &expiring.id] {
            rest.update(
                &writer,
                id,
                json!({"round": round, "sentAt": now_us()}),
                None,
            )
            .await?;
        }
    }
    rest.remove(&writer, &removed.id).await?;

    tokio::time::timeout(Duration::from_secs(10), done.notified())
        .await
        .map_err(|_| "no expire push within 10 s")?;
    println!("done: every update, the removal and the expiry arrived once");
    server.stop().await;
    Ok(())
}

/// Watches one item on a real server until Ctrl-C.
async fn watch_forever(
    url: &str,
    pass: &str,
    key: &str,
    id: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let conn = ConnectionActor::new(ClientConfig::builder(url).pass(pass).build()?).start();
    let subscriber =
        SubscriberActor::with_handler(conn, |push| println!("{}", describe(push))).start();
    for kind in KINDS {
        subscriber
            .send(Subscribe::new(kind, id, key).with_value())
            .await??;
    }
    println!("watching {id} on {url}; Ctrl-C to stop");
    actix_rt::signal::ctrl_c().await?;
    Ok(())
}

/// One line per push: what happened, and how long it took to arrive.
fn describe(push: &Push) -> String {
    let latency = match (
        &push.event,
        push.value.as_ref().and_then(|v| v["sentAt"].as_u64()),
    ) {
        // The writer put its send time in the value.
        (EventKind::Update, Some(sent)) => format!(
            "{} µs after the update was sent",
            now_us().saturating_sub(sent)
        ),
        // `at` is when the server logged the event (ms).
        _ => format!(
            "{} ms after the event",
            (now_us() / 1000).saturating_sub(push.at.as_millis())
        ),
    };
    format!(
        "{} of {} (seq {}): {latency}",
        push.event, push.id, push.seq
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

struct Args {
    url: Option<String>,
    pass: String,
    key: Option<String>,
    id: Option<String>,
}

impl Args {
    fn parse() -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok();
        let mut args = Args {
            url: env("EFFEX_URL"),
            pass: env("EFFEX_PASS").unwrap_or_else(|| "let me in".to_owned()),
            key: env("EFFEX_KEY"),
            id: env("EFFEX_ID"),
        };
        let mut given = std::env::args().skip(1);
        while let Some(flag) = given.next() {
            let value = given.next().ok_or(format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--url" => args.url = Some(value),
                "--pass" => args.pass = value,
                "--key" => args.key = Some(value),
                "--id" => args.id = Some(value),
                other => {
                    return Err(format!(
                        "unknown flag {other}; use --url, --pass, --key, --id"
                    ))
                }
            }
        }
        Ok(args)
    }
}
