#!/bin/bash
# demo-run.sh BUILDDIR - run under tests/pg/with-postgres: starts pgleased on
# the throwaway server, runs the preforking demo, prints pglease-stat, stops.
set -euo pipefail
build=$1
dir=$PGLEASE_TEST_PGTMP
workers=${DEMO_WORKERS:-8}
requests=${DEMO_REQUESTS:-1000}

cat >"$dir/pglease.conf" <<CONF
broker = {
  socket = "$dir/pglease.sock";
  shm_name = "/pglease.demo.$$";
};
pools = ( {
  name = "main";
  conninfo = "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER";
  min_size = 4;
  max_size = 4;
} );
CONF

echo "== pgleased -c $dir/pglease.conf"
"$build/pgleased" -c "$dir/pglease.conf" 2>"$dir/pgleased.log" &
broker=$!
trap 'kill -INT $broker 2>/dev/null; wait $broker 2>/dev/null' EXIT
for _ in $(seq 100); do
	"$build/pglease-stat" -c "$dir/pglease.conf" --json 2>/dev/null | grep -q '"idle":4' && break
	sleep 0.1
done
head -n 1 "$dir/pgleased.log"

echo
echo "== prefork-demo: $workers forked workers x $requests requests, a pool of 4 backends"
"$build/examples/prefork-demo" -s "$dir/pglease.sock" -w "$workers" -n "$requests"

echo
echo "== pglease-stat -c $dir/pglease.conf"
"$build/pglease-stat" -c "$dir/pglease.conf"

leases=$("$build/pglease-stat" -c "$dir/pglease.conf" --json | sed -n 's/.*"leases":\([0-9]*\).*/\1/p')
echo
echo "The broker granted $leases leases to $workers worker processes over 4 PostgreSQL"
echo "connections: each worker ran plain libpq calls on a PGconn around its lease"
echo "(pgl_conn), none opened a connection of its own, and every backend was reset"
echo "(DISCARD ALL) between holders."

kill -TERM $broker
wait $broker
trap - EXIT
echo "pgleased stopped: $(tail -n 1 "$dir/pgleased.log" | sed 's/.*: info: //')"
