/*
 * webhook_run.c - routing a provider webhook and running its handlers (see the header).
 */
#include "webhook_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "delivery.h"
#include "host.h"
#include "net/job_message.h"
#include "providers/custom_providers.h"
#include "providers/webhook_routing.h"
#include "providers/webhook_spec.h"
#include "scripts/limits.h"
#include "store/connections.h"
#include "store/functions.h"
#include "store/integrations.h"
#include "store/provider_webhooks.h"
#include "store/records.h"
#include "store/webhooks.h"

#define DB_WAIT_MS 5000
#define BACKOFF_BASE_S 2

/* ---- outcomes ---- */

static json_object *error_json(const char *type, const char *message)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_add(e, "message", json_object_new_string(message));
    return e;
}

/* Stores a run's outcome, fenced; takes result. Inside a transaction when conn is in one. */
static jn_err_t finish_on(PGconn *conn, const jn_job_t *job, bool ok, json_object *result,
                          bool retryable)
{
    bool requeued = false;
    jn_err_t err = jn_jobs_finish(
        conn, job->id, job->lease_token, ok ? JN_JOB_OUTCOME_SUCCEEDED : JN_JOB_OUTCOME_FAILED,
        result, retryable, jn_delivery_retry_delay_s(BACKOFF_BASE_S, job->attempts, 0), &requeued);
    json_object_put(result);
    if (!err && requeued)
        jn_log_info("webhooks", "job %s: attempt %d of %d failed; it runs again later", job->id,
                    job->attempts, job->max_attempts);
    return err;
}

/* finish_on with a pooled connection; logs what could not be stored. */
static void finish(jn_engine_t *e, const jn_job_t *job, bool ok, json_object *result,
                   bool retryable)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(e->pg, DB_WAIT_MS, &err);
    if (!conn) {
        json_object_put(result);
        /* The lease runs out and the recovery sends the job again. */
        jn_log_error("webhooks", "job %s: the outcome could not be stored (%s)", job->id,
                     jn_err_str(err));
        return;
    }
    err = finish_on(conn, job, ok, result, retryable);
    jn_pg_release(e->pg, conn);
    if (err == JN_ERR_CONFLICT)
        jn_log_warn("webhooks", "job %s: another worker took the job over; this outcome is dropped",
                    job->id);
    else if (err)
        jn_log_error("webhooks", "job %s: the outcome could not be stored (%s)", job->id,
                     jn_err_str(err));
}

/* A failure that running again cannot mend. */
static jn_webhook_run_result_t fail(jn_engine_t *e, const jn_job_t *job, const char *type,
                                    const char *message)
{
    jn_log_warn("webhooks", "job %s: %s", job->id, message);
    finish(e, job, false, error_json(type, message), false);
    return JN_WEBHOOK_RUN_DONE;
}

static const char *header_in(json_object *headers, const char *name)
{
    json_object *v = NULL;
    return headers && json_object_object_get_ex(headers, name, &v) ? json_object_get_string(v)
                                                                   : NULL;
}

/* The payload of a recorded webhook, as scripts and the app see it. */
static json_object *payload_of(const jn_provider_webhook_t *w)
{
    return jn_webhook_payload(w->body, w->body_len, header_in(w->headers, "content-type"));
}

/* The event type of (part of) a webhook, or NULL. */
static const char *event_type(const jn_webhook_spec_t *spec, const jn_provider_webhook_t *w,
                              json_object *part)
{
    if (spec->event_header)
        return header_in(w->headers, spec->event_header);
    return spec->event_path ? jn_webhook_event_type(part, spec->event_path) : NULL;
}

/* ---- the intake: routing and fan-out ---- */

/* A growing list of jobs to send once committed. */
typedef struct {
    jn_job_ref_t *jobs;
    size_t count, cap;
} refs_t;

static void refs_add(refs_t *r, const jn_job_ref_t *jobs, size_t n)
{
    if (r->count + n > r->cap) {
        r->cap = (r->count + n) * 2;
        r->jobs = realloc(r->jobs, r->cap * sizeof *r->jobs);
        if (!r->jobs)
            abort();
    }
    memcpy(r->jobs + r->count, jobs, n * sizeof *jobs);
    r->count += n;
}

/* The integration's sync functions that handle webhooks: name -> subscriptions (an array,
 * empty for all). */
static jn_err_t webhook_syncs(PGconn *conn, long long env_id, const char *integration,
                              json_object **out)
{
    jn_function_t *fns = NULL;
    size_t n = 0;
    *out = json_object_new_object();
    jn_err_t err = jn_functions_list(conn, env_id, integration, &fns, &n);
    if (err == JN_ERR_NOT_FOUND)
        err = JN_OK;
    for (size_t i = 0; i < n; i++) {
        json_object *hook = NULL, *subs = NULL;
        if (strcmp(fns[i].type, "sync") == 0 && fns[i].declaration &&
            json_object_object_get_ex(fns[i].declaration, "on_webhook", &hook) &&
            json_object_get_boolean(hook)) {
            json_object_object_get_ex(fns[i].declaration, "webhook_subscriptions", &subs);
            json_object_object_add(*out, fns[i].name,
                                   json_object_is_type(subs, json_type_array)
                                       ? json_object_get(subs)
                                       : json_object_new_array());
        }
        jn_function_cleanup(&fns[i]);
    }
    free(fns);
    return err;
}

/* Whether a sync subscribed to subs receives an event of type (NULL: unknown). */
static bool subscribed(json_object *subs, const char *type)
{
    size_t n = json_object_array_length(subs);
    if (n == 0 || !type)
        return true;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(subs, i));
        if (s && (strcmp(s, "*") == 0 || strcmp(s, type) == 0))
            return true;
    }
    return false;
}

typedef struct {
    const jn_job_t *job;
    const jn_provider_webhook_t *w;
    const jn_webhook_spec_t *spec;
    const jn_integration_t *it;
    json_object *payload;
    jn_webhook_target_t *targets;
    size_t target_count;
    json_object *hooks; /* sync name -> subscriptions */
    jn_webhook_sync_ref_t *syncs;
    size_t sync_count;
    refs_t send;
    size_t handlers, forwards;
} route_t;

/* Creates the handler jobs (inside the transaction). What a connection gets of the payload
 * is cut once, however many of its syncs handle it. */
static jn_err_t create_handlers(PGconn *conn, route_t *r)
{
    json_object **parts = calloc(r->target_count ? r->target_count : 1, sizeof *parts);
    if (!parts)
        abort();
    jn_err_t err = JN_OK;
    for (size_t i = 0; !err && i < r->sync_count; i++) {
        const jn_webhook_sync_ref_t *s = &r->syncs[i];
        size_t k = 0;
        while (k < r->target_count && r->targets[k].row != s->connection_row)
            k++;
        json_object *subs = json_object_object_get(r->hooks, s->name);
        if (k == r->target_count || !subs)
            continue;
        const jn_webhook_target_t *t = &r->targets[k];
        if (!parts[k])
            parts[k] = jn_webhook_payload_part(r->payload, r->spec->route_path, t->route_value);
        json_object *part = parts[k];
        bool wanted = subscribed(subs, event_type(r->spec, r->w, part));
        bool empty = json_object_is_type(part, json_type_array) &&
                     json_object_array_length(part) == 0 &&
                     json_object_is_type(r->payload, json_type_array) &&
                     json_object_array_length(r->payload) > 0;
        if (!wanted || empty)
            continue;
        jn_webhook_handler_t h = {.connection_row = s->connection_row,
                                  .sync_name = s->name,
                                  .variant = s->variant,
                                  .intake_id = r->job->id,
                                  .route_path = r->spec->route_path,
                                  .route_value = r->spec->route_path ? t->route_value : NULL};
        jn_job_ref_t ref;
        err = jn_provider_webhooks_handler(conn, r->job->environment_id, &h, &ref);
        if (!err) {
            refs_add(&r->send, &ref, 1);
            r->handlers++;
        }
    }
    for (size_t k = 0; k < r->target_count; k++)
        json_object_put(parts[k]);
    free(parts);
    return err;
}

/* Enqueues one forward in a savepoint: one that cannot be written (too large) is logged
 * and left out, the rest of the transaction stands. */
static jn_err_t forward_one(PGconn *conn, route_t *r, long long row, const char *connection_id)
{
    jn_err_t err = jn_pg_exec_script(conn, "SAVEPOINT forward");
    if (err)
        return err;
    jn_webhook_jobs_t hooks = {0};
    err = jn_webhooks_enqueue_forward(conn, r->job->environment_id, row, r->w->provider,
                                      r->it->unique_key, connection_id, r->payload, &hooks);
    if (err == JN_ERR_TOO_LARGE || err == JN_ERR_INVALID || err == JN_ERR_NOT_FOUND) {
        jn_log_warn("webhooks", "job %s: the forward to the app was not written (%s)", r->job->id,
                    jn_err_str(err));
        return jn_pg_exec_script(conn, "ROLLBACK TO SAVEPOINT forward");
    }
    if (err)
        return err;
    refs_add(&r->send, hooks.jobs, hooks.count);
    r->forwards += hooks.count ? 1 : 0;
    return jn_pg_exec_script(conn, "RELEASE SAVEPOINT forward");
}

/* The intake's end: its outcome, its handler jobs and its forwards, in one transaction
 * fenced by its lease. */
static jn_err_t commit_route(PGconn *conn, route_t *r)
{
    json_object *out = json_object_new_object();
    json_object_object_add(out, "connections", json_object_new_int64((int64_t)r->target_count));
    jn_err_t err = jn_pg_exec_script(conn, "BEGIN");
    if (!err)
        err = create_handlers(conn, r);
    for (size_t i = 0; !err && r->it->forward_webhooks && i < r->target_count; i++)
        err = forward_one(conn, r, r->targets[i].row, r->targets[i].connection_id);
    if (!err && r->it->forward_webhooks && r->target_count == 0)
        err = forward_one(conn, r, 0, NULL);
    json_object_object_add(out, "handlers", json_object_new_int64((int64_t)r->handlers));
    json_object_object_add(out, "forwards", json_object_new_int64((int64_t)r->forwards));
    if (!err)
        err = finish_on(conn, r->job, true, out, false);
    else
        json_object_put(out);
    if (err) {
        jn_pg_exec_script(conn, "ROLLBACK");
        return err;
    }
    return jn_pg_exec_script(conn, "COMMIT");
}

/* Reads what routing needs: the integration, its provider's section, the connections and
 * their syncs. JN_ERR_NOT_FOUND (why says what) when the webhook has nowhere to go. */
static jn_err_t route_lookup(jn_engine_t *e, PGconn *conn, route_t *r, jn_integration_t *it,
                             json_object **provider, jn_webhook_spec_t *spec, char *why,
                             size_t why_len)
{
    const jn_provider_webhook_t *w = r->w;
    long long env_id = r->job->environment_id;
    jn_err_t err = jn_integrations_get(conn, &e->keyring, env_id, w->integration, false, it);
    if (err == JN_OK && it->id != w->integration_id) {
        jn_integration_cleanup(it);
        err = JN_ERR_NOT_FOUND;
    }
    if (err)
        return err == JN_ERR_NOT_FOUND
                   ? jn_err_why(err, why, why_len, "the integration '%.64s' no longer exists",
                                w->integration)
                   : err;
    r->it = it;
    err = jn_providers_lookup(e->catalog, conn, env_id, it->provider, provider);
    if (!err && jn_webhook_spec_read(*provider, spec) != JN_OK)
        memset(spec, 0, sizeof *spec); /* no longer receives webhooks: forwarded, not routed */
    if (err == JN_ERR_NOT_FOUND)
        return jn_err_why(err, why, why_len, "the provider '%.64s' no longer exists", it->provider);
    if (err)
        return err;
    r->spec = spec;
    if (spec->route_path) {
        json_object *values =
            jn_webhook_route_values(r->payload, spec->route_path, JN_WEBHOOK_FANOUT_MAX);
        err = jn_provider_webhooks_targets(conn, env_id, it->id, spec->route_config_key, values,
                                           JN_WEBHOOK_FANOUT_MAX, &r->targets, &r->target_count);
        json_object_put(values);
    }
    if (!err)
        err = webhook_syncs(conn, env_id, it->unique_key, &r->hooks);
    if (!err && r->target_count) {
        long long *rows = calloc(r->target_count, sizeof *rows);
        if (!rows)
            abort();
        for (size_t i = 0; i < r->target_count; i++)
            rows[i] = r->targets[i].row;
        json_object *names = json_object_new_array();
        json_object_object_foreach(r->hooks, name, subs)
        {
            (void)subs;
            json_object_array_add(names, json_object_new_string(name));
        }
        err = jn_provider_webhooks_syncs(conn, env_id, rows, r->target_count, names,
                                         JN_WEBHOOK_HANDLERS_MAX, &r->syncs, &r->sync_count);
        json_object_put(names);
        free(rows);
    }
    return err;
}

static jn_webhook_run_result_t run_intake(jn_engine_t *e, const jn_job_t *job)
{
    jn_provider_webhook_t w;
    if (jn_provider_webhooks_read(job->input, &w) != JN_OK)
        return fail(e, job, "invalid_job", "the job's input is not a recorded webhook");
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(e->pg, DB_WAIT_MS, &err);
    if (!conn)
        return JN_WEBHOOK_RUN_GIVE_BACK;
    route_t r = {.job = job, .w = &w, .payload = payload_of(&w)};
    jn_integration_t it = {0};
    json_object *provider = NULL;
    jn_webhook_spec_t spec = {0};
    char why[256] = "";
    jn_webhook_run_result_t result = JN_WEBHOOK_RUN_DONE;
    err = route_lookup(e, conn, &r, &it, &provider, &spec, why, sizeof why);
    if (err == JN_ERR_NOT_FOUND) {
        jn_pg_release(e->pg, conn);
        fail(e, job, "unknown_integration", why);
        goto out;
    }
    if (!err)
        err = commit_route(conn, &r);
    jn_pg_release(e->pg, conn);
    if (err == JN_ERR_CONFLICT) {
        jn_log_warn("webhooks",
                    "job %s: another worker took the job over; its routing is "
                    "dropped",
                    job->id);
    } else if (err) {
        jn_log_warn("webhooks", "job %s: the webhook could not be routed now (%s)", job->id,
                    jn_err_str(err));
        result = JN_WEBHOOK_RUN_GIVE_BACK;
    } else {
        jn_job_message_send_all(e->producer, e->config.topic_prefix, r.send.jobs, r.send.count);
        jn_log_info("webhooks",
                    "job %s: webhook for integration '%s' reached %zu connection(s): %zu "
                    "handler(s), %zu forward(s)",
                    job->id, w.integration, r.target_count, r.handlers, r.forwards);
    }
out:
    json_object_put(r.payload);
    json_object_put(r.hooks);
    free(r.targets);
    free(r.syncs);
    free(r.send.jobs);
    json_object_put(provider);
    if (r.it)
        jn_integration_cleanup(&it);
    return result;
}

/* ---- a handler: one sync's on_webhook for one connection ---- */

/* What a handler reads before it runs: its intake, its connection's keys, its function
 * and its record writer. */
typedef struct {
    jn_job_t intake;
    jn_provider_webhook_t w;
    char *pck, *cid;
    jn_function_t fn;
    bool has_fn;
    jn_records_writer_t writer;
} handler_setup_t;

static void setup_cleanup(handler_setup_t *s)
{
    jn_job_cleanup(&s->intake);
    free(s->pck);
    free(s->cid);
    if (s->has_fn)
        jn_function_cleanup(&s->fn);
}

/* JN_ERR_NOT_FOUND (why says what is gone) when the handler has nothing left to run;
 * JN_ERR_CONFLICT when the lease was lost. */
static jn_err_t handler_setup(jn_engine_t *e, PGconn *conn, const jn_job_t *job,
                              const jn_webhook_handler_t *h, handler_setup_t *s, char *why,
                              size_t why_len)
{
    jn_err_t err = jn_jobs_get(conn, job->environment_id, h->intake_id, &s->intake);
    if (!err && jn_provider_webhooks_read(s->intake.input, &s->w) != JN_OK)
        err = JN_ERR_NOT_FOUND;
    if (err)
        return err == JN_ERR_NOT_FOUND
                   ? jn_err_why(err, why, why_len, "the webhook it handles is gone")
                   : err;
    jn_connection_t c;
    err = jn_connections_get_by_id(conn, &e->keyring, job->connection_id, false, &c);
    if (err)
        return err == JN_ERR_NOT_FOUND
                   ? jn_err_why(err, why, why_len, "the connection no longer exists")
                   : err;
    s->pck = strdup(c.provider_config_key);
    s->cid = strdup(c.connection_id);
    jn_connection_cleanup(&c);
    if (!s->pck || !s->cid)
        abort();
    err = jn_functions_get(conn, job->environment_id, s->pck, job->function_name, true, &s->fn);
    if (err)
        return err == JN_ERR_NOT_FOUND
                   ? jn_err_why(err, why, why_len, "the sync '%.64s' is no longer deployed",
                                job->function_name)
                   : err;
    s->has_fn = true;
    return jn_records_writer_begin(conn, job->environment_id, job->id, job->lease_token, h->variant,
                                   &s->writer);
}

/* on_webhook's third argument. New object. */
static json_object *webhook_info(const handler_setup_t *s, const char *event)
{
    json_object *o = json_object_new_object();
    json_object *headers = NULL;
    if (s->w.headers && json_object_deep_copy(s->w.headers, &headers, NULL) != 0)
        abort();
    json_object_object_add(o, "headers", headers ? headers : json_object_new_object());
    json_object_object_add(o, "event_type", event ? json_object_new_string(event) : NULL);
    json_object_object_add(o, "provider", json_object_new_string(s->w.provider));
    json_object_object_add(o, "verified", json_object_new_boolean(s->w.verified));
    json_object_object_add(o, "received_at", json_object_new_string(s->intake.created_at));
    return o;
}

static bool retryable_status(const jn_script_outcome_t *o)
{
    return o->status == JN_SCRIPT_HTTP || o->status == JN_SCRIPT_TIMEOUT ||
           (o->status == JN_SCRIPT_HOST && jn_err_retryable(o->host_err));
}

static jn_webhook_run_result_t run_handler(jn_engine_t *e, const jn_job_t *job,
                                           const atomic_bool *drain, atomic_bool *lost)
{
    jn_webhook_handler_t h;
    jn_environment_t env;
    if (jn_provider_webhooks_read_handler(job->input, &h) != JN_OK || !job->function_name ||
        !job->connection_id)
        return fail(e, job, "invalid_job", "the job's input is not a webhook handler");
    if (jn_env_cache_get(e->envs, job->environment_id, &env) != JN_OK)
        return JN_WEBHOOK_RUN_GIVE_BACK;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(e->pg, DB_WAIT_MS, &err);
    if (!conn)
        return JN_WEBHOOK_RUN_GIVE_BACK;
    handler_setup_t s = {0};
    char why[512] = "";
    err = handler_setup(e, conn, job, &h, &s, why, sizeof why);
    jn_pg_release(e->pg, conn);
    jn_webhook_run_result_t result = JN_WEBHOOK_RUN_DONE;
    jn_session_t *session = NULL;
    if (err == JN_ERR_NOT_FOUND) {
        fail(e, job, "unknown_target", why);
        goto out;
    }
    if (err == JN_ERR_CONFLICT) {
        atomic_store(lost, true);
        goto out;
    }
    if (err) {
        result = JN_WEBHOOK_RUN_GIVE_BACK;
        goto out;
    }
    err = jn_session_open_sync(&e->sessions, &env, s.pck, s.cid, &session, why, sizeof why);
    if (err) {
        if (err == JN_ERR_NOT_FOUND)
            fail(e, job, "unknown_target", why);
        else
            result = JN_WEBHOOK_RUN_GIVE_BACK;
        goto out;
    }
    jn_webhook_spec_t spec = {0};
    if (jn_webhook_spec_read(jn_session_provider(session), &spec) != JN_OK)
        memset(&spec, 0, sizeof spec);
    json_object *payload = payload_of(&s.w);
    json_object *part = h.route_path && h.route_value
                            ? jn_webhook_payload_part(payload, h.route_path, h.route_value)
                            : json_object_get(payload);
    json_object *info_obj = webhook_info(&s, event_type(&spec, &s.w, part));
    jn_worker_host_t wh = {.engine = e,
                           .session = session,
                           .job_id = job->id,
                           .stop = drain,
                           .lost = lost,
                           .journal = true,
                           .lease_token = job->lease_token,
                           .journal_replaying = job->lease_token > 1,
                           .writer = &s.writer,
                           .lost_flag = lost};
    jn_script_host_t host;
    jn_worker_host_init(&wh, &host);
    const jn_connection_t *c = jn_session_connection(session);
    jn_script_run_info_t info = {.connection_id = c->connection_id,
                                 .provider_config_key = c->provider_config_key,
                                 .provider = c->provider,
                                 .base_url = wh.base_url[0] ? wh.base_url : NULL,
                                 .stop = drain,
                                 .lost = lost,
                                 .webhook = info_obj};
    jn_script_source_t src = {s.fn.name, s.fn.source, strlen(s.fn.source)};
    jn_sandbox_limits_t limits = jn_script_limits_for(env.script_limits, JN_LIMITS_WEBHOOK);
    jn_script_outcome_t outcome = {0};
    jn_script_status_t status = jn_script_run_webhook(&src, part, &host, &info, &limits, &outcome);
    if (atomic_load(lost)) {
        /* Another worker runs this job now: its outcome is theirs. */
    } else if (atomic_load(drain) && status != JN_SCRIPT_OK) {
        result = JN_WEBHOOK_RUN_GIVE_BACK;
    } else if (status == JN_SCRIPT_OK) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "duration_ms", json_object_new_int64(outcome.duration_ms));
        finish(e, job, true, o, false);
    } else {
        json_object *err_obj = error_json(jn_script_status_str(status), outcome.error.message);
        if (outcome.error.payload)
            json_object_object_add(err_obj, "payload", json_object_get(outcome.error.payload));
        finish(e, job, false, err_obj, retryable_status(&outcome));
    }
    jn_log_info("webhooks", "job %s: on_webhook of %s on %s/%s: %s in %lld ms", job->id, s.fn.name,
                s.pck, s.cid, jn_script_status_str(status), (long long)outcome.duration_ms);
    jn_script_outcome_cleanup(&outcome);
    json_object_put(info_obj);
    json_object_put(part);
    json_object_put(payload);
out:
    jn_session_close(session);
    setup_cleanup(&s);
    return result;
}

jn_webhook_run_result_t jn_webhook_run(jn_engine_t *e, const jn_job_t *job,
                                       const atomic_bool *drain, atomic_bool *lost)
{
    jn_webhook_handler_t h;
    if (jn_provider_webhooks_read_handler(job->input, &h) == JN_OK)
        return run_handler(e, job, drain, lost);
    return run_intake(e, job);
}
