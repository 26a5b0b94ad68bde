//! The `effex` binary: `effex serve` runs an exchange (REST API and push
//! endpoint on one port); `effex keys | write | read | update | remove | alias
//! | events | ping | info` are a thin command line over the REST API
//! ([`EffexClient`]) that prints the server's JSON reply; `effex watch`
//! follows an item over the push connection ([`ConnectionActor`] +
//! [`SubscriberActor`]) and prints each push as a JSON line. It owns argument
//! parsing, logging setup and exit codes, nothing else.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use actix::prelude::*;
use clap::{Args, Parser, Subcommand};
use effex::client::{
    ClientConfig, ConnectError, ConnectionActor, ConnectionState, EffexClient, EffexError, Stop,
    Subscribe, SubscribeState, SubscriberActor, SubscriberEvent, Unsubscribe, WatchError,
};
use effex::protocol::messages::{EventKind, Push, Success};
use effex::protocol::rest::{KeyKind, KeysRequest, NewItem};
use effex::server::{IpNet, Server, ServerConfig};
use serde::Serialize;
use serde_json::Value;

mod serve_config;

use serve_config::duration;

const SESSION: &str = "\
Example session (a server in one terminal, the CLI in another):

  $ effex serve
  effex 0.1.0 listening on http://127.0.0.1:8150 (push: ws://127.0.0.1:8150/socket.io/)
  boss key (generated; set --boss-key or EFFEX_BOSS_KEY to keep one): bk5f0c…
  $ export EFFEX_KEY=bk5f0c…                    # the boss key makes keys
  $ effex keys writer                            # → {\"ok\":true,\"keys\":[\"wk…\"],…}
  $ export EFFEX_KEY=wk…                         # the writer key writes
  $ effex write '{\"price\": 3}' --lifetime 60     # → {\"ok\":true,\"id\":\"…\",…}
  $ effex read <id>
  $ effex watch <id> --key <reader key>          # one JSON line per push, until Ctrl-C

Every client command prints the server's JSON reply on stdout. On an error it
prints the server's message on stderr and exits with 1 (2 for a usage error).";

/// effex — Ephemeral Exchange: a cache whose items live for a set time, with
/// push notifications over Socket.IO.
#[derive(Parser, Debug)]
#[command(name = "effex", version, after_help = SESSION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run an effex server (REST API and push endpoint on one port) until Ctrl-C.
    #[command(after_help = "\
Examples:
  effex serve                                   # 127.0.0.1:8150, prints a generated boss key
  EFFEX_BOSS_KEY=s3cret effex serve --bind 0.0.0.0 --port 9000 --passphrase push-secret
  effex serve --max-item-size 65536 --max-lifetime 10m --log-level effex=debug
  effex serve --config effex.toml --ping-timeout 5s   # the flag beats the file
  effex serve --config effex.toml --print-config      # the effective settings, secrets redacted
  effex serve --tls-cert cert.pem --tls-key key.pem   # https:// and wss:// on the one port

Every setting is a flag, an EFFEX_* variable and a key of the --config file
(its name in snake_case: ping_timeout = \"20s\"); a flag beats its variable,
which beats the file, which beats the default. Durations take a unit (250ms,
10s, 5m, 1h) or are seconds. A bad value exits with 1 naming the setting.")]
    Serve(Box<ServeArgs>),
    /// Check that a server answers (GET /ping).
    #[command(after_help = "Example:\n  effex ping --url http://127.0.0.1:8150")]
    Ping(Target),
    /// Show the server's version, store and limits (GET /info).
    #[command(after_help = "Example:\n  effex info")]
    Info(Target),
    /// Make access keys with the boss key (POST /keys).
    #[command(after_help = "\
Examples:
  effex keys writer --key <boss key>
  EFFEX_KEY=<boss key> effex keys reader --count 3 --seconds 86400")]
    Keys(KeysArgs),
    /// Store a new item with a writer key (POST /items).
    #[command(after_help = "\
Examples:
  effex write '{\"price\": 3}' --lifetime 60 --key <writer key>
  echo '[1,2,3]' | effex write - --reader <reader key> --alias latest")]
    Write(WriteArgs),
    /// Read an item by id or alias (GET /items/{id}).
    #[command(after_help = "\
Examples:
  effex read <id> --key <reader key>
  effex read latest --intent --key <updater key>   # lock it for your update")]
    Read(ReadArgs),
    /// Replace an item's value, keeping its expiry (PUT /items/{id}).
    #[command(after_help = "\
Examples:
  effex update <id> '{\"price\": 4}' --key <writer or updater key>
  effex update latest 5 --intent <intent id from read --intent>")]
    Update(UpdateArgs),
    /// Remove an item (DELETE /items/{id}); owner only.
    #[command(after_help = "Example:\n  effex remove <id> --key <writer key>")]
    Remove(IdArgs),
    /// Point an alias at an item (PUT /aliases/{alias}); owner only.
    #[command(after_help = "Example:\n  effex alias latest <id> --key <writer key>")]
    Alias(AliasArgs),
    /// List an item's logged events (GET /items/{id}/events).
    #[command(after_help = "\
Examples:
  effex events <id> --key <reader key>
  effex events latest --since 41 --event update")]
    Events(EventsArgs),
    /// Follow an item's events over the push connection; print each push as a JSON line.
    #[command(after_help = "\
Prints one JSON line per push, as the server sent it, until Ctrl-C, or until
the item is gone: after a remove or expire push it exits with 0 (the item's
other watches end with it; a watch of updates alone is not told, so it runs
until Ctrl-C). Errors (bad key 401, 403, 404, no connection, bad passphrase)
go to stderr with exit code 1. Dropped connections are retried, and the
pushes missed meanwhile are replayed. --url takes several comma-separated
nodes of one exchange: it starts at the first and, when a node fails, moves
on to the next (round robin), missing nothing.

Examples:
  effex watch <id> --key <reader key>
  effex watch latest --event update --with-value --pass push-secret
  effex watch <id> --push-id my-laptop --after 41   # resume after seq 41
  effex watch <id> --url http://node-a:8150,http://node-b:8150   # failover")]
    Watch(WatchArgs),
}

/// Where the server is.
#[derive(Args, Debug)]
struct Target {
    /// The server's URL (http://, https://; ws:// and wss:// are mapped).
    #[arg(
        long,
        env = "EFFEX_URL",
        default_value = "http://127.0.0.1:8150",
        value_name = "URL"
    )]
    url: String,
    /// How long one request may take, in seconds.
    #[arg(long, env = "EFFEX_TIMEOUT", default_value = "10", value_name = "SECONDS", value_parser = seconds)]
    timeout: Duration,
}

/// Where the server is, and the key to act with.
#[derive(Args, Debug)]
struct Keyed {
    #[command(flatten)]
    target: Target,
    /// The access key to act with (the boss key for `keys`).
    #[arg(long, env = "EFFEX_KEY", hide_env_values = true, value_name = "KEY")]
    key: String,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// The IP address to listen on.
    #[arg(
        long,
        env = "EFFEX_BIND",
        default_value = "127.0.0.1",
        value_name = "IP"
    )]
    bind: IpAddr,
    /// The port to listen on (0 picks a free one).
    #[arg(long, env = "EFFEX_PORT", default_value = "8150")]
    port: u16,
    /// The passphrase push clients must present; none accepts any.
    #[arg(long, env = "EFFEX_PASSPHRASE", hide_env_values = true)]
    passphrase: Option<String>,
    /// The boss key that makes access keys; none generates one and prints it.
    #[arg(long, env = "EFFEX_BOSS_KEY", hide_env_values = true)]
    boss_key: Option<String>,
    /// The key GET /metrics asks for (Authorization: Bearer <key>); none serves it openly.
    #[arg(long, env = "EFFEX_METRICS_KEY", hide_env_values = true)]
    metrics_key: Option<String>,
    /// The largest item value accepted, in bytes (larger: 413).
    #[arg(
        long,
        env = "EFFEX_MAX_ITEM_SIZE",
        default_value = "1048576",
        value_name = "BYTES"
    )]
    max_item_size: usize,
    /// The longest item lifetime granted, (longer asks are capped).
    #[arg(long, env = "EFFEX_MAX_LIFETIME", default_value = "86400", value_name = "DURATION", value_parser = duration)]
    max_lifetime: Duration,
    /// The longest one key may hold an update intent in a row, renewals
    /// included (at least the intent lifetime, 10 s).
    #[arg(long, env = "EFFEX_INTENT_MAX_HOLD", default_value = "60", value_name = "DURATION", value_parser = duration)]
    intent_max_hold: Duration,
    /// The most value bytes stored over all items (more: 507).
    #[arg(
        long,
        env = "EFFEX_MAX_TOTAL_BYTES",
        default_value = "1073741824",
        value_name = "BYTES"
    )]
    max_total_bytes: usize,
    /// The most live items one writer key owns (more: 429).
    #[arg(
        long,
        env = "EFFEX_MAX_ITEMS_PER_KEY",
        default_value = "100000",
        value_name = "COUNT"
    )]
    max_items_per_key: usize,
    /// The most value bytes one writer key's items hold (more: 429).
    #[arg(
        long,
        env = "EFFEX_MAX_BYTES_PER_KEY",
        default_value = "268435456",
        value_name = "BYTES"
    )]
    max_bytes_per_key: usize,
    /// The most aliases one writer key holds (more: 429).
    #[arg(
        long,
        env = "EFFEX_MAX_ALIASES_PER_KEY",
        default_value = "10000",
        value_name = "COUNT"
    )]
    max_aliases_per_key: usize,
    /// HTTP worker threads; by default one per core.
    #[arg(long, env = "EFFEX_WORKERS")]
    workers: Option<usize>,
    /// Allow webhooks to reach this network, address or host name although it
    /// is local (loopback, private, link-local…, refused by default); repeat
    /// for several (the variable takes a comma-separated list).
    #[arg(
        long,
        env = "EFFEX_WEBHOOK_ALLOW",
        value_name = "CIDR|HOST",
        value_delimiter = ','
    )]
    webhook_allow: Vec<String>,
    /// A web origin (`https://app.example.com`) whose pages may call the REST
    /// API and open the push socket; repeat for several (the variable takes a
    /// comma-separated list). Without any, every origin may call the REST API
    /// (keys travel in `Authorization`, never cookies).
    #[arg(
        long = "cors-origin",
        env = "EFFEX_CORS_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// The most webhook requests in flight to one host; more wait their turn.
    #[arg(
        long,
        env = "EFFEX_WEBHOOK_MAX_PER_HOST",
        default_value = "64",
        value_name = "N"
    )]
    webhook_max_per_host: usize,
    /// The most bytes of pushes one push connection may hold (more: close 1013).
    #[arg(
        long,
        env = "EFFEX_MAX_QUEUED_BYTES",
        default_value = "67108864",
        value_name = "BYTES"
    )]
    max_queued_bytes: usize,
    /// The most watches one push id may hold (more: 429).
    #[arg(long, env = "EFFEX_MAX_WATCHES_PER_PUSH_ID", default_value = "10000")]
    max_watches_per_push_id: usize,
    /// The most offline push ids whose watches are held (more: the oldest are forgotten).
    #[arg(long, env = "EFFEX_MAX_OFFLINE_PUSH_IDS", default_value = "100000")]
    max_offline_push_ids: usize,
    /// The most webhook watches one access key may hold (more: 429).
    #[arg(long, env = "EFFEX_MAX_WEBHOOKS_PER_KEY", default_value = "1000")]
    max_webhooks_per_key: usize,
    /// The largest watch `message`, in bytes of JSON (larger: 413).
    #[arg(
        long,
        env = "EFFEX_MAX_MESSAGE_SIZE",
        default_value = "65536",
        value_name = "BYTES"
    )]
    max_message_size: usize,
    /// The log filter (env_logger syntax: error, warn, info, debug, effex=debug,…).
    #[arg(long, env = "EFFEX_LOG", default_value = "info", value_name = "FILTER")]
    log_level: String,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    timers: serve_config::TimerArgs,
    #[command(flatten)]
    push: serve_config::PushArgs,
    #[command(flatten)]
    tls: serve_config::TlsArgs,
    #[command(flatten)]
    file: serve_config::ConfigFileArgs,
    #[cfg(feature = "redis")]
    #[command(flatten)]
    redis: RedisArgs,
}

/// `effex serve`'s Redis store settings (feature `redis`).
#[cfg(feature = "redis")]
#[derive(Args, Debug)]
struct RedisArgs {
    /// Keep the exchange in this Redis (redis://host:port/db) instead of in
    /// memory, so that several nodes serve one exchange (needs --boss-key,
    /// the same on every node).
    #[arg(long = "redis", env = "EFFEX_REDIS_URL", value_name = "URL")]
    url: Option<String>,
    /// About how many entries (an event, or one sweep's expiries) the Redis
    /// event stream keeps for nodes that reconnect.
    #[arg(
        long = "redis-stream-max-len",
        env = "EFFEX_REDIS_STREAM_MAX_LEN",
        default_value = "100000",
        value_name = "EVENTS"
    )]
    stream_max_len: usize,
    /// The longest a node goes without sweeping Redis for due deadlines (it
    /// also wakes when the next deadline falls due).
    #[arg(long = "redis-sweep-interval", env = "EFFEX_REDIS_SWEEP_INTERVAL", default_value = "0.005", value_name = "DURATION", value_parser = duration)]
    sweep_interval: Duration,
    /// The most due deadlines one sweep handles in one Redis script (1 to
    /// 10,000).
    #[arg(
        long = "redis-sweep-batch",
        env = "EFFEX_REDIS_SWEEP_BATCH",
        default_value = "200",
        value_name = "N"
    )]
    sweep_batch: usize,
    /// How long one Redis call may take before the request fails with 503.
    #[arg(long = "redis-timeout", env = "EFFEX_REDIS_TIMEOUT", default_value = "2", value_name = "DURATION", value_parser = duration)]
    timeout: Duration,
}

#[cfg(feature = "redis")]
impl RedisArgs {
    fn apply(self, config: &mut ServerConfig) {
        config.redis_url = self.url;
        config.redis_stream_max_len = self.stream_max_len;
        config.redis_sweep_interval = self.sweep_interval;
        config.redis_sweep_batch = self.sweep_batch;
        config.redis_timeout = self.timeout;
    }
}

/// `effex serve`'s rate and connection limits; each unset one keeps
/// [`ServerConfig`]'s default.
#[derive(Args, Debug)]
struct LimitArgs {
    /// A reverse proxy (IP or CIDR network) whose X-Forwarded-For names the
    /// client; repeat for several. From other peers the header is ignored.
    #[arg(long = "trusted-proxy", env = "EFFEX_TRUSTED_PROXIES", value_delimiter = ',', value_name = "CIDR", value_parser = network)]
    trusted_proxies: Vec<IpNet>,
    /// HTTP requests per second one client address may make [default: 100000].
    #[arg(long, env = "EFFEX_REQUESTS_PER_SECOND_PER_ADDRESS", value_name = "N")]
    requests_per_second_per_address: Option<u32>,
    /// HTTP requests one client address may make at once [default: 200000].
    #[arg(long, env = "EFFEX_REQUEST_BURST_PER_ADDRESS", value_name = "N")]
    request_burst_per_address: Option<u32>,
    /// Writes and updates per second one access key may make [default: 50000].
    #[arg(long, env = "EFFEX_WRITES_PER_SECOND_PER_KEY", value_name = "N")]
    writes_per_second_per_key: Option<u32>,
    /// Writes and updates one access key may make at once [default: 100000].
    #[arg(long, env = "EFFEX_WRITE_BURST_PER_KEY", value_name = "N")]
    write_burst_per_key: Option<u32>,
    /// Failed authentications (401, refused pass) one address may have at
    /// once before it is locked out [default: 50].
    #[arg(long, env = "EFFEX_FAILED_AUTH_BURST", value_name = "N")]
    failed_auth_burst: Option<u32>,
    /// The wait per further failed authentication after the burst, and the
    /// first lockout; each further lockout doubles [default: 1s].
    #[arg(long, env = "EFFEX_FAILED_AUTH_PERIOD", value_name = "DURATION", value_parser = duration)]
    failed_auth_period: Option<Duration>,
    /// The longest lockout [default: 15m].
    #[arg(long, env = "EFFEX_FAILED_AUTH_MAX_LOCKOUT", value_name = "DURATION", value_parser = duration)]
    failed_auth_max_lockout: Option<Duration>,
    /// Push connections open at once; more get 503 [default: 50000].
    #[arg(long, env = "EFFEX_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,
    /// Push connections open at once from one client address [default: 5000].
    #[arg(long, env = "EFFEX_MAX_CONNECTIONS_PER_ADDRESS", value_name = "N")]
    max_connections_per_address: Option<usize>,
    /// Client addresses (and access keys) each rate table tracks before new
    /// ones share one limit [default: 100000].
    #[arg(long, env = "EFFEX_MAX_TRACKED_CLIENTS", value_name = "N")]
    max_tracked_clients: Option<usize>,
}

impl LimitArgs {
    /// Sets the limits given on `config`.
    fn apply(self, config: &mut ServerConfig) {
        config.trusted_proxies = self.trusted_proxies;
        let counts = [
            (
                self.requests_per_second_per_address,
                &mut config.requests_per_second_per_address,
            ),
            (
                self.request_burst_per_address,
                &mut config.request_burst_per_address,
            ),
            (
                self.writes_per_second_per_key,
                &mut config.writes_per_second_per_key,
            ),
            (self.write_burst_per_key, &mut config.write_burst_per_key),
            (self.failed_auth_burst, &mut config.failed_auth_burst),
        ];
        for (given, field) in counts {
            if let Some(value) = given {
                *field = value;
            }
        }
        let sizes = [
            (self.max_connections, &mut config.max_connections),
            (
                self.max_connections_per_address,
                &mut config.max_connections_per_address,
            ),
            (self.max_tracked_clients, &mut config.max_tracked_clients),
        ];
        for (given, field) in sizes {
            if let Some(value) = given {
                *field = value;
            }
        }
        let durations = [
            (self.failed_auth_period, &mut config.failed_auth_period),
            (
                self.failed_auth_max_lockout,
                &mut config.failed_auth_max_lockout,
            ),
        ];
        for (given, field) in durations {
            if let Some(value) = given {
                *field = value;
            }
        }
    }
}

#[derive(Args, Debug)]
struct KeysArgs {
    /// Which kind of key: writer, reader or updater.
    #[arg(value_name = "TYPE")]
    kind: KeyKind,
    /// How many keys.
    #[arg(long)]
    count: Option<usize>,
    /// How long they live, in seconds (the server's default when not given).
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    seconds: Option<Duration>,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct WriteArgs {
    /// The value as JSON (quote strings: '"text"'); `-` reads it from stdin.
    value: String,
    /// How long the item lives, in seconds (fractions allowed; capped by the server).
    #[arg(long, value_name = "SECONDS", value_parser = seconds)]
    lifetime: Option<Duration>,
    /// A reader key that may read the item (repeat for several).
    #[arg(long = "reader", value_name = "KEY")]
    readers: Vec<String>,
    /// An updater key that may read and update the item (repeat for several).
    #[arg(long = "updater", value_name = "KEY")]
    updaters: Vec<String>,
    /// An alias to point at the new item.
    #[arg(long)]
    alias: Option<String>,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct ReadArgs {
    /// The item's id or alias.
    id: String,
    /// Lock the item for your update (prints an intent id for `update --intent`).
    #[arg(long)]
    intent: bool,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct UpdateArgs {
    /// The item's id or alias.
    id: String,
    /// The new value as JSON; `-` reads it from stdin.
    value: String,
    /// The intent id from `read --intent`, while that intent is in force.
    #[arg(long, value_name = "INTENT_ID")]
    intent: Option<String>,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct IdArgs {
    /// The item's id or alias.
    id: String,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct AliasArgs {
    /// The alias (printable ASCII without / ? # % or spaces).
    alias: String,
    /// The item id (or another alias) to point it at.
    id: String,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct EventsArgs {
    /// The item's id or alias.
    id: String,
    /// Only events after this seq.
    #[arg(long, default_value = "0")]
    since: u64,
    /// Only events of this kind: update, remove or expire.
    #[arg(long, value_name = "KIND")]
    event: Option<EventKind>,
    #[command(flatten)]
    keyed: Keyed,
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// The item's id or alias.
    id: String,
    /// Which events to follow, comma-separated: update, remove, expire.
    #[arg(
        long,
        value_name = "KINDS",
        value_delimiter = ',',
        default_value = "update,remove,expire"
    )]
    event: Vec<EventKind>,
    /// The server's push passphrase (`effex serve --passphrase`).
    #[arg(
        long,
        env = "EFFEX_PASS",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pass: String,
    /// The push id naming this client across reconnects (printable ASCII,
    /// 1 to 128 bytes); a random one by default.
    #[arg(long, env = "EFFEX_PUSH_ID", value_name = "PUSH_ID")]
    push_id: Option<String>,
    /// Update pushes carry the new value.
    #[arg(long)]
    with_value: bool,
    /// Replay every logged event after this seq first (the last seq you handled).
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    #[command(flatten)]
    keyed: Keyed,
}

/// Parses a network (`10.0.0.0/8`) or one address (`10.0.0.1`, as /32 or /128).
fn network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR network (e.g. 10.0.0.0/8)"))
}

/// Parses (fractional) seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text} is not 0 or more seconds"))
}

fn main() -> ExitCode {
    // Before anything allocates much: see its docs (a measured stall).
    effex::server::tune_malloc();
    let cli = match serve_config::parse::<Cli>() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let system = actix_rt::System::new();
    match cli.command {
        Command::Serve(args) => system.block_on(serve(*args)),
        Command::Watch(args) => system.block_on(watch(args)),
        command => system.block_on(client(command)),
    }
}

/// `effex serve`: runs until Ctrl-C (or SIGTERM), then stops gracefully.
async fn serve(args: ServeArgs) -> ExitCode {
    let print_config = args.file.print_config;
    let log_level = args.log_level.clone();
    let generated = args.boss_key.is_none();
    let (config, shown) = match server_config(args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("effex: {message}");
            return ExitCode::FAILURE;
        }
    };
    if print_config {
        print!("{shown}");
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::new().parse_filters(&log_level).init();
    let server = match Server::start(config).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("effex: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "effex {} listening on {} (push: {})",
        env!("CARGO_PKG_VERSION"),
        server.http_url(),
        server.ws_url().split('?').next().unwrap_or_default()
    );
    if generated {
        if let Some(boss_key) = server.boss_key() {
            println!(
                "boss key (generated; set --boss-key or EFFEX_BOSS_KEY to keep one): {boss_key}"
            );
        }
    }
    let reason = stop_signal().await;
    log::info!("{reason}: stopping");
    server.stop().await;
    println!("effex stopped");
    ExitCode::SUCCESS
}

/// The effective [`ServerConfig`] of `effex serve`'s arguments (checked), and
/// its `--print-config` text; the error names the setting and the rule.
fn server_config(args: ServeArgs) -> Result<(ServerConfig, String), String> {
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut config = ServerConfig {
        bind: SocketAddr::new(args.bind, args.port),
        passphrase: args.passphrase,
        boss_key: args.boss_key,
        max_item_size: args.max_item_size,
        max_lifetime: args.max_lifetime,
        intent_max_hold: args.intent_max_hold,
        max_total_bytes: args.max_total_bytes,
        max_items_per_key: args.max_items_per_key,
        max_bytes_per_key: args.max_bytes_per_key,
        max_aliases_per_key: args.max_aliases_per_key,
        workers,
        webhook_allow: args.webhook_allow,
        cors_origins: args.cors_origins,
        webhook_max_per_host: args.webhook_max_per_host,
        max_queued_bytes: args.max_queued_bytes,
        max_watches_per_push_id: args.max_watches_per_push_id,
        max_offline_push_ids: args.max_offline_push_ids,
        max_webhooks_per_key: args.max_webhooks_per_key,
        max_message_size: args.max_message_size,
        metrics_key: args.metrics_key,
        ..ServerConfig::default()
    };
    args.limits.apply(&mut config);
    #[cfg(feature = "redis")]
    args.redis.apply(&mut config);
    args.timers.apply(&mut config);
    args.push.apply(&mut config);
    args.tls.apply(&mut config)?;
    config.validate().map_err(|e| e.to_string())?;
    let shown = serve_config::render(
        &config,
        &serve_config::Shown {
            log_level: &args.log_level,
            tls: &args.tls,
        },
    );
    Ok((config, shown))
}

/// Waits for Ctrl-C, or SIGTERM on Unix (what service managers send).
async fn stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use actix_rt::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                _ = actix_rt::signal::ctrl_c() => "Ctrl-C",
                _ = term.recv() => "SIGTERM",
            };
        }
    }
    let _ = actix_rt::signal::ctrl_c().await;
    "Ctrl-C"
}

/// Runs one client command and prints its reply; the exit code says how it went.
async fn client(command: Command) -> ExitCode {
    match run_client(command).await {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("effex: {message}");
            ExitCode::FAILURE
        }
    }
}

fn connect(target: &Target) -> Result<EffexClient, String> {
    EffexClient::builder(target.url.as_str())
        .timeout(target.timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// `{"ok":true,…}` pretty-printed.
fn printed<T: Serialize>(reply: Result<T, EffexError>) -> Result<String, String> {
    let reply = reply.map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&Success(reply)).map_err(|e| e.to_string())
}

/// A JSON value from the command line, or from stdin for `-`.
fn json_value(text: &str) -> Result<Value, String> {
    let text = if text == "-" {
        let mut input = String::new();
        std::io::stdin()
            .read_to_string(&mut input)
            .map_err(|e| format!("could not read the value from stdin: {e}"))?;
        input
    } else {
        text.to_owned()
    };
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "the value is not JSON ({e}): quote a string as '\"text\"', or pass - to read stdin"
        )
    })
}

async fn run_client(command: Command) -> Result<String, String> {
    match command {
        Command::Serve(_) | Command::Watch(_) => {
            unreachable!("serve and watch are not request-reply commands")
        }
        Command::Ping(target) => {
            #[derive(Serialize)]
            struct Pong {
                value: &'static str,
            }
            connect(&target)?.ping().await.map_err(|e| e.to_string())?;
            printed(Ok(Pong { value: "PONG" }))
        }
        Command::Info(target) => printed(connect(&target)?.info().await),
        Command::Keys(args) => {
            let request = KeysRequest {
                kind: args.kind,
                count: args.count,
                seconds: args.seconds,
            };
            let effex = connect(&args.keyed.target)?;
            printed(effex.make_keys(&args.keyed.key, request).await)
        }
        Command::Write(args) => {
            let item = NewItem {
                value: json_value(&args.value)?,
                lifetime: args.lifetime,
                readers: args.readers,
                updaters: args.updaters,
                alias: args.alias,
            };
            let effex = connect(&args.keyed.target)?;
            printed(effex.write(&args.keyed.key, &item).await)
        }
        Command::Read(args) => {
            let effex = connect(&args.keyed.target)?;
            if args.intent {
                printed(effex.read_with_intent(&args.keyed.key, &args.id).await)
            } else {
                printed(effex.read(&args.keyed.key, &args.id).await)
            }
        }
        Command::Update(args) => {
            let value = json_value(&args.value)?;
            let effex = connect(&args.keyed.target)?;
            printed(
                effex
                    .update(&args.keyed.key, &args.id, value, args.intent.as_deref())
                    .await,
            )
        }
        Command::Remove(args) => {
            let effex = connect(&args.keyed.target)?;
            printed(effex.remove(&args.keyed.key, &args.id).await)
        }
        Command::Alias(args) => {
            let effex = connect(&args.keyed.target)?;
            printed(effex.alias(&args.keyed.key, &args.alias, &args.id).await)
        }
        Command::Events(args) => {
            let effex = connect(&args.keyed.target)?;
            printed(
                effex
                    .events(&args.keyed.key, &args.id, args.since, args.event)
                    .await,
            )
        }
    }
}

/// What the `watch` loop hears from the push handler, the subscriber and the
/// connection.
enum Heard {
    /// A remove or expire push was printed: the item is gone, and with it
    /// every watch of it (protocol.md §2.3).
    Final,
    /// A push could not be written to stdout.
    WriteFailed(std::io::Error),
    Subscriber(SubscriberEvent),
    Connection(ConnectionState),
}

/// Relays subscriber events and connection states to the `watch` loop.
struct Relay(tokio::sync::mpsc::UnboundedSender<Heard>);

impl Actor for Relay {
    type Context = Context<Self>;
}

impl Handler<SubscriberEvent> for Relay {
    type Result = ();
    fn handle(&mut self, event: SubscriberEvent, _: &mut Context<Self>) {
        let _ = self.0.send(Heard::Subscriber(event));
    }
}

impl Handler<ConnectionState> for Relay {
    type Result = ();
    fn handle(&mut self, state: ConnectionState, _: &mut Context<Self>) {
        let _ = self.0.send(Heard::Connection(state));
    }
}

/// How long the goodbye (unwatches, then the Socket.IO disconnect) may take.
const GOODBYE: Duration = Duration::from_secs(2);

/// `effex watch`: subscribes, prints pushes until the item is gone or Ctrl-C.
async fn watch(args: WatchArgs) -> ExitCode {
    match run_watch(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("effex: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_watch(args: WatchArgs) -> Result<(), String> {
    let target = &args.keyed.target;
    // `--url a,b,c`: the nodes to fail over between, in order.
    let urls = target
        .url
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty());
    let mut config = ClientConfig::builder(target.url.as_str())
        .urls(urls)
        .pass(args.pass.as_str())
        .connect_timeout(target.timeout)
        .pass_timeout(target.timeout)
        .ack_timeout(target.timeout);
    if let Some(push_id) = &args.push_id {
        config = config.push_id(push_id.as_str());
    }
    let config = config.build().map_err(|e| e.to_string())?;
    let conn = ConnectionActor::new(config).start();

    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let printer = tx.clone();
    // The subscriber acks a push once this returns: printed (and flushed) first.
    let subscriber = SubscriberActor::with_handler(conn.clone(), move |push: &Push| {
        let mut out = std::io::stdout().lock();
        let written = serde_json::to_writer(&mut out, push)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
            .and_then(|()| out.flush());
        let heard = match written {
            Err(e) => Heard::WriteFailed(e),
            Ok(()) if matches!(push.event, EventKind::Remove | EventKind::Expire) => Heard::Final,
            Ok(()) => return,
        };
        let _ = printer.send(heard);
    });
    let relay = Relay(tx).start();
    let subscriber = subscriber.notify(relay.clone().recipient()).start();

    let mut kinds: Vec<EventKind> = Vec::new();
    for kind in &args.event {
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    let mut watchables = Vec::with_capacity(kinds.len());
    let mut from = u64::MAX;
    let mut outcome = Ok(());
    for &kind in &kinds {
        let mut subscribe = Subscribe::new(kind, args.id.as_str(), args.keyed.key.as_str());
        if args.with_value {
            subscribe = subscribe.with_value();
        }
        if let Some(after) = args.after {
            subscribe = subscribe.after(after);
        }
        match subscriber.send(subscribe).await {
            Ok(Ok(ok)) => {
                from = from.min(args.after.unwrap_or(ok.seq));
                watchables.push(ok.watchable);
            }
            Ok(Err(e)) => {
                outcome = Err(format!("cannot watch {kind} of {}: {e}", args.id));
                break;
            }
            Err(_) => {
                outcome = Err("the subscriber stopped".to_owned());
                break;
            }
        }
    }
    let mut online = !watchables.is_empty();
    if outcome.is_ok() {
        // On stderr, so stdout is pushes only; printed once every watch is in place.
        let kinds: Vec<&str> = kinds.iter().map(|kind| kind.as_str()).collect();
        eprintln!(
            "effex: watching {} of {} after seq {from} (Ctrl-C to stop)",
            kinds.join(", "),
            args.id
        );
        conn.do_send(SubscribeState(relay.recipient()));
        outcome = follow(&args.id, &watchables, &mut heard, &mut online).await;
    }

    // Goodbye: unwatch (a round trip, so the server has read every ack sent
    // before it, the final push's included), then a clean disconnect.
    if online {
        let unwatches = watchables.iter().map(|watchable| {
            subscriber.send(Unsubscribe {
                watchable: watchable.clone(),
            })
        });
        let _ = tokio::time::timeout(GOODBYE, futures_util::future::join_all(unwatches)).await;
    }
    // Answered once the socket is closed.
    let _ = tokio::time::timeout(GOODBYE, conn.send(Stop)).await;
    outcome
}

/// Reports what happens until the watch ends (`Ok`), fails (`Err`) or Ctrl-C.
/// `online` tracks whether the push connection is up.
async fn follow(
    id: &str,
    watchables: &[String],
    heard: &mut tokio::sync::mpsc::UnboundedReceiver<Heard>,
    online: &mut bool,
) -> Result<(), String> {
    // A count, not the watchables: a failover to another node renames them.
    let mut live = watchables.len();
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        let heard = tokio::select! {
            _ = &mut stop => return Ok(()),
            heard = heard.recv() => match heard {
                Some(heard) => heard,
                None => return Err("the subscriber stopped".to_owned()),
            },
        };
        match heard {
            Heard::Final => return Ok(()),
            // `effex watch … | head -n 3`: the reader has seen enough.
            Heard::WriteFailed(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Heard::WriteFailed(e) => return Err(format!("cannot write a push to stdout: {e}")),
            Heard::Subscriber(SubscriberEvent::Ended { error, .. }) => {
                live = live.saturating_sub(1);
                match error {
                    // A re-watch after a reconnect found the item gone.
                    Some(WatchError::Refused { code: 404, message }) => {
                        eprintln!("effex: {id} is gone: {message}");
                    }
                    Some(error) => return Err(format!("the watch of {id} ended: {error}")),
                    None => {}
                }
                if live == 0 {
                    return Ok(());
                }
            }
            Heard::Subscriber(SubscriberEvent::Gap { .. }) => eprintln!(
                "effex: the event log no longer holds every event missed while offline: re-read {id}"
            ),
            Heard::Subscriber(SubscriberEvent::Disconnected(reason)) => {
                *online = false;
                eprintln!("effex: connection lost ({reason}); reconnecting");
            }
            Heard::Subscriber(SubscriberEvent::Reconnected(_)) => {
                eprintln!("effex: reconnected; missed pushes are replayed");
            }
            Heard::Subscriber(other) => log::debug!("subscriber: {other:?}"),
            Heard::Connection(ConnectionState::Connected(_)) => *online = true,
            Heard::Connection(ConnectionState::ConnectFailed(error)) => {
                *online = false;
                if let ConnectError::Rejected { .. } = error {
                    // No automatic retry follows a refusal.
                    return Err(format!("reconnecting failed: {error}"));
                }
                eprintln!("effex: reconnecting failed: {error}; retrying");
            }
            Heard::Connection(_) => {}
        }
    }
}
