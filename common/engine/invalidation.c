/*
 * invalidation.c - one LISTEN connection, polled with a one-second tick.
 */
#include "engine/invalidation.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "store/pg.h"

#define CHANNEL "junction_invalidate"
#define ENV_RELOAD_S 30

#define MAX_EXTRA 4

typedef struct {
    char channel[64];
    void (*fn)(const char *payload, void *ud);
    void *ud;
} extra_t;

struct jn_invalidation {
    pthread_mutex_t lock;
    extra_t extra[MAX_EXTRA]; /* appended under lock; an entry never changes once counted */
    atomic_int extra_count;   /* read by the thread without the lock */
    char *database_url;
    char application_name[64];
    jn_env_cache_t *envs;
    jn_conn_cache_t *connections;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool listening;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void jn_invalidation_subscribe(jn_invalidation_t *inv, const char *channel,
                               void (*fn)(const char *payload, void *ud), void *ud)
{
    pthread_mutex_lock(&inv->lock);
    int n = atomic_load(&inv->extra_count);
    if (n < MAX_EXTRA) {
        extra_t *x = &inv->extra[n];
        snprintf(x->channel, sizeof x->channel, "%s", channel);
        x->fn = fn;
        x->ud = ud;
        atomic_store(&inv->extra_count, n + 1);
    } else {
        jn_log_error("invalidation", "too many channels; %s is not heard", channel);
    }
    pthread_mutex_unlock(&inv->lock);
}

/* LISTENs on the extra channels from index *listened on and tells their subscribers to
 * check (a gap may have passed). False when a LISTEN failed. */
static bool listen_extra(jn_invalidation_t *inv, PGconn *conn, int *listened)
{
    pthread_mutex_lock(&inv->lock);
    int n = atomic_load(&inv->extra_count);
    extra_t extra[MAX_EXTRA];
    memcpy(extra, inv->extra, sizeof extra);
    pthread_mutex_unlock(&inv->lock);
    for (int i = *listened; i < n; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "LISTEN %s", extra[i].channel);
        if (jn_pg_exec_script(conn, sql) != JN_OK)
            return false;
    }
    for (int i = *listened; i < n; i++)
        extra[i].fn(NULL, extra[i].ud);
    *listened = n;
    return true;
}

static bool dispatch_extra(jn_invalidation_t *inv, const PGnotify *note, int listened)
{
    for (int i = 0; i < listened; i++) {
        if (strcmp(inv->extra[i].channel, note->relname) == 0) {
            inv->extra[i].fn(note->extra, inv->extra[i].ud);
            return true;
        }
    }
    return false;
}

static void apply(jn_invalidation_t *inv, const char *payload)
{
    char table[64];
    long long env_id = 0, row_id = 0;
    if (sscanf(payload, "%63[a-z_]:%lld:%lld", table, &env_id, &row_id) != 3) {
        jn_log_warn("invalidation", "ignored a malformed change notice");
        return;
    }
    if (strcmp(table, "connections") == 0) {
        jn_conn_cache_invalidate_connection(inv->connections, row_id);
    } else if (strcmp(table, "environments") == 0) {
        jn_env_cache_reload(inv->envs);
        jn_conn_cache_invalidate_env(inv->connections, env_id);
    } else {
        jn_conn_cache_invalidate_env(inv->connections, env_id);
    }
}

/* Sleeps up to ms, waking early when asked to stop. */
static void nap(jn_invalidation_t *inv, int ms)
{
    for (int waited = 0; waited < ms && !atomic_load(&inv->stop); waited += 100) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void *listen_main(void *arg)
{
    jn_invalidation_t *inv = arg;
    int backoff_ms = 200;
    double last_reload = now_s();
    jn_metric_t *up = jn_metrics_gauge(
        "jn_cache_invalidation_listening",
        "1 while this process hears change notices (its caches are trusted)", NULL);
    while (!atomic_load(&inv->stop)) {
        PGconn *conn = jn_pg_connect(inv->database_url, inv->application_name);
        int listened = 0;
        if (!conn || jn_pg_exec_script(conn, "LISTEN " CHANNEL) != JN_OK ||
            !listen_extra(inv, conn, &listened)) {
            if (conn)
                PQfinish(conn);
            nap(inv, backoff_ms);
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
            continue;
        }
        backoff_ms = 200;
        /* Whatever changed while nobody listened is unknown: start afresh. */
        jn_env_cache_reload(inv->envs);
        jn_conn_cache_clear(inv->connections, false);
        jn_conn_cache_resume(inv->connections);
        atomic_store(&inv->listening, true);
        jn_metric_set(up, 1);
        last_reload = now_s();
        while (!atomic_load(&inv->stop)) {
            struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
            int n = poll(&p, 1, 1000);
            if (n < 0)
                continue;
            if (n > 0 && PQconsumeInput(conn) == 0)
                break;
            if (PQstatus(conn) != CONNECTION_OK)
                break;
            PGnotify *note;
            while ((note = PQnotifies(conn)) != NULL) {
                if (!dispatch_extra(inv, note, listened))
                    apply(inv, note->extra);
                PQfreemem(note);
            }
            /* Channels subscribed since the LISTEN was made. */
            if (atomic_load(&inv->extra_count) > listened && !listen_extra(inv, conn, &listened))
                break;
            if (now_s() - last_reload >= ENV_RELOAD_S) {
                jn_env_cache_reload(inv->envs);
                last_reload = now_s();
            }
        }
        atomic_store(&inv->listening, false);
        jn_metric_set(up, 0);
        PQfinish(conn);
        if (!atomic_load(&inv->stop)) {
            jn_log_warn("invalidation",
                        "lost the change-notice connection; caches are bypassed until it is back");
            jn_conn_cache_clear(inv->connections, true);
        }
    }
    return NULL;
}

jn_invalidation_t *jn_invalidation_start(const char *database_url, const char *application_name,
                                         jn_env_cache_t *envs, jn_conn_cache_t *connections)
{
    jn_invalidation_t *inv = calloc(1, sizeof *inv);
    if (!inv)
        abort();
    inv->database_url = strdup(database_url);
    if (!inv->database_url)
        abort();
    snprintf(inv->application_name, sizeof inv->application_name, "%s-listen", application_name);
    inv->envs = envs;
    inv->connections = connections;
    pthread_mutex_init(&inv->lock, NULL);
    /* Until the first LISTEN, nothing is cached. */
    jn_conn_cache_clear(connections, true);
    if (pthread_create(&inv->thread, NULL, listen_main, inv) != 0)
        abort();
    pthread_setname_np(inv->thread, "jn-listen");
    return inv;
}

bool jn_invalidation_listening(jn_invalidation_t *inv)
{
    return atomic_load(&inv->listening);
}

void jn_invalidation_stop(jn_invalidation_t *inv)
{
    if (!inv)
        return;
    atomic_store(&inv->stop, true);
    pthread_join(inv->thread, NULL);
    free(inv->database_url);
    free(inv);
}
