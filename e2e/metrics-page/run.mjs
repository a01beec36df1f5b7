// End-to-end test of the metrics page in a real browser: two real tracker_udp binaries
// on 127.0.0.1 (tracker and metrics on ports of the OS's choosing, a history sample every
// second), one public and one in private mode (a passkey file, an SQLite accounting
// database and the site cache in the test's temporary directory), a few BEP 15 announces
// to each, then their pages in headless Chromium (Debian's, driven by puppeteer-core).
//
// It checks that each page loads with no console error and no failed request. The public
// tracker's page: every chart has at least two points, the requests chart shows a
// positive announce rate, the charts move on without a reload, and there is no private
// section. The private tracker's page, after an announce with its passkey (accepted and
// committed to the database) and two refused (an unknown passkey, none): the private
// section shows the passkeys, the database up, a commit, the refusals, and its charts
// the committed reports and the refusals by cause. Saves a screenshot of each page.
//
// Usage: node e2e/metrics-page/run.mjs --tracker-bin PATH [--timeout SECS]
//        [--screenshot PATH] [--private-screenshot PATH]
// --private-screenshot: where the private page's screenshot goes (none unless given).
// All traffic stays on 127.0.0.1. Everything started is stopped at the end.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import puppeteer from "puppeteer-core";

const { values: args } = parseArgs({
  options: {
    "tracker-bin": { type: "string" },
    timeout: { type: "string", default: "60" },
    screenshot: { type: "string", default: "documents/metrics-page.png" },
    "private-screenshot": { type: "string", default: "" },
  },
});
if (!args["tracker-bin"]) {
  console.error(
    "usage: node run.mjs --tracker-bin PATH [--timeout SECS] [--screenshot PATH] [--private-screenshot PATH]",
  );
  process.exit(2);
}
const started = Date.now();
const deadline = started + Number(args.timeout) * 1000;
const ANNOUNCES = 20;
// The private tracker's passkey: 32 characters of [0-9A-Za-z].
const PASSKEY = randomBytes(16).toString("hex");
const UNKNOWN_PASSKEY = "0".repeat(32);

function log(message) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
}

function secondsLeft() {
  return Math.max(0, (deadline - Date.now()) / 1000);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Waits until `check` returns something truthy, within the deadline.
async function until(what, check, stepMs = 200) {
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() + stepMs > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(stepMs);
  }
}

// A tracker in a directory of its own (made here): started with a config of the test's
// (plus `extra` lines), its stderr scanned for the addresses it logs.
function startTracker(dir, extra = []) {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, "tracker.toml");
  writeFileSync(
    config,
    [
      'log_level = "info"',
      "[network]",
      'address = "127.0.0.1:0"',
      "[statistics]",
      "interval_secs = 0",
      "[metrics]",
      'address = "127.0.0.1:0"',
      "history_interval_secs = 1",
      ...extra,
      "",
    ].join("\n"),
  );
  const child = spawn(args["tracker-bin"], ["-c", config], {
    stdio: ["ignore", "ignore", "pipe"],
    cwd: dir,
  });
  const tracker = { child, lines: [], udp: null, metrics: null, exited: null };
  let partial = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop();
    for (const line of parts) {
      tracker.lines.push(line);
      const udp = line.match(/listening on udp:\/\/(127\.0\.0\.1:\d+)/);
      if (udp) tracker.udp = udp[1];
      const metrics = line.match(/metrics on http:\/\/(127\.0\.0\.1:\d+)\/metrics/);
      if (metrics) tracker.metrics = metrics[1];
    }
  });
  child.on("exit", (code, signal) => {
    tracker.exited = { code, signal };
  });
  return tracker;
}

// A private tracker: one passkey in a file, its accounting in SQLite and its site cache,
// all in `dir`; batches committed every second.
function startPrivateTracker(dir) {
  mkdirSync(dir);
  writeFileSync(join(dir, "passkeys"), `# the test's user\n${PASSKEY} 42\n`);
  // TOML basic strings take JSON's escapes.
  const path = (name) => JSON.stringify(join(dir, name));
  return startTracker(dir, [
    "[private]",
    "enabled = true",
    `passkeys_path = ${path("passkeys")}`,
    `site_cache_path = ${path("site.cache")}`,
    "[accounting]",
    `url = ${JSON.stringify("sqlite://" + join(dir, "accounting.db"))}`,
    "flush_interval_secs = 1",
  ]);
}

async function waitForAddresses(tracker) {
  await until("the tracker to log its addresses", () => {
    if (tracker.exited) {
      throw new Error(`the tracker exited early: ${JSON.stringify(tracker.exited)}\n${tracker.lines.join("\n")}`);
    }
    return tracker.udp && tracker.metrics;
  }, 50);
  return `http://${tracker.metrics}`;
}

async function stopTracker(tracker) {
  if (tracker.exited) {
    return tracker.exited;
  }
  const exited = new Promise((resolve) => tracker.child.once("exit", (code, signal) => resolve({ code, signal })));
  tracker.child.kill("SIGTERM");
  const timer = setTimeout(() => tracker.child.kill("SIGKILL"), 10_000);
  const result = await exited;
  clearTimeout(timer);
  return result;
}

// A BEP 15 client over one socket, connected: `exchange` sends a packet and resolves to
// the answer with its transaction id.
async function udpClient(address) {
  const [host, port] = [address.split(":")[0], Number(address.split(":")[1])];
  const socket = dgram.createSocket("udp4");
  await new Promise((resolve) => socket.bind(0, "127.0.0.1", resolve));
  const exchange = (packet, transaction) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.off("message", onMessage);
        reject(new Error("no UDP answer within 2 s"));
      }, 2000);
      const onMessage = (message) => {
        if (message.length >= 8 && message.readUInt32BE(4) === transaction) {
          clearTimeout(timer);
          socket.off("message", onMessage);
          resolve(message);
        }
      };
      socket.on("message", onMessage);
      socket.send(packet, port, host);
    });
  try {
    // connect: protocol id, action 0, transaction id.
    const connect = Buffer.alloc(16);
    connect.writeBigUInt64BE(0x41727101980n, 0);
    connect.writeUInt32BE(0, 8);
    connect.writeUInt32BE(1, 12);
    const connected = await exchange(connect, 1);
    if (connected.length < 16 || connected.readUInt32BE(0) !== 0) {
      throw new Error(`bad connect answer: ${connected.toString("hex")}`);
    }
    return { connectionId: connected.subarray(8, 16), exchange, close: () => socket.close() };
  } catch (err) {
    socket.close();
    throw err;
  }
}

// A BEP 15 announce (event started) of a random torrent and peer; `urlData`, if given,
// goes in a BEP 41 URLData option (a private tracker's "/PASSKEY/announce").
function announcePacket(connectionId, transaction, { seed, port, urlData }) {
  const options = urlData ? Buffer.concat([Buffer.from([2, urlData.length]), Buffer.from(urlData)]) : Buffer.alloc(0);
  const request = Buffer.alloc(98 + options.length);
  connectionId.copy(request, 0); // connection id
  request.writeUInt32BE(1, 8); // action: announce
  request.writeUInt32BE(transaction, 12); // transaction id
  randomBytes(20).copy(request, 16); // info hash
  randomBytes(20).copy(request, 36); // peer id
  request.writeBigUInt64BE(0n, 56); // downloaded
  request.writeBigUInt64BE(seed ? 0n : 1000n, 64); // left
  request.writeBigUInt64BE(0n, 72); // uploaded
  request.writeUInt32BE(2, 80); // event: started
  request.writeUInt32BE(0, 84); // IP: the sender's
  request.writeUInt32BE(transaction, 88); // key
  request.writeInt32BE(-1, 92); // num_want: default
  request.writeUInt16BE(port, 96); // port
  options.copy(request, 98);
  return request;
}

// `count` announces of distinct torrents, one in four a seed, each answered as an
// announce.
async function announce(address, count) {
  const client = await udpClient(address);
  try {
    for (let i = 0; i < count; i++) {
      const transaction = 100 + i;
      const packet = announcePacket(client.connectionId, transaction, { seed: i % 4 === 0, port: 6881 + i });
      const answer = await client.exchange(packet, transaction);
      if (answer.readUInt32BE(0) !== 1) {
        throw new Error(`announce ${i} answered ${answer.toString("hex")}`);
      }
    }
  } finally {
    client.close();
  }
}

// To the private tracker: an announce with its passkey (answered as an announce), one
// with an unknown passkey and one with none (each answered with a BEP 15 error naming
// the refusal).
async function privateAnnounces(address) {
  const client = await udpClient(address);
  try {
    const ask = async (transaction, urlData, expected) => {
      const packet = announcePacket(client.connectionId, transaction, { seed: false, port: 6881, urlData });
      const answer = await client.exchange(packet, transaction);
      const action = answer.readUInt32BE(0);
      const message = action === 3 ? answer.subarray(8).toString("utf8") : "";
      if (expected === "announce" ? action !== 1 : action !== 3 || !message.includes(expected)) {
        throw new Error(`announce with URL data ${JSON.stringify(urlData)} answered ${action} ${JSON.stringify(message)}, not ${expected}`);
      }
    };
    await ask(200, `/${PASSKEY}/announce`, "announce");
    await ask(201, `/${UNKNOWN_PASSKEY}/announce`, "unknown passkey");
    await ask(202, null, "missing passkey");
  } finally {
    client.close();
  }
}

async function getJson(base, path) {
  const answer = await fetch(base + path, { cache: "no-store" });
  if (!answer.ok) {
    throw new Error(`${path}: HTTP ${answer.status}`);
  }
  return answer.json();
}

// A new page of the tracker at `base`, whose console errors, page errors, failed
// requests, HTTP errors and requests elsewhere are added to `failures` (prefixed `name`).
async function openPage(browser, base, name, failures) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 1100 });
  const fail = (message) => failures.push(`${name}: ${message}`);
  page.on("console", (message) => {
    if (message.type() === "error") {
      fail(`console error: ${message.text()}`);
    }
  });
  page.on("pageerror", (err) => fail(`page error: ${err.message}`));
  page.on("requestfailed", (request) => fail(`request failed: ${request.url()} ${request.failure()?.errorText}`));
  page.on("response", (response) => {
    if (response.status() >= 400) {
      fail(`HTTP ${response.status()}: ${response.url()}`);
    }
  });
  page.on("request", (request) => {
    if (!request.url().startsWith(base + "/") && !request.url().startsWith("data:")) {
      fail(`request outside the tracker: ${request.url()}`);
    }
  });
  await page.goto(base + "/", { waitUntil: "load", timeout: secondsLeft() * 1000 });
  return page;
}

// Waits until each chart has at least two points, then reads what each shows: its
// points, its series' labels, each series' largest value and its canvases.
async function readCharts(page, ids) {
  await page.waitForFunction(
    (ids) => ids.every((id) => Number(document.getElementById(id)?.dataset.points) >= 2),
    { timeout: secondsLeft() * 1000 },
    ids,
  );
  return page.evaluate((ids) => {
    const out = {};
    for (const id of ids) {
      const chart = window.shoalCharts[id];
      out[id] = {
        points: Number(document.getElementById(id).dataset.points),
        series: chart.series.slice(1).map((s) => s.label),
        max: chart.data.slice(1).map((values) => Math.max(0, ...values.filter((v) => v != null))),
        canvases: document.querySelectorAll(`#${id} canvas`).length,
      };
    }
    return out;
  }, ids);
}

// The rows of a figures table, name → value.
function readFigures(page, id) {
  return page.evaluate(
    (id) =>
      Object.fromEntries(
        [...document.querySelectorAll(`#${id} tr`)].map((tr) => [tr.firstChild?.textContent, tr.lastChild?.textContent]),
      ),
    id,
  );
}

// The largest value chart `chart` shows for its series `label` (-1 if it has none).
function seriesMax(chart, label) {
  const index = chart.series.indexOf(label);
  return index < 0 ? -1 : chart.max[index];
}

async function checkPublicPage(browser, base, failures) {
  const fail = (message) => failures.push(`public page: ${message}`);
  const page = await openPage(browser, base, "public page", failures);
  const ids = ["chart-requests", "chart-peers", "chart-torrents"];
  const charts = await readCharts(page, ids);
  log(`public charts: ${JSON.stringify(charts)}`);
  if (!(seriesMax(charts["chart-requests"], "announce") > 0)) {
    fail(`the requests chart shows no announce rate: ${JSON.stringify(charts["chart-requests"])}`);
  }
  if (!(charts["chart-torrents"].max[0] >= ANNOUNCES)) {
    fail(`the torrents chart does not reach ${ANNOUNCES}: ${JSON.stringify(charts["chart-torrents"])}`);
  }
  for (const id of ids) {
    if (charts[id].canvases !== 1) {
      fail(`${id} has ${charts[id].canvases} canvases, not 1`);
    }
  }
  // The figures table, from /stats.json.
  const figures = await readFigures(page, "figures");
  if (figures.torrents !== String(ANNOUNCES)) {
    fail(`the figures show ${figures.torrents} torrents, not ${ANNOUNCES}`);
  }
  // No private section, and none of its charts made.
  const privateShown = await page.evaluate(() => ({
    hidden: document.getElementById("private").hidden,
    charts: Object.keys(window.shoalCharts).filter((id) => id.startsWith("chart-private")),
  }));
  if (!privateShown.hidden || privateShown.charts.length) {
    fail(`a public tracker's page shows its private section: ${JSON.stringify(privateShown)}`);
  }
  // The page refreshes by itself: a later poll moves the requests chart on.
  const before = charts["chart-requests"].points;
  await page.waitForFunction(
    (before) => Number(document.getElementById("chart-requests").dataset.points) > before,
    { timeout: Math.min(10, secondsLeft()) * 1000 },
    before,
  );
  log("public page: the charts grew without a reload");
  await page.screenshot({ path: args.screenshot, fullPage: true });
  log(`public page: screenshot saved to ${args.screenshot}`);
}

async function checkPrivatePage(browser, base, failures) {
  const fail = (message) => failures.push(`private page: ${message}`);
  const page = await openPage(browser, base, "private page", failures);
  const ids = ["chart-private-credits", "chart-private-batches", "chart-private-refused"];
  const charts = await readCharts(page, ids);
  log(`private charts: ${JSON.stringify(charts)}`);
  if (await page.evaluate(() => document.getElementById("private").hidden)) {
    fail("the private section is hidden");
  }
  if (!(seriesMax(charts["chart-private-credits"], "reports committed") > 0)) {
    fail(`the credits chart shows no report committed: ${JSON.stringify(charts["chart-private-credits"])}`);
  }
  if (!(seriesMax(charts["chart-private-batches"], "committed") > 0)) {
    fail(`the batches chart shows no batch committed: ${JSON.stringify(charts["chart-private-batches"])}`);
  }
  const refused = charts["chart-private-refused"];
  for (const cause of ["unknown passkey", "missing passkey"]) {
    if (!(seriesMax(refused, cause) > 0)) {
      fail(`the refusals chart shows no ${cause}: ${JSON.stringify(refused)}`);
    }
  }
  for (const cause of ["client not allowed", "unregistered torrent", "leeching not allowed"]) {
    if (seriesMax(refused, cause) !== 0) {
      fail(`the refusals chart's ${cause} is not a series of zeros: ${JSON.stringify(refused)}`);
    }
  }
  for (const id of ids) {
    if (charts[id].canvases !== 1) {
      fail(`${id} has ${charts[id].canvases} canvases, not 1`);
    }
  }
  const figures = await readFigures(page, "private-figures");
  log(`private figures: ${JSON.stringify(figures)}`);
  const expected = {
    passkeys: "1",
    "reports committed": "1",
    database: "up",
    "requests refused": "2",
    evictions: "0",
  };
  for (const [name, value] of Object.entries(expected)) {
    if (figures[name] !== value) {
      fail(`the private figures show ${name} ${JSON.stringify(figures[name])}, not ${value}`);
    }
  }
  if (!/^\d+ s ago$/.test(figures["last commit"] || "")) {
    fail(`the private figures show last commit ${JSON.stringify(figures["last commit"])}`);
  }
  // The public figures and charts are there too.
  const torrents = (await readFigures(page, "figures")).torrents;
  if (torrents !== "1") {
    fail(`the figures show ${torrents} torrents, not the 1 accepted`);
  }
  if (args["private-screenshot"]) {
    await page.screenshot({ path: args["private-screenshot"], fullPage: true });
    log(`private page: screenshot saved to ${args["private-screenshot"]}`);
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "shoal-metrics-page-"));
  const trackers = [];
  let browser = null;
  const failures = [];
  try {
    const publicTracker = startTracker(join(dir, "public"));
    trackers.push(publicTracker);
    const privateTracker = startPrivateTracker(join(dir, "private"));
    trackers.push(privateTracker);
    const publicBase = await waitForAddresses(publicTracker);
    log(`public tracker on udp://${publicTracker.udp}, page on ${publicBase}/`);
    const privateBase = await waitForAddresses(privateTracker);
    log(`private tracker on udp://${privateTracker.udp}, page on ${privateBase}/`);

    await announce(publicTracker.udp, ANNOUNCES);
    log(`${ANNOUNCES} announces answered`);
    await privateAnnounces(privateTracker.udp);
    log("private tracker: one announce answered, two refused");
    // Two samples at least, one of them after the announces: a positive rate.
    await until("a history sample with a positive announce rate", async () => {
      const history = await getJson(publicBase, "/history.json");
      return history.requests_per_sec.announce.some((r) => r > 0) && history.timestamps.length >= 2;
    });
    // The accepted announce's report committed to the database, and a sample after it.
    await until("the private tracker's commit in its history", async () => {
      const history = await getJson(privateBase, "/history.json");
      return history.private?.credits_committed_per_sec.some((r) => r > 0);
    });
    const stats = await getJson(privateBase, "/stats.json");
    log(`private tracker's /stats.json private: ${JSON.stringify(stats.private)}`);
    // And one more, so that the charts have a few points.
    await sleep(1500);

    browser = await puppeteer.launch({
      executablePath: "/usr/bin/chromium",
      headless: true,
      userDataDir: join(dir, "chromium-profile"),
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      timeout: Math.max(1000, secondsLeft() * 1000),
    });
    await checkPublicPage(browser, publicBase, failures);
    await checkPrivatePage(browser, privateBase, failures);
  } catch (err) {
    failures.push(err.stack || String(err));
  } finally {
    if (browser) {
      await browser.close().catch((err) => failures.push(`closing the browser: ${err}`));
    }
    for (const tracker of trackers) {
      const exited = await stopTracker(tracker);
      if (exited.code !== 0) {
        failures.push(
          `the tracker exited with ${JSON.stringify(exited)} on SIGTERM\n${tracker.lines.slice(-20).join("\n")}`,
        );
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  for (const failure of failures) {
    console.log(`FAIL: ${failure}`);
  }
  console.log(`e2e metrics page: ${failures.length ? "0 passed, 1 failed" : "1 passed, 0 failed"}`);
  process.exit(failures.length ? 1 : 0);
}

main();
