/* libFuzzer target for the engine's challenge gate (src/cp/cpauth.c), the
 * parser every connection to a secured engine meets first. The input is a
 * run of frames (DATA, one per line; lines that are not valid DATA are
 * dropped, as the link layer would). "AUTH!" stands for the right answer
 * to the current challenge and "AUTH?" for it with one digit changed, so
 * the fuzzer reaches every state. Checked, beyond "does not crash":
 *  - every answer the gate wants sent is valid DATA for a frame;
 *  - only the right answer to the current nonce authenticates, and nothing
 *    passes to the engine before that;
 *  - a failure always has a reason, and no reply or reason holds the secret;
 *  - fewer than three strikes never close, the third always does;
 *  - the limiter blocks right after the failure that says it does.
 * Build and run: scripts/fuzz (reads the two lines below).
 */
// fuzz-sources: src/cp/cpauth.c src/common/crypto.c src/common/msg.c src/common/utf8.c src/common/state.c src/common/xalloc.c src/common/link.c src/common/clock.c src/common/err.c
// fuzz-libs: -ljansson -lcrypto
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evc/crypto.h"
#include "evc/link.h"
#include "src/cp/cpauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct cred CRED = {"MAD-01", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"};

static struct cpauth_limiter lim;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cpauth_conn c;
	cpauth_conn_init(&c, 0, 0);
	int strikes = 0, done = 0;
	size_t i = 0;
	while (i < size) {
		size_t j = i;
		while (j < size && data[j] != '\n')
			j++;
		size_t len = j - i;
		char frame[LINK_DATA_MAX + 1];
		int right = 0;
		if (len == 5 && (memcmp(data + i, "AUTH!", 5) == 0 || memcmp(data + i, "AUTH?", 5) == 0)) {
			char ans[65];
			crypto_challenge_answer(CRED.secret, c.nonce, CRED.cp_id, ans);
			right = data[i + 4] == '!' && c.state == CPAUTH_CHALLENGED;
			if (data[i + 4] == '?')
				ans[0] = ans[0] == '0' ? '1' : '0';
			snprintf(frame, sizeof frame, "AUTH#%s", ans);
			len = strlen(frame);
		} else if (len >= 1 && len <= LINK_DATA_MAX) {
			memcpy(frame, data + i, len);
			frame[len] = '\0';
		} else {
			len = 0;
		}
		i = j + 1;
		if (len == 0 || link_validate(frame, len, NULL) < 0)
			continue;
		char *f[LINK_FIELDS_MAX];
		int n = link_split(frame, f, LINK_FIELDS_MAX);
		char reply[LINK_DATA_MAX + 1], why[EVC_ERR_LEN];
		why[0] = '\0';
		enum cpauth_verdict v = cpauth_frame(&c, &CRED, f, n, reply, why);
		if (v != CPAUTH_PASS && link_validate(reply, strlen(reply), NULL) < 0)
			abort();
		if (strstr(reply, CRED.secret) != NULL || strstr(why, CRED.secret) != NULL)
			abort();
		switch (v) {
		case CPAUTH_PASS:
			if (!done)
				abort(); /* a frame reached the engine before AUTH_OK */
			break;
		case CPAUTH_OK:
			if (!right || done || strcmp(reply, "AUTH_OK") != 0)
				abort();
			done = 1;
			break;
		case CPAUTH_ANSWER:
			if (done || right)
				abort();
			if (strcmp(reply, CPAUTH_NOT_AUTHENTICATED) == 0 && ++strikes >= CPAUTH_STRIKES)
				abort(); /* the third strike must close */
			break;
		case CPAUTH_FAIL:
			if (done || right || why[0] == '\0' || strcmp(reply, CPAUTH_NOT_AUTHENTICATED) != 0)
				abort();
			/* The connection is closed: the rest feeds the limiter. */
			for (; i + 2 <= size; i += 2) {
				char addr[CPAUTH_ADDR_LEN];
				snprintf(addr, sizeof addr, "10.0.%u.%u", data[i] & 0x7f, data[i + 1] & 0x3);
				double now = (double)i;
				if (cpauth_failed(&lim, addr, now) && !cpauth_blocked(&lim, addr, now, NULL, NULL))
					abort();
			}
			return 0;
		}
		if ((c.state == CPAUTH_DONE) != done)
			abort();
	}
	return 0;
}
