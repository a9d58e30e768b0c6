/* The pieces every program shares for its manners: the configuration file
 * (evc/config.h, real files in a temp folder), the event line format
 * (evc/evline.h), the one address parser and printer (evc/net.h) and the
 * log level names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <jansson.h>

#include "evc/config.h"
#include "evc/evline.h"
#include "evc/log.h"
#include "evc/net.h"

static int load_str(struct config *c, const char *text, const char *prog, char err[EVC_ERR_LEN])
{
	err[0] = '\0';
	return config_load_string(c, text, "t.conf", prog, err);
}

static void test_config_values(void **state)
{
	(void)state;
	struct config c;
	char err[EVC_ERR_LEN];
	const char *text = "# comment\n"
			   "; another\n"
			   "broker = 127.0.0.1:9092\n"
			   "\n"
			   "[evcharging]\n"
			   "  topic_prefix = net1-   ; inline comment\n"
			   "database = /var/lib/evcharging/evcharging.db\n"
			   "pki = /etc/evcharging/pki\n"
			   "log_format = text\n"
			   "[EV_Central]\n"
			   "log_format = json\n"
			   "[EV_Driver]\n"
			   "broker = [::1]:9093,10.0.0.2:9092\n";
	assert_int_equal(load_str(&c, text, "EV_Central", err), 0);
	assert_string_equal(c.broker, "127.0.0.1:9092");
	assert_string_equal(c.topic_prefix, "net1-");
	assert_string_equal(c.database, "/var/lib/evcharging/evcharging.db");
	assert_string_equal(c.pki, "/etc/evcharging/pki");
	assert_string_equal(c.log_format, "json"); /* [EV_Central] overrides */
	config_free(&c);

	/* The program's own section wins wherever it stands in the file. */
	const char *early = "[EV_Driver]\nbroker = h2:2\n[evcharging]\nbroker = h1:1\n";
	assert_int_equal(load_str(&c, early, "EV_Driver", err), 0);
	assert_string_equal(c.broker, "h2:2");
	config_free(&c);
	assert_int_equal(load_str(&c, early, "EV_CP_E", err), 0);
	assert_string_equal(c.broker, "h1:1");
	assert_null(c.database);
	config_free(&c);

	assert_int_equal(load_str(&c, "", "EV_W", err), 0);
	assert_null(c.broker);
	config_free(&c);
}

/* Each bad line is refused with the file name and its line number. */
static void test_config_bad_lines(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{ "broker = h:1\nnot a key value line\n", "t.conf:2: not a [section]" },
		{ "\n\nbrokr = h:1\n", "t.conf:3: unknown key 'brokr'" },
		{ "[EV_Centrall]\nbroker = h:1\n", "t.conf:2: unknown section [EV_Centrall]" },
		{ "broker = localhost\n", "t.conf:1: broker: invalid address 'localhost'" },
		{ "broker = 9092\n", "t.conf:1: broker: invalid address '9092'" },
		{ "broker = h:1,::1:9092\n", "t.conf:1: broker: invalid address '::1:9092'" },
		{ "broker =\n", "t.conf:1: broker: empty value" },
		{ "log_format = xml\n", "t.conf:1: log_format: expected text or json, not 'xml'" },
		{ "topic_prefix = a b\n", "t.conf:1: topic_prefix: 'a b' holds a character" },
		{ "database =\n", "t.conf:1: database: empty value" },
		{ "[evcharging\nbroker = h:1\n", "t.conf:1: not a [section]" },
		{ "# ok\npki = /p\n[EV_CP_M]\nlog_format = json\nlog_format = yaml\n", "t.conf:5: log_format" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct config c;
		char err[EVC_ERR_LEN];
		assert_int_equal(load_str(&c, cases[i].text, "EV_CP_M", err), -1);
		if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
			fail_msg("case %zu: '%s' does not start with '%s'", i, err, cases[i].want);
		config_free(&c);
	}
	/* A line longer than the limit is reported, not split in two. */
	char *longl = malloc(3000);
	strcpy(longl, "pki = /x\ndatabase = /");
	size_t n = strlen(longl);
	memset(longl + n, 'a', 2000);
	strcpy(longl + n + 2000, "\nbroker = h:1\n");
	struct config c;
	char err[EVC_ERR_LEN];
	assert_int_equal(load_str(&c, longl, "EV_Central", err), -1);
	assert_string_equal(err, "t.conf:2: line too long (at most 1024 bytes)");
	config_free(&c);
	free(longl);
}

static void test_config_files(void **state)
{
	(void)state;
	char dir[] = "/tmp/evc-test-config.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[512];
	snprintf(path, sizeof path, "%s/evcharging.conf", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("[evcharging]\r\nbroker = k:9092\r\n", f); /* CRLF line ends too */
	fclose(f);
	struct config c;
	char err[EVC_ERR_LEN] = "";
	assert_int_equal(config_load(&c, path, "EV_CP_E", err), 0);
	assert_string_equal(c.broker, "k:9092");
	assert_string_equal(c.path, path);
	config_free(&c);

	char missing[600];
	snprintf(missing, sizeof missing, "%s/none.conf", dir);
	assert_int_equal(config_load(&c, missing, "EV_CP_E", err), -1);
	assert_non_null(strstr(err, "none.conf: cannot open the configuration file"));
	config_free(&c);

	/* An explicit folder is no file. */
	assert_int_equal(config_load(&c, dir, "EV_CP_E", err), -1);
	assert_non_null(strstr(err, dir));
	config_free(&c);

	/* EVC_CONFIG: another default file, or none; --config still wins. */
	setenv("EVC_CONFIG", path, 1);
	assert_int_equal(config_load(&c, NULL, "EV_CP_E", err), 0);
	assert_non_null(c.broker);
	assert_string_equal(c.broker, "k:9092");
	config_free(&c);
	setenv("EVC_CONFIG", "none", 1);
	assert_int_equal(config_load(&c, NULL, "EV_CP_E", err), 0);
	assert_null(c.broker);
	assert_null(c.path);
	config_free(&c);
	assert_int_equal(config_load(&c, path, "EV_CP_E", err), 0);
	assert_string_equal(c.broker, "k:9092");
	config_free(&c);
	setenv("EVC_CONFIG", missing, 1);
	assert_int_equal(config_load(&c, NULL, "EV_CP_E", err), -1);
	config_free(&c);
	unsetenv("EVC_CONFIG");

	unlink(path);
	rmdir(dir);
}

static void test_topic_prefix_order(void **state)
{
	(void)state;
	struct config c;
	char err[EVC_ERR_LEN];
	assert_int_equal(load_str(&c, "topic_prefix = file-\n", "EV_Central", err), 0);
	unsetenv("EVC_TOPIC_PREFIX");
	assert_string_equal(config_topic_prefix(&c, NULL), "file-");
	setenv("EVC_TOPIC_PREFIX", "env-", 1);
	assert_string_equal(config_topic_prefix(&c, NULL), "env-");
	assert_string_equal(config_topic_prefix(&c, "cli-"), "cli-");
	unsetenv("EVC_TOPIC_PREFIX");
	config_free(&c);
	assert_int_equal(load_str(&c, "", "EV_Central", err), 0);
	assert_string_equal(config_topic_prefix(&c, NULL), "");
	config_free(&c);
}

static json_t *fields_of(const char *text)
{
	json_t *o = json_object();
	evline_add_fields(o, text);
	return o;
}

static void assert_json(json_t *o, const char *want)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_SORT_KEYS);
	if (strcmp(s, want) != 0)
		fail_msg("got %s, want %s", s, want);
	free(s);
	json_decref(o);
}

static void test_evline_fields(void **state)
{
	(void)state;
	assert_json(fields_of("up conn=7 peer=[::1]:5000"), "{\"conn\":7,\"event\":\"up\",\"peer\":\"[::1]:5000\"}");
	assert_json(fields_of("down conn=7 reason=peer closed the link (EOT)"),
		    "{\"conn\":7,\"event\":\"down\",\"reason\":\"peer closed the link (EOT)\"}");
	assert_json(fields_of("listen=0.0.0.0:7000 kafka=k:1 db=/a b.db cps=3 prefix=-"),
		    "{\"cps\":3,\"db\":\"/a\",\"kafka\":\"k:1\",\"listen\":\"0.0.0.0:7000\",\"prefix\":\"-\",\"text\":\"b.db\"}");
	/* ids stay text; numbers become numbers; leading zeros stay text */
	assert_json(fields_of("END driver=101 session=S-1 kwh=1.250 importe=0.31 seq=007"),
		    "{\"driver\":\"101\",\"event\":\"END\",\"importe\":0.31,\"kwh\":1.25,\"seq\":\"007\",\"session\":\"S-1\"}");
	assert_json(fields_of("central up (RECONNECT)"), "{\"event\":\"central up (RECONNECT)\"}");
	assert_json(fields_of(""), "{}");
	assert_json(fields_of("Key=1 x=-2 y=-a"), "{\"event\":\"Key=1\",\"x\":-2,\"y\":\"-a\"}");
	/* invalid UTF-8 keeps the field */
	assert_json(fields_of("reason=\xff\xfe"), "{\"reason\":\"(invalid UTF-8)\"}");
}

static void test_evline_render(void **state)
{
	(void)state;
	evline_set_format(EVLINE_TEXT);
	char *s = evline_render(0.5, "STATE ACTIVADO\nX");
	/* local time, milliseconds, the one format */
	assert_int_equal(strlen(s), strlen("1970-01-01T00:00:00.500 STATE ACTIVADO X"));
	assert_int_equal(s[10], 'T');
	assert_string_equal(s + 19, ".500 STATE ACTIVADO X");
	free(s);
	evline_set_format(EVLINE_JSON);
	s = evline_render(0.5, "LINK central down reason=timeout");
	json_error_t je;
	json_t *o = json_loads(s, 0, &je);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "type")), "LINK");
	assert_string_equal(json_string_value(json_object_get(o, "event")), "central down");
	assert_string_equal(json_string_value(json_object_get(o, "reason")), "timeout");
	assert_int_equal(strlen(json_string_value(json_object_get(o, "ts"))), 23);
	json_decref(o);
	free(s);
	s = evline_render(0.5, "QUIT");
	assert_non_null(strstr(s, "\"type\":\"QUIT\""));
	free(s);
	evline_set_format(EVLINE_TEXT);
	enum evline_format f;
	assert_int_equal(evline_parse_format("json", &f), 0);
	assert_int_equal(f, EVLINE_JSON);
	assert_int_equal(evline_parse_format("JSON", &f), -1);
}

static void test_net_addresses(void **state)
{
	(void)state;
	char host[256], err[EVC_ERR_LEN], out[300];
	int port;
	assert_int_equal(net_parse_hostport("127.0.0.1:7001", host, sizeof host, &port, err), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7001);
	assert_int_equal(net_parse_hostport("[::1]:7001", host, sizeof host, &port, err), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(net_parse_hostport("localhost:9092", host, sizeof host, &port, err), 0);
	/* refused alike by every program */
	assert_int_equal(net_parse_hostport("7001", host, sizeof host, &port, err), -1);
	assert_non_null(strstr(err, "expected host:port, e.g. 127.0.0.1:7001"));
	assert_int_equal(net_parse_hostport("localhost", host, sizeof host, &port, err), -1);
	assert_int_equal(net_parse_hostport("::1:7001", host, sizeof host, &port, err), -1);
	assert_non_null(strstr(err, "[v6]:port"));
	assert_int_equal(net_parse_hostport("[127.0.0.1]:1", host, sizeof host, &port, err), -1);
	assert_int_equal(net_parse_hostport("h:0", host, sizeof host, &port, err), -1);
	assert_int_equal(net_parse_hostport(":80", host, sizeof host, &port, err), -1);
	assert_int_equal(net_parse_hostport("[::1]7001", host, sizeof host, &port, err), -1);

	net_format_hostport("::1", 7001, out, sizeof out);
	assert_string_equal(out, "[::1]:7001");
	net_format_hostport("10.0.0.1", 7000, out, sizeof out);
	assert_string_equal(out, "10.0.0.1:7000");
	struct sockaddr_in6 a6;
	memset(&a6, 0, sizeof a6);
	a6.sin6_family = AF_INET6;
	a6.sin6_port = htons(7001);
	inet_pton(AF_INET6, "::1", &a6.sin6_addr);
	net_format_sockaddr((struct sockaddr *)&a6, out, sizeof out);
	assert_string_equal(out, "[::1]:7001");

	assert_int_equal(net_parse_host("::", host, sizeof host, err), 0);
	assert_string_equal(host, "::");
	assert_int_equal(net_parse_host("[::1]", host, sizeof host, err), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(net_parse_host("127.0.0.1", host, sizeof host, err), 0);
	assert_int_equal(net_parse_host("[]", host, sizeof host, err), -1);
	assert_int_equal(net_parse_host("", host, sizeof host, err), -1);
	assert_int_equal(net_parse_host("a b", host, sizeof host, err), -1);
	assert_int_equal(net_parse_host("[1.2.3.4]", host, sizeof host, err), -1);
}

static void test_log_levels(void **state)
{
	(void)state;
	enum log_level l;
	assert_int_equal(log_parse_level("debug", &l), 0);
	assert_int_equal(l, LOG_DEBUG);
	assert_int_equal(log_parse_level("WARN", &l), 0);
	assert_int_equal(l, LOG_WARN);
	assert_int_equal(log_parse_level("warning", &l), 0);
	assert_int_equal(log_parse_level("loud", &l), -1);
	log_set_level(LOG_ERROR);
	assert_int_equal(log_get_level(), LOG_ERROR);
	log_set_level(LOG_INFO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_values),     cmocka_unit_test(test_config_bad_lines),
		cmocka_unit_test(test_config_files),      cmocka_unit_test(test_topic_prefix_order),
		cmocka_unit_test(test_evline_fields),     cmocka_unit_test(test_evline_render),
		cmocka_unit_test(test_net_addresses),     cmocka_unit_test(test_log_levels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
