#!/bin/bash
# run-inner.sh BUILDDIR RESULTS - the benchmark proper, under tests/pg/with-postgres.
set -euo pipefail
build=$1
out=$2
dir=$PGLEASE_TEST_PGTMP
rounds=${BENCH_ROUNDS:-5}
seconds=${BENCH_SECONDS:-3}
workers=${BENCH_WORKERS:-8}
pool=${BENCH_POOL:-8}
bench=$build/bench/pglease-bench
runas=${PGLEASE_TEST_RUNAS:-}
as_server() { if [ -n "$runas" ]; then runuser -u "$runas" -- "$@"; else "$@"; fi; }

echo "== pgbench -i (scale 1)"
"$PGLEASE_TEST_PGBIN/pgbench" -i -q -s 1 >/dev/null 2>&1

# --- PgBouncer: a session-mode and a transaction-mode database, $pool backends each
bport=$((PGPORT + 1))
cat >"$dir/pgbouncer.ini" <<INI
[databases]
bench_session = host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER pool_mode=session pool_size=$pool
bench_tx = host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER pool_mode=transaction pool_size=$pool
[pgbouncer]
listen_addr =
unix_socket_dir = $dir
listen_port = $bport
auth_type = trust
auth_file = $dir/userlist.txt
max_client_conn = 4000
default_pool_size = $pool
server_reset_query = DISCARD ALL
server_check_delay = 30
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
echo "\"$PGUSER\" \"\"" >"$dir/userlist.txt"
[ -n "$runas" ] && chown "$runas" "$dir/pgbouncer.ini" "$dir/userlist.txt"
as_server pgbouncer "$dir/pgbouncer.ini" >/dev/null 2>&1 &
for _ in $(seq 100); do [ -S "$dir/.s.PGSQL.$bport" ] && break; sleep 0.05; done
bouncer=$(cat "$dir/pgbouncer.pid")

# --- pgleased with a pool of the same size
cat >"$dir/pglease.conf" <<CONF
broker = { socket = "$dir/pglease.sock"; shm_name = "/pglease.bench.$$"; log_level = "warn";
           max_clients = 4000; };
pools = ( { name = "main"; conninfo = "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER";
            min_size = $pool; max_size = $pool; acquire_timeout = 30; } );
CONF
"$build/pgleased" -c "$dir/pglease.conf" 2>"$dir/pgleased.log" &
broker=$!
trap 'kill -INT $broker 2>/dev/null; kill $bouncer 2>/dev/null; wait' EXIT
for _ in $(seq 100); do [ -S "$dir/pglease.sock" ] && break; sleep 0.05; done
sleep 0.5

pg="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER"
bs="host=$dir port=$bport dbname=bench_session user=$PGUSER"
bt="host=$dir port=$bport dbname=bench_tx user=$PGUSER"

busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# group:mode:extra-args
runs=()
for m in direct connect pgbouncer-session-connect pgbouncer-tx-connect pgbouncer-tx lease-raw lease; do
	runs+=("q1:$m:-q 1")
done
for m in direct pgbouncer-tx lease-raw lease; do runs+=("q10:$m:-q 10"); done
for m in direct connect pgbouncer-session-connect pgbouncer-tx-connect pgbouncer-tx lease-raw lease; do
	runs+=("tpcb:$m:-W tpcb")
done
# "none": the process alone, the floor under every mode of that shape
for m in connect pgbouncer-session-connect lease none; do runs+=("cgi:$m:-q 1 --cgi"); done

raw=$out/raw.txt
: >"$raw"
one_run() {	# group mode workers args...
	local group=$1 mode=$2 w=$3; shift 3
	local pooler=0
	case $mode in pgbouncer*) pooler=$bouncer ;; lease*) pooler=$broker ;; esac
	local b0 p0 line b1 p1
	b0=$(busy_ticks); p0=$( [ "$pooler" != 0 ] && proc_ticks "$pooler" || echo 0)
	line=$("$bench" -m "$mode" -w "$w" -t "$seconds" "$@" --pg "$pg" --bouncer-session "$bs" \
		--bouncer-tx "$bt" -s "$dir/pglease.sock" || true)
	b1=$(busy_ticks); p1=$( [ "$pooler" != 0 ] && proc_ticks "$pooler" || echo 0)
	local rss=0
	[ "$pooler" != 0 ] && rss=$(rss_kb "$pooler")
	echo "group=$group round=$round $line sys_cpu_s=$(awk "BEGIN{print ($b1-$b0)/$hz}") pooler_cpu_s=$(awk "BEGIN{print ($p1-$p0)/$hz}") pooler_rss_kb=$rss" >>"$raw"
	echo "  $group $mode: $(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$line") requests/s"
}

for round in $(seq "$rounds"); do
	echo "== round $round of $rounds"
	for r in "${runs[@]}"; do
		IFS=: read -r group mode args <<<"$r"
		# shellcheck disable=SC2086
		one_run "$group" "$mode" "$workers" $args
	done
done
echo "== scale: lease, $pool backends"
round=1
for w in 8 64 512; do one_run "scale$w" lease "$w" -q 1; done

"$(dirname "$0")/report.sh" "$raw" "$out" "$workers" "$pool" "$rounds" "$seconds"
