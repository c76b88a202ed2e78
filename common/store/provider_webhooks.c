/*
 * provider_webhooks.c - intake and handler jobs of provider webhooks, and the lookups of
 * their routing (see the header).
 */
#include "store/provider_webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static const char *str_at(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static bool is_stage(json_object *input, const char *stage)
{
    const char *s = str_at(input, "stage");
    return s && strcmp(s, stage) == 0;
}

jn_err_t jn_provider_webhooks_record(PGconn *conn, long long env_id, const jn_provider_webhook_t *w,
                                     jn_job_ref_t *out)
{
    json_object *input = json_object_new_object();
    json_object_object_add(input, "stage", json_object_new_string("intake"));
    json_object_object_add(input, "integration_id", json_object_new_int64(w->integration_id));
    json_object_object_add(input, "integration", json_object_new_string(w->integration));
    json_object_object_add(input, "provider", json_object_new_string(w->provider));
    json_object_object_add(input, "body", json_object_new_string_len(w->body, (int)w->body_len));
    json_object_object_add(input, "headers",
                           w->headers ? json_object_get(w->headers) : json_object_new_object());
    json_object_object_add(input, "verified", json_object_new_boolean(w->verified));
    jn_job_new_t job = {.environment_id = env_id,
                        .kind = JN_JOB_WEBHOOK,
                        .input = input,
                        .max_attempts = JN_PROVIDER_WEBHOOK_ATTEMPTS};
    memset(out, 0, sizeof *out);
    jn_err_t err = jn_jobs_create(conn, &job, out->id);
    json_object_put(input);
    out->environment_id = env_id;
    out->kind = JN_JOB_WEBHOOK;
    return err;
}

jn_err_t jn_provider_webhooks_read(json_object *input, jn_provider_webhook_t *out)
{
    memset(out, 0, sizeof *out);
    json_object *v = NULL;
    if (!is_stage(input, "intake"))
        return JN_ERR_INVALID;
    out->integration = str_at(input, "integration");
    out->provider = str_at(input, "provider");
    out->body = str_at(input, "body");
    if (!out->integration || !out->provider || !out->body ||
        !json_object_object_get_ex(input, "integration_id", &v))
        return JN_ERR_INVALID;
    out->integration_id = json_object_get_int64(v);
    out->body_len = (size_t)json_object_get_string_len(json_object_object_get(input, "body"));
    if (json_object_object_get_ex(input, "headers", &v) && json_object_is_type(v, json_type_object))
        out->headers = v;
    out->verified = json_object_get_boolean(json_object_object_get(input, "verified"));
    return JN_OK;
}

/* The strings of a JSON array as a PostgreSQL array literal (new string). */
static char *text_array(json_object *values)
{
    size_t n = json_object_array_length(values);
    const char **items = calloc(n + 1, sizeof *items);
    if (!items)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(values, i));
        if (s)
            items[k++] = s;
    }
    char *text = jn_pg_text_array(items, k);
    free(items);
    return text;
}

jn_err_t jn_provider_webhooks_targets(PGconn *conn, long long env_id, long long integration_id,
                                      const char *config_key, json_object *values, size_t limit,
                                      jn_webhook_target_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (!values || json_object_array_length(values) == 0 || limit == 0)
        return JN_OK;
    char env[24], integration[24], lim[24];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(integration, sizeof integration, "%lld", integration_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    char *array = text_array(values);
    const char *params[] = {env, integration, array, lim, config_key};
    PGresult *r = NULL;
    /* The integration's connections are found by its index; the value is compared as text
     * (a payload's 123 matches a stored "123"). */
    jn_err_t err =
        config_key
            ? jn_pg_exec(
                  conn,
                  "SELECT c.id, c.connection_id, c.connection_config ->> $5 FROM connections c"
                  " WHERE c.environment_id = $1 AND c.integration_id = $2"
                  "   AND c.connection_config ->> $5 = ANY ($3::text[])"
                  " ORDER BY c.id LIMIT $4",
                  5, params, &r)
            : jn_pg_exec(conn,
                         "SELECT c.id, c.connection_id, c.connection_id FROM connections c"
                         " WHERE c.environment_id = $1 AND c.integration_id = $2"
                         "   AND c.connection_id = ANY ($3::text[])"
                         " ORDER BY c.id LIMIT $4",
                         4, params, &r);
    free(array);
    if (err)
        return err;
    int n = PQntuples(r);
    *out = calloc(n ? (size_t)n : 1, sizeof **out);
    if (!*out)
        abort();
    for (int i = 0; i < n; i++) {
        jn_webhook_target_t *t = &(*out)[i];
        t->row = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(t->connection_id, sizeof t->connection_id, "%s", PQgetvalue(r, i, 1));
        snprintf(t->route_value, sizeof t->route_value, "%s", PQgetvalue(r, i, 2));
    }
    *count = (size_t)n;
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_provider_webhooks_syncs(PGconn *conn, long long env_id, const long long *rows, size_t n,
                                    json_object *names, size_t limit, jn_webhook_sync_ref_t **out,
                                    size_t *count)
{
    *out = NULL;
    *count = 0;
    if (n == 0 || !names || json_object_array_length(names) == 0 || limit == 0)
        return JN_OK;
    char **ids = calloc(n, sizeof *ids);
    if (!ids)
        abort();
    for (size_t i = 0; i < n; i++) {
        ids[i] = malloc(24);
        if (!ids[i])
            abort();
        snprintf(ids[i], 24, "%lld", rows[i]);
    }
    char *id_array = jn_pg_text_array((const char *const *)ids, n);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    char *name_array = text_array(names);
    char env[24], lim[24];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *params[] = {env, id_array, name_array, lim};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT connection_id, name, variant FROM syncs"
                              " WHERE environment_id = $1 AND connection_id = ANY ($2::bigint[])"
                              "   AND name = ANY ($3::text[]) AND state = 'running'"
                              " ORDER BY connection_id, name, variant LIMIT $4",
                              4, params, &r);
    free(id_array);
    free(name_array);
    if (err)
        return err;
    int k = PQntuples(r);
    *out = calloc(k ? (size_t)k : 1, sizeof **out);
    if (!*out)
        abort();
    for (int i = 0; i < k; i++) {
        jn_webhook_sync_ref_t *s = &(*out)[i];
        s->connection_row = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        snprintf(s->name, sizeof s->name, "%s", PQgetvalue(r, i, 1));
        snprintf(s->variant, sizeof s->variant, "%s", PQgetvalue(r, i, 2));
    }
    *count = (size_t)k;
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_provider_webhooks_handler(PGconn *conn, long long env_id, const jn_webhook_handler_t *h,
                                      jn_job_ref_t *out)
{
    json_object *input = json_object_new_object();
    json_object_object_add(input, "stage", json_object_new_string("handler"));
    json_object_object_add(input, "intake", json_object_new_string(h->intake_id));
    json_object_object_add(input, "variant", json_object_new_string(h->variant));
    json_object_object_add(input, "route_path",
                           h->route_path ? json_object_new_string(h->route_path) : NULL);
    json_object_object_add(input, "route_value",
                           h->route_value ? json_object_new_string(h->route_value) : NULL);
    jn_job_new_t job = {.environment_id = env_id,
                        .kind = JN_JOB_WEBHOOK,
                        .connection_id = h->connection_row,
                        .function_name = h->sync_name,
                        .input = input,
                        .max_attempts = JN_PROVIDER_WEBHOOK_ATTEMPTS};
    memset(out, 0, sizeof *out);
    jn_err_t err = jn_jobs_create(conn, &job, out->id);
    json_object_put(input);
    out->environment_id = env_id;
    out->kind = JN_JOB_WEBHOOK;
    out->connection_id = h->connection_row;
    return err;
}

jn_err_t jn_provider_webhooks_read_handler(json_object *input, jn_webhook_handler_t *out)
{
    memset(out, 0, sizeof *out);
    if (!is_stage(input, "handler"))
        return JN_ERR_INVALID;
    out->intake_id = str_at(input, "intake");
    out->variant = str_at(input, "variant");
    out->route_path = str_at(input, "route_path");
    out->route_value = str_at(input, "route_value");
    return out->intake_id && out->variant ? JN_OK : JN_ERR_INVALID;
}
