#!/usr/bin/env bash
# End-to-end test of the HTTP tracker's private mode with real clients (libtorrent
# and aria2c, each with a passkey of its own) and its accounting database: see
# scripts/e2e.sh.
exec "$(dirname "${BASH_SOURCE[0]}")/e2e.sh" private "$@"
