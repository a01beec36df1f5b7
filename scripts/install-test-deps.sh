#!/usr/bin/env bash
# Installs what the end-to-end tests need (Debian 12, run as root): Debian's
# packages (and chromium, for the metrics page's test, unless /usr/bin/chromium
# is there), then the npm packages of the WebTorrent test (e2e/ws) and of the
# metrics page's test (e2e/metrics-page), exact versions from their
# package-lock.json; Node 20 or later and npm must be there already.
# Idempotent: nothing is fetched when the packages are already installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(python3-libtorrent aria2 openssl transmission-daemon iproute2 util-linux postgresql
    faketime mariadb-server nats-server)

# The npm packages of a test directory (e2e/ws: the WebTorrent clients;
# e2e/metrics-page: puppeteer-core). `npm ci` (a clean install of the lockfile's
# versions) runs only when node_modules is missing or was installed from other
# package files or by another Node.
install_npm_packages_in() {
    local dir="$1"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "install-test-deps: node and npm are needed for $dir (Node 20 or later)" >&2
        return 1
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    if [ "$major" -lt 20 ]; then
        echo "install-test-deps: $dir needs Node 20 or later, found $(node --version)" >&2
        return 1
    fi
    local stamp_file="$dir/node_modules/.shoal-installed" stamp
    stamp="$(
        cd "$dir" &&
            { node --version && cat package.json package-lock.json .npmrc &&
                if [ -d webrtc-polyfill-wrtc ]; then cat webrtc-polyfill-wrtc/*; fi; } |
            sha256sum | cut -d' ' -f1
    )"
    if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
        echo "install-test-deps: npm packages of $dir already installed"
        return 0
    fi
    echo "install-test-deps: npm ci in $dir"
    # webtorrent 3 declares Node 22 but runs on 20 (the test shows it): npm's
    # EBADENGINE warnings about it are expected, and --loglevel=error hides them.
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$stamp" >"$stamp_file"
}

install_npm_packages() {
    install_npm_packages_in e2e/ws
    install_npm_packages_in e2e/metrics-page
}

# Debian's chromium, for e2e/metrics-page: checked by its binary rather than by
# the package, so that a chromium installed otherwise at that path is used as is.
if [ ! -x /usr/bin/chromium ]; then
    packages+=(chromium)
fi

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-deps: already installed: ${packages[*]}"
    install_npm_packages
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo)
else
    echo "install-test-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
fi

echo "install-test-deps: installing: ${missing[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update

# transmission-daemon's package enables and starts a system service (as
# debian-transmission, on every interface, with DHT on), and so do
# postgresql's (a cluster "main" on port 5432) and mariadb-server's (on port
# 3306). The end-to-end test runs its own daemon on 127.0.0.1, the accounting
# tests their own PostgreSQL and MariaDB servers
# (tracker_common::testing::{postgres,mariadb}) on free ports, and the
# services must never run: while the packages install, a policy-rc.d that
# denies every service start is in place (unless one already is), and the
# services are disabled afterwards.
policy=/usr/sbin/policy-rc.d
added_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# install-test-deps.sh: no service starts while it installs.\nexit 101\n' |
        "${sudo_cmd[@]}" tee "$policy" >/dev/null
    "${sudo_cmd[@]}" chmod 755 "$policy"
    added_policy=true
fi
remove_policy() {
    if [ "$added_policy" = true ]; then
        "${sudo_cmd[@]}" rm -f "$policy"
    fi
}
trap remove_policy EXIT

"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

for service in transmission-daemon postgresql mariadb; do
    if command -v systemctl >/dev/null 2>&1; then
        "${sudo_cmd[@]}" systemctl disable "$service.service" >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
        "${sudo_cmd[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
done
remove_policy
trap - EXIT

# Debian's libtorrent binding is only importable by Debian's own interpreter.
/usr/bin/python3 -c 'import libtorrent; print("install-test-deps: libtorrent", libtorrent.__version__)'
command -v aria2c >/dev/null
aria2c --version | head -n 1
openssl version
transmission-daemon --version 2>&1 | head -n 1
command -v unshare ip >/dev/null
/usr/bin/chromium --version
# The newest server, as tracker_common::testing::postgres picks it.
"$(ls -d /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)" --version
# The binaries tracker_common::testing::mariadb runs.
/usr/sbin/mariadbd --version
command -v mariadb-install-db >/dev/null

install_npm_packages
