# Shared helpers for the TAP integration scripts. Source it:
#   . "$EVC_SRCDIR/tests/integration/lib.sh"
# It gives each test its own temp folder, topic prefix and ports, starts
# programs in the background with their output in files, waits for
# conditions with deadlines (never fixed sleeps), and kills everything it
# started on exit.
set -u

: "${EVC_SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${EVC_BUILDDIR:=$EVC_SRCDIR}"
T_NAME=$(basename "$0" .sh)
T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/evc-$T_NAME.XXXXXX")
T_PREFIX="t$(date +%s%N | tail -c 8)$$-"
export EVC_TOPIC_PREFIX="$T_PREFIX"
# The machine's /etc/evcharging/evcharging.conf is not this test's.
export EVC_CONFIG=none
T_N=0
T_FAILED=0
T_PIDS=()
declare -A T_PID_OF=()
declare -A T_FIFO_FD=()

tap_plan() { echo "1..$1"; }
# In CI (EVC_REQUIRE_ALL=1, set by scripts/check) nothing may be skipped: a
# missing broker or tool fails the script instead of passing it untested.
tap_skip_all() {
	if [ -n "${EVC_REQUIRE_ALL:-}" ]; then
		echo "1..1"; echo "not ok 1 - cannot run: $* (EVC_REQUIRE_ALL is set)"; exit 1
	fi
	echo "1..0 # SKIP $*"; exit 0
}
ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_FAILED=$((T_FAILED + 1)); echo "not ok $T_N - $*"; }
diag() { printf '# %s\n' "$@"; }
# check DESC CMD...: ok if CMD succeeds.
check() { local d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }

# The Kafka bootstrap address the check script started (scripts/kafka).
need_kafka() {
	[ -n "${EVC_KAFKA:-}" ] || tap_skip_all "no broker (EVC_KAFKA unset; run via scripts/check)"
}

# A TCP port free on 127.0.0.1 right now.
# pick_python MODULE...: PY = the first python3 (EVC_PYTHON, Debian's,
# then PATH's) that imports every MODULE (Debian's packages live in
# Debian's python, not in a pyenv one first on PATH).
pick_python() {
	local p mods
	mods=$(IFS=,; echo "$*")
	for p in ${EVC_PYTHON:-} /usr/bin/python3 python3; do
		command -v "$p" >/dev/null 2>&1 && "$p" -c "import $mods" 2>/dev/null && { PY=$p; return 0; }
	done
	return 1
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for SECONDS CMD...: run CMD until it succeeds or the deadline passes.
wait_for() {
	local limit=$1; shift
	local end=$(( $(date +%s%N) / 1000000 + ${limit%.*} * 1000 ))
	while ! "$@" >/dev/null 2>&1; do
		[ $(( $(date +%s%N) / 1000000 )) -lt $end ] || return 1
		sleep 0.05
	done
}
# wait_grep SECONDS FILE PATTERN: wait until FILE has a line matching PATTERN (ERE).
wait_grep() { wait_for "$1" grep -Eq -- "$3" "$2"; }
# count_grep FILE PATTERN: number of matching lines (0 if none).
count_grep() { grep -Ec -- "$2" "$1" 2>/dev/null || true; }

# start NAME CMD...: run CMD in the background, stdin from a FIFO you can
# write to with `send NAME LINE`, stdout+stderr into $T_DIR/NAME.log.
start() {
	local name=$1; shift
	local fifo=$T_DIR/$name.in
	rm -f "$fifo"; mkfifo "$fifo"
	"$@" <"$fifo" >"$T_DIR/$name.log" 2>&1 &
	local pid=$!
	local fd
	exec {fd}>"$fifo"
	T_FIFO_FD[$name]=$fd
	T_PIDS+=("$pid")
	T_PID_OF[$name]=$pid
}
send() { printf '%s\n' "$2" >&"${T_FIFO_FD[$1]}"; }
pid_of() { echo "${T_PID_OF[$1]}"; }
log_of() { echo "$T_DIR/$1.log"; }
# stop NAME [SIGNAL]: signal it (default TERM) and wait until it is gone (10 s).
stop() {
	local pid=${T_PID_OF[$1]:-}
	[ -n "$pid" ] || return 0
	kill -"${2:-TERM}" "$pid" 2>/dev/null || true
	wait_for 10 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	local fd=${T_FIFO_FD[$1]:-}
	[ -n "$fd" ] && exec {fd}>&- 2>/dev/null
	unset "T_FIFO_FD[$1]"
	unset "T_PID_OF[$1]"
	return 0
}
# exited NAME: true once the process has exited (status in $T_RC).
alive() { kill -0 "${T_PID_OF[$1]}" 2>/dev/null; }

t_cleanup() {
	local pid
	for pid in "${T_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${T_PIDS[@]}"; do
		wait_for 5 bash -c "! kill -0 $pid 2>/dev/null" || kill -KILL "$pid" 2>/dev/null || true
	done
	if [ "$T_FAILED" -gt 0 ] || [ -n "${EVC_KEEP_TMP:-}" ]; then
		for f in "$T_DIR"/*.log; do
			[ -f "$f" ] || continue
			echo "# ---- $(basename "$f") (last 30 lines)"
			tail -n 30 "$f" | sed 's/^/# /'
		done
	fi
	[ -n "${EVC_KEEP_TMP:-}" ] || rm -rf "$T_DIR"
}
trap t_cleanup EXIT

# Programs under test, from the build tree.
EV_CENTRAL=$EVC_BUILDDIR/EV_Central
EV_CP_M=$EVC_BUILDDIR/EV_CP_M
EV_CP_E=$EVC_BUILDDIR/EV_CP_E
EV_DRIVER=$EVC_BUILDDIR/EV_Driver
# A prefixed topic name for kcat: topic driver_requests -> ${T_PREFIX}driver_requests
topic() { echo "$T_PREFIX$1"; }
