/*
 * runner.c - claim, run, finish; and the lease keeper (see the header).
 */
#include "runner.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "delivery.h"
#include "host.h"
#include "net/job_message.h"
#include "scripts/limits.h"
#include "store/functions.h"
#include "store/jobs.h"
#include "store/syncs.h"
#include "store/webhooks.h"
#include "webhook_run.h"

#define DB_WAIT_MS 5000
/* How long a finished run keeps its outcome while PostgreSQL is away. */
#define OUTCOME_RETRY_MS 60000

/* A run in progress, for the lease keeper. */
typedef struct active {
    struct active *next;
    char id[37];
    long long token;
    atomic_bool lost; /* the lease could not be renewed: someone else has the job */
} active_t;

struct jn_runner {
    jn_engine_t *e;
    pthread_t keeper;
    atomic_bool stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    active_t *active;
    bool renewing;          /* the keeper holds pointers into active without the lock */
    pthread_cond_t renewed; /* signalled when renewing turns false */
};

/* ---- the lease keeper ---- */

static void *keeper_main(void *arg)
{
    jn_runner_t *r = arg;
    int lease_s = r->e->config.job_lease_s;
    /* Renew well before expiry: three chances per lease. */
    int every_ms = lease_s * 1000 / 3;
    pthread_mutex_lock(&r->lock);
    while (!atomic_load(&r->stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += every_ms / 1000;
        until.tv_nsec += (long)(every_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->wake, &r->lock, &until);
        if (atomic_load(&r->stopping))
            break;
        /* Copy what to renew, then renew without the lock (each is a round trip). */
        size_t n = 0;
        for (active_t *a = r->active; a; a = a->next)
            n++;
        active_t **list = calloc(n + 1, sizeof *list);
        if (!list)
            abort();
        size_t k = 0;
        for (active_t *a = r->active; a; a = a->next)
            list[k++] = a;
        r->renewing = true;
        pthread_mutex_unlock(&r->lock);
        jn_err_t err;
        PGconn *conn = k ? jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err) : NULL;
        for (size_t i = 0; conn && i < k; i++) {
            err = jn_jobs_heartbeat(conn, list[i]->id, list[i]->token, lease_s);
            if (err == JN_ERR_CONFLICT) {
                jn_log_warn("runner", "job %s: the lease was lost; the run stops", list[i]->id);
                atomic_store(&list[i]->lost, true);
            }
        }
        if (conn)
            jn_pg_release(r->e->pg, conn);
        pthread_mutex_lock(&r->lock);
        r->renewing = false;
        pthread_cond_broadcast(&r->renewed);
        free(list);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void track(jn_runner_t *r, active_t *a)
{
    pthread_mutex_lock(&r->lock);
    a->next = r->active;
    r->active = a;
    pthread_mutex_unlock(&r->lock);
}

static void untrack(jn_runner_t *r, active_t *a)
{
    pthread_mutex_lock(&r->lock);
    for (active_t **pp = &r->active; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    }
    /* The keeper may be renewing a's lease from its copy of the list: a is freed after. */
    while (r->renewing)
        pthread_cond_wait(&r->renewed, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

jn_runner_t *jn_runner_new(jn_engine_t *engine)
{
    jn_runner_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->e = engine;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->renewed, NULL);
    pthread_create(&r->keeper, NULL, keeper_main, r);
    pthread_setname_np(r->keeper, "jn-lease");
    return r;
}

void jn_runner_free(jn_runner_t *r)
{
    if (!r)
        return;
    atomic_store(&r->stopping, true);
    pthread_mutex_lock(&r->lock);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->keeper, NULL);
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->renewed);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* ---- one run ---- */

static int retry_delay_s(int attempts)
{
    int d = 1;
    for (int i = 1; i < attempts && d < 60; i++)
        d *= 2;
    unsigned jitter;
    jn_crypto_random(&jitter, sizeof jitter);
    return (d > 60 ? 60 : d) + (int)(jitter % 3);
}

/* jn_jobs_finish; for an action called with X-Async whose outcome is final, its
 * async_action webhook too, in the same transaction (a webhook that cannot be written is
 * logged and the outcome stored all the same). */
static jn_err_t finish_job(PGconn *conn, const jn_job_t *job, jn_job_outcome_t outcome,
                           json_object *result, bool retryable, int delay_s, bool *requeued,
                           jn_webhook_jobs_t *hooks)
{
    if (!job->async)
        return jn_jobs_finish(conn, job->id, job->lease_token, outcome, result, retryable, delay_s,
                              requeued);
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (!err)
        err = jn_jobs_finish(conn, job->id, job->lease_token, outcome, result, retryable, delay_s,
                             requeued);
    if (!err && !*requeued) {
        jn_err_t werr = jn_pg_exec_script(conn, "SAVEPOINT async_webhook");
        if (!werr)
            werr = jn_webhooks_enqueue_async_action(conn, job->environment_id, job->connection_id,
                                                    job->id, hooks);
        if (werr) {
            jn_log_warn("runner", "job %s: its async_action webhook was not written (%s)", job->id,
                        jn_err_str(werr));
            jn_pg_exec_script(conn, "ROLLBACK TO SAVEPOINT async_webhook");
            memset(hooks, 0, sizeof *hooks);
        }
    }
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        memset(hooks, 0, sizeof *hooks);
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

/* Stores the outcome, fenced. */
/* Sleeps ms in short naps; false as soon as the runner stops or the drain deadline passed
 * (drain may be NULL). */
static bool nap_unless_stopped(jn_runner_t *r, const atomic_bool *drain, int ms)
{
    for (int slept = 0; slept < ms; slept += 50) {
        if (atomic_load(&r->stopping) || (drain && atomic_load(drain)))
            return false;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* Stores the run's outcome. While PostgreSQL is away the outcome is kept and stored when it
 * is back, for up to OUTCOME_RETRY_MS: the write is fenced by the lease token, so a
 * successor that claimed the job meanwhile wins, and a run that already happened is not
 * repeated for want of a row. Past that, or once the worker is past its drain deadline,
 * the lease runs out and the recovery sends the job again. */
static void finish(jn_runner_t *r, const jn_job_t *job, jn_job_outcome_t outcome,
                   json_object *result, bool retryable, const atomic_bool *drain)
{
    jn_err_t err;
    bool requeued = false;
    jn_webhook_jobs_t hooks = {0};
    for (int waited_ms = 0, backoff_ms = 100;; waited_ms += backoff_ms) {
        PGconn *conn = jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err);
        if (conn) {
            memset(&hooks, 0, sizeof hooks);
            err = finish_job(conn, job, outcome, result, retryable, retry_delay_s(job->attempts),
                             &requeued, &hooks);
            jn_pg_release(r->e->pg, conn);
        }
        if (err != JN_ERR_DB_UNAVAILABLE || waited_ms >= OUTCOME_RETRY_MS)
            break;
        if (waited_ms == 0)
            jn_log_warn("runner", "job %s: PostgreSQL is away; its outcome waits to be stored",
                        job->id);
        if (!nap_unless_stopped(r, drain, backoff_ms))
            break;
        backoff_ms = backoff_ms < 2000 ? backoff_ms * 2 : 2000;
    }
    if (!err)
        jn_job_message_send_all(r->e->producer, r->e->config.topic_prefix, hooks.jobs, hooks.count);
    if (err == JN_ERR_CONFLICT)
        jn_log_warn("runner", "job %s: another worker took the job over; this outcome is dropped",
                    job->id);
    else if (err)
        jn_log_error("runner",
                     "job %s: the outcome could not be stored (%s); the job runs again after "
                     "its lease",
                     job->id, jn_err_str(err));
    else if (requeued)
        jn_log_info("runner", "job %s: attempt %d of %d failed; it runs again later", job->id,
                    job->attempts, job->max_attempts);
}

/* Gives the job back untouched (the worker stops before it is done). */
static void give_back(jn_runner_t *r, const jn_job_t *job)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err);
    if (conn) {
        err = jn_jobs_release(conn, job->id, job->lease_token);
        jn_pg_release(r->e->pg, conn);
    }
    /* Its message again, so that the group's next owner of the partition runs it at once
     * (the scheduler's resend would, later, if this one is lost). */
    if (!err) {
        jn_job_ref_t ref = {.environment_id = job->environment_id,
                            .kind = job->kind,
                            .connection_id = job->connection_id};
        memcpy(ref.id, job->id, sizeof ref.id);
        jn_job_message_send(r->e->producer, r->e->config.topic_prefix, &ref);
    }
    jn_log_info("runner", "job %s given back (%s)", job->id, err ? jn_err_str(err) : "queued");
}

/* A failure before the script ran (its connection or function is gone): not retried. */
static void fail_setup(jn_runner_t *r, const jn_job_t *job, int status, const char *code,
                       const char *message)
{
    json_object *body = json_object_new_object();
    json_object *error = json_object_new_object();
    json_object_object_add(error, "code", json_object_new_string(code));
    json_object_object_add(error, "message", json_object_new_string(message));
    json_object_object_add(body, "error", error);
    json_object *result = json_object_new_object();
    json_object_object_add(result, "status", json_object_new_int(status));
    json_object_object_add(result, "body", body);
    finish(r, job, JN_JOB_OUTCOME_FAILED, result, false, NULL);
    json_object_put(result);
}

/* The connection's keys: its integration's unique key and its connection id, as the
 * claim read them. JN_ERR_NOT_FOUND when the connection is gone. */
static jn_err_t connection_keys(const jn_job_t *job, char **pck, char **cid)
{
    if (!job->integration_key || !job->connection_key)
        return JN_ERR_NOT_FOUND;
    *pck = strdup(job->integration_key);
    *cid = strdup(job->connection_key);
    if (!*pck || !*cid)
        abort();
    return JN_OK;
}

static jn_err_t load_function(jn_runner_t *r, long long env_id, const char *pck, const char *name,
                              jn_function_t *fn)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err);
    if (!conn)
        return err;
    err = jn_functions_get(conn, env_id, pck, name, true, fn);
    jn_pg_release(r->e->pg, conn);
    return err;
}

static void run_action(jn_runner_t *r, const jn_job_t *job, const atomic_bool *drain,
                       active_t *active)
{
    jn_environment_t env;
    char *pck = NULL, *cid = NULL;
    jn_err_t err = jn_env_cache_get(r->e->envs, job->environment_id, &env);
    if (err == JN_OK)
        err = connection_keys(job, &pck, &cid);
    if (err == JN_ERR_NOT_FOUND) {
        fail_setup(r, job, 404, "unknown_connection", "the connection no longer exists");
        goto out;
    }
    if (err) {
        give_back(r, job); /* the database is away: try again later */
        goto out;
    }
    jn_function_t fn;
    err = load_function(r, env.id, pck, job->function_name, &fn);
    if (err == JN_ERR_NOT_FOUND) {
        char message[256];
        snprintf(message, sizeof message, "action '%.64s' is not deployed to integration '%.64s'",
                 job->function_name, pck);
        fail_setup(r, job, 404, "unknown_action", message);
        goto out;
    }
    if (err) {
        give_back(r, job);
        goto out;
    }
    jn_session_t *session = NULL;
    char why[512];
    err = jn_session_open_sync(&r->e->sessions, &env, pck, cid, &session, why, sizeof why);
    if (err) {
        if (err == JN_ERR_NOT_FOUND)
            fail_setup(r, job, 404, "unknown_connection", why);
        else
            give_back(r, job);
        jn_function_cleanup(&fn);
        goto out;
    }
    /* Host calls end at once when the worker drains past its deadline or the lease is
     * lost. */
    jn_worker_host_t wh = {.engine = r->e,
                           .session = session,
                           .job_id = job->id,
                           .stop = drain,
                           .lost = &active->lost,
                           .journal = true,
                           .lease_token = job->lease_token,
                           /* Only a run that took the job over has a journal to read. */
                           .journal_replaying = job->lease_token > 1};
    jn_script_host_t host;
    jn_worker_host_init(&wh, &host);
    const jn_connection_t *c = jn_session_connection(session);
    jn_script_run_info_t info = {.connection_id = c->connection_id,
                                 .provider_config_key = c->provider_config_key,
                                 .provider = c->provider,
                                 .base_url = wh.base_url[0] ? wh.base_url : NULL,
                                 .stop = drain,
                                 .lost = &active->lost};
    jn_script_source_t src = {fn.name, fn.source, strlen(fn.source)};
    jn_sandbox_limits_t limits = jn_script_limits_for(env.script_limits, JN_LIMITS_ACTION);
    jn_script_outcome_t outcome = {0};
    jn_script_status_t status =
        jn_script_run_action(&src, job->input, &host, &info, &limits, &outcome);
    if (atomic_load(&active->lost)) {
        /* Someone else runs this job now: its outcome is theirs to store. */
    } else if (atomic_load(drain) && status != JN_SCRIPT_OK) {
        give_back(r, job);
    } else if (status == JN_SCRIPT_OK) {
        finish(r, job, JN_JOB_OUTCOME_SUCCEEDED,
               outcome.output ? outcome.output : json_object_new_null(), false, drain);
    } else {
        int http_status = 500;
        json_object *body = jn_script_outcome_error_json(&outcome, &http_status);
        json_object *result = json_object_new_object();
        json_object_object_add(result, "status", json_object_new_int(http_status));
        json_object_object_add(result, "body", body);
        bool retryable = status != JN_SCRIPT_INVALID_INPUT;
        finish(r, job, JN_JOB_OUTCOME_FAILED, result, retryable, drain);
        json_object_put(result);
    }
    jn_log_info("runner", "job %s: action %s on %s/%s: %s in %lld ms", job->id, fn.name, pck, cid,
                jn_script_status_str(status), (long long)outcome.duration_ms);
    jn_script_outcome_cleanup(&outcome);
    jn_session_close(session);
    jn_function_cleanup(&fn);
out:
    free(pck);
    free(cid);
}

/* ---- sync runs ---- */

/* What the end of a sync run enqueues to the app, inside the run's last transaction. */
typedef struct {
    const jn_job_t *job;
    const char *pck, *cid;
    long long connection_row;
    const jn_script_outcome_t *outcome;
    jn_job_ref_t jobs[64]; /* delivery jobs to send once committed */
    size_t count;
} sync_hooks_t;

static jn_err_t enqueue_sync_webhooks(PGconn *conn, const jn_sync_run_t *run, json_object *result,
                                      json_object *error, void *ud)
{
    sync_hooks_t *h = ud;
    char failed_at[40] = "";
    if (error) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(failed_at, sizeof failed_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    for (size_t i = 0; i < run->model_count; i++) {
        jn_webhook_sync_t w = {
            .connection_id = h->cid,
            .provider_config_key = h->pck,
            .sync_name = run->name,
            .sync_variant = run->variant,
            .model = run->models[i],
            .sync_type = run->last_sync_date[0] ? "INCREMENTAL" : "INITIAL",
            .success = error == NULL,
            .modified_after = h->job->started_at,
        };
        if (result) {
            json_object *m = NULL, *v = NULL;
            json_object_object_get_ex(result, run->models[i], &m);
            if (m && json_object_object_get_ex(m, "added", &v))
                w.added = json_object_get_int64(v);
            if (m && json_object_object_get_ex(m, "updated", &v))
                w.updated = json_object_get_int64(v);
            if (m && json_object_object_get_ex(m, "deleted", &v))
                w.deleted = json_object_get_int64(v);
        } else {
            w.error_type = json_object_get_string(json_object_object_get(error, "type"));
            w.error_description = json_object_get_string(json_object_object_get(error, "message"));
            w.started_at = h->job->started_at;
            w.failed_at = failed_at;
        }
        jn_webhook_jobs_t jobs = {0};
        jn_err_t err =
            jn_webhooks_enqueue_sync(conn, h->job->environment_id, h->connection_row, &w, &jobs);
        if (err)
            return err;
        for (size_t k = 0; k < jobs.count && h->count < sizeof h->jobs / sizeof h->jobs[0]; k++)
            h->jobs[h->count++] = jobs.jobs[k];
    }
    return JN_OK;
}

/* Ends a sync run, fenced: its result (or error) and its webhooks commit together. */
static void end_sync_run(jn_runner_t *r, const jn_job_t *job, const jn_sync_run_t *run,
                         sync_hooks_t *hooks, json_object *error)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err);
    if (!conn) {
        /* The lease runs out; the run is taken over and ends then. */
        jn_log_error("runner", "job %s: the sync run's end could not be stored (%s)", job->id,
                     jn_err_str(err));
        return;
    }
    json_object *result = NULL;
    err = error ? jn_syncs_run_fail_with(conn, run, error, enqueue_sync_webhooks, hooks)
                : jn_syncs_run_succeed_with(conn, run, enqueue_sync_webhooks, hooks, &result);
    jn_pg_release(r->e->pg, conn);
    if (err == JN_ERR_CONFLICT)
        jn_log_warn("runner",
                    "job %s: the sync run is no longer this worker's; its end is "
                    "dropped",
                    job->id);
    else if (err)
        jn_log_error("runner", "job %s: the sync run's end could not be stored (%s)", job->id,
                     jn_err_str(err));
    else
        jn_job_message_send_all(r->e->producer, r->e->config.topic_prefix, hooks->jobs,
                                hooks->count);
    if (result)
        jn_log_info("runner", "job %s: sync %s result %s", job->id, run->name,
                    json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
    json_object_put(result);
}

static json_object *sync_error(const char *type, const char *message)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_add(e, "message", json_object_new_string(message));
    return e;
}

static void run_sync(jn_runner_t *r, const jn_job_t *job, const atomic_bool *drain,
                     active_t *active)
{
    jn_environment_t env;
    char *pck = NULL, *cid = NULL;
    jn_sync_run_t run = {0};
    bool begun = false;
    jn_err_t err = jn_env_cache_get(r->e->envs, job->environment_id, &env);
    if (!err)
        err = connection_keys(job, &pck, &cid);
    if (!err) {
        PGconn *conn = jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err);
        if (conn) {
            err = jn_syncs_run_begin(conn, env.id, job->id, job->lease_token, &run);
            jn_pg_release(r->e->pg, conn);
            begun = err == JN_OK;
        }
    }
    if (err == JN_ERR_CONFLICT || err == JN_ERR_NOT_FOUND) {
        /* Cancelled, superseded, or its connection is gone: nothing to run. */
        jn_log_info("runner", "job %s: the sync run is no longer wanted (%s)", job->id,
                    jn_err_str(err));
        goto out;
    }
    if (err) {
        give_back(r, job);
        goto out;
    }
    sync_hooks_t hooks = {.job = job, .pck = pck, .cid = cid, .connection_row = job->connection_id};
    jn_function_t fn;
    err = load_function(r, env.id, pck, job->function_name, &fn);
    if (err) {
        if (err == JN_ERR_NOT_FOUND) {
            json_object *e = sync_error("script_error", "the sync's script is not deployed");
            end_sync_run(r, job, &run, &hooks, e);
            json_object_put(e);
        } else {
            give_back(r, job);
        }
        goto out;
    }
    jn_session_t *session = NULL;
    char why[512];
    err = jn_session_open_sync(&r->e->sessions, &env, pck, cid, &session, why, sizeof why);
    if (err) {
        if (err == JN_ERR_NOT_FOUND) {
            json_object *e = sync_error("script_error", why);
            end_sync_run(r, job, &run, &hooks, e);
            json_object_put(e);
        } else {
            give_back(r, job);
        }
        jn_function_cleanup(&fn);
        goto out;
    }
    jn_worker_host_t wh = {.engine = r->e,
                           .session = session,
                           .job_id = job->id,
                           .stop = drain,
                           .lost = &active->lost,
                           .writer = &run.writer,
                           .sync_run = &run,
                           .lost_flag = &active->lost};
    jn_script_host_t host;
    jn_worker_host_init(&wh, &host);
    const jn_connection_t *c = jn_session_connection(session);
    jn_script_run_info_t info = {.connection_id = c->connection_id,
                                 .provider_config_key = c->provider_config_key,
                                 .provider = c->provider,
                                 .base_url = wh.base_url[0] ? wh.base_url : NULL,
                                 .last_sync_date =
                                     run.last_sync_date[0] ? run.last_sync_date : NULL,
                                 .stop = drain,
                                 .lost = &active->lost};
    jn_script_source_t src = {fn.name, fn.source, strlen(fn.source)};
    jn_sandbox_limits_t limits = jn_script_limits_for(env.script_limits, JN_LIMITS_SYNC);
    jn_script_outcome_t outcome = {0};
    hooks.outcome = &outcome;
    jn_script_status_t status = jn_script_run_sync(&src, &host, &info, &limits, &outcome);
    if (atomic_load(&active->lost)) {
        /* Another worker runs this job now: its end is theirs. */
    } else if (atomic_load(drain) && status != JN_SCRIPT_OK) {
        give_back(r, job);
    } else if (status == JN_SCRIPT_OK) {
        end_sync_run(r, job, &run, &hooks, NULL);
    } else {
        json_object *e = sync_error(jn_script_status_str(status), outcome.error.message);
        if (outcome.error.payload)
            json_object_object_add(e, "payload", json_object_get(outcome.error.payload));
        end_sync_run(r, job, &run, &hooks, e);
        json_object_put(e);
    }
    jn_log_info("runner", "job %s: sync %s on %s/%s: %s in %lld ms", job->id, fn.name, pck, cid,
                jn_script_status_str(status), (long long)outcome.duration_ms);
    jn_script_outcome_cleanup(&outcome);
    jn_session_close(session);
    jn_function_cleanup(&fn);
out:
    if (begun)
        jn_sync_run_cleanup(&run);
    free(pck);
    free(cid);
}

void jn_runner_run(void *ud, const jn_job_ref_t *ref, const atomic_bool *stop)
{
    jn_runner_t *r = ud;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->e->pg, DB_WAIT_MS, &err);
    if (!conn) {
        /* The job stays queued in PostgreSQL; the recovery sends it again. */
        jn_log_warn("runner", "job %s: cannot claim it now (%s)", ref->id, jn_err_str(err));
        return;
    }
    jn_job_t job;
    err = jn_jobs_claim(conn, ref->id, r->e->config.instance_id, r->e->config.job_lease_s, &job);
    jn_pg_release(r->e->pg, conn);
    if (err == JN_ERR_NOT_FOUND || err == JN_ERR_CONFLICT) {
        /* Finished already, or running elsewhere: a duplicate or late message. */
        jn_log_debug("runner", "job %s: nothing to do (%s)", ref->id, jn_err_str(err));
        return;
    }
    if (err) {
        jn_log_warn("runner", "job %s: cannot claim it now (%s)", ref->id, jn_err_str(err));
        return;
    }
    active_t *active = calloc(1, sizeof *active);
    if (!active)
        abort();
    snprintf(active->id, sizeof active->id, "%s", job.id);
    active->token = job.lease_token;
    atomic_init(&active->lost, false);
    track(r, active);
    switch (job.kind) {
    case JN_JOB_ACTION: run_action(r, &job, stop, active); break;
    case JN_JOB_DELIVERY:
        if (jn_delivery_run(r->e, &job, &active->lost) == JN_DELIVERY_GIVE_BACK)
            give_back(r, &job);
        break;
    case JN_JOB_SYNC: run_sync(r, &job, stop, active); break;
    case JN_JOB_WEBHOOK:
        if (jn_webhook_run(r->e, &job, stop, &active->lost) == JN_WEBHOOK_RUN_GIVE_BACK)
            give_back(r, &job);
        break;
    }
    untrack(r, active);
    free(active);
    jn_job_cleanup(&job);
}
