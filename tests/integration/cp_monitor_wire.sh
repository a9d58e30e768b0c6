#!/bin/bash
# The monitor's side of the Central link, byte for byte, against a scripted
# Central (python) so every answer can be checked: REGISTER fields, DENIED
# then a retry, HEARTBEATs, FAULT when the engine is down at start, NACK for
# a command it cannot relay, ERROR for an unknown opcode.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 9
OUT=$T_DIR/fake.out
python3 - "$CP_CPORT" >"$OUT" 2>&1 <<'PY' &
import socket, sys, time
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
c.s.sendall(b"\x04"); c.s.close()
PY
FAKE=$!
# No engine listens at CP_EPORT: "engine down at start is a fault, not an exit".
cp_monitor m1 MAD-01 --location "C/ Serrano 10" --price 0.25
M=$(log_of m1)
check "REGISTER carries id, location and price" wait_grep 10 "$OUT" '^REG1 REGISTER#MAD-01#C/ Serrano 10#0.25$'
check "DENIED is logged with its reason" wait_grep 5 "$M" '^REGISTER DENIED reason=price too high$'
check "and the monitor retries after a backoff" wait_grep 10 "$OUT" '^REG2 [0-9.]+ REGISTER#MAD-01#'
check "engine down at start: FAULT once registered" wait_grep 10 "$OUT" '^FAULT$'
check "a HEARTBEAT every second (2 or 3 in 2.6 s)" wait_grep 5 "$OUT" '^HB [23]$'
check "a command it cannot relay: NACK with the reason" wait_grep 10 "$OUT" '^AUTH NACK#AUTORIZAR_SUMINISTRO#engine unreachable$'
check "an unknown opcode: ERROR frame" wait_grep 10 "$OUT" '^UNKNOWN ERROR#unknown opcode FOO$'
check "Central's EOT: link down, the monitor keeps running" wait_grep 10 "$M" '^LINK central down reason=peer closed the link \(EOT\)$'
check "monitor still alive" alive m1
wait "$FAKE" 2>/dev/null
