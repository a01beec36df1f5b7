#!/usr/bin/env bash
# One UDP node alone, then the same node in a two-node cluster (a nats-server and a
# second node applying its changes), in alternation, under the same tracker_load_test
# udp load: what replication costs the node that takes the announces, the bytes on
# the bus per announce, how long changes take to reach the other node, and the memory
# and CPU of both nodes.
#
# Usage: scripts/compare-cluster.sh [ROUNDS] [SECS]
#   ROUNDS  rounds of two runs (default 5); SECS measured per run (default 10) after
#           a 5 s warm-up
# Environment: REFRESH_WINDOW=SECS sets cluster.refresh_window_secs (default: the
# config's default, 600): the load tester's peers re-announce every few seconds, far
# more often than clients announce to a public tracker (once per interval, 30 minutes),
# so with the default most of its re-announces are not published; REFRESH_WINDOW=0
# publishes every announce, as a public tracker's clients would make it. NODE_B=0 runs the cluster runs without node B: node A publishes to a
# nats-server that has no other subscriber, so that the runs differ by A's own cost
# of publishing only (on a two-core machine, node B's work slows the load tester,
# whose core it shares, and that shows as A's loss). TRACKER_CPUS (default 0): node
# A, one socket and one request worker
# (as compare-private.sh and ab-udp.sh); LOAD_CPUS (default 1): the load tester, and
# in the cluster runs also nats-server and node B (also one socket and one request
# worker), which a machine with more cores would give CPUs of their own.
#
# Prints each run (responses per second, and per CPU second of node A, as the load
# tester reads it from /proc), each round's ratio cluster / alone and their median, the
# ratio of the medians, and per cluster run: bytes published per change, the delay of the
# changes at node B (p50 and p99, from its histogram), B's CPU seconds per million
# changes applied, both nodes' resident memory, and nats-server's CPU seconds per GB
# published to it (each byte in goes out once, to node B). Traffic goes to 127.0.0.1 only;
# every process is stopped.
set -euo pipefail

rounds="${1:-5}"
secs="${2:-10}"
tracker_cpus="${TRACKER_CPUS-0}"
load_cpus="${LOAD_CPUS-1}"
node_b="${NODE_B-1}"
refresh_window="${REFRESH_WINDOW-}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh
command -v nats-server >/dev/null || {
    echo "nats-server is missing (apt-get install nats-server)" >&2
    exit 1
}
build_release
start_work
nats_pid=""
node_b_pid=""
cleanup_cluster() {
    for pid in "$node_b_pid" "$nats_pid"; do
        if [ -n "$pid" ]; then
            stop_process "$pid"
        fi
    done
    cleanup_work
}
trap cleanup_cluster EXIT

nats_port="$(free_tcp_port)"
pinned "$load_cpus" nats-server -a 127.0.0.1 -p "$nats_port" > "$work/nats.log" 2>&1 &
nats_pid=$!
wait_tcp_port "$nats_port"

# node_toml PORT METRICS_PORT NODE_ID|"": a one-core node, in the cluster if NODE_ID.
node_toml() {
    one_core_tracker_toml "$1"
    echo "[metrics]"
    echo "address = \"127.0.0.1:$2\""
    if [ -n "$3" ]; then
        cat <<TOML
[cluster]
enabled = true
nats_url = "nats://127.0.0.1:$nats_port"
name = "bench"
node_id = "$3"
TOML
        if [ -n "$refresh_window" ]; then
            echo "refresh_window_secs = $refresh_window"
        fi
    fi
}

stats() {
    curl -s "http://127.0.0.1:$1/stats.json"
}

results="$work/runs.tsv"
details="$work/details.tsv"
touch "$details"
for round in $(seq 1 "$rounds"); do
    for which in alone cluster; do
        port="$(free_udp_port)"
        metrics_a="$(free_tcp_port)"
        node_id=""
        if [ "$which" = cluster ]; then
            node_id="a"
        fi
        if [ "$which" = cluster ] && [ "$node_b" = 1 ]; then
            port_b="$(free_udp_port)"
            metrics_b="$(free_tcp_port)"
            node_toml "$port_b" "$metrics_b" b > "$work/b.toml"
            pinned "$load_cpus" "$bin/tracker_udp" -c "$work/b.toml" > "$work/b.log" 2>&1 &
            node_b_pid=$!
            wait_udp_port "$port_b"
        fi
        node_toml "$port" "$metrics_a" "$node_id" > "$work/a.toml"
        pinned "$tracker_cpus" "$bin/tracker_udp" -c "$work/a.toml" > "$work/a.log" 2>&1 &
        server_pid=$!
        wait_udp_port "$port"
        if [ "$which" = cluster ] && [ "$node_b" = 1 ]; then
            # Both nodes hear each other before the load starts.
            for _ in $(seq 1 100); do
                live="$(stats "$metrics_a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["live_nodes"])')"
                [ "$live" = 1 ] && break
                sleep 0.1
            done
            b_cpu_before="$(cpu_secs "$node_b_pid")"
            nats_cpu_before="$(cpu_secs "$nats_pid")"
        fi
        cat > "$work/load.toml" <<TOML
server_address = "127.0.0.1:$port"
[run]
duration_secs = $secs
warmup_secs = 5
workers = 1
tracker_pid = $server_pid
TOML
        (pinned "$load_cpus" "$bin/tracker_load_test" udp -c "$work/load.toml" --json "$work/summary.json") \
            > "$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }
        rss_a="$(current_rss_mb "$server_pid")"
        if [ "$which" = cluster ] && [ "$node_b" = 1 ]; then
            # Let B apply what is still queued before it is read.
            sleep 1
            stats "$metrics_a" > "$work/a.json"
            stats "$metrics_b" > "$work/b.json"
            b_cpu="$(python3 -c "print(round($(cpu_secs "$node_b_pid") - $b_cpu_before, 2))")"
            nats_cpu="$(python3 -c "print(round($(cpu_secs "$nats_pid") - $nats_cpu_before, 2))")"
            rss_b="$(current_rss_mb "$node_b_pid")"
            python3 - "$work/a.json" "$work/b.json" "$round" "$rss_a" "$rss_b" "$b_cpu" "$nats_cpu" >> "$details" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["cluster"]
b = json.load(open(sys.argv[2]))["cluster"]
round_, rss_a, rss_b, b_cpu, nats_cpu = sys.argv[3:]
bounds = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
def quantile(q):
    n = b["delay_count"]
    for bound, cumulative in zip(bounds, b["delay_buckets"]):
        if n and cumulative >= q * n:
            return f"<= {bound} ms"
    return "> 5000 ms"
per_change = a["bytes_published"] / max(a["changes_published"], 1)
applied = max(b["changes_applied"], 1)
print(f"{round_}\t{a['changes_published']}\t{a['changes_dropped_outgoing']}\t"
      f"{b['changes_applied']}\t{b['changes_dropped_incoming']}\t{per_change:.1f}\t"
      f"{quantile(0.5)}\t{quantile(0.99)}\t{float(b_cpu) / applied * 1e6:.2f}\t"
      f"{b['remote_peers']}\t{rss_a}\t{rss_b}\t"
      f"{float(nats_cpu) / max(a['bytes_published'], 1) * 1e9:.1f}")
PY
            stop_process "$node_b_pid"
            node_b_pid=""
        fi
        stop_process "$server_pid"
        server_pid=""
        echo -e "$round\t$which\t$(json_field "$work/summary.json" responses_per_sec)\t$(json_field "$work/summary.json" responses_per_tracker_cpu_sec)\t$rss_a" | tee -a "$results"
    done
done

echo
echo -e "round\tpublished\tdropped out\tapplied by B\tdropped in\tbytes/change\tdelay p50\tdelay p99\tB cpu s/M changes\tB remote peers\tA MB\tB MB\tnats cpu s/GB in"
cat "$details"
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
by_round = {}
for round_, which, rps, per_cpu, _ in rows:
    by_round.setdefault(round_, {})[which] = (float(rps), float(per_cpu))
for index, unit in ((0, "responses/s"), (1, "responses per CPU second of node A")):
    ratios = [r["cluster"][index] / r["alone"][index] for r in by_round.values() if len(r) == 2]
    med = lambda which: statistics.median(r[which][index] for r in by_round.values())
    print(f"{unit}, cluster / alone: {statistics.median(ratios):.3f} (median of the rounds' "
          f"ratios: {', '.join(f'{x:.2f}' for x in ratios)}); {med('cluster') / med('alone'):.3f} "
          f"(ratio of the medians: {med('cluster'):,.0f} / {med('alone'):,.0f})")
PY
