#!/bin/bash
# Chaos: every kWh an engine delivers is billed once (evcharging(7) RULES),
# whatever fails. Real programs: Central, 3 engine+monitor pairs plugging
# in by themselves, 3 drivers working through service files, the real
# broker. For about 75 s a seeded loop SIGKILLs Central (restarted 0.5-3 s
# later on the same database) and SIGSTOPs a monitor for 1-4.5 s (past
# Central's 3 s heartbeat, within the engine's 5 s of monitor silence).
# Then, for every session: stored once, ended once, billed kWh equal to the
# kWh the engine metered, and one final notification on
# driver_notifications (or duplicates that agree byte for byte).
# CHAOS_SEED=N repeats a run; the seed is printed.
. "${EVC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/e2e_lib.sh"
e2e_need
command -v kcat >/dev/null || tap_skip_all "kcat not installed"
tap_plan 7

SEED=${CHAOS_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
diag "chaos seed $SEED (CHAOS_SEED=$SEED repeats this run)"
CHAOS_S=${CHAOS_SECONDS:-75}

for d in 101 102 103; do "$EV_CENTRAL" --add-driver "$d" --db "$DB" >/dev/null; done
C_PORT=$(free_port)
NC=0
central_up() {
	NC=$((NC + 1))
	start "c$NC" "$EV_CENTRAL" "$C_PORT" "$K" "$DB" --headless --plain-links
	wait_grep 20 "$(log_of "c$NC")" ' READY '
}
central_up
c_kafka_up "c$NC"
for i in 1 2 3; do
	port=$(free_port)
	start "e$i" "$EV_CP_E" "$K" "$port" --headless --auto-plug 1:4 --power 40
	wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
	start "m$i" "$EV_CP_M" "127.0.0.1:$port" "127.0.0.1:$C_PORT" "CP-$i" --location "Calle $i" \
		--price "$(cp_price "$i")" --headless
	wait_grep 20 "$(log_of "c$NC")" " STATE CP-$i ACTIVADO$"
done
for d in 1 2 3; do
	for n in $(seq 1 12); do echo "CP-$d"; done >"$T_DIR/services-$d.txt"
	start "d$d" "$EV_DRIVER" "$K" "10$d" "$T_DIR/services-$d.txt" --headless --pause 0.5 --answer-timeout 40
done

kills=0 stops=0
end=$((SECONDS + CHAOS_S))
while [ $SECONDS -lt $end ]; do
	# Randomly spaced events (the chaos itself, not a synchronisation).
	wait_for "$((2 + RANDOM % 4))" false
	if [ $((RANDOM % 3)) = 0 ]; then
		kill -KILL "$(pid_of "c$NC")" 2>/dev/null
		wait "$(pid_of "c$NC")" 2>/dev/null
		kills=$((kills + 1))
		ms=$((500 + RANDOM % 2500))
		wait_for "$((ms / 1000 + 1))" false
		central_up || diag "Central did not come back"
	else
		m=$((1 + RANDOM % 3))
		kill -STOP "$(pid_of "m$m")"
		stops=$((stops + 1))
		ms=$((1000 + RANDOM % 3500))
		python3 -c "import time; time.sleep($ms / 1000)" # how long the stop lasts: the chaos
		kill -CONT "$(pid_of "m$m")"
	fi
done
diag "chaos over: $kills Central kills, $stops monitor stops, $NC Central runs"

# Let every driver finish its list, every supply end, every notification go out.
done_all() { local n; for n in 1 2 3; do grep -q "^[0-9T:.-]* SUMMARY " "$(log_of "d$n")" || return 1; done; }
check "every driver got through its services" wait_for 120 done_all
open_sessions() { [ "$(dbq "$DB" "select count(*) from sessions where outcome is null")" = 0 ]; }
check "every session ended" wait_for 60 open_sessions
stop "c$NC"

# The engines' meters: session -> kWh at SUPPLY END.
for i in 1 2 3; do
	sed -nE 's/^[0-9T:.-]* SUPPLY END driver=[^ ]+ session=([^ ]+) .*kwh=([0-9.]+) .*/\1 \2/p' "$(log_of "e$i")"
done | sort >"$T_DIR/metered"
dbq "$DB" "select id, kwh, outcome from sessions order by id" | tr '|' ' ' | sort >"$T_DIR/billed"
diag "$(wc -l <"$T_DIR/billed") sessions, $(wc -l <"$T_DIR/metered") supplies metered"
check "there were supplies to bill" test "$(wc -l <"$T_DIR/metered")" -ge 5
check "billed kWh == metered kWh for every supply" python3 - "$T_DIR/metered" "$T_DIR/billed" <<'EOF'
import sys
metered = dict(l.split()[:2] for l in open(sys.argv[1]) if l.strip())
billed = {l.split()[0]: l.split()[1:] for l in open(sys.argv[2]) if l.strip()}
bad = []
for s, k in metered.items():
    if s not in billed:
        bad.append(f"{s}: metered {k} kWh, no session stored")
    elif abs(float(billed[s][0]) - float(k)) > 0.0011:
        bad.append(f"{s}: metered {k} kWh, billed {billed[s][0]} ({billed[s][1]})")
for b in bad:
    print("# " + b)
sys.exit(1 if bad else 0)
EOF
kcat -b "$K" -C -t "$(topic driver_notifications)" -o beginning -e -q -f '%s\n' 2>/dev/null >"$T_DIR/notes"
check "one final notification per ended session (duplicates agree)" python3 - "$T_DIR/notes" "$T_DIR/billed" <<'EOF'
import json, sys
finals = {}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("type") in ("TICKET", "SUPPLY_ERROR", "SESSION_CANCELLED") and m.get("session_id"):
        finals.setdefault(m["session_id"], []).append(line.strip())
dups = sum(len(v) - 1 for v in finals.values())
bad = []
for l in open(sys.argv[2]):
    sid, kwh, outcome = l.split()
    got = finals.get(sid, [])
    if not got:
        bad.append(f"{sid} ({outcome}): no final notification")
    elif len(set(got)) != 1:
        bad.append(f"{sid}: duplicates disagree: {got}")
    elif json.loads(got[0])["type"] != outcome:
        bad.append(f"{sid}: stored {outcome}, notified {json.loads(got[0])['type']}")
print(f"# {len(finals)} sessions notified, {dups} duplicate final notification(s)")
for b in bad:
    print("# " + b)
sys.exit(1 if bad else 0)
EOF
check "every session stored once (one row per authorisation)" bash -c \
	"[ \$(cat $T_DIR/billed | wc -l) -eq \$(cat $T_DIR/billed | awk '{print \$1}' | sort -u | wc -l) ]"
check "no money lost: the drivers' tickets add up to what Central billed" python3 - "$DB" "$T_DIR" <<'EOF'
import sqlite3, sys, glob, re
db = sqlite3.connect(sys.argv[1])
stored = {r[0]: r[1] for r in db.execute("select id, importe from sessions where outcome='TICKET'")}
seen = {}
for f in glob.glob(sys.argv[2] + "/d*.log"):
    for line in open(f):
        m = re.match(r"^[0-9T:.-]* TICKET cp=\S+ session=(\S+) kwh=\S+ importe=(\S+)", line)
        if m:
            seen[m.group(1)] = float(m.group(2))
bad = [s for s, v in seen.items() if s not in stored or abs(stored[s] - v) > 0.005]
print(f"# {len(seen)} tickets shown to drivers, {len(stored)} stored")
sys.exit(1 if bad else 0)
EOF
