#!/bin/bash
# test-summary.sh BUILDDIR - after "make check", print what Automake's harness
# kept in its .log files: each suite's Check summary line, the whole log of a
# suite that did not pass, and a last line "N passed, N failed" that counts
# every test case.  Exits non-zero when anything failed.
set -u
builddir=${1:-.}
passed=0
failed=0
bad=0

while IFS= read -r trs; do
	log=${trs%.trs}.log
	name=${trs#"$builddir"/}
	name=${name%.trs}
	result=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
	summary=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" 2>/dev/null | tail -n 1)
	echo "== $name: ${result:-NO RESULT}"
	if [ -n "$summary" ]; then
		echo "$summary"
		checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$summary")
		fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$summary")
		errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$summary")
		passed=$((passed + checks - fails - errors))
		failed=$((failed + fails + errors))
	elif [ "$result" != PASS ]; then
		failed=$((failed + 1))	# died before Check could count
	fi
	if [ "$result" != PASS ]; then
		bad=1
		echo "---- $log"
		cat "$log" 2>/dev/null
		echo "----"
	fi
done < <(find "$builddir" -name '*.trs' -not -path '*/_build/*' | sort)

if [ $((passed + failed)) -eq 0 ]; then
	echo "test-summary: no test results under $builddir" >&2
	bad=1
fi
echo "$passed passed, $failed failed"
[ "$bad" -eq 0 ] && [ "$failed" -eq 0 ]
