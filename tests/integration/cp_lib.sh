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
	start "$1" "$EV_CENTRAL" "$CP_CPORT" "$K" --db "$CP_DB" --headless --plain-links
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

# eng_script PORT STEP...: one connection to an engine, driven step by step,
# printing what comes back, one line each: "RECV <DATA>" for the answer to
# each frame sent, "EOT <s>" / "CLOSED <s>" when the engine ends the
# connection, "ENQ NACK" if it refuses the connection at once. A STEP is a
# frame's DATA, or: AUTH! (the right answer to the last CHALLENGE, from
# $SECRET and $CPID, default MAD-01), AUTHBAD! (the same with one digit
# changed), WAITCLOSE (wait up to 10 s for the engine to end it), SILENT
# (send nothing more, wait for the end like WAITCLOSE). $SRC: the local
# address to connect from (any of 127.0.0.0/8), default 127.0.0.1.
eng_script() {
	python3 - "$@" <<'PY'
import socket, sys, time, hmac, hashlib, os
port = int(sys.argv[1]); steps = sys.argv[2:]
secret = os.environ.get("SECRET", ""); cpid = os.environ.get("CPID", "MAD-01")
def lrc(d):
    x = 0x01
    for b in d: x ^= b
    return x
s = socket.socket()
s.bind((os.environ.get("SRC", "127.0.0.1"), 0))
s.settimeout(3); s.connect(("127.0.0.1", port))
buf = b""
def item(timeout=3.0):
    global buf
    s.settimeout(timeout)
    while True:
        if buf:
            if buf[0] == 0x02:
                e = buf.find(b"\x03")
                if e != -1 and len(buf) > e + 1:
                    d, buf = buf[1:e], buf[e + 2:]
                    return ("frame", d.decode())
            else:
                c, buf = buf[0], buf[1:]
                return ("ctrl", c)
        try: c = s.recv(4096)
        except socket.timeout: return ("timeout", None)
        except OSError: return ("eof", None)
        if not c: return ("eof", None)
        buf += c
def out(*a): print(*a, flush=True)
t0 = time.time()
s.sendall(b"\x05")
k, v = item()
if (k, v) != ("ctrl", 6):
    out("ENQ", "NACK" if v == 0x15 else "%s %r" % (k, v)); sys.exit(0)
challenge = "00" * 16
def wait_end():
    while True:
        k, v = item(10)
        if k == "frame": s.sendall(b"\x06"); out("RECV", v); continue
        if k == "ctrl" and v == 4: out("EOT %.1f" % (time.time() - t0)); return
        if k == "eof": out("CLOSED %.1f" % (time.time() - t0)); return
        if k == "timeout": out("TIMEOUT"); return
for step in steps:
    if step in ("WAITCLOSE", "SILENT"):
        wait_end(); break
    if step in ("AUTH!", "AUTHBAD!"):
        mac = hmac.new(secret.encode(), bytes.fromhex(challenge) + cpid.encode(), hashlib.sha256).hexdigest()
        if step == "AUTHBAD!": mac = ("1" if mac[0] != "1" else "2") + mac[1:]
        step = "AUTH#" + mac
    d = step.encode()
    try: s.sendall(b"\x02" + d + b"\x03" + bytes([lrc(d)]))
    except OSError: out("SENDFAIL"); break
    k, v = item()
    if (k, v) == ("ctrl", 4): out("EOT %.1f" % (time.time() - t0)); break
    if (k, v) != ("ctrl", 6): out("NOT_ACKED", k, v); break
    while True:
        k, v = item()
        if k == "frame":
            s.sendall(b"\x06")
            if v.startswith("CHECK_SESSION"): continue
            if v.startswith("CHALLENGE#"): challenge = v.split("#")[1]
            out("RECV", v); break
        if (k, v) == ("ctrl", 4): out("EOT %.1f" % (time.time() - t0)); sys.exit(0)
        out(k.upper(), v); sys.exit(0)
try: s.sendall(b"\x04")
except OSError: pass
s.close()
PY
}

# cp_scripted_central NAME: a scripted Central on $CP_CPORT (python), for
# the monitor's frames byte for byte, over TLS as a secured monitor needs
# (evcharging(7) SECURITY): certificates from scripts/pki in $T_DIR/pki,
# where a credential file in $T_DIR finds pki/ca.pem beside it. Commands
# with `send NAME LINE`:
#   accept [S]   wait S s (default 20) for the next connection: "CONNECTED n"
#                or "NO_CONNECTION S"; its ENQ is ACKed ("ENQ n")
#   send DATA    one frame, waiting for its ACK: "SENT n DATA" (a KEY shown
#                as "KEY#...") or "NOT_ACKED DATA"
#   eot          EOT and close: "CLOSED_BY_US n"
# and what it gets in its log: "RECV n DATA" (each ACKed), "EOT n",
# "CLOSED n".
cp_scripted_central() {
	cat >"$T_DIR/scripted_central.py" <<'PY'
import select, socket, ssl, sys, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(4)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); tls.load_cert_chain(sys.argv[2], sys.argv[3])
# One SSL object must not be used by two threads at once: every read and
# write holds this lock, and the reader waits for data outside it.
lock = threading.Lock()
def send_all(s, b):
    while b:
        try: b = b[s.send(b):]
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError): select.select([], [s], [], 0.05)
def out(*a): print(*a, flush=True)
def lrc(d):
    x = 0x01
    for b in d: x ^= b
    return x
conn = None; acked = threading.Semaphore(0); n = 0
def reader(s, k):
    buf = b""
    while True:
        if not s.pending(): select.select([s], [], [], 0.05)
        with lock:
            try: c = s.recv(4096)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError): continue
            except OSError: c = b""
        if not c: out("CLOSED", k); return
        buf += c
        while buf:
            if buf[0] == 0x02:
                e = buf.find(b"\x03")
                if e == -1 or len(buf) < e + 2: break
                d, buf = buf[1:e], buf[e + 2:]
                with lock: send_all(s, b"\x06")
                out("RECV", k, d.decode())
            else:
                b0, buf = buf[0], buf[1:]
                if b0 == 0x06: acked.release()
                elif b0 == 0x04: out("EOT", k)
                elif b0 == 0x05:
                    with lock: send_all(s, b"\x06")
                    out("ENQ", k)
for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    if cmd == "accept":      # wait for the next connection (arg: seconds)
        end = time.monotonic() + float(arg or 20); conn = None
        while conn is None and time.monotonic() < end:
            srv.settimeout(max(end - time.monotonic(), 0.01))
            try: raw, _ = srv.accept()
            except socket.timeout: break
            raw.settimeout(5)
            try: conn = tls.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError): raw.close()  # a connection its monitor gave up on
        if conn is None: out("NO_CONNECTION", arg); continue
        conn.setblocking(False)
        n += 1; out("CONNECTED", n)
        threading.Thread(target=reader, args=(conn, n), daemon=True).start()
    elif cmd == "send":
        d = arg.encode()
        with lock: send_all(conn, b"\x02" + d + b"\x03" + bytes([lrc(d)]))
        out("SENT", n, arg if not arg.startswith("KEY#") else "KEY#...") if acked.acquire(timeout=2) else out("NOT_ACKED", arg)
    elif cmd == "eot":
        with lock: send_all(conn, b"\x04"); conn.close()
        out("CLOSED_BY_US", n)
PY
	[ -f "$T_DIR/pki/central.pem" ] || "$EVC_SRCDIR/scripts/pki" init "$T_DIR/pki" >/dev/null || return 1
	start "$1" python3 "$T_DIR/scripted_central.py" "$CP_CPORT" "$T_DIR/pki/central.pem" "$T_DIR/pki/central.key"
}
