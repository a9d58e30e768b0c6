#!/usr/bin/env bash
# scripts/demo end to end: headless for EVC_DEMO_DURATION seconds (default
# 60) against the test broker with a topic prefix of its own, then checks
# that services ended in tickets (Central's console, the drivers' logs and
# the database agree) and that nothing the demo started is still running.
. "$EVC_SRCDIR/tests/integration/lib.sh"
need_kafka
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 not installed"
tap_plan 8

dur=${EVC_DEMO_DURATION:-60}
dir=$T_DIR/demo
t0=$(date +%s%N)
EVC_BUILDDIR=$EVC_BUILDDIR "$EVC_SRCDIR/scripts/demo" --no-setup --no-build --headless \
	--duration "$dur" --kafka "$EVC_KAFKA" --topic-prefix "${T_PREFIX}demo-" --dir "$dir" \
	>"$T_DIR/demo.log" 2>&1 </dev/null
rc=$?
wall=$(( ($(date +%s%N) - t0) / 1000000 ))
diag "demo ran ${wall} ms (duration $dur s), exit status $rc"
check "demo exits 0" [ "$rc" -eq 0 ]
check "demo says where its logs are" grep -q "demo folder: $dir" "$T_DIR/demo.log"

central=$dir/logs/central.log
check "Central became READY" grep -Eq '^[^ ]+ READY ' "$central"
nact=$(grep -Ec '^[^ ]+ STATE [A-Z]+-[0-9]+ ACTIVADO' "$central" 2>/dev/null || true)
check "every one of the 8 CPs was ACTIVADO at some point ($nact STATE lines)" \
	[ "$(grep -E '^[^ ]+ STATE [A-Z]+-[0-9]+ ACTIVADO' "$central" | awk '{print $3}' | sort -u | wc -l)" -eq 8 ]

tc=$(grep -Ec '^[^ ]+ TICKET ' "$central" 2>/dev/null || true)
td=$(cat "$dir"/logs/driver-*.log 2>/dev/null | grep -Ec '^[0-9T:.-]* TICKET ' || true)
tdb=$(sqlite3 "$dir/evcharging.db" "SELECT count(*) FROM sessions WHERE outcome='TICKET'" 2>/dev/null || echo 0)
diag "tickets: Central console $tc, drivers $td, database $tdb"
check "services ended in tickets (Central: $tc)" [ "$tc" -ge 3 ]
check "the database holds one TICKET session per ticket line ($tdb)" [ "$tdb" -eq "$tc" ]
# A driver stopped by the demo may miss a ticket issued as it closes.
check "drivers received tickets ($td of $tc)" test "$td" -ge 1 -a "$td" -le "$tc"

alive=()
if [ -f "$dir/pids" ]; then
	while read -r pid name; do
		kill -0 "$pid" 2>/dev/null && alive+=("$name:$pid")
	done <"$dir/pids"
fi
# Anything still holding the demo folder in its command line counts too.
while read -r pid; do
	[ "$pid" = "$$" ] || alive+=("pgrep:$pid")
done < <(pgrep -f -- "$dir" || true)
check "nothing the demo started is still running (${alive[*]:-none}; $(wc -l <"$dir/pids") recorded)" \
	[ ${#alive[@]} -eq 0 ]
if [ "$T_FAILED" -gt 0 ]; then
	sed 's/^/# demo: /' "$T_DIR/demo.log"
	tail -n 20 "$central" | sed 's/^/# central: /'
fi
