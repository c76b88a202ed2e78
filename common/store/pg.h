/*
 * pg.h - PostgreSQL connections (libpq): a small blocking pool and query helpers.
 *
 * The pool hands out whole connections to one thread at a time; a connection found
 * broken is reset on the next acquire, so a PostgreSQL restart costs the requests in
 * flight an error (JN_ERR_DB_UNAVAILABLE, retryable) and nothing more. Query helpers
 * classify failures once: lost connection -> JN_ERR_DB_UNAVAILABLE, unique violation ->
 * JN_ERR_CONFLICT, anything else -> JN_ERR_DB, and log the server's message.
 */
#ifndef JN_PG_H
#define JN_PG_H

#include <libpq-fe.h>

#include "core/err.h"

typedef struct jn_pg_pool jn_pg_pool_t;

/* Opens one connection (blocking, with a 5 s connect timeout). application_name tags it
 * in pg_stat_activity. On failure returns NULL and logs why (never the password). */
PGconn *jn_pg_connect(const char *url, const char *application_name);

/* Like jn_pg_connect but retries until deadline_ms has passed; for start-up, so a
 * program may start before PostgreSQL. */
PGconn *jn_pg_connect_wait(const char *url, const char *application_name, int deadline_ms);

/* Creates a pool of up to size connections, opened lazily. */
jn_pg_pool_t *jn_pg_pool_new(const char *url, const char *application_name, int size);
void jn_pg_pool_free(jn_pg_pool_t *pool);

/* Borrows a healthy connection, waiting up to timeout_ms for a free one.
 * NULL with *err = JN_ERR_DB_UNAVAILABLE or JN_ERR_TIMEOUT. Give it back with release. */
PGconn *jn_pg_acquire(jn_pg_pool_t *pool, int timeout_ms, jn_err_t *err);
void jn_pg_release(jn_pg_pool_t *pool, PGconn *conn);

/* Runs SELECT 1 on a pooled connection: JN_OK when PostgreSQL answers. */
jn_err_t jn_pg_ping(jn_pg_pool_t *pool);

/* Runs sql with text parameters. On success *out (if non-NULL) holds the result, which
 * the caller PQclear()s; on failure nothing is returned and the error is classified and
 * logged with the statement's first words for context. */
jn_err_t jn_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out);

/* Runs a statement that RETURNs a row per row it touched (UPDATE/DELETE … RETURNING):
 * JN_ERR_NOT_FOUND when it touched none. */
jn_err_t jn_pg_exec_found(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Runs one or more statements without parameters and without a result. */
jn_err_t jn_pg_exec_script(PGconn *conn, const char *sql);

/* The value at (row, col) as a new string (caller frees), or NULL when it is SQL NULL. */
char *jn_pg_dup(const PGresult *r, int row, int col);

/* Classifies a failed result/connection into a jn_err_t (see above). */
jn_err_t jn_pg_classify(PGconn *conn, const PGresult *res);

#endif
