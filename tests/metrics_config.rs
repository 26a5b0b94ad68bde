//! The metrics key from `effex serve`: the `--metrics-key` flag, the
//! `EFFEX_METRICS_KEY` variable and the config file's `metrics_key` all set
//! it, `--print-config` redacts it, and a key an `Authorization` header
//! cannot carry exits with 1 naming the setting. (The endpoint's answers
//! with and without the key: tests/metrics.rs.)
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Output, Stdio};

use common::effex_bin::{finish, EFFEX};

/// `effex serve ARGS --print-config` with only the `EFFEX_*` variables given.
async fn print_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(EFFEX);
    command.arg("serve").args(args).arg("--print-config");
    for (name, _) in std::env::vars() {
        if name.starts_with("EFFEX_") {
            command.env_remove(name);
        }
    }
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("the effex binary runs");
    finish(child, "effex serve --print-config").await
}

/// The printed configuration of a run that must succeed.
async fn printed(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = print_config(args, env).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?} {env:?}: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[actix_rt::test]
async fn every_layer_sets_the_metrics_key_and_print_config_redacts_it() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("metrics_config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("effex.toml");
    std::fs::write(&file, "metrics_key = \"file-metrics-secret\"\n").expect("written");
    let file = file.display().to_string();

    let unset = printed(&[], &[]).await;
    assert!(unset.contains("# metrics_key is not set"), "{unset}");
    for (args, env) in [
        (vec!["--metrics-key", "flag-metrics-secret"], vec![]),
        (vec![], vec![("EFFEX_METRICS_KEY", "env-metrics-secret")]),
        (vec!["--config", file.as_str()], vec![]),
    ] {
        let shown = printed(&args, &env).await;
        assert!(
            shown
                .lines()
                .any(|line| line == r#"metrics_key = "<redacted>""#),
            "{args:?} {env:?}: {shown}"
        );
        assert!(!shown.contains("metrics-secret"), "{shown}");
    }
}

#[actix_rt::test]
async fn a_metrics_key_with_a_space_is_refused_by_name() {
    let output = print_config(&["--metrics-key", "two words"], &[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("effex: metrics_key"), "{stderr}");
    assert!(output.stdout.is_empty());
}
