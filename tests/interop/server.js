#!/usr/bin/env node
// A Node socket.io 4.8.4 server speaking the effex pass conversation
// (protocol.md §2.1, §2.2, §2.6), for testing effex's Rust client against the
// real thing.
//
//   node server.js [--pass=SECRET] [--ping-interval=MS] [--ping-timeout=MS]
//                  [--pass-timeout=MS] [--port=N] [--verbose]
//
// Every option can also come from the environment: EFFEX_PASS,
// EFFEX_PING_INTERVAL, EFFEX_PING_TIMEOUT, EFFEX_PASS_TIMEOUT, EFFEX_PORT,
// EFFEX_VERBOSE=1 (arguments win). Without a passphrase any pass is accepted.
//
// It listens on 127.0.0.1 (port 0 by default: the OS picks one) and prints
// one line `{"port":N}` on stdout once listening. It exits when its stdin
// closes or on SIGTERM / SIGINT. Logs go to stderr.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = {};
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) {
      fail(`unknown argument ${JSON.stringify(arg)} (see the usage at the top of server.js)`);
    }
    opts[m[1]] = m[2] === undefined ? "1" : m[2];
  }
  return opts;
}

function fail(message) {
  process.stderr.write(`server.js: ${message}\n`);
  process.exit(2);
}

function intOption(value, name, fallback) {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`${name} must be a whole number, got ${JSON.stringify(value)}`);
  return n;
}

const args = parseArgs(process.argv.slice(2));
const env = process.env;
const passphrase = args["pass"] ?? env.EFFEX_PASS; // undefined: accept any pass
const pingInterval = intOption(args["ping-interval"] ?? env.EFFEX_PING_INTERVAL, "ping-interval", 25000);
const pingTimeout = intOption(args["ping-timeout"] ?? env.EFFEX_PING_TIMEOUT, "ping-timeout", 20000);
const passTimeout = intOption(args["pass-timeout"] ?? env.EFFEX_PASS_TIMEOUT, "pass-timeout", 10000);
const port = intOption(args["port"] ?? env.EFFEX_PORT, "port", 0);
const verboseOption = args["verbose"] ?? env.EFFEX_VERBOSE ?? "";
const verbose = verboseOption !== "" && verboseOption !== "0";

function log(message) {
  if (verbose) process.stderr.write(`server.js: ${message}\n`);
}

// protocol.md §2.2: 1 to 128 bytes of printable ASCII (0x21-0x7E).
function isValidPushId(pushId) {
  return typeof pushId === "string" && /^[\x21-\x7e]{1,128}$/.test(pushId);
}

// The pushId first (400), then the passphrase (401), as the effex server does.
function checkPass(pass, pushId) {
  if (!isValidPushId(pushId)) return { ok: false, code: 400, error: "bad pushId" };
  if (passphrase !== undefined && pass !== passphrase) {
    return { ok: false, code: 401, error: "bad passphrase" };
  }
  return null;
}

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  pingInterval,
  pingTimeout,
});

// push id -> the socket that passed with it (a newer pass replaces the older).
const byPushId = new Map();

function accept(socket, pushId) {
  socket.data.pushId = pushId;
  const older = byPushId.get(pushId);
  byPushId.set(pushId, socket);
  if (older && older !== socket && older.connected) {
    log(`${older.id}: replaced by ${socket.id} (pushId ${pushId})`);
    older.disconnect(true);
  }
  log(`${socket.id}: passed as ${pushId}`);
}

// The pass inside CONNECT (socket.io-client's `auth`), protocol.md §2.1.
io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  if (auth.pass === undefined) return next(); // plain CONNECT: a `pass` event must follow
  const failure = checkPass(auth.pass, auth.pushId);
  if (failure) {
    log(`CONNECT refused: ${failure.error}`);
    const err = new Error(failure.error);
    err.data = { code: failure.code };
    return next(err);
  }
  socket.data.authPushId = auth.pushId;
  next();
});

io.on("connection", (socket) => {
  log(`${socket.id}: connected (engine ${socket.conn.id}, auth ${socket.data.authPushId ? "yes" : "no"})`);
  if (socket.data.authPushId !== undefined) {
    accept(socket, socket.data.authPushId);
  }
  const passTimer = setTimeout(() => {
    if (socket.data.pushId === undefined && socket.connected) {
      log(`${socket.id}: no pass within ${passTimeout} ms`);
      socket.disconnect(true);
    }
  }, passTimeout);

  socket.on("pass", (data, ack) => {
    if (typeof ack !== "function") {
      log(`${socket.id}: ignored pass without an ack id`);
      return;
    }
    const pass = data && typeof data === "object" ? data.pass : undefined;
    const pushId = data && typeof data === "object" ? data.pushId : undefined;
    const failure = checkPass(pass, pushId);
    if (failure) {
      log(`${socket.id}: pass refused: ${failure.error}`);
      ack(failure);
      // The ack is written before the `41`; engine.io flushes before closing.
      socket.disconnect(true);
      return;
    }
    const current = socket.data.pushId;
    if (current !== undefined && current !== pushId) {
      ack({ ok: false, code: 409, error: `already passed as pushId ${JSON.stringify(current)}` });
      return;
    }
    if (current === undefined) accept(socket, pushId);
    ack({ ok: true, connection: socket.id, pushId, serverTime: Date.now() });
  });

  // Every other event. onAny sees the ack callback as the last argument.
  socket.onAny((event, ...rest) => {
    if (event === "pass") return;
    const ack = rest.length > 0 && typeof rest[rest.length - 1] === "function" ? rest.pop() : undefined;
    if (!ack) {
      log(`${socket.id}: ignored event ${JSON.stringify(event)} without an ack id`);
      return;
    }
    if (socket.data.pushId === undefined) {
      ack({ ok: false, code: 401, error: "pass first" });
    } else {
      ack({ ok: false, code: 400, error: `unknown event ${JSON.stringify(event)}` });
    }
  });

  socket.on("disconnect", (reason) => {
    clearTimeout(passTimer);
    if (socket.data.pushId !== undefined && byPushId.get(socket.data.pushId) === socket) {
      byPushId.delete(socket.data.pushId);
    }
    log(`${socket.id}: disconnected (${reason})`);
  });
});

let stopping = false;
function shutdown(why) {
  if (stopping) return;
  stopping = true;
  log(`shutting down (${why})`);
  io.close(() => process.exit(0));
  // Never hang on a stuck socket.
  setTimeout(() => process.exit(0), 1000).unref();
}

process.on("SIGTERM", () => shutdown("SIGTERM"));
process.on("SIGINT", () => shutdown("SIGINT"));
process.stdin.on("end", () => shutdown("stdin closed"));
process.stdin.on("close", () => shutdown("stdin closed"));
process.stdin.on("error", () => shutdown("stdin error"));
process.stdin.resume();

httpServer.on("error", (e) => fail(`cannot listen on 127.0.0.1:${port}: ${e.message}`));
httpServer.listen(port, "127.0.0.1", () => {
  const { port: bound } = httpServer.address();
  log(`listening on 127.0.0.1:${bound} (pingInterval ${pingInterval} ms, pingTimeout ${pingTimeout} ms, passphrase ${passphrase === undefined ? "none" : "set"})`);
  process.stdout.write(`${JSON.stringify({ port: bound })}\n`);
});
