#!/bin/bash
# demo.sh - install what is needed, build pglease, and run the demo: a
# throwaway PostgreSQL, pgleased, and forked workers leasing connections.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi
fi
build=$top/build-demo
. "$top/scripts/build-dir.sh"
pgl_configure "$top" "$build" -q
cd "$build"
make -j"$(nproc)" >/dev/null

echo "== pgleased --check-config on the sample configuration"
./pgleased -c etc/pglease.conf --check-config
echo

# A throwaway PostgreSQL (as the postgres user when run as root), the broker,
# and a preforking program leasing connections from it.
exec "$top/tests/pg/with-postgres" "$top/examples/demo-run.sh" "$build"
