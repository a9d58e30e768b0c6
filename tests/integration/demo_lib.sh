# Helpers of the tests that run scripts/demo (demo.sh, secrets_sweep.sh),
# sourced after lib.sh.

# demo_need: skip unless the broker, the tools the checks use and the
# programs of the secured demo are there.
demo_need() {
	need_kafka
	local t p
	for t in sqlite3 kcat python3 openssl curl; do
		command -v $t >/dev/null || tap_skip_all "$t not installed"
	done
	for p in EV_Central EV_CP_E EV_CP_M EV_Driver EV_Registry; do
		[ -x "$EVC_BUILDDIR/$p" ] || tap_skip_all "$p not built"
	done
}

# demo_has_api: this build's Central serves the API (--api) and EV_W is
# built, so the demo runs the weather office.
demo_has_api() {
	"$EV_CENTRAL" --help 2>/dev/null | grep -qE -- '(^|[ ,])--api([ =,]|$)' && [ -x "$EVC_BUILDDIR/EV_W" ]
}

# demo_cmd DIR DURATION [ARGS...]: DEMO_CMD, the secured demo headless in DIR for
# DURATION seconds on the test broker with a topic prefix of its own
# (${T_PREFIX}demo-), without setup or build, to run or to start.
demo_cmd() {
	local dir=$1 dur=$2
	shift 2
	DEMO_CMD=(env EVC_BUILDDIR="$EVC_BUILDDIR" "$EVC_SRCDIR/scripts/demo" --no-setup --no-build --headless
		--duration "$dur" --kafka "$EVC_KAFKA" --topic-prefix "${T_PREFIX}demo-" --dir "$dir" "$@")
}
