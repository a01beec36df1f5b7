// The statistics page: live figures from /stats.json, and charts of the last hour
// from /history.json (samples the tracker takes; its rates are counter deltas over
// the time between two samples). Both are polled, so the page refreshes by itself.
// Private mode's section is shown only when /stats.json has its "private" object.
"use strict";

const STATS_POLL_MS = 2000;
const KIND_COLOURS = { connect: "#7b61ff", announce: "#1f77b4", scrape: "#ff7f0e" };
// The kinds in the tracker's order (the JSON object's keys come sorted).
const KIND_ORDER = ["connect", "announce", "scrape"];
// Private mode's batch outcomes and refusal causes, as the metrics label them, in the
// tracker's order.
const BATCH_COLOURS = { committed: "#2ca02c", already_applied: "#1f77b4", failed: "#d62728" };
const BATCH_ORDER = ["committed", "already_applied", "failed"];
const REFUSAL_COLOURS = {
  missing_passkey: "#ff7f0e",
  unknown_passkey: "#d62728",
  client_not_allowed: "#9467bd",
  unregistered_torrent: "#8c564b",
  leeching_not_allowed: "#e377c2",
};
const REFUSAL_ORDER = Object.keys(REFUSAL_COLOURS);

const charts = {};

function number(n) {
  return typeof n === "number" ? n.toLocaleString("en") : "–";
}

function sum(byFamily) {
  return byFamily ? Object.values(byFamily).reduce((a, b) => a + b, 0) : 0;
}

function duration(secs) {
  const d = Math.floor(secs / 86400);
  const h = Math.floor((secs % 86400) / 3600);
  const m = Math.floor((secs % 3600) / 60);
  return (d ? d + " d " : "") + h + " h " + m + " min";
}

// How long ago a Unix time was, by this browser's clock; "never" for 0.
function ago(unixSecs) {
  if (!unixSecs) {
    return "never";
  }
  const secs = Math.max(0, Math.round(Date.now() / 1000 - unixSecs));
  return (secs < 120 ? secs + " s" : duration(secs)) + " ago";
}

// The keys of `byName` in `order`, any the page does not know last.
function ordered(byName, order) {
  const rank = (key) => (order.includes(key) ? order.indexOf(key) : order.length);
  return Object.keys(byName).sort((a, b) => rank(a) - rank(b));
}

// Fills a table of [name, value, class of the value's cell] rows.
function fillTable(id, rows) {
  document.getElementById(id).replaceChildren(
    ...rows.map(([name, value, className]) => {
      const tr = document.createElement("tr");
      const label = document.createElement("td");
      label.textContent = name;
      const cell = document.createElement("td");
      cell.className = "n" + (className ? " " + className : "");
      cell.textContent = value;
      tr.append(label, cell);
      return tr;
    }),
  );
}

function showFigures(stats) {
  document.getElementById("protocol").textContent = stats.protocol.toUpperCase();
  const rows = [
    ["version", stats.version],
    ["up", duration(Math.max(0, Date.now() / 1000 - stats.start_time_unix_secs))],
    ["torrents", number(stats.torrents)],
    ["seeders", number(stats.seeders)],
    ["leechers", number(stats.leechers)],
    ["downloads completed", number(stats.downloads_completed)],
  ];
  for (const kind of KIND_ORDER.filter((k) => k in stats.requests)) {
    rows.push([kind + " requests", number(sum(stats.requests[kind]))]);
  }
  rows.push(["bad requests", number(stats.errors.bad_request)]);
  rows.push(["dropped", number(stats.errors.dropped)]);
  if ("connections_open" in stats) {
    rows.push(["connections open", number(stats.connections_open)]);
  }
  fillTable("figures", rows);
  showPrivateFigures(stats.private);
}

// Private mode's figures, or its section hidden when the tracker is not private.
function showPrivateFigures(p) {
  document.getElementById("private").hidden = !p;
  if (!p) {
    return;
  }
  fillTable("private-figures", [
    ["passkeys", number(p.passkeys)],
    ["reports pending", number(p.credits_pending)],
    ["reports committed", number(p.credits_committed)],
    ["last commit", ago(p.last_commit_unix_secs)],
    ["database", p.database_up ? "up" : "down", p.database_up ? "" : "down"],
    ["commits failed in a row", number(p.commit_failures_in_a_row)],
    ["requests refused", number(sum(p.refused))],
    ["evictions", number(p.evictions)],
    ["flagged announces", number(p.flagged_announces)],
  ]);
}

function chartWidth() {
  return Math.max(320, Math.min(1000, document.body.clientWidth - 20));
}

// Makes the chart the first time, then only gives it new data (uPlot keeps the zoom
// and the series it was made with).
function plot(id, series, data) {
  const element = document.getElementById(id);
  if (!charts[id]) {
    const options = {
      width: chartWidth(),
      height: 220,
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2 }))],
      axes: [{}, { size: 70 }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    };
    charts[id] = new uPlot(options, data, element);
  } else {
    charts[id].setData(data);
  }
  element.dataset.points = String(data[0].length);
}

function showHistory(history) {
  const t = history.timestamps;
  const kinds = Object.keys(history.requests_per_sec).sort(
    (a, b) => KIND_ORDER.indexOf(a) - KIND_ORDER.indexOf(b),
  );
  plot(
    "chart-requests",
    kinds.map((k) => [k, KIND_COLOURS[k] || "#444"]),
    [t, ...kinds.map((k) => history.requests_per_sec[k])],
  );
  plot(
    "chart-peers",
    [["seeders", "#2ca02c"], ["leechers", "#d62728"]],
    [t, history.seeders, history.leechers],
  );
  plot("chart-torrents", [["torrents", "#1f77b4"]], [t, history.torrents]);
  const p = history.private;
  if (p) {
    plot(
      "chart-private-credits",
      [["reports committed", "#2ca02c"]],
      [t, p.credits_committed_per_sec],
    );
    const outcomes = ordered(p.batches_per_sec, BATCH_ORDER);
    plot(
      "chart-private-batches",
      outcomes.map((o) => [o.replaceAll("_", " "), BATCH_COLOURS[o] || "#444"]),
      [t, ...outcomes.map((o) => p.batches_per_sec[o])],
    );
    const causes = ordered(p.refused_per_sec, REFUSAL_ORDER);
    plot(
      "chart-private-refused",
      causes.map((c) => [c.replaceAll("_", " "), REFUSAL_COLOURS[c] || "#444"]),
      [t, ...causes.map((c) => p.refused_per_sec[c])],
    );
  }
}

async function fetchJson(path) {
  const answer = await fetch(path, { cache: "no-store" });
  if (!answer.ok) {
    throw new Error(path + ": HTTP " + answer.status);
  }
  return answer.json();
}

function setStatus(text, stale) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.classList.toggle("stale", stale);
}

let historyPollMs = 10000;
let lastHistory = 0;

async function refresh() {
  try {
    const stats = await fetchJson("/stats.json");
    showFigures(stats);
    if (Date.now() - lastHistory >= historyPollMs) {
      const history = await fetchJson("/history.json");
      historyPollMs = Math.max(STATS_POLL_MS, history.interval_secs * 1000);
      lastHistory = Date.now();
      showHistory(history);
    }
    setStatus("updated " + new Date().toLocaleTimeString("en-GB"), false);
  } catch (err) {
    // The tracker may be restarting: keep what is shown and try again.
    setStatus("not updated since a failure (" + err.message + "), retrying", true);
  }
}

window.addEventListener("resize", () => {
  for (const chart of Object.values(charts)) {
    chart.setSize({ width: chartWidth(), height: 220 });
  }
});

// For the end-to-end test and for the curious: the uPlot instances by element id.
window.shoalCharts = charts;

refresh().finally(() => setInterval(refresh, STATS_POLL_MS));
