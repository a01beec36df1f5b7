#!/usr/bin/env bash
# End-to-end test of a shoal cluster with real BitTorrent clients, all on loopback:
# e2e/cluster_clients.py runs a nats-server, two tracker_udp nodes and one tracker_http
# node in one cluster; libtorrent seeds through one UDP node, aria2c downloads through
# the other, and transmission-daemon through the HTTP node.
# Usage: scripts/e2e-cluster.sh [extra args for the test, e.g. --timeout 180]
# Environment: SHOAL_E2E_PROFILE=release (default) or debug, the build to test (see
# scripts/e2e.sh and scripts/test.sh).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install-test-deps.sh

profile="${SHOAL_E2E_PROFILE:-release}"
case "$profile" in
    release) cargo build --release --locked -p tracker_udp -p tracker_http ;;
    debug) cargo build --locked -p tracker_udp -p tracker_http ;;
    *)
        echo "SHOAL_E2E_PROFILE must be release or debug, not '$profile'" >&2
        exit 2
        ;;
esac

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$repo_root/$target_dir" ;;
esac

# Debian's nats-server is in /usr/sbin, which a user's PATH may lack.
nats_bin="$(command -v nats-server || echo /usr/sbin/nats-server)"

# Debian's interpreter: a python3 earlier on PATH (e.g. pyenv) cannot import Debian's
# libtorrent.
exec /usr/bin/python3 e2e/cluster_clients.py \
    --udp-bin "$target_dir/$profile/tracker_udp" \
    --http-bin "$target_dir/$profile/tracker_http" \
    --nats-bin "$nats_bin" "$@"
