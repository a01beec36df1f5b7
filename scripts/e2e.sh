#!/usr/bin/env bash
# End-to-end test of a tracker with real BitTorrent clients (libtorrent seeding,
# aria2c downloading), all on 127.0.0.1.
# Usage: scripts/e2e.sh udp|http [extra args for e2e/real_clients.py, e.g. --timeout 180]
set -euo pipefail

protocol="${1:?usage: scripts/e2e.sh udp|http [args]}"
shift
case "$protocol" in
    udp | http) ;;
    *)
        echo "usage: scripts/e2e.sh udp|http [args]" >&2
        exit 2
        ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install-test-deps.sh

cargo build --release --locked -p "tracker_$protocol"

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$repo_root/$target_dir" ;;
esac

# Debian's interpreter: a python3 earlier on PATH (e.g. pyenv) cannot import
# Debian's libtorrent.
exec /usr/bin/python3 e2e/real_clients.py --protocol "$protocol" \
    --tracker-bin "$target_dir/release/tracker_$protocol" "$@"
