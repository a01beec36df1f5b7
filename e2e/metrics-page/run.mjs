// End-to-end test of the metrics page in a real browser: the real tracker_udp binary on
// 127.0.0.1 (tracker and metrics on ports of the OS's choosing, a history sample every
// second), a few BEP 15 announces to it, then its page in headless Chromium (Debian's,
// driven by puppeteer-core). It checks that the page loads with no console error and no
// failed request, that every chart has at least two points and that the requests chart
// shows a positive announce rate, and saves a screenshot.
//
// Usage: node e2e/metrics-page/run.mjs --tracker-bin PATH [--timeout SECS]
//        [--screenshot PATH]
// All traffic stays on 127.0.0.1. Everything started is stopped at the end.

import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import puppeteer from "puppeteer-core";

const { values: args } = parseArgs({
  options: {
    "tracker-bin": { type: "string" },
    timeout: { type: "string", default: "60" },
    screenshot: { type: "string", default: "documents/metrics-page.png" },
  },
});
if (!args["tracker-bin"]) {
  console.error("usage: node run.mjs --tracker-bin PATH [--timeout SECS] [--screenshot PATH]");
  process.exit(2);
}
const started = Date.now();
const deadline = started + Number(args.timeout) * 1000;
const ANNOUNCES = 20;

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

// The tracker: started with a config of the test's, its stderr scanned for the
// addresses it logs.
function startTracker(dir) {
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

// BEP 15 over one socket: a connect, then `count` announces of distinct torrents.
async function announce(address, count) {
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
    const connectionId = connected.subarray(8, 16);
    for (let i = 0; i < count; i++) {
      const transaction = 100 + i;
      const request = Buffer.alloc(98);
      connectionId.copy(request, 0); // connection id
      request.writeUInt32BE(1, 8); // action: announce
      request.writeUInt32BE(transaction, 12); // transaction id
      randomBytes(20).copy(request, 16); // info hash
      randomBytes(20).copy(request, 36); // peer id
      request.writeBigUInt64BE(0n, 56); // downloaded
      request.writeBigUInt64BE(i % 4 ? 1000n : 0n, 64); // left: one in four seeds
      request.writeBigUInt64BE(0n, 72); // uploaded
      request.writeUInt32BE(2, 80); // event: started
      request.writeUInt32BE(0, 84); // IP: the sender's
      request.writeUInt32BE(i, 88); // key
      request.writeInt32BE(-1, 92); // num_want: default
      request.writeUInt16BE(6881 + i, 96); // port
      const answer = await exchange(request, transaction);
      if (answer.readUInt32BE(0) !== 1) {
        throw new Error(`announce ${i} answered ${answer.toString("hex")}`);
      }
    }
  } finally {
    socket.close();
  }
}

async function getJson(base, path) {
  const answer = await fetch(base + path, { cache: "no-store" });
  if (!answer.ok) {
    throw new Error(`${path}: HTTP ${answer.status}`);
  }
  return answer.json();
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "shoal-metrics-page-"));
  let tracker = null;
  let browser = null;
  const failures = [];
  try {
    tracker = startTracker(dir);
    await until("the tracker to log its addresses", () => {
      if (tracker.exited) {
        throw new Error(`the tracker exited early: ${JSON.stringify(tracker.exited)}\n${tracker.lines.join("\n")}`);
      }
      return tracker.udp && tracker.metrics;
    }, 50);
    const base = `http://${tracker.metrics}`;
    log(`tracker on udp://${tracker.udp}, page on ${base}/`);

    await announce(tracker.udp, ANNOUNCES);
    log(`${ANNOUNCES} announces answered`);
    // Two samples at least, one of them after the announces: a positive rate.
    await until("a history sample with a positive announce rate", async () => {
      const history = await getJson(base, "/history.json");
      return history.requests_per_sec.announce.some((r) => r > 0) && history.timestamps.length >= 2;
    });
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
    const page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 1100 });
    page.on("console", (message) => {
      if (message.type() === "error") {
        failures.push(`console error: ${message.text()}`);
      }
    });
    page.on("pageerror", (err) => failures.push(`page error: ${err.message}`));
    page.on("requestfailed", (request) =>
      failures.push(`request failed: ${request.url()} ${request.failure()?.errorText}`),
    );
    page.on("response", (response) => {
      if (response.status() >= 400) {
        failures.push(`HTTP ${response.status()}: ${response.url()}`);
      }
    });
    page.on("request", (request) => {
      if (!request.url().startsWith(base + "/") && !request.url().startsWith("data:")) {
        failures.push(`request outside the tracker: ${request.url()}`);
      }
    });

    await page.goto(base + "/", { waitUntil: "load", timeout: secondsLeft() * 1000 });
    const ids = ["chart-requests", "chart-peers", "chart-torrents"];
    await page.waitForFunction(
      (ids) => ids.every((id) => Number(document.getElementById(id)?.dataset.points) >= 2),
      { timeout: secondsLeft() * 1000 },
      ids,
    );
    const charts = await page.evaluate((ids) => {
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
    log(`charts: ${JSON.stringify(charts)}`);
    const requests = charts["chart-requests"];
    const announceIndex = requests.series.indexOf("announce");
    if (announceIndex < 0 || !(requests.max[announceIndex] > 0)) {
      failures.push(`the requests chart shows no announce rate: ${JSON.stringify(requests)}`);
    }
    if (!(charts["chart-torrents"].max[0] >= ANNOUNCES)) {
      failures.push(`the torrents chart does not reach ${ANNOUNCES}: ${JSON.stringify(charts["chart-torrents"])}`);
    }
    for (const id of ids) {
      if (charts[id].canvases !== 1) {
        failures.push(`${id} has ${charts[id].canvases} canvases, not 1`);
      }
    }
    // The figures table, from /stats.json.
    const torrentsShown = await page.evaluate(() => {
      const row = [...document.querySelectorAll("#figures tr")].find(
        (tr) => tr.firstChild?.textContent === "torrents",
      );
      return row?.lastChild?.textContent;
    });
    if (torrentsShown !== String(ANNOUNCES)) {
      failures.push(`the figures show ${torrentsShown} torrents, not ${ANNOUNCES}`);
    }
    // The page refreshes by itself: a later poll moves the requests chart on.
    const before = charts["chart-requests"].points;
    await page.waitForFunction(
      (before) => Number(document.getElementById("chart-requests").dataset.points) > before,
      { timeout: Math.min(10, secondsLeft()) * 1000 },
      before,
    );
    log("the charts grew without a reload");

    await page.screenshot({ path: args.screenshot, fullPage: true });
    log(`screenshot saved to ${args.screenshot}`);
  } catch (err) {
    failures.push(err.stack || String(err));
  } finally {
    if (browser) {
      await browser.close().catch((err) => failures.push(`closing the browser: ${err}`));
    }
    if (tracker) {
      const exited = await stopTracker(tracker);
      if (exited.code !== 0) {
        failures.push(`the tracker exited with ${JSON.stringify(exited)} on SIGTERM`);
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
