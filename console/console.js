// The effex live console (served at /console, embedded in the binary).
//
// A plain push client of the ordinary conversation (protocol.md §2) through
// the vendored socket.io-client: connect to this page's own origin, `pass`
// with a push id of its own, `watch` each item for update (with its value),
// remove and expire, ack every push once it is shown. After a reconnect it
// passes and watches again with `after` = the last seq it showed, so nothing
// is missed or shown twice.
//
// Everything that comes from the network or the form is put into the page
// with textContent, never as HTML. Every list fed from the network is
// bounded: at most MAX_ROWS table rows (the oldest go), CHART_SECONDS chart
// buckets, MAX_ITEMS watched items.
"use strict";

(function () {
  const MAX_ROWS = 500;
  const MAX_ITEMS = 50;
  const MAX_VALUE_CHARS = 120;
  const CHART_SECONDS = 60;
  const METRICS_EVERY_MS = 5000;
  const ACK_TIMEOUT_MS = 10000;
  const KINDS = ["update", "remove", "expire"];
  /** The Prometheus series shown, and where. */
  const FIGURES = {
    effex_connections_open: "metric-connections",
    effex_pushes_sent_total: "metric-pushes",
    effex_items_stored: "metric-items",
  };

  const $ = (id) => document.getElementById(id);
  const form = $("watch-form");
  const status = $("status");
  const tbody = document.querySelector("#pushes tbody");

  /** The live socket, or null. */
  let socket = null;
  /** One entry per (kind, item): {kind, item, after, watchable, li}. */
  let watches = [];
  /** watchable -> its watch, for pushes and `ended`. */
  let byWatchable = new Map();
  let pushCount = 0;

  $("server-origin").textContent = location.origin;

  function setStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  /** The ids or aliases typed, trimmed, without repeats. */
  function parseItems(text) {
    const items = [];
    for (const part of text.split(/[\s,]+/)) {
      if (part && !items.includes(part)) items.push(part);
    }
    return items;
  }

  /** A push id of this page: printable ASCII, random, ≤ 128 bytes. */
  function newPushId() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "console-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function showWatch(watch, text, failed) {
    watch.li.textContent = `${watch.kind} ${watch.item}: ${text}`;
    watch.li.classList.toggle("failed", Boolean(failed));
  }

  // -------------------------------------------------------------------------
  // The conversation

  function connect(event) {
    event.preventDefault();
    disconnect();
    const key = $("reader-key").value.trim();
    const items = parseItems($("items").value);
    if (!key || items.length === 0) {
      setStatus("error", "Give a reader key and at least one item id or alias.");
      return;
    }
    if (items.length > MAX_ITEMS) {
      setStatus("error", `At most ${MAX_ITEMS} items at once (${items.length} given).`);
      return;
    }
    const list = $("watch-list");
    list.replaceChildren();
    watches = [];
    for (const item of items) {
      for (const kind of KINDS) {
        const li = document.createElement("li");
        list.append(li);
        // after: the last seq shown; since: the store's seq when first watched
        // (a re-watch from there replays what came while disconnected).
        const watch = { kind, item, after: null, since: null, watchable: null, li };
        showWatch(watch, "waiting");
        watches.push(watch);
      }
    }
    const pass = $("passphrase").value;
    const pushId = newPushId();
    setStatus("connecting", `Connecting to ${location.origin} …`);
    // Same origin; WebSocket only (effex serves no polling transport).
    const s = io({ transports: ["websocket"], timeout: ACK_TIMEOUT_MS });
    socket = s;
    $("connect").disabled = true;
    $("disconnect").disabled = false;
    s.on("connect", () => passThenWatch(s, pass, pushId, key));
    s.on("connect_error", (err) => setStatus("error", `Cannot connect: ${err.message} (retrying)`));
    s.on("disconnect", (reason) => {
      if (socket !== s) return;
      setStatus("connecting", `Disconnected (${reason}); reconnecting …`);
      // socket.io-client reconnects by itself except after the server's own
      // goodbye (`41`: the server stopped or restarted): then ask again; its
      // backoff applies if the server is not back yet.
      if (reason === "io server disconnect") s.connect();
    });
    s.on("push", (push, ack) => onPush(push, ack));
    s.on("ended", (end) => {
      const watch = end && byWatchable.get(end.watchable);
      if (watch) {
        byWatchable.delete(end.watchable);
        showWatch(watch, `ended by the server: ${end.code} ${end.error}`, true);
      }
    });
  }

  function disconnect() {
    if (socket) {
      const s = socket;
      socket = null;
      s.disconnect();
      setStatus("idle", "Not connected.");
    }
    byWatchable = new Map();
    $("connect").disabled = false;
    $("disconnect").disabled = true;
  }

  function passThenWatch(s, pass, pushId, key) {
    setStatus("connecting", "Connected; passing …");
    s.timeout(ACK_TIMEOUT_MS).emit("pass", { pass, pushId }, (err, reply) => {
      if (s !== socket) return;
      if (err) return setStatus("error", "The server did not answer the pass.");
      if (!reply || !reply.ok) {
        // A refused pass is final: the server closes the socket.
        disconnect();
        return setStatus("error", `Pass refused: ${reply && reply.code} ${reply && reply.error}`);
      }
      watchAll(s, key);
    });
  }

  function watchAll(s, key) {
    setStatus("connecting", "Passed; watching …");
    byWatchable = new Map();
    let answered = 0;
    let ok = 0;
    for (const watch of watches) {
      const request = { event: watch.kind, id: watch.item, key, withValue: watch.kind === "update" };
      const after = watch.after !== null ? watch.after : watch.since;
      if (after !== null) request.after = after;
      s.timeout(ACK_TIMEOUT_MS).emit("watch", request, (err, reply) => {
        if (s !== socket) return;
        answered += 1;
        if (err) {
          showWatch(watch, "no answer from the server", true);
        } else if (!reply || !reply.ok) {
          showWatch(watch, `refused: ${reply && reply.code} ${reply && reply.error}`, true);
        } else {
          ok += 1;
          watch.watchable = reply.watchable;
          if (watch.since === null && Number.isSafeInteger(reply.seq)) watch.since = reply.seq;
          byWatchable.set(reply.watchable, watch);
          showWatch(watch, reply.gap ? "watching (some earlier events are gone)" : "watching");
        }
        if (answered === watches.length) {
          if (ok === 0) setStatus("error", "No watch was accepted: see the list.");
          else setStatus("watching", `Watching ${ok} of ${watches.length} (item, event) pairs.`);
        }
      });
    }
  }

  function onPush(push, ack) {
    const watch = push && byWatchable.get(push.watchable);
    // A replayed push already shown (after a reconnect) is acked, not shown again.
    if (watch && (watch.after === null || push.seq > watch.after)) {
      watch.after = push.seq;
      showRow(push);
    }
    if (typeof ack === "function") ack({ ok: true });
  }

  // -------------------------------------------------------------------------
  // The table and the chart

  function formatValue(push) {
    if (!("value" in push)) {
      // Updates are watched withValue; a replayed one (after a reconnect)
      // comes without it unless it is still the item's current value: the
      // event log keeps no values.
      return push.event === "update" ? "— (older value, not kept)" : "—";
    }
    const text = JSON.stringify(push.value);
    return text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS) + "…" : text;
  }

  function showRow(push) {
    const now = Date.now();
    const row = document.createElement("tr");
    row.className = push.event;
    const cells = [
      ["time", new Date(push.at).toISOString().slice(11, 23)],
      ["item", push.alias || push.id],
      ["event", push.event],
      ["seq", String(push.seq)],
      ["value", formatValue(push)],
      ["latency", `${Math.max(0, now - push.at)} ms`],
    ];
    for (const [name, text] of cells) {
      const cell = document.createElement("td");
      cell.className = name;
      cell.textContent = text;
      row.append(cell);
    }
    tbody.prepend(row);
    while (tbody.rows.length > MAX_ROWS) tbody.lastElementChild.remove();
    pushCount += 1;
    $("push-count").textContent = String(pushCount);
    countPush(now);
  }

  /** Pushes per second: buckets[CHART_SECONDS - 1] is the current second. */
  const buckets = new Array(CHART_SECONDS).fill(0);
  let bucketSecond = Math.floor(Date.now() / 1000);

  function advanceBuckets(nowMs) {
    const second = Math.floor(nowMs / 1000);
    const steps = Math.min(CHART_SECONDS, Math.max(0, second - bucketSecond));
    for (let i = 0; i < steps; i += 1) {
      buckets.shift();
      buckets.push(0);
    }
    bucketSecond = Math.max(bucketSecond, second);
  }

  function countPush(nowMs) {
    advanceBuckets(nowMs);
    buckets[CHART_SECONDS - 1] += 1;
    drawChart();
  }

  function drawChart() {
    const canvas = $("rate");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const top = Math.max(1, ...buckets);
    const barWidth = width / CHART_SECONDS;
    // Labels above and below the bars, never over them.
    const plotTop = 16;
    const plotBottom = height - 16;
    g.fillStyle = "#2a7de1";
    buckets.forEach((count, i) => {
      const h = (count / top) * (plotBottom - plotTop);
      g.fillRect(i * barWidth + 1, plotBottom - h, Math.max(1, barWidth - 2), h);
    });
    g.strokeStyle = "#9aa4b2";
    g.beginPath();
    g.moveTo(0, plotBottom + 0.5);
    g.lineTo(width, plotBottom + 0.5);
    g.stroke();
    g.fillStyle = "#5b6573";
    g.font = "11px system-ui, sans-serif";
    g.textBaseline = "top";
    g.textAlign = "left";
    g.fillText("60 s ago", 2, plotBottom + 3);
    g.fillText(`${top}/s`, 2, 2);
    g.textAlign = "right";
    g.fillText("now", width - 2, plotBottom + 3);
  }

  setInterval(() => {
    advanceBuckets(Date.now());
    drawChart();
  }, 1000);
  drawChart();

  // -------------------------------------------------------------------------
  // Server figures from /metrics (Prometheus text), read leniently

  /** Sums each series over its labels: name -> number. */
  function parseMetrics(text) {
    const sums = new Map();
    for (const line of text.split("\n")) {
      const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line.trim());
      if (!match) continue;
      const value = Number(match[3]);
      if (Number.isFinite(value)) sums.set(match[1], (sums.get(match[1]) || 0) + value);
    }
    return sums;
  }

  function showFigures(sums, note) {
    for (const [name, id] of Object.entries(FIGURES)) {
      const value = sums ? sums.get(name) : undefined;
      $(id).textContent = value === undefined ? "—" : value.toLocaleString("en-US");
    }
    $("metrics-note").textContent = note;
  }

  async function refreshMetrics() {
    const key = $("metrics-key").value.trim();
    const headers = key ? { Authorization: `Bearer ${key}` } : {};
    try {
      const response = await fetch("/metrics", { headers, cache: "no-store" });
      if (!response.ok) {
        const why = response.status === 401 ? "needs a metrics key" : "not served here";
        return showFigures(null, `/metrics: ${response.status} (${why})`);
      }
      showFigures(parseMetrics(await response.text()), `from /metrics at ${new Date().toLocaleTimeString()}`);
    } catch (err) {
      showFigures(null, `/metrics unreachable: ${err.message}`);
    }
  }

  setInterval(refreshMetrics, METRICS_EVERY_MS);
  refreshMetrics();

  form.addEventListener("submit", connect);
  $("disconnect").addEventListener("click", disconnect);
})();
