/* bench_api: one keep-alive HTTPS client (libcurl, one easy handle, so one
 * TLS connection for the whole run) asking Central's API N times.
 *
 *   bench_api URL TOKEN_FILE CA_FILE N [RATE]
 *
 * RATE requests a second (0 = as fast as answers come). Prints the
 * latencies (p50, p90, p99, max in ms), the answers that were not 200, the
 * bytes of the last answer and the rate reached. */
#include "config.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	*(size_t *)arg += sz * n;
	return sz * n;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: bench_api URL TOKEN_FILE CA_FILE N [RATE]\n");
		return 2;
	}
	const char *url = argv[1], *ca = argv[3];
	long n = strtol(argv[4], NULL, 10);
	double rate = argc > 5 ? strtod(argv[5], NULL) : 0;
	if (n < 1 || n > 10000000 || rate < 0) {
		fprintf(stderr, "bench_api: bad N or RATE\n");
		return 2;
	}
	char token[256] = "";
	FILE *f = fopen(argv[2], "r");
	if (f == NULL || fgets(token, sizeof token, f) == NULL) {
		fprintf(stderr, "bench_api: cannot read the token file\n");
		return 1;
	}
	fclose(f);
	token[strcspn(token, "\r\n")] = '\0';
	char auth[300];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	memset(token, 0, sizeof token);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, auth);
	size_t bytes = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &bytes);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	double *lat = calloc((size_t)n, sizeof *lat);
	long bad = 0, reconnects = 0;
	size_t last = 0;
	double t0 = mono();
	for (long i = 0; i < n; i++) {
		if (rate > 0) {
			double due = t0 + (double)i / rate, now = mono();
			if (due > now) {
				struct timespec ts = { (time_t)(due - now), (long)(fmod(due - now, 1.0) * 1e9) };
				nanosleep(&ts, NULL);
			}
		}
		bytes = 0;
		double a = mono();
		CURLcode rc = curl_easy_perform(h);
		lat[i] = (mono() - a) * 1000.0;
		long code = 0, conns = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
		if (i > 0)
			reconnects += conns;
		if (rc != CURLE_OK || code != 200)
			bad++;
		last = bytes;
	}
	double wall = mono() - t0;
	qsort(lat, (size_t)n, sizeof *lat, cmp);
#define PCT(p) lat[(size_t)((double)(n - 1) * (p))]
	printf("requests %ld  not-200 %ld  reconnects %ld  answer %zu bytes  rate %.0f/s\n", n, bad, reconnects, last,
	       (double)n / wall);
	printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", PCT(0.50), PCT(0.90), PCT(0.99), lat[n - 1]);
	free(lat);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return bad ? 1 : 0;
}
