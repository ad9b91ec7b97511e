# testlib.sh - sourced by the packaging tests: counted checks, one line per
# failure, and a Check-style summary line at the end (which
# scripts/test-summary.sh counts).  Needs the variables Makefile.am's
# AM_TESTS_ENVIRONMENT exports (TOP_SRCDIR, TOP_BUILDDIR, PGL_*).
checks=0
failures=0

# fail MESSAGE: one failed check.
fail() {
	checks=$((checks + 1))
	failures=$((failures + 1))
	echo "FAIL: $*"
}

# pass: one passed check.
pass() {
	checks=$((checks + 1))
}

# check MESSAGE COMMAND [ARG...]: runs COMMAND; a failure prints MESSAGE.
check() {
	local msg=$1
	shift
	if "$@"; then pass; else fail "$msg"; fi
}

# finish: the summary line; exit status 1 when a check failed.
finish() {
	local pct=0
	[ "$checks" -gt 0 ] && pct=$((100 * (checks - failures) / checks))
	echo "$pct%: Checks: $checks, Failures: $failures, Errors: 0"
	[ "$checks" -gt 0 ] && [ "$failures" -eq 0 ]
}

# header_functions: the functions include/pglease.h declares, one a line,
# sorted: every "pgl_NAME(" that starts a declaration's name (after the
# return type, "*" included), comments and the example in them left out.
header_functions() {
	sed -e 's|/\*.*\*/||g' -e '/\/\*/,/\*\//d' "$TOP_SRCDIR/include/pglease.h" |
		grep -E '^[A-Za-z].*[ *]pgl_[a-z_]+\(' |
		sed -E 's/^[^(]*[ *](pgl_[a-z_]+)\(.*/\1/' | sort -u
}

if [ -z "${TOP_SRCDIR:-}" ] || [ -z "${TOP_BUILDDIR:-}" ] || [ -z "${PGL_CC:-}" ]; then
	echo "run from make check (TOP_SRCDIR, TOP_BUILDDIR and PGL_* unset)" >&2
	exit 99
fi
