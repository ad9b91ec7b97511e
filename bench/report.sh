#!/bin/bash
# report.sh RAW OUTDIR WORKERS POOL ROUNDS SECONDS - turn raw.txt into the
# table, the CSV, the targets (PASS/MISS on the median of per-round ratios)
# and the chart.
set -euo pipefail
raw=$1 out=$2 workers=$3 pool=$4 rounds=$5 seconds=$6

machine="$(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), PostgreSQL $(psql -Atc 'SHOW server_version'), $(pgbouncer --version 2>/dev/null | head -n 1)"

awk -v out="$out" -v machine="$machine" -v workers="$workers" -v pool="$pool" \
    -v rounds="$rounds" -v seconds="$seconds" '
function kv(line, key,   m) {
	if (match(line, " " key "=[^ ]*")) return substr(line, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
	return ""
}
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	if (n == 0) return 0
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function minmax(list, fmt,   n, a, i, lo, hi) {
	n = split(list, a, " "); lo = a[1] + 0; hi = a[1] + 0
	for (i = 2; i <= n; i++) { if (a[i] + 0 < lo) lo = a[i] + 0; if (a[i] + 0 > hi) hi = a[i] + 0 }
	return sprintf(fmt "-" fmt, lo, hi)
}
# a value a mode does not measure (ab and pgbench report no acquire time) is left out: "-"
function add(k, field, v) { if (v == "") return; vals[k, field] = vals[k, field] (vals[k, field] == "" ? "" : " ") v }
function medfmt(k, field, fmt) { return vals[k, field] == "" ? "-" : sprintf(fmt, median(vals[k, field])) }
{
	line = " " $0
	g = kv(line, "group"); m = kv(line, "mode"); r = kv(line, "round")
	k = g SUBSEP m
	if (!(k in seen)) { seen[k] = 1; order[++n] = k }
	req = kv(line, "requests") + 0
	add(k, "rps", kv(line, "rps"))
	add(k, "p50", kv(line, "lat_p50_us")); add(k, "p99", kv(line, "lat_p99_us"))
	add(k, "a50", kv(line, "acq_p50_us")); add(k, "a99", kv(line, "acq_p99_us"))
	add(k, "sys", req > 0 ? kv(line, "sys_cpu_s") * 1e6 / req : 0)
	add(k, "pool", req > 0 ? kv(line, "pooler_cpu_s") * 1e6 / req : 0)
	rss[k] = kv(line, "pooler_rss_kb") + 0 > rss[k] ? kv(line, "pooler_rss_kb") + 0 : rss[k]
	# how the requests spread over the workers (pglease-bench modes only)
	nworkers[k] = kv(line, "workers")
	add(k, "wmin", kv(line, "worker_req_min")); add(k, "wp50", kv(line, "worker_req_p50"))
	add(k, "wmax", kv(line, "worker_req_max")); add(k, "wcv", kv(line, "worker_req_cv"))
	errors[k] += kv(line, "errors")
	rps[g, m, r] = kv(line, "rps") + 0
	lat50[g, m, r] = kv(line, "lat_p50_us") + 0; acq50[g, m, r] = kv(line, "acq_p50_us") + 0
	cpu[g, m, r] = req > 0 ? kv(line, "sys_cpu_s") / req : 0
	if (r + 0 > maxr) maxr = r + 0
}
# g: the group of both modes, or "GA/GB" for mode a of group GA against mode b of group GB
function ratio(g, a, b, field,   r, list, x, gg, ga, gb) {
	list = ""
	split(g, gg, "/"); ga = gg[1]; gb = (2 in gg) ? gg[2] : gg[1]
	for (r = 1; r <= maxr; r++) {
		if (field == "rps" && (ga, a, r) in rps && rps[gb, b, r] > 0) x = rps[ga, a, r] / rps[gb, b, r]
		else if (field == "acq" && (ga, a, r) in acq50 && lat50[gb, b, r] > 0) x = acq50[ga, a, r] / lat50[gb, b, r]
		else if (field == "cpu" && (ga, a, r) in cpu && cpu[gb, b, r] > 0) x = cpu[ga, a, r] / cpu[gb, b, r]
		else continue
		list = list (list == "" ? "" : " ") x
	}
	return list
}
function target(desc, g, a, b, field, op, want,   list, med, ok) {
	list = ratio(g, a, b, field)
	if (list == "") { printf "| %s | no data | %s %.2f | MISS |\n", desc, op, want >> md; return }
	med = median(list)
	ok = op == ">=" ? med >= want : med <= want
	printf "| %s | %.2f (%s) | %s %.2f | %s |\n", desc, med, minmax(list, "%.2f"), op, want, ok ? "PASS" : "MISS" >> md
	printf "%-62s %6.2f (%s)  %s %-5.2f %s\n", desc, med, minmax(list, "%5.2f"), op, want, ok ? "PASS" : "MISS"
}
function context(desc, g, a, b, field, says,   list, med) {
	list = ratio(g, a, b, field)
	if (list == "") return
	med = median(list)
	printf "| %s | %.2f (%s) | %s |\n", desc, med, minmax(list, "%.2f"), says >> md
	printf "%-62s %6.2f (%s)  (context)\n", desc, med, minmax(list, "%5.2f")
}
END {
	md = out "/results.md"; csv = out "/results.csv"; dat = out "/requests.dat"
	printf "" > md; printf "" > dat
	print "group,mode,rps_median,rps_min,rps_max,lat_p50_us,lat_p99_us,acq_p50_us,acq_p99_us,cpu_us_per_request_system,cpu_us_per_request_pooler,pooler_rss_kb,errors" > csv
	printf "# pglease benchmark\n\n%s workers (preforking; one process per request for cgi), %s backends in each pooler, %s rounds of %s s, modes interleaved in every round. low: 1 worker, and a pool of 2 backends for its lease modes. scale: 8, 64 and 512 workers against the pool of %s.\n\nUnmodified clients: pgbench-C-S is `pgbench -C -S` (a connection per transaction, %s clients and threads) connecting directly, to PgBouncer in session mode, and under `pglease-run`; apache-php is Apache prefork + mod_php (%s children; a request is pg_connect, one query, pg_close) under `ab -c %s`, connecting directly, to PgBouncer in session mode, and with the preload shim in Apache'"'"'s environment. pgbench'"'"'s latency includes its connection; ab'"'"'s percentiles are whole milliseconds.\n\nMachine: %s.\n\n", workers, pool, rounds, seconds, pool, workers, workers + 4, workers, machine >> md
	print "| group | mode | requests/s median (min-max) | request p50 / p99 us | acquire p50 / p99 us | CPU us/request: system / pooler | pooler RSS KiB | errors |" >> md
	print "|---|---|---|---|---|---|---|---|" >> md
	for (i = 1; i <= n; i++) {
		k = order[i]; split(k, gm, SUBSEP)
		printf "| %s | %s | %.0f (%s) | %s / %s | %s / %s | %.1f / %.1f | %s | %d |\n", gm[1], gm[2], median(vals[k, "rps"]), minmax(vals[k, "rps"], "%.0f"), medfmt(k, "p50", "%.0f"), medfmt(k, "p99", "%.0f"), medfmt(k, "a50", "%.0f"), medfmt(k, "a99", "%.0f"), median(vals[k, "sys"]), median(vals[k, "pool"]), rss[k] ? rss[k] : "-", errors[k] >> md
		printf "%s,%s,%.1f,%s,%s,%s,%s,%s,%.2f,%.2f,%d,%d\n", gm[1], gm[2], median(vals[k, "rps"]), minmax(vals[k, "rps"], "%.0f"), medfmt(k, "p50", "%.0f"), medfmt(k, "p99", "%.0f"), medfmt(k, "a50", "%.0f"), medfmt(k, "a99", "%.0f"), median(vals[k, "sys"]), median(vals[k, "pool"]), rss[k], errors[k] >> csv
		if (gm[1] !~ /^scale/) printf "\"%s %s\" %.1f\n", gm[1], gm[2], median(vals[k, "rps"]) >> dat
	}
	print "\n## Targets (median of the per-round ratios, range in parentheses)\n" >> md
	print "| target | measured | wanted | |" >> md
	print "|---|---|---|---|" >> md
	print "== targets"
	target("Q=1: lease / pgbouncer-session-connect", "q1", "lease", "pgbouncer-session-connect", "rps", ">=", 1.8)
	target("Q=1: lease / pgbouncer-tx-connect", "q1", "lease", "pgbouncer-tx-connect", "rps", ">=", 1.25)
	target("Q=1: lease / connect", "q1", "lease", "connect", "rps", ">=", 40)
	target("Q=10: lease / direct", "q10", "lease", "direct", "rps", ">=", 0.65)
	target("Q=10: lease / pgbouncer-tx (persistent)", "q10", "lease", "pgbouncer-tx", "rps", ">=", 1.5)
	target("process per request: lease / none (the process alone)", "cgi", "lease", "none", "rps", ">=", 0.95)
	target("process per request: lease / pgbouncer-session-connect", "cgi", "lease", "pgbouncer-session-connect", "rps", ">=", 1.08)
	target("scale: lease, 512 workers / 8 workers, pool of " pool, "scale512/scale8", "lease", "lease", "rps", ">=", 0.8)
	# lease (libpq), not lease-raw: its acquire ends with a PGconn ready, where a request of direct begins (run-inner.sh)
	target("low load: lease acquire p50 / direct SELECT 1 p50", "low", "lease", "direct", "acq", "<=", 1)
	target("system CPU per request: lease / pgbouncer-session-connect", "q1", "lease", "pgbouncer-session-connect", "cpu", "<=", 0.7)
	target("pgbench -C -S: pglease-run / pgbouncer-session", "pgbench-C-S", "pglease-run", "pgbouncer-session", "rps", ">=", 1.5)
	target("pgbench -C -S: pglease-run / direct-connect", "pgbench-C-S", "pglease-run", "direct-connect", "rps", ">=", 20)
	target("Apache + PHP: pglease-shim / pgbouncer-session", "apache-php", "pglease-shim", "pgbouncer-session", "rps", ">=", 1.1)
	target("Apache + PHP: pglease-shim / direct-connect", "apache-php", "pglease-shim", "direct-connect", "rps", ">=", 2)
	print "\n## Context\n" >> md
	print "| ratio | measured | what it says |" >> md
	print "|---|---|---|" >> md
	context("process per request: none / connect", "cgi", "none", "connect", "rps",
		"the most any pooler can reach over connect in that shape: the process alone costs this much")
	context("process per request: lease / connect", "cgi", "lease", "connect", "rps",
		"was a target (>= 3), out of reach: lease cannot beat the bare process, so this stays under none / connect above; lease / none is the target now")
	context("Q=1: lease-raw acquire p50 / direct SELECT 1 p50", "q1", "lease-raw", "direct", "acq",
		"was a target (<= 1): with as many workers as backends on a saturated machine, an acquire waits for a reset and for a CPU; the low load target measures the acquire itself")
	context("low load: lease-raw acquire p50 / direct SELECT 1 p50", "low", "lease-raw", "direct", "acq",
		"pgl_acquire alone (the round trip to the broker), without the pgl_conn the target counts")
	spread = ""
	for (i = 1; i <= n; i++) if (order[i] ~ /^scale/ && vals[order[i], "wcv"] != "") spread = spread " " order[i]
	if (spread != "") {
		print "\n## Requests per worker at scale\n" >> md
		print "How evenly the pool serves its waiting workers (a FIFO queue: evenly), each the median over the rounds (range of the coefficient of variation in parentheses).\n" >> md
		print "| group | mode | workers | requests per worker: fewest / median / most | coefficient of variation |" >> md
		print "|---|---|---|---|---|" >> md
		print "== requests per worker (median over rounds): fewest / median / most, coefficient of variation"
		ns = split(substr(spread, 2), sk, " ")
		for (i = 1; i <= ns; i++) {
			k = sk[i]; split(k, gm, SUBSEP)
			printf "| %s | %s | %s | %.0f / %.0f / %.0f | %.3f (%s) |\n", gm[1], gm[2], nworkers[k], median(vals[k, "wmin"]), median(vals[k, "wp50"]), median(vals[k, "wmax"]), median(vals[k, "wcv"]), minmax(vals[k, "wcv"], "%.3f") >> md
			printf "%-10s %-6s %4s workers  %8.0f / %8.0f / %8.0f   cv %.3f (%s)\n", gm[1], gm[2], nworkers[k], median(vals[k, "wmin"]), median(vals[k, "wp50"]), median(vals[k, "wmax"]), median(vals[k, "wcv"]), minmax(vals[k, "wcv"], "%.3f")
		}
	}
}' "$raw"

gnuplot <<GP
set terminal pngcairo size 1600,600 noenhanced font ",10"
set rmargin 16
set output "$out/requests.png"
set title "requests/s per mode (median of $rounds rounds; $workers workers, pools of $pool)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set logscale y
set ylabel "requests/s (log scale)"
set xtics rotate by -40 left
set grid ytics
unset key
plot "$out/requests.dat" using 2:xtic(1) lc rgb "#3b6ea5"
GP
rm -f "$out/requests.dat"
echo "== written: $out/results.md results.csv raw.txt requests.png"
