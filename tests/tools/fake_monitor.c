/* fake_monitor: a scripted CP monitor for Central's integration tests.
 *
 * It speaks the link protocol of evcharging(7) THE LINK PROTOCOL with its own small
 * codec (so a bug in the shared codec cannot hide itself) and can misbehave
 * on purpose. Commands on stdin, one per line; events on stdout, one per
 * line, flushed at once, so a test can `wait_grep` them.
 *
 * Commands:
 *   connect HOST PORT      open the link (prints CONNECTED or CONNECT_FAILED <why>)
 *   enq                    send ENQ (Central answers ACK: "GOT ACK")
 *   send DATA              send the frame STX DATA ETX LRC ("SENT DATA")
 *   badlrc DATA            the same frame with a wrong LRC
 *   split DATA             the frame one byte per write, 2 ms apart
 *   big N                  a frame with N bytes of DATA (oversized if N > 1024)
 *   raw HEX                raw bytes, e.g. "raw 02ff0341"
 *   hb CP_ID [MS]          send HEARTBEAT#CP_ID every MS ms (default 500); "hb off"
 *   autoreply on|off       answer PARAR/REANUDAR/AUTORIZAR_SUMINISTRO with ACK#<cmd> (default on)
 *   nack OPCODE REASON     answer that command with NACK#<OPCODE>#<REASON> instead; "nack OPCODE off"
 *   ackmode ack|nack|none  how received frames are answered at link level (default ack)
 *   eot                    send EOT
 *   shutwr                 half-close (shutdown write side)
 *   close                  close the link without EOT
 *   idle N HOST PORT       open N extra connections that never send anything
 *                          (prints IDLE_OPEN <opened>, then IDLE_ALL_CLOSED when
 *                          the server has closed every one of them)
 *   quit                   exit
 * Events:
 *   GOT ACK|NACK|EOT|ENQ|BYTE 0xNN     control bytes outside frames
 *   RECV <DATA>                        a valid frame (answered per ackmode)
 *   RECV_BAD <why>                     a frame with a wrong LRC (answered NACK)
 *   CLOSED                             the server closed the link
 *   ERROR <why>                        a command that could not be done */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STX 0x02
#define ETX 0x03
#define EOT 0x04
#define ENQ 0x05
#define ACK 0x06
#define NACK 0x15
#define MAXDATA 4096

static int sock = -1;
static int autoreply = 1;
static int ackmode = 0; /* 0 ack, 1 nack, 2 none */
static char hb_cp[64];
static int hb_ms;
static double hb_next;
static char nack_for[3][32]; /* opcode -> reason */
static char nack_reason[3][128];
static int *idle_fds;
static int nidle, idle_open;

/* For each frame sent and not yet answered: print its ACK (1) or not (0,
 * heartbeats, which would drown the log). Answers come in order. */
static unsigned char pend[1024];
static unsigned pend_head, pend_n;

static void pend_push(int loud)
{
	if (pend_n == sizeof pend)
		return;
	pend[(pend_head + pend_n++) % sizeof pend] = (unsigned char)loud;
}

static int pend_pop(void)
{
	if (pend_n == 0)
		return 1;
	int loud = pend[pend_head];
	pend_head = (pend_head + 1) % sizeof pend;
	pend_n--;
	return loud;
}

/* reader state */
static int in_frame;
static int want_lrc;
static unsigned char fbuf[MAXDATA + 8];
static size_t flen;
static int overflow;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static unsigned char lrc_of(const char *d, size_t n)
{
	unsigned char x = STX ^ ETX;
	for (size_t i = 0; i < n; i++)
		x ^= (unsigned char)d[i];
	return x;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const unsigned char *p = buf;
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd pf = { .fd = fd, .events = POLLOUT };
				poll(&pf, 1, 1000);
				continue;
			}
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void send_bytes(const void *b, size_t n)
{
	if (sock < 0) {
		out("ERROR not connected");
		return;
	}
	if (write_all(sock, b, n) == -1)
		out("ERROR write: %s", strerror(errno));
}

static void send_frame(const char *data, int bad_lrc, int split)
{
	size_t n = strlen(data);
	unsigned char *f = malloc(n + 3);
	if (f == NULL)
		abort();
	f[0] = STX;
	memcpy(f + 1, data, n);
	f[n + 1] = ETX;
	f[n + 2] = (unsigned char)(lrc_of(data, n) ^ (bad_lrc ? 0x5a : 0));
	pend_push(1);
	if (split) {
		for (size_t i = 0; i < n + 3 && sock >= 0; i++) {
			send_bytes(f + i, 1);
			pause_ms(2);
		}
	} else {
		send_bytes(f, n + 3);
	}
	free(f);
	if (n <= 200)
		out("SENT %s", data);
	else
		out("SENT %zu bytes", n);
}

static void do_close(void)
{
	if (sock >= 0)
		close(sock);
	sock = -1;
	in_frame = 0;
	want_lrc = 0;
	flen = 0;
	hb_ms = 0;
	pend_n = 0;
}

static int open_conn(const char *host, const char *port, char *why, size_t n)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e != 0) {
		snprintf(why, n, "%s", gai_strerror(e));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(why, n, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void on_frame(const char *data)
{
	out("RECV %s", data);
	if (ackmode == 0) {
		unsigned char a = ACK;
		send_bytes(&a, 1);
	} else if (ackmode == 1) {
		unsigned char a = NACK;
		send_bytes(&a, 1);
		return;
	} else {
		return;
	}
	if (!autoreply)
		return;
	char op[64];
	size_t i = 0;
	while (data[i] != '\0' && data[i] != '#' && i < sizeof op - 1) {
		op[i] = data[i];
		i++;
	}
	op[i] = '\0';
	if (strcmp(op, "PARAR") != 0 && strcmp(op, "REANUDAR") != 0 && strcmp(op, "AUTORIZAR_SUMINISTRO") != 0)
		return;
	char reply[256];
	snprintf(reply, sizeof reply, "ACK#%s", op);
	for (int k = 0; k < 3; k++)
		if (strcmp(nack_for[k], op) == 0)
			snprintf(reply, sizeof reply, "NACK#%s#%s", op, nack_reason[k]);
	send_frame(reply, 0, 0);
}

static void on_bytes(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = b[i];
		if (want_lrc) {
			want_lrc = 0;
			fbuf[flen] = '\0';
			if (overflow) {
				out("RECV_BAD oversized frame");
			} else if (lrc_of((char *)fbuf, flen) != c) {
				out("RECV_BAD wrong LRC in '%s'", (char *)fbuf);
				unsigned char a = NACK;
				send_bytes(&a, 1);
			} else {
				on_frame((char *)fbuf);
			}
			flen = 0;
			overflow = 0;
			continue;
		}
		if (in_frame) {
			if (c == ETX) {
				in_frame = 0;
				want_lrc = 1;
			} else if (flen < MAXDATA) {
				fbuf[flen++] = c;
			} else {
				overflow = 1;
			}
			continue;
		}
		switch (c) {
		case STX: in_frame = 1; flen = 0; overflow = 0; break;
		case ACK:
			if (pend_pop())
				out("GOT ACK");
			break;
		case NACK:
			pend_pop();
			out("GOT NACK");
			break;
		case EOT: out("GOT EOT"); break;
		case ENQ: out("GOT ENQ"); break;
		default: out("GOT BYTE 0x%02x", c); break;
		}
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void open_idle(int n, const char *host, const char *port)
{
	idle_fds = realloc(idle_fds, (size_t)(nidle + n) * sizeof *idle_fds);
	if (idle_fds == NULL)
		abort();
	int opened = 0;
	char why[256] = "";
	for (int i = 0; i < n; i++) {
		int fd = open_conn(host, port, why, sizeof why);
		if (fd < 0)
			break;
		idle_fds[nidle++] = fd;
		opened++;
	}
	idle_open += opened;
	if (opened < n)
		out("IDLE_OPEN %d (stopped: %s)", opened, why);
	else
		out("IDLE_OPEN %d", opened);
}

static int command(char *line)
{
	char *cmd = strtok(line, " ");
	if (cmd == NULL)
		return 0;
	char *rest = strtok(NULL, "");
	char *a1 = NULL, *a2 = NULL, *a3 = NULL;
	char copy[MAXDATA + 64];
	snprintf(copy, sizeof copy, "%s", rest != NULL ? rest : "");
	a1 = strtok(copy, " ");
	if (a1 != NULL)
		a2 = strtok(NULL, " ");
	if (a2 != NULL)
		a3 = strtok(NULL, " ");

	if (strcmp(cmd, "connect") == 0 && a1 && a2) {
		char why[256];
		do_close();
		sock = open_conn(a1, a2, why, sizeof why);
		if (sock < 0)
			out("CONNECT_FAILED %s", why);
		else
			out("CONNECTED");
	} else if (strcmp(cmd, "enq") == 0) {
		unsigned char e = ENQ;
		send_bytes(&e, 1);
	} else if (strcmp(cmd, "send") == 0 && rest) {
		send_frame(rest, 0, 0);
	} else if (strcmp(cmd, "badlrc") == 0 && rest) {
		send_frame(rest, 1, 0);
	} else if (strcmp(cmd, "split") == 0 && rest) {
		send_frame(rest, 0, 1);
	} else if (strcmp(cmd, "big") == 0 && a1) {
		int n = atoi(a1);
		if (n < 1 || n > MAXDATA) {
			out("ERROR big: 1..%d", MAXDATA);
			return 0;
		}
		char *d = malloc((size_t)n + 1);
		if (d == NULL)
			abort();
		memset(d, 'A', (size_t)n);
		d[n] = '\0';
		send_frame(d, 0, 0);
		free(d);
	} else if (strcmp(cmd, "raw") == 0 && a1) {
		size_t n = strlen(a1) / 2;
		unsigned char *b = malloc(n + 1);
		if (b == NULL)
			abort();
		for (size_t i = 0; i < n; i++) {
			int h = hexval(a1[2 * i]), l = hexval(a1[2 * i + 1]);
			if (h < 0 || l < 0) {
				out("ERROR raw: bad hex");
				free(b);
				return 0;
			}
			b[i] = (unsigned char)(h * 16 + l);
		}
		send_bytes(b, n);
		free(b);
		out("SENT_RAW %zu", n);
	} else if (strcmp(cmd, "hb") == 0 && a1) {
		if (strcmp(a1, "off") == 0) {
			hb_ms = 0;
		} else {
			snprintf(hb_cp, sizeof hb_cp, "%s", a1);
			hb_ms = a2 ? atoi(a2) : 500;
			if (hb_ms < 10)
				hb_ms = 10;
			hb_next = now_s();
		}
	} else if (strcmp(cmd, "autoreply") == 0 && a1) {
		autoreply = strcmp(a1, "on") == 0;
	} else if (strcmp(cmd, "nack") == 0 && a1 && a2) {
		int k;
		for (k = 0; k < 3; k++)
			if (strcmp(nack_for[k], a1) == 0 || nack_for[k][0] == '\0')
				break;
		if (k == 3) {
			out("ERROR nack: table full");
			return 0;
		}
		if (strcmp(a2, "off") == 0) {
			nack_for[k][0] = '\0';
		} else {
			snprintf(nack_for[k], sizeof nack_for[k], "%s", a1);
			/* reason: everything after the opcode */
			const char *r = strstr(rest, a2);
			snprintf(nack_reason[k], sizeof nack_reason[k], "%s", r);
		}
	} else if (strcmp(cmd, "ackmode") == 0 && a1) {
		ackmode = strcmp(a1, "nack") == 0 ? 1 : strcmp(a1, "none") == 0 ? 2 : 0;
	} else if (strcmp(cmd, "eot") == 0) {
		unsigned char e = EOT;
		send_bytes(&e, 1);
	} else if (strcmp(cmd, "shutwr") == 0) {
		if (sock >= 0)
			shutdown(sock, SHUT_WR);
		hb_ms = 0;
	} else if (strcmp(cmd, "close") == 0) {
		do_close();
		out("CLOSED_BY_ME");
	} else if (strcmp(cmd, "idle") == 0 && a1 && a2 && a3) {
		open_idle(atoi(a1), a2, a3);
	} else if (strcmp(cmd, "quit") == 0) {
		return 1;
	} else {
		out("ERROR unknown or incomplete command '%s'", cmd);
	}
	(void)a3;
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char line[MAXDATA + 64];
	size_t llen = 0;
	int stdin_open = 1;
	for (;;) {
		/* commands below may open more idle connections: poll only those
		 * that are in pf */
		int polled_idle = nidle;
		int n = polled_idle + 2;
		struct pollfd *pf = calloc((size_t)n, sizeof *pf);
		if (pf == NULL)
			abort();
		pf[0] = (struct pollfd){ .fd = stdin_open ? 0 : -1, .events = POLLIN };
		pf[1] = (struct pollfd){ .fd = sock, .events = POLLIN };
		for (int i = 0; i < polled_idle; i++)
			pf[2 + i] = (struct pollfd){ .fd = idle_fds[i], .events = POLLIN };
		int timeout = 50;
		if (poll(pf, (nfds_t)n, timeout) < 0 && errno != EINTR) {
			perror("poll");
			return 1;
		}
		if (pf[0].revents) {
			char buf[4096];
			ssize_t r = read(0, buf, sizeof buf);
			if (r <= 0) {
				stdin_open = 0;
			} else {
				for (ssize_t i = 0; i < r; i++) {
					if (buf[i] == '\n') {
						line[llen] = '\0';
						llen = 0;
						if (command(line)) {
							free(pf);
							return 0;
						}
					} else if (llen < sizeof line - 1) {
						line[llen++] = buf[i];
					}
				}
			}
		}
		if (sock >= 0 && pf[1].revents) {
			unsigned char buf[4096];
			ssize_t r = recv(sock, buf, sizeof buf, 0);
			if (r > 0) {
				on_bytes(buf, (size_t)r);
			} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
				out("CLOSED");
				do_close();
			}
		}
		int before = idle_open;
		for (int i = 0; i < polled_idle; i++) {
			if (idle_fds[i] >= 0 && pf[2 + i].revents) {
				char b[256];
				ssize_t r = recv(idle_fds[i], b, sizeof b, MSG_DONTWAIT);
				if (r <= 0 && !(r < 0 && (errno == EAGAIN || errno == EINTR))) {
					close(idle_fds[i]);
					idle_fds[i] = -1;
					idle_open--;
				}
			}
		}
		if (before > 0 && idle_open == 0)
			out("IDLE_ALL_CLOSED");
		free(pf);
		if (hb_ms > 0 && sock >= 0 && now_s() >= hb_next) {
			char d[128];
			snprintf(d, sizeof d, "HEARTBEAT#%s", hb_cp);
			/* Heartbeats are not echoed: they would drown the log. */
			size_t dn = strlen(d);
			unsigned char f[140];
			f[0] = STX;
			memcpy(f + 1, d, dn);
			f[dn + 1] = ETX;
			f[dn + 2] = lrc_of(d, dn);
			pend_push(0);
			send_bytes(f, dn + 3);
			hb_next = now_s() + hb_ms / 1000.0;
		}
	}
}
