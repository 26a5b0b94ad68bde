// The script of the page on another origin (served by driver.js): what a
// web developer's page does with effex. `io` comes from the socket.io-client
// bundle that effex serves at /console/vendor/socket.io.min.js.
"use strict";

/** Rejects after `ms` with `what`, unless `promise` settles first. */
function within(ms, what, promise) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
  ]);
}

/** fetch() with a key; the reply's status and JSON body. */
async function call(effex, method, route, key, body) {
  const init = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`${effex}${route}`, init);
  return { status: response.status, body: await response.json() };
}

/** Emits `event` with `data` and resolves with the ack's reply. */
function emitWithReply(socket, ms, event, data) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, data, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

window.crossOriginRun = async function ({ effex, writer, reader, stepMs }) {
  const result = { origin: location.origin };
  let written;
  try {
    written = await call(effex, "POST", "/items", writer, { value: { from: "another origin" }, lifetime: 60, readers: [reader] });
    result.write = written;
    result.read = await call(effex, "GET", `/items/${encodeURIComponent(written.body.id)}`, reader);
  } catch (e) {
    // The browser blocked the call (CORS): fetch() rejects with a TypeError.
    result.fetchError = e.name;
    result.message = e.message;
    return result;
  }

  const socket = io(effex, { transports: ["websocket"], reconnection: false, timeout: stepMs });
  try {
    await within(stepMs, "connect", new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    }));
    result.pass = await emitWithReply(socket, stepMs, "pass", { pass: "", pushId: "another-origin-page" });
    const pushed = new Promise((resolve) => {
      socket.on("push", (push, ack) => {
        ack({ ok: true });
        resolve(push);
      });
    });
    result.watch = await emitWithReply(socket, stepMs, "watch", { event: "update", id: written.body.id, key: reader, withValue: true });
    result.update = await call(effex, "PUT", `/items/${encodeURIComponent(written.body.id)}`, writer, { value: { n: 2 } });
    result.push = await within(stepMs, "push", pushed);
  } catch (e) {
    result.socketError = e.message;
  } finally {
    socket.disconnect();
  }
  return result;
};
