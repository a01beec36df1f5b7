#!/usr/bin/env bash
# Load test of shoal's WebSocket (WebTorrent) tracker on this machine, over loopback.
#
# Usage: scripts/run-load-test-ws.sh [DURATION] [SOCKET_WORKERS] [REQUEST_WORKERS] [LOAD_WORKERS]
#   DURATION         measured seconds (default 10; a 2 s warm-up comes first)
#   SOCKET_WORKERS   tracker socket workers (default 1)
#   REQUEST_WORKERS  tracker request workers (default 1)
#   LOAD_WORKERS     load generator threads (default 1)
# Environment:
#   TRACKER_CPUS, LOAD_CPUS  taskset CPU lists to pin the tracker and the load
#                            generator (e.g. TRACKER_CPUS=0 LOAD_CPUS=1); unpinned if unset
#   CONNECTIONS              WebSocket connections per load worker (default: the load
#                            tester's)
#   IN_FLIGHT                announces and scrapes each connection keeps waiting for
#                            replies (default: the load tester's)
#   OFFERS                   offers per announce (default: the load tester's, 10)
#   SDP_BYTES                bytes of each offer's and answer's SDP (default: the load
#                            tester's)
#   TLS                      1: wss://. Makes a self-signed certificate for 127.0.0.1
#                            (RSA 2048, openssl) in the temporary directory, starts the
#                            tracker with [tls] on it and runs the load tester with
#                            network.tls, trusting that certificate (default 0)
#   TLS_VERIFY               0: with TLS=1, the load tester does not verify the
#                            certificate (network.tls_ca_path empty) (default 1)
#   LOAD_CONFIG              a tracker_load_test ws config file to start from
#                            (its server_address, run and tracker_pid are overridden,
#                            and with TLS=1 its network.tls and tls_ca_path; CONNECTIONS,
#                            IN_FLIGHT, OFFERS and SDP_BYTES are then ignored)
#   JSON                     also write the load tester's summary to this file
#   TRACKER_BIN              run this tracker_ws binary instead of the one built here
#                            (e.g. one built from an older commit, for before/after figures)
#
# Builds release, starts the tracker on 127.0.0.1 with a temporary config, runs
# tracker_load_test ws against it, stops the tracker, and prints the summary and the
# tracker's peak memory (RSS).
set -euo pipefail

duration="${1:-10}"
socket_workers="${2:-1}"
request_workers="${3:-1}"
load_workers="${4:-1}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/udp-bench.sh
source scripts/lib/udp-bench.sh

build_release tracker_ws tracker_load_test
start_work

tls="${TLS:-0}"
ca_path=""
if [ "$tls" = 1 ]; then
    make_test_certificate "$work"
    if [ "${TLS_VERIFY:-1}" != 0 ]; then ca_path="$work/cert.pem"; fi
fi

port="$(free_tcp_port)"
cat > "$work/tracker.toml" <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$port"
[ws]
# The load testers (and the idle connections) connect from loopback, many from one
# address.
max_connections_per_ip = 0
# One load tester connection is one browser in many torrents (up to peers /
# connections of them); aquatic has no such limit.
max_swarms_per_connection = 65536
[workers]
socket_workers = $socket_workers
request_workers = $request_workers
[swarm]
# Lift the whole-tracker limits, so that the tracker stores what a tracker without
# them (aquatic) would.
max_peers = 100000000
max_torrents = 100000000
max_peers_per_torrent = 100000000
[statistics]
interval_secs = 0
TOML
if [ "$tls" = 1 ]; then
    cat >> "$work/tracker.toml" <<TOML
[tls]
enabled = true
certificate_chain_path = "$work/cert.pem"
private_key_path = "$work/key.pem"
TOML
fi
pinned "${TRACKER_CPUS:-}" "${TRACKER_BIN:-$bin/tracker_ws}" -c "$work/tracker.toml" &
server_pid=$!
wait_tcp_port "$port"

if [ -n "${LOAD_CONFIG:-}" ]; then
    merge_load_config "$LOAD_CONFIG" "$work/load.toml" "$port" "$duration" "$load_workers" "$server_pid"
    if [ "$tls" = 1 ]; then
        set_load_tls "$work/load.toml" "$ca_path"
    fi
else
    {
        echo "server_address = \"127.0.0.1:$port\""
        echo "[run]"
        echo "duration_secs = $duration"
        echo "warmup_secs = 2"
        echo "workers = $load_workers"
        echo "tracker_pid = $server_pid"
        echo "[network]"
        if [ -n "${CONNECTIONS:-}" ]; then echo "connections_per_worker = $CONNECTIONS"; fi
        if [ -n "${IN_FLIGHT:-}" ]; then echo "requests_in_flight = $IN_FLIGHT"; fi
        if [ "$tls" = 1 ]; then
            echo "tls = true"
            echo "tls_ca_path = \"$ca_path\""
        fi
        echo "[webtorrent]"
        if [ -n "${OFFERS:-}" ]; then echo "offers_per_announce = $OFFERS"; fi
        if [ -n "${SDP_BYTES:-}" ]; then echo "sdp_bytes = $SDP_BYTES"; fi
    } > "$work/load.toml"
fi

(pinned "${LOAD_CPUS:-}" "$bin/tracker_load_test" ws -c "$work/load.toml" --json "$work/summary.json")
if [ -n "${JSON:-}" ]; then
    cp "$work/summary.json" "$JSON"
fi

echo "tracker peak RSS: $(peak_rss_mb "$server_pid") MB (current $(current_rss_mb "$server_pid") MB)"
stop_process "$server_pid"
server_pid=""
