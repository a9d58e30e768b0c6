/* Central's SQLite store (evcharging(7) DATABASE): charging_points, drivers,
 * sessions, cp_events. WAL mode, synchronous=FULL (a COMMIT is on disk
 * before Central acts on it), prepared statements. Only the main thread
 * touches it (the checkpoint thread of store_start_checkpointer has its own
 * connection). The main loop wraps each batch of events in one store_begin
 * .. store_commit, and the Kafka offsets of a batch are committed only after
 * store_commit succeeds. */
#ifndef EVC_CENTRAL_STORE_H
#define EVC_CENTRAL_STORE_H
#include <stdint.h>
#include <stdio.h>

#include "evc/err.h"
#include "evc/schema.h"
#include "src/central/core.h"


struct store;

/* Open (creating if missing) the database at path and make sure the schema
 * exists. NULL with err filled if the file cannot be opened or is not a
 * usable database. Caller frees with store_close. */
struct store *store_open(const char *path, char err[EVC_ERR_LEN]);
void store_close(struct store *s);
/* Move WAL checkpoints off the caller's thread: commits stop checkpointing
 * and a thread of the store, with its own connection, runs a PASSIVE
 * checkpoint whenever a commit leaves 1,000 pages or more in the WAL.
 * Stopped by store_close (the last close checkpoints what is left). For the
 * server; the registration tools keep SQLite's automatic checkpoints. */
int store_start_checkpointer(struct store *s, char err[EVC_ERR_LEN]);

/* One transaction per loop batch. begin is a no-op if one is open. */
int store_begin(struct store *s, char err[EVC_ERR_LEN]);
int store_commit(struct store *s, char err[EVC_ERR_LEN]);
/* Undo the open transaction, if any. */
void store_rollback(struct store *s);

/* Carry out one CORE_FX_STORE_CP / _SESSION / _EVENT / _REQUEST,
 * CORE_FX_PRUNE_REQUESTS, CORE_FX_AUDIT or CORE_FX_KEY effect (other kinds
 * are ignored). A session that already has an outcome is never
 * changed again, so a replay after a crash cannot end it twice. */
int store_apply(struct store *s, const struct core_fx *fx, char err[EVC_ERR_LEN]);

/* ---- start-up ---- */
/* Every known CP becomes DESCONECTADO (with a cp_events row for those that
 * were shown otherwise). */
int store_mark_all_disconnected(struct store *s, double now, char err[EVC_ERR_LEN]);
/* Call fn for every stored CP (id order; state DESCONECTADO, stopped as
 * stored), every registered driver, every session left open (outcome
 * NULL). Each returns how many, or -1 with err. */
int store_foreach_cp(struct store *s, void (*fn)(void *arg, const struct core_cp_row *cp), void *arg,
		     char err[EVC_ERR_LEN]);
int store_foreach_driver(struct store *s, void (*fn)(void *arg, const char *driver_id), void *arg,
			 char err[EVC_ERR_LEN]);
int store_foreach_open_session(struct store *s, void (*fn)(void *arg, const struct core_session *ss),
			       void *arg, char err[EVC_ERR_LEN]);
/* The registry's view of every CP changed after reg_rev since
 * (evcharging(7) DATABASE: reg_rev), in change order; since -1 gives all.
 * Returns the highest reg_rev seen (since if none), or -1 with err. */
int64_t store_foreach_reg(struct store *s, int64_t since,
			  void (*fn)(void *arg, const struct core_reg *r), void *arg, char err[EVC_ERR_LEN]);
/* PRAGMA data_version: changes when another connection (the registry,
 * --add-cp) committed something, so a poll can skip the query. */
int store_data_version(struct store *s);

/* Requests answered at or after since (wall clock), oldest first. */
int store_foreach_request(struct store *s, double since,
			  void (*fn)(void *arg, const char *user_id, const char *request_id, double seen_at), void *arg,
			  char err[EVC_ERR_LEN]);

/* ---- the outbox: notifications not yet delivered (evcharging(7) RULES) ---- */
/* Add one inside the open transaction (topic without prefix, key may be
 * NULL, payload the encoded JSON). Its id (> 0), or -1 with err. */
int64_t store_outbox_add(struct store *s, const char *topic, const char *key, const char *payload, double now,
			 char err[EVC_ERR_LEN]);
/* Forget one the broker confirmed (inside a transaction). */
int store_outbox_delete(struct store *s, int64_t id, char err[EVC_ERR_LEN]);
/* Call fn for up to max rows with id > after, in id order. How many, or -1. */
int store_outbox_scan(struct store *s, int64_t after, int max,
		      void (*fn)(void *arg, int64_t id, const char *topic, const char *key, const char *payload),
		      void *arg, char err[EVC_ERR_LEN]);

/* 1 if driver_id is registered (core_config.driver_known), 0 otherwise. */
int store_driver_known(void *store, const char *driver_id);

/* ---- the audit log (evcharging(7) SECURITY), for --audit ---- */
struct store_audit_row {
	double ts;
	char actor[80], source_ip[64], action[32], cp_id[MSG_CP_ID_MAX + 1];
	char detail[SCHEMA_AUDIT_DETAIL_MAX + 1];
};
/* Open the database at path read-only and call fn for every audit row at
 * or after since (cp_id NULL: all CPs), oldest first. How many, or -1 with
 * err (no such database, not one of ours). */
int store_audit_read(const char *path, double since, const char *cp_id,
		     void (*fn)(void *arg, const struct store_audit_row *r), void *arg, char err[EVC_ERR_LEN]);

/* ---- registration tools (--add-driver, --add-cp, --import) ---- */
/* Insert or update. *created set to 1 if the row is new. Inputs are
 * validated (msg_valid_user_id / msg_valid_cp_id, msg_check_location,
 * money_price_ok). */
int store_add_driver(struct store *s, const char *id, const char *name, int *created,
		     char err[EVC_ERR_LEN]);
int store_add_cp(struct store *s, const char *id, const char *location, double price, int *created,
		 char err[EVC_ERR_LEN]);
/* Import a text file, all or nothing (one transaction):
 *   # comment, blank lines ignored
 *   driver <ID> [NAME...]
 *   cp <ID> <PRICE> <LOCATION...>
 * Fields are separated by blanks; NAME and LOCATION are the rest of the line.
 * On error err says "FILE:LINE: why" and nothing is written. */
int store_import(struct store *s, const char *path, int *ndrivers, int *ncps, char err[EVC_ERR_LEN]);


#endif
