#!/usr/bin/env bash
# End-to-end test of the HTTP tracker over HTTPS with real clients: see scripts/e2e.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/e2e.sh" https "$@"
