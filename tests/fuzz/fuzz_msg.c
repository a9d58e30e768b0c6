// fuzz-sources: src/common/msg.c src/common/utf8.c src/common/state.c src/common/xalloc.c
// fuzz-libs: -ljansson
/* libFuzzer target for the Kafka message codec.
 * First byte < 0x80: its low two bits pick the topic, the rest is a message
 * to decode. Whatever decodes must re-encode (decode and encode share their
 * rules), the encoding must decode again to the same message (numbers
 * within the encoder's rounding), and encoding that must give the same
 * bytes (rounding is idempotent).
 * First byte 0x7f: the rest is a string; msg_valid_text must agree with
 * jansson's own UTF-8 check.
 * First byte >= 0x80: the rest is the raw bytes of a struct msg (and of its
 * cps) handed to the encoder, which must either refuse it with an error or
 * produce JSON that its own topic's decoder accepts: the encoder never
 * emits anything invalid, whatever garbage it is given.
 * Every encoding is also made by msg_encode_ref (jansson): the hand-rolled
 * writer of CONSUMO_UPDATE and NETWORK_STATUS_UPDATE must refuse what it
 * refuses, in the same words, and give JSON that parses to equal values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "evc/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                                       \
	do {                                                                                                           \
		if (!(c)) {                                                                                            \
			fprintf(stderr, "fuzz_msg: check failed: %s (line %d)\n", #c, __LINE__);                    \
			abort();                                                                                       \
		}                                                                                                      \
	} while (0)

/* |a - b| within half a unit of the encoder's resolution. */
static int near(double a, double b, double scale)
{
	return fabs(a - b) <= 0.5 / scale + fabs(a) * 1e-15;
}

static void same(const struct msg *a, const struct msg *b)
{
	CHECK(a->type == b->type);
	CHECK(strcmp(a->user_id, b->user_id) == 0);
	CHECK(strcmp(a->cp_id, b->cp_id) == 0);
	CHECK(strcmp(a->session_id, b->session_id) == 0);
	CHECK(strcmp(a->request_id, b->request_id) == 0);
	CHECK(strcmp(a->origin, b->origin) == 0);
	CHECK(strcmp(a->message, b->message) == 0);
	CHECK(strcmp(a->reason, b->reason) == 0);
	CHECK(strcmp(a->component, b->component) == 0);
	CHECK(a->seq == b->seq);
	CHECK(a->has_session_id == b->has_session_id && a->has_request_id == b->has_request_id &&
	      a->has_origin == b->has_origin && a->has_timestamp == b->has_timestamp && a->has_seq == b->has_seq &&
	      a->has_kw == b->has_kw);
	CHECK(near(a->timestamp, b->timestamp, 1000));
	CHECK(near(a->kwh, b->kwh, 1000));
	CHECK(near(a->importe, b->importe, 100));
	CHECK(near(a->kw, b->kw, 1000));
	CHECK(near(a->price, b->price, 10000));
	CHECK(near(a->started_at, b->started_at, 1000));
	CHECK(near(a->ended_at, b->ended_at, 1000));
	CHECK(near(a->kwh_partial, b->kwh_partial, 1000));
	CHECK(near(a->importe_partial, b->importe_partial, 100));
	CHECK(a->ncps == b->ncps);
	for (size_t i = 0; i < a->ncps; i++) {
		CHECK(strcmp(a->cps[i].id, b->cps[i].id) == 0);
		CHECK(strcmp(a->cps[i].status, b->cps[i].status) == 0);
		CHECK(strcmp(a->cps[i].location, b->cps[i].location) == 0);
		CHECK(near(a->cps[i].price, b->cps[i].price, 10000));
	}
}

/* msg_encode's out (NULL: refused with err) against msg_encode_ref's. */
static void same_as_ref(const struct msg *m, const char *out, size_t len, const char *err)
{
	char rerr[EVC_ERR_LEN];
	size_t rlen;
	char *ref = msg_encode_ref(m, &rlen, rerr);
	if (out == NULL || ref == NULL) {
		CHECK(out == NULL && ref == NULL);
		CHECK(strcmp(err, rerr) == 0);
		return;
	}
	json_error_t je;
	json_t *a = json_loadb(out, len, 0, &je), *b = json_loadb(ref, rlen, 0, &je);
	if (a == NULL || b == NULL || !json_equal(a, b)) {
		fprintf(stderr, "fuzz_msg: the writers differ:\n%s\n%s\n", out, ref);
		abort();
	}
	json_decref(a);
	json_decref(b);
	free(ref);
}

static void fuzz_encoder(const uint8_t *data, size_t size)
{
	struct msg m, b;
	struct msg_cp_status *cps = NULL;
	char err[EVC_ERR_LEN];
	size_t n = size < sizeof(m) ? size : sizeof(m), len;
	char *json, *again;

	memset(&m, 0, sizeof(m));
	memcpy(&m, data, n);
	m.type = (enum msg_type)((unsigned)m.type % (MSG_TYPE_COUNT + 1));
	m.cps = NULL;
	m.ncps = 0;
	if (size > n) {
		size_t rest = size - n;
		m.ncps = (rest + sizeof(*cps) - 1) / sizeof(*cps);
		cps = calloc(m.ncps, sizeof(*cps));
		if (cps == NULL)
			return;
		memcpy(cps, data + n, rest);
		m.cps = cps;
	}
	json = msg_encode(&m, &len, err);
	same_as_ref(&m, json, json ? len : 0, err);
	if (json == NULL) {
		CHECK(err[0] != '\0');
	} else {
		CHECK(strlen(json) == len);
		if (msg_decode(msg_type_topic(m.type), json, len, &b, err) != 0) {
			fprintf(stderr, "fuzz_msg: encoder produced what the decoder rejects: %s\n%s\n", err, json);
			abort();
		}
		again = msg_encode(&b, &n, err);
		CHECK(again != NULL && n == len && memcmp(again, json, n) == 0);
		free(again);
		msg_free(&b);
		free(json);
	}
	free(cps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msg a, b;
	char err[EVC_ERR_LEN];
	enum msg_topic topic;
	char *j1, *j2;
	size_t n1, n2;
	char *copy;

	if (size < 1)
		return 0;
	if (data[0] & 0x80) {
		fuzz_encoder(data + 1, size - 1);
		return 0;
	}
	if (data[0] == 0x7f) {
		/* Differential: our UTF-8 rule must be exactly jansson's. */
		size_t n = size - 1;
		int ctl = 0;
		char *z = malloc(size);
		json_t *j;

		if (z == NULL)
			return 0;
		memcpy(z, data + 1, n);
		z[n] = '\0';
		for (size_t i = 0; i < n; i++)
			ctl |= (unsigned char)z[i] < 0x20;
		if (!ctl && n <= MSG_TEXT_MAX) {
			j = json_stringn(z, n);
			CHECK(msg_valid_text(z) == (j != NULL));
			json_decref(j);
		}
		free(z);
		return 0;
	}
	topic = (enum msg_topic)(data[0] & 3);
	/* An exact-size heap copy so ASan sees any read past len. */
	copy = malloc(size - 1 ? size - 1 : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	err[0] = 'x';
	err[1] = '\0';
	if (msg_decode(topic, copy, size - 1, &a, err) != 0) {
		CHECK(err[0] != '\0' && strlen(err) < EVC_ERR_LEN);
		CHECK(a.cps == NULL && a.ncps == 0);
		free(copy);
		return 0;
	}
	free(copy);
	CHECK(msg_type_topic(a.type) == topic);
	j1 = msg_encode(&a, &n1, err);
	if (j1 == NULL) {
		fprintf(stderr, "fuzz_msg: decoded message does not re-encode: %s\n", err);
		abort();
	}
	CHECK(strlen(j1) == n1);
	same_as_ref(&a, j1, n1, err);
	if (msg_decode(topic, j1, n1, &b, err) != 0) {
		fprintf(stderr, "fuzz_msg: own encoding rejected: %s\n%s\n", err, j1);
		abort();
	}
	same(&a, &b);
	j2 = msg_encode(&b, &n2, err);
	CHECK(j2 != NULL);
	if (n1 != n2 || memcmp(j1, j2, n1) != 0) {
		fprintf(stderr, "fuzz_msg: encoding not stable:\n%s\n%s\n", j1, j2);
		abort();
	}
	free(j1);
	free(j2);
	msg_free(&a);
	msg_free(&b);
	return 0;
}
