/*
 * pg.c - libpq connections, a blocking pool, classified errors, bounded waits.
 *
 * Workload: a handful of threads per process each holding a connection for the length
 * of one short database step. A mutex and condition variable are enough; connections
 * are opened on first need and reset when libpq reports them broken.
 *
 * Pooled connections are non-blocking underneath: a query is sent, then its socket is
 * polled until the answer is complete or the pool's query deadline passes. The deadline
 * travels with the connection (libpq instance data), so jn_pg_exec needs no pool
 * argument. A connection whose deadline passed is shut down at the socket: libpq then
 * reads it as broken, and the pool discards it on release and opens a fresh one later.
 */
#include "store/pg.h"

#include <errno.h>
#include <libpq-events.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"

/* Keepalives: an idle connection to a peer that vanished is found within about a minute
 * (30 s idle, then 3 probes 10 s apart); unacknowledged data gives up after 30 s. */
#define KEEPALIVES_IDLE_S "30"
#define KEEPALIVES_INTERVAL_S "10"
#define KEEPALIVES_COUNT "3"
#define TCP_USER_TIMEOUT_MS "30000"

struct jn_pg_pool {
    char *url;
    char *application_name;
    jn_pg_options_t opts;
    long down_until_ms; /* monotonic; borrowing fails at once before it (atomic) */
    int opened;
    PGconn **idle;
    int idle_count;
    pthread_mutex_t lock;
    pthread_cond_t freed;
};

void jn_pg_options_default(jn_pg_options_t *opts, int size)
{
    opts->size = size;
    opts->connect_timeout_s = 5;
    opts->statement_timeout_ms = 10000;
    opts->lock_timeout_ms = 5000;
    opts->query_deadline_ms = 12000;
}

void jn_pg_options_from_config(const jn_config_t *cfg, jn_pg_options_t *opts)
{
    opts->size = cfg->pg_pool_size;
    opts->connect_timeout_s = cfg->pg_connect_timeout_s;
    opts->statement_timeout_ms = cfg->pg_statement_timeout_ms;
    opts->lock_timeout_ms = cfg->pg_lock_timeout_ms;
    opts->query_deadline_ms = cfg->pg_query_deadline_ms;
}

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

/* Attaches the pool to each of its connections (PGEVT_REGISTER), so query helpers find
 * the deadline, and where to report a server that stopped answering, from the PGconn
 * alone. */
static int pool_event(PGEventId id, void *info, void *pass_through)
{
    if (id == PGEVT_REGISTER) {
        PGEventRegister *r = info;
        PQsetInstanceData(r->conn, pool_event, pass_through);
    }
    return 1;
}

static jn_pg_pool_t *pool_of(const PGconn *conn)
{
    return PQinstanceData(conn, pool_event);
}

static int query_deadline_ms(const PGconn *conn)
{
    const jn_pg_pool_t *pool = pool_of(conn);
    return pool ? pool->opts.query_deadline_ms : 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* PostgreSQL just failed to answer (a missed deadline, a failed connection): for the next
 * JN_PG_DOWN_WINDOW_MS, borrowers fail at once instead of each waiting out their own
 * deadline; the first one after the window tries again. */
static void mark_down(jn_pg_pool_t *pool)
{
    if (pool)
        __atomic_store_n(&pool->down_until_ms, now_ms() + JN_PG_DOWN_WINDOW_MS, __ATOMIC_RELAXED);
}

/* Opens a connection; the limits of pool (NULL for none) become session settings and its
 * deadline. */
static PGconn *open_connection(const char *url, const char *application_name, jn_pg_pool_t *pool)
{
    const jn_pg_options_t *limits = pool ? &pool->opts : NULL;
    char timeout[16], options[128];
    snprintf(timeout, sizeof timeout, "%d", limits ? limits->connect_timeout_s : 5);
    const char *keys[] = {"dbname",
                          "connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          limits ? "options" : NULL,
                          NULL};
    const char *values[] = {url,
                            timeout,
                            application_name,
                            "1",
                            KEEPALIVES_IDLE_S,
                            KEEPALIVES_INTERVAL_S,
                            KEEPALIVES_COUNT,
                            TCP_USER_TIMEOUT_MS,
                            options,
                            NULL};
    if (limits)
        snprintf(options, sizeof options, "-c statement_timeout=%d -c lock_timeout=%d",
                 limits->statement_timeout_ms, limits->lock_timeout_ms);
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
    if (limits) {
        if (!PQregisterEventProc(conn, pool_event, "junction-pool", pool))
            abort();
        PQsetnonblocking(conn, 1);
    }
    return conn;
}

PGconn *jn_pg_connect(const char *url, const char *application_name)
{
    return open_connection(url, application_name, NULL);
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
    jn_pg_options_t opts;
    jn_pg_options_default(&opts, size);
    return jn_pg_pool_new_with(url, application_name, &opts);
}

jn_pg_pool_t *jn_pg_pool_new_with(const char *url, const char *application_name,
                                  const jn_pg_options_t *opts)
{
    jn_pg_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        abort();
    pool->url = strdup(url);
    pool->application_name = strdup(application_name);
    pool->opts = *opts;
    if (pool->opts.size < 1)
        pool->opts.size = 1;
    if (pool->opts.connect_timeout_s < 2)
        pool->opts.connect_timeout_s = 2; /* libpq treats less as 2 */
    pool->idle = calloc((size_t)pool->opts.size, sizeof *pool->idle);
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

    if (now_ms() < __atomic_load_n(&pool->down_until_ms, __ATOMIC_RELAXED)) {
        *err = JN_ERR_DB_UNAVAILABLE;
        return NULL;
    }
    pthread_mutex_lock(&pool->lock);
    while (pool->idle_count == 0 && pool->opened >= pool->opts.size) {
        if (pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&pool->lock);
            *err = JN_ERR_TIMEOUT;
            jn_log_warn("pg", "no free connection within %d ms (pool size %d)", timeout_ms,
                        pool->opts.size);
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

    bool reset_failed = false;
    if (conn && PQstatus(conn) != CONNECTION_OK) {
        PQreset(conn); /* bounded by connect_timeout; keeps the attached options */
        if (PQstatus(conn) != CONNECTION_OK) {
            /* A new connection would try the same server the same way: not twice. */
            jn_log_warn("pg", "cannot reconnect to PostgreSQL at %s:%s", PQhost(conn),
                        PQport(conn));
            PQfinish(conn);
            conn = NULL;
            reset_failed = true;
        } else {
            PQsetnonblocking(conn, 1);
        }
    }
    if (!conn && !reset_failed)
        conn = open_connection(pool->url, pool->application_name, pool);
    if (!conn) {
        mark_down(pool);
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

/* ---- sending a query and waiting for its answer, with a deadline ---- */

/* Waits until conn's socket is ready for events, or until the monotonic time until (0 =
 * no deadline). False when the deadline passed first. */
static bool wait_socket(PGconn *conn, short events, long until)
{
    for (;;) {
        int timeout = -1;
        if (until) {
            long left = until - now_ms();
            if (left <= 0)
                return false;
            timeout = (int)left;
        }
        struct pollfd p = {.fd = PQsocket(conn), .events = events};
        if (p.fd < 0)
            return true; /* libpq will report the broken connection */
        int n = poll(&p, 1, timeout);
        if (n > 0 || (n < 0 && errno != EINTR))
            return true;
    }
}

/* Gives up on a connection whose server does not answer: the socket is shut down, so
 * libpq reads end-of-file, marks the connection broken and ends the pending query. */
static void drop_connection(PGconn *conn)
{
    int fd = PQsocket(conn);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    PQconsumeInput(conn);
    PGresult *r;
    while ((r = PQgetResult(conn)))
        PQclear(r);
}

static bool result_failed(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
}

/* Gives up on a query whose answer did not come in time. */
static PGresult *expire(PGconn *conn, PGresult *keep, bool *expired)
{
    PQclear(keep);
    *expired = true;
    drop_connection(conn);
    mark_down(pool_of(conn));
    return NULL;
}

/* The deadline of a wait that starts now (0: none). */
static long deadline_from_now(PGconn *conn)
{
    int deadline = query_deadline_ms(conn);
    return deadline > 0 ? now_ms() + deadline : 0;
}

/* Sends sql (with params, or as a multi-statement script) and flushes it to the server.
 * False when libpq refused it, or (with *expired) when the server took nothing in time. */
static bool send_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                       bool script, bool *expired)
{
    *expired = false;
    int sent = script ? PQsendQuery(conn, sql)
                      : PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!sent)
        return false;
    long until = deadline_from_now(conn);
    while (PQflush(conn) == 1) {
        if (!wait_socket(conn, POLLIN | POLLOUT, until)) {
            expire(conn, NULL, expired);
            return false;
        }
        if (!PQconsumeInput(conn))
            break;
    }
    return true;
}

/* Collects the answer of the query in flight: the first failed result, else the last one;
 * NULL when nothing came (or, with *expired, when the deadline passed and the connection
 * was dropped). */
static PGresult *collect(PGconn *conn, bool *expired)
{
    *expired = false;
    long until = deadline_from_now(conn);
    PGresult *keep = NULL;
    for (;;) {
        while (PQisBusy(conn)) {
            if (!wait_socket(conn, POLLIN, until))
                return expire(conn, keep, expired);
            if (!PQconsumeInput(conn))
                break;
        }
        PGresult *r = PQgetResult(conn);
        if (!r)
            break;
        if (keep && result_failed(keep)) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
    }
    return keep;
}

/* Sends sql and collects its answer (see send_query and collect). */
static PGresult *run(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     bool script, bool *expired)
{
    if (!send_query(conn, sql, nparams, params, script, expired))
        return NULL;
    return collect(conn, expired);
}

static void log_expired(const char *sql, int deadline_ms)
{
    char head[48];
    snprintf(head, sizeof head, "%s", sql);
    for (char *p = head; *p; p++) {
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    }
    jn_log_warn("pg", "'%s...': no answer within %d ms; connection dropped", head, deadline_ms);
}

void jn_pg_release(jn_pg_pool_t *pool, PGconn *conn)
{
    if (!conn)
        return;
    /* A connection left inside a transaction (a handler bailed out) is rolled back so the
     * next borrower starts clean. */
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        bool expired;
        PQclear(run(conn, "ROLLBACK", 0, NULL, true, &expired));
        if (expired)
            log_expired("ROLLBACK", query_deadline_ms(conn));
    }
    pthread_mutex_lock(&pool->lock);
    if (pool->idle_count == pool->opts.size) {
        /* idle holds pool->opts.size connections, so this one was not lent by the pool (or is
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
    /* statement_timeout (57014, query_canceled) and lock_timeout (55P03): a bound set on
     * the session was reached; worth retrying later. */
    if (strcmp(state, "57014") == 0 || strcmp(state, "55P03") == 0)
        return JN_ERR_TIMEOUT;
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

/* Classifies, logs and hands out a collected answer as jn_pg_exec does. */
static jn_err_t answer(PGconn *conn, const char *sql, PGresult *res, bool expired, PGresult **out)
{
    if (out)
        *out = NULL;
    if (expired) {
        log_expired(sql, query_deadline_ms(conn));
        return JN_ERR_DB_UNAVAILABLE;
    }
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

jn_err_t jn_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                    PGresult **out)
{
    bool expired;
    PGresult *res = run(conn, sql, nparams, params, false, &expired);
    return answer(conn, sql, res, expired, out);
}

jn_err_t jn_pg_send(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    bool expired;
    if (send_query(conn, sql, nparams, params, false, &expired))
        return JN_OK;
    return answer(conn, sql, NULL, expired, NULL);
}

jn_err_t jn_pg_receive(PGconn *conn, const char *sql, PGresult **out)
{
    bool expired;
    PGresult *res = collect(conn, &expired);
    return answer(conn, sql, res, expired, out);
}

jn_err_t jn_pg_exec_script(PGconn *conn, const char *sql)
{
    bool expired;
    PGresult *res = run(conn, sql, 0, NULL, true, &expired);
    if (expired) {
        log_expired(sql, query_deadline_ms(conn));
        return JN_ERR_DB_UNAVAILABLE;
    }
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

/* Sends data as the input of the COPY that conn is in, then ends it, within until. False
 * when the deadline passed (the connection is dropped) or libpq refused. */
static bool copy_send(PGconn *conn, const char *data, size_t len, long until, bool *expired)
{
    size_t off = 0;
    while (off < len) {
        int chunk = len - off > 65536 ? 65536 : (int)(len - off);
        int put = PQputCopyData(conn, data + off, chunk);
        if (put < 0)
            return false;
        if (put == 0) { /* non-blocking and the buffer is full: wait until it drains */
            if (!wait_socket(conn, POLLOUT, until)) {
                *expired = true;
                return false;
            }
            continue;
        }
        off += (size_t)chunk;
    }
    int end;
    while ((end = PQputCopyEnd(conn, NULL)) == 0) {
        if (!wait_socket(conn, POLLOUT, until)) {
            *expired = true;
            return false;
        }
    }
    if (end < 0)
        return false;
    int flushed;
    while ((flushed = PQflush(conn)) == 1) {
        if (!wait_socket(conn, POLLIN | POLLOUT, until)) {
            *expired = true;
            return false;
        }
        if (!PQconsumeInput(conn))
            return false;
    }
    return flushed == 0;
}

jn_err_t jn_pg_copy_send(PGconn *conn, const char *sql, const void *data, size_t len)
{
    bool expired = false;
    if (!send_query(conn, sql, 0, NULL, false, &expired))
        return answer(conn, sql, NULL, expired, NULL);
    /* The server answers COPY_IN (or an error) before it takes the data. */
    long until = deadline_from_now(conn);
    for (;;) {
        while (PQisBusy(conn)) {
            if (!wait_socket(conn, POLLIN, until))
                return answer(conn, sql, expire(conn, NULL, &expired), true, NULL);
            if (!PQconsumeInput(conn))
                break;
        }
        PGresult *r = PQgetResult(conn);
        if (!r) /* the statement ended without asking for data */
            return answer(conn, sql, NULL, false, NULL);
        if (PQresultStatus(r) != PGRES_COPY_IN) {
            /* An error: drain what follows and report it. */
            PGresult *more;
            while ((more = PQgetResult(conn)))
                PQclear(more);
            return answer(conn, sql, r, false, NULL);
        }
        PQclear(r);
        break;
    }
    if (copy_send(conn, data, len, until, &expired))
        return JN_OK;
    if (expired) /* the connection may be mid-message: drop it */
        return answer(conn, sql, expire(conn, NULL, &expired), true, NULL);
    /* Sending failed half-way: end the COPY so that the server answers the error. */
    PQputCopyEnd(conn, "the input could not be sent");
    jn_err_t err = jn_pg_receive(conn, sql, NULL);
    return err ? err : JN_ERR_DB;
}

jn_err_t jn_pg_copy_in(PGconn *conn, const char *sql, const void *data, size_t len, long long *rows)
{
    if (rows)
        *rows = 0;
    jn_err_t err = jn_pg_copy_send(conn, sql, data, len);
    PGresult *r = NULL;
    if (!err)
        err = jn_pg_receive(conn, sql, &r);
    if (!err && rows)
        *rows = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return err;
}

char *jn_pg_text_array(const char *const *items, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += items[i] ? 2 * strlen(items[i]) + 3 : 5;
    char *out = malloc(cap), *p = out;
    if (!out)
        abort();
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        if (!items[i]) {
            memcpy(p, "NULL", 4);
            p += 4;
            continue;
        }
        *p++ = '"';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
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
