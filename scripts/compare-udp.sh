#!/usr/bin/env bash
# shoal's UDP tracker against aquatic_udp, on this machine, in one run.
#
# Usage: scripts/compare-udp.sh [ROUNDS] [DURATION]
#   ROUNDS    rounds of alternating runs (default 3); the table shows medians
#   DURATION  measured seconds per run (default 10), after a 5 s warm-up
# Environment:
#   TRACKER_CPUS   CPUs for the server under test (default 0: all its threads on one core)
#   LOAD_CPUS      CPUs for the load generator (default 1)
#   WORKERS        aquatic socket workers = shoal socket workers = shoal request
#                  workers = ceiling workers (default 1; the naive responder has one)
#   LOAD_WORKERS   load generator threads, for both load testers (default 1)
#   MEMORY         1 (default) also fills each tracker with 1M peers in 100k torrents
#                  and reports its memory; 0 skips that
#   OUT_DIR        where the raw results go (default .local/bench/compare-udp-DATE)
#
# Installs aquatic_udp and aquatic_udp_load_test 0.9.0 from crates.io into the
# git-ignored .local/aquatic (once), and Debian's opentracker for the memory
# comparison if apt-get can. Then, round after round, runs every server (shoal,
# aquatic_udp, the ceiling responder of tracker_load_test, and its naive responder:
# one blocking socket, one recv_from and one send_to per datagram, no state) under
# both load testers (tracker_load_test udp and aquatic_udp_load_test), in
# alternation, and prints a table of medians: responses per second, responses per
# second of server CPU time, peak RSS, and the ratios shoal / aquatic, shoal /
# ceiling and shoal / naive.
# Traffic goes to 127.0.0.1 only; every run is bounded and every process stopped.
set -euo pipefail

rounds="${1:-3}"
duration="${2:-10}"
warmup=5
tracker_cpus="${TRACKER_CPUS-0}"
load_cpus="${LOAD_CPUS-1}"
workers="${WORKERS:-1}"
load_workers="${LOAD_WORKERS:-1}"
memory="${MEMORY:-1}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

out_dir="${OUT_DIR:-$repo_root/.local/bench/compare-udp-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out_dir"

# --- install the baselines ---------------------------------------------------
install_aquatic aquatic_udp aquatic_udp_load_test
aquatic_udp="$aquatic_bin/aquatic_udp"
opentracker=""
if [ "$memory" = 1 ]; then
    if ! command -v opentracker > /dev/null; then
        apt-get install -y opentracker > /dev/null 2>&1 || true
    fi
    opentracker="$(command -v opentracker || true)"
fi

build_release
start_work

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
[workers]
socket_workers = $workers
request_workers = $workers
[swarm]
# The load testers announce every peer from a few loopback addresses, and aquatic has
# no per-address cap or whole-tracker peer limit: lift them, so that both trackers store
# the same swarms.
max_peers_per_ip = 100000000
max_peers = 100000000
max_torrents = 100000000
[statistics]
interval_secs = 0
TOML
            pinned "$tracker_cpus" "$bin/tracker_udp" -c "$work/shoal.toml" > "$work/server.log" 2>&1 &
            ;;
        aquatic)
            "$aquatic_udp" -p \
                | sed -e "s/^address = .*/address = \"127.0.0.1:$port\"/" \
                      -e "s/^socket_workers = .*/socket_workers = $workers/" \
                      -e 's/^log_level = .*/log_level = "error"/' > "$work/aquatic.toml"
            pinned "$tracker_cpus" "$aquatic_udp" -c "$work/aquatic.toml" > "$work/server.log" 2>&1 &
            ;;
        ceiling)
            cat > "$work/ceiling.toml" <<TOML
workers = $workers
[network]
address = "127.0.0.1:$port"
TOML
            pinned "$tracker_cpus" "$bin/tracker_load_test" udp-ceiling -c "$work/ceiling.toml" > "$work/server.log" 2>&1 &
            ;;
        naive)
            # One blocking socket, one recv_from and one send_to per datagram, no state.
            cat > "$work/naive.toml" <<TOML
naive = true
[network]
address = "127.0.0.1:$port"
TOML
            pinned "$tracker_cpus" "$bin/tracker_load_test" udp-ceiling -c "$work/naive.toml" > "$work/server.log" 2>&1 &
            ;;
        opentracker)
            # TCP on a second free port, UDP on PORT. As root it insists on dropping
            # privileges, to nobody then. Debian builds it to serve listed torrents
            # only: it gets the workload's info hashes as its list.
            pinned "$tracker_cpus" "$opentracker" -i 127.0.0.1 -p "$(free_udp_port)" -P "$port" \
                -u nobody -w "$work/allow.txt" > "$work/server.log" 2>&1 &
            ;;
    esac
    server_pid=$!
    wait_udp_port "$port"
}

# --- load testers --------------------------------------------------------------
# run_shoal_load PORT SECONDS WARMUP [EXTRA_TOML]: runs tracker_load_test; prints
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
        printf '%b' "$extra"
    } > "$work/load.toml"
    (pinned "$load_cpus" "$bin/tracker_load_test" udp -c "$work/load.toml" --json "$work/summary.json") \
        > "$work/load.log" 2>&1
    echo "$(json_field "$work/summary.json" responses_per_sec) $(json_field "$work/summary.json" tracker_cpu_secs)"
}

# --- the alternating runs --------------------------------------------------------
results="$out_dir/runs.tsv"
echo -e "round\ttester\tserver\tresponses_per_sec\tserver_cpu_secs\tpeak_rss_mb" > "$results"
for round in $(seq 1 "$rounds"); do
    for tester in shoal aquatic; do
        for server in shoal aquatic ceiling naive; do
            port="$(free_udp_port)"
            start_server "$server" "$port"
            if [ "$tester" = shoal ]; then
                read -r rps cpu < <(run_shoal_load "$port" "$duration" "$warmup")
            else
                read -r rps cpu < <(run_aquatic_udp_load "$port" "$warmup" "$duration" "$load_cpus" "$load_workers")
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
    # Announces only, each peer in turn (so 1M announces store 1M distinct peers),
    # no "stopped"; 20 s at well over 100k announces per second.
    fill='[network]\nin_flight_per_worker = 256\n[workload]\ntorrents = 100000\npeers = 1000000\nweight_connect = 0\nweight_scrape = 0\nweight_event_started = 0\nweight_event_completed = 0\nweight_event_stopped = 0\nnumwant = 30\nsequential_peers = true\n'
    servers="shoal aquatic"
    if [ -n "$opentracker" ]; then
        servers="$servers opentracker"
        printf '[workload]\ntorrents = 100000\n' > "$work/hashes.toml"
        "$bin/tracker_load_test" udp-info-hashes -c "$work/hashes.toml" > "$work/allow.txt"
        # Readable by opentracker after it drops to nobody.
        chmod 755 "$work"
        chmod 644 "$work/allow.txt"
    fi
    for server in $servers; do
        port="$(free_udp_port)"
        start_server "$server" "$port"
        run_shoal_load "$port" 20 0 "$fill" > /dev/null
        announces="$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(int(s["announce_per_sec"] * s["measured_secs"]))' "$work/summary.json")"
        echo -e "$server\t$announces\t$(peak_rss_mb "$server_pid")\t$(current_rss_mb "$server_pid")" | tee -a "$memory_results"
        stop_process "$server_pid"
        server_pid=""
    done
fi

# --- the table ---------------------------------------------------------------------
python3 - "$results" "$memory_results" "$memory" "$duration" <<'PY'
import csv, statistics, sys
runs, memory_file, memory, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
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
# Responses in the measured window per CPU second the server used in it.
per_cpu = lambda r: float(r["responses_per_sec"]) * duration / float(r["server_cpu_secs"])
rss = lambda r: float(r["peak_rss_mb"])

print()
print(f"medians of {len({r['round'] for r in rows})} rounds, {duration:.0f} s measured per run")
print(f"{'load tester':<24}{'server':<10}{'responses/s':>13}{'per CPU-s':>12}{'peak RSS MB':>13}")
for tester in ("shoal", "aquatic"):
    name = "tracker_load_test" if tester == "shoal" else "aquatic_udp_load_test"
    for server in ("shoal", "aquatic", "ceiling", "naive"):
        print(f"{name:<24}{server:<10}{med(tester, server, rps):>13.0f}"
              f"{med(tester, server, per_cpu):>12.0f}{med(tester, server, rss):>13.1f}")
    s, a, c, n = (med(tester, x, rps) for x in ("shoal", "aquatic", "ceiling", "naive"))
    ratio_cpu = med(tester, "shoal", per_cpu) / med(tester, "aquatic", per_cpu)
    print(f"  shoal / aquatic: {s / a:.2f}x responses/s, {ratio_cpu:.2f}x per CPU-s; "
          f"shoal / ceiling: {s / c:.2f}; shoal / naive: {s / n:.2f}")
if memory == "1":
    print()
    print("memory after filling with 1M peers in 100k torrents")
    for r in csv.DictReader(open(memory_file), delimiter="\t"):
        print(f"  {r['server']:<12} announces {int(r['announces']):>9}   "
              f"peak RSS {float(r['peak_rss_mb']):7.1f} MB   RSS {float(r['rss_mb']):7.1f} MB")
PY
echo
echo "raw results: $out_dir"
