#!/usr/bin/env bash
# End-to-end test of the metrics page in headless Chromium: tracker_udp (the
# release build, or SHOAL_E2E_PROFILE's) on 127.0.0.1 (ports of the OS's choosing), a few announces, then
# its statistics page loaded by Debian's chromium, driven by puppeteer-core
# (e2e/metrics-page/run.mjs). Saves a screenshot to documents/metrics-page.png.
# Usage: scripts/e2e-metrics-page.sh [--timeout SECS] [--screenshot PATH]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install-test-deps.sh

# SHOAL_E2E_PROFILE: the build to test, as in scripts/e2e.sh.
profile="${SHOAL_E2E_PROFILE:-release}"
case "$profile" in
    release) cargo build --release --locked -p tracker_udp ;;
    debug) cargo build --locked -p tracker_udp ;;
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

# The test bounds itself (--timeout, 60 s unless given); `timeout` bounds it
# again from outside, in case the browser hangs.
budget=60
args=("$@")
for i in "${!args[@]}"; do
    if [ "${args[$i]}" = --timeout ] && [ $((i + 1)) -lt ${#args[@]} ]; then
        budget="${args[$((i + 1))]%.*}"
    fi
done
status=0
timeout --kill-after=10 "$((budget + 30))" \
    node e2e/metrics-page/run.mjs --tracker-bin "$target_dir/$profile/tracker_udp" "$@" ||
    status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "the test did not end within $((budget + 30)) s and was killed"
    echo "e2e metrics page: 0 passed, 1 failed"
fi
exit "$status"
