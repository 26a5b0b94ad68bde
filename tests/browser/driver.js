#!/usr/bin/env node
// Drives Debian's chromium, headless, for tests/browser.rs (feature `browser`):
// playwright-core only (it never downloads a browser of its own).
//
//   node driver.js console '<json>'
//     {"url","reader","passphrase","items":[…],"count":N,"checkpoints"?:[C…],
//      "serverPushes"?:P,"screenshot"}
//     Opens <url>/console, fills the form, connects; prints
//     {"event":"watching","status"} once every watch is acked, then waits
//     (bounded) until the table holds N pushes (printing {"event":"shown",
//     "count":C} when it holds C, for each checkpoint), with serverPushes
//     waits until the server panel (from /metrics) shows at least P pushes
//     sent, saves a screenshot and prints {"event":"rows","rows":[{item,
//     event,seq,value,latency}] (as shown, newest first),"figures":{…},
//     "errors":[…]} and exits 0.
//
//   node driver.js cross-origin '<json>'
//     {"effex","writer","reader"}
//     Serves a page from a server of its own (another origin: another port),
//     which loads socket.io-client from effex's /console/vendor/, then in the
//     page: fetch() POST /items and GET /items/{id}, a push socket that
//     passes and watches the item, fetch() PUT /items/{id}, and waits for
//     its push. Prints {"event":"result","origin",…} and exits 0 (a fetch
//     the browser blocked is a result too: {"fetchError":"TypeError",…}).
//
// On any failure: {"event":"error","message"} on stdout, exit 1. Every wait
// is bounded (STEP_MS); the whole run gives up after RUN_MS. The process
// also exits when its stdin closes, so a test that gives up never leaves a
// browser behind.
"use strict";

const http = require("node:http");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.EFFEX_CHROMIUM || "/usr/bin/chromium";
const STEP_MS = 15000;
const RUN_MS = 60000;

function print(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

let browser = null;
let userDataDir = null;

async function cleanUp() {
  if (browser) await browser.close().catch(() => {});
  browser = null;
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  userDataDir = null;
}

async function fail(message) {
  print({ event: "error", message });
  process.stderr.write(`driver.js: ${message}\n`);
  await cleanUp();
  process.exit(1);
}

setTimeout(() => fail(`gave up after ${RUN_MS} ms`), RUN_MS).unref();
process.stdin.on("close", () => fail("stdin closed: the test is gone"));
process.stdin.resume();

async function launch() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium)`);
  }
  // A fresh profile each run (launchPersistentContext: the directory is ours
  // to choose and delete), no network chatter of the browser's own.
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "effex-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 820 },
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  browser = context;
  return context;
}

/** Console errors, page exceptions (a CSP violation is one) and failed
 *  requests. Not counted: /metrics, which may be absent or need a key (the
 *  console shows "—"), and the favicon the browser asks for by itself. */
function collectErrors(page) {
  const errors = [];
  page.on("pageerror", (err) => errors.push(`exception: ${err.message}`));
  page.on("console", (msg) => {
    // Failed loads are counted below, with their URL.
    if (msg.type() === "error" && !/^Failed to load resource/.test(msg.text())) {
      errors.push(`console: ${msg.text()}`);
    }
  });
  page.on("response", (response) => {
    const { pathname } = new URL(response.url());
    if (response.status() >= 400 && pathname !== "/metrics" && pathname !== "/favicon.ico") {
      errors.push(`${response.status()} for ${response.url()}`);
    }
  });
  page.on("requestfailed", (request) => {
    errors.push(`request failed: ${request.url()} (${request.failure() && request.failure().errorText})`);
  });
  return errors;
}

// ---------------------------------------------------------------------------
// The console

async function consoleScenario(config) {
  const context = await launch();
  const page = context.pages()[0] || (await context.newPage());
  const errors = collectErrors(page);
  const response = await page.goto(`${config.url}/console`, { timeout: STEP_MS });
  if (!response || response.status() !== 200) {
    throw new Error(`GET /console answered ${response && response.status()}`);
  }
  await page.fill("#reader-key", config.reader);
  await page.fill("#items", config.items.join("\n"));
  await page.fill("#passphrase", config.passphrase || "");
  await page.click("#connect");
  try {
    await page.waitForSelector('#status[data-state="watching"]', { timeout: STEP_MS });
  } catch (e) {
    const status = await page.textContent("#status");
    throw new Error(`the console is not watching after ${STEP_MS} ms: ${status}; errors: ${errors.join("; ")}`);
  }
  print({ event: "watching", status: await page.textContent("#status") });

  // {"event":"shown","count":C} at each checkpoint C on the way.
  for (const count of [...(config.checkpoints || []), config.count]) {
    try {
      await page.waitForFunction(
        (n) => document.querySelectorAll("#pushes tbody tr").length >= n,
        count,
        { timeout: STEP_MS },
      );
    } catch (e) {
      const shown = await page.$$eval("#pushes tbody tr", (rows) => rows.length);
      throw new Error(`the table shows ${shown} of ${count} pushes after ${STEP_MS} ms`);
    }
    if (count !== config.count) print({ event: "shown", count });
  }
  const rows = await page.$$eval("#pushes tbody tr", (trs) =>
    trs.map((tr) => {
      const cell = (name) => tr.querySelector(`td.${name}`).textContent;
      return {
        item: cell("item"),
        event: cell("event"),
        seq: cell("seq"),
        value: cell("value"),
        latency: cell("latency"),
      };
    }),
  );
  // The server figures: the panel reads /metrics every few seconds; wait
  // (bounded) until a refresh shows the pushes the server sent.
  if (config.serverPushes !== undefined) {
    try {
      await page.waitForFunction(
        (n) => Number(document.getElementById("metric-pushes").textContent.replace(/,/g, "")) >= n,
        config.serverPushes,
        { timeout: STEP_MS },
      );
    } catch (e) {
      const shown = await page.textContent("#metric-pushes");
      throw new Error(`the server panel shows ${shown} pushes sent after ${STEP_MS} ms`);
    }
  }
  const figures = await page.evaluate(() =>
    Object.fromEntries(
      ["metric-connections", "metric-pushes", "metric-items"].map((id) => [
        id,
        Number(document.getElementById(id).textContent.replace(/,/g, "")),
      ]),
    ),
  );
  // Let the chart's next one-second tick land, so the screenshot shows the
  // page as a person would see it.
  await page.waitForTimeout(1200);
  fs.mkdirSync(path.dirname(config.screenshot), { recursive: true });
  await page.screenshot({ path: config.screenshot, fullPage: true });
  print({ event: "rows", rows, errors, figures });
}

// ---------------------------------------------------------------------------
// A page on another origin

/** The page: socket.io-client from effex, the script from this server. */
function crossOriginPage(effex) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>another origin</title>
<script src="${effex}/console/vendor/socket.io.min.js"></script>
<script src="/cross.js"></script></head><body>another origin</body></html>`;
}

/** Serves the page on 127.0.0.1 and a port of its own: another origin. */
function startPageServer(effex) {
  const script = fs.readFileSync(path.join(__dirname, "cross.js"));
  const server = http.createServer((req, res) => {
    if (req.url === "/") {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
      res.end(crossOriginPage(effex));
    } else if (req.url === "/cross.js") {
      res.writeHead(200, { "Content-Type": "text/javascript; charset=utf-8" });
      res.end(script);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function crossOriginScenario(config) {
  const pages = await startPageServer(config.effex);
  try {
    const context = await launch();
    const page = context.pages()[0] || (await context.newPage());
    const errors = collectErrors(page);
    const origin = `http://127.0.0.1:${pages.address().port}`;
    await page.goto(`${origin}/`, { timeout: STEP_MS });
    const result = await page.evaluate(
      (cfg) => window.crossOriginRun(cfg),
      { effex: config.effex, writer: config.writer, reader: config.reader, stepMs: STEP_MS },
    );
    print({ event: "result", ...result, errors });
  } finally {
    pages.close();
  }
}

async function main() {
  const [scenario, json] = process.argv.slice(2);
  let config;
  try {
    config = JSON.parse(json || "");
  } catch (e) {
    process.stderr.write("usage: node driver.js console|cross-origin '<json config>'\n");
    process.exit(64);
  }
  switch (scenario) {
    case "console":
      await consoleScenario(config);
      break;
    case "cross-origin":
      await crossOriginScenario(config);
      break;
    default:
      throw new Error(`unknown scenario ${JSON.stringify(scenario)}`);
  }
  await cleanUp();
  process.exit(0);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
