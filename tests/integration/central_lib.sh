# Helpers shared by the central_*.sh integration tests (sourced after
# lib.sh). Central runs headless on a free port with its own database under
# $T_DIR and the per-test topic prefix; CP monitors are the scripted
# tests/tools/fake_monitor; drivers and engines are kcat producing JSON.
FAKE_MON=$EVC_BUILDDIR/tests/tools/fake_monitor
K=${EVC_KAFKA:-}

# c_start NAME DB [ARGS...]: start Central (port in C_PORT, chosen once per
# test so a restart reuses it), wait for its READY line.
c_start() {
	local n=$1 db=$2
	shift 2
	: "${C_PORT:=$(free_port)}"
	start "$n" "$EV_CENTRAL" "$C_PORT" "$K" "$db" --headless --plain-links "$@"
	wait_grep 15 "$(log_of "$n")" ' READY '
}
# Wait until Central says Kafka is reachable.
c_kafka_up() { wait_grep 30 "$(log_of "$1")" ' KAFKA up'; }

topic_exists() { kcat -L -b "$K" -t "$(topic "$1")" 2>/dev/null | grep -q 'partition 0'; }
# notif_start NAME: read driver_notifications from the beginning into NAME's
# log, one "<key> <json>" a line (Central creates the topic at start).
notif_start() {
	wait_for 30 topic_exists driver_notifications || return 1
	start "$1" kcat -C -b "$K" -t "$(topic driver_notifications)" -o beginning -u -q -f '%k %s\n'
}
# kp TOPIC KEY JSON...: produce one message per JSON argument.
kp() {
	local t=$1 key=$2
	shift 2
	printf '%s\n' "$@" | kcat -P -b "$K" -t "$(topic "$t")" -k "$key"
}
# req USER CP [TIMESTAMP]: a driver asks to charge.
req() {
	kp driver_requests "$1" "{\"type\":\"REQUEST_CHARGE\",\"user_id\":\"$1\",\"cp_id\":\"$2\",\"timestamp\":${3:-$(date +%s.%N)}}"
}
# tele TYPE CP USER SESSION SEQ [EXTRA_JSON_FIELDS]: an engine's telemetry.
tele() {
	local extra=${6:+,$6}
	kp cp_telemetry "$2" "{\"type\":\"$1\",\"cp_id\":\"$2\",\"user_id\":\"$3\",\"session_id\":\"$4\",\"seq\":$5$extra}"
}
# m_start NAME CP [LOCATION] [PRICE]: a monitor that connects, registers and
# sends a heartbeat every 300 ms.
m_start() {
	start "$1" "$FAKE_MON"
	send "$1" "connect 127.0.0.1 $C_PORT"
	send "$1" "enq"
	send "$1" "send REGISTER#$2#${3:-Calle $2}#${4:-0.25}"
	send "$1" "hb $2 300"
}
# session_of LOG USER CP: the session id of the AUTH_OK line for USER on CP.
session_of() { grep -E " AUTH_OK $2 $3 " "$1" | tail -n 1 | sed -E 's/.* session=([^ ]+).*/\1/'; }
# dbq DB SQL: one query on Central's database (read while Central writes: WAL).
dbq() { sqlite3 -cmd '.timeout 3000' "$1" "$2"; }
# db_is DB SQL EXPECTED: the query's output equals EXPECTED.
db_is() { [ "$(dbq "$1" "$2")" = "$3" ]; }
# has_n FILE PATTERN N: at least N lines of FILE match PATTERN (ERE).
has_n() { [ "$(count_grep "$1" "$2")" -ge "$3" ]; }
# exits_with SECS PID RC: PID (a child of this shell) exits within SECS with RC.
exits_with() {
	wait_for "$1" bash -c "! kill -0 $2 2>/dev/null" || return 1
	wait "$2"
	[ $? -eq "$3" ]
}
