#!/usr/bin/env bash
# End-to-end test of a tracker with real BitTorrent clients (libtorrent seeding,
# aria2c and then transmission-daemon downloading), all on 127.0.0.1.
# Usage: scripts/e2e.sh udp|http|https [extra args for e2e/real_clients.py, e.g. --timeout 180]
# https runs the HTTP tracker (tracker_http) with TLS on, behind a self-signed
# certificate that the test makes and the clients trust.
set -euo pipefail

protocol="${1:?usage: scripts/e2e.sh udp|http|https [args]}"
shift
case "$protocol" in
    udp) tracker=tracker_udp ;;
    http | https) tracker=tracker_http ;;
    *)
        echo "usage: scripts/e2e.sh udp|http|https [args]" >&2
        exit 2
        ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install-test-deps.sh

cargo build --release --locked -p "$tracker"

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$repo_root/$target_dir" ;;
esac

# Debian's interpreter: a python3 earlier on PATH (e.g. pyenv) cannot import
# Debian's libtorrent.
exec /usr/bin/python3 e2e/real_clients.py --protocol "$protocol" \
    --tracker-bin "$target_dir/release/$tracker" "$@"
