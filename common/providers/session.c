/*
 * session.c - opening a connection for provider calls (memory first, then PostgreSQL on
 * the task pool), refreshing credentials, and calling through provider_http.
 *
 * Every database step runs where blocking is allowed (a task pool thread, or the caller's
 * own thread for the blocking forms) and hands its result back to the loop with
 * jn_loop_post(). The session keeps each cache entry it has used until it is closed,
 * because calls started with an entry borrow its credentials and definition.
 */
#include "providers/session.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "providers/custom_providers.h"
#include "providers/refresh.h"
#include "providers/token_refresh.h"

#define DB_WAIT_MS 5000

struct jn_session {
    jn_session_deps_t d;
    jn_environment_t env;
    atomic_int refs;
    pthread_mutex_t lock;
    jn_conn_entry_t *entry; /* current */
    jn_conn_entry_t **held; /* every entry used, released at close */
    size_t held_count, held_cap;
};

static jn_session_t *session_new(const jn_session_deps_t *deps, const jn_environment_t *env,
                                 jn_conn_entry_t *entry)
{
    jn_session_t *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->d = *deps;
    s->env = *env;
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    s->entry = entry;
    return s;
}

static void session_unref(jn_session_t *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    jn_conn_entry_unref(s->entry);
    for (size_t i = 0; i < s->held_count; i++)
        jn_conn_entry_unref(s->held[i]);
    free(s->held);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void jn_session_close(jn_session_t *s)
{
    if (s)
        session_unref(s);
}

/* Makes e the current entry; the previous one is kept for calls that still use it. */
static void session_swap(jn_session_t *s, jn_conn_entry_t *e)
{
    pthread_mutex_lock(&s->lock);
    if (s->held_count == s->held_cap) {
        s->held_cap = s->held_cap ? s->held_cap * 2 : 4;
        s->held = realloc(s->held, s->held_cap * sizeof *s->held);
        if (!s->held)
            abort();
    }
    s->held[s->held_count++] = s->entry;
    s->entry = e;
    pthread_mutex_unlock(&s->lock);
}

static jn_conn_entry_t *current_entry(jn_session_t *s)
{
    pthread_mutex_lock(&s->lock);
    jn_conn_entry_t *e = s->entry;
    pthread_mutex_unlock(&s->lock);
    return e;
}

const jn_connection_t *jn_session_connection(const jn_session_t *s)
{
    return &current_entry((jn_session_t *)s)->conn;
}

json_object *jn_session_provider(const jn_session_t *s)
{
    return current_entry((jn_session_t *)s)->provider;
}

const jn_environment_t *jn_session_environment(const jn_session_t *s)
{
    return &s->env;
}

/* ---- loading (blocking) ---- */

/* The provider's definition for an entry: the catalog's own (borrowed) or, for a custom
 * provider, a private copy. */
static jn_err_t provider_for(const jn_session_deps_t *d, PGconn *conn, long long env_id,
                             const char *name, json_object **out, bool *owned)
{
    json_object *builtin = jn_catalog_get(d->catalog, name);
    if (builtin) {
        *out = builtin;
        *owned = false;
        return JN_OK;
    }
    *owned = true;
    return jn_providers_lookup(d->catalog, conn, env_id, name, out);
}

/* Whether an entry's token expires within the provider's margin now: its expiry was
 * measured by PostgreSQL's clock when the entry was read, and time has passed since. */
static bool entry_expiring(const jn_conn_entry_t *e)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    jn_connection_t c = e->conn; /* a shallow view: nothing is freed through it */
    if (c.expires_at_unix > 0)
        c.expires_in_s -= (double)(now_ms - e->loaded_ms) / 1000.0;
    return jn_token_expiring(&c, e->provider);
}

/* Reads the connection (by key, or by row id) and its provider's definition, with a pool
 * connection held only for the reads. */
static jn_err_t read_connection(const jn_session_deps_t *d, const jn_environment_t *env,
                                const char *pck, const char *cid, long long row_id,
                                jn_connection_t *c, json_object **provider, bool *owned, char *why,
                                size_t why_len)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(d->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable; retry shortly");
        return err;
    }
    if (row_id)
        err = jn_connections_get_by_id(conn, d->keyring, row_id, true, c);
    else
        err = jn_connections_get(conn, d->keyring, env->id, pck, cid, true, c);
    if (err) {
        jn_pg_release(d->pg, conn);
        if (err == JN_ERR_NOT_FOUND)
            snprintf(why, why_len, "connection '%s' of integration '%s' was not found",
                     cid ? cid : "?", pck ? pck : "?");
        else
            snprintf(why, why_len, "the connection could not be read (%s)", jn_err_str(err));
        return err;
    }
    err = provider_for(d, conn, env->id, c->provider, provider, owned);
    jn_pg_release(d->pg, conn);
    if (err) {
        snprintf(why, why_len, "the integration's provider '%s' was not found", c->provider);
        jn_connection_cleanup(c);
    }
    return err;
}

/* The provider's definition for a new entry made from old's connection: the catalog's,
 * or a private copy of old's own. */
static json_object *provider_like(const jn_conn_entry_t *old, bool *owned)
{
    *owned = old->provider_owned;
    if (!old->provider_owned)
        return old->provider;
    json_object *copy = NULL;
    if (json_object_deep_copy(old->provider, &copy, NULL) != 0)
        abort();
    return copy;
}

/* The blocking form, for threads that may wait (scripts): reads, refreshes credentials
 * about to expire, caches. */
static jn_err_t load_entry_sync(const jn_session_deps_t *d, const jn_environment_t *env,
                                const char *pck, const char *cid, long long row_id,
                                jn_conn_entry_t **out, char *why, size_t why_len)
{
    *out = NULL;
    uint64_t epoch = jn_conn_cache_epoch(d->cache);
    jn_connection_t c;
    json_object *provider = NULL;
    bool owned = false;
    jn_err_t err = read_connection(d, env, pck, cid, row_id, &c, &provider, &owned, why, why_len);
    if (err)
        return err;
    if (jn_token_expiring(&c, provider)) {
        jn_connection_t fresh;
        char rwhy[512];
        /* A failed refresh keeps the old credentials: the provider then decides. */
        if (jn_token_refresh(d->pg, d->keyring, d->catalog, c.id, false, c.refresh_seq, &fresh,
                             rwhy, sizeof rwhy) == JN_OK) {
            jn_connection_cleanup(&c);
            c = fresh;
        } else {
            jn_log_info("session", "connection %lld: credential refresh failed: %s", c.id, rwhy);
        }
    }
    jn_conn_entry_t *e = jn_conn_entry_new(env->id, &c, provider, owned);
    jn_conn_cache_put(d->cache, e, epoch);
    *out = e;
    return JN_OK;
}

/* ---- opening ---- */

typedef struct {
    jn_session_deps_t d;
    jn_environment_t env;
    char *pck, *cid;
    jn_session_open_fn done;
    void *ud;
    uint64_t epoch;
    jn_connection_t c;
    json_object *provider;
    bool owned;
    jn_err_t err;
    char why[512];
} open_job_t;

static void open_job_free(open_job_t *j)
{
    free(j->pck);
    free(j->cid);
    free(j);
}

/* Makes the entry, caches it, and opens the session. */
static void open_complete(open_job_t *j)
{
    jn_conn_entry_t *e = jn_conn_entry_new(j->env.id, &j->c, j->provider, j->owned);
    jn_conn_cache_put(j->d.cache, e, j->epoch);
    j->done(session_new(&j->d, &j->env, e), JN_OK, NULL, j->ud);
    open_job_free(j);
}

static void open_refreshed(jn_err_t err, jn_connection_t *c, const char *why, void *ud)
{
    open_job_t *j = ud;
    if (err) {
        /* A failed refresh keeps the old credentials: the provider then decides. */
        jn_log_info("session", "connection %lld: credential refresh failed: %s", j->c.id, why);
    } else {
        jn_connection_cleanup(&j->c);
        j->c = *c;
        memset(c, 0, sizeof *c);
    }
    open_complete(j);
}

static void open_read_on_loop(void *ud)
{
    open_job_t *j = ud;
    if (j->err) {
        j->done(NULL, j->err, j->why, j->ud);
        open_job_free(j);
        return;
    }
    if (jn_token_expiring(&j->c, j->provider)) {
        jn_refresh_start(&j->d, j->env.id, j->env.egress, j->c.id, false, j->c.refresh_seq,
                         open_refreshed, j);
        return;
    }
    open_complete(j);
}

static void open_on_pool(void *ud)
{
    open_job_t *j = ud;
    j->epoch = jn_conn_cache_epoch(j->d.cache);
    j->err = read_connection(&j->d, &j->env, j->pck, j->cid, 0, &j->c, &j->provider, &j->owned,
                             j->why, sizeof j->why);
    jn_loop_post(jn_provider_http_loop(j->d.http), open_read_on_loop, j);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

void jn_session_open(const jn_session_deps_t *deps, const jn_environment_t *env,
                     const char *provider_config_key, const char *connection_id,
                     jn_session_open_fn done, void *ud)
{
    jn_conn_entry_t *e =
        jn_conn_cache_get(deps->cache, env->id, provider_config_key, connection_id);
    if (e && !entry_expiring(e)) {
        done(session_new(deps, env, e), JN_OK, NULL, ud);
        return;
    }
    jn_conn_entry_unref(e);
    open_job_t *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    j->d = *deps;
    j->env = *env;
    j->pck = xstrdup(provider_config_key);
    j->cid = xstrdup(connection_id);
    j->done = done;
    j->ud = ud;
    if (jn_taskpool_submit(deps->tasks, open_on_pool, j) != JN_OK) {
        open_job_free(j);
        done(NULL, JN_ERR_BUSY, "the server is overloaded; retry shortly", ud);
    }
}

jn_err_t jn_session_open_sync(const jn_session_deps_t *deps, const jn_environment_t *env,
                              const char *provider_config_key, const char *connection_id,
                              jn_session_t **out, char *why, size_t why_len)
{
    *out = NULL;
    jn_conn_entry_t *e =
        jn_conn_cache_get(deps->cache, env->id, provider_config_key, connection_id);
    if (e && entry_expiring(e)) {
        jn_conn_entry_unref(e);
        e = NULL;
    }
    if (!e) {
        jn_err_t err =
            load_entry_sync(deps, env, provider_config_key, connection_id, 0, &e, why, why_len);
        if (err)
            return err;
    }
    *out = session_new(deps, env, e);
    return JN_OK;
}

/* ---- refreshing after a 401 ---- */

typedef struct {
    jn_session_t *s;
    jn_provider_stream_t *stream;
    jn_provider_refresh_done_fn done;
    uint64_t epoch;
} refresh_job_t;

static json_object *copy_credentials(const jn_conn_entry_t *e)
{
    json_object *copy = NULL;
    if (e->conn.credentials && json_object_deep_copy(e->conn.credentials, &copy, NULL) != 0)
        abort();
    return copy;
}

static void refreshed_after_401(jn_err_t err, jn_connection_t *c, const char *why, void *ud)
{
    refresh_job_t *j = ud;
    json_object *creds = NULL;
    jn_conn_entry_t *old = current_entry(j->s);
    if (err) {
        jn_log_info("session", "connection %lld: refresh after a 401 failed: %s", old->conn.id,
                    why);
    } else {
        bool owned;
        json_object *provider = provider_like(old, &owned);
        jn_conn_entry_t *fresh = jn_conn_entry_new(j->s->env.id, c, provider, owned);
        jn_conn_cache_put(j->s->d.cache, fresh, j->epoch);
        creds = copy_credentials(fresh);
        session_swap(j->s, fresh);
    }
    j->done(j->stream, creds);
    session_unref(j->s);
    free(j);
}

static bool is_oauth(const jn_connection_t *c)
{
    return c->credentials_type && (strcmp(c->credentials_type, "OAUTH2") == 0 ||
                                   strcmp(c->credentials_type, "OAUTH2_CC") == 0);
}

/* Forced, but relative to the refused credentials: if anyone (another process) stored
 * newer ones since they were read, those are taken without asking the provider. */
static void refresh_after_401(void *ud, jn_provider_stream_t *stream,
                              jn_provider_refresh_done_fn done)
{
    jn_session_t *s = ud;
    refresh_job_t *j = calloc(1, sizeof *j);
    if (!j)
        abort();
    atomic_fetch_add(&s->refs, 1);
    *j = (refresh_job_t){s, stream, done, jn_conn_cache_epoch(s->d.cache)};
    jn_conn_entry_t *old = current_entry(s);
    jn_refresh_start(&s->d, s->env.id, s->env.egress, old->conn.id, true, old->conn.refresh_seq,
                     refreshed_after_401, j);
}

/* ---- calling ---- */

static void fill_call(jn_session_t *s, const jn_conn_entry_t *e, const jn_provider_call_t *call,
                      jn_provider_call_t *out, jn_provider_target_t *target)
{
    *out = *call;
    out->egress = s->env.egress;
    out->refresh = is_oauth(&e->conn) && !call->anonymous ? refresh_after_401 : NULL;
    out->refresh_ud = s;
    *target = (jn_provider_target_t){e->conn.provider, e->provider,
                                     call->anonymous ? NULL : e->conn.credentials,
                                     e->conn.connection_config};
}

void jn_session_call(jn_session_t *s, const jn_provider_call_t *call, jn_provider_head_fn on_head,
                     void *ud, jn_provider_stream_t **out)
{
    jn_conn_entry_t *e = current_entry(s);
    jn_provider_call_t c;
    jn_provider_target_t target;
    fill_call(s, e, call, &c, &target);
    jn_provider_start(s->d.http, s->env.id, &target, &c, on_head, ud, out);
}

jn_err_t jn_session_fetch(jn_session_t *s, const jn_provider_call_t *call, size_t max_body,
                          jn_provider_response_t *out, char *why, size_t why_len)
{
    jn_conn_entry_t *e = current_entry(s);
    if (entry_expiring(e)) {
        jn_conn_entry_t *fresh = NULL;
        char rwhy[512];
        if (load_entry_sync(&s->d, &s->env, NULL, NULL, e->conn.id, &fresh, rwhy, sizeof rwhy) ==
            JN_OK) {
            session_swap(s, fresh);
            e = fresh;
        }
    }
    jn_provider_call_t c;
    jn_provider_target_t target;
    fill_call(s, e, call, &c, &target);
    return jn_provider_fetch(s->d.http, s->env.id, &target, &c, max_body, out, why, why_len);
}
