#!/bin/bash
# The monitor's side of both links, byte for byte, against a scripted
# Central and a scripted engine (python) so every answer can be checked:
# REGISTER fields, DENIED then a retry, HEARTBEATs, FAULT when the engine is
# down at start, NACK for a command it cannot relay, ERROR for an unknown
# opcode; then the exact HEALTH_CHECK frames (evcharging(7) THE LINK PROTOCOL and MONITOR AND ENGINE test
# vectors), a bare OK understood, an authorisation with an optional trailing
# field relayed, and the state derived without the engine's activity field.
# Last, the real engine's answer to a bare HEALTH_CHECK, byte for byte.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 17
OUT=$T_DIR/fake.out
python3 - "$CP_CPORT" "$CP_EPORT" >"$OUT" 2>&1 <<'PY' &
import socket, sys, threading, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(4); srv.settimeout(20)
def lrc(d):
    x = 0x02 ^ 0x03
    for b in d: x ^= b
    return x
class Conn:
    def __init__(self, s): self.s, self.buf = s, b""; s.settimeout(5)
    def item(self):
        while True:
            if self.buf:
                if self.buf[0] == 0x02:
                    e = self.buf.find(b"\x03")
                    if e != -1 and len(self.buf) > e + 1:
                        d, self.buf = self.buf[1:e], self.buf[e + 2:]
                        self.s.sendall(b"\x06")          # ACK every frame
                        return ("frame", d.decode())
                else:
                    c, self.buf = self.buf[0], self.buf[1:]
                    return ("ctrl", c)
            c = self.s.recv(4096)
            if not c: return ("eof", None)
            self.buf += c
    def frame(self):
        while True:
            k, v = self.item()
            if k != "ctrl": return v
    def other(self):   # the next frame that is not a HEARTBEAT or RECOVER
        while True:
            f = self.frame()
            if f is None or not (f.startswith("HEARTBEAT#") or f.startswith("RECOVER#")): return f
    def send(self, d):
        d = d.encode(); self.s.sendall(b"\x02" + d + b"\x03" + bytes([lrc(d)]))
def accept():
    s, _ = srv.accept(); c = Conn(s)
    assert c.item() == ("ctrl", 0x05); s.sendall(b"\x06"); return c
c = accept(); print("REG1", c.frame(), flush=True)
c.send("REGISTER_RESULT#DENIED#price too high"); c.s.sendall(b"\x04"); c.s.close()
t0 = time.time()
c = accept(); print("REG2 %.2f" % (time.time() - t0), c.frame(), flush=True)
c.send("REGISTER_RESULT#FIRST")
frames, t0 = [], time.time()
while time.time() - t0 < 2.6:
    f = c.frame(); frames.append(f)
print("FAULT" if any(f.startswith("FAULT#MAD-01#") for f in frames) else "NOFAULT", flush=True)
print("HB", sum(1 for f in frames if f == "HEARTBEAT#MAD-01"), flush=True)
c.send("AUTORIZAR_SUMINISTRO#101#S1#0.25")
f = c.frame()
while f.startswith("HEARTBEAT"): f = c.frame()
print("AUTH", f, flush=True)
c.send("FOO#bar")
f = c.frame()
while f.startswith("HEARTBEAT"): f = c.frame()
print("UNKNOWN", f, flush=True)
# A scripted engine from now on: it records the raw HEALTH_CHECK frames and
# answers a bare OK (LRC 0x05), as any engine that keeps to evcharging(7) may.
seen_up, seen_down = threading.Event(), threading.Event()
def engine():
    es = socket.socket(); es.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    es.bind(("127.0.0.1", int(sys.argv[2]))); es.listen(1); es.settimeout(20)
    s, _ = es.accept(); s.settimeout(20)
    assert s.recv(1) == b"\x05"; s.sendall(b"\x06")
    buf = b""
    while True:
        while not (buf[:1] == b"\x02" and b"\x03" in buf and len(buf) > buf.index(b"\x03") + 1):
            if buf and buf[:1] != b"\x02": buf = buf[1:]; continue   # the monitor's ACKs
            c = s.recv(4096)
            if not c: return
            buf += c
        e = buf.index(b"\x03"); raw, buf = buf[:e + 2], buf[e + 2:]
        d = raw[1:-2]
        s.sendall(b"\x06")
        if d.startswith(b"HEALTH_CHECK"):
            if b"#CENTRAL" not in d and not seen_up.is_set():
                print("HC_UP", raw.hex(), flush=True); seen_up.set()
            if d.endswith(b"#CENTRAL_DOWN") and not seen_down.is_set():
                print("HC_DOWN", raw.hex(), flush=True); seen_down.set()
            s.sendall(b"\x02OK\x03\x05")
        elif d.startswith(b"AUTORIZAR_SUMINISTRO#"):
            print("ENG_AUTH", d.decode(), flush=True)
            a = b"ACK#AUTORIZAR_SUMINISTRO"; x = 0x01
            for b in a: x ^= b
            s.sendall(b"\x02" + a + b"\x03" + bytes([x]))
threading.Thread(target=engine, daemon=True).start()
c.s.settimeout(1)
t0 = time.time()
while not seen_up.is_set() and time.time() - t0 < 15:   # keep ACKing HEARTBEATs
    try: c.frame()
    except socket.timeout: pass
c.s.settimeout(5)
c.send("AUTORIZAR_SUMINISTRO#101#S1#0.25#extra")
print("AUTH2", c.other(), flush=True)
c.s.sendall(b"\x04"); c.s.close()
seen_down.wait(10)
# No REGISTER_RESULT: the monitor gives up after 5 s, and says so with EOT.
c = accept(); c.s.settimeout(10); print("REG3", c.frame(), flush=True)
k, v = c.item()
while k == "frame": k, v = c.item()
print("REG3 END", "EOT" if (k, v) == ("ctrl", 0x04) else "%s %r" % (k, v), flush=True)
PY
FAKE=$!
# No engine listens at CP_EPORT: "engine down at start is a fault, not an exit".
cp_monitor m1 MAD-01 --location "C/ Serrano 10" --price 0.25
M=$(log_of m1)
check "REGISTER carries id, location and price" wait_grep 10 "$OUT" '^REG1 REGISTER#MAD-01#C/ Serrano 10#0.25$'
check "DENIED is logged with its reason" wait_grep 5 "$M" '^[0-9T:.-]* REGISTER DENIED reason=price too high$'
check "and the monitor retries after a backoff" wait_grep 10 "$OUT" '^REG2 [0-9.]+ REGISTER#MAD-01#'
check "engine down at start: FAULT once registered" wait_grep 10 "$OUT" '^FAULT$'
check "a HEARTBEAT every second (2 or 3 in 2.6 s)" wait_grep 5 "$OUT" '^HB [23]$'
check "a command it cannot relay: NACK with the reason" wait_grep 10 "$OUT" '^AUTH NACK#AUTORIZAR_SUMINISTRO#engine unreachable$'
check "an unknown opcode: ERROR frame" wait_grep 10 "$OUT" '^UNKNOWN ERROR#unknown opcode FOO$'
# evcharging(7) THE LINK PROTOCOL's test vector: STX HEALTH_CHECK#MAD-01 ETX 0x43.
hex_up=$(python3 -c 'print((b"\x02HEALTH_CHECK#MAD-01\x03\x43").hex())')
check "Central up: exactly HEALTH_CHECK#MAD-01, LRC 0x43" wait_grep 10 "$OUT" "^HC_UP $hex_up\$"
check "a bare OK is health OK" wait_grep 5 "$M" '^[0-9T:.-]* HEALTH OK$'
check "an optional trailing field is relayed, not refused" wait_grep 10 "$OUT" '^ENG_AUTH AUTORIZAR_SUMINISTRO#101#S1#0.25#extra$'
check "and the engine's ACK goes back to Central" wait_grep 5 "$OUT" '^AUTH2 ACK#AUTORIZAR_SUMINISTRO$'
check "RESERVADO derived from the relayed ACK (no activity field)" wait_grep 5 "$M" '^[0-9T:.-]* STATE RESERVADO$'
check "Central's EOT: link down, the monitor keeps running" wait_grep 10 "$M" '^[0-9T:.-]* LINK central down reason=peer closed the link \(EOT\)$'
hex_down=$(python3 -c 'd = b"HEALTH_CHECK#MAD-01#CENTRAL_DOWN"; x = 1
for b in d: x ^= b
print((b"\x02" + d + b"\x03" + bytes([x])).hex())')
check "Central down: the optional #CENTRAL_DOWN, nothing else" wait_grep 10 "$OUT" "^HC_DOWN $hex_down\$"
check "no REGISTER_RESULT within 5 s: the monitor closes with EOT" wait_grep 15 "$OUT" '^REG3 END EOT$'
check "monitor still alive" alive m1
wait "$FAKE" 2>/dev/null

# The real engine's answer to a bare check: ACK, then exactly STX OK ETX 0x05.
EP2=$(free_port)
start e2 "$EV_CP_E" "127.0.0.1:$(free_port)" "$EP2" --headless
wait_grep 10 "$(log_of e2)" '^[0-9T:.-]* START port=' >/dev/null
r=$(python3 - "$EP2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"\x05"); assert s.recv(1) == b"\x06"
s.sendall(b"\x02HEALTH_CHECK#MAD-01\x03\x43")
got = b""
while len(got) < 6:
    c = s.recv(6 - len(got))
    if not c: break
    got += c
print(got.hex())
s.sendall(b"\x06\x04"); s.close()
PY
)
check "engine: ACK then exactly OK with LRC 0x05 ($r)" [ "$r" = "$(python3 -c 'print(b"\x06\x02OK\x03\x05".hex())')" ]
