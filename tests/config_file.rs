//! `effex serve`'s configuration as an operator meets it: the real binary,
//! real files in a temporary directory. Precedence flag > `EFFEX_*` variable >
//! config file > default, read back with `--print-config`; unknown keys and
//! bad values exit 1 naming the setting; secrets are redacted; TLS from the
//! config file serves https and wss on one port.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::child::lines_of;
use common::effex_bin::{finish, EFFEX, WAIT};
use common::wire::{http_client, Wire};
use effex::client::EffexClient;
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use rustls::pki_types::CertificateDer;
use serde_json::json;
use tokio::time::Instant;

/// A fresh directory of this test run.
fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "config_file-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Writes `text` to `dir/name` and returns its path as a string.
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("the file is written");
    path.display().to_string()
}

/// `effex ARGS` with no `EFFEX_*` variable but those given.
fn effex(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(EFFEX);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("EFFEX_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `effex ARGS` to its exit (bounded).
async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let child = effex(args, env).spawn().expect("the effex binary runs");
    finish(child, &format!("effex {}", args.join(" "))).await
}

/// `effex serve ARGS --print-config`: the printed configuration (exit 0).
async fn printed(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    all.push("--print-config");
    let output = run(&all, env).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "effex {all:?} failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The line `key = …` of a printed configuration.
fn line_of<'a>(config: &'a str, key: &str) -> &'a str {
    config
        .lines()
        .find(|line| line.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in\n{config}"))
}

/// `effex serve ARGS` must exit with 1 and name `needles` on stderr; returns stderr.
async fn refused(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    all.push("--print-config");
    let output = run(&all, env).await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "effex {all:?} with {env:?}: stdout {}; stderr {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(output.stdout.is_empty(), "nothing printed on a refusal");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
    stderr
}

#[actix_rt::test]
async fn a_flag_beats_its_variable_which_beats_the_file_which_beats_the_default() {
    let dir = temp_dir("precedence");
    let config = file(
        &dir,
        "effex.toml",
        r#"
ping_timeout = "7s"
max_item_size = 4096
max_queued_bytes = 16384
cors_origins = ["https://a.example", "https://b.example"]
"#,
    );
    let with_file = ["--config", config.as_str()];

    // Default.
    let defaults = printed(&[], &[]).await;
    assert_eq!(
        line_of(&defaults, "ping_timeout"),
        r#"ping_timeout = "20s""#
    );
    assert_eq!(
        line_of(&defaults, "max_item_size"),
        "max_item_size = 1048576"
    );
    assert_eq!(line_of(&defaults, "cors_origins"), "cors_origins = []");

    // The file beats the default, also for flags clap gives a default of their own.
    let from_file = printed(&with_file, &[]).await;
    assert_eq!(
        line_of(&from_file, "ping_timeout"),
        r#"ping_timeout = "7s""#
    );
    assert_eq!(line_of(&from_file, "max_item_size"), "max_item_size = 4096");
    assert_eq!(
        line_of(&from_file, "cors_origins"),
        r#"cors_origins = ["https://a.example", "https://b.example"]"#
    );

    // The variable beats the file; the file names it with EFFEX_CONFIG too.
    let env = [
        ("EFFEX_PING_TIMEOUT", "8s"),
        ("EFFEX_MAX_ITEM_SIZE", "5000"),
        ("EFFEX_CORS_ORIGINS", "https://c.example"),
        ("EFFEX_CONFIG", config.as_str()),
    ];
    let from_env = printed(&[], &env).await;
    assert_eq!(line_of(&from_env, "ping_timeout"), r#"ping_timeout = "8s""#);
    assert_eq!(line_of(&from_env, "max_item_size"), "max_item_size = 5000");
    assert_eq!(
        line_of(&from_env, "cors_origins"),
        r#"cors_origins = ["https://c.example"]"#
    );
    // What neither flag nor variable sets still comes from the file.
    assert_eq!(
        line_of(&from_env, "max_queued_bytes"),
        "max_queued_bytes = 16384"
    );

    // The flag beats the variable (and the older flags' bare seconds still work).
    let from_flag = printed(
        &[
            "--ping-timeout",
            "9",
            "--max-item-size",
            "6000",
            "--cors-origin",
            "https://d.example",
        ],
        &env,
    )
    .await;
    assert_eq!(
        line_of(&from_flag, "ping_timeout"),
        r#"ping_timeout = "9s""#
    );
    assert_eq!(line_of(&from_flag, "max_item_size"), "max_item_size = 6000");
    assert_eq!(
        line_of(&from_flag, "cors_origins"),
        r#"cors_origins = ["https://d.example"]"#
    );
}

/// What `--print-config` prints loads again with `--config` and prints the same.
#[actix_rt::test]
async fn the_printed_configuration_loads_again() {
    let dir = temp_dir("round-trip");
    let first = printed(
        &[
            "--ping-interval",
            "1500ms",
            "--watch-grace",
            "90s",
            "--webhook-retries",
            "3",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--port",
            "9001",
            "--workers",
            "3",
        ],
        &[],
    )
    .await;
    assert_eq!(
        line_of(&first, "ping_interval"),
        r#"ping_interval = "1500ms""#
    );
    assert_eq!(line_of(&first, "watch_grace"), r#"watch_grace = "90s""#);
    let config = file(&dir, "printed.toml", &first);
    let again = printed(&["--config", &config], &[]).await;
    assert_eq!(again, first);
}

#[actix_rt::test]
async fn an_unknown_key_exits_1_naming_it() {
    let dir = temp_dir("unknown");
    let typo = file(&dir, "typo.toml", "ping_timout = \"5s\"\n");
    refused(
        &["--config", &typo],
        &[],
        &["ping_timout", "unknown setting"],
    )
    .await;
    let dashed = file(&dir, "dashed.toml", "max-payload = 4096\n");
    refused(
        &["--config", &dashed],
        &[],
        &["max-payload", "did you mean max_payload?"],
    )
    .await;
    let store = file(&dir, "store.toml", "store = \"memory\"\n");
    refused(&["--config", &store], &[], &["store", "embedders"]).await;
    // A missing file names its path.
    let missing = dir.join("missing.toml").display().to_string();
    refused(&["--config", &missing], &[], &["config", &missing]).await;
}

#[actix_rt::test]
async fn bad_values_exit_1_naming_the_setting_and_the_rule() {
    let dir = temp_dir("bad");
    // In the file: the flag's own rule, the file named.
    let soon = file(&dir, "soon.toml", "ping_timeout = \"soon\"\n");
    refused(
        &["--config", &soon],
        &[],
        &["effex: ping_timeout: must be a duration", "soon.toml"],
    )
    .await;
    let list = file(&dir, "list.toml", "max_payload = [1, 2]\n");
    refused(
        &["--config", &list],
        &[],
        &["effex: max_payload: must be one value"],
    )
    .await;
    // ServerConfig's own checks, whichever layer the value came from.
    let small = file(&dir, "small.toml", "max_payload = 10\n");
    refused(
        &["--config", &small],
        &[],
        &["effex: max_payload is 10 bytes: set it to at least 512"],
    )
    .await;
    refused(
        &[],
        &[("EFFEX_ACK_TIMEOUT", "0ms")],
        &["effex: ack_timeout is 0ns: set it to at least 1 ms"],
    )
    .await;
    // A variable or a flag that does not parse: exit 1 (not clap's usage 2).
    refused(
        &[],
        &[("EFFEX_MAX_IN_FLIGHT", "lots")],
        &["effex: max_in_flight:", "EFFEX_MAX_IN_FLIGHT", "lots"],
    )
    .await;
    refused(
        &["--watch-grace", "10 parsecs"],
        &[],
        &["effex: watch_grace: must be a duration", "--watch-grace"],
    )
    .await;
    // TLS: a key without a certificate, and a certificate file that is not there.
    let key_only = file(&dir, "key-only.toml", "tls_key = \"key.pem\"\n");
    refused(
        &["--config", &key_only],
        &[],
        &["effex: tls_cert: is required with tls_key"],
    )
    .await;
    refused(
        &[
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "key.pem",
        ],
        &[],
        &["effex: tls_cert:", "/nonexistent/cert.pem"],
    )
    .await;
}

#[actix_rt::test]
async fn print_config_redacts_secrets() {
    let dir = temp_dir("secrets");
    let config = file(&dir, "effex.toml", "passphrase = \"file-secret-pass\"\n");
    let shown = printed(
        &["--config", &config],
        &[("EFFEX_BOSS_KEY", "env-secret-boss")],
    )
    .await;
    assert_eq!(
        line_of(&shown, "passphrase"),
        r#"passphrase = "<redacted>""#
    );
    assert_eq!(line_of(&shown, "boss_key"), r#"boss_key = "<redacted>""#);
    assert!(!shown.contains("secret"), "{shown}");
    // Unset secrets are comments, not values.
    let defaults = printed(&[], &[]).await;
    assert!(defaults.contains("# passphrase is not set"), "{defaults}");
    // The redacted text is not taken for the secret itself.
    let copied = file(&dir, "copied.toml", &shown);
    let stderr = refused(
        &["--config", &copied],
        &[("EFFEX_BOSS_KEY", "env-secret-boss")],
        &[r#"is "<redacted>" as --print-config shows it"#],
    )
    .await;
    assert!(
        stderr.starts_with("effex: passphrase:") || stderr.starts_with("effex: boss_key:"),
        "{stderr}"
    );
}

/// A config file with `tls_cert` and `tls_key`: the one port serves
/// `GET /ping` over https and a push connection over wss that receives a push.
#[actix_rt::test]
async fn tls_from_the_config_file_serves_https_and_wss_on_one_port() {
    let dir = temp_dir("tls");
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    let cert = file(&dir, "cert.pem", &certified.cert.pem());
    let key = file(&dir, "key.pem", &certified.key_pair.serialize_pem());
    let config = file(
        &dir,
        "effex.toml",
        &format!(
            "port = 0\nlog_level = \"warn\"\nboss_key = \"bk-config-file-test\"\n\
             passphrase = \"push-secret\"\ntls_cert = {cert:?}\ntls_key = {key:?}\n"
        ),
    );
    let mut child = effex(&["serve", "--config", &config], &[])
        .spawn()
        .expect("effex serve runs");
    let mut lines = lines_of(child.stdout.take().unwrap());
    let listening = tokio::time::timeout_at(Instant::now() + WAIT, lines.recv())
        .await
        .unwrap_or_else(|_| panic!("effex serve printed nothing within {WAIT:?}"));
    let Some(listening) = listening else {
        let output = finish(child, "effex serve").await;
        panic!(
            "effex serve exited: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let url = listening
        .split_whitespace()
        .find(|word| word.starts_with("https://"))
        .unwrap_or_else(|| panic!("no https URL in {listening:?}"))
        .to_owned();
    assert!(listening.contains("(push: wss://"), "{listening}");

    // A client that trusts exactly this certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .unwrap();
    let client_tls = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let rest = EffexClient::builder(url.as_str())
        .tls_config(client_tls.clone())
        .build()
        .unwrap();
    rest.ping().await.expect("GET /ping over https");
    let keys = |kind| KeysRequest {
        kind,
        count: None,
        seconds: None,
    };
    let writer = rest
        .make_keys("bk-config-file-test", keys(KeyKind::Writer))
        .await
        .expect("the boss key from the file makes keys")
        .keys[0]
        .clone();
    let reader = rest
        .make_keys("bk-config-file-test", keys(KeyKind::Reader))
        .await
        .unwrap()
        .keys[0]
        .clone();
    let item = NewItem {
        value: json!(1),
        readers: vec![reader.clone()],
        ..Default::default()
    };
    let id = rest.write(&writer, &item).await.unwrap().id;

    let ws_url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        url.replacen("https://", "wss://", 1).trim_end_matches('/')
    );
    let mut wire = Wire::try_connect_with(&http_client(Some(client_tls)), &ws_url)
        .await
        .expect("wss connects on the same port");
    wire.expect_open().await;
    wire.join().await;
    assert_eq!(
        wire.pass(1, "push-secret", "config-file-test").await["ok"],
        json!(true),
        "the passphrase from the file"
    );
    let watched = wire
        .call(
            2,
            "watch",
            json!({"event": "update", "id": id, "key": reader}),
        )
        .await;
    assert_eq!(watched["ok"], json!(true), "{watched}");
    rest.update(&writer, &id, json!(2), None).await.unwrap();
    let push = wire.next_push_acked().await;
    assert_eq!(push["event"], json!("update"), "{push}");
    assert_eq!(push["id"], json!(id), "{push}");

    let _ = child.kill();
    let _ = child.wait();
}
