#!/bin/bash
# bench/run.sh - pglease against a direct connection, connect-per-request and
# PgBouncer, in one run on this machine: pglease-bench's modes, and unmodified
# clients (pgbench -C -S; Apache prefork + mod_php under ab) directly, through
# PgBouncer and through the preload shim.
#
# Installs PgBouncer, gnuplot, Apache + mod_php and ab from Debian's packages
# if missing, builds pglease (optimised, no sanitizers), starts a throwaway
# PostgreSQL, PgBouncer and pgleased with the same number of backends (and
# three Apache servers for apache-php), runs every mode interleaved
# (A B C ... A B C ...) for BENCH_ROUNDS rounds, and writes bench/results/:
# results.md (the table, the targets with PASS or MISS), results.csv, raw.txt
# and requests.png.
#
#   BENCH_ROUNDS=5 BENCH_SECONDS=3 BENCH_WORKERS=8 BENCH_POOL=8 bench/run.sh
#
# BENCH_RESULTS=DIR writes there instead (a smoke run, say); BENCH_GROUPS
# limits the run to some groups, BENCH_RESET_CHECK sets the pool's
# reset_check (see run-inner.sh).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# PgBouncer, gnuplot, and the unmodified clients (pgbench, Apache + mod_php, ab)
scripts/install-deps.sh --bench
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
build=$top/build-bench
. "$top/scripts/build-dir.sh"
pgl_configure "$top" "$build" -q CFLAGS="-O2 -g"
make -C "$build" -j"$(nproc)" >/dev/null
results=${BENCH_RESULTS:-$top/bench/results}
mkdir -p "$results"
exec "$top/tests/pg/with-postgres" "$top/bench/run-inner.sh" "$build" "$results"
