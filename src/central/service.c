#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evc/log.h"
#include "evc/xalloc.h"
#include "src/central/console.h"
#include "src/central/service.h"
#include "src/central/turn.h"

char *service_beside_db(const char *db, const char *suffix)
{
	return xasprintf("%s%s", db, suffix);
}

/* The folder of path ("." for a bare name). Caller frees. */
static char *folder_of(const char *path)
{
	char *copy = xstrdup(path);
	char *dir = xstrdup(dirname(copy));
	free(copy);
	return dir;
}

int service_check_folder(const char *db, char err[EVC_ERR_LEN])
{
	char *dir = folder_of(db);
	struct stat st;
	int rc = 0;
	if (stat(dir, &st) == -1) {
		evc_seterr(err, "cannot use the database folder %s: %s", dir, strerror(errno));
		rc = -1;
	} else if (!S_ISDIR(st.st_mode)) {
		evc_seterr(err, "cannot use the database folder %s: not a folder", dir);
		rc = -1;
	} else if (access(dir, W_OK | X_OK) == -1) {
		/* SQLite would say "attempt to write a readonly database"
		 * only at the first write, and about the file, not the folder. */
		evc_seterr(err,
			   "the database folder %s is read-only (%s): Central writes its database, WAL and lock "
			   "files there",
			   dir, strerror(errno));
		rc = -1;
	}
	free(dir);
	return rc;
}

/* The pid written in a lock file, or 0. */
static long lock_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

int service_lock(const char *db, int *fd_out, char err[EVC_ERR_LEN])
{
	if (service_check_folder(db, err) == -1)
		return -1;
	char *path = service_beside_db(db, ".lock");
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd == -1) {
		evc_seterr(err, "cannot open the lock file %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK) {
			long pid = lock_pid(fd);
			if (pid > 0)
				evc_seterr(err, "%s is in use by another EV_Central (pid %ld holds %s)", db, pid, path);
			else
				evc_seterr(err, "%s is in use by another EV_Central (it holds %s)", db, path);
		} else {
			evc_seterr(err, "cannot lock %s: %s", path, strerror(errno));
		}
		goto fail;
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n) {
		evc_seterr(err, "cannot write the lock file %s: %s", path, strerror(errno));
		goto fail;
	}
	free(path);
	*fd_out = fd;
	return 0;
fail:
	if (fd != -1)
		close(fd);
	free(path);
	return -1;
}

int service_log_open(const char *path, int detach_stdin, char err[EVC_ERR_LEN])
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd == -1) {
		evc_seterr(err, "cannot open the log file %s: %s", path, strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if (detach_stdin) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null != -1) {
			dup2(null, STDIN_FILENO);
			close(null);
		}
	}
	if (dup2(fd, STDOUT_FILENO) == -1 || dup2(fd, STDERR_FILENO) == -1) {
		evc_seterr(err, "cannot write to the log file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void service_hangup(struct central *c, const char *why)
{
	char err[EVC_ERR_LEN];
	if (strcmp(c->fe->ops->name, "panel") == 0) {
		/* The panel gives the terminal back (endwin; on a terminal that
		 * is gone its writes fail harmlessly), then the console takes
		 * over on the log file, stdin at /dev/null. */
		log_set_sink(NULL, NULL);
		c->fe->ops->free(c->fe);
		c->fe = NULL;
		int ok = service_log_open(c->log_file, 1, err) == 0;
		if (!ok) {
			/* Nowhere to write: still better to serve without a log
			 * than to write to a terminal that is gone. */
			char nerr[EVC_ERR_LEN];
			service_log_open("/dev/null", 1, nerr);
		}
		c->fe = console_new(c->core, &c->status, c->json, c->readonly, turn_exec, c);
		c->fe->readonly = c->readonly;
		log_set_sink(console_log_sink, c->fe);
		c->log_active = ok;
		c->hangups++;
		if (ok)
			turn_note(c, LOG_WARN, "DETACHED", "log=%s reason=%s: headless from now on", c->log_file, why);
		else
			turn_note(c, LOG_WARN, "DETACHED", "log=- reason=%s (%s)", why, err);
		return;
	}
	if (c->log_active) {
		if (service_log_open(c->log_file, 0, err) == 0)
			turn_note(c, LOG_INFO, "LOGFILE", "reopened log=%s reason=%s", c->log_file, why);
		else
			turn_note(c, LOG_WARN, "LOGFILE", "not reopened log=%s reason=%s", c->log_file, err);
		return;
	}
	turn_note(c, LOG_INFO, "LOGFILE", "ignored reason=%s (no --log-file to reopen)", why);
}
