#!/usr/bin/env bash
# The secrets sweep (evcharging(7) SECURITY: no secret, key or token in a
# log line, the audit log, network_status, the API, the screen or an error
# message). Runs the secured demo headless (scripts/demo --dir, real
# programs, the test broker), asks every answering interface while it runs
# (Central's API with each role, the registry, the control socket), then
# collects every secret the network issued:
#   the CPs' secrets (credential files), their Fernet keys (Central's
#   database, charging_points.cp_key), the key of a CP revoked during the
#   run (kept before the revocation), the API tokens, the installer
#   token, the weather provider's key, the private keys of the CA, Central
#   and the registry (each as its PEM lines and its scalar),
# each in the forms a careless program would write it (as is, standard
# base64, without padding, hex of its bytes), and looks for every form in
#   every file the run left (logs, stdout/stderr captures, the demo's own
#   output, services and config files), the database as sqlite3 .dump
#   without the one column documented to hold keys (cp_key; secret_hash
#   holds SHA-256 hashes, which are checked to be that), every message of
#   every topic of the run (kcat), every API and registry answer, and the
#   command lines of every program of the demo.
# A hit fails with the secret's label and FILE:LINE, never the secret. A
# self-check plants known secrets in a scratch log and needs the sweep to
# name exactly those lines.
. "$EVC_SRCDIR/tests/integration/lib.sh"
. "$EVC_SRCDIR/tests/integration/demo_lib.sh"
demo_need
tap_plan 15

dur=${EVC_SWEEP_DURATION:-45}
net=$T_DIR/net
pfx=${T_PREFIX}demo-
SW=$T_DIR/sweep        # what is swept besides the demo folder
SEC=$T_DIR/secrets     # the collected secrets: never swept, never printed
mkdir -p "$SW" "$SEC"
chmod 700 "$SEC"

# ---- the sweep ---------------------------------------------------------------
# sweep.py SECRETS EXCLUDES PATH...: SECRETS holds "kind<TAB>label<TAB>value"
# lines (kind b64: base64url text; fernet: a Fernet key; text: as is;
# pemkey: value is a private key file); EXCLUDES one path a line (files or
# folders not to read). Prints "HIT label (form) in FILE:LINE" per hit and
# a summary; exit 1 on any hit, 2 on bad input. With SWEEP_LIST=FILE it
# writes the name of every file it read there.
cat >"$T_DIR/sweep.py" <<'PY'
import base64, binascii, os, re, subprocess, sys

MIN = 16  # shorter forms would match by chance


def b64decode_any(s):
    t = s.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(t + "=" * (-len(t) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def b64_forms(v):
    forms = [("as is", v), ("unpadded", v.rstrip("=")),
             ("standard base64", v.replace("-", "+").replace("_", "/"))]
    raw = b64decode_any(v)
    if raw is not None and len(raw) >= 16:
        forms.append(("hex", raw.hex()))
        forms.append(("HEX", raw.hex().upper()))
    return forms


def pem_forms(path):
    text = open(path).read()
    body = "".join(l.strip() for l in text.splitlines() if l.strip() and not l.startswith("-----"))
    der = base64.b64decode(body)
    out = subprocess.run(["openssl", "pkey", "-in", path, "-noout", "-text"], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"priv:\s*\n((?:\s+[0-9a-f:]+\n)+)", out)
    if not m:
        raise SystemExit("sweep: no private scalar in " + path)
    chunks = [l.strip().rstrip(":") for l in m.group(1).splitlines() if l.strip()]
    priv = bytes.fromhex("".join(chunks).replace(":", ""))
    forms = [("scalar hex", priv.hex()), ("scalar HEX", priv.hex().upper())]
    forms += [("scalar as openssl prints it", c) for c in chunks if len(c) >= MIN]
    # Every PEM line whose bytes hold part of the scalar (a line of 64
    # base64 characters is 48 bytes of the DER).
    off = der.find(priv)
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.startswith("-----")]
    pos = 0
    for l in lines:
        n = len(base64.b64decode(l))
        if off >= 0 and pos < off + len(priv) and off < pos + n:
            forms.append(("PEM line", l))
        pos += n
    forms.append(("PEM body", body[:64]))
    return forms


def load(path):
    secrets = []
    for n, line in enumerate(open(path), 1):
        line = line.rstrip("\n")
        if not line:
            continue
        try:
            kind, label, value = line.split("\t", 2)
        except ValueError:
            raise SystemExit("sweep: %s:%d: not kind<TAB>label<TAB>value" % (path, n))
        if kind in ("b64", "fernet"):
            forms = b64_forms(value)
            if kind == "fernet":
                raw = b64decode_any(value)
                if raw is None or len(raw) != 32:
                    raise SystemExit("sweep: %s: not a Fernet key" % label)
                forms += [("signing key hex", raw[:16].hex()), ("encryption key hex", raw[16:].hex())]
        elif kind == "text":
            forms = [("as is", value)]
        elif kind == "pemkey":
            forms = pem_forms(value)
        else:
            raise SystemExit("sweep: %s:%d: unknown kind %r" % (path, n, kind))
        seen = set()
        for form, v in forms:
            if len(v) >= MIN and v not in seen:
                seen.add(v)
                secrets.append((label, form, v.encode()))
    return secrets


def main():
    if len(sys.argv) < 4:
        raise SystemExit("usage: sweep.py SECRETS EXCLUDES PATH...")
    secrets = load(sys.argv[1])
    excludes = {os.path.realpath(l.strip()) for l in open(sys.argv[2]) if l.strip()}
    files = []
    for p in sys.argv[3:]:
        if os.path.isfile(p):
            files.append(p)
        for d, subdirs, names in os.walk(p):
            subdirs[:] = sorted(s for s in subdirs if os.path.realpath(os.path.join(d, s)) not in excludes)
            files += [os.path.join(d, f) for f in sorted(names)]
    hits = nlines = nfiles = 0
    listing = open(os.environ["SWEEP_LIST"], "w") if os.environ.get("SWEEP_LIST") else None
    for f in files:
        if os.path.realpath(f) in excludes or not os.path.isfile(f) or os.path.islink(f):
            continue
        data = open(f, "rb").read()
        nfiles += 1
        if listing:
            listing.write(f + "\n")
        lines = data.split(b"\n")
        nlines += len(lines)
        for label, form, v in secrets:
            if v not in data:
                continue
            for i, line in enumerate(lines, 1):
                if v in line:
                    print("HIT %s (%s) in %s:%d" % (label, form, f, i))
                    hits += 1
    print("swept %d files, %d lines, for %d forms of %d secrets: %d hits"
          % (nfiles, nlines, len(secrets), len({s[0] for s in secrets}), hits))
    sys.exit(1 if hits else 0)


main()
PY

# ---- the network, and everything it answers while it runs -------------------
demo_cmd "$net" "$dur" --weather-alert 8:8
start demo "${DEMO_CMD[@]}"
D=$(log_of demo)
check "the secured demo runs (Central up)" wait_grep 60 "$D" '^demo: Central runs headless'
central=$net/logs/central.log
db=$net/evcharging.db
API=0
APORT=$(sed -nE 's|^demo: Central.s HTTPS API: https://127\.0\.0\.1:([0-9]+)/.*|\1|p' "$D" | head -n 1)
[ -z "$APORT" ] || API=1
RPORT=$(sed -nE 's|^demo: EV_Registry at https://127\.0\.0\.1:([0-9]+)/.*|\1|p' "$D" | head -n 1)
q() { sqlite3 -cmd '.timeout 3000' "$db" "$1" 2>/dev/null; }
tickets() { [ "$(grep -Ec '^[^ ]+ TICKET ' "$central" 2>/dev/null || echo 0)" -ge 1 ]; }
check "a supply ended in a ticket while the demo runs" wait_for $((dur - 5)) tickets
if [ "$API" = 1 ]; then
	cleared() { [ "$(q "SELECT count(*) FROM audit_log WHERE action='WEATHER_CLEAR'")" -ge 1 ]; }
	wait_for 30 cleared || diag "no WEATHER_CLEAR before the API was swept"
fi

# The command lines of every program of the demo (a secret in argv is in ps).
while read -r pid name; do
	printf '%s: %s\n' "$name" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
done <"$net/pids" >"$SW/cmdlines.txt"
check "the command lines of the demo's programs were read ($(wc -l <"$SW/cmdlines.txt"))" \
	[ "$(grep -c ': .' "$SW/cmdlines.txt")" -ge 18 ]

# ask NAME URL [CURL_ARGS...]: one answer, headers and body, in $SW/NAME.
CA=$net/pki/ca.pem
ask() {
	local n=$1 u=$2
	shift 2
	curl -sS --cacert "$CA" --max-time 5 -D - "$@" "$u" >"$SW/$n" 2>&1 || true
}
bearer() { printf 'Authorization: Bearer %s\n' "$(cat "$1")"; }
nans=0
if [ -n "$RPORT" ]; then
	R=https://127.0.0.1:$RPORT
	ask registry-cp-installer "$R/v1/cps/MAD-01" -H @<(bearer "$net/pki/installer.token")
	ask registry-cp-own "$R/v1/cps/MAD-01" -H @<(python3 -c 'import json,sys; print("Authorization: Bearer " + json.load(open(sys.argv[1]))["secret"])' "$net/credentials/MAD-01.cred")
	ask registry-wrong "$R/v1/cps/MAD-01" -H 'Authorization: Bearer not-the-token-at-all-0123456789'
	ask registry-conflict "$R/v1/cps" -X POST -H 'Content-Type: application/json' \
		-H @<(bearer "$net/pki/installer.token") --data '{"id":"MAD-01","location":"x","price":0.3}'
	nans=$((nans + 4))
fi
if [ "$API" = 1 ]; then
	A=https://127.0.0.1:$APORT
	rd=$net/api/read.token
	for p in /api/v1/cps /api/v1/cps/MAD-01 "/api/v1/sessions?limit=1000" "/api/v1/audit?limit=1000" \
		/api/v1/weather /metrics /; do
		ask "api-read-$(echo "$p" | tr -c 'A-Za-z0-9\n' '_')" "$A$p" -H @<(bearer "$rd")
		nans=$((nans + 1))
	done
	ask api-events "$A/api/v1/events" -H @<(bearer "$rd") --max-time 3
	ask api-read-stop "$A/api/v1/cps/MAD-01/stop" -X POST -H @<(bearer "$rd")
	ask api-weather-read "$A/api/v1/cps" -H @<(bearer "$net/api/weather.token")
	ask api-op-threshold "$A/api/v1/weather/threshold" -X PUT -H 'Content-Type: application/json' \
		-H @<(bearer "$net/api/operate.token") --data '{"threshold":0}'
	ask api-wrong "$A/api/v1/cps" -H 'Authorization: Bearer not-the-token-at-all-0123456789'
	ask api-none "$A/api/v1/cps"
	nans=$((nans + 6))
fi
# A revoked key is a secret too (it decrypted the CP's telemetry until the
# revocation, and may still be in the engine's memory): one CP's is kept
# before the control socket revokes it, and swept like the others (not
# MAD-01's or BCN-01's, which the self-check below uses).
RV=$(q "SELECT id FROM charging_points WHERE cp_key IS NOT NULL AND id NOT IN ('MAD-01', 'BCN-01') ORDER BY id LIMIT 1")
(
	umask 077
	q "SELECT cp_key FROM charging_points WHERE id='$RV'" >"$SEC/revoked.key"
)
"$EV_CENTRAL" ctl --db "$db" revoke "$RV" >"$SW/ctl-revoke.txt" 2>&1 || true
had_key() { [ -n "$RV" ] && [ -s "$SEC/revoked.key" ]; }
key_gone() { had_key && [ -z "$(q "SELECT cp_key FROM charging_points WHERE id='$RV'")" ]; }
check "${RV:-a CP}'s key revoked through the control socket (it had one: $(had_key && echo yes || echo no))" \
	wait_for 10 key_gone
"$EV_CENTRAL" ctl --db "$db" --json status >"$SW/ctl-status.json" 2>&1 || true
"$EV_CENTRAL" ctl --db "$db" --json cps >"$SW/ctl-cps.json" 2>&1 || true
"$EV_CENTRAL" --audit --db "$db" >"$SW/audit.txt" 2>&1 || true
check "the registry, the API and the control socket answered ($nans HTTP answers; API: $([ "$API" = 1 ] && echo yes || echo 'no --api in this build'))" \
	bash -c "grep -q '\"ok\":true' '$SW/ctl-cps.json' && grep -q 'MAD-01' '$SW/ctl-cps.json' &&
		{ [ -z '$RPORT' ] || grep -q '^HTTP/[0-9.]* 200' '$SW/registry-cp-installer'; } &&
		{ [ '$API' = 0 ] || grep -q '^HTTP/[0-9.]* 200' '$SW/api-read-_api_v1_cps'; }"

demo_done() { ! alive demo; }
check "the demo stops by itself after $dur s" wait_for $((dur + 60)) demo_done
wait "$(pid_of demo)" 2>/dev/null
rc=$?
check "... with exit status 0 ($rc)" [ "$rc" -eq 0 ]

# ---- the database, the topics ----------------------------------------------
# A copy without the column documented to hold keys (EV_Registry(1)
# DATABASE: cp_key, written by Central), dumped.
sqlite3 "$db" ".backup '$T_DIR/copy.db'"
sqlite3 "$T_DIR/copy.db" "UPDATE charging_points SET cp_key = NULL"
sqlite3 "$T_DIR/copy.db" .dump >"$SW/db.dump"
rm -f "$T_DIR/copy.db"
check "the database dump holds the run ($(grep -c '^INSERT INTO audit_log' "$SW/db.dump") audit rows)" \
	grep -q "^INSERT INTO audit_log" "$SW/db.dump"
kcat -L -b "$EVC_KAFKA" 2>/dev/null | sed -nE "s/^ *topic \"(${pfx//./\\.}[^\"]*)\".*/\1/p" | sort -u >"$T_DIR/topics.txt"
for t in $(cat "$T_DIR/topics.txt"); do
	kcat -b "$EVC_KAFKA" -C -t "$t" -o beginning -e -q -f 'key=%k headers=%h %s\n' >"$SW/topic-$t.txt" 2>/dev/null
done
ntopics=$(wc -l <"$T_DIR/topics.txt")
nmsgs=$(cat "$SW"/topic-*.txt 2>/dev/null | wc -l)
check "every topic of the run read with kcat ($ntopics topics, $nmsgs messages)" \
	bash -c "[ $ntopics -ge 4 ] && [ $nmsgs -ge 20 ] && grep -qx '${pfx}cp_telemetry' '$T_DIR/topics.txt'"

# ---- the secrets ---------------------------------------------------------------
S=$SEC/secrets.tsv
(
	umask 077
	: >"$S"
	for f in "$net"/credentials/*.cred; do
		python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("b64\tsecret of CP %s\t%s" % (c["id"], c["secret"]))' "$f"
	done >>"$S"
	q "SELECT 'fernet' || char(9) || 'key of CP ' || id || char(9) || cp_key FROM charging_points WHERE cp_key IS NOT NULL" >>"$S"
	printf 'fernet\trevoked key of CP %s\t%s\n' "$RV" "$(cat "$SEC/revoked.key")" >>"$S"
	printf 'b64\tinstaller token\t%s\n' "$(cat "$net/pki/installer.token")" >>"$S"
	for k in ca central registry; do printf 'pemkey\tprivate key %s.key\t%s\n' "$k" "$net/pki/$k.key" >>"$S"; done
	if [ -f "$net/api/tokens" ]; then
		awk '!/^#/ && NF == 3 {printf "b64\tAPI token %s (%s)\t%s\n", $1, $2, $3}' "$net/api/tokens" >>"$S"
	fi
	[ ! -f "$net/weather/owm.key" ] || printf 'text\tweather provider key\t%s\n' "$(cat "$net/weather/owm.key")" >>"$S"
)
n_of() { grep -c "^[a-z0-9]*	$1" "$S"; }
ntok=$(n_of 'API token')
check "collected: $(n_of 'secret of CP') CP secrets, $(n_of 'key of CP') Fernet keys, $(n_of 'revoked key') revoked key, $(n_of 'installer') installer token, $(n_of 'private key') private keys, $ntok API tokens" \
	bash -c "[ $(n_of 'secret of CP') -eq 8 ] && [ $(n_of 'key of CP') -eq 7 ] && [ $(n_of 'revoked key') -eq 1 ] && [ $(n_of 'installer') -eq 1 ] &&
		[ $(n_of 'private key') -eq 3 ] && { [ $API = 0 ] || [ $ntok -eq 3 ]; }"
check "secret_hash holds the SHA-256 of each CP's secret, not the secret" python3 -c '
import hashlib, json, pathlib, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for f in pathlib.Path(sys.argv[2]).glob("*.cred"):
    c = json.loads(f.read_text())
    (h,) = db.execute("SELECT secret_hash FROM charging_points WHERE id=?", (c["id"],)).fetchone()
    assert h == hashlib.sha256(c["secret"].encode()).hexdigest(), c["id"]
' "$db" "$net/credentials"

# ---- self-check: the sweep catches a planted secret -------------------------
mkdir -p "$T_DIR/scratch"
{
	echo "2026-12-02T05:00:00.000 INFO an innocent line"
	echo "2026-12-02T05:00:00.001 DEBUG register with secret=$(sed -n 's/^b64	secret of CP MAD-01	//p' "$S")"
	echo "2026-12-02T05:00:00.002 INFO another innocent line: $(q "SELECT secret_hash FROM charging_points WHERE id='MAD-01'")"
	echo "2026-12-02T05:00:00.003 DEBUG key $(sed -n 's/^fernet	key of CP BCN-01	//p' "$S" | tr -d '=')"
	sed -n 2p "$net/pki/central.key"
	echo "2026-12-02T05:00:00.005 DEBUG installer $(cat "$net/pki/installer.token")"
	echo "2026-12-02T05:00:00.006 INFO a last innocent line"
} >"$T_DIR/scratch/planted.log"
: >"$T_DIR/no-excludes"
python3 "$T_DIR/sweep.py" "$S" "$T_DIR/no-excludes" "$T_DIR/scratch" >"$T_DIR/selfcheck.out" 2>&1
src=$?
sed 's/^/# self-check: /' "$T_DIR/selfcheck.out"
hits=$(grep '^HIT ' "$T_DIR/selfcheck.out" | sed -E 's/^HIT (.*) \([^)]*\) in .*:([0-9]+)$/\2 \1/' | sort -n | uniq | tr '\n' ';')
want="2 secret of CP MAD-01;4 key of CP BCN-01;5 private key central.key;6 installer token;"
check "self-check: the sweep fails on a planted log and names exactly the planted lines" \
	bash -c "[ $src -eq 1 ] && [ '$hits' = '$want' ]"
leaked() {
	local v
	while IFS=$'\t' read -r kind _ v; do
		[ "$kind" = pemkey ] && continue
		grep -qF -- "$v" "$1" && return 0
	done <"$S"
	grep -qF -- "$(sed -n 2p "$net/pki/central.key")" "$1"
}
check "self-check: the sweep's report shows no secret" bash -c "$(declare -f leaked); S='$S' net='$net'; ! leaked '$T_DIR/selfcheck.out'"

# ---- the sweep -------------------------------------------------------------------
# Not read: the files whose job is to hold a secret (mode 0600, named in
# evcharging(7) SECURITY), the raw database (swept as its dump), the
# collected secrets, the scratch log and this script's own work files.
{
	for f in "$net"/pki/*.key "$net"/pki/installer.token "$net"/credentials "$net"/api "$net"/weather/owm.key \
		"$db" "$db-wal" "$db-shm" "$SEC" "$T_DIR/scratch" "$T_DIR/selfcheck.out" "$T_DIR/no-excludes"; do
		echo "$f"
	done
} >"$T_DIR/excludes"
SWEEP_LIST=$T_DIR/swept.txt python3 "$T_DIR/sweep.py" "$S" "$T_DIR/excludes" "$T_DIR" >"$T_DIR/sweep.out" 2>&1
swrc=$?
sed 's/^/# sweep: /' "$T_DIR/sweep.out"
check "no secret in any log, capture, answer, topic, command line or the database dump" [ "$swrc" -eq 0 ]
# read NAME...: the sweep read each of these files (shell patterns).
read_all() {
	local p
	for p in "$@"; do
		grep -qx -- "$p" "$T_DIR/swept.txt" || { diag "not swept: $p"; return 1; }
	done
}
want=("$net/logs/central.log" "$net/logs/registry.log" "$net/logs/register.log" "$net/logs/pki.log"
	"$SW/db.dump" "$SW/topic-${pfx}cp_telemetry.txt" "$SW/topic-${pfx}network_status.txt"
	"$SW/topic-${pfx}driver_notifications.txt" "$SW/topic-${pfx}driver_requests.txt" "$SW/cmdlines.txt"
	"$SW/ctl-cps.json" "$SW/ctl-status.json" "$SW/audit.txt" "$T_DIR/demo.log" "$net/seed.log")
for f in "$net"/logs/*.log "$SW"/registry-* "$SW"/api-*; do [ -f "$f" ] && want+=("$f"); done
check "... and the sweep read them all ($(wc -l <"$T_DIR/swept.txt") files: every program's log, $nans answers, $ntopics topics, the dump)" \
	read_all "${want[@]}"
