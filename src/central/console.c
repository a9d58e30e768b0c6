/* EV_Central's headless console.
 *
 * INPUT (stdin, one command per line, case-insensitive, blanks trimmed):
 *   P <cp> | PARAR <cp>          stop one CP (takes effect when it ACKs)
 *   R <cp> | REANUDAR <cp>       resume one CP
 *   PT | PARAR_TODOS             stop every CP
 *   RT | REANUDAR_TODOS          resume every CP
 *   S | STATUS                   list every CP (CP lines, then SUMMARY)
 *   Q | QUIT                     clean shutdown
 * End of stdin does not quit: Central may run with stdin closed; only Q or
 * SIGINT/SIGTERM stop it.
 *
 * OUTPUT (stdout, one line per event or answer; the lines of one loop
 * turn's effects are flushed together at its end, every other line at once):
 *   <ts> <TAG> <fields...>
 * ts is local time "YYYY-MM-DDTHH:MM:SS.mmm". Fields are either bare words
 * (fixed positions) or key=value; when a field is free text (reason=,
 * text) it is last on the line and runs to its end. Tags:
 *   READY listen=<addr> kafka=<brokers> db=<path> cps=<n> prefix=<p>
 *   STATE <cp> <STATE>                            derived state changed
 *   LINK up conn=<n> peer=<addr>
 *   LINK down conn=<n> reason=<why>
 *   KAFKA up | KAFKA down reason=<why>
 *   CMD <PARAR|REANUDAR|PARAR_TODOS|REANUDAR_TODOS> <cp|ALL> sent
 *   CMD <...> <cp|ALL> failed reason=<why>
 *   REQUEST <user> <cp> <outcome>                  each driver request
 *   AUTH_OK <user> <cp> session=<id>
 *   AUTH_DENIED <user> <cp> reason=<why>
 *   CONSUMO <user> <cp> session=<id> kwh=<x> importe=<x> kw=<x>
 *   TICKET <user> <cp> session=<id> kwh=<x> price=<x> importe=<x>
 *   SUPPLY_ERROR <user> <cp> session=<id> kwh=<x> importe=<x> reason=<why>
 *   SESSION_CANCELLED <user> <cp> session=<id> reason=<why>
 *   BAD_MSG topic=<t> partition=<n> offset=<n> reason=<why>   skipped Kafka message
 *   INFO|WARN|ERROR <text>                          the core's log lines, input errors
 *   LOG <level> <text>                              diagnostics of the libraries
 *   CP <cp> <STATE> price=<x> link=<0|1> stopped=<0|1> fault=<0|1> location=<text>   (STATUS)
 *   SUMMARY cps=<n> <STATE>=<n>... links=<n> kafka=<up|down> kafka_in=<n> kafka_bad=<n>  (STATUS)
 *   SHUTDOWN reason=<why>
 * Numbers: kwh, importe, price and kw with 4 decimals.
 * The core's lines below the log level (LOG_INFO; DEBUG with EVC_DEBUG=1 or
 * `EV_Central ctl log-level debug`) are not shown.
 * With --log-format json each line is one JSON object instead:
 *   {"ts":"...","type":"<TAG>", <the same fields by name>}
 * Bare words get names: STATE {cp, state}; AUTH_OK, AUTH_DENIED, CONSUMO,
 * TICKET, SUPPLY_ERROR, SESSION_CANCELLED, REQUEST {user, cp, ...};
 * CMD {cmd, cp, result[, reason]}; CP {cp, state, ...}; LOG {level, text};
 * INFO/WARN/ERROR {text}. Lines of the loop's own (READY, LINK, KAFKA,
 * BAD_MSG, SHUTDOWN, AUDIT, DETACHED, LOG) have their fields by name as
 * evc/evline.h reads them: a leading word is "event" (LINK up ->
 * "event":"up"), key=value pairs by key, numbers as numbers, ids as text.
 * Numbers are JSON numbers. Example:
 *   {"ts":"2026-11-28T06:19:08.123","type":"STATE","cp":"MAD-01","state":"ACTIVADO"} */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "evc/clock.h"
#include "evc/evline.h"
#include "evc/hmap.h"
#include "evc/xalloc.h"
#include "src/central/console.h"

#define CON_LINE_MAX 1100

struct seen {
	char id[MSG_CP_ID_MAX + 1];
	int state;
};

struct console {
	struct frontend fe;
	int json;
	int eof;
	char buf[CON_LINE_MAX + 1];
	size_t len;
	int skipping; /* rest of an overlong line */
	struct hmap seen;    /* cp id -> struct seen: last state printed per CP */
	pthread_mutex_t out_mu;
};

/* ---- one output line ---- */

enum fkind { F_WORD, F_STR, F_NUM, F_INT };
struct field {
	const char *key;
	enum fkind kind;
	const char *s;
	double d;
	long long i;
};

#define W(k, v) ((struct field){ .key = (k), .kind = F_WORD, .s = (v) })
#define S(k, v) ((struct field){ .key = (k), .kind = F_STR, .s = (v) })
#define N(k, v) ((struct field){ .key = (k), .kind = F_NUM, .d = (v) })
#define I(k, v) ((struct field){ .key = (k), .kind = F_INT, .i = (long long)(v) })

static void timestamp(char *out, size_t n)
{
	double wall = clock_wall();
	time_t t = (time_t)wall;
	/* localtime_r + strftime once a second, not once a line (a telemetry
	 * flood prints tens of thousands of lines a second). Per thread: the
	 * log sink prints from other threads. */
	static _Thread_local time_t base_t = (time_t)-1;
	static _Thread_local char base[32];
	if (t != base_t) {
		struct tm tm;
		localtime_r(&t, &tm);
		strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
		base_t = t;
	}
	int ms = (int)((wall - (double)t) * 1000.0);
	snprintf(out, n, "%s.%03d", base, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

/* Set while the main thread prints one batch of effects: its lines are
 * flushed once at the end of the batch, not one write(2) per line (10,000
 * links registering make 40,000 lines). Lines from other threads (the log
 * sink) see 0 and are flushed at once. */
static _Thread_local int in_batch;

/* "%.4f" without printf's exact binary-to-decimal conversion, which was a
 * tenth of Central's time in a telemetry flood (three numbers a CONSUMO
 * line). Rounding d * 10^4 to the nearest integer gives the same digits
 * except when d lies within a rounding error of a half ten-thousandth;
 * the figures printed (kWh to 3 decimals, amounts to the cent, prices to
 * 4) never do. Large or odd values go through snprintf. */
static void fmt4(char *out, size_t n, double d)
{
	if (!(fabs(d) < 1e12)) {
		snprintf(out, n, "%.4f", d);
		return;
	}
	long long v = llround(fabs(d) * 10000.0);
	char tmp[32];
	int k = 0;
	for (int i = 0; i < 4; i++, v /= 10)
		tmp[k++] = (char)('0' + v % 10);
	tmp[k++] = '.';
	do {
		tmp[k++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	if (signbit(d))
		tmp[k++] = '-';
	size_t j = 0;
	while (k > 0 && j + 1 < n)
		out[j++] = tmp[--k];
	out[j] = '\0';
}

/* n == -1: f[0].s is a line of the loop's own, key=value fields in text. */
static void emit(struct console *c, const char *tag, const struct field *f, int n)
{
	char ts[40];
	timestamp(ts, sizeof ts);
	char *line = NULL;
	if (n == -1 && c->json) {
		json_t *o = json_object();
		json_object_set_new(o, "ts", json_string(ts));
		json_t *t = json_string(tag);
		json_object_set_new(o, "type", t != NULL ? t : json_string("?"));
		evline_add_fields(o, f[0].s);
		line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
		json_decref(o);
	} else if (c->json) {
		json_t *o = json_object();
		json_object_set_new(o, "ts", json_string(ts));
		json_object_set_new(o, "type", json_string(tag));
		for (int i = 0; i < n; i++) {
			json_t *v;
			switch (f[i].kind) {
			case F_NUM: v = json_real(f[i].d); break;
			case F_INT: v = json_integer(f[i].i); break;
			default:
				/* Invalid UTF-8 from the wire must not lose the line. */
				v = json_string(f[i].s != NULL ? f[i].s : "");
				if (v == NULL)
					v = json_string("(invalid UTF-8)");
			}
			json_object_set_new(o, f[i].key, v);
		}
		line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
		json_decref(o);
	} else {
		if (n == -1)
			n = 1;
		size_t cap = 256, len = 0;
		line = xmalloc(cap);
		len = (size_t)snprintf(line, cap, "%s %s", ts, tag);
		for (int i = 0; i < n; i++) {
			char num[64];
			const char *v = f[i].s != NULL ? f[i].s : "";
			if (f[i].kind == F_NUM) {
				fmt4(num, sizeof num, f[i].d);
				v = num;
			} else if (f[i].kind == F_INT) {
				snprintf(num, sizeof num, "%lld", f[i].i);
				v = num;
			}
			size_t need = len + strlen(f[i].key) + strlen(v) + 4;
			if (need > cap) {
				cap = need * 2;
				line = xrealloc(line, cap);
			}
			/* memcpy, not snprintf: this runs for every line. */
			size_t kl = strlen(f[i].key), vl = strlen(v);
			line[len++] = ' ';
			if (f[i].kind != F_WORD) {
				memcpy(line + len, f[i].key, kl);
				len += kl;
				line[len++] = '=';
			}
			memcpy(line + len, v, vl + 1);
			len += vl;
		}
		/* One event, one line: a newline inside free text would split it. */
		for (char *p = line; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	if (line == NULL)
		return;
	pthread_mutex_lock(&c->out_mu);
	fputs(line, stdout);
	fputc('\n', stdout);
	if (!in_batch)
		fflush(stdout);
	pthread_mutex_unlock(&c->out_mu);
	free(line);
}

/* ---- last state printed, per CP ---- */

static struct seen *seen_slot(struct console *c, const char *id)
{
	struct seen *s = hmap_sget(&c->seen, id);
	if (s == NULL) {
		s = xcalloc(1, sizeof *s);
		xstrlcpy(s->id, id, sizeof s->id);
		s->state = CP_STATE_COUNT; /* never printed */
		hmap_sput(&c->seen, s->id, s);
	}
	return s;
}

static void note_state(struct console *c, const char *id, enum cp_state st)
{
	struct seen *s = seen_slot(c, id);
	if (s->state == (int)st)
		return;
	s->state = (int)st;
	struct field f[] = { W("cp", id), W("state", cp_state_name(st)) };
	emit(c, "STATE", f, 2);
}

/* ---- effects ---- */

static void print_produce(struct console *c, const struct msg *m)
{
	switch (m->type) {
	case MSG_AUTH_OK: {
		struct field f[] = { W("user", m->user_id), W("cp", m->cp_id), S("session", m->session_id) };
		emit(c, "AUTH_OK", f, 3);
		break;
	}
	case MSG_AUTH_DENIED: {
		struct field f[] = { W("user", m->user_id), W("cp", m->cp_id), S("reason", m->reason) };
		emit(c, "AUTH_DENIED", f, 3);
		break;
	}
	case MSG_CONSUMO_UPDATE: {
		struct field f[] = { W("user", m->user_id), W("cp", m->cp_id), S("session", m->session_id),
				     N("kwh", m->kwh), N("importe", m->importe), N("kw", m->kw) };
		emit(c, "CONSUMO", f, 6);
		break;
	}
	case MSG_TICKET: {
		struct field f[] = { W("user", m->user_id), W("cp", m->cp_id), S("session", m->session_id),
				     N("kwh", m->kwh), N("price", m->price), N("importe", m->importe) };
		emit(c, "TICKET", f, 6);
		break;
	}
	case MSG_SUPPLY_ERROR: {
		struct field f[] = { W("user", m->user_id), W("cp", m->cp_id), S("session", m->session_id),
				     N("kwh", m->kwh_partial), N("importe", m->importe_partial),
				     S("reason", m->reason) };
		emit(c, "SUPPLY_ERROR", f, 6);
		break;
	}
	case MSG_SESSION_CANCELLED: {
		struct field f[] = { W("user", m->user_id), W("cp", m->cp_id), S("session", m->session_id),
				     S("reason", m->reason) };
		emit(c, "SESSION_CANCELLED", f, 4);
		break;
	}
	default:
		break;
	}
}

static const char *level_tag(enum log_level l)
{
	switch (l) {
	case LOG_DEBUG: return "DEBUG";
	case LOG_INFO: return "INFO";
	case LOG_WARN: return "WARN";
	case LOG_ERROR: return "ERROR";
	}
	return "INFO";
}

static void con_on_effects(struct frontend *fe, const struct core_fxlist *fx)
{
	struct console *c = fe->priv;
	in_batch = 1;
	for (size_t i = 0; i < fx->n; i++) {
		const struct core_fx *x = &fx->v[i];
		switch (x->kind) {
		case CORE_FX_STORE_CP:
			note_state(c, x->u.cp.id, x->u.cp.state);
			break;
		case CORE_FX_SCREEN: {
			const struct core_cp *cp = core_cp_find(fe->core, x->u.screen.cp_id);
			if (cp != NULL)
				note_state(c, cp->id, cp->state);
			break;
		}
		case CORE_FX_PRODUCE:
			print_produce(c, &x->u.produce);
			break;
		case CORE_FX_REQUEST: {
			struct field f[] = { W("user", x->u.request.user_id), W("cp", x->u.request.cp_id),
					     W("outcome", x->u.request.outcome) };
			emit(c, "REQUEST", f, 3);
			break;
		}
		case CORE_FX_LOG:
			/* main's own events (LINK, KAFKA, BAD_MSG) carry their tag
			 * in tag and their fields pre-formatted in text. */
			if (x->u.log.tag[0] != '\0') {
				struct field f[] = { W("text", x->u.log.text) };
				emit(c, x->u.log.tag, f, -1);
			} else if (x->u.log.level >= log_get_level()) {
				/* EVC_DEBUG=1 or `ctl log-level debug` shows DEBUG too */
				struct field f[] = { W("text", x->u.log.text) };
				emit(c, level_tag(x->u.log.level), f, 1);
			}
			break;
		default:
			break;
		}
	}
	in_batch = 0;
	pthread_mutex_lock(&c->out_mu);
	fflush(stdout);
	pthread_mutex_unlock(&c->out_mu);
}

/* ---- input ---- */

static void print_status(struct console *c)
{
	const struct core *core = c->fe.core;
	size_t n = core_cp_count(core);
	for (size_t i = 0; i < n; i++) {
		const struct core_cp *cp = core_cp_at(core, i);
		struct field f[] = { W("cp", cp->id), W("state", cp_state_name(cp->state)), N("price", cp->price),
				     I("link", cp->link_up), I("stopped", cp->stopped), I("fault", cp->fault),
				     S("location", cp->location) };
		emit(c, "CP", f, 7);
	}
	size_t counts[CP_STATE_COUNT];
	core_cp_state_counts(core, counts);
	struct field f[CP_STATE_COUNT + 5];
	int k = 0;
	f[k++] = I("cps", n);
	for (int s = 0; s < CP_STATE_COUNT; s++)
		f[k++] = I(cp_state_name((enum cp_state)s), counts[s]);
	f[k++] = I("links", c->fe.status->links);
	f[k++] = S("kafka", c->fe.status->kafka_up ? "up" : "down");
	f[k++] = I("kafka_in", c->fe.status->kafka_in);
	f[k++] = I("kafka_bad", c->fe.status->kafka_bad);
	emit(c, "SUMMARY", f, k);
}

static const char *cmd_name(int cmd)
{
	switch (cmd) {
	case CORE_CMD_STOP: return "PARAR";
	case CORE_CMD_RESUME: return "REANUDAR";
	case CORE_CMD_STOP_ALL: return "PARAR_TODOS";
	case CORE_CMD_RESUME_ALL: return "REANUDAR_TODOS";
	case CORE_CMD_REVOKE: return "REVOKE";
	}
	return "?";
}

/* Returns 1 if the operator asked to quit. */
static int handle_line(struct console *c, char *line)
{
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n == 0)
		return 0;
	if (strcasecmp(line, "S") == 0 || strcasecmp(line, "STATUS") == 0) {
		print_status(c);
		return 0;
	}
	int cmd;
	char cp[MSG_CP_ID_MAX + 1] = "";
	char err[EVC_ERR_LEN];
	if (core_parse_command(line, &cmd, cp, err) == -1) {
		char text[EVC_ERR_LEN + 64];
		snprintf(text, sizeof text, "%s (commands: P <cp>, R <cp>, PT, RT, REVOKE <cp>, S, Q)", err);
		struct field f[] = { W("text", text) };
		emit(c, "ERROR", f, 1);
		return 0;
	}
	if (cmd == -1) {
		struct field f[] = { S("reason", "operator") };
		emit(c, "QUIT", f, 1);
		return 1;
	}
	const char *target = (cmd == CORE_CMD_STOP_ALL || cmd == CORE_CMD_RESUME_ALL) ? "ALL" : cp;
	if (c->fe.readonly) {
		struct field f[] = { W("cmd", cmd_name(cmd)), W("cp", target), W("result", "failed"),
				     S("reason", "read-only console (--readonly)") };
		emit(c, "CMD", f, 4);
		return 0;
	}
	char msg[EVC_ERR_LEN] = "";
	int rc = c->fe.exec(c->fe.exec_arg, line, msg);
	if (rc == 0) {
		struct field f[] = { W("cmd", cmd_name(cmd)), W("cp", target), W("result", "sent") };
		emit(c, "CMD", f, 3);
	} else {
		/* The core's message repeats the command ("PARAR X failed: why");
		 * the line already says that, so keep only the why. */
		const char *why = strstr(msg, " failed: ");
		why = why != NULL ? why + 9 : msg;
		struct field f[] = { W("cmd", cmd_name(cmd)), W("cp", target), W("result", "failed"),
				     S("reason", why[0] != '\0' ? why : "refused") };
		emit(c, "CMD", f, 4);
	}
	return 0;
}

static int con_input_fd(struct frontend *fe)
{
	struct console *c = fe->priv;
	return c->eof ? -1 : 0;
}

static int con_on_input(struct frontend *fe)
{
	struct console *c = fe->priv;
	char chunk[4096];
	ssize_t r = read(0, chunk, sizeof chunk);
	if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
		/* Not a quit: scripts close stdin and keep Central running. */
		c->eof = 1;
		if (c->len > 0 && !c->skipping) {
			c->buf[c->len] = '\0';
			c->len = 0;
			return handle_line(c, c->buf);
		}
		return 0;
	}
	if (r < 0)
		return 0;
	for (ssize_t i = 0; i < r; i++) {
		char ch = chunk[i];
		if (ch == '\n') {
			if (c->skipping) {
				c->skipping = 0;
			} else {
				c->buf[c->len] = '\0';
				c->len = 0;
				if (handle_line(c, c->buf))
					return 1;
			}
			c->len = 0;
			continue;
		}
		if (c->skipping)
			continue;
		if (c->len == CON_LINE_MAX) {
			struct field f[] = { W("text", "input line too long (max 1100 bytes); ignored") };
			emit(c, "ERROR", f, 1);
			c->skipping = 1;
			c->len = 0;
			continue;
		}
		c->buf[c->len++] = ch == '\0' ? ' ' : ch;
	}
	return 0;
}

static void con_refresh(struct frontend *fe, double now) { (void)fe; (void)now; }
static int con_timeout_ms(struct frontend *fe) { (void)fe; return 1000; }

static void con_free(struct frontend *fe)
{
	if (fe == NULL)
		return;
	struct console *c = fe->priv;
	pthread_mutex_destroy(&c->out_mu);
	void *v;
	for (size_t i = 0; (v = hmap_next(&c->seen, &i)) != NULL;)
		free(v);
	hmap_free(&c->seen);
	free(c);
}

static const struct frontend_ops console_ops = {
	.name = "console",
	.input_fd = con_input_fd,
	.on_input = con_on_input,
	.on_effects = con_on_effects,
	.refresh = con_refresh,
	.timeout_ms = con_timeout_ms,
	.free = con_free,
};

struct frontend *console_new(const struct core *core, const struct central_status *status, int json,
			     int readonly, int (*exec)(void *arg, const char *line, char msg[EVC_ERR_LEN]),
			     void *exec_arg)
{
	struct console *c = xcalloc(1, sizeof *c);
	c->fe.ops = &console_ops;
	c->fe.core = core;
	c->fe.status = status;
	c->fe.exec = exec;
	c->fe.exec_arg = exec_arg;
	c->fe.readonly = readonly;
	c->fe.priv = c;
	c->json = json;
	pthread_mutex_init(&c->out_mu, NULL);
	/* What the core was loaded with is the baseline: only changes print. */
	size_t n = core_cp_count(core);
	for (size_t i = 0; i < n; i++) {
		const struct core_cp *cp = core_cp_at(core, i);
		seen_slot(c, cp->id)->state = (int)cp->state;
	}
	return &c->fe;
}

void console_log_sink(enum log_level lvl, const char *line, void *arg)
{
	struct frontend *fe = arg;
	struct console *c = fe->priv;
	struct field f[] = { W("level", log_level_name(lvl)), W("text", line) };
	emit(c, "LOG", f, 2);
}

