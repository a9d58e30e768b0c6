/*
 * bench_fsync: what one durable commit costs this machine's disk, without
 * SQLite or Central, for reading run-panel's state-change figure.
 *
 *   bench_fsync DIR [COMMITS] [PAUSE_MS]
 *
 * In a scratch file in DIR (a 4 MiB file written and synced first, as a
 * WAL that is reused), each "commit" writes 9 WAL frames the way SQLite
 * does (a 24-byte header and a 4,096-byte page, two pwrites each) and then
 * fdatasyncs, PAUSE_MS (default 7) after the last; 9 frames and 7 ms are
 * what a commit of run-panel's 1,000 changing CPs writes and how far apart
 * they come (counted in the WAL: 8.9 frames a commit with schema 7, about
 * 20 before it, when every cp_events row also had an index leaf). Prints the calling thread's CPU per commit (the writes and
 * the fdatasync apart), the fdatasync's wall time p50/p99, and the write
 * requests per commit the disk under DIR completed (from sysfs; other
 * processes' writes count too, so run it on a quiet machine).
 *
 * The figure depends on the file system and the (virtual) disk: on ext4
 * without a journal, a file whose mtime changed gets its inode written by
 * every fdatasync, one more synchronous write per commit. Central pays
 * this once per COMMIT under synchronous=FULL (evcharging(7) DATABASE).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define FRAMES 9
#define PAGE 4096
#define HDR 24
#define WAL_BYTES (4L << 20)

static double clock_of(clockid_t id)
{
	struct timespec t;
	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Write requests completed by the block device holding st_dev (sysfs
 * "stat" field 5), or -1 where there is none (tmpfs, overlay). */
static long disk_writes(dev_t dev)
{
	char path[96];
	snprintf(path, sizeof path, "/sys/dev/block/%u:%u/stat", major(dev), minor(dev));
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	long v[5];
	int n = fscanf(f, "%ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4]);
	fclose(f);
	return n == 5 ? v[4] : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: %s DIR [COMMITS] [PAUSE_MS]\n", argv[0]);
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 500;
	int pause_ms = argc > 3 ? atoi(argv[3]) : 7;
	if (n < 1 || n > 1000000 || pause_ms < 0 || pause_ms > 1000) {
		fprintf(stderr, "%s: COMMITS 1..1000000, PAUSE_MS 0..1000\n", argv[0]);
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/bench_fsync.XXXXXX", argv[1]);
	int fd = mkstemp(path);
	if (fd == -1) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], argv[1], strerror(errno));
		return 1;
	}
	unlink(path);
	static char page[PAGE];
	memset(page, 0x5a, sizeof page);
	for (long off = 0; off < WAL_BYTES; off += PAGE) {
		if (pwrite(fd, page, PAGE, off) != PAGE) {
			fprintf(stderr, "%s: write: %s\n", argv[0], strerror(errno));
			return 1;
		}
	}
	if (fsync(fd) == -1) {
		fprintf(stderr, "%s: fsync: %s\n", argv[0], strerror(errno));
		return 1;
	}
	struct stat st;
	fstat(fd, &st);
	double *wall = calloc((size_t)n, sizeof *wall);
	if (wall == NULL)
		return 1;
	struct timespec pause = { pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L };
	long w0 = disk_writes(st.st_dev);
	double cpu_w = 0, cpu_s = 0;
	long off = 0;
	for (int i = 0; i < n; i++) {
		double a = clock_of(CLOCK_THREAD_CPUTIME_ID);
		for (int k = 0; k < FRAMES; k++) {
			if (off + HDR + PAGE > WAL_BYTES)
				off = 0; /* the WAL starts over, as after a checkpoint */
			if (pwrite(fd, page, HDR, off) != HDR || pwrite(fd, page, PAGE, off + HDR) != PAGE) {
				fprintf(stderr, "%s: write: %s\n", argv[0], strerror(errno));
				return 1;
			}
			off += HDR + PAGE;
		}
		double b = clock_of(CLOCK_THREAD_CPUTIME_ID), t0 = clock_of(CLOCK_MONOTONIC);
		if (fdatasync(fd) == -1) {
			fprintf(stderr, "%s: fdatasync: %s\n", argv[0], strerror(errno));
			return 1;
		}
		wall[i] = clock_of(CLOCK_MONOTONIC) - t0;
		cpu_w += b - a;
		cpu_s += clock_of(CLOCK_THREAD_CPUTIME_ID) - b;
		if (pause_ms > 0)
			nanosleep(&pause, NULL);
	}
	long w1 = disk_writes(st.st_dev);
	close(fd);
	qsort(wall, (size_t)n, sizeof *wall, cmp_double);
	double us_w = cpu_w / n * 1e6, us_s = cpu_s / n * 1e6;
	printf("one commit of %d WAL frames + fdatasync, %d ms apart, %d commits: %.1f us CPU (writes %.1f, "
	       "fdatasync %.1f); fdatasync p50 %.2f ms p99 %.2f ms",
	       FRAMES, pause_ms, n, us_w + us_s, us_w, us_s, wall[n / 2] * 1e3, wall[(n * 99) / 100] * 1e3);
	if (w0 >= 0 && w1 >= 0)
		printf("; %.2f write requests per commit", (double)(w1 - w0) / n);
	printf("\n");
	char writes[32] = "?";
	if (w0 >= 0 && w1 >= 0)
		snprintf(writes, sizeof writes, "%.2f", (double)(w1 - w0) / n);
	printf("RESULT_FSYNC us_cpu=%.1f us_write=%.1f us_fdatasync=%.1f p50_ms=%.3f p99_ms=%.3f writes=%s\n",
	       us_w + us_s, us_w, us_s, wall[n / 2] * 1e3, wall[(n * 99) / 100] * 1e3, writes);
	free(wall);
	return 0;
}
