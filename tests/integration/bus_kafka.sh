#!/usr/bin/env bash
# The Kafka bus against the real broker: produce protocol messages with the
# project's code, consume them in a group with commits, restart the consumer
# and check it resumes after the committed offset, and read the same
# messages with kcat as an outside client.
. "$EVC_SRCDIR/tests/integration/lib.sh"
need_kafka
tap_plan 6
TOOL=$EVC_BUILDDIR/tests/tools/bus_tool
T=$(topic driver_requests)
G=${T_PREFIX}central-processor

check "produce REQUEST_CHARGE 1" "$TOOL" produce "$EVC_KAFKA" "$T" 101 MAD-01
# Same key, so both land on one partition and keep their order.
"$TOOL" produce "$EVC_KAFKA" "$T" 101 MAD-02 >/dev/null
"$TOOL" consume "$EVC_KAFKA" "$G" "$T" 1 30 >"$T_DIR/c1.out" 2>"$T_DIR/c1.err"
check "first consumer gets the first message decoded" grep -q '^ok REQUEST_CHARGE 101 MAD-01 offset=0$' "$T_DIR/c1.out"
"$TOOL" consume "$EVC_KAFKA" "$G" "$T" 1 30 >"$T_DIR/c2.out" 2>"$T_DIR/c2.err"
check "restarted consumer resumes after the committed offset" grep -q '^ok REQUEST_CHARGE 101 MAD-02 offset=1$' "$T_DIR/c2.out"
if "$TOOL" consume "$EVC_KAFKA" "$G" "$T" 1 3 >"$T_DIR/c3.out" 2>&1; then
	not_ok "nothing left after both commits"; cat "$T_DIR/c3.out" | sed 's/^/# /'
else
	ok "nothing left after both commits"
fi
kcat -C -b "$EVC_KAFKA" -t "$T" -o beginning -e -q -f '%k %s\n' >"$T_DIR/kcat.out" 2>"$T_DIR/kcat.err"
check "kcat reads both messages" test "$(wc -l <"$T_DIR/kcat.out")" -eq 2
check "kcat sees the key and protocol JSON" grep -Eq '^101 \{"type":"REQUEST_CHARGE",.*"user_id":"101".*"cp_id":"MAD-01"' "$T_DIR/kcat.out"
