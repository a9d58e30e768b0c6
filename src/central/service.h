/* EV_Central as a service (EV_Central(1) RUNNING AS A SERVICE): one
 * instance per database (an flock on <db>.lock), the files it keeps beside
 * the database, its log file (--log-file, reopened on SIGHUP), and
 * systemd's notifications (READY, STOPPING, WATCHDOG) when NOTIFY_SOCKET
 * is set. Main thread only. */
#ifndef EVC_CENTRAL_SERVICE_H
#define EVC_CENTRAL_SERVICE_H

#include "evc/err.h"

/* "<db><suffix>" ("net.db" + ".lock"). Caller frees with free(). */
char *service_beside_db(const char *db, const char *suffix);

/* The database's folder must be writable (the database, its WAL and the
 * lock live there): 0, or -1 with err naming the folder. */
int service_check_folder(const char *db, char err[EVC_ERR_LEN]);

/* Take the instance lock <db>.lock, held until the process exits (the fd
 * stays open, close-on-exec) and holding this pid. 0 with *fd, or -1 with
 * err: a read-only folder is named, and a lock another process holds
 * names that process's pid. */
int service_lock(const char *db, int *fd, char err[EVC_ERR_LEN]);

/* Point stdout and stderr at path (appended, created 0640), and stdin at
 * /dev/null when detach_stdin: a Central whose terminal went away, or a
 * service, writes there. Called again after logrotate moved the file, it
 * opens the new one. 0 or -1 with err (nothing changed then). */
int service_log_open(const char *path, int detach_stdin, char err[EVC_ERR_LEN]);

struct central;
/* The terminal went away (SIGHUP, or the panel's input closed; why says
 * which) or SIGHUP arrived: with the panel, the terminal is restored as
 * far as it can be and Central goes on headless, its console lines in
 * c->log_file; headless with a log file, the file is reopened (logrotate);
 * else the signal is only noted. Central never stops for it. */
void service_hangup(struct central *c, const char *why);

#endif
