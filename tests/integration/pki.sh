#!/usr/bin/env bash
# scripts/pki: the files and their modes, both certificates verify against
# the CA with their names (DNS:localhost, IP:127.0.0.1, every --san), the
# CA and leaf extensions, the token's form, a second run changes nothing,
# a partial DIR is refused naming what is missing, bad arguments exit 2.
. "${EVC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
command -v openssl >/dev/null || tap_skip_all "openssl needed"
PKI=$EVC_SRCDIR/scripts/pki
tap_plan 30

check "--help: usage on stdout, exit 0" bash -c "'$PKI' --help | grep -q '^usage: scripts/pki init DIR'"
"$PKI" >/dev/null 2>"$T_DIR/err"; rc=$?
check "no arguments: exit 2 with the usage" bash -c "[ $rc -eq 2 ] && grep -q '^usage: ' '$T_DIR/err'"
"$PKI" init "$T_DIR/x" --san 'bad,name' >/dev/null 2>&1; rc=$?
check "--san with a comma: exit 2, nothing made" bash -c "[ $rc -eq 2 ] && [ ! -e '$T_DIR/x' ]"
"$PKI" init "$T_DIR/x" --bogus >/dev/null 2>&1; rc=$?
check "unknown option: exit 2" test $rc -eq 2
"$PKI" init >/dev/null 2>&1; rc=$?
check "init without DIR: exit 2" test $rc -eq 2

D=$T_DIR/net/pki
check "init DIR: exit 0" bash -c "'$PKI' init '$D' >'$T_DIR/out1' 2>&1"
all=1
for f in ca.pem ca.key central.pem central.key registry.pem registry.key installer.token; do
	[ -f "$D/$f" ] || { all=0; diag "missing $f"; }
done
check "all seven files made" test $all -eq 1
check "DIR is mode 0700" test "$(stat -c %a "$D")" = 700
check "the parent made on the way is not 0700" test "$(stat -c %a "$T_DIR/net")" != 700
modes=$(stat -c '%a' "$D"/ca.key "$D"/central.key "$D"/registry.key "$D"/installer.token | sort -u)
check "keys and token are mode 0600" test "$modes" = 600
check "no scratch files left in DIR" test "$(ls -A "$D" | wc -l)" -eq 7
check "installer.token: one line of 43 base64url characters" bash -c \
	"[ \$(wc -l <'$D/installer.token') -eq 1 ] && grep -Eqx '[A-Za-z0-9_-]{43}' '$D/installer.token'"
check "installer.token decodes to 32 bytes" bash -c \
	"[ \$(python3 -c 'import base64,sys; print(len(base64.urlsafe_b64decode(open(sys.argv[1]).read().strip()+\"=\")))' '$D/installer.token') = 32 ]"
for who in central registry; do
	check "$who.pem verifies against ca.pem as a TLS server for localhost and 127.0.0.1" bash -c \
		"openssl verify -CAfile '$D/ca.pem' -purpose sslserver -verify_hostname localhost '$D/$who.pem' >/dev/null &&
		 openssl verify -CAfile '$D/ca.pem' -purpose sslserver -verify_ip 127.0.0.1 '$D/$who.pem' >/dev/null"
	check "$who.key is the key of $who.pem" bash -c \
		"[ \"\$(openssl x509 -in '$D/$who.pem' -noout -pubkey)\" = \"\$(openssl pkey -in '$D/$who.key' -pubout)\" ]"
done
check "a name not in the certificate does not verify" bash -c \
	"! openssl verify -CAfile '$D/ca.pem' -verify_hostname evil.example '$D/registry.pem' >/dev/null 2>&1"
ca_txt=$(openssl x509 -in "$D/ca.pem" -noout -text)
check "CA: CA:TRUE, keyCertSign and cRLSign, EC P-256, about 10 years" bash -c '
	grep -q "CA:TRUE" <<<"$1" && grep -q "Certificate Sign, CRL Sign" <<<"$1" && grep -q "prime256v1" <<<"$1" &&
	openssl x509 -in "$2" -noout -checkend $((3649 * 86400)) >/dev/null' _ "$ca_txt" "$D/ca.pem"
leaf_txt=$(openssl x509 -in "$D/registry.pem" -noout -text)
check "leaf: serverAuth, CA:FALSE, EC P-256, SAN DNS:localhost and IP:127.0.0.1" bash -c '
	grep -q "TLS Web Server Authentication" <<<"$1" && grep -q "CA:FALSE" <<<"$1" && grep -q "prime256v1" <<<"$1" &&
	grep -q "DNS:localhost, IP Address:127.0.0.1\$" <<<"$1"' _ "$leaf_txt"

sums=$(cd "$D" && sha256sum * && stat -c '%Y %a %n' *)
"$PKI" init "$D" >"$T_DIR/out2" 2>&1; rc=$?
check "second init: exit 0 and says nothing changed" bash -c "[ $rc -eq 0 ] && grep -q 'nothing changed' '$T_DIR/out2'"
check "second init: every file unchanged" test "$sums" = "$(cd "$D" && sha256sum * && stat -c '%Y %a %n' *)"

cp -a "$D" "$T_DIR/part"
rm "$T_DIR/part/registry.key" "$T_DIR/part/installer.token"
before=$(cd "$T_DIR/part" && sha256sum *)
"$PKI" init "$T_DIR/part" >"$T_DIR/out3" 2>&1; rc=$?
check "partial DIR: exit 1 naming what is missing" bash -c \
	"[ $rc -eq 1 ] && grep -q 'registry.key' '$T_DIR/out3' && grep -q 'installer.token' '$T_DIR/out3'"
check "partial DIR: left as it was" test "$before" = "$(cd "$T_DIR/part" && sha256sum *)"
: >"$T_DIR/afile"
"$PKI" init "$T_DIR/afile" >/dev/null 2>&1; rc=$?
check "DIR that is a file: exit 1" test $rc -eq 1

S=$T_DIR/san
check "init with --san host, IPv4, IPv6 and [IPv6]" bash -c \
	"'$PKI' init '$S' --san cp.example.org --san 192.0.2.7 --san 2001:db8::1 --san '[::1]' --san localhost >/dev/null"
san=$(openssl x509 -in "$S/central.pem" -noout -ext subjectAltName | tail -n 1 | sed 's/^ *//')
check "SAN lists every name once, IPs as IP, the rest as DNS" test \
	"$san" = "DNS:localhost, IP Address:127.0.0.1, DNS:cp.example.org, IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:1, IP Address:0:0:0:0:0:0:0:1"
check "the --san names verify (host, IPv4, IPv6)" bash -c \
	"openssl verify -CAfile '$S/ca.pem' -verify_hostname cp.example.org '$S/registry.pem' >/dev/null &&
	 openssl verify -CAfile '$S/ca.pem' -verify_ip 192.0.2.7 '$S/registry.pem' >/dev/null &&
	 openssl verify -CAfile '$S/ca.pem' -verify_ip 2001:db8::1 '$S/registry.pem' >/dev/null"
check "another DIR gets another CA and another token" bash -c \
	"! cmp -s '$D/ca.pem' '$S/ca.pem' && ! cmp -s '$D/installer.token' '$S/installer.token'"
check "a certificate of one CA does not verify against the other" bash -c \
	"! openssl verify -CAfile '$D/ca.pem' '$S/registry.pem' >/dev/null 2>&1"
