//! The `effex` binary: the client commands against an in-process server on
//! port 0, and `effex serve` as its own process (generated boss key, Ctrl-C).
//!
//! The binary runs as a child process; every wait on it is bounded (the test
//! polls `try_wait` and kills the child when the bound passes), and the
//! in-process server keeps running meanwhile because the polling is async.
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use effex::server::{Server, ServerConfig, ServerHandle};
use serde_json::Value;
use tokio::time::{sleep, Instant};

const EFFEX: &str = env!("CARGO_BIN_EXE_effex");
/// The bound on one CLI run.
const WAIT: Duration = Duration::from_secs(20);

/// Waits (bounded) for `child` to exit and collects its output.
async fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + WAIT;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("output");
                panic!(
                    "{what}: still running after {WAIT:?}; stderr: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            None => sleep(Duration::from_millis(10)).await,
        }
    }
}

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
    let _ = env_logger::builder().is_test(true).try_init();
    Server::start(ServerConfig::default())
        .await
        .expect("server starts")
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
    assert_eq!(ok(&server, "", &["info"]).await["store"], "memory");
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
        "serve", "keys", "write", "read", "update", "remove", "alias", "events",
    ] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    assert!(help.contains("Example session"), "{help}");
    for command in [
        "serve", "keys", "write", "read", "update", "remove", "alias", "events",
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
    let mut child = Command::new(EFFEX)
        .args(["serve", "--port", "0", "--log-level", "warn"])
        .env_remove("EFFEX_BOSS_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the first two lines on a thread (blocking reads), bounded by WAIT.
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let next_line = || loop {
        match lines.try_recv() {
            Ok(line) => return Some(line),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                assert!(Instant::now() < deadline, "effex serve printed nothing");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    let listening = next_line().expect("a first line");
    let url = listening
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {listening:?}"))
        .to_owned();
    let boss_line = next_line().expect("a boss key line");
    let boss = boss_line
        .rsplit(' ')
        .next()
        .filter(|key| key.starts_with("bk"))
        .unwrap_or_else(|| panic!("no boss key in {boss_line:?}"))
        .to_owned();

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
    assert_eq!(next_line().as_deref(), Some("effex stopped"));
}
