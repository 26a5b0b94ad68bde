//! `effex serve`'s configuration, a module of the binary (the library stays
//! free of clap and TOML): the argument groups that reach the
//! [`ServerConfig`] fields the older flags did not, the config file layer
//! (`--config effex.toml`), `--print-config`, and the messages of bad values.
//!
//! Precedence: a flag beats its `EFFEX_*` variable, which beats the config
//! file, which beats the default. The file's values become the defaults of
//! the `serve` arguments before the command line is parsed (clap then applies
//! flag > env > default itself), after each was checked with the very value
//! parser its flag uses: one format per setting, in flags, variables and the
//! file alike. The file's keys are the [`ServerConfig`] field names (plus
//! `port`, `tls_cert`, `tls_key` and `log_level`, as the flags have them).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::Resettable;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, Args, Command};
use effex::server::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How `--print-config` shows a secret.
pub const REDACTED: &str = "<redacted>";

/// `--config` and `--print-config`.
#[derive(Args, Debug)]
pub struct ConfigFileArgs {
    /// A TOML file of settings (keys: the settings' names in snake_case, e.g.
    /// `ping_timeout = "20s"`). Precedence: flag > EFFEX_* variable > file > default.
    #[arg(long, env = "EFFEX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// `effex serve`'s timers. Durations take a unit (`250ms`, `10s`, `5m`,
/// `1h`; also `us`, `ns`); a bare number is seconds. Each unset one keeps
/// [`ServerConfig`]'s default.
#[derive(Args, Debug)]
pub struct TimerArgs {
    /// How often the server pings each push connection [default: 25s].
    #[arg(long, env = "EFFEX_PING_INTERVAL", value_name = "DURATION", value_parser = duration)]
    pub ping_interval: Option<Duration>,
    /// How long the server waits for a pong before it closes the socket [default: 20s].
    #[arg(long, env = "EFFEX_PING_TIMEOUT", value_name = "DURATION", value_parser = duration)]
    pub ping_timeout: Option<Duration>,
    /// How long a new push socket may take to pass [default: 10s].
    #[arg(long, env = "EFFEX_PASS_TIMEOUT", value_name = "DURATION", value_parser = duration)]
    pub pass_timeout: Option<Duration>,
    /// How long a stop waits for sessions and requests to end [default: 5s].
    #[arg(long, env = "EFFEX_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = duration)]
    pub shutdown_timeout: Option<Duration>,
    /// How long a push may stay unacknowledged before the socket is closed [default: 30s].
    #[arg(long, env = "EFFEX_ACK_TIMEOUT", value_name = "DURATION", value_parser = duration)]
    pub ack_timeout: Option<Duration>,
    /// How long a push id's watches outlive its connection [default: 10m].
    #[arg(long, env = "EFFEX_WATCH_GRACE", value_name = "DURATION", value_parser = duration)]
    pub watch_grace: Option<Duration>,
    /// An item's lifetime when a write gives none [default: 1h].
    #[arg(long, env = "EFFEX_DEFAULT_LIFETIME", value_name = "DURATION", value_parser = duration)]
    pub default_lifetime: Option<Duration>,
    /// How long an update intent locks an item [default: 10s].
    #[arg(long, env = "EFFEX_INTENT_LIFETIME", value_name = "DURATION", value_parser = duration)]
    pub intent_lifetime: Option<Duration>,
    /// How long one webhook request may take [default: 10s].
    #[arg(long, env = "EFFEX_WEBHOOK_TIMEOUT", value_name = "DURATION", value_parser = duration)]
    pub webhook_timeout: Option<Duration>,
    /// The wait before a webhook's first retry; each further one doubles [default: 1s].
    #[arg(long, env = "EFFEX_WEBHOOK_RETRY_BASE", value_name = "DURATION", value_parser = duration)]
    pub webhook_retry_base: Option<Duration>,
}

impl TimerArgs {
    /// Sets the timers given on `config`.
    pub fn apply(self, config: &mut ServerConfig) {
        let timers = [
            (self.ping_interval, &mut config.ping_interval),
            (self.ping_timeout, &mut config.ping_timeout),
            (self.pass_timeout, &mut config.pass_timeout),
            (self.shutdown_timeout, &mut config.shutdown_timeout),
            (self.ack_timeout, &mut config.ack_timeout),
            (self.watch_grace, &mut config.watch_grace),
            (self.default_lifetime, &mut config.default_lifetime),
            (self.intent_lifetime, &mut config.intent_lifetime),
            (self.webhook_timeout, &mut config.webhook_timeout),
            (self.webhook_retry_base, &mut config.webhook_retry_base),
        ];
        for (given, field) in timers {
            if let Some(value) = given {
                *field = value;
            }
        }
    }
}

/// `effex serve`'s push bounds; each unset one keeps [`ServerConfig`]'s default.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The largest WebSocket message, in bytes (larger: close 1009) [default: 1000000].
    #[arg(long, env = "EFFEX_MAX_PAYLOAD", value_name = "BYTES")]
    pub max_payload: Option<usize>,
    /// The most pushes sent to one connection and not yet acknowledged [default: 1000].
    #[arg(long, env = "EFFEX_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// The most pushes waiting for one connection (more: close 1013) [default: 10000].
    #[arg(long, env = "EFFEX_MAX_QUEUED_PUSHES", value_name = "N")]
    pub max_queued_pushes: Option<usize>,
    /// How many times a failed webhook delivery is retried [default: 8].
    #[arg(long, env = "EFFEX_WEBHOOK_RETRIES", value_name = "N")]
    pub webhook_retries: Option<u32>,
}

impl PushArgs {
    /// Sets the bounds given on `config`.
    pub fn apply(self, config: &mut ServerConfig) {
        let sizes = [
            (self.max_payload, &mut config.max_payload),
            (self.max_in_flight, &mut config.max_in_flight),
            (self.max_queued_pushes, &mut config.max_queued_pushes),
        ];
        for (given, field) in sizes {
            if let Some(value) = given {
                *field = value;
            }
        }
        if let Some(retries) = self.webhook_retries {
            config.webhook_retries = retries;
        }
    }
}

/// `--tls-cert` and `--tls-key`: the one port then serves https and wss.
#[derive(Args, Debug)]
pub struct TlsArgs {
    /// A PEM file with the server's certificate chain (leaf first); with
    /// --tls-key, the port serves https:// and wss:// only.
    #[arg(long, env = "EFFEX_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// A PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "EFFEX_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Loads the certificate and key into `config.tls`.
    pub fn apply(&self, config: &mut ServerConfig) -> Result<(), String> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(()),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => return Err("tls_key: is required with tls_cert".to_owned()),
            (None, Some(_)) => return Err("tls_cert: is required with tls_key".to_owned()),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("tls_cert: cannot read a PEM certificate from {cert:?}: {e}"))?;
        if chain.is_empty() {
            return Err(format!("tls_cert: no certificate in {cert:?}"));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("tls_key: cannot read a PEM private key from {key:?}: {e}"))?;
        config.tls = Some(ServerConfig::tls_config(chain, key).map_err(|e| format!("tls: {e}"))?);
        Ok(())
    }
}

/// Parses a duration: a number with a unit (`ns`, `us`, `ms`, `s`, `m`, `h`;
/// fractions allowed), or a bare number of seconds (as the older flags took).
pub fn duration(text: &str) -> Result<Duration, String> {
    const RULE: &str = "must be a duration such as 250ms, 10s, 5m, 1h, or a number of seconds";
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number = number.trim();
    let nanos_per_unit: u64 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(RULE.to_owned()),
    };
    if let Ok(whole) = number.parse::<u64>() {
        let nanos = u128::from(whole) * u128::from(nanos_per_unit);
        let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| RULE.to_owned())?;
        return Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32));
    }
    let value: f64 = number.parse().map_err(|_| RULE.to_owned())?;
    Duration::try_from_secs_f64(value * nanos_per_unit as f64 / 1e9)
        .map_err(|_| format!("{RULE}, not negative"))
}

/// A duration as [`duration`] reads it back: in the largest unit that keeps it exact.
pub fn human(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    for (unit, per) in [
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos % per == 0 && nanos > 0 {
            return format!("{}{unit}", nanos / per);
        }
    }
    format!("{nanos}ns")
}

/// The file key of a `serve` argument whose id differs from it (the Redis
/// group's fields drop the `redis_` of their flags).
const RENAMED: &[(&str, &str)] = &[
    ("redis_url", "url"),
    ("redis_stream_max_len", "stream_max_len"),
    ("redis_sweep_interval", "sweep_interval"),
    ("redis_sweep_batch", "sweep_batch"),
    ("redis_timeout", "timeout"),
];

/// `serve` arguments that are not settings.
const NOT_SETTINGS: &[&str] = &["config", "print_config", "help"];

/// The setting (file key) of a `serve` argument id.
fn setting_of(id: &str) -> &str {
    RENAMED
        .iter()
        .find(|(_, arg)| *arg == id)
        .map_or(id, |(key, _)| key)
}

/// The `serve` argument id of a setting (file key).
fn arg_of(key: &str) -> &str {
    RENAMED
        .iter()
        .find(|(file, _)| *file == key)
        .map_or(key, |(_, arg)| arg)
}

/// Every setting `serve` takes, in the order of its arguments.
pub fn settings(serve: &Command) -> Vec<String> {
    serve
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| !NOT_SETTINGS.contains(id))
        .map(|id| setting_of(id).to_owned())
        .collect()
}

/// Settings that are secrets: `--print-config` redacts them, and a file that
/// has the redacted text instead of the secret is refused.
const SECRETS: &[&str] = &["passphrase", "boss_key", "metrics_key"];

/// Reads the config file at `path` and checks every key and value against
/// the `serve` arguments: the settings and their values (as the flags take
/// them, lists as several values).
fn read_file(path: &Path, serve: &Command) -> Result<Vec<(String, Vec<String>)>, String> {
    let shown = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("config: cannot read {shown}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config: {shown} is not TOML: {e}"))?;
    let known = settings(serve);
    let mut layer = Vec::with_capacity(table.len());
    for (key, value) in table {
        if !known.contains(&key) {
            return Err(unknown_key(&key, &known, &shown.to_string()));
        }
        let arg = serve
            .get_arguments()
            .find(|arg| arg.get_id() == arg_of(&key))
            .expect("a known setting is an argument");
        let is_list = matches!(arg.get_action(), ArgAction::Append);
        let values = match value {
            toml::Value::Array(items) if is_list => items
                .into_iter()
                .map(|item| scalar(&key, item, &shown.to_string()))
                .collect::<Result<Vec<_>, _>>()?,
            toml::Value::Array(_) => {
                return Err(format!("{key}: must be one value, not a list (in {shown})"))
            }
            value => vec![scalar(&key, value, &shown.to_string())?],
        };
        for value in &values {
            let secret = SECRETS.contains(&key.as_str()) || key == "redis_url";
            if secret && value.contains(REDACTED) {
                return Err(format!(
                    "{key}: is {REDACTED:?} as --print-config shows it: write the secret \
                     itself, or leave it out and set {} (in {shown})",
                    env_of(arg)
                ));
            }
            check_value(arg, value)
                .map_err(|rule| format!("{key}: {rule} (got {value:?} in {shown})"))?;
        }
        layer.push((key, values));
    }
    Ok(layer)
}

/// The message for a key the file may not have.
fn unknown_key(key: &str, known: &[String], file: &str) -> String {
    let hint = match key {
        "store" => " (the store is for embedders of the library: ServerConfig::store; \
                    effex serve keeps the exchange in memory or, with redis_url, in Redis)"
            .to_owned(),
        "tls" => " (set tls_cert and tls_key, the PEM files)".to_owned(),
        _ => {
            let snake = key.replace('-', "_").to_ascii_lowercase();
            if known.contains(&snake) {
                format!(" (did you mean {snake}?)")
            } else {
                " (keys are the settings' names in snake_case: see effex serve --print-config)"
                    .to_owned()
            }
        }
    };
    format!("{key}: unknown setting in {file}{hint}")
}

/// A TOML scalar as the text its flag would take.
fn scalar(key: &str, value: toml::Value, file: &str) -> Result<String, String> {
    match value {
        toml::Value::String(text) => Ok(text),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "{key}: must be a string or a number, not {} (in {file})",
            other.type_str()
        )),
    }
}

/// Runs `arg`'s own value parser on `value` (in a command of its own, so no
/// variable or default interferes); the rule it broke, if any.
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    let Some(long) = arg.get_long() else {
        return Ok(());
    };
    let probe = arg
        .clone()
        .env(Resettable::Reset)
        .default_value(Resettable::Reset)
        .required(false)
        .value_delimiter(None::<char>);
    let result = Command::new("effex-serve")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([format!("--{long}={value}")]);
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(rule_of(&e)),
    }
}

/// The rule a clap value error names: the value parser's own message.
fn rule_of(error: &clap::Error) -> String {
    match std::error::Error::source(error) {
        Some(source) if source.is::<std::num::ParseIntError>() => {
            format!("must be a whole number in range ({source})")
        }
        Some(source) if source.is::<std::net::AddrParseError>() => {
            format!("must be an IP address ({source})")
        }
        Some(source) => source.to_string(),
        None => error.kind().to_string(),
    }
}

/// The variable of `arg`, for messages.
fn env_of(arg: &clap::Arg) -> String {
    arg.get_env()
        .map_or_else(String::new, |env| env.to_string_lossy().into_owned())
}

/// Parses the command line of `C` with `effex serve`'s layers: the config
/// file (when `--config` or `EFFEX_CONFIG` names one) under the flags and
/// variables. A bad value of a `serve` setting exits with 1 naming the
/// setting and its rule; other usage errors exit as clap has them (2).
pub fn parse<C: clap::Parser>() -> Result<C, ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let serving = args.get(1).is_some_and(|arg| arg == "serve");
    let mut command = C::command();
    let first = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(|e| fail(&command, serving, e))?;
    let path = first
        .subcommand_matches("serve")
        .and_then(|serve| serve.get_one::<PathBuf>("config"))
        .cloned();
    if let Some(path) = path {
        let serve = command
            .find_subcommand("serve")
            .expect("a serve subcommand");
        let layer = read_file(&path, serve).map_err(|message| {
            eprintln!("effex: {message}");
            ExitCode::FAILURE
        })?;
        command = command.mut_subcommand("serve", |mut serve| {
            for (key, values) in layer {
                serve = serve.mut_arg(arg_of(&key), |arg| arg.default_values(values));
            }
            serve
        });
    }
    let mut matches = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(|e| fail(&command, serving, e))?;
    C::from_arg_matches_mut(&mut matches).map_err(|e| fail(&command, serving, e))
}

/// Reports a parse error: for a bad value of a `serve` setting,
/// `effex: <setting>: <rule>` and exit 1; otherwise clap's own report.
fn fail(command: &Command, serving: bool, error: clap::Error) -> ExitCode {
    let value_error = matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    );
    let serve = command.find_subcommand("serve");
    if let (true, true, Some(serve)) = (serving, value_error, serve) {
        let flag = match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(flag)) => flag.clone(),
            _ => String::new(),
        };
        let long = flag
            .strip_prefix("--")
            .and_then(|rest| rest.split([' ', '=']).next())
            .unwrap_or_default();
        if let Some(arg) = serve
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long))
        {
            let value = match error.get(ContextKind::InvalidValue) {
                Some(ContextValue::String(value)) => value.clone(),
                _ => String::new(),
            };
            eprintln!(
                "effex: {}: {} (got {value:?} from --{long} or {})",
                setting_of(arg.get_id().as_str()),
                rule_of(&error),
                env_of(arg)
            );
            return ExitCode::FAILURE;
        }
    }
    error.exit()
}

/// What `--print-config` shows besides the [`ServerConfig`].
pub struct Shown<'a> {
    pub log_level: &'a str,
    pub tls: &'a TlsArgs,
}

/// The effective configuration as TOML that `--config` loads again; secrets
/// are `"<redacted>"`, unset optional settings are comments.
pub fn render(config: &ServerConfig, shown: &Shown<'_>) -> String {
    use toml::Value as V;
    fn int(n: usize) -> Option<V> {
        Some(V::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
    }
    fn dur(d: Duration) -> Option<V> {
        Some(V::String(human(d)))
    }
    fn text(s: &str) -> Option<V> {
        Some(V::String(s.to_owned()))
    }
    fn list<T: ToString>(items: &[T]) -> Option<V> {
        Some(V::Array(
            items.iter().map(|i| V::String(i.to_string())).collect(),
        ))
    }
    let secret = |s: &Option<String>| s.as_ref().map(|_| V::String(REDACTED.to_owned()));
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| V::String(p.display().to_string()));
    let c = config;
    let mut entries: Vec<(&str, Option<V>)> = vec![
        ("log_level", text(shown.log_level)),
        ("bind", text(&c.bind.ip().to_string())),
        ("port", int(c.bind.port().into())),
        ("workers", int(c.workers)),
        ("passphrase", secret(&c.passphrase)),
        ("tls_cert", path(&shown.tls.tls_cert)),
        ("tls_key", path(&shown.tls.tls_key)),
        ("ping_interval", dur(c.ping_interval)),
        ("ping_timeout", dur(c.ping_timeout)),
        ("pass_timeout", dur(c.pass_timeout)),
        ("shutdown_timeout", dur(c.shutdown_timeout)),
        ("max_payload", int(c.max_payload)),
        ("boss_key", secret(&c.boss_key)),
        ("metrics_key", secret(&c.metrics_key)),
        ("max_item_size", int(c.max_item_size)),
        ("default_lifetime", dur(c.default_lifetime)),
        ("max_lifetime", dur(c.max_lifetime)),
        ("intent_lifetime", dur(c.intent_lifetime)),
        ("intent_max_hold", dur(c.intent_max_hold)),
        ("max_total_bytes", int(c.max_total_bytes)),
        ("max_items_per_key", int(c.max_items_per_key)),
        ("max_bytes_per_key", int(c.max_bytes_per_key)),
        ("max_aliases_per_key", int(c.max_aliases_per_key)),
    ];
    #[cfg(feature = "redis")]
    entries.extend([
        (
            "redis_url",
            c.redis_url
                .as_deref()
                .map(|url| V::String(effex::store::redact_redis_url(url))),
        ),
        ("redis_stream_max_len", int(c.redis_stream_max_len)),
        ("redis_sweep_interval", dur(c.redis_sweep_interval)),
        ("redis_sweep_batch", int(c.redis_sweep_batch)),
        ("redis_timeout", dur(c.redis_timeout)),
    ]);
    entries.extend([
        ("max_in_flight", int(c.max_in_flight)),
        ("max_queued_pushes", int(c.max_queued_pushes)),
        ("max_queued_bytes", int(c.max_queued_bytes)),
        ("ack_timeout", dur(c.ack_timeout)),
        ("watch_grace", dur(c.watch_grace)),
        ("max_watches_per_push_id", int(c.max_watches_per_push_id)),
        ("max_offline_push_ids", int(c.max_offline_push_ids)),
        ("max_message_size", int(c.max_message_size)),
        ("webhook_timeout", dur(c.webhook_timeout)),
        ("webhook_retry_base", dur(c.webhook_retry_base)),
        ("webhook_retries", int(c.webhook_retries as usize)),
        ("webhook_max_per_host", int(c.webhook_max_per_host)),
        ("max_webhooks_per_key", int(c.max_webhooks_per_key)),
        ("webhook_allow", list(&c.webhook_allow)),
        ("cors_origins", list(&c.cors_origins)),
        ("trusted_proxies", list(&c.trusted_proxies)),
        (
            "requests_per_second_per_address",
            int(c.requests_per_second_per_address as usize),
        ),
        (
            "request_burst_per_address",
            int(c.request_burst_per_address as usize),
        ),
        (
            "writes_per_second_per_key",
            int(c.writes_per_second_per_key as usize),
        ),
        ("write_burst_per_key", int(c.write_burst_per_key as usize)),
        ("failed_auth_burst", int(c.failed_auth_burst as usize)),
        ("failed_auth_period", dur(c.failed_auth_period)),
        ("failed_auth_max_lockout", dur(c.failed_auth_max_lockout)),
        ("max_connections", int(c.max_connections)),
        (
            "max_connections_per_address",
            int(c.max_connections_per_address),
        ),
        ("max_tracked_clients", int(c.max_tracked_clients)),
    ]);
    let mut out = String::from(
        "# effex serve: the effective configuration (load it with --config FILE).\n\
         # Precedence: flag > EFFEX_* variable > config file > default.\n",
    );
    for (key, value) in entries {
        match value {
            Some(value) => out.push_str(&format!("{key} = {value}\n")),
            None => out.push_str(&format!("# {key} is not set\n")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("0.005"), Ok(Duration::from_millis(5)));
        assert_eq!(duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("7us"), Ok(Duration::from_micros(7)));
        assert!(duration("ten").is_err());
        assert!(duration("10 parsecs").is_err());
        assert!(duration("-1s").is_err());
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1500),
            Duration::from_millis(5),
            Duration::from_secs(90),
            Duration::from_secs(86_400),
        ] {
            assert_eq!(duration(&human(d)), Ok(d), "{}", human(d));
        }
        assert_eq!(human(Duration::from_secs(600)), "10m");
    }

    /// `--print-config` shows every setting `serve` takes, and only those:
    /// what it prints loads again.
    #[test]
    fn print_config_shows_every_setting() {
        use clap::CommandFactory;
        let command = crate::Cli::command();
        let serve = command.find_subcommand("serve").unwrap();
        let known = settings(serve);
        let shown = render(
            &ServerConfig::default(),
            &Shown {
                log_level: "info",
                tls: &TlsArgs {
                    tls_cert: None,
                    tls_key: None,
                },
            },
        );
        let printed: Vec<&str> = shown
            .lines()
            .filter_map(|line| {
                line.strip_prefix("# ")
                    .and_then(|rest| rest.strip_suffix(" is not set"))
                    .or_else(|| line.split(" = ").nth(1).and(line.split(" = ").next()))
            })
            .collect();
        for key in &known {
            assert!(printed.contains(&key.as_str()), "{key} is not printed");
        }
        for key in &printed {
            assert!(known.iter().any(|k| k == key), "{key} is no setting");
        }
        assert_eq!(printed.len(), known.len());
    }
}
