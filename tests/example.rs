//! The examples run to completion: the README's main job
//! (`examples/subscriber.rs`) and the one-idea examples.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::child::wait_exit;

/// The bound on the example's run.
const EXAMPLE_BOUND: Duration = Duration::from_secs(60);

/// `cargo test` builds the examples next to the test binaries.
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile_dir.join("examples").join(name)
}

#[actix_rt::test]
async fn the_example_subscriber_shows_the_whole_story_and_exits_0() {
    let path = example("subscriber");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test`, which builds the examples",
        path.display()
    );
    let mut child = Command::new(&path)
        .env_remove("EFFEX_URL")
        .env_remove("EFFEX_KEY")
        .env_remove("EFFEX_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let Some(status) = wait_exit(&mut child, EXAMPLE_BOUND).await else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the example did not finish within {EXAMPLE_BOUND:?}");
    };
    let output = child.wait_with_output().expect("the example's output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        status.success(),
        "exit {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Three updates of each item, one removal, one expiry: each once.
    assert_eq!(stdout.matches("] update of ").count(), 6, "{stdout}");
    assert_eq!(stdout.matches("] remove of ").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("] expire of ").count(), 1, "{stdout}");
    assert!(stdout.contains("done:"), "{stdout}");
}

/// Runs the example `name` to completion (bounded); returns its stdout.
async fn run_example(name: &str) -> String {
    let path = example(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test`",
        path.display()
    );
    let mut child = Command::new(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let Some(status) = wait_exit(&mut child, EXAMPLE_BOUND).await else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the example {name} did not finish within {EXAMPLE_BOUND:?}");
    };
    let output = child.wait_with_output().expect("the example's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        status.success(),
        "{name}: exit {status}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[actix_rt::test]
async fn the_example_shared_connection_opens_one_socket_for_two_parts() {
    let stdout = run_example("shared_connection").await;
    assert!(
        stdout.contains("prices and orders share connection"),
        "{stdout}"
    );
    assert!(stdout.contains("sockets the server saw: 1"), "{stdout}");
}

#[actix_rt::test]
async fn the_example_push_recipient_hands_each_price_to_the_actor_once() {
    let stdout = run_example("push_recipient").await;
    let prices: Vec<&str> = stdout.lines().filter(|l| l.contains(": price ")).collect();
    assert_eq!(prices.len(), 3, "{stdout}");
    for (line, price) in prices.iter().zip(1..=3) {
        assert!(line.ends_with(&format!("price {price}")), "{stdout}");
    }
}

#[actix_rt::test]
async fn the_example_rest_client_goes_through_the_whole_api() {
    let stdout = run_example("rest_client").await;
    for step in [
        "wrote ",
        "read ",
        "updated: event seq",
        "logged: seq",
        "removed: event seq",
    ] {
        assert!(stdout.contains(step), "no {step:?} in:\n{stdout}");
    }
}
