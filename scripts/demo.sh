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

# --check-config also checks what the machine must provide (the socket's
# directory, /run/pglease, exists once systemd starts the unit): the sample,
# with its runtime directory moved under the build directory.
echo "== pgleased --check-config on the sample configuration"
mkdir -p "$build/run"
sed "s|/run/pglease/|$build/run/|" etc/pglease.conf >"$build/pglease-sample.conf"
./pgleased -c "$build/pglease-sample.conf" --check-config
echo

# A throwaway PostgreSQL (as the postgres user when run as root), the broker,
# and a preforking program leasing connections from it.
exec "$top/tests/pg/with-postgres" "$top/examples/demo-run.sh" "$build"
