//! The `effex` binary: the client commands (and `effex watch`) against an
//! in-process server on port 0, and `effex serve` as its own process
//! (generated boss key, Ctrl-C).
//!
//! The binary runs as a child process; every wait on it is bounded (the test
//! polls `try_wait` and kills the child when the bound passes), and the
//! in-process server keeps running meanwhile because the polling is async.
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::child::lines_of;
use common::effex_bin::{finish, Watch, EFFEX, WAIT};
use effex::client::EffexClient;
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{ServerConfig, ServerHandle};
use serde_json::{json, Value};
use tokio::time::Instant;

/// Runs `effex ARGS` against `server` with `key` in `EFFEX_KEY`.
async fn effex(server: &ServerHandle, key: &str, args: &[&str]) -> Output {
    let child = Command::new(EFFEX)
        .args(args)
        .env("EFFEX_URL", server.http_url())
        .env("EFFEX_KEY", key)
        .env_remove("EFFEX_TIMEOUT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the effex binary runs");
    finish(child, &format!("effex {}", args.join(" "))).await
}

/// Runs a command that must succeed and returns its JSON reply.
async fn ok(server: &ServerHandle, key: &str, args: &[&str]) -> Value {
    let output = effex(server, key, args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "effex {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: Value = serde_json::from_str(&stdout).expect("the reply is JSON");
    assert_eq!(reply["ok"], true, "{reply}");
    reply
}

async fn start() -> ServerHandle {
    common::server::start(ServerConfig::default()).await
}

#[actix_rt::test]
async fn write_read_update_remove_through_the_cli() {
    let server = start().await;
    let boss = server.boss_key().unwrap().to_owned();
    let keys = ok(&server, &boss, &["keys", "writer"]).await;
    let writer = keys["keys"][0].as_str().unwrap().to_owned();
    let reader = ok(
        &server,
        &boss,
        &["keys", "reader", "--count", "2", "--seconds", "600"],
    )
    .await;
    assert_eq!(reader["keys"].as_array().unwrap().len(), 2);
    let reader = reader["keys"][0].as_str().unwrap().to_owned();

    let written = ok(
        &server,
        &writer,
        &[
            "write",
            r#"{"price": 3}"#,
            "--lifetime",
            "30",
            "--reader",
            &reader,
            "--alias",
            "price",
        ],
    )
    .await;
    let id = written["id"].as_str().unwrap().to_owned();
    assert_eq!(written["lifetime"], 30.0);

    let read = ok(&server, &reader, &["read", "price"]).await;
    assert_eq!(
        (read["id"].as_str(), &read["value"]),
        (Some(id.as_str()), &serde_json::json!({"price": 3}))
    );

    let held = ok(&server, &writer, &["read", &id, "--intent"]).await;
    let intent = held["intent"].as_str().unwrap().to_owned();
    let updated = ok(&server, &writer, &["update", &id, "4", "--intent", &intent]).await;
    let seq = updated["seq"].as_u64().unwrap();
    assert_eq!(ok(&server, &reader, &["read", &id]).await["value"], 4);

    let events = ok(
        &server,
        &reader,
        &["events", &id, "--since", "0", "--event", "update"],
    )
    .await;
    assert_eq!(events["events"][0]["seq"], seq);

    let second = ok(&server, &writer, &["write", r#""second""#]).await;
    let second = second["id"].as_str().unwrap().to_owned();
    ok(&server, &writer, &["alias", "price", &second]).await;
    assert_eq!(
        ok(&server, &writer, &["read", "price"]).await["value"],
        "second"
    );

    let removed = ok(&server, &writer, &["remove", &id]).await;
    assert_eq!(removed["id"], id.as_str());

    // Errors: the server's message on stderr, a non-zero exit, nothing on stdout.
    let gone = effex(&server, &reader, &["read", &id]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(gone.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(
        stderr.contains("(404)") && stderr.contains("not found"),
        "{stderr}"
    );
    let forbidden = effex(&server, &reader, &["remove", &second]).await;
    assert_eq!(forbidden.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forbidden.stderr).contains("(403)"));
    let not_json = effex(&server, &writer, &["write", "plain text"]).await;
    assert_eq!(not_json.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_json.stderr).contains("quote a string"));
    server.stop().await;
}

#[actix_rt::test]
async fn ping_info_and_an_unreachable_server() {
    let server = start().await;
    assert_eq!(ok(&server, "", &["ping"]).await["value"], "PONG");
    assert_eq!(
        ok(&server, "", &["info"]).await["store"],
        common::store_switch::chosen().name()
    );
    let url = server.http_url();
    server.stop().await;
    let child = Command::new(EFFEX)
        .args(["ping", "--url", &url, "--timeout", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish(child, "effex ping (stopped server)").await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("effex serve"), "{stderr}");
}

#[actix_rt::test]
async fn help_explains_each_command_with_an_example() {
    let child = Command::new(EFFEX)
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let help = String::from_utf8(finish(child, "effex --help").await.stdout).unwrap();
    for command in [
        "serve", "keys", "write", "read", "update", "remove", "alias", "events", "watch",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    assert!(help.contains("Example session"), "{help}");
    for command in [
        "serve", "keys", "write", "read", "update", "remove", "alias", "events", "watch",
    ] {
        let child = Command::new(EFFEX)
            .args([command, "--help"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let help = String::from_utf8(finish(child, command).await.stdout).unwrap();
        assert!(
            help.contains(&format!("effex {command}")),
            "{command}:\n{help}"
        );
    }
    let child = Command::new(EFFEX)
        .args(["keys", "boss"])
        .env("EFFEX_KEY", "k")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let usage = finish(child, "effex keys boss").await;
    assert_eq!(usage.status.code(), Some(2), "usage errors exit with 2");
}

/// `effex serve` on port 0: prints where it listens and a generated boss key,
/// serves, and stops gracefully on SIGINT (Ctrl-C).
#[actix_rt::test]
async fn serve_prints_a_boss_key_and_stops_on_ctrl_c() {
    // On Redis (`common::store_switch`) the boss key is given, not generated.
    let (store_args, given_boss) = common::store_switch::serve_args().await;
    let mut child = Command::new(EFFEX)
        .args(["serve", "--port", "0", "--log-level", "warn"])
        .args(&store_args)
        .env_remove("EFFEX_BOSS_KEY")
        .env_remove("EFFEX_REDIS_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its stdout lines, read by a thread; every wait bounded by WAIT.
    let mut lines = lines_of(child.stdout.take().unwrap());
    let deadline = Instant::now() + WAIT;
    let mut next_line = async || {
        tokio::time::timeout_at(deadline, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("effex serve printed no further line within {WAIT:?}"))
    };
    let Some(listening) = next_line().await else {
        // Closed stdout: it exited (say a build without the `redis` feature
        // given `--redis`); its stderr says why.
        let output = finish(child, "effex serve that closed its stdout").await;
        panic!(
            "effex serve ended before saying where it listens ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let url = listening
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {listening:?}"))
        .to_owned();
    let boss = match given_boss {
        Some(boss) => boss,
        None => {
            let boss_line = next_line().await.expect("a boss key line");
            boss_line
                .rsplit(' ')
                .next()
                .filter(|key| key.starts_with("bk"))
                .unwrap_or_else(|| panic!("no boss key in {boss_line:?}"))
                .to_owned()
        }
    };

    let keys = Command::new(EFFEX)
        .args(["keys", "writer", "--url", &url, "--key", &boss])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let keys = finish(keys, "effex keys").await;
    assert!(
        keys.status.success(),
        "{}",
        String::from_utf8_lossy(&keys.stderr)
    );

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = finish(child, "effex serve after Ctrl-C").await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(next_line().await.as_deref(), Some("effex stopped"));
}

/// Keys and an item on a server with a push passphrase.
async fn watched_item(server: &ServerHandle) -> (EffexClient, String, String, String, u64) {
    let rest = EffexClient::new(server.http_url()).unwrap();
    let boss = server.boss_key().unwrap();
    let writer = rest
        .make_keys(boss, KeysRequest::new(KeyKind::Writer))
        .await
        .unwrap()
        .keys
        .remove(0);
    let reader = rest
        .make_keys(boss, KeysRequest::new(KeyKind::Reader))
        .await
        .unwrap()
        .keys
        .remove(0);
    let item = NewItem::new(json!({"price": 1}))
        .lifetime(Duration::from_secs(60))
        .reader(&reader);
    let written = rest.write(&writer, &item).await.unwrap();
    (rest, writer, reader, written.id, written.seq)
}

const PUSH_PASS: &str = "cli push pass";

async fn start_with_pass() -> ServerHandle {
    common::server::start(ServerConfig {
        passphrase: Some(PUSH_PASS.to_owned()),
        ..ServerConfig::default()
    })
    .await
}

/// `effex watch`: one JSON line per push, in seq order, and exit 0 after the
/// remove; then `--after` replays the final push of a removed item.
#[actix_rt::test]
async fn watch_prints_each_push_and_exits_when_the_item_is_removed() {
    let server = start_with_pass().await;
    let (rest, writer, reader, id, written) = watched_item(&server).await;

    let mut watch = Watch::start(
        &server.http_url(),
        &reader,
        Some(PUSH_PASS),
        &[&id, "--with-value"],
    );
    watch.watching().await;
    let first = rest
        .update(&writer, &id, json!({"price": 2}), None)
        .await
        .unwrap()
        .seq;
    let second = rest
        .update(&writer, &id, json!({"price": 3}), None)
        .await
        .unwrap()
        .seq;
    let removed = rest.remove(&writer, &id).await.unwrap().seq;

    let mut lines = Vec::new();
    for _ in 0..3 {
        lines.push(watch.push().await);
    }
    let (status, rest_lines, stderr) = watch.exit().await;
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(
        rest_lines.is_empty(),
        "lines after the remove: {rest_lines:?}"
    );
    let seen: Vec<(&str, u64)> = lines
        .iter()
        .map(|push| {
            (
                push["event"].as_str().unwrap(),
                push["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("update", first), ("update", second), ("remove", removed)],
        "{lines:?}"
    );
    for push in &lines {
        // The push object as the server sent it.
        let parsed: effex::protocol::messages::Push =
            serde_json::from_value(push.clone()).unwrap_or_else(|e| panic!("{push}: {e}"));
        assert_eq!(parsed.id, id);
        assert!(push["watchable"].as_str().is_some_and(|w| !w.is_empty()));
        assert!(push["at"].as_u64().is_some_and(|at| at > 0));
    }
    assert_eq!(lines[0]["value"], json!({"price": 2}), "--with-value");
    assert_eq!(lines[1]["value"], json!({"price": 3}));
    assert!(lines[2].get("value").is_none());

    // The item is gone; a watch of removes with `--after` below the remove
    // still gets that final push, then exits 0.
    let after = written.to_string();
    let mut again = Watch::start(
        &server.http_url(),
        &reader,
        Some(PUSH_PASS),
        &[&id, "--event", "remove", "--after", &after],
    );
    let replayed = again.push().await;
    assert_eq!(
        (replayed["event"].as_str(), replayed["seq"].as_u64()),
        (Some("remove"), Some(removed))
    );
    let (status, rest_lines, stderr) = again.exit().await;
    assert!(status.success(), "exit {status}; stderr:\n{stderr}");
    assert!(rest_lines.is_empty(), "{rest_lines:?}");
    server.stop().await;
}

/// Refusals: the server's message on stderr, exit 1, nothing on stdout.
#[actix_rt::test]
async fn watch_refusals_say_why_and_exit_1() {
    let server = start_with_pass().await;
    let (_rest, _writer, reader, id, _) = watched_item(&server).await;
    let url = server.http_url();

    for (what, key, pass, item, expect) in [
        (
            "an unknown key",
            "no-such-key",
            PUSH_PASS,
            id.as_str(),
            "(401): unknown or expired access key",
        ),
        (
            "no such item",
            reader.as_str(),
            PUSH_PASS,
            "no-such-item",
            "(404)",
        ),
        (
            "a wrong passphrase",
            reader.as_str(),
            "wrong",
            id.as_str(),
            "(401): bad passphrase",
        ),
    ] {
        let watch = Watch::start(&url, key, Some(pass), &[item]);
        let (status, stdout, stderr) = watch.exit().await;
        assert_eq!(status.code(), Some(1), "{what}: {stderr}");
        assert!(stdout.is_empty(), "{what}: {stdout:?}");
        assert!(stderr.contains(expect), "{what}: {stderr}");
    }

    server.stop().await;
    let watch = Watch::start(&url, &reader, Some(PUSH_PASS), &[&id, "--timeout", "2"]);
    let (status, _, stderr) = watch.exit().await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not open the WebSocket"), "{stderr}");
}
