#!/usr/bin/env bash
# Attach and detach (EV_Central(1) RUNNING AS A SERVICE), for real in tmux:
#  - EV_Central attach opens the panel on a headless Central through its
#    control socket: the cards, the header and the log pane follow it, and
#    keys go back as commands (p y stops a CP for real);
#  - q asks "detach or stop Central?": d detaches and Central goes on, s
#    stops it (exit 0);
#  - a setsid-spawned panel whose tmux session is killed (its terminal goes
#    away, no SIGHUP) goes on headless: the monitor stays registered, ctl
#    status answers, the lines go to <db>.log, no exit 129;
#  - a panel sent SIGHUP gives the terminal back and goes on the same way.
. "$(dirname "$0")/lib.sh"
need_kafka
. "$(dirname "$0")/central_lib.sh"
. "$(dirname "$0")/panel_lib.sh"
tap_plan 30

CTL=$P_DB.ctl
ATT=evc-att
# attach_start: EV_Central attach in a tmux session of its own
attach_start() {
	rm -f "$T_DIR/attach.exit"
	tmx -f /dev/null new-session -d -s "$ATT" -x 110 -y 32 \
		bash -c '"$@"; echo $? >"'"$T_DIR"'/attach.exit"; read -r _' attach \
		env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 "$EV_CENTRAL" attach --control "$CTL"
	# (the shell waits for a line after attach exits, so its last words
	# stay on the pane to be read)
}
att_text() { tmx capture-pane -p -J -t "$ATT"; }
att_has() { att_text | grep -Eq -- "$1"; }
att_keys() { tmx send-keys -t "$ATT" "$@"; }
ctl_ok() { "$EV_CENTRAL" ctl --control "$CTL" status >/dev/null 2>&1; }

# ---- a headless Central, attached to
start c "$EV_CENTRAL" "$P_PORT" "$EVC_KAFKA" "$P_DB" --headless --plain-links
C=$(log_of c)
wait_grep 15 "$C" ' READY ' || diag "Central did not start"
mon_up m1 AT-01
wait_grep 10 "$C" ' STATE AT-01 ACTIVADO$' || diag "AT-01 did not register"
attach_start
check "attach: the panel of the running Central, titled attached" wait_for 10 att_has '^ EV_Central \(attached\) +Kafka'
check "attach: its CP card" wait_for 10 att_has 'AT-01 +0\.35 EUR/kWh'
check "attach: the header names Central's port and link count" wait_for 10 att_has "listen 0\.0\.0\.0:$P_PORT +links 1"
att_keys p
check "p asks for confirmation" wait_for 5 att_has 'Stop AT-01 .*\[y/N\]'
att_keys y
check "p y stops the CP for real (the monitor got PARAR)" wait_grep 10 "$(log_of m1)" 'RECV PARAR'
check "... the card follows (FUERA_DE_SERVICIO)" wait_for 10 att_has 'FUERA_DE_SERVICIO'
check "... and the log pane shows Central's lines" wait_for 10 att_has 'CP AT-01 acknowledged PARAR'
check "... the command is audited as operator:ctl" wait_for 5 db_is "$P_DB" "select count(*) from audit_log where actor='operator:ctl' and action='OPERATOR_STOP' and cp_id='AT-01'" 1
att_keys : R Space A T - 0 1 Enter
check ":R AT-01 resumes it" wait_for 10 att_has 'ACTIVADO'
att_keys A
check "A: the audit view reads Central's database from the attached panel" wait_for 10 att_has 'OPERATOR_STOP'
att_keys Escape
check "... Esc: back to the grid" wait_for 5 att_has 'AT-01 +0\.35 EUR/kWh'
mon_up m2 AT-02
check "a CP that registers later appears" wait_for 10 att_has 'AT-02 +0\.35 EUR/kWh'
check "... and the header's count follows" wait_for 10 att_has "links 2"
att_keys q
check "q asks: detach or stop Central" wait_for 5 att_has 'd detach \(Central goes on\), s stop Central'
att_keys x
check "another key cancels" wait_for 5 att_has cancelled
att_keys q
att_keys d
check "q d detaches: attach exits 0" wait_for 10 bash -c "[ \"\$(cat '$T_DIR/attach.exit' 2>/dev/null)\" = 0 ]"
check "... saying Central goes on" wait_for 5 att_has 'detached from Central at .* \(it goes on\)'
check "... and Central does" eval 'alive c && ctl_ok'
tmx kill-session -t "$ATT"
attach_start
wait_for 10 att_has 'AT-02' || diag "second attach did not show the CPs"
att_keys q
att_keys s
check "q s stops Central: attach exits 0" wait_for 10 bash -c "[ \"\$(cat '$T_DIR/attach.exit' 2>/dev/null)\" = 0 ]"
check "... Central shuts down cleanly (exit 0, SHUTDOWN)" eval 'exits_with 10 "$(pid_of c)" 0 && grep -q " SHUTDOWN reason=control socket" "$C"'
tmx kill-session -t "$ATT"
"$EV_CENTRAL" attach --control "$CTL" </dev/null >/dev/null 2>"$T_DIR/err"
rc=$?
check "attach without a Central: exit 1 naming the socket" eval '[ $rc -eq 1 ] && grep -q "cannot reach Central at .*central.db.ctl" "$T_DIR/err"'
stop m1
stop m2

# ---- a setsid-spawned panel whose terminal goes away
P_PORT=$(free_port)
rm -f "$T_DIR/central.exit"
tmx -f /dev/null new-session -d -s evc -x 110 -y 32 \
	bash -c 'setsid -w "$@"; echo $? >"'"$T_DIR"'/central.exit"' panel \
	env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 EVC_TOPIC_PREFIX="$T_PREFIX" \
	"$EV_CENTRAL" "$P_PORT" "$EVC_KAFKA" "$P_DB" --plain-links
wait_screen 10 'EV_Central +Kafka' || diag "the setsid panel did not start"
mon_up m3 HUP-01
wait_screen 10 'HUP-01' || diag "HUP-01 not on the panel"
tmx kill-session -t evc
check "terminal gone: Central goes on headless (ctl status answers, console)" wait_for 10 bash -c "'$EV_CENTRAL' ctl --control '$CTL' status | grep -q '^frontend  *console, log .*central.db.log'"
check "... it says so in <db>.log" wait_grep 5 "$P_DB.log" ' DETACHED log=.*central.db.log reason=terminal closed'
# 4 s on Central's own clock after the terminal went, past its 3 s
# heartbeat timeout: the monitor's link is still up, so its heartbeats
# were served all along.
uptime_now() { "$EV_CENTRAL" ctl --control "$CTL" --json status | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["uptime"]))'; }
uptime_at_least() { [ "$(uptime_now)" -ge "$1" ]; }
hup_served() { "$EV_CENTRAL" ctl --control "$CTL" cps | grep -Eq '^HUP-01 +ACTIVADO +plain '; }
u0=$(uptime_now)
check "... 4 s later it still serves the monitor's link" eval 'wait_for 15 uptime_at_least $((u0 + 4)) && hup_served'
check "... which stays registered (no LINK down)" eval '! grep -q "LINK down" "$P_DB.log" && alive m3'
check "... and it did not exit (no status 129)" test ! -s "$T_DIR/central.exit"
p=$(panel_pid)
kill -TERM "$p"
check "SIGTERM still stops it cleanly" eval 'wait_for 10 bash -c "! kill -0 $p 2>/dev/null" && grep -q " SHUTDOWN reason=signal" "$P_DB.log"'
stop m3
rm -f "$P_DB.log"

# ---- SIGHUP to a panel: the terminal is given back, Central goes on
P_PORT=$(free_port)
panel_start 110 32
wait_screen 10 'EV_Central +Kafka' || diag "the panel did not start"
p=$(panel_pid)
kill -HUP "$p"
check "SIGHUP: the panel leaves the screen (the terminal is restored)" wait_for 10 bash -c "! { $(declare -f tmx screen_text screen_has); P_SOCK=$P_SOCK; screen_has 'EV_Central +Kafka'; }"
check "... Central goes on headless" wait_for 10 bash -c "'$EV_CENTRAL' ctl --control '$CTL' status | grep -q '^frontend  *console'"
check "... and notes it in <db>.log" wait_grep 5 "$P_DB.log" ' DETACHED log=.* reason=SIGHUP'
exit "$T_FAILED"
