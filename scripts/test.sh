#!/bin/bash
# test.sh - install what is needed, build pglease with warnings as errors and
# AddressSanitizer + UndefinedBehaviorSanitizer, and run the whole test suite
# (unit suites, integration suites against throwaway PostgreSQL servers, and
# real clients under the preload shim: psql, pgbench, Apache + PHP, Perl,
# Python).
# Prints every suite's Check summary and ends with "N passed, N failed".
#
# PGLEASE_CONFIGURE_FLAGS overrides the configure flags (for a plain build:
# PGLEASE_CONFIGURE_FLAGS=--enable-werror).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh --tests
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi

build=$top/build-test
. "$top/scripts/build-dir.sh"
# shellcheck disable=SC2086
pgl_configure "$top" "$build" -q ${PGLEASE_CONFIGURE_FLAGS:---enable-werror --enable-sanitizers}
cd "$build"
make -j"$(nproc)" >/dev/null
rc=0
make -j"$(nproc)" check >/dev/null 2>&1 || rc=$?
"$top/scripts/test-summary.sh" "$build" || rc=1
exit $rc
