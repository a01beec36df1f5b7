#!/usr/bin/env bash
# End-to-end test of the HTTP tracker with real BitTorrent clients
# (libtorrent seeding, aria2c downloading), all on 127.0.0.1, over plain HTTP.
# Usage: scripts/e2e-http.sh [extra args for e2e/real_clients.py, e.g. --timeout 180]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install-test-deps.sh

cargo build --release -p tracker_http

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in
    /*) ;;
    *) target_dir="$repo_root/$target_dir" ;;
esac

# Debian's interpreter: a python3 earlier on PATH (e.g. pyenv) cannot import
# Debian's libtorrent.
exec /usr/bin/python3 e2e/real_clients.py --protocol http \
    --tracker-bin "$target_dir/release/tracker_http" "$@"
