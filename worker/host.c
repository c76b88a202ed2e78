/*
 * host.c - HTTP, connection view, metadata and logs for a script run (see the header).
 */
#include "host.h"

#include <curl/curl.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"
#include "store/connections.h"
#include "store/env_variables.h"
#include "store/job_calls.h"

#define DB_WAIT_MS 5000

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool stopped(const jn_worker_host_t *h, char *why, size_t why_len)
{
    if ((h->stop && atomic_load(h->stop)) || (h->lost && atomic_load(h->lost))) {
        snprintf(why, why_len, "the run was stopped (the worker is shutting down or lost the job)");
        return true;
    }
    return false;
}

/* ---- text helpers ---- */

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            abort();
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_escaped(buf_t *b, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e)
        abort();
    buf_add(b, e, strlen(e));
    curl_free(e);
}

/* The origin ("https://api.example.com:443") of a URL, "" when it has none. */
static void origin_of(const char *url, char *out, size_t cap)
{
    out[0] = '\0';
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        for (char *p = host; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        snprintf(out, cap, "%s://%s:%s", scheme, host, port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
}

/* ---- the call journal ---- */

static bool changes_something(const char *method)
{
    return strcasecmp(method, "GET") != 0 && strcasecmp(method, "HEAD") != 0 &&
           strcasecmp(method, "OPTIONS") != 0;
}

/* What identifies a call's side effect: method, endpoint, query, base URL and body (not
 * headers, which may carry per-run values such as trace ids). */
static void request_hash(const jn_script_http_request_t *req, const char *query, char out[65])
{
    buf_t b = {0};
    const char *parts[] = {req->method, req->endpoint, query ? query : "",
                           req->base_url_override ? req->base_url_override : ""};
    for (size_t i = 0; i < 4; i++)
        buf_add(&b, parts[i] ? parts[i] : "", (parts[i] ? strlen(parts[i]) : 0) + 1);
    if (req->body)
        buf_add(&b, req->body, req->body_len);
    unsigned char digest[32];
    jn_crypto_sha256(b.data, b.len, digest);
    jn_hex_encode(digest, sizeof digest, out);
    free(b.data);
}

/* The journal's answer to call seq, or false (make the call). */
static bool journal_answer(jn_worker_host_t *h, int seq, const char *hash,
                           jn_script_http_response_t *res)
{
    if (!h->journal_replaying)
        return false;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn)
        return false;
    jn_job_call_t rec;
    err = jn_job_calls_get(conn, h->job_id, seq, hash, &rec);
    jn_pg_release(h->engine->pg, conn);
    if (err == JN_ERR_NOT_FOUND) {
        h->journal_replaying = false; /* entries are written in order: none follow */
        return false;
    }
    if (err == JN_ERR_CONFLICT) {
        jn_log_warn("worker",
                    "job %s: call %d differs from the one the earlier run made; "
                    "the rest of this run calls the provider afresh",
                    h->job_id, seq);
        h->journal_off = true;
        return false;
    }
    if (err)
        return false;
    res->status = rec.status;
    res->headers = rec.headers;
    res->body = rec.body;
    res->body_len = rec.body_len;
    jn_log_info("worker", "job %s: call %d answered from the journal of an earlier run", h->job_id,
                seq);
    return true;
}

static void journal_record(jn_worker_host_t *h, int seq, const char *hash,
                           const jn_script_http_response_t *res)
{
    if (res->body_len > JN_JOB_CALL_MAX_BODY)
        return;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (conn) {
        err = jn_job_calls_put(conn, h->job_id, h->lease_token, seq, hash, res->status,
                               res->headers, res->body, res->body_len);
        jn_pg_release(h->engine->pg, conn);
    }
    if (err && err != JN_ERR_CONFLICT)
        jn_log_warn("worker", "job %s: call %d could not be journaled (%s)", h->job_id, seq,
                    jn_err_str(err));
}

/* ---- HTTP ---- */

static jn_err_t host_http(void *ud, const jn_script_http_request_t *req,
                          jn_script_http_response_t *res, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    memset(res, 0, sizeof *res);
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    /* The query: the script's params, encoded. */
    buf_t query = {0};
    if (req->params) {
        json_object_object_foreach(req->params, k, v)
        {
            if (query.len)
                buf_add(&query, "&", 1);
            buf_escaped(&query, k);
            buf_add(&query, "=", 1);
            buf_escaped(&query, json_object_get_string(v));
        }
    }
    /* Headers: the script's, then its body's type unless it set one. */
    size_t n = req->headers ? (size_t)json_object_object_length(req->headers) : 0;
    char **headers = calloc(n + 2, sizeof *headers);
    if (!headers)
        abort();
    size_t k = 0;
    bool has_type = false;
    if (req->headers) {
        json_object_object_foreach(req->headers, name, value)
        {
            size_t len = strlen(name) + (size_t)json_object_get_string_len(value) + 3;
            headers[k] = malloc(len);
            if (!headers[k])
                abort();
            snprintf(headers[k++], len, "%s: %s", name, json_object_get_string(value));
            has_type |= strcasecmp(name, "content-type") == 0;
        }
    }
    if (req->body && req->content_type && !has_type) {
        size_t len = strlen(req->content_type) + 16;
        headers[k] = malloc(len);
        if (!headers[k])
            abort();
        snprintf(headers[k++], len, "Content-Type: %s", req->content_type);
    }
    char retry_on[256] = "";
    for (size_t i = 0; req->retry_on && i < json_object_array_length(req->retry_on); i++) {
        size_t used = strlen(retry_on);
        snprintf(retry_on + used, sizeof retry_on - used, "%s%d", used ? "," : "",
                 json_object_get_int(json_object_array_get_idx(req->retry_on, i)));
    }
    /* Credentials go only to the provider's own origin. */
    bool anonymous = false;
    if (req->base_url_override) {
        char origin[256];
        origin_of(req->base_url_override, origin, sizeof origin);
        anonymous = !h->base_origin[0] || strcasecmp(origin, h->base_origin) != 0;
    }
    jn_provider_call_t call = {
        .method = req->method,
        .endpoint = req->endpoint,
        .query = query.len ? query.data : NULL,
        .base_url_override = req->base_url_override,
        .headers = (const char *const *)headers,
        .body = req->body,
        .body_len = req->body_len,
        .retries = req->retries,
        .retry_on = retry_on[0] ? retry_on : NULL,
        .deadline_ms = req->timeout_ms > 0 ? monotonic_ms() + (uint64_t)req->timeout_ms : 0,
        .anonymous = anonymous,
        /* A provider that hangs or trickles must not hold a stopping worker. */
        .stop = {h->stop, h->lost},
    };
    bool journaled =
        h->journal && !h->dry_run && !h->journal_off && h->job_id && changes_something(req->method);
    int seq = 0;
    char hash[65] = "";
    if (journaled) {
        seq = ++h->journal_seq;
        request_hash(req, call.query, hash);
        if (journal_answer(h, seq, hash, res)) {
            for (size_t i = 0; i < k; i++)
                free(headers[i]);
            free(headers);
            free(query.data);
            return JN_OK;
        }
        journaled = !h->journal_off;
    }
    jn_provider_response_t pr;
    jn_err_t err = jn_session_fetch(h->session, &call, req->max_response_bytes, &pr, why, why_len);
    for (size_t i = 0; i < k; i++)
        free(headers[i]);
    free(headers);
    free(query.data);
    if (h->dry_run)
        fprintf(h->dry_run, "http %s %s%s%s -> %ld%s\n", req->method, req->endpoint,
                call.query ? "?" : "", call.query ? call.query : "", err ? 0L : pr.status,
                err ? " (no answer)" : "");
    if (err)
        return err;
    res->status = (int)pr.status;
    res->headers = json_object_new_object();
    for (int i = 0; i < pr.header_count; i++) {
        const char *line = pr.headers[i];
        const char *colon = strchr(line, ':');
        if (!colon || colon == line || colon - line > 200)
            continue;
        char name[201];
        size_t nl = (size_t)(colon - line);
        for (size_t c = 0; c < nl; c++)
            name[c] = (char)tolower((unsigned char)line[c]);
        name[nl] = '\0';
        const char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        json_object *prev = NULL;
        if (json_object_object_get_ex(res->headers, name, &prev)) {
            size_t len = strlen(json_object_get_string(prev)) + strlen(value) + 3;
            char *joined = malloc(len);
            if (!joined)
                abort();
            snprintf(joined, len, "%s, %s", json_object_get_string(prev), value);
            json_object_object_add(res->headers, name, json_object_new_string(joined));
            free(joined);
        } else {
            json_object_object_add(res->headers, name, json_object_new_string(value));
        }
    }
    if (pr.body_len) {
        res->body = pr.body;
        res->body_len = pr.body_len;
        pr.body = NULL;
    }
    jn_provider_response_cleanup(&pr);
    if (journaled)
        journal_record(h, seq, hash, res);
    return JN_OK;
}

static json_object *host_paginate_config(void *ud)
{
    jn_worker_host_t *h = ud;
    json_object *proxy = NULL, *paginate = NULL;
    json_object *provider = jn_session_provider(h->session);
    if (provider && json_object_object_get_ex(provider, "proxy", &proxy) &&
        json_object_object_get_ex(proxy, "paginate", &paginate))
        return paginate;
    return NULL;
}

/* ---- the connection and its metadata ---- */

static json_object *copy_of(json_object *o)
{
    json_object *c = NULL;
    if (o && json_object_deep_copy(o, &c, NULL) != 0)
        abort();
    return c;
}

static jn_err_t read_plain(jn_worker_host_t *h, jn_connection_t *out, char *why, size_t why_len)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    const jn_connection_t *c = jn_session_connection(h->session);
    err = jn_connections_get_by_id(conn, &h->engine->keyring, c->id, false, out);
    jn_pg_release(h->engine->pg, conn);
    if (err)
        snprintf(why, why_len, "the connection could not be read (%s)", jn_err_str(err));
    return err;
}

static jn_err_t host_connection(void *ud, json_object **out, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    jn_connection_t plain;
    jn_err_t err = read_plain(h, &plain, why, why_len);
    if (err)
        return err;
    const jn_connection_t *c = jn_session_connection(h->session);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(plain.id));
    json_object_object_add(o, "connection_id", json_object_new_string(plain.connection_id));
    json_object_object_add(o, "provider_config_key",
                           json_object_new_string(plain.provider_config_key));
    json_object_object_add(o, "provider", json_object_new_string(plain.provider));
    json_object_object_add(o, "connection_config", copy_of(plain.connection_config));
    json_object_object_add(o, "metadata", copy_of(plain.metadata));
    json_object_object_add(o, "end_user", copy_of(plain.end_user));
    /* This connection's own credentials, as Nango gives a script; never an integration's
     * client secret (those are not part of a connection's credentials). */
    json_object_object_add(o, "credentials", copy_of(c->credentials));
    json_object_object_add(o, "created_at", json_object_new_string(plain.created_at));
    json_object_object_add(o, "updated_at", json_object_new_string(plain.updated_at));
    jn_connection_cleanup(&plain);
    *out = o;
    return JN_OK;
}

static jn_err_t host_get_metadata(void *ud, json_object **out, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    jn_connection_t plain;
    jn_err_t err = read_plain(h, &plain, why, why_len);
    if (err)
        return err;
    *out = plain.metadata ? copy_of(plain.metadata) : json_object_new_object();
    jn_connection_cleanup(&plain);
    return JN_OK;
}

static jn_err_t host_set_metadata(void *ud, json_object *metadata, bool merge, char *why,
                                  size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    if (h->dry_run) {
        fprintf(h->dry_run, "%s_metadata %s (not written: dry run)\n", merge ? "update" : "set",
                json_object_to_json_string_ext(metadata, JSON_C_TO_STRING_PLAIN));
        return JN_OK;
    }
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    const jn_connection_t *c = jn_session_connection(h->session);
    const jn_environment_t *env = jn_session_environment(h->session);
    err = jn_connections_set_metadata(conn, env->id, c->provider_config_key, c->connection_id,
                                      metadata, merge);
    jn_pg_release(h->engine->pg, conn);
    if (err)
        snprintf(why, why_len, "the metadata could not be stored (%s)", jn_err_str(err));
    return err;
}

static jn_err_t host_environment_variables(void *ud, json_object **out, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    jn_env_variable_t *list = NULL;
    size_t n = 0;
    err = jn_env_variables_list(conn, &h->engine->keyring, jn_session_environment(h->session)->id,
                                true, &list, &n);
    jn_pg_release(h->engine->pg, conn);
    if (err) {
        snprintf(why, why_len, "the environment variables could not be read (%s)", jn_err_str(err));
        return err;
    }
    *out = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_new_object();
        json_object_object_add(v, "name", json_object_new_string(list[i].name));
        json_object_object_add(v, "value",
                               json_object_new_string_len(list[i].value, (int)list[i].value_len));
        json_object_array_add(*out, v);
    }
    jn_env_variables_free(list, n);
    return JN_OK;
}

static void host_log(void *ud, jn_log_level_t level, const char *msg, size_t len)
{
    jn_worker_host_t *h = ud;
    if (h->dry_run)
        fprintf(h->dry_run, "log %.*s\n", (int)len, msg);
    jn_log(level, "script", "job %s: %.*s", h->job_id ? h->job_id : "-", (int)len, msg);
}

/* ---- records and checkpoints (sync runs, webhook handlers; a dry run has its own) ---- */

/* The lease was lost: the run must stop and store nothing more. */
static jn_err_t lease_lost(jn_worker_host_t *h, char *why, size_t why_len)
{
    if (h->lost_flag)
        atomic_store(h->lost_flag, true);
    snprintf(why, why_len, "the run lost its job to another worker; it stops");
    return JN_ERR_TIMEOUT;
}

static jn_err_t host_records(void *ud, jn_script_records_op_t op, const char *model,
                             json_object *records, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    static const char *const verbs[] = {"batch_save", "batch_update", "batch_delete"};
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    jn_records_counts_t counts;
    jn_field_error_t e = {0};
    const jn_crypto_keyring_t *ring = &h->engine->keyring;
    switch (op) {
    case JN_SCRIPT_RECORDS_SAVE:
        err = jn_records_save(conn, ring, h->writer, model, records, &counts, &e);
        break;
    case JN_SCRIPT_RECORDS_UPDATE:
        err = jn_records_update(conn, ring, h->writer, model, records, &counts, &e);
        break;
    case JN_SCRIPT_RECORDS_DELETE:
        err = jn_records_delete(conn, ring, h->writer, model, records, &counts, &e);
        break;
    }
    jn_pg_release(h->engine->pg, conn);
    if (err == JN_ERR_CONFLICT)
        return lease_lost(h, why, why_len);
    if (err == JN_ERR_INVALID || err == JN_ERR_TOO_LARGE)
        snprintf(why, why_len, "%s%s%s", e.path, e.path[0] ? ": " : "", e.message);
    else if (err)
        snprintf(why, why_len, "the records could not be stored (%s)", jn_err_str(err));
    else
        jn_log_debug("worker", "job %s: %s %s: %lld added, %lld updated, %lld deleted",
                     h->job_id ? h->job_id : "-", verbs[op], model, counts.added, counts.updated,
                     counts.deleted);
    return err;
}

static jn_err_t host_records_by_ids(void *ud, const char *model, json_object *ids,
                                    json_object **out, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    char full[JN_RECORDS_MAX_MODEL + JN_SYNC_MAX_NAME + 3];
    if (jn_records_model_name(model, h->writer->variant, full, sizeof full) != JN_OK) {
        snprintf(why, why_len, "'%.64s' is not a model name", model);
        return JN_ERR_INVALID;
    }
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    jn_field_error_t e = {0};
    err = jn_records_get_by_ids(conn, &h->engine->keyring, h->writer->environment_id,
                                h->writer->connection_id, full, ids, out, &e);
    jn_pg_release(h->engine->pg, conn);
    if (err == JN_ERR_INVALID)
        snprintf(why, why_len, "%s: %s", e.path, e.message);
    else if (err)
        snprintf(why, why_len, "the records could not be read (%s)", jn_err_str(err));
    return err;
}

static jn_err_t host_get_checkpoint(void *ud, json_object **out, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    err = jn_syncs_checkpoint_get(conn, h->sync_run, out);
    jn_pg_release(h->engine->pg, conn);
    if (err)
        snprintf(why, why_len, "the checkpoint could not be read (%s)", jn_err_str(err));
    return err;
}

static jn_err_t host_save_checkpoint(void *ud, json_object *checkpoint, char *why, size_t why_len)
{
    jn_worker_host_t *h = ud;
    if (stopped(h, why, why_len))
        return JN_ERR_TIMEOUT;
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(h->engine->pg, DB_WAIT_MS, &err);
    if (!conn) {
        snprintf(why, why_len, "the database is unavailable");
        return err;
    }
    err = checkpoint ? jn_syncs_checkpoint_save(conn, h->sync_run, checkpoint)
                     : jn_syncs_checkpoint_clear(conn, h->sync_run);
    jn_pg_release(h->engine->pg, conn);
    if (err == JN_ERR_CONFLICT)
        return lease_lost(h, why, why_len);
    if (err == JN_ERR_INVALID || err == JN_ERR_TOO_LARGE)
        snprintf(why, why_len, "a checkpoint is a JSON object of at most %d bytes",
                 JN_SYNC_MAX_CHECKPOINT);
    else if (err)
        snprintf(why, why_len, "the checkpoint could not be stored (%s)", jn_err_str(err));
    return err;
}

void jn_worker_host_init(jn_worker_host_t *h, jn_script_host_t *host)
{
    memset(host, 0, sizeof *host);
    host->ud = h;
    host->http = host_http;
    host->paginate_config = host_paginate_config;
    host->connection = host_connection;
    host->get_metadata = host_get_metadata;
    host->set_metadata = host_set_metadata;
    host->environment_variables = host_environment_variables;
    host->log = host_log;
    if (h->writer) {
        host->records = host_records;
        host->records_by_ids = host_records_by_ids;
    }
    if (h->sync_run) {
        host->get_checkpoint = host_get_checkpoint;
        host->save_checkpoint = host_save_checkpoint;
    }
    /* The provider's base URL and its origin: where pagination links may go, and where a
     * base_url_override keeps the credentials. */
    const jn_connection_t *c = jn_session_connection(h->session);
    jn_provider_target_t target = {c->provider, jn_session_provider(h->session), c->credentials,
                                   c->connection_config};
    jn_built_request_t built = {0};
    char why[128];
    if (jn_provider_build(&target, NULL, "", NULL, NULL, &built, why, sizeof why) == JN_OK &&
        built.url) {
        /* The base URL without credentials that a template may have put in its query. */
        snprintf(h->base_url, sizeof h->base_url, "%.*s", (int)strcspn(built.url, "?"), built.url);
        origin_of(built.url, h->base_origin, sizeof h->base_origin);
    }
    jn_built_request_cleanup(&built);
}
