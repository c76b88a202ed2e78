/*
 * refresh.c - the token exchange on the transport, and the refresh state machine: begin
 * (pool) -> [wait and re-check (loop timer, pool)] -> exchange (loop) -> finish (pool) ->
 * done (loop).
 */
#include "providers/refresh.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "providers/token_refresh.h"

#define TOKEN_TIMEOUT_MS 15000L
#define DB_WAIT_MS 5000
#define BUSY_RECHECK_MS 200

/* ---- one token request ---- */

typedef struct {
    const jn_oauth_request_t *req;
    jn_token_exchange_fn done;
    void *ud;
    jn_provider_stream_t *stream;
    char *body;
    size_t len, cap;
} exchange_t;

static void exchange_end(exchange_t *x, jn_err_t err, jn_oauth_token_t *token,
                         const jn_oauth_error_t *e)
{
    x->done(err, token, e, x->ud);
    jn_provider_stream_close(x->stream);
    if (x->body) {
        jn_secure_wipe(x->body, x->cap);
        free(x->body);
    }
    free(x);
}

static void exchange_read(void *ud)
{
    exchange_t *x = ud;
    for (;;) {
        if (x->len + 8192 + 1 > x->cap) {
            x->cap = x->cap ? x->cap * 2 : 16384;
            x->body = realloc(x->body, x->cap);
            if (!x->body)
                abort();
        }
        long n = jn_provider_stream_read(x->stream, x->body + x->len, 8192);
        if (n == JN_PROVIDER_AGAIN)
            return;
        jn_oauth_error_t e;
        if (n < 0) {
            jn_err_t err = jn_oauth_request_failed(&e, false,
                                                   "the token endpoint's answer was "
                                                   "cut off");
            exchange_end(x, err, NULL, &e);
            return;
        }
        if (n == 0)
            break;
        x->len += (size_t)n;
        if (x->len > JN_OAUTH_MAX_ANSWER) {
            jn_err_t err =
                jn_oauth_request_failed(&e, false, "the token endpoint's answer is too large");
            exchange_end(x, err, NULL, &e);
            return;
        }
    }
    x->body[x->len] = '\0';
    jn_oauth_token_t token;
    jn_oauth_error_t e;
    jn_err_t err = jn_oauth_request_parse(x->req, jn_provider_stream_status(x->stream), x->body,
                                          x->len, &token, &e);
    if (err) {
        exchange_end(x, err, NULL, &e);
        return;
    }
    exchange_end(x, JN_OK, &token, NULL);
    jn_oauth_token_cleanup(&token);
}

static void exchange_head(jn_provider_stream_t *s, jn_err_t err, const char *why, void *ud)
{
    (void)s;
    exchange_t *x = ud;
    if (err) {
        jn_oauth_error_t e;
        jn_err_t code = jn_oauth_request_failed(&e, err == JN_ERR_INVALID,
                                                "the token endpoint did not answer: %s", why);
        exchange_end(x, code, NULL, &e);
        return;
    }
    jn_provider_stream_on_data(x->stream, exchange_read, x);
    exchange_read(x);
}

void jn_token_exchange(jn_provider_http_t *h, long long env_id, const jn_egress_policy_t *egress,
                       const jn_oauth_request_t *req, jn_token_exchange_fn done, void *ud)
{
    exchange_t *x = calloc(1, sizeof *x);
    if (!x)
        abort();
    x->req = req;
    x->done = done;
    x->ud = ud;
    const char *headers[JN_OAUTH_MAX_HEADERS + 1] = {0};
    for (int i = 0; i < req->header_count; i++)
        headers[i] = req->headers[i];
    jn_provider_call_t call = {
        .method = "POST",
        .url = req->url,
        .headers = headers,
        .body = req->body,
        .body_len = req->body_len,
        .timeout_ms = TOKEN_TIMEOUT_MS,
        .egress = egress,
    };
    jn_provider_start(h, env_id, NULL, &call, exchange_head, x, &x->stream);
}

/* ---- the refresh state machine ---- */

typedef struct {
    jn_session_deps_t d;
    long long env_id;
    const jn_egress_policy_t *egress;
    long long row_id;
    bool force;
    long long seen_seq;
    jn_refresh_done_fn done;
    void *ud;
    jn_refresh_lease_t lease;
    jn_connection_t current;
    bool have_current;
    jn_oauth_request_t req;
    jn_oauth_token_t token;
    bool have_token;
    jn_oauth_error_t failure;
    jn_err_t err;
    char why[512];
    uint64_t wait_until_ms;
    bool superseded_once;
    jn_loop_timer_t timer;
} refresh_t;

static jn_loop_t *loop_of(const refresh_t *r)
{
    return jn_provider_http_loop(r->d.http);
}

static void refresh_free(refresh_t *r)
{
    if (r->have_current)
        jn_connection_cleanup(&r->current);
    if (r->have_token)
        jn_oauth_token_cleanup(&r->token);
    jn_oauth_request_cleanup(&r->req);
    jn_refresh_lease_cleanup(&r->lease);
    free(r);
}

static void deliver(void *ud)
{
    refresh_t *r = ud;
    if (r->err) {
        r->done(r->err, NULL, r->why, r->ud);
    } else {
        r->have_current = false;
        r->done(JN_OK, &r->current, NULL, r->ud);
    }
    refresh_free(r);
}

/* Ends the refresh with err (why set) or with r->current. */
static void finish_with(refresh_t *r, jn_err_t err)
{
    r->err = err;
    jn_loop_post(loop_of(r), deliver, r);
}

static void begin_on_pool(void *ud);
static void finish_on_pool(void *ud);

static void submit(refresh_t *r, void (*fn)(void *))
{
    if (jn_taskpool_submit(r->d.tasks, fn, r) != JN_OK) {
        snprintf(r->why, sizeof r->why, "the server is overloaded; retry shortly");
        finish_with(r, JN_ERR_BUSY);
    }
}

static void on_exchanged(jn_err_t err, jn_oauth_token_t *token, const jn_oauth_error_t *e, void *ud)
{
    refresh_t *r = ud;
    if (err) {
        r->failure = *e;
    } else {
        r->token = *token;
        memset(token, 0, sizeof *token); /* taken */
        r->have_token = true;
    }
    submit(r, finish_on_pool);
}

static void exchange_on_loop(void *ud)
{
    refresh_t *r = ud;
    jn_token_exchange(r->d.http, r->env_id, r->egress, &r->req, on_exchanged, r);
}

static void recheck(jn_loop_timer_t *t)
{
    submit(t->ud, begin_on_pool);
}

/* Another process holds the lease: look again shortly, for a bounded time. */
static void wait_on_loop(void *ud)
{
    refresh_t *r = ud;
    uint64_t now = jn_loop_now_ms(loop_of(r));
    if (!r->wait_until_ms)
        r->wait_until_ms = now + (uint64_t)(r->lease.wait_ms > 0 ? r->lease.wait_ms : 0);
    if (now >= r->wait_until_ms) {
        snprintf(r->why, sizeof r->why,
                 "another process is refreshing these credentials and has not finished");
        r->err = JN_ERR_TIMEOUT;
        deliver(r);
        return;
    }
    jn_loop_timer_init(&r->timer);
    jn_loop_timer_start(loop_of(r), &r->timer, BUSY_RECHECK_MS, recheck, r);
}

static void begin_on_pool(void *ud)
{
    refresh_t *r = ud;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->d.pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(r->why, sizeof r->why, "the database is unavailable; retry shortly");
        finish_with(r, err);
        return;
    }
    if (r->have_current) {
        jn_connection_cleanup(&r->current);
        r->have_current = false;
    }
    jn_refresh_outcome_t outcome;
    err = jn_token_refresh_begin(conn, r->d.keyring, r->d.catalog, r->row_id, r->force, r->seen_seq,
                                 &r->lease, &r->current, &outcome);
    jn_pg_release(r->d.pg, conn);
    if (err) {
        snprintf(r->why, sizeof r->why, "the connection could not be read (%s)", jn_err_str(err));
        finish_with(r, err);
        return;
    }
    r->have_current = outcome != JN_REFRESH_BUSY;
    switch (outcome) {
    case JN_REFRESH_FRESH:
    case JN_REFRESH_NOT_NEEDED: finish_with(r, JN_OK); return;
    case JN_REFRESH_BUSY: jn_loop_post(loop_of(r), wait_on_loop, r); return;
    case JN_REFRESH_DEAD:
        snprintf(r->why, sizeof r->why, "%.480s (re-authorisation needed)", r->lease.why);
        finish_with(r, JN_ERR_INVALID);
        return;
    case JN_REFRESH_FAILED:
    case JN_REFRESH_BACKOFF:
        snprintf(r->why, sizeof r->why, "%s", r->lease.why);
        finish_with(r, JN_ERR_UPSTREAM);
        return;
    case JN_REFRESH_LEASED: break;
    }
    jn_oauth_request_cleanup(&r->req);
    if (jn_token_refresh_request(&r->lease, &r->req, &r->failure) != JN_OK) {
        finish_on_pool(r); /* the failure is recorded like any other */
        return;
    }
    jn_loop_post(loop_of(r), exchange_on_loop, r);
}

static void finish_on_pool(void *ud)
{
    refresh_t *r = ud;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(r->d.pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(r->why, sizeof r->why, "the database is unavailable; retry shortly");
        finish_with(r, err);
        return;
    }
    if (r->have_current) {
        jn_connection_cleanup(&r->current);
        r->have_current = false;
    }
    jn_refresh_result_t result;
    err = jn_token_refresh_finish(conn, r->d.keyring, &r->lease, r->have_token ? &r->token : NULL,
                                  r->have_token ? NULL : &r->failure, &result, &r->current);
    jn_pg_release(r->d.pg, conn);
    if (err) {
        snprintf(r->why, sizeof r->why, "the refresh could not be stored (%s)", jn_err_str(err));
        finish_with(r, err);
        return;
    }
    switch (result) {
    case JN_REFRESH_STORED:
        r->have_current = true;
        finish_with(r, JN_OK);
        return;
    case JN_REFRESH_RECORDED:
        r->have_current = true;
        snprintf(r->why, sizeof r->why, "%s", r->failure.message);
        finish_with(r, r->failure.grant_dead ? JN_ERR_INVALID : JN_ERR_UPSTREAM);
        return;
    case JN_REFRESH_SUPERSEDED:
        /* Our lease was taken over: whoever holds it now decides; look once more. */
        r->have_current = false;
        if (r->superseded_once) {
            snprintf(r->why, sizeof r->why, "the refresh was taken over by another process");
            finish_with(r, JN_ERR_TIMEOUT);
            return;
        }
        r->superseded_once = true;
        if (r->have_token) {
            jn_oauth_token_cleanup(&r->token);
            r->have_token = false;
        }
        begin_on_pool(r);
        return;
    }
}

void jn_refresh_start(const jn_session_deps_t *deps, long long env_id,
                      const jn_egress_policy_t *egress, long long row_id, bool force,
                      long long seen_seq, jn_refresh_done_fn done, void *ud)
{
    refresh_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->d = *deps;
    r->env_id = env_id;
    r->egress = egress;
    r->row_id = row_id;
    r->force = force;
    r->seen_seq = seen_seq;
    r->done = done;
    r->ud = ud;
    jn_refresh_lease_init(&r->lease);
    submit(r, begin_on_pool);
}
