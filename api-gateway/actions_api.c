/*
 * actions_api.c - calling an action: the gateway records a job, sends it to the workers
 * over Kafka and, for a synchronous call, waits for its outcome without holding a thread.
 *
 *   POST /action/trigger   headers Connection-Id, Provider-Config-Key [, X-Async,
 *                          X-Max-Retries]; body {action_name, input}
 *       sync:  200 with the action's output as is, or its error (below)
 *       async: 202 {id, statusUrl} with Location: /action/<id>
 *   GET  /action/:id       404 until the action is done, then what a sync call answers
 *
 * Errors, in Nango's envelope: 400 invalid_body / invalid_headers / invalid_action_input
 * (the input does not match the declared model: checked here, before anything is
 * queued); 404 unknown_connection, unknown_action; then what the run produced
 * (424 script_http_error with the provider's answer, 500 action_script_failure, 502
 * script_network_error); 504 action_timeout when a synchronous call outlives its wait
 * (the environment's action time limit and a margin for the queue): a job no worker had claimed yet
 * is cancelled, one still running keeps running and its id is in the payload, to be read with GET
 * /action/:id.
 *
 * How a synchronous call waits: the handler defers its answer and registers a wait on
 * the job's id (job_waiters.h). The worker's fenced finish notifies the jobs channel as
 * it commits; whichever gateway holds the wait hears it and reads the job once. Nothing
 * polls, and the job row, not the gateway, holds the outcome, so any replica can answer
 * GET /action/:id.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/metrics.h"
#include "job_waiters.h"
#include "net/job_message.h"
#include "scripts/declaration.h"
#include "scripts/limits.h"
#include "store/connections.h"
#include "store/functions.h"
#include "store/jobs.h"

#define MAX_RETRIES 5
/* A synchronous call waits for the action's wall-clock limit and a margin for the time
 * in the queue: as long as the limit itself, from 5 s to 60 s. */
#define WAIT_MARGIN_MIN_MS 5000
#define WAIT_MARGIN_MAX_MS 60000
#define DB_RETRY_MS 1000 /* a check that could not reach PostgreSQL runs again */
#define STATUS_PATH "/action/"

static const char *const trigger_fields[] = {"action_name", "input", NULL};

/* ---- answers from a finished job ---- */

static json_object *error_body(const char *code, const char *message, json_object *payload)
{
    json_object *err = json_object_new_object();
    json_object_object_add(err, "code", json_object_new_string(code));
    json_object_object_add(err, "message", json_object_new_string(message));
    if (payload)
        json_object_object_add(err, "payload", payload);
    json_object *root = json_object_new_object();
    json_object_object_add(root, "error", err);
    return root;
}

/* The answer of a finished action: its output, or the error the worker stored as
 * {"status", "body"}. */
static void answer_finished(jn_http_response_t *res, const jn_job_t *job)
{
    if (job->state == JN_JOB_SUCCEEDED) {
        jn_http_respond_json(res, 200, job->output ? json_object_get(job->output) : NULL);
        return;
    }
    if (job->state == JN_JOB_CANCELLED) {
        jn_http_respond_json(
            res, 409,
            error_body("action_cancelled",
                       "the action was cancelled before a worker ran it (its caller stopped "
                       "waiting)",
                       NULL));
        return;
    }
    json_object *status = NULL, *body = NULL;
    if (job->error && json_object_object_get_ex(job->error, "status", &status) &&
        json_object_object_get_ex(job->error, "body", &body)) {
        int code = json_object_get_int(status);
        jn_http_respond_json(res, code >= 400 && code <= 599 ? code : 500, json_object_get(body));
        return;
    }
    jn_http_respond_json(res, 500, error_body("action_script_failure", "the action failed", NULL));
}

static bool finished(jn_job_state_t s)
{
    return s == JN_JOB_SUCCEEDED || s == JN_JOB_FAILED || s == JN_JOB_CANCELLED;
}

static void count_outcome(const char *outcome)
{
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    jn_metric_inc(jn_metrics_counter("jn_actions_answered_total",
                                     "Synchronous action calls answered, by outcome", labels));
}

/* ---- a synchronous call waiting for its job ---- */

typedef struct {
    jn_gateway_t *gw;
    jn_http_response_t *res;
    jn_http_pending_t *pending;
    jn_job_waiters_t *waiters;
    jn_job_wait_t *wait;
    jn_loop_timer_t deadline, retry;
    char job_id[37];
    long long env_id;
    int64_t wait_ms;
    bool checking;   /* a read of the job is on the pool */
    bool check_owed; /* woken while checking: read again */
    bool timed_out;  /* the deadline passed: cancel if queued, then answer */
    bool gone;       /* the client left (or the server stops): answer nothing useful */
    /* What the last check found (pool -> loop). */
    jn_err_t check_err;
    bool cancelled_now;
    jn_job_t job;
    bool have_job;
} waiter_t;

static void check(waiter_t *w);
static void on_checked(void *ud);

static void waiter_end(waiter_t *w)
{
    jn_job_wait_stop(w->wait);
    w->wait = NULL;
    jn_loop_timer_stop(&w->deadline);
    jn_loop_timer_stop(&w->retry);
    if (w->have_job)
        jn_job_cleanup(&w->job);
    jn_http_pending_finish(w->pending);
    jn_api_action_wait_end(w->gw, w->env_id);
    free(w);
}

static void check_task(void *ud)
{
    waiter_t *w = ud;
    if (w->have_job) {
        jn_job_cleanup(&w->job);
        w->have_job = false;
    }
    PGconn *conn = jn_pg_acquire(w->gw->engine->pg, 5000, &w->check_err);
    if (!conn)
        goto back;
    if (w->timed_out && !w->cancelled_now)
        w->cancelled_now = jn_jobs_cancel_queued(conn, w->job_id) == JN_OK;
    w->check_err = jn_jobs_get(conn, w->env_id, w->job_id, &w->job);
    w->have_job = w->check_err == JN_OK;
    jn_pg_release(w->gw->engine->pg, conn);
back:
    jn_loop_post(w->gw->engine->loop, on_checked, w);
}

static void on_retry(jn_loop_timer_t *t)
{
    check(t->ud);
}

/* On the loop, with what check_task found. */
static void on_checked(void *ud)
{
    waiter_t *w = ud;
    w->checking = false;
    if (w->gone) {
        jn_http_respond_error(w->res, 503, "service_unavailable", "the gateway is stopping");
        waiter_end(w);
        return;
    }
    if (w->have_job && finished(w->job.state) && !w->cancelled_now) {
        answer_finished(w->res, &w->job);
        count_outcome(w->job.state == JN_JOB_SUCCEEDED ? "succeeded" : "failed");
        waiter_end(w);
        return;
    }
    if (w->timed_out && (w->have_job || w->check_err == JN_ERR_NOT_FOUND)) {
        json_object *payload = NULL;
        char message[256];
        if (w->cancelled_now) {
            snprintf(message, sizeof message,
                     "no worker started the action within %lld s; it was cancelled",
                     (long long)(w->wait_ms / 1000));
        } else {
            snprintf(message, sizeof message,
                     "the action did not finish within %lld s; it keeps running: read its "
                     "outcome at %s%s",
                     (long long)(w->wait_ms / 1000), STATUS_PATH, w->job_id);
            payload = json_object_new_object();
            char url[64];
            snprintf(url, sizeof url, STATUS_PATH "%s", w->job_id);
            json_object_object_add(payload, "id", json_object_new_string(w->job_id));
            json_object_object_add(payload, "statusUrl", json_object_new_string(url));
        }
        jn_http_respond_json(w->res, 504, error_body("action_timeout", message, payload));
        count_outcome("timeout");
        waiter_end(w);
        return;
    }
    if (!w->have_job && w->check_err != JN_ERR_NOT_FOUND) {
        /* PostgreSQL is away: look again shortly (the notice may come while it is). */
        jn_loop_timer_start(w->gw->engine->loop, &w->retry, DB_RETRY_MS, on_retry, w);
        return;
    }
    if (w->check_owed) {
        w->check_owed = false;
        check(w);
    }
}

static void check(waiter_t *w)
{
    if (w->checking) {
        w->check_owed = true;
        return;
    }
    jn_loop_timer_stop(&w->retry);
    w->checking = true;
    if (jn_taskpool_submit(w->gw->engine->tasks, check_task, w) != JN_OK) {
        /* The pool is full: try again in a moment. */
        w->checking = false;
        jn_loop_timer_start(w->gw->engine->loop, &w->retry, 50, on_retry, w);
    }
}

static void on_wake(void *ud)
{
    check(ud);
}

static void on_deadline(jn_loop_timer_t *t)
{
    waiter_t *w = t->ud;
    w->timed_out = true;
    check(w);
}

static void on_gone(void *ud)
{
    waiter_t *w = ud;
    w->gone = true;
    jn_job_wait_stop(w->wait);
    w->wait = NULL;
    if (!w->checking) {
        jn_http_respond_error(w->res, 503, "service_unavailable", "the gateway is stopping");
        waiter_end(w);
    }
}

/* On the loop: start waiting, then look once (the job may have finished already). */
static void start_waiting(void *ud)
{
    waiter_t *w = ud;
    jn_loop_timer_init(&w->deadline);
    jn_loop_timer_init(&w->retry);
    w->wait = jn_job_wait_start(w->waiters, w->job_id, on_wake, w);
    jn_http_pending_on_gone(w->pending, on_gone, w);
    jn_loop_timer_start(w->gw->engine->loop, &w->deadline, (uint64_t)w->wait_ms, on_deadline, w);
    check(w);
}

/* ---- POST /action/trigger ---- */

/* Finds the action and checks the input against its declared model. False when res
 * was answered. *input may be replaced by its normalized form. */
static bool check_action(PGconn *conn, const jn_environment_t *env, const char *pck,
                         const char *name, json_object **input, jn_http_response_t *res)
{
    jn_function_t fn;
    jn_err_t err = jn_functions_get(conn, env->id, pck, name, false, &fn);
    if (err == JN_ERR_NOT_FOUND || (err == JN_OK && strcmp(fn.type, "action") != 0)) {
        if (err == JN_OK)
            jn_function_cleanup(&fn);
        jn_http_respond_error(res, 404, "unknown_action",
                              "action '%s' is not deployed to integration '%s'", name, pck);
        return false;
    }
    if (err) {
        jn_api_store_error(res, err, "the action");
        return false;
    }
    jn_declaration_t decl;
    char why[512];
    err = jn_declaration_from_json(fn.declaration, &decl, why, sizeof why);
    jn_function_cleanup(&fn);
    if (err) {
        jn_log_error("actions", "action %s of %s: its stored declaration is unreadable: %s", name,
                     pck, why);
        jn_http_respond_error(res, 500, "server_error", "the action's declaration is unreadable");
        return false;
    }
    bool ok = true;
    if (decl.input) {
        jn_field_error_t e;
        if (jn_model_validate(decl.input, input, "input", 0, 0, &e) != JN_OK) {
            jn_api_invalid(res, "invalid_action_input", &e);
            ok = false;
        }
    }
    jn_declaration_cleanup(&decl);
    return ok;
}

static void post_trigger(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *cid = NULL, *pck = NULL;
    if (!jn_api_connection_headers(req, res, &cid, &pck))
        return;
    jn_field_error_t e;
    bool async = false;
    int retries = 0;
    if (!jn_api_header_bool(req, res, "X-Async", &async) ||
        !jn_api_header_int(req, res, "X-Max-Retries", 0, MAX_RETRIES, &retries))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    const char *name = NULL;
    json_object *input = NULL;
    if (jn_json_only_keys(body, trigger_fields, "", &e) ||
        jn_json_string(body, "action_name", true, JN_FUNCTION_NAME_MAX, &name, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    if (json_object_object_get_ex(body, "input", &input))
        input = json_object_get(input);
    PGconn *conn = jn_api_db(gw, res);
    if (!conn) {
        json_object_put(input);
        json_object_put(body);
        return;
    }
    jn_connection_t c;
    jn_err_t err = jn_connections_get(conn, &gw->keyring, env.id, pck, cid, false, &c);
    if (err == JN_ERR_NOT_FOUND) {
        jn_http_respond_error(res, 404, "unknown_connection",
                              "no connection '%s' for integration '%s'", cid, pck);
        goto out;
    }
    if (err) {
        jn_api_store_error(res, err, "the connection");
        goto out;
    }
    long long connection_row = c.id;
    jn_connection_cleanup(&c);
    if (!check_action(conn, &env, pck, name, &input, res))
        goto out;
    /* A synchronous caller holds a connection while it waits: one environment may hold
     * only so many. */
    if (!async && !jn_api_action_wait_begin(gw, env.id)) {
        jn_http_add_header(res, "Retry-After", "1");
        jn_http_respond_error(res, 429, "too_many_waiting_actions",
                              "this environment already waits on %d synchronous actions; call "
                              "with X-Async: true, or retry shortly",
                              gw->engine->config.action_waits_per_env);
        goto out;
    }
    char id[37];
    jn_job_new_t job = {.environment_id = env.id,
                        .kind = JN_JOB_ACTION,
                        .connection_id = connection_row,
                        .function_name = name,
                        .input = input,
                        .max_attempts = async ? retries + 1 : 1,
                        .async = async};
    if ((err = jn_jobs_create(conn, &job, id))) {
        if (!async)
            jn_api_action_wait_end(gw, env.id);
        jn_api_store_error(res, err, "the action's job");
        goto out;
    }
    jn_api_db_release(gw, conn);
    conn = NULL;
    jn_job_ref_t ref = {
        .environment_id = env.id, .kind = JN_JOB_ACTION, .connection_id = connection_row};
    memcpy(ref.id, id, sizeof ref.id);
    if ((err = jn_job_message_send(gw->engine->producer, gw->engine->config.topic_prefix, &ref)))
        jn_log_warn("actions",
                    "job %s: its message could not be queued (%s); the scheduler "
                    "resends it",
                    id, jn_err_str(err));
    if (async) {
        char url[64];
        snprintf(url, sizeof url, STATUS_PATH "%s", id);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "statusUrl", json_object_new_string(url));
        jn_http_add_header(res, "Location", url);
        jn_http_respond_json(res, 202, o);
        goto out;
    }
    waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->gw = gw;
    w->res = res;
    w->waiters = gw->jobs;
    w->env_id = env.id;
    int64_t limit_ms = jn_script_limits_for(env.script_limits, JN_LIMITS_ACTION).wall_ms;
    w->wait_ms = limit_ms + (limit_ms < WAIT_MARGIN_MIN_MS   ? WAIT_MARGIN_MIN_MS
                             : limit_ms > WAIT_MARGIN_MAX_MS ? WAIT_MARGIN_MAX_MS
                                                             : limit_ms);
    memcpy(w->job_id, id, sizeof w->job_id);
    w->pending = jn_http_defer(req);
    jn_loop_post(gw->engine->loop, start_waiting, w);
out:
    if (conn)
        jn_api_db_release(gw, conn);
    json_object_put(input);
    json_object_put(body);
}

/* ---- GET /action/:id ---- */

static void get_result(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    const char *id = jn_http_param(req, "id");
    if (!id || !jn_uuid_shaped(id, true)) {
        jn_http_respond_error(res, 404, "not_found", "no action result with this id");
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_job_t job;
    jn_err_t err = jn_jobs_get(conn, env.id, id, &job);
    jn_api_db_release(gw, conn);
    if (err == JN_ERR_NOT_FOUND || (err == JN_OK && job.kind != JN_JOB_ACTION)) {
        if (err == JN_OK)
            jn_job_cleanup(&job);
        jn_http_respond_error(res, 404, "not_found", "no action result with id %s", id);
        return;
    }
    if (err) {
        jn_api_store_error(res, err, "the action");
        return;
    }
    if (!finished(job.state)) {
        /* Nango answers 404 until the outcome exists; the header tells the two apart. */
        jn_http_add_header(res, "Junction-Action-State", jn_job_state_name(job.state));
        jn_http_respond_error(res, 404, "not_found", "action %s has not finished yet (%s)", id,
                              jn_job_state_name(job.state));
    } else {
        jn_http_add_header(res, "Junction-Action-State", jn_job_state_name(job.state));
        answer_finished(res, &job);
    }
    jn_job_cleanup(&job);
}

void jn_routes_actions(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "POST", "/action/trigger", post_trigger, gw);
    jn_http_route(http, "GET", "/action/:id", get_result, gw);
}
