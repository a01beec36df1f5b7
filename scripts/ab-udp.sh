#!/usr/bin/env bash
# Two tracker_udp binaries in public mode, in alternation, under the same load
# (tracker_load_test udp, or aquatic_udp_load_test): for measuring a change against the
# commit before it.
#
# Usage: scripts/ab-udp.sh NEW_BIN OLD_BIN [ROUNDS]
#   NEW_BIN, OLD_BIN  tracker_udp binaries (the old one built in a worktree, e.g.
#                     `git worktree add ../base COMMIT && cd ../base && cargo build
#                     --release -p tracker_udp`)
#   ROUNDS            rounds of one run each (default 5); 10 s measured after a 5 s
#                     warm-up per run
# Environment: TRACKER_CPUS (default 0) and LOAD_CPUS (default 1), as in
# compare-private.sh: one socket and one request worker, all the tracker's threads on
# TRACKER_CPUS, the load tester's default workload on LOAD_CPUS. NEW_TOML: a file of
# config sections appended to the new runs' config, to measure a setting (give the same
# binary twice), e.g. a [rate_limits] section. OLD_ENV: environment assignments for
# the old runs only, e.g. OLD_ENV=SHOAL_UDP__NETWORK__GATHER_MICROS=0 to measure a
# [network] key (a section NEW_TOML cannot add twice) against its default.
# TESTER=aquatic: aquatic_udp_load_test 0.9.0 with its defaults (installed into
# .local/aquatic as compare-udp.sh does), 15 s of which the last 10 are summarized,
# instead of tracker_load_test.
#
# Prints each run (responses/s and the tracker's CPU seconds in the measured 10 s), then
# each round's ratio new / old and their median (a round's runs are seconds apart, so a
# round's ratio cancels the machine's slower drifts), and the ratio of the medians; the
# same for responses per CPU-second. Traffic goes to 127.0.0.1 only; every process is
# stopped.
set -euo pipefail

new="$1"
old="$2"
rounds="${3:-5}"
tracker_cpus="${TRACKER_CPUS-0}"
load_cpus="${LOAD_CPUS-1}"
tester="${TESTER:-shoal}"
# Seconds of warm-up, then measured, in every run.
warmup=5
measured=10

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh
for binary in "$new" "$old"; do
    [ -x "$binary" ] || { echo "$binary is not an executable" >&2; exit 1; }
done
build_release
start_work
if [ "$tester" = aquatic ]; then
    install_aquatic aquatic_udp_load_test
fi

results="$work/runs.tsv"
for round in $(seq 1 "$rounds"); do
    for which in new old; do
        binary="$new"
        [ "$which" = old ] && binary="$old"
        port="$(free_udp_port)"
        one_core_tracker_toml "$port" > "$work/tracker.toml"
        if [ "$which" = new ] && [ -n "${NEW_TOML:-}" ]; then
            cat "$NEW_TOML" >> "$work/tracker.toml"
        fi
        old_env=()
        if [ "$which" = old ] && [ -n "${OLD_ENV:-}" ]; then
            read -r -a old_env <<< "$OLD_ENV"
        fi
        pinned "$tracker_cpus" env "${old_env[@]}" "$binary" -c "$work/tracker.toml" \
            > "$work/server.log" 2>&1 &
        server_pid=$!
        wait_udp_port "$port"
        if [ "$tester" = aquatic ]; then
            read -r rps cpu < <(run_aquatic_udp_load "$port" "$warmup" "$measured" "$load_cpus" 1)
        else
            cat > "$work/load.toml" <<TOML
server_address = "127.0.0.1:$port"
[run]
duration_secs = $measured
warmup_secs = $warmup
workers = 1
tracker_pid = $server_pid
TOML
            (pinned "$load_cpus" "$bin/tracker_load_test" udp -c "$work/load.toml" --json "$work/summary.json") \
                > "$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }
            rps="$(json_field "$work/summary.json" responses_per_sec)"
            cpu="$(json_field "$work/summary.json" tracker_cpu_secs)"
        fi
        stop_process "$server_pid"
        server_pid=""
        echo -e "$round\t$which\t$rps\t$cpu" | tee -a "$results"
    done
done

python3 - "$results" "$measured" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
measured = float(sys.argv[2])
by_round = {}
for round_, which, rps, cpu in rows:
    # Responses in the measured seconds per CPU second the tracker spent in them.
    by_round.setdefault(round_, {})[which] = (float(rps), float(rps) * measured / float(cpu))
for index, unit in ((0, "responses/s"), (1, "responses per CPU-s")):
    pairs = [r for r in by_round.values() if "new" in r and "old" in r]
    ratios = [r["new"][index] / r["old"][index] for r in pairs]
    med = lambda which: statistics.median(r[which][index] for r in pairs)
    print(f"{unit}: new / old {statistics.median(ratios):.3f} (median of the rounds' "
          f"ratios: {', '.join(f'{x:.2f}' for x in ratios)}); {med('new') / med('old'):.3f} "
          f"(ratio of the medians: {med('new'):,.0f} / {med('old'):,.0f})")
PY
