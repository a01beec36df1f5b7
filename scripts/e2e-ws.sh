#!/usr/bin/env bash
# End-to-end test of the WebSocket tracker with real WebTorrent clients: see scripts/e2e.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/e2e.sh" ws "$@"
