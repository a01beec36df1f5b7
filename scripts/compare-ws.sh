#!/usr/bin/env bash
# shoal's WebSocket (WebTorrent) tracker against aquatic_ws, on this machine, in one run.
#
# Usage: scripts/compare-ws.sh [ROUNDS] [DURATION]
#   ROUNDS    rounds of alternating runs (default 3); the table shows medians
#   DURATION  measured seconds per run (default 10; a multiple of 5, as
#             aquatic_ws_load_test reports every 5 s), after a 5 s warm-up
# Environment:
#   TRACKER_CPUS   CPUs for the server under test (default 0: all its threads on one
#                  core; empty: unpinned)
#   LOAD_CPUS      CPUs for the load generator (default 1; empty: unpinned)
#   WORKERS        aquatic socket workers = aquatic swarm workers = shoal socket
#                  workers = shoal request workers (default 1)
#   LOAD_WORKERS   load generator threads, for both load testers (default 1)
#   CONNECTIONS    tracker_load_test connections per load worker (default 128)
#   IN_FLIGHT      tracker_load_test announces and scrapes in flight per connection
#                  (default 1)
#   AQUATIC_CONNECTIONS  aquatic_ws_load_test connections per load worker (default 16,
#                  its default)
#   OFFERS         offers per announce, for both load testers (default 10)
#   SDP_BYTES      tracker_load_test's SDP size per offer and answer (default 500;
#                  aquatic_ws_load_test's is fixed at 47)
#   TLS            1: everything over wss://. Makes a self-signed RSA 2048 certificate
#                  for IP 127.0.0.1 (openssl) that both servers serve; tracker_load_test
#                  trusts it (network.tls_ca_path) (default 0: plain ws://).
#                  aquatic_ws_load_test 0.9.0 runs only then: it always speaks TLS (its
#                  connections go through a rustls TlsConnector, with no setting to turn
#                  that off), so it cannot load a plain ws:// server.
#   SHOAL_BIN      run this tracker_ws binary as shoal instead of the one built here
#   SHOAL_MAX_OUTGOING  shoal's ws.max_outgoing_bytes_per_connection (default: shoal's
#                  own default, 256 KiB). aquatic_ws_load_test reads one message per
#                  message it sends, so most of what the tracker relays to it is not
#                  read: shoal sheds relayed offers and answers to a connection with
#                  half its bound waiting, where aquatic_ws, which has no bound, keeps
#                  them all
#   SHOAL_MAX_OUTGOING_TOTAL  shoal's ws.max_outgoing_bytes_total (default: shoal's
#                  own default, 256 MiB)
#   IDLE           1 (default): also measures each server's memory with
#                  IDLE_CONNECTIONS open, idle WebSocket connections (upgrade done,
#                  nothing sent after), over plain ws:// even with TLS=1, with
#                  scripts/idle-connections.py; 0 skips that
#   IDLE_CONNECTIONS  default 18000: this machine's hard RLIMIT_NOFILE is 20,000 and
#                  cannot be raised, and the server and scripts/idle-connections.py
#                  each need one descriptor per connection plus a few
#   OUT_DIR        where the raw results go (default .local/bench/compare-ws-DATE)
#
# Installs aquatic_ws and aquatic_ws_load_test 0.9.0 from crates.io into the
# git-ignored .local/aquatic (once). Then, round after round, runs both servers under
# both load testers (tracker_load_test ws, and with TLS=1 aquatic_ws_load_test), in
# alternation, and prints a table of medians: messages received per second by the load
# tester (announce replies, relayed offers and answers, scrape replies, errors), the
# same per second of server CPU time, peak RSS, and the ratio shoal / aquatic.
# Traffic goes to 127.0.0.1 only; every run is bounded and every process stopped.
set -euo pipefail

rounds="${1:-3}"
duration="${2:-10}"
warmup=5
tracker_cpus="${TRACKER_CPUS-0}"
load_cpus="${LOAD_CPUS-1}"
workers="${WORKERS:-1}"
load_workers="${LOAD_WORKERS:-1}"
connections="${CONNECTIONS:-128}"
in_flight="${IN_FLIGHT:-1}"
aquatic_connections="${AQUATIC_CONNECTIONS:-16}"
offers="${OFFERS:-10}"
sdp_bytes="${SDP_BYTES:-500}"
tls="${TLS:-0}"
shoal_max_outgoing="${SHOAL_MAX_OUTGOING:-262144}"
shoal_max_outgoing_total="${SHOAL_MAX_OUTGOING_TOTAL:-268435456}"
idle="${IDLE:-1}"
idle_connections="${IDLE_CONNECTIONS:-18000}"

if [ $((duration % 5)) != 0 ]; then
    echo "DURATION must be a multiple of 5 (aquatic_ws_load_test reports every 5 s)" >&2
    exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

out_dir="${OUT_DIR:-$repo_root/.local/bench/compare-ws-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out_dir"

# --- install the baselines ---------------------------------------------------
aquatic_root="$repo_root/.local/aquatic"
aquatic_version="0.9.0"
for crate in aquatic_ws aquatic_ws_load_test; do
    if [ ! -x "$aquatic_root/bin/$crate" ]; then
        # Not --locked, as for aquatic_udp and aquatic_http: the 0.9.0 lock files pin
        # crates that no longer build with current rustc.
        cargo install "$crate@$aquatic_version" --root "$aquatic_root"
    fi
done
aquatic_ws="$aquatic_root/bin/aquatic_ws"
aquatic_load="$aquatic_root/bin/aquatic_ws_load_test"

build_release tracker_ws tracker_load_test
# SHOAL_BIN: another tracker_ws binary as "shoal" (one built from an older commit, for
# before/after figures against the same aquatic_ws run).
shoal_bin="${SHOAL_BIN:-$bin/tracker_ws}"
start_work
# Both servers and the idle-connection script need one descriptor per connection.
ulimit -n "$(ulimit -Hn)"

if [ "$tls" = 1 ]; then
    make_test_certificate "$work"
    aquatic_tls=true
    testers="shoal aquatic"
else
    aquatic_tls=false
    testers="shoal"
    echo "plain ws://: aquatic_ws_load_test 0.9.0 is not run (it speaks TLS only)"
fi

# --- servers -----------------------------------------------------------------
# start_server NAME PORT CPUS: starts it (pinned to CPUS unless empty), sets
# server_pid, waits for the port.
start_server() {
    local name="$1" port="$2" cpus="$3"
    case "$name" in
        shoal)
            cat > "$work/shoal.toml" <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$port"
[ws]
# The load testers (and the idle connections) connect from loopback, many from one
# address.
max_connections_per_ip = 0
# aquatic_ws has no such bound, and aquatic_ws_load_test announces each connection
# (one peer id) in any of its 10,000 torrents.
max_swarms_per_connection = 65536
max_outgoing_bytes_per_connection = $shoal_max_outgoing
max_outgoing_bytes_total = $shoal_max_outgoing_total
[workers]
socket_workers = $workers
request_workers = $workers
[swarm]
# aquatic has no whole-tracker peer or torrent limits: lift them, so that both
# trackers store the same swarms.
max_peers = 100000000
max_torrents = 100000000
max_peers_per_torrent = 100000000
[statistics]
interval_secs = 0
TOML
            if [ "$tls" = 1 ]; then
                cat >> "$work/shoal.toml" <<TOML
[tls]
enabled = true
certificate_chain_path = "$work/cert.pem"
private_key_path = "$work/key.pem"
TOML
            fi
            pinned "$cpus" "$shoal_bin" -c "$work/shoal.toml" > "$work/server.log" 2>&1 &
            ;;
        aquatic)
            "$aquatic_ws" -p \
                | sed -e "s/^address = .*/address = \"127.0.0.1:$port\"/" \
                      -e "s/^socket_workers = .*/socket_workers = $workers/" \
                      -e "s/^swarm_workers = .*/swarm_workers = $workers/" \
                      -e "s/^enable_tls = .*/enable_tls = $aquatic_tls/" \
                      -e "s|^tls_certificate_path = .*|tls_certificate_path = \"$work/cert.pem\"|" \
                      -e "s|^tls_private_key_path = .*|tls_private_key_path = \"$work/key.pem\"|" \
                      -e "s/^max_offers = .*/max_offers = $offers/" \
                      -e 's/^log_level = .*/log_level = "error"/' > "$work/aquatic.toml"
            pinned "$cpus" "$aquatic_ws" -c "$work/aquatic.toml" > "$work/server.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    wait_tcp_port "$port"
}

# --- load testers --------------------------------------------------------------
# run_shoal_load PORT: runs tracker_load_test ws; prints "messages_per_sec cpu_secs
# announce offer answer scrape error".
run_shoal_load() {
    local port="$1"
    {
        echo "server_address = \"127.0.0.1:$port\""
        echo "[run]"
        echo "duration_secs = $duration"
        echo "warmup_secs = $warmup"
        echo "workers = $load_workers"
        echo "tracker_pid = $server_pid"
        echo "[network]"
        echo "connections_per_worker = $connections"
        echo "requests_in_flight = $in_flight"
        if [ "$tls" = 1 ]; then
            echo "tls = true"
            echo "tls_ca_path = \"$work/cert.pem\""
        fi
        echo "[webtorrent]"
        echo "offers_per_announce = $offers"
        echo "sdp_bytes = $sdp_bytes"
    } > "$work/load.toml"
    (pinned "$load_cpus" "$bin/tracker_load_test" ws -c "$work/load.toml" --json "$work/summary.json") \
        > "$work/load.log" 2>&1
    python3 - "$work/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
cpu = s["tracker_cpu_secs"]
print(f"{s['responses_per_sec']:.1f}", "nan" if cpu is None else f"{cpu:.3f}",
      *(s[k] for k in ("announce_per_sec", "offer_per_sec", "answer_per_sec",
                       "scrape_per_sec", "error_per_sec")))
PY
}

# run_aquatic_load PORT: runs aquatic_ws_load_test (TLS; its defaults but for the
# connections and offers) until it has measured DURATION seconds after reaching its
# connections (its first 5 s report is the warm-up), sampling the server's CPU time
# over that window; prints the same fields as run_shoal_load, the per-kind figures
# averaged over its 5 s reports. If it never reaches its connections (it then never
# stops), it is stopped after 3x the time and "nan" is printed.
run_aquatic_load() {
    local port="$1"
    "$aquatic_load" -p \
        | sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$port\"/" \
              -e "s/^num_workers = .*/num_workers = $load_workers/" \
              -e "s/^num_connections_per_worker = .*/num_connections_per_worker = $aquatic_connections/" \
              -e "s/^offers_per_request = .*/offers_per_request = $offers/" \
              -e "s/^duration = .*/duration = $duration/" > "$work/aquatic-load.toml"
    pinned "$load_cpus" "$aquatic_load" -c "$work/aquatic-load.toml" > "$work/load.log" 2>&1 &
    local load_pid=$!
    sleep 5
    local cpu0 cpu1
    cpu0="$(cpu_secs "$server_pid")"
    sleep "$duration"
    cpu1="$(cpu_secs "$server_pid")"
    local waited=0
    while kill -0 "$load_pid" 2>/dev/null && [ "$waited" -lt $((2 * (5 + duration))) ]; do
        sleep 1
        waited=$((waited + 1))
    done
    if kill -0 "$load_pid" 2>/dev/null; then
        stop_process "$load_pid"
    fi
    wait "$load_pid" 2>/dev/null || true
    python3 - "$work/load.log" "$cpu0" "$cpu1" <<'PY'
import re, sys
log, cpu0, cpu1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
text = open(log).read()
average = re.search(r"^Average responses per second: ([0-9.]+)", text, re.M)
if "Max connections reached" not in text or not average:
    print("nan nan nan nan nan nan nan")
    sys.exit()
reports = text.split("Max connections reached", 1)[1].split("Responses in:")[1:]
kinds = ("Announce", "Offer", "Answer", "Scrape", "Error")
sums = dict.fromkeys(kinds, 0.0)
for r in reports:
    for k in kinds:
        sums[k] += float(re.search(rf"- {k} responses:\s+([0-9.]+)", r).group(1))
n = max(len(reports), 1)
print(average.group(1), f"{cpu1 - cpu0:.3f}", *(f"{sums[k] / n:.1f}" for k in kinds))
PY
}

# --- the alternating runs --------------------------------------------------------
results="$out_dir/runs.tsv"
echo -e "round\ttester\tserver\tmessages_per_sec\tserver_cpu_secs\tannounce\toffer\tanswer\tscrape\terror\tpeak_rss_mb" > "$results"
for round in $(seq 1 "$rounds"); do
    for tester in $testers; do
        for server in shoal aquatic; do
            port="$(free_tcp_port)"
            start_server "$server" "$port" "$tracker_cpus"
            if [ "$tester" = shoal ]; then
                read -r mps cpu an of aw sc er < <(run_shoal_load "$port")
            else
                read -r mps cpu an of aw sc er < <(run_aquatic_load "$port")
            fi
            cp "$work/load.log" "$out_dir/load-$round-$tester-$server.log"
            rss="$(peak_rss_mb "$server_pid")"
            stop_process "$server_pid"
            server_pid=""
            echo -e "$round\t$tester\t$server\t$mps\t$cpu\t$an\t$of\t$aw\t$sc\t$er\t$rss" | tee -a "$results"
        done
    done
done

# --- memory: idle WebSocket connections ---------------------------------------------
idle_results="$out_dir/idle.tsv"
if [ "$idle" = 1 ]; then
    echo -e "server\tresult" > "$idle_results"
    # Over plain ws:// whatever TLS says: the script speaks plain TCP.
    tls=0
    aquatic_tls=false
    for server in shoal aquatic; do
        port="$(free_tcp_port)"
        start_server "$server" "$port" "$tracker_cpus"
        sleep 1
        result="$(WEBSOCKET=1 python3 scripts/idle-connections.py "127.0.0.1:$port" "$server_pid" "$idle_connections")"
        echo -e "$server\t$result" | tee -a "$idle_results"
        stop_process "$server_pid"
        server_pid=""
    done
fi

# --- the table ---------------------------------------------------------------------
python3 - "$results" "$duration" "${TLS:-0}" "$idle" "$idle_results" <<'PY'
import csv, math, statistics, sys
runs, duration, tls, idle, idle_file = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
over = "wss:// (TLS)" if tls == "1" else "plain ws://"
rows = list(csv.DictReader(open(runs), delimiter="\t"))

def values(tester, server, f):
    out = []
    for r in rows:
        if r["tester"] == tester and r["server"] == server:
            try:
                v = f(r)
            except (ValueError, ZeroDivisionError):
                continue
            if not math.isnan(v):
                out.append(v)
    return out

def med(tester, server, f):
    v = values(tester, server, f)
    return statistics.median(v) if v else float("nan")

mps = lambda r: float(r["messages_per_sec"])
per_cpu = lambda r: float(r["messages_per_sec"]) * duration / float(r["server_cpu_secs"])
cpu = lambda r: float(r["server_cpu_secs"])
rss = lambda r: float(r["peak_rss_mb"])

print()
print(f"medians of {len({r['round'] for r in rows})} rounds, {duration:.0f} s measured per run, {over}")
print(f"{'load tester':<22}{'server':<9}{'messages/s':>12}{'per CPU-s':>11}{'CPU s':>7}{'peak RSS MB':>13}"
      f"{'announce':>10}{'offer':>9}{'answer':>9}{'scrape':>8}{'error':>7}")
for tester in sorted({r["tester"] for r in rows}, reverse=True):
    name = "tracker_load_test" if tester == "shoal" else "aquatic_ws_load_test"
    for server in ("shoal", "aquatic"):
        kinds = "".join(f"{med(tester, server, lambda r, k=k: float(r[k])):>{w}.0f}"
                        for k, w in (("announce", 10), ("offer", 9), ("answer", 9), ("scrape", 8), ("error", 7)))
        print(f"{name:<22}{server:<9}{med(tester, server, mps):>12.0f}{med(tester, server, per_cpu):>11.0f}"
              f"{med(tester, server, cpu):>7.2f}{med(tester, server, rss):>13.1f}{kinds}")
    s, a = (med(tester, x, mps) for x in ("shoal", "aquatic"))
    ratio_cpu = med(tester, "shoal", per_cpu) / med(tester, "aquatic", per_cpu)
    print(f"  shoal / aquatic: {s / a:.2f}x messages/s, {ratio_cpu:.2f}x per CPU-s")
if idle == "1":
    print()
    print("idle WebSocket connections (upgrade done, nothing sent)")
    for r in csv.DictReader(open(idle_file), delimiter="\t"):
        print(f"  {r['server']:<8} {r['result']}")
PY
echo
echo "raw results: $out_dir"
