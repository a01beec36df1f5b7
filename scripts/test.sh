#!/usr/bin/env bash
# Installs what the tests need (idempotent) and runs every test suite:
# the workspace's unit, property and integration tests, then the end-to-end
# tests with real BitTorrent clients, of the UDP and of the HTTP tracker (over
# HTTP and over HTTPS), and with real WebTorrent clients, of the WebSocket
# tracker (over ws:// and over wss://), the metrics page in headless
# Chromium, and the HTTP tracker's private mode with real clients and its
# accounting database.
# Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh
cargo test --workspace --locked
# The end-to-end suites test the trackers' debug builds: they then share the
# dependencies just built for the tests above (only the trackers themselves are
# compiled again, without the test-only features), where a release build of their
# own would compile everything a second time, with optimizations, for a few hundred
# announces. Debug builds also check every integer operation for overflow. Run a suite
# by itself (scripts/e2e-udp.sh, ...) to test the release build.
export SHOAL_E2E_PROFILE=debug
scripts/e2e-udp.sh
scripts/e2e-http.sh
scripts/e2e-https.sh
scripts/e2e-ws.sh
scripts/e2e-wss.sh
scripts/e2e-ws-cluster.sh
scripts/e2e-metrics-page.sh
scripts/e2e-private.sh
scripts/e2e-cluster.sh
