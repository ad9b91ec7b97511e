#!/bin/bash
# run-inner.sh BUILDDIR RESULTS - the benchmark proper, under tests/pg/with-postgres.
#
# BENCH_GROUPS (space-separated: q1 low q10 tpcb cgi pgbench-C-S apache-php
# scale) runs only those groups; all by default.  BENCH_RESET_CHECK sets the
# pools' reset_check ("function", the default, or "query"), for an A/B.
set -euo pipefail
build=$1
out=$2
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$PGLEASE_TEST_PGTMP
rounds=${BENCH_ROUNDS:-5}
seconds=${BENCH_SECONDS:-3}
workers=${BENCH_WORKERS:-8}
pool=${BENCH_POOL:-8}
groups=${BENCH_GROUPS:-}
reset_check=${BENCH_RESET_CHECK:-function}
bench=$build/bench/pglease-bench
want() { [ -z "$groups" ] || [[ " $groups " == *" $1 "* ]]; }
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

# --- Apache's children (www-data when we are root) reach the sockets in $dir
web_user=$(id -un) web_group=$(id -gn)
if [ "$(id -u)" -eq 0 ]; then web_user=www-data web_group=www-data; fi
web_uid=$(id -u "$web_user")
chmod 0711 "$dir"

# --- pgleased with a pool of the same size, "main" (the first pool: the
# default); and "low", 2 backends, which only the low group leases from
cat >"$dir/pglease.conf" <<CONF
broker = { socket = "$dir/pglease.sock"; shm_name = "/pglease.bench.$$"; log_level = "warn";
           max_clients = 4000;
           socket_mode = "0666"; shm_mode = "0644"; allowed_uids = [ 0, $web_uid ]; };
pools = ( { name = "main"; conninfo = "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER";
            min_size = $pool; max_size = $pool; acquire_timeout = 30;
            reset_check = "$reset_check"; },
          { name = "low"; conninfo = "host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER";
            min_size = 2; max_size = 2; acquire_timeout = 30; reset_check = "$reset_check"; } );
CONF
"$build/pgleased" -c "$dir/pglease.conf" 2>"$dir/pgleased.log" &
broker=$!
apaches=()
stop_all() {
	local a
	for a in ${apaches[@]+"${apaches[@]}"}; do kill -TERM "$a" 2>/dev/null || true; done
	kill -INT $broker 2>/dev/null; kill $bouncer 2>/dev/null
	sleep 1
	for a in ${apaches[@]+"${apaches[@]}"}; do kill -KILL -- "-$a" 2>/dev/null || true; done
	wait
}
trap stop_all EXIT
for _ in $(seq 100); do [ -S "$dir/pglease.sock" ] && break; sleep 0.05; done
sleep 0.5

pg="host=$PGHOST port=$PGPORT dbname=$PGDATABASE user=$PGUSER"
bs="host=$dir port=$bport dbname=bench_session user=$PGUSER"
bt="host=$dir port=$bport dbname=bench_tx user=$PGUSER"

# --- Apache prefork + mod_php (tests/clients/page.php: pg_connect, one query,
# pg_close per request) under ab -c $workers, with a few more children than
# that, as a site sizes it: connecting directly, to PgBouncer's session pool,
# and directly but with the shim preloaded (as a sysadmin would, in Apache's
# environment), which leases from pgleased.
preload=$build/src/preload/.libs/libpglease_preload.so
# the audit library too: PHP loads its extensions with RTLD_DEEPBIND, which
# only the audit interface sees through
export PGLEASE_AUDIT_LIB=$build/src/preload/.libs/libpglease_audit.so
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
declare -A web_port=()
web_names=()
apache_start() {	# name conninfo shim(0|1)
	local name=$1 conninfo=$2 shim=$3 d=$dir/apache-$1 port php
	php=$(basename "$(ls /usr/lib/apache2/modules/libphp*.so | head -n 1)")
	port=$((PGPORT + 2 + ${#web_names[@]}))
	while port_in_use "$port"; do port=$((port + 1)); done
	mkdir -p "$d/htdocs"
	cp "$top/tests/clients/page.php" "$d/htdocs/page.php"
	chmod -R a+rX "$d"
	sed -e "s|@DIR@|$d|g" -e "s|@LISTEN@|127.0.0.1:$port|g" \
	    -e "s|@MODULES@|/usr/lib/apache2/modules|g" -e "s|@PHP_MODULE@|$php|g" \
	    -e "s|@USER@|$web_user|g" -e "s|@GROUP@|$web_group|g" -e "s|@WORKERS@|$((workers + 4))|g" \
	    -e "s|@CONNINFO@|$conninfo|g" "$top/tests/clients/httpd.conf.in" >"$d/httpd.conf"
	local env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C)
	if [ "$shim" = 1 ]; then
		# what pglease-run sets (LD_PRELOAD, LD_AUDIT should the shim need one,
		# PGLEASE_*), as a sysadmin copies it into /etc/apache2/envvars
		local shim_env
		mapfile -t shim_env < <(PGLEASE_PRELOAD_LIB=$preload "$build/pglease-run" \
			-s "$dir/pglease.sock" -- env | grep -E '^(LD_PRELOAD=|LD_AUDIT=|PGLEASE_)' |
			grep -vE '^PGLEASE_(TEST_|PRELOAD_LIB=|AUDIT_LIB=)')
		env+=("${shim_env[@]}")
	fi
	# setsid: a group of its own, so that whatever is left of it can be killed
	env -i "${env[@]}" setsid apache2 -f "$d/httpd.conf" -DFOREGROUND >"$d/stderr.log" 2>&1 &
	apaches+=($!)
	web_port[$name]=$port
	web_names+=("$name")
	for _ in $(seq 200); do port_in_use "$port" && return 0; sleep 0.05; done
	echo "bench: Apache $name did not start:" >&2
	cat "$d/stderr.log" "$d/error.log" >&2 2>/dev/null
	exit 1
}
if want apache-php; then
	apache_start direct-connect "$pg" 0
	apache_start pgbouncer-session "$bs" 0
	apache_start pglease-shim "$pg" 1
fi

# ab for $seconds against one Apache: the line pglease-bench prints (ab's
# percentiles are whole milliseconds; no acquire time apart)
ab_line() {	# mode
	local mode=$1 res
	res=$(ab -q -t "$seconds" -n 100000000 -c "$workers" \
		"http://127.0.0.1:${web_port[$mode]}/page.php" 2>&1) || true
	awk -v mode="$mode" -v w="$workers" '
		/^Time taken for tests:/ { secs = $5 }
		/^Complete requests:/ { n = $3 }
		/^Failed requests:/ { failed = $3 }
		/^Non-2xx responses:/ { non2xx = $3 }
		/^Requests per second:/ { rps = $4 }
		/^ +50% / { p50 = $2 * 1000 }
		/^ +99% / { p99 = $2 * 1000 }
		END {
			if (n == "") { n = 0; failed = 1 }
			printf "mode=%s shape=apache workload=select q=1 workers=%d seconds=%.2f requests=%d errors=%d rps=%.1f lat_p50_us=%d lat_p99_us=%d\n", mode, w, secs, n, failed + non2xx, rps, p50, p99
		}' <<<"$res"
}

# pgbench -C -S for $seconds (a connection per transaction, $workers clients
# and threads): the line pglease-bench prints, percentiles from pgbench's log
pgbench_line() {	# mode dbname command...
	local mode=$1 db=$2 logs res; shift 2
	logs=$(mktemp -d "$dir/pgbench-log.XXXXXX")
	res=$(cd "$logs" && "$@" -n -C -S -c "$workers" -j "$workers" -T "$seconds" -l \
		--log-prefix="$logs/tx" "$db" 2>&1) || true
	local lat
	lat=$(cat "$logs"/tx.* 2>/dev/null | awk '{print $3}' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR == 0) print "0 0"; else print v[int((NR + 1) * 0.5)], v[int((NR - 1) * 0.99) + 1] }')
	rm -rf "$logs"
	awk -v mode="$mode" -v w="$workers" -v secs="$seconds" -v lat="$lat" '
		/^number of transactions actually processed:/ { n = $6 }
		/^number of failed transactions:/ { failed = $5 }
		/^tps = / { tps = $3 }
		/^average connection time = / { conn = $5 * 1000 }
		END {
			split(lat, l, " ")
			if (n == "") { n = 0; failed = 1 }
			printf "mode=%s shape=pgbench workload=select q=1 workers=%d seconds=%.2f requests=%d errors=%d rps=%.1f lat_p50_us=%d lat_p99_us=%d conn_avg_us=%d\n", mode, w, secs, n, failed, tps, l[1], l[2], conn
		}' <<<"$res"
}
pgbench_bin=$PGLEASE_TEST_PGBIN/pgbench

busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
proc_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# group:mode:workers:extra-args (workers empty: $workers)
runs=()
for m in direct connect pgbouncer-session-connect pgbouncer-tx-connect pgbouncer-tx lease-raw lease; do
	runs+=("q1:$m::-q 1")
done
# low load: 1 worker, and for the lease modes the pool "low" of 2 backends,
# so that an idle backend is always there while the one just released is
# being reset (the pool of $pool, saturated by $workers workers, makes an
# acquire wait for a reset). The target compares lease's acquire p50 with
# direct's request p50 (SELECT 1 on a held connection): lease's acquire
# ends where direct's request begins, with a PGconn to PQexec on (it counts
# pgl_acquire and pgl_conn), so it leaves out nothing a libpq program pays
# before its query; lease-raw's (pgl_acquire alone, a socket) would leave
# out pgl_conn, and is a context row. direct ignores -p.
for m in direct lease-raw lease; do runs+=("low:$m:1:-q 1 -p low"); done
for m in direct pgbouncer-tx lease-raw lease; do runs+=("q10:$m::-q 10"); done
for m in direct connect pgbouncer-session-connect pgbouncer-tx-connect pgbouncer-tx lease-raw lease; do
	runs+=("tpcb:$m::-W tpcb")
done
# "none": the process alone, the floor under every mode of that shape
for m in connect pgbouncer-session-connect lease none; do runs+=("cgi:$m::-q 1 --cgi"); done
# unmodified clients: pgbench, and Apache + PHP
for m in direct-connect pgbouncer-session pglease-run; do runs+=("pgbench-C-S:$m::"); done
for m in direct-connect pgbouncer-session pglease-shim; do runs+=("apache-php:$m::"); done
# scale (BENCH_GROUPS: "scale"): 8, 64 and 512 workers against the pool of
# $pool, in every round like the rest, for a ratio per round and the spread
# of requests over the workers (is the pool's queue fair?)
for w in 8 64 512; do runs+=("scale$w:lease:$w:-q 1"); done

raw=$out/raw.txt
: >"$raw"
one_run() {	# group mode workers args...
	local group=$1 mode=$2 w=$3; shift 3
	local pooler=0
	case $mode in pgbouncer*) pooler=$bouncer ;; lease*|pglease*) pooler=$broker ;; esac
	local b0 p0 line b1 p1
	b0=$(busy_ticks); p0=$( [ "$pooler" != 0 ] && proc_ticks "$pooler" || echo 0)
	case $group:$mode in
	pgbench-C-S:direct-connect)
		line=$(pgbench_line "$mode" "$PGDATABASE" "$pgbench_bin" -h "$PGHOST" -p "$PGPORT" -U "$PGUSER") ;;
	pgbench-C-S:pgbouncer-session)
		line=$(pgbench_line "$mode" bench_session "$pgbench_bin" -h "$dir" -p "$bport" -U "$PGUSER") ;;
	pgbench-C-S:pglease-run)
		line=$(PGLEASE_PRELOAD_LIB=$preload pgbench_line "$mode" "$PGDATABASE" "$build/pglease-run" \
			-s "$dir/pglease.sock" -- "$pgbench_bin" -h "$PGHOST" -p "$PGPORT" -U "$PGUSER") ;;
	apache-php:*)
		line=$(ab_line "$mode") ;;
	*)
		line=$("$bench" -m "$mode" -w "$w" -t "$seconds" "$@" --pg "$pg" --bouncer-session "$bs" \
			--bouncer-tx "$bt" -s "$dir/pglease.sock" || true) ;;
	esac
	b1=$(busy_ticks); p1=$( [ "$pooler" != 0 ] && proc_ticks "$pooler" || echo 0)
	local rss=0
	[ "$pooler" != 0 ] && rss=$(rss_kb "$pooler")
	echo "group=$group round=$round $line sys_cpu_s=$(awk "BEGIN{print ($b1-$b0)/$hz}") pooler_cpu_s=$(awk "BEGIN{print ($p1-$p0)/$hz}") pooler_rss_kb=$rss" >>"$raw"
	echo "  $group $mode: $(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$line") requests/s"
}

for round in $(seq "$rounds"); do
	echo "== round $round of $rounds"
	for r in "${runs[@]}"; do
		IFS=: read -r group mode w args <<<"$r"
		case $group in scale*) want scale ;; *) want "$group" ;; esac || continue
		# shellcheck disable=SC2086
		one_run "$group" "$mode" "${w:-$workers}" $args
	done
done
for name in ${web_names[@]+"${web_names[@]}"}; do
	grep -v ':notice\] ' "$dir/apache-$name/error.log" 2>/dev/null | head -n 5 | sed "s|^|bench: Apache $name: |" >&2 || true
done

"$(dirname "$0")/report.sh" "$raw" "$out" "$workers" "$pool" "$rounds" "$seconds"
