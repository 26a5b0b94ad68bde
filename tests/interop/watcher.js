#!/usr/bin/env node
// Node socket.io-client 4.8.4 as an effex push client (protocol.md §2.2–2.4):
// passes, watches, receives pushes and acks them, reconnects and re-watches
// with `after`. Driven by the test one step at a time.
//
//   node watcher.js <url> <pass> <pushId>
//
// <url>: the server, e.g. ws://127.0.0.1:8150 (any path and query are
//   dropped: socket.io-client adds its own).
//
// Commands arrive on stdin, one JSON object per line:
//   {"cmd":"connect"}                  a new socket (forceNew: a new
//                                      Engine.IO connection), then
//                                      ["pass",{pass,pushId}]
//                                      → {"event":"passed","reply":…}
//   {"cmd":"watch","watch":{…},"ack":K} ["watch",{…}] → {"event":"watched","reply":…};
//                                      from then on this connection acks its
//                                      first K pushes ({"ok":true}) and none
//                                      after (no "ack", or null: acks all)
//   {"cmd":"disconnect"}               socket.disconnect() (the client's goodbye)
//   {"cmd":"quit"}                     disconnect if connected → {"event":"bye"}, exit 0
//
// Printed on stdout, one JSON object per line, besides the replies above:
//   {"event":"push","push":{…},"acked":bool}   every push, in arrival order
//   {"event":"disconnected","reason":"…"}     every disconnect, whoever caused it
//   {"event":"error","message":"…"}           then exit 1
//
// The process exits when its stdin closes, so a test that gives up never
// leaves it behind. Every emit has a 5 s ack timeout.
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

const TIMEOUT_MS = 5000;

const [url, pass, pushId] = process.argv.slice(2);
if (!url || pass === undefined || !pushId) {
  process.stderr.write("usage: node watcher.js <url> <pass> <pushId>\n");
  process.exit(64);
}

function origin(raw) {
  const u = new URL(raw);
  const scheme = { "ws:": "http:", "wss:": "https:", "http:": "http:", "https:": "https:" }[u.protocol];
  if (!scheme) throw new Error(`unsupported scheme in ${JSON.stringify(raw)}`);
  return `${scheme}//${u.host}`;
}

function print(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function fail(message) {
  print({ event: "error", message });
  process.stderr.write(`watcher.js: ${message}\n`);
  if (socket) socket.disconnect();
  setTimeout(() => process.exit(1), 200).unref();
}

let target;
try {
  target = origin(url);
} catch (e) {
  process.stderr.write(`watcher.js: bad url ${JSON.stringify(url)}: ${e.message}\n`);
  process.exit(64);
}

/** The current socket (one connection at a time). */
let socket = null;
/** How many more pushes this connection acks (Infinity: all). */
let acksLeft = Infinity;

function connect() {
  if (socket && socket.connected) return fail("connect: already connected");
  acksLeft = Infinity;
  // forceNew: a fresh Manager, so the new socket is a new Engine.IO
  // connection (and a new Socket.IO sid) with the same push id.
  const s = io(target, {
    transports: ["websocket"],
    reconnection: false,
    forceNew: true,
    timeout: TIMEOUT_MS,
  });
  socket = s;
  s.on("push", (push, ack) => {
    if (typeof ack !== "function") return fail(`a push without an ack id: ${JSON.stringify(push)}`);
    const acked = acksLeft > 0;
    if (acked) {
      acksLeft -= 1;
      ack({ ok: true });
    }
    print({ event: "push", push, acked });
  });
  s.on("disconnect", (reason) => print({ event: "disconnected", reason }));
  s.on("connect_error", (err) => fail(`connect_error: ${err.message}`));
  s.once("connect", () => {
    s.timeout(TIMEOUT_MS).emit("pass", { pass, pushId }, (err, reply) => {
      if (err) fail(`no ack to pass: ${err.message}`);
      else print({ event: "passed", reply });
    });
  });
}

// Acks are taken with callbacks, not emitWithAck: a callback runs as soon as
// the ack is read, while a promise settles in a later microtask, after the
// pushes that arrived in the same read (the server acks a watch before its
// first push, and the printed order must show that).
function watch(request, ack) {
  if (!socket || !socket.connected) return fail("watch: not connected");
  // Set before the emit: the server acks the watch before any of its pushes.
  acksLeft = ack === undefined || ack === null ? Infinity : ack;
  socket.timeout(TIMEOUT_MS).emit("watch", request, (err, reply) => {
    if (err) fail(`no ack to watch: ${err.message}`);
    else print({ event: "watched", reply });
  });
}

function quit() {
  if (socket && socket.connected) socket.disconnect();
  print({ event: "bye" });
  // Let stdout drain and the goodbye go out, but never linger.
  setTimeout(() => process.exit(0), 200).unref();
}

const commands = readline.createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (!line.trim()) return;
  let command;
  try {
    command = JSON.parse(line);
  } catch (e) {
    return fail(`a command that is not JSON: ${JSON.stringify(line)}`);
  }
  switch (command.cmd) {
    case "connect":
      return connect();
    case "watch":
      return watch(command.watch, command.ack);
    case "disconnect":
      if (!socket) return fail("disconnect: never connected");
      return socket.disconnect();
    case "quit":
      return quit();
    default:
      return fail(`unknown command ${JSON.stringify(command.cmd)}`);
  }
});
// The test is gone (or done): never outlive it.
commands.on("close", () => {
  if (socket) socket.disconnect();
  setTimeout(() => process.exit(0), 200).unref();
});
