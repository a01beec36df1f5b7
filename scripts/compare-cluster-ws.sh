#!/usr/bin/env bash
# One WebSocket (WebTorrent) tracker alone, then two in a cluster (a nats-server, nodes
# A and B), in alternation, under the same tracker_load_test ws load: in the cluster
# runs half of the load tester's browsers connect to A and half to B, so that most
# offers and answers cross nodes over the bus. The tracker side gets the same CPUs in
# both (TRACKER_CPUS, default 0: the lone node, or both nodes and nats-server), the
# load tester others (LOAD_CPUS, default 1): the ratio is what the same hardware
# serves as a two-node cluster against as one node.
#
# Usage: scripts/compare-cluster-ws.sh [ROUNDS] [SECS]
#   ROUNDS  rounds of two runs (default 3); SECS measured per run (default 10) after a
#           2 s warm-up
# Environment: CONNECTIONS (load tester connections, default 128), OFFERS (offers per
# announce, default the load tester's, 10), SDP_BYTES (default the load tester's).
#
# Prints each run (messages received per second, as the load tester counts them:
# announce replies, relayed offers and answers, scrape replies), each round's ratio
# cluster / alone and their median, and per cluster run the offers and answers the
# nodes relayed to each other (published, delivered, dropped on the way out: the
# hand-off was full or the bus down; dropped on the way in: the peer had left, or a
# request worker's queue was full), the share of the
# relayed messages that crossed nodes, and both nodes' resident memory. Traffic goes to
# 127.0.0.1 only; every process is stopped.
set -euo pipefail

rounds="${1:-3}"
secs="${2:-10}"
tracker_cpus="${TRACKER_CPUS-0}"
load_cpus="${LOAD_CPUS-1}"
connections="${CONNECTIONS:-128}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh
command -v nats-server >/dev/null || {
    echo "nats-server is missing (apt-get install nats-server)" >&2
    exit 1
}
build_release tracker_ws tracker_load_test
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
pinned "$tracker_cpus" nats-server -a 127.0.0.1 -p "$nats_port" > "$work/nats.log" 2>&1 &
nats_pid=$!
wait_tcp_port "$nats_port"

# node_toml PORT METRICS_PORT NODE_ID|"": a one-socket-worker, one-request-worker
# tracker_ws without the whole-tracker limits, in the cluster if NODE_ID.
node_toml() {
    cat <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$1"
[ws]
max_connections_per_ip = 0
max_swarms_per_connection = 65536
[workers]
socket_workers = 1
request_workers = 1
[swarm]
max_peers = 100000000
max_torrents = 100000000
max_peers_per_torrent = 100000000
[statistics]
interval_secs = 0
[metrics]
address = "127.0.0.1:$2"
TOML
    if [ -n "$3" ]; then
        cat <<TOML
[cluster]
enabled = true
nats_url = "nats://127.0.0.1:$nats_port"
name = "bench"
node_id = "$3"
TOML
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
        port="$(free_tcp_port)"
        metrics_a="$(free_tcp_port)"
        node_id=""
        cluster_addresses="[]"
        if [ "$which" = cluster ]; then
            node_id="a"
            port_b="$(free_tcp_port)"
            metrics_b="$(free_tcp_port)"
            node_toml "$port_b" "$metrics_b" b > "$work/b.toml"
            pinned "$tracker_cpus" "$bin/tracker_ws" -c "$work/b.toml" > "$work/b.log" 2>&1 &
            node_b_pid=$!
            wait_tcp_port "$port_b"
            cluster_addresses="[\"127.0.0.1:$port_b\"]"
        fi
        node_toml "$port" "$metrics_a" "$node_id" > "$work/a.toml"
        pinned "$tracker_cpus" "$bin/tracker_ws" -c "$work/a.toml" > "$work/a.log" 2>&1 &
        server_pid=$!
        wait_tcp_port "$port"
        if [ "$which" = cluster ]; then
            # Both nodes hear each other before the load starts.
            for _ in $(seq 1 100); do
                live="$(stats "$metrics_a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cluster"]["live_nodes"])')"
                [ "$live" = 1 ] && break
                sleep 0.1
            done
        fi
        {
            echo "server_address = \"127.0.0.1:$port\""
            echo "cluster_server_addresses = $cluster_addresses"
            echo "[run]"
            echo "duration_secs = $secs"
            echo "warmup_secs = 2"
            echo "workers = 1"
            echo "tracker_pid = $server_pid"
            echo "[network]"
            echo "connections_per_worker = $connections"
            echo "[webtorrent]"
            if [ -n "${OFFERS:-}" ]; then echo "offers_per_announce = $OFFERS"; fi
            if [ -n "${SDP_BYTES:-}" ]; then echo "sdp_bytes = $SDP_BYTES"; fi
        } > "$work/load.toml"
        (pinned "$load_cpus" "$bin/tracker_load_test" ws -c "$work/load.toml" --json "$work/summary.json") \
            > "$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }
        rss_a="$(current_rss_mb "$server_pid")"
        if [ "$which" = cluster ]; then
            stats "$metrics_a" > "$work/a.json"
            stats "$metrics_b" > "$work/b.json"
            rss_b="$(current_rss_mb "$node_b_pid")"
            python3 - "$work/a.json" "$work/b.json" "$round" "$rss_a" "$rss_b" >> "$details" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
round_, rss_a, rss_b = sys.argv[3:]
ca, cb = a["cluster"], b["cluster"]
published = ca["relays_published"] + cb["relays_published"]
delivered = ca["relays_delivered"] + cb["relays_delivered"]
dropped_out = ca["relays_dropped_outgoing"] + cb["relays_dropped_outgoing"]
dropped_in = ca["relays_dropped_incoming"] + cb["relays_dropped_incoming"]
# Offers and answers each node handed to its connections, from its own peers and
# from the other node's.
local = sum(s["relayed"]["offer"] + s["relayed"]["answer"] for s in (a, b))
share = f"{delivered / local:.2f}" if local else "n/a"
print(f"{round_}\t{published}\t{delivered}\t{dropped_out}\t{dropped_in}\t{share}\t"
      f"{rss_a}\t{rss_b}")
PY
            stop_process "$node_b_pid"
            node_b_pid=""
        fi
        stop_process "$server_pid"
        server_pid=""
        echo -e "$round\t$which\t$(json_field "$work/summary.json" responses_per_sec)\t$rss_a" | tee -a "$results"
    done
done

echo
echo -e "round\trelays published\tdelivered\tdropped out\tdropped in\tdelivered / all relayed to connections\tA MB\tB MB"
cat "$details"
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
by_round = {}
for round_, which, rps, _ in rows:
    by_round.setdefault(round_, {})[which] = float(rps)
ratios = [r["cluster"] / r["alone"] for r in by_round.values() if len(r) == 2]
med = lambda which: statistics.median(r[which] for r in by_round.values())
print(f"messages received/s, cluster / alone: {statistics.median(ratios):.3f} (median of the "
      f"rounds' ratios: {', '.join(f'{x:.2f}' for x in ratios)}); {med('cluster') / med('alone'):.3f} "
      f"(ratio of the medians: {med('cluster'):,.0f} / {med('alone'):,.0f})")
PY
