/*
 * pg.c - libpq connections, a blocking pool, classified errors.
 *
 * Workload: a handful of threads per process each holding a connection for the length
 * of one request or job. A mutex and condition variable are enough; connections are
 * opened on first need and reset when libpq reports them broken.
 */
#include "store/pg.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

struct jn_pg_pool {
    char *url;
    char *application_name;
    int size;
    int opened;
    PGconn **idle;
    int idle_count;
    pthread_mutex_t lock;
    pthread_cond_t freed;
};

/* Notices (e.g. "relation already exists, skipping") are routine: debug level. */
static void notice_processor(void *arg, const char *message)
{
    (void)arg;
    char line[512];
    snprintf(line, sizeof line, "%s", message);
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = '\0';
    jn_log_debug("pg", "notice: %s", line);
}

PGconn *jn_pg_connect(const char *url, const char *application_name)
{
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {url, "5", application_name, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (!conn)
        abort();
    if (PQstatus(conn) != CONNECTION_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", PQerrorMessage(conn));
        why[strcspn(why, "\n")] = '\0';
        jn_log_warn("pg", "cannot connect to PostgreSQL at %s:%s: %s", PQhost(conn), PQport(conn),
                    why);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, notice_processor, NULL);
    return conn;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

PGconn *jn_pg_connect_wait(const char *url, const char *application_name, int deadline_ms)
{
    long until = now_ms() + deadline_ms;
    int pause_ms = 100;
    for (;;) {
        PGconn *conn = jn_pg_connect(url, application_name);
        if (conn)
            return conn;
        if (now_ms() + pause_ms > until)
            return NULL;
        struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (pause_ms < 2000)
            pause_ms *= 2;
    }
}

jn_pg_pool_t *jn_pg_pool_new(const char *url, const char *application_name, int size)
{
    jn_pg_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        abort();
    pool->url = strdup(url);
    pool->application_name = strdup(application_name);
    pool->size = size;
    pool->idle = calloc((size_t)size, sizeof *pool->idle);
    if (!pool->url || !pool->application_name || !pool->idle)
        abort();
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->freed, NULL);
    return pool;
}

void jn_pg_pool_free(jn_pg_pool_t *pool)
{
    if (!pool)
        return;
    for (int i = 0; i < pool->idle_count; i++)
        PQfinish(pool->idle[i]);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->freed);
    free(pool->idle);
    free(pool->application_name);
    free(pool->url);
    free(pool);
}

PGconn *jn_pg_acquire(jn_pg_pool_t *pool, int timeout_ms, jn_err_t *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&pool->lock);
    while (pool->idle_count == 0 && pool->opened >= pool->size) {
        if (pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&pool->lock);
            *err = JN_ERR_TIMEOUT;
            jn_log_warn("pg", "no free connection within %d ms (pool size %d)", timeout_ms,
                        pool->size);
            return NULL;
        }
    }
    PGconn *conn = NULL;
    if (pool->idle_count > 0) {
        conn = pool->idle[--pool->idle_count];
    } else {
        pool->opened++;
    }
    pthread_mutex_unlock(&pool->lock);

    if (conn && PQstatus(conn) != CONNECTION_OK) {
        PQreset(conn);
        if (PQstatus(conn) != CONNECTION_OK) {
            PQfinish(conn);
            conn = NULL;
        }
    }
    if (!conn)
        conn = jn_pg_connect(pool->url, pool->application_name);
    if (!conn) {
        pthread_mutex_lock(&pool->lock);
        pool->opened--;
        pthread_cond_signal(&pool->freed);
        pthread_mutex_unlock(&pool->lock);
        *err = JN_ERR_DB_UNAVAILABLE;
        return NULL;
    }
    *err = JN_OK;
    return conn;
}

void jn_pg_release(jn_pg_pool_t *pool, PGconn *conn)
{
    if (!conn)
        return;
    /* A connection left inside a transaction (a handler bailed out) is rolled back so the
     * next borrower starts clean. */
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
    }
    pthread_mutex_lock(&pool->lock);
    if (pool->idle_count == pool->size) {
        /* idle holds pool->size connections, so this one was not lent by the pool (or is
         * released twice): writing it would overrun idle, finishing it could free one that
         * idle still holds. Leave it alone and say so. */
        pthread_mutex_unlock(&pool->lock);
        jn_log_error("pg", "a connection the pool did not lend was released; ignored");
        return;
    }
    if (PQstatus(conn) == CONNECTION_OK) {
        pool->idle[pool->idle_count++] = conn;
    } else {
        PQfinish(conn);
        pool->opened--;
    }
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
}

jn_err_t jn_pg_ping(jn_pg_pool_t *pool)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, 2000, &err);
    if (!conn)
        return err;
    err = jn_pg_exec(conn, "SELECT 1", 0, NULL, NULL);
    jn_pg_release(pool, conn);
    return err;
}

jn_err_t jn_pg_classify(PGconn *conn, const PGresult *res)
{
    if (PQstatus(conn) != CONNECTION_OK)
        return JN_ERR_DB_UNAVAILABLE;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        return JN_ERR_DB_UNAVAILABLE;
    if (strcmp(state, "23505") == 0)
        return JN_ERR_CONFLICT;
    /* Class 08 (connection exception), 57P01..57P03 (admin shutdown, crash, cannot
     * connect now) and 53 (insufficient resources) are worth retrying. */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0 ||
        strncmp(state, "53", 2) == 0)
        return JN_ERR_DB_UNAVAILABLE;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return JN_ERR_CONFLICT;
    return JN_ERR_DB;
}

static void log_failure(PGconn *conn, const PGresult *res, const char *sql, jn_err_t err)
{
    char head[48];
    snprintf(head, sizeof head, "%s", sql);
    for (char *p = head; *p; p++) {
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    }
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = PQerrorMessage(conn);
    char why[512];
    snprintf(why, sizeof why, "%s", msg);
    why[strcspn(why, "\n")] = '\0';
    if (err == JN_ERR_CONFLICT)
        jn_log_debug("pg", "'%s...': %s", head, why);
    else
        jn_log_warn("pg", "'%s...' failed (%s): %s", head, jn_err_str(err), why);
}

jn_err_t jn_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out)
{
    if (out)
        *out = NULL;
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (out)
            *out = res;
        else
            PQclear(res);
        return JN_OK;
    }
    jn_err_t err = jn_pg_classify(conn, res);
    log_failure(conn, res, sql, err);
    PQclear(res);
    return err;
}

jn_err_t jn_pg_exec_script(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        PQclear(res);
        return JN_OK;
    }
    jn_err_t err = jn_pg_classify(conn, res);
    log_failure(conn, res, sql, err);
    PQclear(res);
    return err;
}

char *jn_pg_dup(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(r, row, col));
    if (!s)
        abort();
    return s;
}

jn_err_t jn_pg_exec_found(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn, sql, nparams, params, &r);
    if (err)
        return err;
    bool found = PQntuples(r) > 0;
    PQclear(r);
    return found ? JN_OK : JN_ERR_NOT_FOUND;
}
