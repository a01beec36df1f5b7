#!/usr/bin/env bash
# Installs what the end-to-end tests need (Debian 12, run as root).
# Idempotent: nothing is fetched when the packages are already installed.
set -euo pipefail

packages=(python3-libtorrent aria2 openssl transmission-daemon)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$'; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-deps: already installed: ${packages[*]}"
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
# debian-transmission, on every interface, with DHT on). The end-to-end test
# runs its own daemon on 127.0.0.1 and the service must never run: while the
# packages install, a policy-rc.d that denies every service start is in place
# (unless one already is), and the service is disabled afterwards.
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

if command -v systemctl >/dev/null 2>&1; then
    "${sudo_cmd[@]}" systemctl disable transmission-daemon.service >/dev/null 2>&1 || true
elif command -v update-rc.d >/dev/null 2>&1; then
    "${sudo_cmd[@]}" update-rc.d transmission-daemon disable >/dev/null 2>&1 || true
fi
remove_policy
trap - EXIT

# Debian's libtorrent binding is only importable by Debian's own interpreter.
/usr/bin/python3 -c 'import libtorrent; print("install-test-deps: libtorrent", libtorrent.__version__)'
command -v aria2c >/dev/null
aria2c --version | head -n 1
openssl version
transmission-daemon --version 2>&1 | head -n 1
