#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "evc/clock.h"
#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/ctl.h"
#include "src/central/ctlproto.h"
#include "src/central/turn.h"
#include "src/central/view.h"

/* Bytes waiting for one client: past the hard limit an ordinary client is
 * closed (its answer cannot be that big) and an attached one starts over
 * with a full picture once it has read; past the soft limit an attached
 * client gets no stream lines until it reads. */
#define OUT_HARD (CTLPROTO_ANSWER_MAX + (1u << 20))
#define OUT_SOFT (1u << 20)
#define VIEW_GAP 0.1 /* s: the stream's picture at most ten times a second */

struct client {
	int fd;
	struct ctlproto_buf in;
	char *out;
	size_t out_off, out_len, out_cap;
	int eof;          /* read side done: close once out is written */
	int attached;
	int need_sync;    /* send every CP (first attach, or after lines were dropped) */
	unsigned long dropped;
	struct ctlproto_status sent_status;
	int status_sent;
};

struct ctl {
	char *path;
	int lfd;
	double accept_paused_until; /* monotonic: out of fds, accept again after */
	struct client cl[CTL_CLIENTS_MAX];
	int nattached;
	/* the stream's picture: last as the synced clients have it, cur the
	 * one being built */
	struct cp_view *last, *cur;
	size_t nlast, ncur, cap_last, cap_cur;
	int built;         /* last is a real picture */
	int stale;         /* the core changed since last */
	double built_at;
};

/* ---- output ---- */

static void client_close(struct client *k)
{
	if (k->fd == -1)
		return;
	close(k->fd);
	k->fd = -1;
	ctlproto_buf_free(&k->in);
	free(k->out);
	k->out = NULL;
	k->out_off = k->out_len = k->out_cap = 0;
	k->attached = k->need_sync = k->eof = 0;
	k->dropped = 0;
	k->status_sent = 0;
}

static size_t pending(const struct client *k)
{
	return k->out_len - k->out_off;
}

/* Write what waits without blocking. -1: the client is gone. */
static int flush_client(struct client *k)
{
	while (pending(k) > 0) {
		ssize_t n = send(k->fd, k->out + k->out_off, pending(k), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			k->out_off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return -1;
	}
	if (pending(k) == 0)
		k->out_off = k->out_len = 0;
	return 0;
}

/* Queue one line (a newline is added). 0, or -1 when over the hard limit
 * (nothing queued). */
static int queue_line(struct client *k, const char *line)
{
	size_t n = strlen(line);
	if (pending(k) + n + 1 > OUT_HARD)
		return -1;
	if (k->out_off > 0 && k->out_len + n + 1 > k->out_cap) {
		memmove(k->out, k->out + k->out_off, pending(k));
		k->out_len -= k->out_off;
		k->out_off = 0;
	}
	if (k->out_len + n + 1 > k->out_cap) {
		size_t cap = k->out_cap ? k->out_cap : 4096;
		while (cap < k->out_len + n + 1)
			cap *= 2;
		k->out = xrealloc(k->out, cap);
		k->out_cap = cap;
	}
	memcpy(k->out + k->out_len, line, n);
	k->out[k->out_len + n] = '\n';
	k->out_len += n + 1;
	return 0;
}

/* Queue an object (taking its reference). */
static int queue_json(struct client *k, json_t *o)
{
	char *s = ctlproto_dump(o);
	json_decref(o);
	int rc = queue_line(k, s);
	free(s);
	return rc;
}

static void answer_error(struct client *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void answer_error(struct client *k, const char *fmt, ...)
{
	char msg[EVC_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", msg);
	if (o == NULL)
		o = json_pack("{s:b, s:s}", "ok", 0, "error", "refused");
	queue_json(k, o);
}

/* ---- the socket ---- */

struct ctl *ctl_new(const char *path, char err[EVC_ERR_LEN])
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		evc_seterr(err, "control socket path %.60s... is too long (%zu bytes, at most %zu): give a shorter --control",
			   path, strlen(path), sizeof sa.sun_path - 1);
		return NULL;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		evc_seterr(err, "control socket: %s", strerror(errno));
		return NULL;
	}
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			evc_seterr(err, "control socket %s: a file that is not a socket is in the way", path);
			goto fail;
		}
		/* A socket someone answers on belongs to a running Central. */
		int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int live = probe != -1 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
		if (probe != -1)
			close(probe);
		if (live) {
			evc_seterr(err, "control socket %s is in use by another EV_Central (give another --control)", path);
			goto fail;
		}
		unlink(path); /* left by a Central that died */
	}
	/* 0600 from the start: no moment in which others may connect. */
	mode_t old = umask(077);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc == -1) {
		evc_seterr(err, "cannot create the control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	if (chmod(path, 0600) == -1 || listen(fd, 16) == -1) {
		evc_seterr(err, "control socket %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	struct ctl *t = xcalloc(1, sizeof *t);
	t->path = xstrdup(path);
	t->lfd = fd;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		t->cl[i].fd = -1;
	t->stale = 1;
	return t;
fail:
	close(fd);
	return NULL;
}

void ctl_prepare(struct ctl *t, struct pollfd pfd[CTL_NFDS])
{
	pfd[0] = (struct pollfd){ .fd = clock_mono() < t->accept_paused_until ? -1 : t->lfd, .events = POLLIN };
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		const struct client *k = &t->cl[i];
		pfd[1 + i] = (struct pollfd){ .fd = k->fd,
					      .events = (short)((k->eof ? 0 : POLLIN) | (pending(k) ? POLLOUT : 0)) };
	}
}

static void accept_clients(struct ctl *t)
{
	for (;;) {
		int fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			/* Out of descriptors: the pending connection keeps the
			 * socket readable, so stop polling it for a second
			 * rather than spin (as cplink does). */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				t->accept_paused_until = clock_mono() + 1.0;
			return;
		}
		/* The socket's mode already keeps others out; the peer's
		 * credentials say it once more. */
		struct ucred cr;
		socklen_t len = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid != geteuid() && cr.uid != 0) {
			close(fd);
			continue;
		}
		struct client *k = NULL;
		for (int i = 0; i < CTL_CLIENTS_MAX && k == NULL; i++)
			if (t->cl[i].fd == -1)
				k = &t->cl[i];
		if (k == NULL) {
			static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients (16)\"}\n";
			ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)w;
			close(fd);
			continue;
		}
		memset(k, 0, sizeof *k);
		k->fd = fd;
		ctlproto_buf_init(&k->in, CTLPROTO_LINE_MAX);
	}
}

/* ---- requests ---- */

static json_t *status_json(struct ctl *t, struct central *c)
{
	size_t counts[CP_STATE_COUNT];
	core_cp_state_counts(c->core, counts);
	json_t *states = json_object();
	for (int s = 0; s < CP_STATE_COUNT; s++)
		json_object_set_new(states, cp_state_name((enum cp_state)s), json_integer((json_int_t)counts[s]));
	size_t n = core_cp_count(c->core), open = 0;
	for (size_t i = 0; i < n; i++)
		open += core_cp_at(c->core, i)->session != NULL;
	int clients, attached;
	ctl_counts(t, &clients, &attached);
	size_t backlog = 0; /* bytes waiting for the slowest client */
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		if (t->cl[i].fd != -1 && pending(&t->cl[i]) > backlog)
			backlog = pending(&t->cl[i]);
	double now = clock_wall();
	const struct central_status *st = &c->status;
	json_t *o = json_pack("{s:b, s:I, s:s, s:f, s:f, s:s, s:s, s:b, s:s, s:I, s:I, s:s, s:s, s:s, s:b, s:I, s:I, "
			      "s:o, s:I, s:s, s:i, s:i, s:s}",
			      "ok", 1, "pid", (json_int_t)getpid(), "version", PACKAGE_VERSION, "started", st->started,
			      "uptime", now - st->started, "listen", st->listen, "kafka", st->kafka, "kafka_up",
			      st->kafka_up, "kafka_reason", st->kafka_reason, "kafka_in", (json_int_t)st->kafka_in,
			      "kafka_bad", (json_int_t)st->kafka_bad, "db", st->db, "control", t->path, "log_file",
			      c->log_active ? c->log_file : "", "readonly", c->readonly, "links",
			      (json_int_t)st->links, "cps", (json_int_t)n, "states", states, "sessions_open",
			      (json_int_t)open, "frontend", c->fe->ops->name, "clients", clients, "attached", attached,
			      "log_level", log_level_name(log_get_level()));
	if (o == NULL) {
		json_decref(states);
		o = json_pack("{s:b, s:s}", "ok", 0, "error", "status holds text that is not UTF-8");
	}
	json_object_set_new(o, "control_backlog", json_integer((json_int_t)backlog));
	return o;
}

static void answer_cps(struct client *k, struct central *c)
{
	json_t *arr = json_array();
	size_t n = core_cp_count(c->core);
	for (size_t i = 0; i < n; i++) {
		struct cp_view v;
		view_cp(core_cp_at(c->core, i), &v);
		json_t *o = ctlproto_cp_to_json(&v);
		json_object_del(o, "t");
		json_array_append_new(arr, o);
	}
	json_t *o = json_pack("{s:b, s:o}", "ok", 1, "cps", arr);
	if (queue_json(k, o) == -1) {
		answer_error(k, "the CP list is larger than a control answer may be (%u bytes)", CTLPROTO_ANSWER_MAX);
	}
}

/* A console command line (P, R, PT, RT, REVOKE, Q): the console's and the
 * panel's parser, the core's command with actor operator:ctl (the core
 * audits it). */
static void run_command(struct client *k, struct central *c, const char *line)
{
	int cmd;
	char cp[MSG_CP_ID_MAX + 1] = "";
	char perr[EVC_ERR_LEN] = "";
	if (core_parse_command(line, &cmd, cp, perr) == -1) {
		answer_error(k, "%s (requests: STATUS, CPS, LOG-LEVEL <level>, ATTACH, P <cp>, R <cp>, PT, RT, "
				"REVOKE <cp>, Q)",
			     perr);
		return;
	}
	char msg[EVC_ERR_LEN] = "";
	int rc;
	if (cmd == -1) {
		rc = 1;
	} else if (c->readonly) {
		evc_seterr(msg, "read-only: '%.60s' refused (commands are disabled by --readonly)", line);
		rc = -1;
	} else {
		char err[EVC_ERR_LEN] = "";
		rc = core_command_as(c->core, (enum core_cmd)cmd, cp, "operator:ctl", NULL, clock_wall(), &c->fx, err);
		if (rc == -1)
			evc_seterr(msg, "%s", err[0] ? err : "refused");
	}
	if (rc == 1) {
		ctl_audit(c, "CENTRAL_STOP", "", "stop requested on the control socket");
		turn_note(c, LOG_INFO, "SHUTDOWN", "reason=control socket");
		c->quit = 1;
		queue_json(k, json_pack("{s:b, s:s}", "ok", 1, "result", "stopping"));
		return;
	}
	if (rc == 0) {
		if (cmd == CORE_CMD_STOP || cmd == CORE_CMD_RESUME)
			snprintf(msg, sizeof msg, "%s sent to %s: in force once it acknowledges",
				 cmd == CORE_CMD_STOP ? "PARAR" : "REANUDAR", cp);
		else if (cmd == CORE_CMD_STOP_ALL || cmd == CORE_CMD_RESUME_ALL)
			snprintf(msg, sizeof msg, "%s sent to every CP with a link: each in force once it acknowledges",
				 cmd == CORE_CMD_STOP_ALL ? "PARAR_TODOS" : "REANUDAR_TODOS");
		else if (cmd == CORE_CMD_REVOKE)
			snprintf(msg, sizeof msg, "keys of %s revoked: it is out of service until it authenticates again",
				 cp);
		else
			snprintf(msg, sizeof msg, "sent");
		json_t *o = json_pack("{s:b, s:s, s:s}", "ok", 1, "result", "sent", "message", msg);
		queue_json(k, o != NULL ? o : json_pack("{s:b, s:s}", "ok", 1, "result", "sent"));
	} else {
		/* The core's message repeats the command ("PARAR X failed: why"). */
		const char *why = strstr(msg, " failed: ");
		answer_error(k, "%s", why != NULL ? why + 9 : msg[0] ? msg : "refused");
	}
}

static void handle_line(struct ctl *t, struct client *k, struct central *c, const char *line)
{
	char verb[32];
	const char *rest = ctlproto_verb(line, verb, sizeof verb);
	if (rest == NULL)
		return;
	if (strcmp(verb, "STATUS") == 0 || strcmp(verb, "S") == 0) {
		queue_json(k, status_json(t, c));
	} else if (strcmp(verb, "CPS") == 0) {
		answer_cps(k, c);
	} else if (strcmp(verb, "LOG-LEVEL") == 0) {
		enum log_level lvl;
		if (log_parse_level(rest, &lvl) == -1) {
			answer_error(k, "log-level: expected debug, info, warn or error, not '%.40s'", rest);
			return;
		}
		log_set_level(lvl);
		char detail[64];
		snprintf(detail, sizeof detail, "log level %s", log_level_name(lvl));
		ctl_audit(c, "LOG_LEVEL", "", detail);
		queue_json(k, json_pack("{s:b, s:s}", "ok", 1, "log_level", log_level_name(lvl)));
	} else if (strcmp(verb, "ATTACH") == 0) {
		if (!k->attached) {
			k->attached = 1;
			k->need_sync = 1;
			t->nattached++;
			ctl_audit(c, "OPERATOR_ATTACH", "", "a panel attached on the control socket");
		}
		queue_json(k, json_pack("{s:b, s:b, s:b}", "ok", 1, "attached", 1, "readonly", c->readonly));
	} else if (strcmp(verb, "DETACH") == 0) {
		if (k->attached) {
			k->attached = 0;
			t->nattached--;
			ctl_audit(c, "OPERATOR_DETACH", "", "an attached panel detached");
		}
		queue_json(k, json_pack("{s:b, s:b}", "ok", 1, "attached", 0));
	} else {
		run_command(k, c, line);
	}
}

static void read_client(struct ctl *t, struct client *k, struct central *c)
{
	char chunk[4096];
	for (int reads = 0; reads < 16; reads++) {
		ssize_t n = recv(k->fd, chunk, sizeof chunk, MSG_DONTWAIT);
		if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
			k->eof = 1;
			break;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		ctlproto_buf_put(&k->in, chunk, (size_t)n);
		char *line;
		while ((line = ctlproto_buf_line(&k->in)) != NULL) {
			if (strcmp(line, CTLPROTO_TOOLONG) == 0)
				answer_error(k, "request line too long (at most %d bytes): ignored", CTLPROTO_LINE_MAX);
			else
				handle_line(t, k, c, line);
			free(line);
		}
		if ((size_t)n < sizeof chunk)
			break;
	}
}

static void drop_client(struct ctl *t, struct client *k, struct central *c)
{
	if (k->attached) {
		t->nattached--;
		ctl_audit(c, "OPERATOR_DETACH", "", "an attached panel went away");
	}
	client_close(k);
}

void ctl_run(struct ctl *t, struct central *c, const struct pollfd pfd[CTL_NFDS])
{
	if (pfd[0].revents & POLLIN)
		accept_clients(t);
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		struct client *k = &t->cl[i];
		if (k->fd == -1 || pfd[1 + i].fd != k->fd)
			continue; /* new this turn: polled next turn */
		short re = pfd[1 + i].revents;
		if (re & (POLLIN | POLLHUP | POLLERR))
			read_client(t, k, c);
		if (k->fd != -1 && flush_client(k) == -1) {
			drop_client(t, k, c);
			continue;
		}
		if (k->eof && pending(k) == 0)
			drop_client(t, k, c);
	}
}

/* ---- the stream of attached clients ---- */

/* A stream line for every attached client that is keeping up. */
static void stream_line(struct ctl *t, json_t *o)
{
	char *s = ctlproto_dump(o);
	json_decref(o);
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		struct client *k = &t->cl[i];
		if (k->fd == -1 || !k->attached || k->need_sync)
			continue;
		if (pending(k) > OUT_SOFT || queue_line(k, s) == -1)
			k->dropped++;
	}
	free(s);
}

void ctl_on_effects(struct ctl *t, const struct core_fxlist *fx)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < fx->n; i++) {
		const struct core_fx *f = &fx->v[i];
		switch (f->kind) {
		case CORE_FX_LOG:
			if (t->nattached > 0 && (f->u.log.level > LOG_DEBUG || f->u.log.tag[0] != '\0')) {
				json_t *o = json_pack("{s:s, s:f, s:s, s:s, s:s}", "t", "log", "ts", f->ts, "level",
						      log_level_name(f->u.log.level), "tag", f->u.log.tag, "text",
						      f->u.log.text);
				if (o != NULL)
					stream_line(t, o);
			}
			break;
		case CORE_FX_REQUEST:
			if (t->nattached > 0) {
				json_t *o = json_pack("{s:s, s:f, s:s, s:s, s:s}", "t", "req", "ts", f->ts, "user",
						      f->u.request.user_id, "cp", f->u.request.cp_id, "outcome",
						      f->u.request.outcome);
				if (o != NULL)
					stream_line(t, o);
			}
			break;
		case CORE_FX_SCREEN:
		case CORE_FX_STATUS:
		case CORE_FX_STORE_CP:
		case CORE_FX_SEND: /* a command sent: the card says "stop sent..." */
			t->stale = 1;
			break;
		default:
			break;
		}
	}
}

static void fill_status(const struct central *c, struct ctlproto_status *s)
{
	memset(s, 0, sizeof *s);
	xstrlcpy(s->listen, c->status.listen, sizeof s->listen);
	xstrlcpy(s->kafka, c->status.kafka, sizeof s->kafka);
	xstrlcpy(s->db, c->status.db, sizeof s->db);
	s->kafka_up = c->status.kafka_up;
	xstrlcpy(s->kafka_reason, c->status.kafka_reason, sizeof s->kafka_reason);
	s->links = c->status.links;
}

static int status_equal(const struct ctlproto_status *a, const struct ctlproto_status *b)
{
	return strcmp(a->listen, b->listen) == 0 && strcmp(a->kafka, b->kafka) == 0 && strcmp(a->db, b->db) == 0 &&
	       a->kafka_up == b->kafka_up && strcmp(a->kafka_reason, b->kafka_reason) == 0 && a->links == b->links;
}

static void queue_cp(struct client *k, const struct cp_view *v)
{
	queue_json(k, ctlproto_cp_to_json(v));
}

static void queue_sync(struct client *k, size_t ncps)
{
	queue_json(k, json_pack("{s:s, s:I}", "t", "sync", "ncps", (json_int_t)ncps));
}

void ctl_refresh(struct ctl *t, struct central *c, double now)
{
	if (t == NULL || t->nattached == 0)
		return;
	struct ctlproto_status st;
	fill_status(c, &st);
	int rebuild = !t->built || (t->stale && (now - t->built_at >= VIEW_GAP || now < t->built_at));
	if (rebuild) {
		t->ncur = view_all(c->core, &t->cur, &t->cap_cur, NULL);
		t->stale = 0;
		t->built_at = now;
	}
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		struct client *k = &t->cl[i];
		if (k->fd == -1 || !k->attached)
			continue;
		if (k->dropped > 0 && pending(k) == 0 && !k->need_sync) {
			/* It missed lines: it gets everything again. */
			char text[96];
			snprintf(text, sizeof text, "(%lu lines dropped: this panel read too slowly)", k->dropped);
			queue_json(k, json_pack("{s:s, s:f, s:s, s:s, s:s}", "t", "log", "ts", now, "level", "warn",
						"tag", "", "text", text));
			k->dropped = 0;
			k->need_sync = 1;
		}
		const struct cp_view *pic = rebuild ? t->cur : t->last;
		size_t npic = rebuild ? t->ncur : t->nlast;
		int changed = 0;
		if (k->need_sync) {
			if (pending(k) > 0)
				continue; /* once it has read what waits */
			for (size_t j = 0; j < npic; j++)
				queue_cp(k, &pic[j]);
			k->need_sync = 0;
			k->status_sent = 0;
			changed = 1;
		} else if (rebuild && t->built) {
			for (size_t j = 0; j < t->ncur; j++)
				if (j >= t->nlast || !ctlproto_cp_equal(&t->cur[j], &t->last[j])) {
					if (pending(k) > OUT_SOFT) {
						k->dropped++;
						break;
					}
					queue_cp(k, &t->cur[j]);
					changed = 1;
				}
		}
		if (!k->status_sent || !status_equal(&st, &k->sent_status)) {
			queue_json(k, ctlproto_status_to_json(&st));
			k->sent_status = st;
			k->status_sent = 1;
			changed = 1;
		}
		if (changed)
			queue_sync(k, npic);
		if (flush_client(k) == -1)
			drop_client(t, k, c);
	}
	if (rebuild) {
		struct cp_view *tmp = t->last;
		size_t cap = t->cap_last;
		t->last = t->cur;
		t->nlast = t->ncur;
		t->cap_last = t->cap_cur;
		t->cur = tmp;
		t->cap_cur = cap;
		t->built = 1;
	}
}

int ctl_timeout_ms(const struct ctl *t)
{
	if (t == NULL || t->nattached == 0)
		return 1000;
	return t->stale ? (int)(VIEW_GAP * 1000) : 1000;
}

void ctl_counts(const struct ctl *t, int *clients, int *attached)
{
	*clients = *attached = 0;
	if (t == NULL)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++)
		if (t->cl[i].fd != -1) {
			(*clients)++;
			*attached += t->cl[i].attached;
		}
}

void ctl_free(struct ctl *t, const char *reason)
{
	if (t == NULL)
		return;
	for (int i = 0; i < CTL_CLIENTS_MAX; i++) {
		struct client *k = &t->cl[i];
		if (k->fd == -1)
			continue;
		if (k->attached) {
			json_t *o = json_pack("{s:s, s:s}", "t", "bye", "reason", reason != NULL ? reason : "stopped");
			if (o != NULL)
				queue_json(k, o);
		}
		flush_client(k); /* best effort: never wait for a client */
		client_close(k);
	}
	close(t->lfd);
	unlink(t->path);
	free(t->path);
	free(t->last);
	free(t->cur);
	free(t);
}

void ctl_audit(struct central *c, const char *action, const char *cp_id, const char *detail)
{
	core_fx_audit(&c->fx, clock_wall(), "operator:ctl", NULL, action, cp_id[0] != '\0' ? cp_id : NULL, "%s",
		      detail);
}
