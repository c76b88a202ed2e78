/*
 * provider_webhooks_api.c - POST /webhook/:environmentUuid/:providerConfigKey, where
 * providers send their webhooks (docs/api.md#provider-webhooks, docs/webhooks.md).
 *
 * Public: no secret key; the path names the environment and the integration. The route's
 * body cap is JUNCTION_WEBHOOK_MAX_BODY_BYTES for everyone (the server refuses a longer
 * body with 413 before or while reading it, never holding more than the cap). Then:
 * the environment (memory), the integration and its provider (one or two reads), the
 * signature the provider's catalog entry describes (HMAC over the capped body, compared
 * in constant time), and the intake job with the raw body and the headers a script may
 * need, whose message goes to <prefix>.webhooks. The answer is 200 before any script runs.
 *
 * Refusals change nothing: an unknown environment, integration, or a provider that sends
 * no webhooks all answer the same 404 (a caller learns nothing of which); a signature that
 * is missing, stale or wrong answers 401 (the reason is logged, not told). Work for a
 * hostile caller is bounded by the capped body: no JSON is parsed before the signature
 * holds.
 */
#include "routes.h"

#include <curl/curl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "net/job_message.h"
#include "providers/custom_providers.h"
#include "providers/webhook_routing.h"
#include "providers/webhook_spec.h"
#include "store/integrations.h"
#include "store/provider_webhooks.h"

#define ROUTE "/webhook/:environmentUuid/:providerConfigKey"
#define MAX_KEY 255

static void count(const char *outcome)
{
    char labels[64];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    jn_metric_inc(jn_metrics_counter("jn_gateway_provider_webhooks_total",
                                     "Provider webhooks received, by outcome", labels));
}

static void not_found(jn_http_response_t *res)
{
    count("unknown");
    jn_http_respond_error(res, 404, "unknown_webhook_target",
                          "no integration receives webhooks at this address");
}

void jn_provider_webhook_url(const jn_gateway_t *gw, const jn_environment_t *env,
                             const char *unique_key, char *out, size_t cap)
{
    char *key = curl_easy_escape(NULL, unique_key, 0);
    if (!key)
        abort();
    snprintf(out, cap, "%s/webhook/%s/%s", gw->engine->config.server_url, env->uuid, key);
    curl_free(key);
}

static const char *header_of(const char *name, void *ud)
{
    return jn_http_header(ud, name);
}

typedef struct {
    const jn_webhook_spec_t *spec;
    json_object *kept;
} headers_t;

/* Keeps the headers a script may need (jn_webhook_header_kept), names in lower case. */
static void keep_header(const char *name, const char *value, void *ud)
{
    headers_t *h = ud;
    char lower[80];
    size_t n = strlen(name);
    if (n >= sizeof lower || strlen(value) > JN_PROVIDER_WEBHOOK_HEADER_MAX)
        return;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    if (!jn_webhook_header_kept(h->spec, lower) ||
        json_object_object_get_ex(h->kept, lower, NULL) ||
        json_object_object_length(h->kept) >= JN_PROVIDER_WEBHOOK_HEADERS_MAX)
        return;
    json_object_object_add(h->kept, lower, json_object_new_string(value));
}

/* The URL the provider posted to, as some providers sign it (HubSpot's ${url}). */
static void request_url(const jn_gateway_t *gw, const jn_http_request_t *req, char *out, size_t cap)
{
    const char *query = jn_http_raw_query(req);
    snprintf(out, cap, "%s%s%s%s", gw->engine->config.server_url, req->raw_path, query ? "?" : "",
             query ? query : "");
}

/* The subscription check some providers send first (Slack's url_verification): answered
 * with what it asks for, recording nothing. True when req was one. */
static bool answer_challenge(const jn_webhook_spec_t *spec, const jn_http_request_t *req,
                             jn_http_response_t *res)
{
    if (!spec->challenge_path)
        return false;
    json_object *payload =
        jn_webhook_payload(req->body, req->body_len, jn_http_header(req, "Content-Type"));
    const char *answer = jn_webhook_challenge(spec, payload);
    if (answer) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "challenge", json_object_new_string(answer));
        jn_http_respond_json(res, 200, o);
        count("challenge");
    }
    json_object_put(payload);
    return answer != NULL;
}

static void receive(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    const char *uuid = jn_http_param(req, "environmentUuid");
    const char *key = jn_http_param(req, "providerConfigKey");
    char lower_uuid[40];
    jn_environment_t env;
    if (!uuid || !key || !*key || strlen(key) > MAX_KEY || !jn_uuid_shaped(uuid, true)) {
        not_found(res);
        return;
    }
    for (size_t i = 0; i <= 36; i++)
        lower_uuid[i] = (char)tolower((unsigned char)uuid[i]);
    if (jn_env_cache_get_by_uuid(gw->envs, lower_uuid, &env) != JN_OK) {
        not_found(res);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    jn_integration_t it;
    json_object *provider = NULL;
    jn_err_t err = jn_integrations_get(conn, &gw->keyring, env.id, key, true, &it);
    if (err) {
        jn_api_db_release(gw, conn);
        if (err == JN_ERR_NOT_FOUND)
            not_found(res);
        else
            jn_api_store_error(res, err, "the integration");
        return;
    }
    err = jn_providers_lookup(gw->catalog, conn, env.id, it.provider, &provider);
    jn_webhook_spec_t spec;
    if (!err && (err = jn_webhook_spec_read(provider, &spec)) == JN_ERR_INVALID)
        jn_log_warn("webhooks", "environment %s: provider '%s' has a malformed webhook section",
                    env.name, it.provider);
    if (err) {
        jn_api_db_release(gw, conn);
        if (err == JN_ERR_NOT_FOUND || err == JN_ERR_INVALID)
            not_found(res);
        else
            jn_api_store_error(res, err, "the provider");
        goto out;
    }
    /* The signature, before anything else reads the body. */
    char url[2048], why[256];
    request_url(gw, req, url, sizeof url);
    jn_webhook_request_t wr = {.method = req->method,
                               .url = url,
                               .body = req->body,
                               .body_len = req->body_len,
                               .header = header_of,
                               .ud = (void *)req,
                               .now = (long long)time(NULL)};
    if (jn_webhook_verify(&spec, it.webhook_secret,
                          it.webhook_secret ? strlen(it.webhook_secret) : 0, &wr, why,
                          sizeof why) != JN_OK) {
        jn_api_db_release(gw, conn);
        jn_log_warn("webhooks", "environment %s: webhook for integration '%s' refused: %s",
                    env.name, it.unique_key, why);
        count("refused");
        jn_http_respond_error(res, 401, "invalid_signature",
                              "the webhook's signature could not be verified");
        goto out;
    }
    if (memchr(req->body, '\0', req->body_len) || !jn_utf8_valid(req->body, req->body_len)) {
        jn_api_db_release(gw, conn);
        count("invalid");
        jn_http_respond_error(res, 400, "invalid_body", "a webhook's body must be UTF-8 text");
        goto out;
    }
    if (answer_challenge(&spec, req, res)) {
        jn_api_db_release(gw, conn);
        goto out;
    }
    headers_t kept = {&spec, json_object_new_object()};
    jn_http_header_each(req, keep_header, &kept);
    jn_provider_webhook_t w = {.integration_id = it.id,
                               .integration = it.unique_key,
                               .provider = it.provider,
                               .body = req->body,
                               .body_len = req->body_len,
                               .headers = kept.kept,
                               .verified = spec.scheme != JN_WEBHOOK_UNSIGNED};
    jn_job_ref_t job;
    err = jn_provider_webhooks_record(conn, env.id, &w, &job);
    jn_api_db_release(gw, conn);
    json_object_put(kept.kept);
    if (err) {
        jn_api_store_error(res, err, "the webhook");
        goto out;
    }
    if ((err = jn_job_message_send(gw->engine->producer, gw->engine->config.topic_prefix, &job)))
        jn_log_warn("webhooks",
                    "job %s: its message could not be queued (%s); the scheduler "
                    "resends it",
                    job.id, jn_err_str(err));
    count("accepted");
    jn_http_respond_text(res, 200, "text/plain", "");
out:
    json_object_put(provider);
    jn_integration_cleanup(&it);
}

void jn_routes_provider_webhooks(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route_add(
        http, &(jn_http_route_t){.method = "POST",
                                 .pattern = ROUTE,
                                 .handler = receive,
                                 .ud = gw,
                                 .max_body = (size_t)gw->engine->config.webhook_max_body_bytes});
}
