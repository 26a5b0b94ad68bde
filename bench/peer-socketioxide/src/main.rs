//! The socketioxide peer of the comparison harness (issue 9): a socketioxide
//! 0.18 server on axum + tokio speaking the effex pass/watch/push
//! conversation (protocol.md §2.2–§2.4) and the REST calls the workloads use
//! (§3: POST /keys, POST /items, PUT /items/{id}, GET /ping) on one port.
//!
//! It keeps a trivial in-memory table (items with a value and their last
//! event seq, access keys, watches); no lifetimes, permissions beyond "a key
//! this server made", quotas or rate limits, and no bound on unacked pushes
//! per connection (pushes are emitted as updates come; each push's ack is
//! awaited with socketioxide's ack timeout, 30 s).
//!
//!   peer-socketioxide [--port N] [--pass P] [--boss-key K]
//!                     [--ping-interval MS] [--ping-timeout MS] [--workers N]
//!
//! Prints `{"port":N}` on stdout once listening; runs until killed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;

#[derive(Clone)]
struct PushId(#[allow(dead_code)] String);

#[derive(Default)]
struct Table {
    keys: HashSet<String>,
    /// item id → its watches: (socket, watchable).
    watches: HashMap<String, Vec<(SocketRef, String)>>,
}

struct Exchange {
    boss: String,
    pass: Option<String>,
    seq: AtomicU64,
    next_id: AtomicU64,
    table: Mutex<Table>,
}

type Shared = Arc<Exchange>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn failure(code: u16, error: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({"ok": false, "code": code, "error": error})),
    )
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

impl Exchange {
    fn known_key(&self, headers: &HeaderMap) -> Option<String> {
        let key = bearer(headers)?;
        let table = self.table.lock().ok()?;
        table.keys.contains(&key).then_some(key)
    }
}

async fn make_keys(
    State(ex): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if bearer(&headers).as_deref() != Some(ex.boss.as_str()) {
        return failure(401, "boss key required");
    }
    let count = body["count"].as_u64().unwrap_or(1).clamp(1, 1000);
    let mut keys = Vec::new();
    let Ok(mut table) = ex.table.lock() else {
        return failure(500, "poisoned");
    };
    for _ in 0..count {
        let key = format!("k{}", ex.next_id.fetch_add(1, Ordering::Relaxed));
        table.keys.insert(key.clone());
        keys.push(key);
    }
    (
        StatusCode::CREATED,
        Json(
            json!({"ok": true, "type": body["type"], "keys": keys, "validTill": now_ms() + 86_400_000}),
        ),
    )
}

async fn write_item(State(ex): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if ex.known_key(&headers).is_none() {
        return failure(401, "unknown key");
    }
    let id = format!("i{}", ex.next_id.fetch_add(1, Ordering::Relaxed));
    let Ok(mut table) = ex.table.lock() else {
        return failure(500, "poisoned");
    };
    table.watches.insert(id.clone(), Vec::new());
    let seq = ex.seq.load(Ordering::SeqCst);
    (
        StatusCode::CREATED,
        Json(json!({"ok": true, "id": id, "lifetime": 86400, "modified": now_ms(), "seq": seq})),
    )
}

/// PUT /items/{id}: a new event seq, then one push (with an ack id) to each
/// watch of the item; each ack is awaited on a task of its own.
async fn update_item(
    State(ex): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    if ex.known_key(&headers).is_none() {
        return failure(401, "unknown key");
    }
    let size = body.len();
    let at = now_ms();
    let Ok(table) = ex.table.lock() else {
        return failure(500, "poisoned");
    };
    let Some(watches) = table.watches.get(&id) else {
        return failure(404, "no such item");
    };
    let seq = ex.seq.fetch_add(1, Ordering::SeqCst) + 1;
    for (socket, watchable) in watches {
        let push =
            json!({"watchable": watchable, "event": "update", "id": id, "seq": seq, "at": at});
        if let Ok(ack) = socket.emit_with_ack::<_, Value>("push", &push) {
            tokio::spawn(async move {
                let _ = ack.await;
            });
        }
    }
    (
        StatusCode::OK,
        Json(json!({"ok": true, "id": id, "modified": at, "seq": seq, "size": size})),
    )
}

fn on_connect(socket: SocketRef, ex: Shared) {
    let pass_ex = ex.clone();
    socket.on(
        "pass",
        move |s: SocketRef, Data(data): Data<Value>, ack: AckSender| {
            let ex = pass_ex.clone();
            async move {
                let push_id = data["pushId"].as_str().unwrap_or("");
                let valid = (1..=128).contains(&push_id.len())
                    && push_id.bytes().all(|b| (0x21..=0x7e).contains(&b));
                if !valid {
                    let _ = ack.send(&json!({"ok": false, "code": 400, "error": "bad pushId"}));
                    let _ = s.disconnect();
                    return;
                }
                if let Some(pass) = &ex.pass {
                    if data["pass"].as_str() != Some(pass.as_str()) {
                        let _ =
                            ack.send(&json!({"ok": false, "code": 401, "error": "bad passphrase"}));
                        let _ = s.disconnect();
                        return;
                    }
                }
                s.extensions.insert(PushId(push_id.to_string()));
                let _ = ack.send(&json!({"ok": true, "connection": s.id.to_string(), "pushId": push_id, "serverTime": now_ms()}));
            }
        },
    );
    let watch_ex = ex.clone();
    socket.on(
        "watch",
        move |s: SocketRef, Data(data): Data<Value>, ack: AckSender| {
            let ex = watch_ex.clone();
            async move {
                if s.extensions.get::<PushId>().is_none() {
                    let _ = ack.send(&json!({"ok": false, "code": 401, "error": "pass first"}));
                    return;
                }
                let id = data["id"].as_str().unwrap_or("").to_string();
                let key = data["key"].as_str().unwrap_or("");
                let event = data["event"].as_str().unwrap_or("update");
                let reply = match ex.table.lock() {
                    Err(_) => json!({"ok": false, "code": 500, "error": "poisoned"}),
                    Ok(mut table) => {
                        if !table.keys.contains(key) {
                            json!({"ok": false, "code": 401, "error": "unknown key"})
                        } else if let Some(watches) = table.watches.get_mut(&id) {
                            let watchable = format!("w-{}-{event}-{id}-{key}", s.id);
                            if !watches.iter().any(|(_, w)| *w == watchable) {
                                watches.push((s.clone(), watchable.clone()));
                            }
                            json!({"ok": true, "watchable": watchable, "seq": ex.seq.load(Ordering::SeqCst), "gap": false})
                        } else {
                            json!({"ok": false, "code": 404, "error": "no such item"})
                        }
                    }
                };
                let _ = ack.send(&reply);
            }
        },
    );
    let gone_ex = ex;
    socket.on_disconnect(move |s: SocketRef| {
        let ex = gone_ex.clone();
        async move {
            if let Ok(mut table) = ex.table.lock() {
                for watches in table.watches.values_mut() {
                    watches.retain(|(w, _)| w.id != s.id);
                }
            }
        }
    });
}

struct Args {
    port: u16,
    pass: Option<String>,
    boss: String,
    ping_interval: u64,
    ping_timeout: u64,
    workers: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        pass: None,
        boss: "boss".into(),
        ping_interval: 25_000,
        ping_timeout: 20_000,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(name) = it.next() {
        let value = it.next().ok_or_else(|| format!("{name} needs a value"))?;
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name} {v:?} is not a whole number"))
        };
        match name.as_str() {
            "--port" => args.port = number(&value)? as u16,
            "--pass" => args.pass = Some(value),
            "--boss-key" => args.boss = value,
            "--ping-interval" => args.ping_interval = number(&value)?,
            "--ping-timeout" => args.ping_timeout = number(&value)?,
            "--workers" => args.workers = number(&value)?.max(1) as usize,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("peer-socketioxide: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peer-socketioxide: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(args)) {
        eprintln!("peer-socketioxide: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let ex: Shared = Arc::new(Exchange {
        boss: args.boss,
        pass: args.pass,
        seq: AtomicU64::new(0),
        next_id: AtomicU64::new(1),
        table: Mutex::new(Table::default()),
    });
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_millis(args.ping_interval))
        .ping_timeout(Duration::from_millis(args.ping_timeout))
        .ack_timeout(Duration::from_secs(30))
        // Room for a burst of pushes per socket (the default, 128 packets,
        // refuses emits under the throughput workloads).
        .max_buffer_size(1 << 20)
        .build_layer();
    // The event handlers are registered in a connect *middleware*: socketioxide
    // 0.18 sends the CONNECT reply (`40{sid}`) and only then spawns the connect
    // handler, so handlers registered there can miss an event the client sends
    // right after `40` (seen with the load generator's immediate `pass`). A
    // middleware runs before the CONNECT reply is sent.
    let ns_ex = ex.clone();
    let register = move |socket: SocketRef| {
        let ex = ns_ex.clone();
        async move {
            on_connect(socket, ex);
            Ok::<(), std::convert::Infallible>(())
        }
    };
    io.ns("/", (|_: SocketRef| async {}).with(register));
    let app = Router::new()
        .route(
            "/ping",
            get(|| async { Json(json!({"ok": true, "value": "PONG"})) }),
        )
        .route("/keys", post(make_keys))
        .route("/items", post(write_item))
        .route("/items/{id}", put(update_item))
        .with_state(ex)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", args.port))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    // Without TCP_NODELAY small frames wait for the peer's delayed ACK (40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    println!("{}", json!({"port": port}));
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serve: {e}"))
}
