/*
 * pg.h - PostgreSQL connections (libpq): a small blocking pool and query helpers.
 *
 * The pool hands out whole connections to one thread at a time; a connection found
 * broken is reset on the next acquire, so a PostgreSQL restart costs the requests in
 * flight an error (JN_ERR_DB_UNAVAILABLE, retryable) and nothing more. Query helpers
 * classify failures once: lost connection -> JN_ERR_DB_UNAVAILABLE, unique violation ->
 * JN_ERR_CONFLICT, anything else -> JN_ERR_DB, and log the server's message.
 *
 * Every wait on a pooled connection is bounded, so a PostgreSQL that stops answering
 * (frozen, partitioned away) costs a request a 503 within seconds, never a hung thread:
 * connecting (connect_timeout), waiting for a free connection (jn_pg_acquire's timeout),
 * a slow statement or lock wait (statement_timeout and lock_timeout, set by PostgreSQL on
 * every pooled session), and a server that answers nothing at all (a client-side deadline
 * per query: the query is sent without blocking and the socket is watched; on expiry the
 * connection is dropped and the query fails with JN_ERR_DB_UNAVAILABLE). TCP keepalives
 * find a dead peer on an idle connection. Once PostgreSQL has failed to answer (a missed
 * deadline, a failed connection), the pool fails borrowers at once for JN_PG_DOWN_WINDOW_MS
 * rather than letting each wait out its own deadline; then the next borrower tries again.
 */
#ifndef JN_PG_H
#define JN_PG_H

#include <libpq-fe.h>

#include "core/config.h"
#include "core/err.h"

typedef struct jn_pg_pool jn_pg_pool_t;

/* How long a pool fails borrowers at once after PostgreSQL failed to answer. */
#define JN_PG_DOWN_WINDOW_MS 1000

/* How a pool bounds its connections (docs/operations.md, JUNCTION_PG_*). */
typedef struct {
    int size;                 /* connections, opened lazily (1..) */
    int connect_timeout_s;    /* libpq connect_timeout (at least 2) */
    int statement_timeout_ms; /* PostgreSQL cancels a longer statement; 0 = no limit */
    int lock_timeout_ms;      /* PostgreSQL fails a longer lock wait; 0 = no limit */
    int query_deadline_ms;    /* a query unanswered this long drops its connection; 0 = none */
} jn_pg_options_t;

/* The defaults of docs/operations.md for a pool of size connections. */
void jn_pg_options_default(jn_pg_options_t *opts, int size);

/* The options a program's configuration asks for. */
void jn_pg_options_from_config(const jn_config_t *cfg, jn_pg_options_t *opts);

/* Opens one connection (blocking, with a 5 s connect timeout and TCP keepalives), without
 * statement limits or a query deadline: for start-up work such as migrations, which may
 * legitimately run long. application_name tags it in pg_stat_activity. On failure returns
 * NULL and logs why (never the password). */
PGconn *jn_pg_connect(const char *url, const char *application_name);

/* Like jn_pg_connect but retries until deadline_ms has passed; for start-up, so a
 * program may start before PostgreSQL. */
PGconn *jn_pg_connect_wait(const char *url, const char *application_name, int deadline_ms);

/* Creates a pool of up to size connections with the default limits. */
jn_pg_pool_t *jn_pg_pool_new(const char *url, const char *application_name, int size);
/* Creates a pool with the given limits (copied). */
jn_pg_pool_t *jn_pg_pool_new_with(const char *url, const char *application_name,
                                  const jn_pg_options_t *opts);
void jn_pg_pool_free(jn_pg_pool_t *pool);

/* Borrows a healthy connection, waiting up to timeout_ms for a free one.
 * NULL with *err = JN_ERR_DB_UNAVAILABLE (PostgreSQL cannot be reached, or failed to
 * answer less than JN_PG_DOWN_WINDOW_MS ago) or JN_ERR_TIMEOUT (no free connection).
 * Give it back with release. */
PGconn *jn_pg_acquire(jn_pg_pool_t *pool, int timeout_ms, jn_err_t *err);
void jn_pg_release(jn_pg_pool_t *pool, PGconn *conn);

/* Runs SELECT 1 on a pooled connection: JN_OK when PostgreSQL answers. */
jn_err_t jn_pg_ping(jn_pg_pool_t *pool);

/* Runs sql with text parameters. On success *out (if non-NULL) holds the result, which
 * the caller PQclear()s; on failure nothing is returned and the error is classified and
 * logged with the statement's first words for context. On a pooled connection the wait
 * for the answer is bounded by the pool's query deadline: past it the connection is
 * dropped (it reads as broken from then on, and the pool discards it on release) and the
 * answer is JN_ERR_DB_UNAVAILABLE. */
jn_err_t jn_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out);

/* Runs a statement that RETURNs a row per row it touched (UPDATE/DELETE … RETURNING):
 * JN_ERR_NOT_FOUND when it touched none. */
jn_err_t jn_pg_exec_found(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Sends sql with text parameters and returns without waiting for the answer, so that the
 * caller can work while PostgreSQL does; jn_pg_receive collects it. One query at a time in
 * flight per connection, and nothing else may run on it in between. Errors as jn_pg_exec
 * (the query's own errors come from jn_pg_receive). */
jn_err_t jn_pg_send(PGconn *conn, const char *sql, int nparams, const char *const *params);

/* Collects the answer of the query jn_pg_send (or jn_pg_copy_send) sent, as jn_pg_exec
 * does, with the pool's deadline counted from now. sql names the query in logs. */
jn_err_t jn_pg_receive(PGconn *conn, const char *sql, PGresult **out);

/* Sends a COPY ... FROM STDIN with data[0..len) as its whole input and returns without
 * waiting for PostgreSQL to apply it; jn_pg_receive collects the outcome. */
jn_err_t jn_pg_copy_send(PGconn *conn, const char *sql, const void *data, size_t len);

/* Runs sql, a COPY ... FROM STDIN statement, with data[0..len) as its whole input (in the
 * format the statement names; binary COPY needs no escaping). Same classification and
 * deadline as jn_pg_exec; *rows (may be NULL) receives how many rows were copied. */
jn_err_t jn_pg_copy_in(PGconn *conn, const char *sql, const void *data, size_t len,
                       long long *rows);

/* The text of a PostgreSQL array literal of the n strings items ("{\"a\",\"b\"}"), for a
 * $n::text[] parameter, as a new string (caller frees). NULL items become NULL. */
char *jn_pg_text_array(const char *const *items, size_t n);

/* Runs one or more statements without parameters and without a result (same deadline). */
jn_err_t jn_pg_exec_script(PGconn *conn, const char *sql);

/* The value at (row, col) as a new string (caller frees), or NULL when it is SQL NULL. */
char *jn_pg_dup(const PGresult *r, int row, int col);

/* Classifies a failed result/connection into a jn_err_t (see above). */
jn_err_t jn_pg_classify(PGconn *conn, const PGresult *res);

#endif
