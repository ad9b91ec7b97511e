# build-dir.sh - sourced by scripts/demo.sh, scripts/test.sh and
# bench/run.sh: where and how they build.
#
# pgl_configure TOP BUILD [CONFIGURE-ARGS...]
#   Configures the sources in TOP for a build in BUILD; "make -C BUILD" then
#   builds them.  Normally BUILD is an out-of-tree build directory of TOP.
#   When TOP has been configured in place (./configure run there: a
#   config.status), autoconf refuses to configure it again elsewhere
#   ("source directory already configured"), and a build elsewhere would
#   pick up TOP's objects and headers through VPATH anyway.  Then BUILD is
#   made a clean copy of TOP (its files but .git and the build-* directories
#   of these scripts, "make distclean" run in the copy) and configured in
#   place; TOP and its own build are left as they are.  The copy is made
#   afresh on every run: nothing of an older configuration survives in it.
pgl_configure() {
	local top=$1 build=$2
	shift 2
	if [ -e "$top/config.status" ]; then
		echo "note: $top is configured in place (./configure ran there);" \
			"building a clean copy of it in $build" >&2
		rm -rf "$build"
		mkdir -p "$build"
		tar -C "$top" --exclude=./.git --exclude=./build --exclude=./build-demo \
			--exclude=./build-test --exclude=./build-bench \
			--exclude="./${build#"$top"/}" -cf - . | tar -C "$build" -xf -
		make -C "$build" -s distclean >/dev/null
		(cd "$build" && ./configure "$@")
	else
		# A copy made by an earlier run while TOP was configured in place.
		[ -e "$build/configure.ac" ] && rm -rf "$build"
		mkdir -p "$build"
		(cd "$build" && "$top/configure" "$@")
	fi
}
