// The Node client of effex's comparison harness (issue 9, client workloads):
// socket.io-client 4.8.4 over WebSocket only, the same conversation as
// effex's ConnectionActor + SubscriberActor — pass, watch one item, then ack
// each push after the handler ran.
//
// The handler measures push → handler: the push source (bench/pushsource)
// stamps each push's `at` with CLOCK_MONOTONIC in µs, and process.hrtime
// reads the same clock. When the push for the item "done" arrives it prints
// {"event":"result","pushes":N,"p50_us":…,"p99_us":…} and keeps running (the
// driver stops it; it also exits when its stdin closes).
//
// Usage: node client.js --url=http://127.0.0.1:PORT --pass=P --item=ID --key=K
"use strict";

const { io } = require("socket.io-client");

const opts = {};
for (const arg of process.argv.slice(2)) {
  const m = /^--([^=]+)=(.*)$/.exec(arg);
  if (m) opts[m[1]] = m[2];
}
for (const name of ["url", "pass", "item", "key"]) {
  if (opts[name] === undefined) {
    console.error(`client.js: --${name}=… is required`);
    process.exit(2);
  }
}

// At most this many latency samples are kept (as benchkit::MAX_SAMPLES).
const MAX_SAMPLES = 1 << 20;
const latencies = [];
let pushes = 0;

function monoUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.min(Math.max(Math.ceil(p * sorted.length), 1), sorted.length);
  return sorted[rank - 1];
}

function fail(error) {
  console.error(`client.js: ${error}`);
  console.log(JSON.stringify({ event: "error", error: String(error) }));
  process.exit(1);
}

const socket = io(opts.url, { transports: ["websocket"], reconnection: false });

socket.on("push", (push, ack) => {
  if (push.id === "done") {
    latencies.sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        event: "result",
        pushes,
        p50_us: percentile(latencies, 0.5),
        p99_us: percentile(latencies, 0.99),
      })
    );
  } else {
    pushes += 1;
    if (latencies.length < MAX_SAMPLES) latencies.push(monoUs() - push.at);
  }
  if (typeof ack === "function") ack({ ok: true });
});

socket.on("connect", async () => {
  try {
    const passed = await socket.timeout(30000).emitWithAck("pass", { pass: opts.pass, pushId: "bench-client-node" });
    if (!passed || !passed.ok) return fail(`pass refused: ${JSON.stringify(passed)}`);
    const watched = await socket
      .timeout(30000)
      .emitWithAck("watch", { event: "update", id: opts.item, key: opts.key });
    if (!watched || !watched.ok) return fail(`watch refused: ${JSON.stringify(watched)}`);
    console.log(JSON.stringify({ event: "ready" }));
  } catch (e) {
    fail(e);
  }
});
socket.on("connect_error", (e) => fail(`connect: ${e.message}`));

process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
