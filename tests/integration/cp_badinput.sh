#!/bin/bash
# The engine facing bad input on its link port: frames it cannot use are
# answered (ERROR / NACK with a reason), broken bytes are NACKed or skipped,
# too many clients are refused, and it never crashes or stops answering.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 14
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

# More clients than it serves: the extra ones get NACK to their ENQ.
r=$(python3 - "$P" <<'PY'
import socket, sys
socks = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    s.sendall(b"\x05"); socks.append(s)
ans = [s.recv(1) for s in socks]
print(ans.count(b"\x06"), ans.count(b"\x15"))
PY
)
check "16 clients served, the rest refused with NACK ($r)" [ "$r" = "16 4" ]
a=$(exchange "$P" "HEALTH_CHECK#MAD-01")
check "still answering afterwards ($a)" [ "$a" = "OK" ]
# protocol.md allows optional trailing '#' fields: an extra one is no reason to refuse.
a=$(exchange "$P" "AUTORIZAR_SUMINISTRO#101#S1#0.25#extra")
check "AUTORIZAR with an optional trailing field -> ACK ($a)" [ "$a" = "ACK#AUTORIZAR_SUMINISTRO" ]
# The answer to the CHECK_SESSION it asked on its first HEALTH_CHECK: a
# session Central still has open is ended cleanly (the meter died with the
# previous process).
exchange "$P" "SESSION#MAD-01#101#S9" noanswer
check "SESSION after a restart: ended cleanly" wait_grep 5 "$E" '^CHECK_SESSION driver=101 session=S9 ended \(engine restarted; meter lost\)$'
check "and still running" alive e1
