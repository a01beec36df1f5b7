#!/usr/bin/env bash
# Load test of shoal's HTTP tracker on this machine, over loopback.
#
# Usage: scripts/run-load-test-http.sh [DURATION] [SOCKET_WORKERS] [REQUEST_WORKERS] [LOAD_WORKERS]
#   DURATION         measured seconds (default 10; a 2 s warm-up comes first)
#   SOCKET_WORKERS   tracker socket workers (default 1)
#   REQUEST_WORKERS  tracker request workers (default 1)
#   LOAD_WORKERS     load generator threads (default 1)
# Environment:
#   TRACKER_CPUS, LOAD_CPUS  taskset CPU lists to pin the tracker and the load
#                            generator (e.g. TRACKER_CPUS=0 LOAD_CPUS=1); unpinned if unset
#   CONNECTIONS              connections per load worker (default: the load tester's)
#   PIPELINE                 requests in flight per connection (default: the load tester's)
#   KEEP_ALIVE               0: a new connection for every request (default 1)
#   TLS                      1: HTTPS. Makes a self-signed certificate for 127.0.0.1
#                            (RSA 2048, openssl) in the temporary directory, starts the
#                            tracker with [tls] on it and runs the load tester with
#                            network.tls, trusting that certificate (default 0)
#   TLS_VERIFY               0: with TLS=1, the load tester does not verify the
#                            certificate (network.tls_ca_path empty) (default 1)
#   LOAD_CONFIG              a tracker_load_test http config file to start from
#                            (its server_address, run and tracker_pid are overridden,
#                            and with TLS=1 its network.tls and tls_ca_path; CONNECTIONS,
#                            PIPELINE, KEEP_ALIVE are then ignored)
#   JSON                     also write the load tester's summary to this file
#   TRACKER_BIN              run this tracker_http binary instead of the one built here
#                            (e.g. one built from an older commit, for before/after figures)
#
# Builds release, starts the tracker on 127.0.0.1 with a temporary config, runs
# tracker_load_test http against it, stops the tracker, and prints the summary and
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

build_release tracker_http tracker_load_test
start_work

tls="${TLS:-0}"
ca_path=""
if [ "$tls" = 1 ]; then
    # CA:FALSE: openssl marks a self-signed certificate as a CA by default, and rustls
    # (webpki) refuses a CA certificate as the server's own (CaUsedAsEndEntity).
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2> "$work/openssl.log" \
        || { cat "$work/openssl.log" >&2; exit 1; }
    if [ "${TLS_VERIFY:-1}" != 0 ]; then ca_path="$work/cert.pem"; fi
fi

port="$(free_tcp_port)"
cat > "$work/tracker.toml" <<TOML
log_level = "warn"
[network]
address = "127.0.0.1:$port"
[http]
# The load testers open their connections from loopback, some from one address.
max_connections_per_ip = 0
[workers]
socket_workers = $socket_workers
request_workers = $request_workers
[swarm]
# The load tester announces its peers from a few thousand loopback addresses: lift the
# per-address cap and the whole-tracker limits, so that the tracker stores what a
# tracker without them (aquatic) would.
max_peers_per_ip = 100000000
max_peers = 100000000
max_torrents = 100000000
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
pinned "${TRACKER_CPUS:-}" "${TRACKER_BIN:-$bin/tracker_http}" -c "$work/tracker.toml" &
server_pid=$!
wait_tcp_port "$port"

if [ -n "${LOAD_CONFIG:-}" ]; then
    merge_load_config "$LOAD_CONFIG" "$work/load.toml" "$port" "$duration" "$load_workers" "$server_pid"
    if [ "$tls" = 1 ]; then
        # Rewrite the merged file with [network] tls on, the other keys as they are.
        python3 - "$work/load.toml" "$ca_path" <<'PY'
import sys, tomllib
path, ca = sys.argv[1:]
with open(path, "rb") as f:
    config = tomllib.load(f)
config.setdefault("network", {}).update({"tls": True, "tls_ca_path": ca})
def value(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, str): return '"' + v + '"'
    return repr(v)
with open(path, "w") as out:
    for k, v in config.items():
        if not isinstance(v, dict): out.write(f"{k} = {value(v)}\n")
    for k, v in config.items():
        if isinstance(v, dict):
            out.write(f"[{k}]\n")
            for kk, vv in v.items(): out.write(f"{kk} = {value(vv)}\n")
PY
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
        if [ -n "${PIPELINE:-}" ]; then echo "pipeline_depth = $PIPELINE"; fi
        if [ "${KEEP_ALIVE:-1}" = 0 ]; then echo "keep_alive = false"; fi
        if [ "$tls" = 1 ]; then
            echo "tls = true"
            echo "tls_ca_path = \"$ca_path\""
        fi
    } > "$work/load.toml"
fi

(pinned "${LOAD_CPUS:-}" "$bin/tracker_load_test" http -c "$work/load.toml" --json "$work/summary.json")
if [ -n "${JSON:-}" ]; then
    cp "$work/summary.json" "$JSON"
fi

echo "tracker peak RSS: $(peak_rss_mb "$server_pid") MB (current $(current_rss_mb "$server_pid") MB)"
stop_process "$server_pid"
server_pid=""
