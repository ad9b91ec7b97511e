#!/bin/bash
# install-deps.sh - install the Debian packages pglease needs to build, test
# and run its demo.  As root it runs apt-get; otherwise it only checks.
set -euo pipefail

packages=(
	build-essential autoconf automake libtool pkg-config
	libpq-dev libconfig-dev libev-dev check
	postgresql postgresql-client openssl
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: run as root, or: apt-get install ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
