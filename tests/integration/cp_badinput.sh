#!/bin/bash
# The engine facing bad input on its link port: frames it cannot use are
# answered (ERROR / NACK with a reason), broken bytes are NACKed or skipped,
# silent clients are closed, and it never crashes or stops answering.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 17
# No broker needed: telemetry would just wait in librdkafka's queue.
K=127.0.0.1:$(free_port)
cp_engine e1
E=$(log_of e1)
P=$CP_EPORT

a=$(exchange "$P" "HEALTH_CHECK#bad id!")
check "HEALTH_CHECK with an invalid cp_id -> ERROR ($a)" [ "$a" = "ERROR#HEALTH_CHECK needs a valid cp_id" ]
a=$(exchange "$P" "HEALTH_CHECK#MAD-01")
check "first HEALTH_CHECK names the CP, answer exactly OK ($a)" [ "$a" = "OK" ]
a=$(exchange "$P" "HEALTH_CHECK#MAD-01#CENTRAL_DOWN")
check "a check with the optional third field gets the activity too ($a)" [ "$a" = "OK#IDLE" ]
a=$(exchange "$P" "HEALTH_CHECK#BCN-02")
check "another CP's id -> ERROR ($a)" [ "$a" = "ERROR#this engine serves CP MAD-01, not BCN-02" ]
a=$(exchange "$P" "FOO#1")
check "unknown opcode -> ERROR ($a)" [ "$a" = "ERROR#unknown opcode FOO" ]
a=$(exchange "$P" "AUTORIZAR_SUMINISTRO#101#S1")
check "AUTORIZAR without a price -> NACK with the reason ($a)" [ "$a" = "NACK#AUTORIZAR_SUMINISTRO#bad request: expected driver, session and a price > 0 and <= 100" ]
a=$(exchange "$P" "AUTORIZAR_SUMINISTRO#101#S1#abc")
check "AUTORIZAR with a bad price -> NACK ($a)" [ "${a%%:*}" = "NACK#AUTORIZAR_SUMINISTRO#bad request" ]

# Raw bytes: a frame with a wrong LRC is NACKed, garbage is skipped.
r=$(python3 - "$P" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.sendall(b"\x05"); assert s.recv(1) == b"\x06"
s.sendall(b"\x02HEALTH_CHECK#MAD-01\x03\x00")   # wrong LRC
print("nack" if s.recv(1) == b"\x15" else "no-nack")
s.sendall(b"garbage\xff\xfe" + b"\x02" + b"A" * 3000 + b"\x03\x00")  # noise and an oversized frame
s.sendall(b"\x02OK\x03\x05")                    # then a valid frame (LRC 0x05)
got = b""
while b"\x03" not in got:                       # up to the end of the engine's answer
    c = s.recv(100)
    if not c: break
    got += c
# The oversized frame may be NACKed; the good one is ACKed, then answered.
print("ack" if b"\x06\x02ERROR#unknown opcode OK\x03" in got else "no-ack %r" % got)
s.close()
PY
)
check "a frame with a wrong LRC is NACKed" [ "$(echo "$r" | sed -n 1p)" = nack ]
check "after garbage and an oversized frame, a good frame is still ACKed" [ "$(echo "$r" | sed -n 2p)" = ack ]

# Silent clients must not lock the monitor out: with 16 of them (ENQ, then
# nothing) a newcomer still gets in at once (the longest idle one makes room,
# with EOT), and every silent one is closed after 5 s.
r=$(python3 - "$P" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
t0 = time.time(); socks = []
for i in range(16):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.sendall(b"\x05"); assert s.recv(1) == b"\x06", "silent client %d not accepted" % i
    socks.append(s)   # each ENQ is answered before the next: the first is the longest idle
n = socket.create_connection(("127.0.0.1", port), timeout=3)
n.sendall(b"\x05"); a = n.recv(1)
n.sendall(b"\x02HEALTH_CHECK#MAD-01\x03\x43")
got = b""
while len(got) < 6:
    c = n.recv(6 - len(got))
    if not c: break
    got += c
print("newcomer", "in" if a == b"\x06" and got == b"\x06\x02OK\x03\x05" else "out %r %r" % (a, got), "%.1f" % (time.time() - t0))
n.sendall(b"\x06\x04"); n.close()
ends = []
for s in socks:
    s.settimeout(12)
    try: d = s.recv(10)
    except OSError: d = None
    ends.append((time.time() - t0, d))
print("evicted", "EOT" if ends[0][1] == b"\x04" else repr(ends[0][1]), "%.1f" % ends[0][0])
late = [t for t, d in ends[1:] if d == b"\x04"]
print("timed-out", len(late), "%.1f" % min(late) if late else "-", "%.1f" % max(late) if late else "-")
PY
)
diag "$r"
set -- $(echo "$r" | sed -n 1p)
check "16 silent clients: a newcomer still gets in and is answered at once ($2 after ${3}s)" [ "$2" = in ] && python3 -c "import sys; assert float(sys.argv[1]) < 4" "$3"
set -- $(echo "$r" | sed -n 2p)
check "the longest idle one made room, closed with EOT ($2 at ${3}s)" [ "$2" = EOT ]
set -- $(echo "$r" | sed -n 3p)
check "the other 15 closed with EOT after 5 s of silence ($2, ${3}-${4} s)" [ "$2" = 15 ] && python3 -c "import sys; assert 4.9 <= float(sys.argv[1]) and float(sys.argv[2]) < 9" "$3" "$4"
a=$(exchange "$P" "HEALTH_CHECK#MAD-01")
check "still answering afterwards ($a)" [ "$a" = "OK" ]
# evcharging(7) allows optional trailing '#' fields: an extra one is no reason to refuse.
a=$(exchange "$P" "AUTORIZAR_SUMINISTRO#101#S1#0.25#extra")
check "AUTORIZAR with an optional trailing field -> ACK ($a)" [ "$a" = "ACK#AUTORIZAR_SUMINISTRO" ]
# The answer to the CHECK_SESSION it asked on its first HEALTH_CHECK: a
# session Central still has open is ended cleanly (the meter died with the
# previous process).
exchange "$P" "SESSION#MAD-01#101#S9" noanswer
check "SESSION after a restart: ended cleanly" wait_grep 5 "$E" '^[0-9T:.-]* CHECK_SESSION driver=101 session=S9 ended \(engine restarted; meter lost\)$'
check "... with an AVERIADO that encodes without a seq" bash -c "! grep -q 'ERROR cannot encode AVERIADO' '$E'"
check "and still running" alive e1
