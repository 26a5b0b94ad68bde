#!/usr/bin/env node
// The Node peer of the comparison harness (issue 9): a socket.io 4.8.4 server
// speaking the effex pass/watch/push conversation (protocol.md §2.2–§2.4) and
// the REST calls the workloads use (§3: POST /keys, POST /items,
// PUT /items/{id}, GET /ping) on one port.
//
// A trivial in-memory table (items and their last event seq, access keys,
// watches): no lifetimes, permissions beyond "a key this server made", quotas
// or rate limits, and no bound on unacked pushes per connection (each push is
// emitted with an ack callback and socket.io's 30 s ack timeout).
//
//   node server.js [--port=N] [--pass=P] [--boss-key=K]
//                  [--ping-interval=MS] [--ping-timeout=MS]
//
// Prints `{"port":N}` on stdout once listening; exits on SIGTERM/SIGINT or
// when stdin closes.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function fail(message) {
  process.stderr.write(`server.js: ${message}\n`);
  process.exit(2);
}

const opts = {};
for (const arg of process.argv.slice(2)) {
  const m = /^--([a-z-]+)=(.*)$/.exec(arg);
  if (!m) fail(`unknown argument ${JSON.stringify(arg)} (options are --name=value)`);
  opts[m[1]] = m[2];
}
function int(name, fallback) {
  if (opts[name] === undefined) return fallback;
  const n = Number(opts[name]);
  if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a whole number`);
  return n;
}
const port = int("port", 0);
const passphrase = opts["pass"]; // undefined: any pass
const boss = opts["boss-key"] ?? "boss";
const pingInterval = int("ping-interval", 25000);
const pingTimeout = int("ping-timeout", 20000);

let seq = 0;
let nextId = 1;
const keys = new Set();
// item id -> Map(watchable -> socket)
const items = new Map();

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

function failure(res, code, error) {
  reply(res, code, { ok: false, code, error });
}

function bearer(req) {
  const h = req.headers["authorization"] || "";
  return h.startsWith("Bearer ") ? h.slice(7) : undefined;
}

// REST: the calls the workloads use.
function rest(req, res) {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const text = Buffer.concat(chunks).toString("utf8");
    let body = {};
    if (text.length > 0) {
      try {
        body = JSON.parse(text);
      } catch {
        return failure(res, 400, "malformed JSON");
      }
    }
    const url = req.url.split("?")[0];
    if (req.method === "GET" && url === "/ping") {
      return reply(res, 200, { ok: true, value: "PONG" });
    }
    if (req.method === "POST" && url === "/keys") {
      if (bearer(req) !== boss) return failure(res, 401, "boss key required");
      const count = Math.min(Math.max(Number(body.count) || 1, 1), 1000);
      const made = [];
      for (let i = 0; i < count; i++) {
        const key = `k${nextId++}`;
        keys.add(key);
        made.push(key);
      }
      return reply(res, 201, { ok: true, type: body.type, keys: made, validTill: Date.now() + 86400000 });
    }
    if (!keys.has(bearer(req))) return failure(res, 401, "unknown key");
    if (req.method === "POST" && url === "/items") {
      const id = `i${nextId++}`;
      items.set(id, new Map());
      return reply(res, 201, { ok: true, id, lifetime: 86400, modified: Date.now(), seq });
    }
    const m = /^\/items\/([^/]+)$/.exec(url);
    if (req.method === "PUT" && m) {
      const id = decodeURIComponent(m[1]);
      const watches = items.get(id);
      if (!watches) return failure(res, 404, "no such item");
      seq += 1;
      const at = Date.now();
      for (const [watchable, socket] of watches) {
        socket.timeout(30000).emit("push", { watchable, event: "update", id, seq, at }, () => {});
      }
      return reply(res, 200, { ok: true, id, modified: at, seq, size: text.length });
    }
    failure(res, 404, "no such route");
  });
}

const httpServer = http.createServer(rest);
const io = new Server(httpServer, { transports: ["websocket"], pingInterval, pingTimeout });

function validPushId(p) {
  return typeof p === "string" && /^[\x21-\x7e]{1,128}$/.test(p);
}

io.on("connection", (socket) => {
  const mine = new Set(); // item ids this socket watches
  socket.on("pass", (data, ack) => {
    if (typeof ack !== "function") return;
    const pushId = data && data.pushId;
    if (!validPushId(pushId)) {
      ack({ ok: false, code: 400, error: "bad pushId" });
      return socket.disconnect(true);
    }
    if (passphrase !== undefined && (!data || data.pass !== passphrase)) {
      ack({ ok: false, code: 401, error: "bad passphrase" });
      return socket.disconnect(true);
    }
    socket.data.pushId = pushId;
    ack({ ok: true, connection: socket.id, pushId, serverTime: Date.now() });
  });
  socket.on("watch", (data, ack) => {
    if (typeof ack !== "function") return;
    if (socket.data.pushId === undefined) return ack({ ok: false, code: 401, error: "pass first" });
    const id = data && data.id;
    if (!keys.has(data && data.key)) return ack({ ok: false, code: 401, error: "unknown key" });
    const watches = items.get(id);
    if (!watches) return ack({ ok: false, code: 404, error: "no such item" });
    const watchable = `w-${socket.id}-${data.event || "update"}-${id}-${data.key}`;
    watches.set(watchable, socket);
    mine.add(id);
    ack({ ok: true, watchable, seq, gap: false });
  });
  socket.on("disconnect", () => {
    for (const id of mine) {
      const watches = items.get(id);
      if (!watches) continue;
      for (const [w, s] of watches) if (s === socket) watches.delete(w);
    }
  });
});

function shutdown() {
  io.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.stdin.on("end", shutdown);
process.stdin.resume();

httpServer.on("error", (e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));
httpServer.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ port: httpServer.address().port })}\n`);
});
