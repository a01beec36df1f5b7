#!/usr/bin/env bash
# Load test of shoal's UDP tracker on this machine, over loopback.
#
# Usage: scripts/run-load-test-udp.sh [DURATION] [SOCKET_WORKERS] [REQUEST_WORKERS] [LOAD_WORKERS]
#   DURATION         measured seconds (default 10; a 2 s warm-up comes first)
#   SOCKET_WORKERS   tracker socket workers (default 1)
#   REQUEST_WORKERS  tracker request workers (default 1)
#   LOAD_WORKERS     load generator threads (default 1)
# Environment:
#   TRACKER_CPUS, LOAD_CPUS  taskset CPU lists to pin the tracker and the load
#                            generator (e.g. TRACKER_CPUS=0 LOAD_CPUS=1); unpinned if unset
#   LOAD_CONFIG              a tracker_load_test udp config file to start from
#                            (its server_address, run and tracker_pid are overridden)
#   JSON                     also write the load tester's summary to this file
#   TRACKER_BIN              run this tracker_udp binary instead of the one built here
#                            (e.g. one built from an older commit, for before/after figures)
#
# Builds release, starts the tracker on 127.0.0.1 with a temporary config, runs
# tracker_load_test udp against it, stops the tracker, and prints the summary and
# the tracker's peak memory (RSS).
set -euo pipefail

duration="${1:-10}"
socket_workers="${2:-1}"
request_workers="${3:-1}"
load_workers="${4:-1}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

build_release
start_work

port="$(free_udp_port)"
cat > "$work/tracker.toml" <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$port"
[workers]
socket_workers = $socket_workers
request_workers = $request_workers
[swarm]
# The load testers announce every peer from a few loopback addresses: lift the per-address cap
# and the whole-tracker limits, so that the tracker stores what a tracker without them
# (aquatic) would.
max_peers_per_ip = 100000000
max_peers = 100000000
max_torrents = 100000000
[statistics]
interval_secs = 0
TOML
pinned "${TRACKER_CPUS:-}" "${TRACKER_BIN:-$bin/tracker_udp}" -c "$work/tracker.toml" &
server_pid=$!
wait_udp_port "$port"

if [ -n "${LOAD_CONFIG:-}" ]; then
    # Keep the given sections, replace what this script decides.
    merge_load_config "$LOAD_CONFIG" "$work/load.toml" "$port" "$duration" "$load_workers" "$server_pid"
else
    cat > "$work/load.toml" <<TOML
server_address = "127.0.0.1:$port"
[run]
duration_secs = $duration
warmup_secs = 2
workers = $load_workers
tracker_pid = $server_pid
TOML
fi

(pinned "${LOAD_CPUS:-}" "$bin/tracker_load_test" udp -c "$work/load.toml" --json "$work/summary.json")
if [ -n "${JSON:-}" ]; then
    cp "$work/summary.json" "$JSON"
fi

echo "tracker peak RSS: $(peak_rss_mb "$server_pid") MB (current $(current_rss_mb "$server_pid") MB)"
stop_process "$server_pid"
server_pid=""
