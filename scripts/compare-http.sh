#!/usr/bin/env bash
# shoal's HTTP tracker against aquatic_http, on this machine, in one run.
#
# Usage: scripts/compare-http.sh [ROUNDS] [DURATION]
#   ROUNDS    rounds of alternating runs (default 3); the table shows medians
#   DURATION  measured seconds per run (default 10), after a 5 s warm-up
# Environment:
#   TRACKER_CPUS   CPUs for the server under test (default 0: all its threads on one core)
#   LOAD_CPUS      CPUs for the load generator (default 1)
#   WORKERS        aquatic socket workers = aquatic swarm workers = shoal socket
#                  workers = shoal request workers (default 1)
#   LOAD_WORKERS   load generator threads, for both load testers (default 1)
#   CONNECTIONS    connections per load worker, for both load testers (default 128,
#                  aquatic_http_load_test's default). Both testers keep one request
#                  in flight per connection, so this is the load's concurrency: a
#                  server whose answers take long needs more to show its capacity.
#                  (No pipelining: aquatic_http 0.9 answers pipelined requests out
#                  of order.)
#   MEMORY         1 (default) also fills each tracker with 1M peers in 100k torrents
#                  and reports its memory; 0 skips that
#   FILL_SECS      seconds of announces for that fill (default 20); a server that
#                  answers fewer than 1M announces in it is flagged as not filled
#   OUT_DIR        where the raw results go (default .local/bench/compare-http-DATE)
#   TLS            1: everything over HTTPS. Makes a self-signed RSA 2048 certificate
#                  for IP 127.0.0.1 (openssl) that both servers serve; tracker_load_test
#                  trusts it (network.tls_ca_path), aquatic_http_load_test runs with
#                  enable_tls = true (default 0: plain HTTP)
#
# Installs aquatic_http and aquatic_http_load_test 0.9.0 from crates.io into the
# git-ignored .local/aquatic (once). Then, round after round, runs both servers (shoal
# and aquatic_http, keep-alive, plain HTTP or with TLS=1 HTTPS) under both load testers (tracker_load_test
# http and aquatic_http_load_test), in alternation, and prints a table of medians:
# responses per second, responses per second of server CPU time, peak RSS, and the
# ratio shoal / aquatic. There is no HTTP ceiling responder yet.
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
memory="${MEMORY:-1}"
fill_secs="${FILL_SECS:-20}"
tls="${TLS:-0}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

out_dir="${OUT_DIR:-$repo_root/.local/bench/compare-http-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out_dir"

# --- install the baselines ---------------------------------------------------
install_aquatic aquatic_http aquatic_http_load_test
aquatic_http="$aquatic_bin/aquatic_http"
aquatic_load="$aquatic_bin/aquatic_http_load_test"

build_release tracker_http tracker_load_test
start_work

if [ "$tls" = 1 ]; then
    # CA:FALSE: openssl marks a self-signed certificate as a CA by default, and rustls
    # (webpki) refuses a CA certificate as the server's own (CaUsedAsEndEntity).
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2> "$work/openssl.log" \
        || { cat "$work/openssl.log" >&2; exit 1; }
    aquatic_tls=true
else
    aquatic_tls=false
fi

# --- servers -----------------------------------------------------------------
# start_server NAME PORT: starts it pinned, sets server_pid, waits for the port.
start_server() {
    local name="$1" port="$2"
    case "$name" in
        shoal)
            cat > "$work/shoal.toml" <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$port"
[http]
# The load testers open their connections from loopback, some from one address.
max_connections_per_ip = 0
[workers]
socket_workers = $workers
request_workers = $workers
[swarm]
# The load testers announce from many loopback addresses (tracker_load_test) or from
# one (aquatic_http_load_test), and aquatic has no per-address cap or whole-tracker
# peer limit: lift them, so that both trackers store the same swarms.
max_peers_per_ip = 100000000
max_peers = 100000000
max_torrents = 100000000
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
            pinned "$tracker_cpus" "$bin/tracker_http" -c "$work/shoal.toml" > "$work/server.log" 2>&1 &
            ;;
        aquatic)
            "$aquatic_http" -p \
                | sed -e "s/^address = .*/address = \"127.0.0.1:$port\"/" \
                      -e "s/^socket_workers = .*/socket_workers = $workers/" \
                      -e "s/^swarm_workers = .*/swarm_workers = $workers/" \
                      -e "s/^enable_tls = .*/enable_tls = $aquatic_tls/" \
                      -e "s|^tls_certificate_path = .*|tls_certificate_path = \"$work/cert.pem\"|" \
                      -e "s|^tls_private_key_path = .*|tls_private_key_path = \"$work/key.pem\"|" \
                      -e 's/^log_level = .*/log_level = "error"/' > "$work/aquatic.toml"
            pinned "$tracker_cpus" "$aquatic_http" -c "$work/aquatic.toml" > "$work/server.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    wait_tcp_port "$port"
}

# --- load testers --------------------------------------------------------------
# run_shoal_load PORT SECONDS WARMUP [EXTRA_TOML]: runs tracker_load_test http; prints
# "responses_per_sec cpu_secs".
run_shoal_load() {
    local port="$1" secs="$2" warm="$3" extra="${4:-}"
    {
        echo "server_address = \"127.0.0.1:$port\""
        echo "[run]"
        echo "duration_secs = $secs"
        echo "warmup_secs = $warm"
        echo "workers = $load_workers"
        echo "tracker_pid = $server_pid"
        echo "[network]"
        echo "connections_per_worker = $connections"
        if [ "$tls" = 1 ]; then
            echo "tls = true"
            echo "tls_ca_path = \"$work/cert.pem\""
        fi
        printf '%b' "$extra"
    } > "$work/load.toml"
    (pinned "$load_cpus" "$bin/tracker_load_test" http -c "$work/load.toml" --json "$work/summary.json") \
        > "$work/load.log" 2>&1
    echo "$(json_field "$work/summary.json" responses_per_sec) $(json_field "$work/summary.json" tracker_cpu_secs)"
}

# run_aquatic_load PORT: runs aquatic_http_load_test (keep-alive; HTTPS with TLS=1) for the
# warm-up plus the measured time, sampling the server's CPU time over the measured
# part; prints "responses_per_sec cpu_secs". Its figure is the average over the whole
# run (it has no warm-up setting), so the warm-up, in which it opens its connections
# (in about 1.3 s: one per 10 ms for 128, as fast as it can for more than 1280),
# lowers it a little.
run_aquatic_load() {
    local port="$1"
    "$aquatic_load" -p \
        | sed -e "s/^server_address = .*/server_address = \"127.0.0.1:$port\"/" \
              -e "s/^num_workers = .*/num_workers = $load_workers/" \
              -e "s/^num_connections = .*/num_connections = $connections/" \
              -e "s/^connection_creation_interval_ms = .*/connection_creation_interval_ms = $((1280 / connections))/" \
              -e "s/^duration = .*/duration = $((warmup + duration))/" \
              -e "s/^enable_tls = .*/enable_tls = $aquatic_tls/" > "$work/aquatic-load.toml"
    run_aquatic_load_sampled "$aquatic_load" "$load_cpus" "$warmup" "$duration"
}

# --- the alternating runs --------------------------------------------------------
results="$out_dir/runs.tsv"
echo -e "round\ttester\tserver\tresponses_per_sec\tserver_cpu_secs\tpeak_rss_mb" > "$results"
for round in $(seq 1 "$rounds"); do
    for tester in shoal aquatic; do
        for server in shoal aquatic; do
            port="$(free_tcp_port)"
            start_server "$server" "$port"
            if [ "$tester" = shoal ]; then
                read -r rps cpu < <(run_shoal_load "$port" "$duration" "$warmup")
                cp "$work/load.log" "$out_dir/load-$round-$tester-$server.log"
            else
                read -r rps cpu < <(run_aquatic_load "$port")
                cp "$work/load.log" "$out_dir/load-$round-$tester-$server.log"
            fi
            rss="$(peak_rss_mb "$server_pid")"
            stop_process "$server_pid"
            server_pid=""
            echo -e "$round\t$tester\t$server\t$rps\t$cpu\t$rss" | tee -a "$results"
        done
    done
done

# --- memory: 1M peers in 100k torrents --------------------------------------------
memory_results="$out_dir/memory.tsv"
if [ "$memory" = 1 ]; then
    echo -e "server\tannounces\tpeak_rss_mb\trss_mb" > "$memory_results"
    # Announces only, each connection's peers in turn (so 1M announces store 1M
    # distinct peers), no "stopped".
    fill='[workload]\ntorrents = 100000\npeers = 1000000\nweight_scrape = 0\nweight_event_started = 0\nweight_event_completed = 0\nweight_event_stopped = 0\nnumwant = 30\nsequential_peers = true\n'
    for server in shoal aquatic; do
        port="$(free_tcp_port)"
        start_server "$server" "$port"
        run_shoal_load "$port" "$fill_secs" 0 "$fill" > /dev/null
        announces="$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(int(s["announce_per_sec"] * s["measured_secs"]))' "$work/summary.json")"
        echo -e "$server\t$announces\t$(peak_rss_mb "$server_pid")\t$(current_rss_mb "$server_pid")" | tee -a "$memory_results"
        stop_process "$server_pid"
        server_pid=""
    done
fi

# --- the table ---------------------------------------------------------------------
python3 - "$results" "$memory_results" "$memory" "$duration" "$tls" <<'PY'
import csv, statistics, sys
runs, memory_file, memory, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
over = "HTTPS" if sys.argv[5] == "1" else "plain HTTP"
rows = list(csv.DictReader(open(runs), delimiter="\t"))

def values(tester, server, f):
    out = []
    for r in rows:
        if r["tester"] == tester and r["server"] == server:
            try:
                out.append(f(r))
            except (ValueError, ZeroDivisionError):
                pass
    return out

def med(tester, server, f):
    v = values(tester, server, f)
    return statistics.median(v) if v else float("nan")

rps = lambda r: float(r["responses_per_sec"])
# Responses per CPU second the server used in the measured window (for
# aquatic_http_load_test, its whole-run average rate times the window).
per_cpu = lambda r: float(r["responses_per_sec"]) * duration / float(r["server_cpu_secs"])
rss = lambda r: float(r["peak_rss_mb"])

print()
print(f"medians of {len({r['round'] for r in rows})} rounds, {duration:.0f} s measured per run, {over}")
print(f"{'load tester':<24}{'server':<10}{'responses/s':>13}{'per CPU-s':>12}{'peak RSS MB':>13}")
for tester in ("shoal", "aquatic"):
    name = "tracker_load_test" if tester == "shoal" else "aquatic_http_load_test"
    for server in ("shoal", "aquatic"):
        print(f"{name:<24}{server:<10}{med(tester, server, rps):>13.0f}"
              f"{med(tester, server, per_cpu):>12.0f}{med(tester, server, rss):>13.1f}")
    s, a = (med(tester, x, rps) for x in ("shoal", "aquatic"))
    ratio_cpu = med(tester, "shoal", per_cpu) / med(tester, "aquatic", per_cpu)
    print(f"  shoal / aquatic: {s / a:.2f}x responses/s, {ratio_cpu:.2f}x per CPU-s")
if memory == "1":
    print()
    print("memory after filling with 1M peers in 100k torrents")
    for r in csv.DictReader(open(memory_file), delimiter="\t"):
        filled = "" if int(r["announces"]) >= 1_000_000 else "   NOT FILLED (fewer announces than peers)"
        print(f"  {r['server']:<12} announces {int(r['announces']):>9}   "
              f"peak RSS {float(r['peak_rss_mb']):7.1f} MB   RSS {float(r['rss_mb']):7.1f} MB{filled}")
PY
echo
echo "raw results: $out_dir"
