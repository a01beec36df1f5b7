#!/usr/bin/env bash
# A shoal cluster on this machine: a nats-server (Debian's package; scripts/test.sh
# installs it) and three UDP nodes plus one HTTP node on free loopback ports, sharing
# their swarms and accepting each other's connection ids. Prints every node's announce
# URL and metrics page, then runs until Ctrl-C (or for SECS seconds), and stops every
# process it started.
#
# Usage: scripts/cluster-demo.sh [SECS]
# Environment: PROFILE=debug to run the debug builds (default: release).
set -euo pipefail

secs="${1:-}"
profile="${PROFILE:-release}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

command -v nats-server >/dev/null || {
    echo "nats-server is missing: apt-get install nats-server (scripts/install-test-deps.sh)" >&2
    exit 1
}
if [ "$profile" = release ]; then
    cargo build --release --locked -p tracker_udp -p tracker_http
    bin="$(release_dir)"
else
    cargo build --locked -p tracker_udp -p tracker_http
    bin="$(dirname "$(release_dir)")/debug"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        stop_process "$pid"
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

nats_port="$(free_tcp_port)"
nats-server -a 127.0.0.1 -p "$nats_port" > "$work/nats.log" 2>&1 &
pids+=($!)
wait_tcp_port "$nats_port"

(umask 077 && openssl rand -hex 32 > "$work/cluster.secret")

# node_toml NODE_ID PORT METRICS_PORT: a small node of the cluster on 127.0.0.1:PORT.
node_toml() {
    cat <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$2"
[workers]
socket_workers = 1
request_workers = 1
[metrics]
address = "127.0.0.1:$3"
[cluster]
enabled = true
nats_url = "nats://127.0.0.1:$nats_port"
name = "demo"
node_id = "$1"
TOML
}

echo "nats-server on nats://127.0.0.1:$nats_port"
for n in 1 2 3; do
    port="$(free_udp_port)"
    metrics="$(free_tcp_port)"
    {
        node_toml "udp$n" "$port" "$metrics"
        echo "connection_id_secret_path = \"$work/cluster.secret\""
    } > "$work/udp$n.toml"
    "$bin/tracker_udp" -c "$work/udp$n.toml" > "$work/udp$n.log" 2>&1 &
    pids+=($!)
    wait_udp_port "$port"
    echo "node udp$n:  udp://127.0.0.1:$port/announce   (metrics http://127.0.0.1:$metrics/)"
done
port="$(free_tcp_port)"
metrics="$(free_tcp_port)"
node_toml http1 "$port" "$metrics" > "$work/http1.toml"
"$bin/tracker_http" -c "$work/http1.toml" > "$work/http1.log" 2>&1 &
pids+=($!)
wait_tcp_port "$port"
echo "node http1: http://127.0.0.1:$port/announce  (metrics http://127.0.0.1:$metrics/)"

echo "A torrent listing these URLs in separate tiers has one swarm on every node."
echo "Logs in $work; Ctrl-C stops everything."
if [ -n "$secs" ]; then
    sleep "$secs"
else
    while sleep 3600; do :; done
fi
