#!/bin/bash
# bench/run.sh - pglease against a direct connection, connect-per-request and
# PgBouncer, in one run on this machine.
#
# Installs PgBouncer and gnuplot from Debian's packages if missing, builds
# pglease (optimised, no sanitizers), starts a throwaway PostgreSQL, PgBouncer
# and pgleased with the same number of backends, runs every mode interleaved
# (A B C ... A B C ...) for BENCH_ROUNDS rounds, and writes bench/results/:
# results.md (the table, the targets with PASS or MISS), results.csv, raw.txt
# and requests.png.
#
#   BENCH_ROUNDS=5 BENCH_SECONDS=3 BENCH_WORKERS=8 BENCH_POOL=8 bench/run.sh
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh
need=()
command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "bench: run as root, or apt-get install ${need[*]}" >&2; exit 1; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
build=$top/build-bench
mkdir -p "$build"
(cd "$build" && "$top/configure" -q CFLAGS="-O2 -g" && make -j"$(nproc)" >/dev/null)
mkdir -p "$top/bench/results"
exec "$top/tests/pg/with-postgres" "$top/bench/run-inner.sh" "$build" "$top/bench/results"
