#!/usr/bin/env bash
# EV_Central as a service (EV_Central(1) RUNNING AS A SERVICE), with real
# processes: one Central per database (a second one exits 1 naming the
# first one's pid), a read-only folder named as such, `EV_Central ctl`
# against a running Central (status, cps, stop, resume, revoke, log-level,
# sessions from the database, exit codes 0/1/2, --json), the control
# socket's manners (mode 0600, several clients, a slow one that never reads
# stalls nothing, an overlong line, a stale socket file replaced), SIGHUP
# (never fatal; reopens --log-file), sd_notify READY/WATCHDOG/STOPPING on a
# NOTIFY_SOCKET, --listen on IPv6, the configuration file, and one number
# per link in every line.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/central_lib.sh"
need_kafka
command -v python3 >/dev/null || tap_skip_all "python3 needed"
command -v sqlite3 >/dev/null || tap_skip_all "sqlite3 needed"
tap_plan 61

DB=$T_DIR/net.db
CTL=$DB.ctl
ctl() { "$EV_CENTRAL" ctl --db "$DB" "$@"; }
# ctl_is EXPECTED_RC ARGS...: run ctl, output in $T_DIR/ctl.out/.err
ctl_rc() { local want=$1; shift; ctl "$@" >"$T_DIR/ctl.out" 2>"$T_DIR/ctl.err"; [ $? -eq "$want" ]; }

# ---- the registration tools: a bad id is a usage error and creates nothing
"$EV_CENTRAL" --add-driver 'bad id' --db "$T_DIR/bad.db" >/dev/null 2>"$T_DIR/err"
rc=$?
check "--add-driver 'bad id': exit 2 with the usage" bash -c "[ $rc -eq 2 ] && grep -q '^EV_Central: .*invalid driver id' '$T_DIR/err' && grep -q '^usage:' '$T_DIR/err'"
check "--add-driver 'bad id' creates no database" test ! -e "$T_DIR/bad.db"
"$EV_CENTRAL" --add-driver 101 Ana --db "$DB" >/dev/null

# ---- one Central per database
c_start c "$DB"
C=$(log_of c)
CPID=$(pid_of c)
check "Central A is up" grep -q ' READY ' "$C"
"$EV_CENTRAL" "$(free_port)" "$K" "$T_DIR/./net.db" --headless --plain-links </dev/null >"$T_DIR/b.out" 2>"$T_DIR/b.err"
rc=$?
check "a second Central on the same database exits 1" [ $rc -eq 1 ]
check "... naming the pid that holds the lock" grep -q "^EV_Central: .*in use by another EV_Central (pid $CPID holds .*net.db.lock)" "$T_DIR/b.err"
check "... and changes nothing: A still serves" bash -c "kill -0 $CPID && ! grep -q SHUTDOWN '$C'"
check "the control socket has mode 0600" bash -c "[ \"\$(stat -c %a '$CTL')\" = 600 ] && [ -S '$CTL' ]"

# ---- ctl
m_start m MAD-01 "C/ Serrano 10" 0.25
wait_grep 10 "$C" ' STATE MAD-01 ACTIVADO$' || diag "MAD-01 did not register"
check "ctl status: exit 0, aligned text" eval "ctl_rc 0 status && grep -Eq '^pid +$CPID$' '$T_DIR/ctl.out' && grep -Eq '^  ACTIVADO +1$' '$T_DIR/ctl.out' && grep -Eq '^links +1$' '$T_DIR/ctl.out'"
check "ctl status --json: CPs by state, links, Kafka, sessions, uptime" python3 -c '
import json, subprocess, sys
o = json.loads(subprocess.run([sys.argv[1], "ctl", "--db", sys.argv[2], "--json", "status"], capture_output=True, text=True).stdout)
assert o["ok"] and o["pid"] == int(sys.argv[3]) and o["states"]["ACTIVADO"] == 1 and o["links"] == 1
assert o["sessions_open"] == 0 and o["uptime"] >= 0 and "kafka_up" in o and o["db"] == sys.argv[2], o
' "$EV_CENTRAL" "$DB" "$CPID"
check "ctl cps: a header and one aligned row per CP" eval "ctl_rc 0 cps && head -1 '$T_DIR/ctl.out' | grep -Eq '^ID +STATE +LINK +PRICE +DRIVER +KWH +EUR +LOCATION$' && grep -Eq '^MAD-01 +ACTIVADO +plain +0\.25 +- +- +- +C/ Serrano 10$' '$T_DIR/ctl.out'"
check "ctl stop MAD-01: exit 0" ctl_rc 0 stop MAD-01
check "... the CP gets PARAR and is FUERA_DE_SERVICIO" eval "wait_grep 10 '$(log_of m)' 'RECV PARAR' && wait_grep 10 '$C' ' STATE MAD-01 FUERA_DE_SERVICIO$'"
check "... audited with actor operator:ctl (audit_log)" wait_for 5 db_is "$DB" "select count(*) from audit_log where actor='operator:ctl' and action='OPERATOR_STOP' and cp_id='MAD-01'" 1
nact=$(count_grep "$C" ' STATE MAD-01 ACTIVADO$')
check "ctl resume all: exit 0, ACTIVADO again (a new STATE line)" eval "ctl_rc 0 resume all && wait_for 10 has_n '$C' ' STATE MAD-01 ACTIVADO$' $((nact + 1))"
check "ctl stop NOPE (unknown CP): exit 1 saying why" eval "ctl_rc 1 stop NOPE && grep -q '^EV_Central ctl: unknown CP' '$T_DIR/ctl.err'"
check "ctl --json stop NOPE: the answer object, exit 1" eval "ctl_rc 1 --json stop NOPE && grep -q '^{\"ok\":false,\"error\":\"unknown CP\"}$' '$T_DIR/ctl.out'"
check "ctl revoke MAD-01 (a plaintext CP, no key): exit 1 saying why" eval "ctl_rc 1 revoke MAD-01 && grep -q '^EV_Central ctl: the CP has no key' '$T_DIR/ctl.err'"
check "ctl with a bad command: exit 2 with the usage" eval "ctl_rc 2 frobnicate && grep -q '^usage: EV_Central ctl' '$T_DIR/ctl.err'"
check "ctl stop with a bad id: exit 2" ctl_rc 2 stop 'bad id'
check "ctl log-level debug: exit 0, status says debug" eval "ctl_rc 0 log-level debug && ctl_rc 0 status && grep -Eq '^log level +debug' '$T_DIR/ctl.out' && ctl_rc 0 log-level info"
check "ctl log-level loud: exit 2" ctl_rc 2 log-level loud
"$EV_CENTRAL" ctl --control "$T_DIR/nobody.ctl" status >/dev/null 2>"$T_DIR/err"
rc=$?
check "ctl without a Central: exit 1, naming the socket" bash -c "[ $rc -eq 1 ] && grep -q 'cannot reach Central at .*nobody.ctl' '$T_DIR/err'"

# sessions: read from the database itself (read-only), even without Central.
req 101 MAD-01
wait_grep 15 "$C" ' AUTH_OK 101 MAD-01 ' || diag "no AUTH_OK"
SID=$(session_of "$C" 101 MAD-01)
check "ctl sessions: the open session, from the database" eval "ctl_rc 0 sessions && grep -Eq '^$SID +MAD-01 +101 +[0-9T:-]+ +- +0\.000 +0\.00 +OPEN' '$T_DIR/ctl.out'"
check "ctl sessions --cp OTHER: none" eval "ctl_rc 0 sessions --cp OTHER && [ \$(wc -l <'$T_DIR/ctl.out') -eq 1 ]"
check "ctl --json sessions --driver 101 --limit 1" python3 -c '
import json, subprocess, sys
o = json.loads(subprocess.run([sys.argv[1], "ctl", "--db", sys.argv[2], "--json", "sessions", "--driver", "101", "--limit", "1"], capture_output=True, text=True).stdout)
assert o["ok"] and len(o["sessions"]) == 1 and o["sessions"][0]["id"] == sys.argv[3] and o["sessions"][0]["outcome"] == "OPEN", o
' "$EV_CENTRAL" "$DB" "$SID"
check "ctl sessions --limit 0: exit 2" ctl_rc 2 sessions --limit 0

# ---- the socket's manners
check "an overlong request line is answered with an error; the next line is served" python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(b"P " + b"x" * 5000 + b"\nSTATUS\n")
f = s.makefile("rb")
a = json.loads(f.readline()); b = json.loads(f.readline())
assert not a["ok"] and "request line too long" in a["error"], a
assert b["ok"] and b["pid"] > 0, b
' "$CTL"
# 16 clients at once, the 17th refused; one of them attached and never
# reading while 30,000 stream lines are made: the loop goes on (ctl status
# answers at once, the monitor's link stays up) and Central's memory stays
# bounded.
python3 - "$CTL" "$T_DIR/slow.ready" "$T_DIR/slow.go" <<'PY' >"$T_DIR/slow.log" 2>&1 &
import os, socket, sys, time
path, ready, go = sys.argv[1:4]
held = []
for i in range(15):
    s = socket.socket(socket.AF_UNIX); s.connect(path); held.append(s)
held[0].sendall(b"ATTACH\n")
open(ready, "w").write("ok")
while not os.path.exists(go):
    time.sleep(0.05)
s = socket.socket(socket.AF_UNIX); s.connect(path); held.append(s)
time.sleep(0.3)
extra = socket.socket(socket.AF_UNIX); extra.connect(path)
extra.settimeout(5)
print("17th:", extra.recv(200).decode().strip(), flush=True)
time.sleep(60)
PY
SLOW=$!
T_PIDS+=("$SLOW")
wait_for 10 test -s "$T_DIR/slow.ready"
check "with 15 clients held open, one attached: the 16th is served" ctl_rc 0 status
touch "$T_DIR/slow.go"
wait_grep 10 "$T_DIR/slow.log" '^17th:'
check "the 17th client is told there are too many" grep -q '17th: {"ok":false,"error":"too many control clients (16)"}' "$T_DIR/slow.log"
kill "$SLOW" 2>/dev/null; wait "$SLOW" 2>/dev/null
python3 - "$CTL" <<'PY' >"$T_DIR/flood.log" 2>&1 &
import socket, sys, time
path = sys.argv[1]
slow = socket.socket(socket.AF_UNIX); slow.connect(path)
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
slow.sendall(b"ATTACH\n")
time.sleep(0.3)
f = socket.socket(socket.AF_UNIX); f.connect(path)
f.setblocking(True)
for i in range(30000):   # each makes a WARN line for the stream
    f.sendall(b"P NO-SUCH-CP-%d\n" % i)
f.settimeout(30)
got = 0
buf = b""
while got < 30000:
    c = f.recv(65536)
    if not c: break
    got += c.count(b"\n")
print("answers", got, flush=True)
time.sleep(1)
# now read the slow one: it missed lines, is told so, then gets the whole picture
slow.settimeout(10)
data = b""
t = time.time() + 10
def done(d):
    return b"lines dropped" in d and b'"t":"sync"' in d.split(b"lines dropped", 1)[1]
while time.time() < t and not done(data):
    try:
        c = slow.recv(1 << 20)
    except socket.timeout:
        break
    if not c: break
    data += c
print("dropped" if b"lines dropped: this panel read too slowly" in data else "no-drop", flush=True)
print("resync" if b'"id":"MAD-01"' in data.split(b"lines dropped", 1)[-1] else "no-resync", flush=True)
PY
FLOOD=$!
T_PIDS+=("$FLOOD")
wait_grep 60 "$T_DIR/flood.log" '^answers 30000'
check "every one of 30,000 requests was answered with the slow client attached" grep -q '^answers 30000' "$T_DIR/flood.log"
check "ctl status answers within 2 s meanwhile" eval 'timeout 2 "$EV_CENTRAL" ctl --db "$DB" status >/dev/null'
rss=$(awk '/VmRSS/ {print $2}' /proc/$CPID/status)
backlog=$("$EV_CENTRAL" ctl --db "$DB" --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["control_backlog"])')
diag "after the flood: Central's RSS ${rss} kB, the slow client's backlog $backlog bytes"
check "the slow client's backlog stays bounded ($backlog bytes <= 1 MiB + a line)" [ "$backlog" -le 1100000 ]
check "the monitor's link never dropped" bash -c "! grep -q 'LINK down' '$C'"
wait_for 20 bash -c "! kill -0 $FLOOD 2>/dev/null"
check "the slow client is told it missed lines" grep -q '^dropped' "$T_DIR/flood.log"
check "... and then gets the whole picture again" grep -q '^resync' "$T_DIR/flood.log"

# ---- SIGHUP: never fatal
kill -HUP "$CPID"
check "SIGHUP headless without --log-file: noted, Central goes on" wait_grep 5 "$C" ' LOGFILE ignored reason=SIGHUP'
check "... and still answers" ctl_rc 0 status

# one link, one number: the loop's conn=, the core's "link N", cplink's lines
send m close
wait_grep 10 "$C" ' LINK down conn=' || diag "no LINK down"
n=$(grep -Eo ' LINK up conn=[0-9]+' "$C" | head -1 | grep -Eo '[0-9]+$')
check "one number per link: LINK conn=$n, the core's and cplink's 'link $n'" bash -c "grep -q ' LINK down conn=$n ' '$C' && grep -q 'registered (first time) on link $n:' '$C' && grep -q 'cplink: link $n ' '$C'"

# ---- stop A; a stale socket file (a Central killed with -9) is replaced
stop c KILL
check "a Central killed with -9 leaves its socket file" test -S "$CTL"
c_start c2 "$DB"
check "the next Central replaces the stale socket and answers" ctl_rc 0 status
"$EV_CENTRAL" "$(free_port)" "$K" "$T_DIR/other.db" --headless --plain-links --control "$CTL" </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "a control socket in use by another Central is refused (exit 1)" bash -c "[ $rc -eq 1 ] && grep -q 'control socket .* is in use by another EV_Central' '$T_DIR/err'"
check "... and its owner still answers" ctl_rc 0 status
stop c2

# ---- --log-file and SIGHUP (logrotate)
C_PORT=$(free_port)
start c3 "$EV_CENTRAL" "$C_PORT" "$K" "$DB" --headless --plain-links --log-file "$T_DIR/central.log"
wait_for 15 grep -q ' READY ' "$T_DIR/central.log"
check "--log-file: the console lines go to the file" grep -q ' READY listen=' "$T_DIR/central.log"
mv "$T_DIR/central.log" "$T_DIR/central.log.1"
kill -HUP "$(pid_of c3)"
check "SIGHUP reopens the log file under its name" wait_grep 5 "$T_DIR/central.log" ' LOGFILE reopened log=.*central.log reason=SIGHUP'
check "... the old one keeps what came before" bash -c "grep -q ' READY ' '$T_DIR/central.log.1' && ! grep -q ' READY ' '$T_DIR/central.log'"
stop c3
check "... and SHUTDOWN lands in the new one" grep -q ' SHUTDOWN reason=signal' "$T_DIR/central.log"

# ---- sd_notify: READY=1, WATCHDOG=1 from the loop's tick, STOPPING=1
python3 - "$T_DIR/notify.sock" >"$T_DIR/notify.log" 2>&1 <<'PY' &
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
print("BOUND", flush=True)
s.settimeout(60)
while True:
    try: d = s.recv(4096)
    except socket.timeout: break
    for l in d.decode().split("\n"):
        if l: print(l, flush=True)
PY
T_PIDS+=("$!")
wait_grep 10 "$T_DIR/notify.log" '^BOUND'
C_PORT=$(free_port)
start c4 env NOTIFY_SOCKET="$T_DIR/notify.sock" WATCHDOG_USEC=2000000 "$EV_CENTRAL" "$C_PORT" "$K" "$DB" --headless --plain-links
check "sd_notify READY=1 once Central is ready" wait_grep 5 "$T_DIR/notify.log" '^READY=1$'
check "WATCHDOG=1 from the loop, every second with WatchdogSec=2" eval "wait_for 6 has_n '$T_DIR/notify.log' '^WATCHDOG=1$' 3"
stop c4
check "STOPPING=1 at shutdown" wait_grep 5 "$T_DIR/notify.log" '^STOPPING=1$'

# ---- --listen: IPv6 loopback
if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
	C_PORT=$(free_port)
	c_start c5 "$DB" --listen ::1
	check "--listen ::1: READY says [::1]:port" grep -q " READY listen=\[::1\]:$C_PORT " "$(log_of c5)"
	start m6 "$FAKE_MON"
	send m6 "connect ::1 $C_PORT"
	send m6 enq
	send m6 "send REGISTER#V6-01#Calle 6#0.30"
	check "a monitor registers over IPv6" wait_grep 10 "$(log_of c5)" ' STATE V6-01 ACTIVADO$'
	check "... its peer printed as [::1]:port" grep -Eq ' LINK up conn=[0-9]+ peer=\[::1\]:[0-9]+( |$)' "$(log_of c5)"
	check "IPv4 is not served then" bash -c "! python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $C_PORT), timeout=2)' 2>/dev/null"
	stop m6
	stop c5
else
	for i in 1 2 3 4; do not_ok "--listen ::1: no IPv6 loopback on this machine"; done
fi
"$EV_CENTRAL" "$(free_port)" "$K" "$T_DIR/l.db" --plain-links --listen 'a b' </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "--listen with a bad address: exit 2" bash -c "[ $rc -eq 2 ] && grep -q '^EV_Central: --listen: invalid address' '$T_DIR/err'"

# ---- the configuration file: broker, database, topic prefix, log format
cat >"$T_DIR/evc.conf" <<CONF
# test configuration
[evcharging]
broker = $K
database = $T_DIR/conf.db
topic_prefix = ${T_PREFIX}conf-
[EV_Central]
log_format = json
CONF
C_PORT=$(free_port)
start c6 env -u EVC_TOPIC_PREFIX "$EV_CENTRAL" "$C_PORT" --headless --plain-links --config "$T_DIR/evc.conf"
check "--config: broker, database, prefix and log format from the file" wait_grep 15 "$(log_of c6)" "^\\{\"ts\":\"[^\"]+\",\"type\":\"READY\",\"listen\":\"0.0.0.0:$C_PORT\",\"kafka\":\"$K\",\"db\":\"$T_DIR/conf.db\",\"cps\":0,\"prefix\":\"${T_PREFIX}conf-\"\\}"
check "ctl finds Central through the same file" bash -c "'$EV_CENTRAL' ctl --config '$T_DIR/evc.conf' status | grep -q '^database  *$T_DIR/conf.db'"
stop c6
C_PORT=$(free_port)
start c7 env EVC_TOPIC_PREFIX=envp- "$EV_CENTRAL" "$C_PORT" --headless --plain-links --config "$T_DIR/evc.conf" --log-format text --db "$T_DIR/cli.db"
check "options and the environment win over the file" wait_grep 15 "$(log_of c7)" " READY listen=.* db=$T_DIR/cli.db cps=0 prefix=envp-$"
stop c7
printf '[evcharging]\nbroker = %s\nlog_format = yaml\n' "$K" >"$T_DIR/bad.conf"
"$EV_CENTRAL" "$(free_port)" --config "$T_DIR/bad.conf" --headless </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "a bad line: exit 2 naming the file and line" bash -c "[ $rc -eq 2 ] && grep -q \"^EV_Central: $T_DIR/bad.conf:3: log_format: expected text or json, not 'yaml'\" '$T_DIR/err'"
"$EV_CENTRAL" "$(free_port)" --config "$T_DIR/none.conf" --headless </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "a missing --config file: exit 2 naming it" bash -c "[ $rc -eq 2 ] && grep -q 'none.conf: cannot open the configuration file' '$T_DIR/err'"

# ---- a read-only folder is named as such (not "attempt to write a readonly
# database"). Root writes anywhere, so as root the program runs as nobody.
RO=$T_DIR/ro
mkdir -p "$RO"
"$EV_CENTRAL" --add-cp X-1 Somewhere 0.2 --db "$RO/ro.db" >/dev/null
chmod 755 "$T_DIR"
chmod 555 "$RO"
as_user() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi; }
as_user "$EV_CENTRAL" "$(free_port)" 127.0.0.1:1 "$RO/ro.db" --headless --plain-links </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "Central in a read-only folder: exit 1 naming the folder" bash -c "[ $rc -eq 1 ] && grep -q '^EV_Central: the database folder .*/ro is read-only' '$T_DIR/err' && ! grep -q 'attempt to write' '$T_DIR/err'"
as_user "$EV_CENTRAL" --add-driver 7 --db "$RO/ro.db" </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "--add-driver in a read-only folder: the same clear message" bash -c "[ $rc -eq 1 ] && grep -q '^EV_Central: the database folder .*/ro is read-only' '$T_DIR/err'"
chmod 755 "$RO"
exit "$T_FAILED"
