#!/bin/bash
# A client that floods the engine and never reads (evcharging(7) RULES,
# Bounds): its answers pile up only to a bound, then it is closed; the
# engine's memory stays small and its other clients are still answered.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/cp_lib.sh"
tap_plan 3
# No broker needed: telemetry would just wait in librdkafka's queue.
K=127.0.0.1:$(free_port)
cp_engine e1
P=$CP_EPORT
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$(pid_of e1)/status"; }
r0=$(rss)
out=$(python3 - "$P" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
sent, closed = 0, False
end = time.time() + 8
chunk = b"\x05" * 65536
s.settimeout(0.5)
while time.time() < end:
    try:
        sent += s.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
        break
    except socket.timeout:
        pass
print(f"{sent} {'closed' if closed else 'open'}")
PY
)
r1=$(rss)
diag "flood: ${out%% *} bytes sent, engine RSS ${r0} kB -> ${r1} kB"
check "the flooding client is closed" [ "${out##* }" = closed ]
check "the engine's memory stays small (RSS under 40 MB)" [ "$r1" -lt 40960 ]
a=$(exchange "$P" "HEALTH_CHECK#MAD-01")
check "the engine still answers others ($a)" [ "$a" = "OK" ]
