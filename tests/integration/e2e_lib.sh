# Shared set-up of the end-to-end scenarios, sourced after lib.sh:
# the real EV_Central, EV_CP_M/EV_CP_E pairs and EV_Driver processes on
# loopback against the real broker, each test with its own database, ports
# and topic prefix. Central's helpers (c_start, dbq, has_n, ...) come from
# central_lib.sh.
. "$EVC_SRCDIR/tests/integration/central_lib.sh"

e2e_need() {
	need_kafka
	command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 needed"
	local p
	for p in "$EV_CENTRAL" "$EV_CP_M" "$EV_CP_E" "$EV_DRIVER"; do
		[ -x "$p" ] || tap_skip_all "$(basename "$p") not built"
	done
}

DB=$T_DIR/central.db
declare -A E_PORT=()
# price of CP-i: 0.25, 0.30, 0.35...
cp_price() { awk -v i="$1" 'BEGIN { printf "%.2f", 0.20 + 0.05 * i }'; }

# e2e_central [ARGS...]: the database with drivers 101 and 102, Central
# started headless (log name c) and connected to Kafka.
e2e_central() {
	"$EV_CENTRAL" --add-driver 101 Ana --db "$DB" >/dev/null &&
		"$EV_CENTRAL" --add-driver 102 Luis --db "$DB" >/dev/null || return 1
	c_start c "$DB" "$@" || return 1
	c_kafka_up c
}

# e2e_cp I AUTOPLUG: CP-I (engine eI with --auto-plug AUTOPLUG, monitor mI),
# waits until Central shows it ACTIVADO.
e2e_cp() {
	local i=$1 ap=$2 port
	port=$(free_port)
	E_PORT[$i]=$port
	start "e$i" "$EV_CP_E" "$K" "$port" --headless --auto-plug "$ap"
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
	start "m$i" "$EV_CP_M" "127.0.0.1:$port" "127.0.0.1:$C_PORT" "CP-$i" --location "Calle $i" \
		--price "$(cp_price "$i")" --headless
	wait_grep 20 "$(log_of c)" " STATE CP-$i ACTIVADO$"
}

# e2e_driver NAME ID [ARGS...]: a headless driver; waits for its READY.
e2e_driver() {
	local n=$1 id=$2
	shift 2
	start "$n" "$EV_DRIVER" "$K" "$id" --headless "$@"
	wait_grep 30 "$(log_of "$n")" '^[0-9T:.-]* READY$'
}

# exit_status NAME SECS: wait for NAME to end by itself; status in RC.
exit_status() {
	local pid; pid=$(pid_of "$1")
	RC=timeout
	wait_for "$2" bash -c "! kill -0 $pid 2>/dev/null" || return 0
	wait "$pid"; RC=$?
}

# tickets_match_price LOG...: every TICKET line's importe = kwh x price
# (within the wire's rounding: kWh to 3 decimals, EUR to 2) and kwh > 0.
tickets_match_price() {
	grep -h '^[0-9T:.-]* TICKET ' "$@" | awk '
		{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		  d = v["kwh"] * v["price"] - v["importe"]; if (d < 0) d = -d
		  if (v["kwh"] <= 0 || d > 0.006) { print "bad ticket: " $0; bad = 1 }
		  n++ }
		END { exit (bad || n == 0) }'
}

# median_wait LOG...: median of the AUTH_OK lines' wait_ms (request to AUTH_OK).
median_wait() {
	grep -h '^[0-9T:.-]* AUTH_OK ' "$@" | sed -nE 's/.* wait_ms=([0-9]+).*/\1/p' | sort -n |
		awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# state_now CP STATE: the last state Central showed for CP is STATE.
state_now() { [ "$(grep -E " STATE $1 [A-Z_]+$" "$(log_of c)" | tail -n 1 | awk '{ print $NF }')" = "$2" ]; }
# state_after CP FIRST THEN: Central showed FIRST for CP, and THEN is its state now, shown after FIRST.
state_after() {
	grep -E " STATE $1 [A-Z_]+$" "$(log_of c)" | awk -v a="$2" -v b="$3" '
		$NF == a { seen = 1 } { last = $NF }
		END { exit !(seen && last == b) }'
}
