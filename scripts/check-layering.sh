#!/usr/bin/env bash
# Checks the workspace's layering: the wire crates and tracker_types sit at the bottom of
# the dependency graph. Arrows run from the trackers down to tracker_common and the wire
# crates, and from those to tracker_types; never from a wire crate up to tracker_common.
#
# Usage: scripts/check-layering.sh
#
# For each crate below, its normal dependencies (`cargo tree -e normal`, every target
# platform, dev- and build-dependencies left out) must not include tracker_common nor
# the heavy crates that only the trackers need: a database client, TLS, the poller, the
# metrics encoder. A benchmark or test may still use tracker_common as a
# dev-dependency. Fails naming each crate and each forbidden dependency found.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

crates=(tracker_types tracker_udp_protocol tracker_http_protocol tracker_ws_protocol tracker_cluster_protocol)
forbidden=(tracker_common rusqlite postgres rustls mio prometheus-client)

failed=0
for crate in "${crates[@]}"; do
    # One "name vX.Y.Z [(path)] [(*)]" line per dependency; the name is the first field.
    names="$(cargo tree -e normal -p "$crate" --locked --prefix none --target all |
        awk '{ print $1 }' | sort -u)"
    # A tree without the crate itself means cargo printed something unexpected: checking
    # nothing must not pass.
    if ! grep -qxF "$crate" <<<"$names"; then
        echo "check-layering: cargo tree -p $crate did not list $crate itself" >&2
        exit 1
    fi
    for dep in "${forbidden[@]}"; do
        if grep -qxF "$dep" <<<"$names"; then
            echo "check-layering: $crate depends on $dep (see: cargo tree -e normal -p $crate -i $dep)" >&2
            failed=1
        fi
    done
done

if [ "$failed" -ne 0 ]; then
    echo "check-layering: FAILED: a wire crate or tracker_types must not depend on" \
        "tracker_common or on what only the trackers need (${forbidden[*]})" >&2
    exit 1
fi
echo "check-layering: ${crates[*]}: none of ${forbidden[*]}"
