//! The live console and a page on another origin, in a real browser:
//! Debian's `chromium`, headless, driven by `tests/browser/driver.js`
//! through playwright-core (which never downloads a browser), against the
//! in-process server on 127.0.0.1.
//!
//! Needs `node`, `/usr/bin/chromium` (or `EFFEX_CHROMIUM`) and the pinned
//! driver package installed:
//!
//! ```text
//! apt-get install chromium
//! (cd tests/browser && npm ci)
//! cargo test --features browser --test browser
//! ```
//!
//! Opt-in (feature `browser`): a missing browser, node or package is a
//! failure that says what to install, never a skip. The console test saves
//! its screenshot to `target/console.png` (the README's `docs/console.png`
//! is a copy of one).
#![cfg(feature = "browser")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::exchange::{Exchange, PASS};
use common::json_child::JsonChild;
use common::server::{config, start};
use effex::client::EffexClient;
use effex::protocol::rest::{KeyKind, NewItem};
use effex::server::ServerConfig;
use effex::store::{MemoryStoreConfig, UpdateItem};
use serde_json::{json, Value};

/// Bound for one driver step (launching chromium, loading a page, waiting
/// for pushes on a loaded 2-core machine); the driver's own steps give up
/// after 15 s and its whole run after 60 s.
const STEP: Duration = Duration::from_secs(60);
/// Updates written while the console watches.
const UPDATES: u64 = 6;

fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("browser")
}

/// The browser the driver launches: `EFFEX_CHROMIUM` or Debian's.
fn chromium() -> PathBuf {
    std::env::var_os("EFFEX_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// A running `node driver.js`: its JSON lines, its stderr for failure
/// messages; killed and reaped on drop (it also exits when its stdin closes).
struct Driver {
    child: JsonChild,
}

impl Driver {
    /// Starts `node driver.js <scenario> <config>`, after checking what it
    /// needs (a failure says what to install).
    fn start(scenario: &str, config: Value) -> Driver {
        let dir = driver_dir();
        let package = dir.join("node_modules/playwright-core/package.json");
        assert!(
            package.is_file(),
            "{} is missing: the browser tests drive chromium with playwright-core. \
             Run `npm ci` in {} (needs node >= 18 and npm), then run the tests again.",
            package.display(),
            dir.display()
        );
        let browser = chromium();
        assert!(
            browser.is_file(),
            "{} is missing: the browser tests need Debian's chromium \
             (`apt-get install chromium`), or EFFEX_CHROMIUM naming a Chromium binary.",
            browser.display()
        );
        let mut command = Command::new("node");
        command
            .current_dir(&dir)
            .arg(dir.join("driver.js"))
            .arg(scenario)
            .arg(config.to_string())
            .env("EFFEX_CHROMIUM", &browser);
        Driver {
            child: JsonChild::spawn("driver.js", command),
        }
    }

    /// The driver's next line, which must be `{"event": event, …}`.
    async fn expect(&mut self, event: &str) -> Value {
        self.child.expect(event, STEP).await
    }
}

/// One row of the console's table: item (as the page names it), event,
/// seq, value (as the page shows it).
type Row = (String, String, u64, String);

/// The table in the driver's `rows` line, oldest first (the page shows the
/// newest first), after checking the page logged no error (a CSP violation
/// would be one) but those containing one of `expected_errors`, and every
/// latency is a number of ms.
fn table(shown: &Value, expected_errors: &[&str]) -> Vec<Row> {
    let errors = shown["errors"].as_array().expect("errors");
    let unexpected: Vec<&Value> = errors
        .iter()
        .filter(|e| {
            !expected_errors
                .iter()
                .any(|expected| e.as_str().is_some_and(|e| e.contains(expected)))
        })
        .collect();
    assert!(unexpected.is_empty(), "the page logged errors: {shown}");
    let rows = shown["rows"].as_array().expect("rows");
    rows.iter()
        .rev()
        .map(|row| {
            let text = |name: &str| row[name].as_str().expect("a cell's text").to_owned();
            let latency = text("latency");
            assert!(
                latency.ends_with(" ms") && latency.trim_end_matches(" ms").parse::<u64>().is_ok(),
                "latency {latency:?} in {row}"
            );
            let seq = text("seq").parse().expect("a seq");
            (text("item"), text("event"), seq, text("value"))
        })
        .collect()
}

#[actix_rt::test]
async fn the_console_shows_every_push_in_order() {
    let exchange = Exchange::start(config()).await;
    let (id, _) = exchange
        .write(json!({"price": 100}), Duration::from_secs(600))
        .await;
    let aliased = exchange
        .rest
        .write(
            &exchange.writer,
            &NewItem::new(json!("open"))
                .lifetime(Duration::from_secs(600))
                .reader(&exchange.reader)
                .alias("market-status"),
        )
        .await
        .expect("write the aliased item")
        .id;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut driver = Driver::start(
        "console",
        json!({
            "url": exchange.server.http_url(),
            "reader": exchange.reader,
            "passphrase": PASS,
            "items": [id, "market-status"],
            "count": UPDATES + 1,
            "serverPushes": UPDATES + 1,
            "screenshot": screenshot,
        }),
    );
    let watching = driver.expect("watching").await;
    // Two items, three kinds each.
    assert_eq!(
        watching["status"],
        json!("Watching 6 of 6 (item, event) pairs."),
        "{watching}"
    );

    // Updates of both items, then the aliased one goes: (item as the
    // console names it, event, seq, value as the page shows it).
    let mut expected = Vec::new();
    for n in 1..=UPDATES {
        let (target, shown, value) = if n % 3 == 0 {
            (
                aliased.as_str(),
                "market-status",
                json!(format!("open {n}")),
            )
        } else {
            (id.as_str(), id.as_str(), json!({"price": 100 + n}))
        };
        let seq = exchange.update(target, value.clone()).await;
        expected.push((
            shown.to_owned(),
            "update".to_owned(),
            seq,
            value.to_string(),
        ));
    }
    let removed = exchange
        .rest
        .remove(&exchange.writer, &aliased)
        .await
        .expect("remove the aliased item");
    expected.push((
        "market-status".to_owned(),
        "remove".to_owned(),
        removed.seq,
        "—".to_owned(),
    ));

    let shown = driver.expect("rows").await;
    let got = table(&shown, &[]);
    assert_eq!(got, expected, "the table, oldest first");
    // The server panel, read from /metrics: this page's socket is open, the
    // server sent at least the pushes shown, and both items are stored.
    let figure = |id: &str| shown["figures"][id].as_f64().unwrap_or(f64::NAN);
    assert!(figure("metric-connections") >= 1.0, "{shown}");
    assert!(figure("metric-pushes") >= expected.len() as f64, "{shown}");
    assert!(figure("metric-items") >= 1.0, "{shown}");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 0),
        "no screenshot at {}",
        screenshot.display()
    );
    exchange.server.stop().await;
}

#[actix_rt::test]
async fn the_console_reconnects_after_a_restart_and_replays_what_it_missed() {
    const BOSS: &str = "browser restart boss";
    let store = common::store_switch::store(MemoryStoreConfig {
        boss_key: BOSS.to_owned(),
        ..MemoryStoreConfig::default()
    })
    .await;
    let exchange = Exchange::on_store(store.clone(), BOSS, None).await;
    let addr = exchange.server.addr();
    let (id, _) = exchange.write(json!(0), Duration::from_secs(600)).await;
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-restart.png");
    let mut driver = Driver::start(
        "console",
        json!({
            "url": exchange.server.http_url(),
            "reader": exchange.reader,
            "passphrase": PASS,
            "items": [id],
            "count": 5,
            "checkpoints": [2],
            "screenshot": screenshot,
        }),
    );
    driver.expect("watching").await;
    let mut expected = Vec::new();
    for n in 1..=2 {
        let seq = exchange.update(&id, json!(n)).await;
        expected.push((id.clone(), "update".to_owned(), seq, n.to_string()));
    }
    // Shown before the server goes: their pushes carried their values.
    driver.expect("shown").await;
    let Exchange { server, writer, .. } = exchange;
    // The server says goodbye (41) to the page, and is gone while three
    // more updates happen: the page must watch again with `after` to see them.
    server.stop().await;
    for n in 3..=5 {
        let update = UpdateItem {
            value: json!(n).into(),
            intent: None,
        };
        let seq = store
            .update(&writer, &id, update)
            .await
            .expect("update the store directly")
            .seq;
        // Replayed, these come without their value unless it is still the
        // item's current one: the event log keeps no values.
        let value = if n == 5 {
            n.to_string()
        } else {
            "— (older value, not kept)".to_owned()
        };
        expected.push((id.clone(), "update".to_owned(), seq, value));
    }
    let exchange = Exchange::on_store(store.clone(), BOSS, Some(addr)).await;
    // Its reconnection attempts while the server stops and is down fail (reset,
    // refused), as they should.
    let got = table(&driver.expect("rows").await, &["WebSocket connection to"]);
    assert_eq!(
        got, expected,
        "every update once, in order, across the restart"
    );
    exchange.server.stop().await;
}

/// The page on another origin, against `server`: its driver's result.
async fn cross_origin_run(server: &effex::server::ServerHandle) -> Value {
    let rest = EffexClient::new(server.http_url()).expect("a REST client");
    let boss = server.boss_key().expect("the embedded store's boss key");
    let writer = Exchange::key(&rest, boss, KeyKind::Writer).await;
    let reader = Exchange::key(&rest, boss, KeyKind::Reader).await;
    let mut driver = Driver::start(
        "cross-origin",
        json!({"effex": server.http_url(), "writer": writer, "reader": reader}),
    );
    let result = driver.expect("result").await;
    assert!(
        result["origin"]
            .as_str()
            .is_some_and(|origin| origin != server.http_url()),
        "the page must be on another origin: {result}"
    );
    result
}

#[actix_rt::test]
async fn a_page_on_another_origin_reads_writes_and_gets_pushes() {
    let server = start(config()).await;
    let result = cross_origin_run(&server).await;
    assert_eq!(result["fetchError"], Value::Null, "{result}");
    assert_eq!(result["write"]["status"], json!(201), "{result}");
    let id = result["write"]["body"]["id"].clone();
    assert_eq!(result["read"]["status"], json!(200), "{result}");
    assert_eq!(
        result["read"]["body"]["value"],
        json!({"from": "another origin"}),
        "{result}"
    );
    assert_eq!(result["pass"]["ok"], json!(true), "{result}");
    assert_eq!(result["watch"]["ok"], json!(true), "{result}");
    assert_eq!(result["update"]["status"], json!(200), "{result}");
    let push = &result["push"];
    assert_eq!(push["event"], json!("update"), "{result}");
    assert_eq!(push["id"], id, "{result}");
    assert_eq!(push["seq"], result["update"]["body"]["seq"], "{result}");
    assert_eq!(push["value"], json!({"n": 2}), "{result}");
    assert_eq!(result["errors"], json!([]), "{result}");
    server.stop().await;
}

#[actix_rt::test]
async fn a_page_on_an_origin_not_listed_cannot_fetch() {
    let server = start(ServerConfig {
        cors_origins: vec!["https://app.example.com".to_owned()],
        ..config()
    })
    .await;
    let result = cross_origin_run(&server).await;
    // fetch() rejects: the preflight names no Access-Control-Allow-Origin.
    assert_eq!(result["fetchError"], json!("TypeError"), "{result}");
    assert_eq!(result["write"], Value::Null, "{result}");
    server.stop().await;
}
