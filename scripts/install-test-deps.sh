#!/usr/bin/env bash
# Installs what the end-to-end tests need (Debian 12, run as root).
# Idempotent: nothing is fetched when the packages are already installed.
set -euo pipefail

packages=(python3-libtorrent aria2 openssl)

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
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

# Debian's libtorrent binding is only importable by Debian's own interpreter.
/usr/bin/python3 -c 'import libtorrent; print("install-test-deps: libtorrent", libtorrent.__version__)'
command -v aria2c >/dev/null
aria2c --version | head -n 1
openssl version
