#!/usr/bin/env bash
# End-to-end test of two tracker_ws nodes of one cluster with real WebTorrent clients,
# the seeder on one node and the downloader on the other: see scripts/e2e.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/e2e.sh" ws-cluster "$@"
