/* The control socket's protocol (EV_Central(1) CONTROL SOCKET), shared by
 * the server in Central's loop (ctl.c) and its clients, `EV_Central ctl`
 * and `EV_Central attach` (ctl_client.c):
 *
 *   client -> Central  one request a line, at most CTLPROTO_LINE_MAX
 *                      bytes: STATUS, CPS, LOG-LEVEL <level>, ATTACH,
 *                      DETACH, or a console command line (P <cp>, R <cp>,
 *                      PT, RT, REVOKE <cp>, Q)
 *   Central -> client  one JSON object a line: {"ok":true,...} or
 *                      {"ok":false,"error":"..."} per request; once
 *                      attached, also the stream {"t":"cp",...},
 *                      {"t":"status",...}, {"t":"sync",...},
 *                      {"t":"log",...}, {"t":"req",...}, {"t":"bye",...}
 *
 * Everything here is pure (no I/O) so the decoders can be fuzzed. */
#ifndef EVC_CENTRAL_CTLPROTO_H
#define EVC_CENTRAL_CTLPROTO_H
#include <stddef.h>

#include <jansson.h>

#include "evc/cpview.h"
#include "evc/err.h"

#define CTLPROTO_LINE_MAX 1100           /* a request line */
#define CTLPROTO_ANSWER_MAX (16u << 20)  /* a line from Central (a CPS of many CPs) */

/* A bounded line buffer for a socket: bytes in, whole lines out. A line
 * longer than max is not kept: it comes out, in its place, as the line
 * CTLPROTO_TOOLONG (which no real line equals), and the rest of it up to
 * its newline is dropped as it arrives. */
#define CTLPROTO_TOOLONG "\001"
struct ctlproto_buf {
	char *data;
	size_t head, len, cap; /* unread bytes: data[head..len) */
	size_t ustart;         /* where the unfinished line starts */
	size_t max;            /* the longest line taken */
	int skipping;          /* inside an overlong line: drop up to its newline */
};
void ctlproto_buf_init(struct ctlproto_buf *b, size_t max);
void ctlproto_buf_free(struct ctlproto_buf *b);
/* Append n bytes (memory stays within max + n). */
void ctlproto_buf_put(struct ctlproto_buf *b, const char *p, size_t n);
/* The next whole line (no newline; a CR before it dropped; a NUL in it
 * shown as a blank) into a string the caller frees with free(), or NULL
 * when none is complete. */
char *ctlproto_buf_line(struct ctlproto_buf *b);

/* The first word of a request, upper-cased, into word (at most n-1 bytes),
 * and a pointer to what follows it (blanks skipped). Leading and trailing
 * blanks of line are ignored. NULL for an empty line. */
const char *ctlproto_verb(const char *line, char *word, size_t n);

/* One CP as the stream and CPS carry it. Caller decrefs. */
json_t *ctlproto_cp_to_json(const struct cp_view *v);
/* Back; every field checked (ids, lengths, states, finite numbers). 0 or
 * -1 with err. */
int ctlproto_cp_from_json(const json_t *o, struct cp_view *v, char err[EVC_ERR_LEN]);
/* Field by field (not memcmp: the strings' tails are not defined). */
int ctlproto_cp_equal(const struct cp_view *a, const struct cp_view *b);

/* The header of the attached panel. */
struct ctlproto_status {
	char listen[96];
	char kafka[96];
	char db[256];
	int kafka_up;
	char kafka_reason[128];
	size_t links;
};
json_t *ctlproto_status_to_json(const struct ctlproto_status *s);
int ctlproto_status_from_json(const json_t *o, struct ctlproto_status *s, char err[EVC_ERR_LEN]);

/* What an attached client knows of Central: its CPs (in id order, at most
 * CTLPROTO_CPS_MAX) and the header, kept up to date from the stream. */
#define CTLPROTO_CPS_MAX 1000000
struct ctlproto_picture {
	struct cp_view *cps;
	size_t ncps, cap;
	size_t counts[CP_STATE_COUNT]; /* as of the last sync */
	struct ctlproto_status status;
};
enum ctlproto_kind {
	CTLPROTO_BAD = -1, /* not a line this client understands: skip it */
	CTLPROTO_CP,       /* a CP's card changed (picture updated) */
	CTLPROTO_STATUS,   /* the header changed (picture updated) */
	CTLPROTO_SYNC,     /* a consistent picture: draw it (counts updated) */
	CTLPROTO_LOG,      /* a log pane line: the caller reads ts, level, tag, text */
	CTLPROTO_REQ,      /* a requests pane line: ts, user, cp, outcome */
	CTLPROTO_BYE,      /* Central is stopping: reason */
	CTLPROTO_ANSWER,   /* {"ok":...}: the answer to a request */
};
/* Apply one line's object. Never trusts it: a bad line changes nothing. */
enum ctlproto_kind ctlproto_picture_apply(struct ctlproto_picture *p, const json_t *o, char err[EVC_ERR_LEN]);
void ctlproto_picture_free(struct ctlproto_picture *p);

/* A line from Central: its JSON object (caller decrefs) or NULL with err. */
json_t *ctlproto_parse(const char *line, char err[EVC_ERR_LEN]);
/* The line for an object (compact, no newline). Caller frees. */
char *ctlproto_dump(const json_t *o);

#endif
