#!/bin/bash
# install-deps.sh [--tests] [--bench] - install the Debian packages pglease
# needs to build, test and run its demo.  As root it runs apt-get; otherwise
# it only checks.
#
#   --tests  also the real clients that tests/clients drives under the
#            preload shim (Apache prefork + mod_php, ab, Perl DBD::Pg,
#            Python psycopg2), and PgBouncer, which check_pgbouncer puts in
#            front of the server, and prometheus for its promtool, which
#            check_metrics runs on pglease-stat's output; scripts/test.sh
#            passes it
#   --bench  also what bench/run.sh compares against (PgBouncer, gnuplot,
#            and the clients above)
set -euo pipefail

packages=(
	build-essential autoconf automake libtool pkg-config
	libpq-dev libconfig-dev libev-dev check libmicrohttpd-dev
	postgresql postgresql-client openssl
)
# psql and pgbench come with postgresql-client, above.
client_packages=(
	apache2 apache2-utils libapache2-mod-php php-pgsql
	perl libdbd-pg-perl python3 python3-psycopg2 python3-psycopg
)
test_packages=(pgbouncer prometheus)
bench_packages=(pgbouncer gnuplot-nox)

for arg in "$@"; do
	case $arg in
	--tests) packages+=("${client_packages[@]}" "${test_packages[@]}") ;;
	--bench) packages+=("${client_packages[@]}" "${bench_packages[@]}") ;;
	*) echo "usage: install-deps.sh [--tests] [--bench]" >&2; exit 2 ;;
	esac
done

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
