#!/usr/bin/env bash
# Memory of shoal's UDP tracker under a flood of random info hashes and peer ids.
#
# Usage: scripts/flood-memory-udp.sh [DURATION] [SAMPLE_SECS]
#   DURATION     seconds of flooding (default 60)
#   SAMPLE_SECS  seconds between samples (default 5)
# Environment:
#   SWARM_TOML   extra lines for the tracker's [swarm] section (e.g. smaller limits, to
#                reach them sooner); the tracker otherwise runs on its defaults
#   LOAD_WORKERS load generator threads (default 1)
#   TORRENTS     how many info hashes the flood draws from (default 2^32 - 1: nearly
#                every announce a new torrent; a few million makes later announces
#                land in existing torrents, so that the peer limit is reached too)
#   TRACKER_BIN  run this tracker_udp binary instead of the one built here
#
# Starts the tracker on 127.0.0.1 with its default limits, floods it with announces
# ("started", numwant 0) from peers that each announce once, to torrents drawn from
# 2^32 hashes (nearly every announce creates a torrent), and prints, every SAMPLE_SECS,
# the torrents and peers the tracker holds (from its statistics line), what its limits
# rejected, and its resident memory. Loopback only; bounded in time; everything it
# starts is stopped.
set -euo pipefail

duration="${1:-60}"
sample="${2:-5}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

build_release
start_work

port="$(free_udp_port)"
cat > "$work/tracker.toml" <<TOML
log_level = "info"
[network]
address = "127.0.0.1:$port"
[statistics]
interval_secs = $sample
[swarm]
${SWARM_TOML:-}
TOML
"${TRACKER_BIN:-$bin/tracker_udp}" -c "$work/tracker.toml" 2> "$work/tracker.log" &
server_pid=$!
wait_udp_port "$port"

cat > "$work/load.toml" <<TOML
log_level = "error"
server_address = "127.0.0.1:$port"
[run]
duration_secs = $duration
warmup_secs = 0
workers = ${LOAD_WORKERS:-1}
[workload]
torrents = ${TORRENTS:-4294967295}
peers = 1000000000000
popularity_scale = 1.0
weight_connect = 1
weight_announce = 99
weight_scrape = 0
weight_event_started = 1
weight_event_none = 0
weight_event_completed = 0
weight_event_stopped = 0
seeder_share = 0.5
numwant = 0
sequential_peers = true
TOML
"$bin/tracker_load_test" udp -c "$work/load.toml" > "$work/load.log" 2>&1 &
load_pid=$!

printf '%8s %12s %12s %12s %10s\n' seconds torrents peers rejected rss_mb
start="$(date +%s)"
while kill -0 "$load_pid" 2>/dev/null; do
    sleep "$sample"
    line="$(grep 'torrents ' "$work/tracker.log" | tail -n 1 || true)"
    torrents="$(sed -n 's/.*torrents \([0-9]*\),.*/\1/p' <<< "$line")"
    seeders="$(sed -n 's/.*seeders \([0-9]*\),.*/\1/p' <<< "$line")"
    leechers="$(sed -n 's/.*leechers \([0-9]*\),.*/\1/p' <<< "$line")"
    rejected="$(grep -o 'rejected by limits [0-9]*' "$work/tracker.log" | awk '{ s += $4 } END { print s + 0 }')"
    printf '%8s %12s %12s %12s %10s\n' "$(( $(date +%s) - start ))" "${torrents:-?}" \
        "$(( ${seeders:-0} + ${leechers:-0} ))" "$rejected" "$(current_rss_mb "$server_pid")"
done
wait "$load_pid" || true
tail -n 20 "$work/load.log"
echo "tracker peak RSS: $(peak_rss_mb "$server_pid") MB"
stop_process "$server_pid"
server_pid=""
