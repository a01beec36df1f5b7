#!/usr/bin/env bash
# shoal's UDP tracker in private mode against the same tracker in public mode, on this
# machine, in one run.
#
# Usage: scripts/compare-private.sh [ROUNDS] [DURATION]
#   ROUNDS    rounds of alternating runs (default 3); the table shows medians
#   DURATION  measured seconds per run (default 10), after a 5 s warm-up
# Environment:
#   TRACKER_CPUS   CPUs for the tracker (default 0: all its threads on one core)
#   LOAD_CPUS      CPUs for the load generator (default 1)
#   USERS          passkeys the load spreads its peers over (default 1000)
#   LOAD_EXTRA     TOML lines added to the load tester's config of the rounds, e.g.
#                  '[workload]\ntorrents = 10000\npeers = 100000\n' (default: none,
#                  the load tester's default workload)
#   MEMORY         1 (default) also fills each mode with 1M peers in 100k torrents and
#                  reports the tracker's memory; 0 skips that
#   OUT_DIR        where the raw results go (default .local/bench/compare-private-DATE)
#   BASELINE_BIN   a tracker_udp binary of another commit (e.g. built in a worktree:
#                  `git worktree add ../base COMMIT && cd ../base && cargo build
#                  --release -p tracker_udp`): each round also runs it in private mode
#                  under the same load, as a third row ("baseline"), and the table adds
#                  private / baseline
#
# Round after round, runs tracker_udp in public mode and in private mode (a passkey
# file of USERS passkeys, accounting to a SQLite file in the temporary directory,
# flushed every 5 s) under the same tracker_load_test udp load, in alternation; in
# private mode every announce carries a passkey in its BEP 41 URL data. Prints a table
# of medians: responses per second, responses per second of tracker CPU time, peak RSS,
# and the ratio private / public. Traffic goes to 127.0.0.1 only; every run is bounded
# and every process stopped.
set -euo pipefail

rounds="${1:-3}"
duration="${2:-10}"
warmup=5
tracker_cpus="${TRACKER_CPUS-0}"
load_cpus="${LOAD_CPUS-1}"
users="${USERS:-1000}"
memory="${MEMORY:-1}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

out_dir="${OUT_DIR:-$repo_root/.local/bench/compare-private-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out_dir"

build_release
start_work

# USERS passkeys, 32 characters of [0-9A-Za-z] each.
python3 - "$users" > "$work/passkeys.txt" <<'PY'
import random, string, sys
rng = random.Random(1)
alphabet = string.ascii_letters + string.digits
for _ in range(int(sys.argv[1])):
    print("".join(rng.choice(alphabet) for _ in range(32)))
PY

# start_tracker MODE PORT: starts tracker_udp pinned in MODE (public | private |
# baseline: BASELINE_BIN in private mode), sets server_pid, waits for the port.
start_tracker() {
    local mode="$1" port="$2"
    local binary="$bin/tracker_udp"
    if [ "$mode" = baseline ]; then
        binary="$BASELINE_BIN"
        mode=private
    fi
    # A key the binary knows (an older baseline may predate the site cache).
    local site_cache_line=""
    if "$binary" -p 2>/dev/null | grep '^site_cache_path' > /dev/null; then
        site_cache_line="site_cache_path = \"$work/site.cache\""
    fi
    rm -f "$work"/accounting.db*
    {
        one_core_tracker_toml "$port"
        if [ "$mode" = private ]; then
            cat <<TOML
[private]
enabled = true
passkeys_path = "$work/passkeys.txt"
$site_cache_line
[accounting]
url = "sqlite://$work/accounting.db"
max_peers = 100000000
max_peers_per_passkey = 100000000
TOML
        fi
    } > "$work/tracker.toml"
    pinned "$tracker_cpus" "$binary" -c "$work/tracker.toml" > "$work/server.log" 2>&1 &
    server_pid=$!
    wait_udp_port "$port"
}

# run_load MODE PORT SECONDS WARMUP [EXTRA_TOML]: runs tracker_load_test udp; prints
# "responses_per_sec responses_per_tracker_cpu_sec".
run_load() {
    local mode="$1" port="$2" secs="$3" warm="$4" extra="${5:-}"
    {
        echo "server_address = \"127.0.0.1:$port\""
        echo "[run]"
        echo "duration_secs = $secs"
        echo "warmup_secs = $warm"
        echo "workers = 1"
        echo "tracker_pid = $server_pid"
        if [ "$mode" != public ]; then
            echo "[private]"
            echo "passkeys_path = \"$work/passkeys.txt\""
        fi
        printf '%b' "$extra"
    } > "$work/load.toml"
    (pinned "$load_cpus" "$bin/tracker_load_test" udp -c "$work/load.toml" --json "$work/summary.json") \
        > "$work/load.log" 2>&1 || { cat "$work/load.log" >&2; return 1; }
    echo "$(json_field "$work/summary.json" responses_per_sec) $(json_field "$work/summary.json" responses_per_tracker_cpu_sec)"
}

results="$out_dir/runs.tsv"
echo -e "round\tmode\tresponses_per_sec\tresponses_per_cpu_sec\tpeak_rss_mb" > "$results"
modes="public private"
if [ -n "${BASELINE_BIN:-}" ]; then
    [ -x "$BASELINE_BIN" ] || { echo "BASELINE_BIN: $BASELINE_BIN is not an executable" >&2; exit 1; }
    modes="public private baseline"
fi
for round in $(seq 1 "$rounds"); do
    for mode in $modes; do
        port="$(free_udp_port)"
        start_tracker "$mode" "$port"
        read -r rps cpu < <(run_load "$mode" "$port" "$duration" "$warmup" "${LOAD_EXTRA:-}")
        rss="$(peak_rss_mb "$server_pid")"
        stop_process "$server_pid"
        server_pid=""
        if [ "$mode" != public ] && grep -q 'ERROR' "$work/server.log"; then
            echo "tracker errors in $mode mode:" >&2
            cat "$work/server.log" >&2
            exit 1
        fi
        echo -e "$round\t$mode\t$rps\t$cpu\t$rss" | tee -a "$results"
    done
done

memory_results="$out_dir/memory.tsv"
if [ "$memory" = 1 ]; then
    echo -e "mode\tpeak_rss_mb\trss_mb\tcommitted_peers" > "$memory_results"
    # Announces only, each peer in turn (so 1M announces store 1M distinct peers).
    fill='[network]\nin_flight_per_worker = 256\n[workload]\ntorrents = 100000\npeers = 1000000\nweight_connect = 0\nweight_scrape = 0\nweight_event_started = 0\nweight_event_completed = 0\nweight_event_stopped = 0\nnumwant = 30\nsequential_peers = true\n'
    for mode in public private; do
        port="$(free_udp_port)"
        start_tracker "$mode" "$port"
        run_load "$mode" "$port" 20 0 "$fill" > /dev/null
        committed=""
        if [ "$mode" = private ]; then
            # The steady state: every peer's mark committed (all 1M, or the count
            # unchanged for 8 s, longer than a flush interval: a worker hands over at
            # most 100,000 reports per interval when none is urgent), so that no batch
            # or backlog is counted as the peers' memory.
            previous=-1
            unchanged=0
            for _ in $(seq 1 90); do
                sleep 2
                committed="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1], timeout=10).execute("SELECT COUNT(*) FROM shoal_peer_marks").fetchone()[0])' "$work/accounting.db")"
                if [ "$committed" -ge 1000000 ]; then
                    break
                fi
                if [ "$committed" = "$previous" ]; then
                    unchanged=$((unchanged + 1))
                    [ "$unchanged" -ge 4 ] && break
                else
                    unchanged=0
                fi
                previous="$committed"
            done
        else
            sleep 2
        fi
        echo -e "$mode\t$(peak_rss_mb "$server_pid")\t$(current_rss_mb "$server_pid")\t$committed" | tee -a "$memory_results"
        stop_process "$server_pid"
        server_pid=""
    done
fi

python3 - "$results" "$memory_results" "$memory" <<'PY'
import csv, statistics, sys
runs = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def med(mode, key):
    values = [float(r[key]) for r in runs if r["mode"] == mode and r[key]]
    return statistics.median(values) if values else float("nan")
print()
print("| mode | responses/s | responses per tracker CPU second | peak RSS (MB) |")
print("|---|---|---|---|")
modes = [m for m in ("public", "private", "baseline") if any(r["mode"] == m for r in runs)]
for mode in modes:
    print(f"| {mode} | {med(mode, 'responses_per_sec'):,.0f} | "
          f"{med(mode, 'responses_per_cpu_sec'):,.0f} | {med(mode, 'peak_rss_mb'):.0f} |")
print()
pairs = [("private", "public")]
if "baseline" in modes:
    pairs += [("baseline", "public"), ("private", "baseline")]
def round_ratios(a, b, key):
    by_round = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["mode"]] = float(r[key])
    return [v[a] / v[b] for v in by_round.values() if a in v and b in v and v[b] > 0]
# Two figures per pair: the ratio of the medians, and the median of each round's ratio
# (runs of one round are seconds apart, so a round's ratio cancels the machine's slower
# drifts; on a shared machine it is the steadier of the two).
for key, name in (("responses_per_sec", "responses per second"),
                  ("responses_per_cpu_sec", "responses per tracker CPU second")):
    for a, b in pairs:
        ratios = round_ratios(a, b, key)
        print(f"{a} / {b}, {name}: {med(a, key) / med(b, key):.3f} (ratio of the medians); "
              f"{statistics.median(ratios):.3f} (median of the rounds' ratios: "
              f"{', '.join(f'{x:.2f}' for x in ratios)})")
if sys.argv[3] == "1":
    mem = {r["mode"]: r for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")}
    extra = float(mem["private"]["rss_mb"]) - float(mem["public"]["rss_mb"])
    print(f"1M peers in 100k torrents: public {mem['public']['rss_mb']} MB, private "
          f"{mem['private']['rss_mb']} MB ({mem['private']['committed_peers']} baselines "
          f"committed): {extra:.0f} MB more, about {extra * 1024 * 1024 / 1e6:.0f} bytes per peer")
PY
