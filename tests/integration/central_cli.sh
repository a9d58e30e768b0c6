#!/usr/bin/env bash
# EV_Central's command line: --help/--version, bad arguments (exit 2, one
# error line and the usage), runtime failures (exit 1), the registration
# tools and the --import format, --log-format json, --readonly, the topic
# prefix from the environment or the option, and Kafka unreachable at start
# (the CP links are still served).
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 needed"
tap_plan 27

DB=$T_DIR/reg.db
check "--help: usage on stdout, exit 0" bash -c "'$EV_CENTRAL' --help | grep -q '^usage: EV_Central <port>'"
check "--version: exit 0" bash -c "'$EV_CENTRAL' --version | grep -q '^EV_Central '"

# bad_args ARGS...: exit 2, stderr = one "EV_Central: ..." line then the usage.
bad_args() {
	"$EV_CENTRAL" "$@" >"$T_DIR/out" 2>"$T_DIR/err" </dev/null
	local rc=$?
	[ $rc -eq 2 ] && [ "$(grep -c '^EV_Central: ' "$T_DIR/err")" -eq 1 ] &&
		head -n 1 "$T_DIR/err" | grep -q '^EV_Central: ' && grep -q '^usage: ' "$T_DIR/err" && [ ! -s "$T_DIR/out" ]
}
check "no arguments: exit 2" bad_args
check "bad port: exit 2" bad_args 70000 127.0.0.1:9092
check "bad kafka address: exit 2" bad_args 7000 127.0.0.1:notaport
check "unknown option: exit 2" bad_args 7000 127.0.0.1:9092 --frobnicate
check "option without its value: exit 2" bad_args 7000 127.0.0.1:9092 --max-conns
check "bad --log-format: exit 2" bad_args 7000 127.0.0.1:9092 --log-format xml
check "negative timeout: exit 2" bad_args 7000 127.0.0.1:9092 --heartbeat-timeout -1
check "--add-cp with two arguments: exit 2" bad_args --add-cp X 0.2 --db "$DB"

check "--add-driver creates the db and the driver" bash -c \
	"'$EV_CENTRAL' --add-driver 101 Ana María López --db '$DB' | grep -q '^added driver 101'"
check "driver stored with its name" db_is "$DB" "select name from drivers where id='101'" 'Ana María López'
check "--add-driver again updates" bash -c "'$EV_CENTRAL' --add-driver 101 Ana --db '$DB' | grep -q '^updated driver 101'"
check "--add-cp stores id, location, price, DESCONECTADO" bash -c \
	"'$EV_CENTRAL' --add-cp MAD-01 'C/ Serrano 10' 0.25 --db '$DB' >/dev/null && [ \"\$(sqlite3 '$DB' \"select location||'|'||price||'|'||status from charging_points where id='MAD-01'\")\" = 'C/ Serrano 10|0.25|DESCONECTADO' ]"
check "--add-cp with a bad price: exit 1, nothing stored" bash -c \
	"! '$EV_CENTRAL' --add-cp BCN-01 Somewhere 0 --db '$DB' 2>/dev/null && [ \"\$(sqlite3 '$DB' \"select count(*) from charging_points where id='BCN-01'\")\" = 0 ]"
cat >"$T_DIR/net.txt" <<'IMP'
# drivers: driver ID [NAME...]
driver 201 Luis Pérez
driver 202

# charging points: cp ID PRICE LOCATION...
cp BCN-01 0.31 Passeig de Gràcia 12
  cp BCN-02 0.29 Diagonal 1
IMP
check "--import: drivers and CPs" bash -c "'$EV_CENTRAL' --import '$T_DIR/net.txt' --db '$DB' | grep -q '^imported 2 drivers and 2 cps'"
check "imported rows" db_is "$DB" "select (select count(*) from drivers)||'|'||(select location from charging_points where id='BCN-01')" '3|Passeig de Gràcia 12'
printf 'driver 301 Ok\ncp BAD#ID 0.2 Somewhere\n' >"$T_DIR/bad.txt"
"$EV_CENTRAL" --import "$T_DIR/bad.txt" --db "$DB" >/dev/null 2>"$T_DIR/err"
rc=$?
check "--import of a bad file: exit 1 with FILE:LINE" bash -c "[ $rc -eq 1 ] && grep -q 'bad.txt:2: ' '$T_DIR/err'"
check "--import is all or nothing" db_is "$DB" "select count(*) from drivers where id='301'" 0

# Runtime failures: exit 1 with a message.
echo "this is not a database, just text that is long enough to look like a header......" >"$T_DIR/notdb"
"$EV_CENTRAL" "$(free_port)" 127.0.0.1:1 "$T_DIR/notdb" --headless --plain-links </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "unreadable database: exit 1" bash -c "[ $rc -eq 1 ] && grep -q 'EV_Central: ' '$T_DIR/err'"
# A listener holding a port until its stdin (a FIFO we keep open) closes.
mkfifo "$T_DIR/hold.in"
exec {hold}<>"$T_DIR/hold.in"
python3 -c 'import socket,sys; s=socket.socket(); s.bind(("0.0.0.0",0)); s.listen(); print(s.getsockname()[1], flush=True); sys.stdin.read()' \
	<"$T_DIR/hold.in" >"$T_DIR/hold.port" 2>/dev/null &
T_PIDS+=("$!")
wait_for 10 test -s "$T_DIR/hold.port"
"$EV_CENTRAL" "$(cat "$T_DIR/hold.port")" 127.0.0.1:1 "$T_DIR/p.db" --headless --plain-links </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "port taken: exit 1 with a message" bash -c "[ $rc -eq 1 ] && grep -qi 'EV_Central: .*\\(in use\\|bind\\)' '$T_DIR/err'"

# Kafka unreachable at start (nothing listens on the port): Central says so
# and still serves CP links. JSON log format: every line one JSON object.
KDEAD=127.0.0.1:$(free_port)
C_PORT=$(free_port)
# stdout alone in j.log (librdkafka's own connection errors go to stderr).
start j bash -c 'exec "$@" 2>"$0"' "$T_DIR/j.err" "$EV_CENTRAL" "$C_PORT" "$KDEAD" "$DB" --headless --plain-links \
	--log-format json --readonly --topic-prefix cli-x-
J=$(log_of j)
check "json: READY object" wait_grep 15 "$J" '^\{"ts":"[0-9T:.-]+","type":"READY"'
check "--topic-prefix overrides EVC_TOPIC_PREFIX" grep -q '"type":"READY",.*"prefix":"cli-x-"' "$J"
check "Kafka down reported, its fields by name" wait_grep 20 "$J" '"type":"KAFKA","event":"down","reason":".+'
m_start m MAD-01 "C/ Serrano 10" 0.25
check "CP served while Kafka is down" wait_grep 10 "$J" '"type":"STATE","cp":"MAD-01","state":"ACTIVADO"'
send j "P MAD-01"
check "--readonly refuses commands" wait_grep 10 "$J" '"type":"CMD","cmd":"PARAR","cp":"MAD-01","result":"failed"'
stop j
check "every json line parses" python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line); assert "ts" in o and "type" in o; n += 1
assert n >= 4, n
' "$J"
