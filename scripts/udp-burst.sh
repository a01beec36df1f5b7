#!/usr/bin/env bash
# Burst drops against the UDP tracker at several receive buffer sizes.
#
# Usage: scripts/udp-burst.sh [COUNT] [REPS] [SIZES...]
#   COUNT  announces per burst (default 200000), REPS rounds (default 3),
#   SIZES  network.recv_buffer_bytes values (default 0 1M 4M 8M 32M; 0 = OS default).
#
# For each round and size: start a release tracker on 127.0.0.1 (port chosen by the
# OS), let it sit idle, run `tracker_load_test udp-burst` against it, stop it. The
# kernel caps SO_RCVBUF at net.core.rmem_max: raise it first to test large sizes
# (`sysctl -w net.core.rmem_max=67108864`, as root); the tracker warns when capped.
set -euo pipefail

count="${1:-200000}"
reps="${2:-3}"
shift $(( $# > 2 ? 2 : $# ))
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(0 1048576 4194304 8388608 33554432)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
timeout 1800 cargo build --release --locked -q -p tracker_udp -p tracker_load_test
bin="${CARGO_TARGET_DIR:-$root/target}/release"
work="$(mktemp -d)"
tracker_pid=
cleanup() {
    [[ -n "$tracker_pid" ]] && kill "$tracker_pid" 2>/dev/null && wait "$tracker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) $(uname -r) $(nproc) cpus; rmem_max $(sysctl -n net.core.rmem_max)"
echo "# count $count, reps $reps"
for rep in $(seq 1 "$reps"); do
    for size in "${sizes[@]}"; do
        printf '[network]\naddress = "127.0.0.1:0"\nrecv_buffer_bytes = %s\n[statistics]\ninterval_secs = 0\n' \
            "$size" > "$work/tracker.toml"
        "$bin/tracker_udp" -c "$work/tracker.toml" 2> "$work/tracker.log" &
        tracker_pid=$!
        addr=
        for _ in $(seq 1 100); do
            addr="$(grep -o 'listening on udp://[^ ]*' "$work/tracker.log" | sed 's|.*udp://||' || true)"
            [[ -n "$addr" ]] && break
            sleep 0.1
        done
        [[ -n "$addr" ]] || { cat "$work/tracker.log" >&2; exit 1; }
        # Idle before the burst, as a tracker between bursts is.
        sleep 1
        result="$(timeout 120 "$bin/tracker_load_test" udp-burst "$addr" "$count" 8)"
        echo "rep $rep recv_buffer_bytes $size $result"
        kill "$tracker_pid"
        wait "$tracker_pid" 2>/dev/null || true
        tracker_pid=
    done
done
