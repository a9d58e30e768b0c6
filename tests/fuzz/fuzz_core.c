// fuzz-sources: src/central/core.c src/central/keytab.c src/common/crypto.c src/common/fernet.c src/common/msg.c src/common/money.c src/common/hmap.c src/common/link.c src/common/utf8.c src/common/state.c src/common/xalloc.c src/common/err.c src/common/clock.c src/common/log.c src/common/evline.c
// fuzz-libs: -ljansson -lcrypto
/* libFuzzer target for what peers send Central's core (evcharging(7)
 * SECURITY, THE LINK PROTOCOL): link frames (REGISTER with credentials
 * among them) on TLS and plaintext links, and cp_telemetry payloads through
 * the Fernet envelope (telemetry_open) into the core. The input is split
 * at '\n' into items; each item's first byte says what it is:
 *   'F' <conn digit> <tls bit>  a frame on that link (the rest is DATA)
 *   'D' <conn digit>            that link goes down
 *   'T'                         a telemetry payload (the rest)
 *   'K'                         a tick, 7 s later
 *   'W' <t>                     a weather reading: t - 128 degrees C, the
 *                               rest the city (evcharging(7) RULES, Weather)
 *   'E'                         a weather error reading (the rest the city)
 *   'H' <t>                     the weather threshold becomes (t - 128) / 4
 *   'C' <c>                     operator command c % 5 (the rest the CP id)
 * Checked beyond "does not crash": every frame the core sends is valid
 * DATA (unless marked raw), every message it produces encodes, and the
 * CP's key or secret (which the seeds use and mutations carry into every
 * field) never appears in a log line, an event or an audit row unless the
 * input itself holds it verbatim. No link is sent PARAR (or REANUDAR)
 * while the one before is unanswered: a CP is never told to stop twice
 * for two reasons (operator and weather). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/crypto.h"
#include "evc/fernet.h"
#include "evc/link.h"
#include "evc/msg.h"
#include "src/central/core.h"
#include "src/central/keytab.h"

#define SECRET "Abcdefghijklmnopqrstuvwxyz0123456789_-ABCDE"
#define KEY "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="

static int new_key(void *arg, char out[45])
{
	(void)arg;
	memcpy(out, KEY, 45);
	return 0;
}

/* leak_check: the input does not carry the secret or key itself (a peer
 * may of course put any text in a location; echoing it is no leak). */
static void check(const struct core_fxlist *fx, int leak_check)
{
	char err[EVC_ERR_LEN];
	for (size_t i = 0; i < fx->n; i++) {
		const struct core_fx *f = &fx->v[i];
		if (f->kind == CORE_FX_SEND && !f->u.link.raw &&
		    link_validate(f->u.link.text, strlen(f->u.link.text), err) != 0)
			abort();
		if (f->kind == CORE_FX_PRODUCE) {
			char *json = msg_encode(&f->u.produce, NULL, err);
			if (!json)
				abort();
			free(json);
		}
		const char *text = f->kind == CORE_FX_LOG ? f->u.log.text
				 : f->kind == CORE_FX_AUDIT ? f->u.audit.detail
				 : f->kind == CORE_FX_STORE_EVENT ? f->u.event.detail : "";
		if (leak_check && (strstr(text, SECRET) || strstr(text, KEY)))
			abort();
	}
}

/* PARAR / REANUDAR sent and not yet answered, per link (conn 1..4). */
static int pend[5][2];

static void check_commands(const struct core_fxlist *fx, const char *item, size_t n)
{
	static const char *const cmd[2] = { "PARAR", "REANUDAR" };
	if (n >= 3 && item[0] == 'F') {
		int conn = 1 + (item[1] & 3);
		for (int k = 0; k < 2; k++) {
			char ack[32], nack[32];
			snprintf(ack, sizeof ack, "ACK#%s", cmd[k]);
			snprintf(nack, sizeof nack, "NACK#%s", cmd[k]);
			/* The core reads the command from the second field and
			 * ignores any after it, for ACK as for NACK. */
			size_t la = strlen(ack);
			if ((strncmp(item + 3, ack, la) == 0 && (item[3 + la] == '\0' || item[3 + la] == '#')) ||
			    strncmp(item + 3, nack, strlen(nack)) == 0)
				pend[conn][k] = 0;
		}
	} else if (n >= 2 && item[0] == 'D') {
		pend[1 + (item[1] & 3)][0] = pend[1 + (item[1] & 3)][1] = 0;
	}
	for (size_t i = 0; i < fx->n; i++) {
		const struct core_fx *f = &fx->v[i];
		if (f->u.link.conn < 1 || f->u.link.conn > 4)
			continue;
		if (f->kind == CORE_FX_CLOSE)
			pend[f->u.link.conn][0] = pend[f->u.link.conn][1] = 0;
		if (f->kind != CORE_FX_SEND)
			continue;
		for (int k = 0; k < 2; k++) {
			char frame[32];
			snprintf(frame, sizeof frame, "%s#CENTRAL", cmd[k]);
			if (strcmp(f->u.link.text, frame) != 0)
				continue;
			if (pend[f->u.link.conn][k])
				abort(); /* the same command twice, the first unanswered */
			pend[f->u.link.conn][k] = 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	memset(pend, 0, sizeof pend);
	struct core_config cfg;
	core_config_defaults(&cfg);
	cfg.new_key = new_key;
	struct core *c = core_new(&cfg);
	struct keytab *kt = keytab_new();
	struct core_fxlist fx;
	core_fxlist_init(&fx);
	core_add_driver(c, "101");
	struct core_reg r;
	memset(&r, 0, sizeof r);
	snprintf(r.id, sizeof r.id, "MAD-01");
	snprintf(r.location, sizeof r.location, "Madrid");
	r.price = 0.25;
	crypto_secret_hash(SECRET, r.secret_hash);
	core_load_reg(c, &r);
	keytab_set_key(kt, "MAD-01", KEY);
	keytab_set_plain(kt, "PLN-01", 1);
	double now = 1700000000.0, mono = 100.0;
	core_set_mono(c, mono);
	for (uint64_t conn = 1; conn <= 4; conn++) {
		char peer[32];
		snprintf(peer, sizeof peer, "10.0.0.%u:1", (unsigned)conn);
		core_on_link_up(c, conn, peer, conn % 2, now, &fx);
	}
	int leak_check = !memmem(data, size, SECRET, strlen(SECRET)) && !memmem(data, size, KEY, strlen(KEY));
	char item[2048];
	size_t pos = 0;
	while (pos < size) {
		size_t len = 0;
		while (pos + len < size && data[pos + len] != '\n')
			len++;
		size_t n = len < sizeof item - 1 ? len : sizeof item - 1;
		memcpy(item, data + pos, n);
		item[n] = '\0';
		pos += len + 1;
		core_fxlist_clear(&fx);
		if (n >= 3 && item[0] == 'F') {
			uint64_t conn = 1 + (uint64_t)(item[1] & 3);
			if (link_validate(item + 3, strlen(item + 3), NULL) == 0)
				core_on_frame(c, conn, item + 3, now, &fx);
		} else if (n >= 2 && item[0] == 'D') {
			core_on_link_down(c, 1 + (uint64_t)(item[1] & 3), "fuzz", now, &fx);
		} else if (n >= 1 && item[0] == 'T') {
			struct msg m;
			char cp[MSG_CP_ID_MAX + 1], err[EVC_ERR_LEN];
			if (telemetry_open(kt, item + 1, n - 1, &m, cp, err) == TELEMETRY_OK) {
				core_on_kafka(c, &m, now, &fx);
				msg_free(&m);
			}
		} else if (n >= 2 && item[0] == 'W') {
			char err[EVC_ERR_LEN];
			int alert;
			core_on_weather(c, item + 2, 0, (double)(unsigned char)item[1] - 128.0, NULL, "weather", NULL,
					now, &fx, &alert, err);
		} else if (n >= 1 && item[0] == 'E') {
			char err[EVC_ERR_LEN];
			int alert;
			core_on_weather(c, item + 1, 1, 0, item + 1, "api:ew", "127.0.0.1", now, &fx, &alert, err);
		} else if (n >= 2 && item[0] == 'H') {
			char err[EVC_ERR_LEN];
			core_set_weather_threshold(c, ((double)(unsigned char)item[1] - 128.0) / 4, "operator", NULL, now,
						   &fx, err);
		} else if (n >= 2 && item[0] == 'C') {
			char err[EVC_ERR_LEN];
			core_command(c, (enum core_cmd)((unsigned char)item[1] % 5), item + 2, now, &fx, err);
		} else if (n >= 1 && item[0] == 'K') {
			now += 7;
			mono += 7;
			core_set_mono(c, mono);
			core_on_tick(c, now, &fx);
		}
		check(&fx, leak_check);
		check_commands(&fx, item, n);
	}
	core_fxlist_free(&fx);
	keytab_free(kt);
	core_free(c);
	return 0;
}
