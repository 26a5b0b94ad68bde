#!/usr/bin/env node
// Node socket.io-client 4.8.4 talking to an effex server, one scenario per run
// (protocol.md §2.1, §2.2).
//
//   node client.js <url> <scenario> [pass] [pushId]
//
// <url>: the server, e.g. ws://127.0.0.1:8150 or the full
//   ws://127.0.0.1:8150/socket.io/?EIO=4&transport=websocket (the path and
//   query are dropped: socket.io-client adds its own, and would otherwise read
//   the path as a namespace).
// <scenario>:
//   pass-event        connect, emit ["pass",{pass,pushId}] with an ack, print the reply
//   pass-auth         connect with auth {pass,pushId}, print {"connected":true,"id":…}
//   wrong-pass-event  like pass-event with a wrong pass, print the 401 reply
//   wrong-pass-auth   like pass-auth with a wrong pass, print the connect_error's {message,data}
// [pass]: the pass to send (wrong-* scenarios default to "not-the-passphrase",
//   the others to ""). [pushId]: defaults to "node-interop-client".
//
// Each run prints exactly one JSON line on stdout and exits 0 on the expected
// outcome. On an unexpected outcome it still prints what it got (when it got
// something), explains on stderr and exits 1; after 5 s without an outcome it
// exits 2.
"use strict";

const { io } = require("socket.io-client");

const TIMEOUT_MS = 5000;
const SCENARIOS = ["pass-event", "pass-auth", "wrong-pass-event", "wrong-pass-auth"];

const [url, scenario, passArg, pushIdArg] = process.argv.slice(2);
if (!url || !SCENARIOS.includes(scenario)) {
  process.stderr.write(`usage: node client.js <url> <${SCENARIOS.join("|")}> [pass] [pushId]\n`);
  process.exit(64);
}
const wrong = scenario.startsWith("wrong-");
const pass = passArg ?? (wrong ? "not-the-passphrase" : "");
const pushId = pushIdArg ?? "node-interop-client";

function origin(raw) {
  let u;
  try {
    u = new URL(raw);
  } catch (e) {
    process.stderr.write(`client.js: bad url ${JSON.stringify(raw)}: ${e.message}\n`);
    process.exit(64);
  }
  const scheme = { "ws:": "http:", "wss:": "https:", "http:": "http:", "https:": "https:" }[u.protocol];
  if (!scheme) {
    process.stderr.write(`client.js: unsupported scheme in ${JSON.stringify(raw)}\n`);
    process.exit(64);
  }
  return `${scheme}//${u.host}`;
}

const useAuth = scenario.endsWith("-auth");
const socket = io(origin(url), {
  transports: ["websocket"],
  reconnection: false,
  timeout: TIMEOUT_MS,
  ...(useAuth ? { auth: { pass, pushId } } : {}),
});

let done = false;
const timer = setTimeout(() => {
  finish(2, null, `no outcome within ${TIMEOUT_MS} ms (socket ${socket.connected ? "connected" : "not connected"})`);
}, TIMEOUT_MS);

// Prints `line` (if any), explains `problem` (if any) and exits with `code`,
// closing the socket first so the server sees an orderly goodbye.
function finish(code, line, problem) {
  if (done) return;
  done = true;
  clearTimeout(timer);
  if (line !== null) process.stdout.write(`${JSON.stringify(line)}\n`);
  if (problem) process.stderr.write(`client.js ${scenario}: ${problem}\n`);
  process.exitCode = code;
  socket.disconnect();
  // Let stdout drain and the goodbye go out, but never linger.
  setTimeout(() => process.exit(code), 200).unref();
}

socket.on("connect", async () => {
  if (useAuth) {
    if (wrong) {
      finish(1, { connected: true, id: socket.id }, "connected although the pass was wrong");
    } else {
      finish(0, { connected: true, id: socket.id });
    }
    return;
  }
  let reply;
  try {
    // timeout(): the promise rejects on a timeout or a disconnect instead of hanging.
    reply = await socket.timeout(TIMEOUT_MS - 500).emitWithAck("pass", { pass, pushId });
  } catch (e) {
    finish(1, null, `no ack to pass: ${e.message}`);
    return;
  }
  if (wrong) {
    if (reply && reply.ok === false && reply.code === 401) finish(0, reply);
    else finish(1, reply, "expected {ok:false, code:401} for a wrong pass");
    return;
  }
  if (!reply || reply.ok !== true) {
    finish(1, reply, "expected {ok:true} for the right pass");
  } else if (reply.connection !== socket.id) {
    finish(1, reply, `reply.connection ${JSON.stringify(reply.connection)} is not the Socket.IO id ${JSON.stringify(socket.id)}`);
  } else if (reply.pushId !== pushId) {
    finish(1, reply, `reply.pushId ${JSON.stringify(reply.pushId)} is not ${JSON.stringify(pushId)}`);
  } else {
    finish(0, reply);
  }
});

socket.on("connect_error", (err) => {
  const line = { message: err.message, data: err.data === undefined ? null : err.data };
  if (scenario === "wrong-pass-auth") finish(0, line);
  else finish(1, line, `connect_error: ${err.message}${err.description ? ` (${err.description.message || err.description})` : ""}`);
});

socket.on("disconnect", (reason) => {
  // A failed pass is answered by the ack and then `41`, often in one read:
  // the ack's promise settles in a microtask, so give it its turn first.
  setImmediate(() => finish(1, null, `disconnected before the outcome: ${reason}`));
});
