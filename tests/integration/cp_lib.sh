# Helpers for the charging-point integration scripts (cp_*.sh): a real
# EV_Central --headless with its own database, a real EV_CP_E and EV_CP_M on
# loopback ports of their own, the real broker at $EVC_KAFKA. Source after
# lib.sh.

for p in "$EV_CENTRAL" "$EV_CP_E" "$EV_CP_M"; do
	[ -x "$p" ] || tap_skip_all "$p not built"
done
CP_DB=$T_DIR/central.db
CP_CPORT=$(free_port)
CP_EPORT=$(free_port)
K=${EVC_KAFKA:-}

# cp_add_driver ID NAME: register a driver in Central's database.
cp_add_driver() { "$EV_CENTRAL" --add-driver "$1" "$2" --db "$CP_DB" >/dev/null; }

# cp_central NAME: start Central (headless) and wait until it listens.
cp_central() {
	start "$1" "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless
	wait_grep 20 "$(log_of "$1")" ' READY '
}
# cp_engine NAME [ARGS...]
cp_engine() {
	local n=$1; shift
	start "$n" "$EV_CP_E" "$K" "$CP_EPORT" --headless "$@"
	wait_grep 10 "$(log_of "$n")" '^[0-9T:.-]* START port='
}
# cp_monitor NAME CP_ID [ARGS...]
cp_monitor() {
	local n=$1 id=$2; shift 2
	start "$n" "$EV_CP_M" "127.0.0.1:$CP_EPORT" "127.0.0.1:$CP_CPORT" "$id" --headless "$@"
}
# last_state LOG CP: the last state Central announced for CP.
last_state() { grep -E " STATE $2 [A-Z_]+$" "$1" | tail -n 1 | awk '{print $NF}'; }
# is_state LOG CP STATE: true if that is the current one.
is_state() { [ "$(last_state "$1" "$2")" = "$3" ]; }
# notes: every driver notification so far, one JSON per line.
notes() { kcat -b "$K" -C -t "$(topic driver_notifications)" -o beginning -e -q -f '%s\n' 2>/dev/null; }
# note_for TYPE SESSION: the notification of TYPE for SESSION ("" if none yet).
note_for() { notes | grep "\"type\":\"$1\"" | grep "\"session_id\":\"$2\"" | tail -n 1; }
has_note() { [ -n "$(note_for "$1" "$2")" ]; }
# json_get JSON FIELD
json_get() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
# session_of LOG: the session id of the engine's last authorisation.
session_of() { grep -E '^[0-9T:.-]* AUTH driver=' "$1" | tail -n 1 | sed -E 's/.* session=([^ ]+) .*/\1/'; }
# exchange PORT DATA: one per-exchange client session with the engine (ENQ,
# one frame, its answer, EOT, close), as evcharging(7) DESCRIPTION allows; prints the
# answer's DATA. Answer frames are ACKed; the engine's own frames (such as
# CHECK_SESSION) are skipped. A third argument: send only, expect no answer.
exchange() {
	python3 - "$@" <<'PY'
import socket, sys, time
port, data = int(sys.argv[1]), sys.argv[2].encode()
s = socket.create_connection(("127.0.0.1", port), timeout=3)
def lrc(d):
    x = 0x02 ^ 0x03
    for b in d: x ^= b
    return x
buf = b""
def read_item():
    global buf
    while True:
        if buf:
            if buf[0] == 0x02:
                e = buf.find(b"\x03")
                if e != -1 and len(buf) > e + 1:
                    d, buf = buf[1:e], buf[e + 2:]
                    return ("frame", d)
            else:
                c, buf = buf[0], buf[1:]
                return ("ctrl", c)
        chunk = s.recv(4096)
        if not chunk: return ("eof", None)
        buf += chunk
s.sendall(b"\x05")
assert read_item() == ("ctrl", 0x06), "no ACK to ENQ"
s.sendall(b"\x02" + data + b"\x03" + bytes([lrc(data)]))
assert read_item() == ("ctrl", 0x06), "frame not ACKed"
if len(sys.argv) > 3:   # no answer expected
    s.sendall(b"\x04"); s.close(); sys.exit(0)
while True:
    k, v = read_item()
    if k == "eof": sys.exit("closed before answering")
    if k == "frame":
        s.sendall(b"\x06")
        if v.startswith(b"CHECK_SESSION"): continue
        print(v.decode()); break
s.sendall(b"\x04"); s.close()
PY
}
