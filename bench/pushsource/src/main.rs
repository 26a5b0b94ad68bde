//! The lean push source of the comparison harness (issue 9, client
//! workloads): the server side reduced to raw frames, so that a client
//! workload measures the client. One tokio thread, one accepted WebSocket
//! (tokio-tungstenite), just enough Engine.IO v4 / Socket.IO v5: the open
//! packet, CONNECT, `pass` and one `watch` answered `{ok:true…}`; then
//! pushes `42<ack>["push",{watchable,event,id,seq,at}]` with ack ids, each
//! `at` stamped with CLOCK_MONOTONIC in µs (benchkit::mono_us) so the client
//! can measure push → handler; acks are matched by id (push → ack).
//!
//! Workloads (after the driver's `go`):
//! - `rate`: as many pushes as acks allow for `--seconds`, at most `--window`
//!   unacked (default 1,000: effex's server keeps at most that many in flight
//!   per connection); figure: acked pushes/s;
//! - `paced`: `--rate` pushes/s for `--seconds` (tokio's timer has 1 ms
//!   resolution: they leave in 1 ms batches), same window; figure: push → ack
//!   p50/p99.
//!
//! Then one last push for the item `done` (the client's handler then prints
//! its own figures), and `{"event":"result",…}` on stdout with this process's
//! CPU time over the measured phase.
//!
//! Talks to the driver in JSON lines: prints `{"event":"listening","port":P}`,
//! `{"event":"ready"}` once the client watched, reads `go` on stdin, prints
//! the result, and exits when stdin closes.
//!
//! Usage: pushsource --workload rate|paced [--seconds S] [--rate R] [--window W]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// How long the client may take for one step (connect, pass, watch, an ack).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// The watchable this source hands out for the one watch.
const WATCHABLE: &str = "w1";

struct Opts {
    workload: String,
    seconds: f64,
    rate: f64,
    window: usize,
}

fn parse_opts() -> Result<Opts, String> {
    let map = benchkit::option_map()?;
    let num = |name: &str, default: f64| -> Result<f64, String> {
        map.get(name).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("--{name} {v:?} is not a number"))
        })
    };
    let workload = map
        .get("workload")
        .cloned()
        .unwrap_or_else(|| "rate".into());
    if workload != "rate" && workload != "paced" {
        return Err(format!("unknown workload {workload:?} (rate, paced)"));
    }
    Ok(Opts {
        workload,
        seconds: num("seconds", 5.0)?,
        rate: num("rate", 10_000.0)?,
        window: (num("window", 1_000.0)? as usize).max(1),
    })
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => fail(&e, 2),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the runtime: {e}"), 1));
    if let Err(e) = runtime.block_on(run(opts)) {
        fail(&e, 1);
    }
    std::process::exit(0);
}

fn fail(error: &str, code: i32) -> ! {
    eprintln!("pushsource: {error}");
    println!("{{\"event\":\"error\",\"error\":{error:?}}}");
    std::process::exit(code)
}

async fn run(opts: Opts) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("{{\"event\":\"listening\",\"port\":{port}}}");
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let (tcp, _) = tokio::time::timeout(STEP_TIMEOUT, listener.accept())
        .await
        .map_err(|_| format!("no client connected within {STEP_TIMEOUT:?}"))?
        .map_err(|e| format!("accept: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(benchkit::WS_READ_BUFFER);
    let mut ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade: {e}"))?;
    handshake(&mut ws).await?;
    println!("{{\"event\":\"ready\"}}");
    loop {
        match stdin.next_line().await {
            Ok(Some(line)) if line.trim() == "go" => break,
            Ok(Some(_)) => continue,
            _ => return Err("stdin closed before `go`".into()),
        }
    }
    let cpu0 = benchkit::cpu_us();
    let wall0 = Instant::now();
    let mut pusher = Pusher::new(opts.window);
    let stop_at = wall0 + Duration::from_secs_f64(opts.seconds);
    if opts.workload == "rate" {
        pusher.run_rate(&mut ws, stop_at).await?;
    } else {
        pusher.run_paced(&mut ws, wall0, opts.rate, stop_at).await?;
    }
    pusher.drain(&mut ws).await?;
    let wall = wall0.elapsed();
    let cpu = benchkit::cpu_us() - cpu0;
    // The last push: the client's handler reports when it handles it.
    pusher.send(&mut ws, "done").await?;
    ws.flush().await.map_err(|e| format!("send: {e}"))?;
    pusher.drain(&mut ws).await?;
    let mut latencies = std::mem::take(&mut pusher.latencies);
    latencies.sort_unstable();
    println!(
        "{{\"event\":\"result\",\"pushes\":{},\"acked\":{},\"pushes_per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\"wall_us\":{},\"source_cpu_us\":{cpu}}}",
        pusher.sent - 1,
        pusher.acked - 1,
        (pusher.acked - 1) as f64 / wall.as_secs_f64(),
        benchkit::percentile(&latencies, 0.50),
        benchkit::percentile(&latencies, 0.99),
        wall.as_micros(),
    );
    // Hold the connection until the driver closes stdin.
    while let Ok(Some(_)) = stdin.next_line().await {}
    Ok(())
}

/// Reads the next text frame (within STEP_TIMEOUT).
async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        let frame = tokio::time::timeout(STEP_TIMEOUT, ws.next())
            .await
            .map_err(|_| format!("the client sent nothing within {STEP_TIMEOUT:?}"))?;
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_string()),
            Some(Ok(Message::Close(_))) | None => return Err("the client closed".into()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("reading: {e}")),
        }
    }
}

async fn send_text(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// `42<id>["<event>",…]` → (id, event).
fn event_of(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix("42")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let name = rest[digits..].strip_prefix("[\"")?;
    let end = name.find('"')?;
    Some((&rest[..digits], &name[..end]))
}

/// Engine.IO open, CONNECT, then `pass` and one `watch` answered ok. The
/// heartbeat is long enough that no ping is due during a run.
async fn handshake(ws: &mut Ws) -> Result<(), String> {
    send_text(
        ws,
        r#"0{"sid":"bench-eio","upgrades":[],"pingInterval":300000,"pingTimeout":60000,"maxPayload":1000000}"#.into(),
    )
    .await?;
    let connect = next_text(ws).await?;
    if !connect.starts_with("40") {
        return Err(format!("expected CONNECT (40…), got {connect:?}"));
    }
    send_text(ws, r#"40{"sid":"bench-sio"}"#.into()).await?;
    let mut watched = false;
    while !watched {
        let text = next_text(ws).await?;
        let Some((id, event)) = event_of(&text) else {
            continue;
        };
        let reply = match event {
            "pass" => format!(
                r#"43{id}[{{"ok":true,"connection":"bench-sio","pushId":"bench","serverTime":0}}]"#
            ),
            "watch" => {
                watched = true;
                format!(r#"43{id}[{{"ok":true,"watchable":"{WATCHABLE}","seq":0,"gap":false}}]"#)
            }
            other => {
                format!(r#"43{id}[{{"ok":false,"code":400,"error":"no handler for {other}"}}]"#)
            }
        };
        send_text(ws, reply).await?;
    }
    Ok(())
}

/// Sends pushes and matches their acks.
struct Pusher {
    window: usize,
    /// Send time of each unacked push, by ack id modulo the window (at most
    /// `window` are unacked, so two never share a slot).
    sent_at: Vec<Instant>,
    sent: u64,
    acked: u64,
    latencies: Vec<u64>,
}

impl Pusher {
    fn new(window: usize) -> Self {
        Self {
            window,
            sent_at: vec![Instant::now(); window],
            sent: 0,
            acked: 0,
            latencies: Vec::with_capacity(1 << 16),
        }
    }

    fn unacked(&self) -> usize {
        (self.sent - self.acked) as usize
    }

    /// Queues one push (ack id = seq = the count sent so far); not flushed.
    async fn send(&mut self, ws: &mut Ws, item: &str) -> Result<(), String> {
        self.sent += 1;
        let seq = self.sent;
        self.sent_at[(seq % self.window as u64) as usize] = Instant::now();
        let frame = format!(
            r#"42{seq}["push",{{"watchable":"{WATCHABLE}","event":"update","id":"{item}","seq":{seq},"at":{}}}]"#,
            benchkit::mono_us()
        );
        ws.feed(Message::text(frame))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// Handles one frame from the client: an ack (`43<id>[…]`) is counted and
    /// timed; anything else is ignored.
    fn on_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Result<(), String> {
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err("the client closed".into()),
            Some(Ok(_)) => return Ok(()),
            Some(Err(e)) => return Err(format!("reading: {e}")),
        };
        let Some(rest) = text.as_str().strip_prefix("43") else {
            return Ok(());
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(id) = rest[..digits].parse::<u64>() else {
            return Ok(());
        };
        if id == 0 || id > self.sent || self.sent - id >= self.window as u64 {
            return Ok(());
        }
        self.acked += 1;
        if self.latencies.len() < benchkit::MAX_SAMPLES {
            let at = self.sent_at[(id % self.window as u64) as usize];
            self.latencies.push(at.elapsed().as_micros() as u64);
        }
        Ok(())
    }

    /// As many pushes as the window allows until `stop_at`.
    async fn run_rate(&mut self, ws: &mut Ws, stop_at: Instant) -> Result<(), String> {
        while Instant::now() < stop_at {
            while self.unacked() < self.window {
                self.send(ws, "bench").await?;
            }
            ws.flush().await.map_err(|e| format!("send: {e}"))?;
            let frame = tokio::time::timeout(STEP_TIMEOUT, ws.next())
                .await
                .map_err(|_| format!("no ack within {STEP_TIMEOUT:?}"))?;
            self.on_frame(frame)?;
        }
        Ok(())
    }

    /// `rate` pushes/s until `stop_at`, reading acks between ticks; a push
    /// that is due while the window is full waits for room.
    async fn run_paced(
        &mut self,
        ws: &mut Ws,
        start: Instant,
        rate: f64,
        stop_at: Instant,
    ) -> Result<(), String> {
        let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let now = Instant::now();
            if now >= stop_at {
                return Ok(());
            }
            let due = (now.duration_since(start).as_secs_f64() / interval.as_secs_f64()) as u64 + 1;
            let mut queued = false;
            while self.sent < due && self.unacked() < self.window {
                self.send(ws, "bench").await?;
                queued = true;
            }
            if queued {
                ws.flush().await.map_err(|e| format!("send: {e}"))?;
            }
            tokio::select! {
                frame = ws.next() => self.on_frame(frame)?,
                _ = tick.tick() => {}
            }
        }
    }

    /// Waits until every push sent is acked.
    async fn drain(&mut self, ws: &mut Ws) -> Result<(), String> {
        while self.acked < self.sent {
            let frame = tokio::time::timeout(STEP_TIMEOUT, ws.next())
                .await
                .map_err(|_| {
                    format!(
                        "{} pushes unacked after {STEP_TIMEOUT:?}",
                        self.sent - self.acked
                    )
                })?;
            self.on_frame(frame)?;
        }
        Ok(())
    }
}
