#!/usr/bin/env bash
# End-to-end test of a tracker with real BitTorrent clients, all on loopback.
# Usage: scripts/e2e.sh udp|http|https|private|ws|wss|ws-cluster [extra args for the test, e.g. --timeout 180]
# Environment: SHOAL_E2E_PROFILE=release (default) or debug, the build to test.
#
# udp, http, https: e2e/real_clients.py (libtorrent seeding, aria2c and then
# transmission-daemon downloading) against tracker_udp or tracker_http; https
# runs tracker_http with TLS on, behind a self-signed certificate that the test
# makes and the clients trust.
# private: e2e/private_clients.py (libtorrent seeding to aria2c, each with a
# passkey of its own) against tracker_http in private mode, with the accounting
# database checked against the bytes moved.
# ws, wss: e2e/ws/run.mjs (two WebTorrent clients in Node, WebRTC between them)
# against tracker_ws, in a network namespace of its own whose only interface is
# lo, so that WebRTC, which offers every interface it sees, stays on loopback;
# wss as https; ws-cluster with the two clients on two tracker_ws nodes of one
# cluster over a nats-server (Debian's package), started in the same namespace.
set -euo pipefail

usage="usage: scripts/e2e.sh udp|http|https|private|ws|wss|ws-cluster [args]"
protocol="${1:?$usage}"
shift
case "$protocol" in
    udp) tracker=tracker_udp ;;
    http | https | private) tracker=tracker_http ;;
    ws | wss | ws-cluster) tracker=tracker_ws ;;
    *)
        echo "$usage" >&2
        exit 2
        ;;
esac

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install-test-deps.sh

# SHOAL_E2E_PROFILE=debug: the debug build, which scripts/test.sh uses so that these
# suites share the build of the workspace's tests instead of making a release build of
# their own (see there); release otherwise.
profile="${SHOAL_E2E_PROFILE:-release}"
case "$profile" in
    release) cargo build --release --locked -p "$tracker" ;;
    debug) cargo build --locked -p "$tracker" ;;
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
tracker_bin="$target_dir/$profile/$tracker"

case "$protocol" in
    udp | http | https)
        # Debian's interpreter: a python3 earlier on PATH (e.g. pyenv) cannot import
        # Debian's libtorrent.
        exec /usr/bin/python3 e2e/real_clients.py --protocol "$protocol" \
            --tracker-bin "$tracker_bin" "$@"
        ;;
    private)
        exec /usr/bin/python3 e2e/private_clients.py --tracker-bin "$tracker_bin" "$@"
        ;;
esac

# ws, wss. The test bounds itself (--timeout, 60 s unless given); `timeout`
# bounds it again from outside, and its signal reaches every process of the run.
budget=60
args=("$@")
for i in "${!args[@]}"; do
    if [ "${args[$i]}" = --timeout ] && [ $((i + 1)) -lt ${#args[@]} ]; then
        budget="${args[$((i + 1))]%.*}"
    fi
done
summary="e2e $protocol real clients"
if [ "$protocol" = ws-cluster ]; then
    ws_args=(--protocol ws --cluster)
    summary="e2e ws cluster real clients"
else
    ws_args=(--protocol "$protocol")
fi

# A new network namespace: as root directly, otherwise inside a new user
# namespace (where we are root too). Whichever works; none is a failure.
if [ "$(id -u)" -eq 0 ]; then
    netns=(unshare --net)
else
    netns=(unshare --user --map-root-user --net)
fi
if ! "${netns[@]}" true 2>/dev/null; then
    echo "cannot make a network namespace with '${netns[*]}' (needs root, or unprivileged user namespaces)"
    echo "$summary: 0 passed, 1 failed"
    exit 1
fi

# In the namespace: lo up, then the test (which checks that lo is all it sees).
status=0
timeout --kill-after=10 "$((budget + 30))" "${netns[@]}" -- \
    sh -c 'ip link set lo up && exec "$@"' sh \
    node e2e/ws/run.mjs "${ws_args[@]}" --tracker-bin "$tracker_bin" "$@" ||
    status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "the test did not end within $((budget + 30)) s and was killed"
    echo "$summary: 0 passed, 1 failed"
fi
exit "$status"
