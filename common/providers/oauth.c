/*
 * oauth.c - OAuth 2 requests to providers: the blocking transport for token requests and
 * the authorization URL.
 *
 * Workload: a token exchange per new connection, a refresh per connection per token
 * lifetime: rare, latency-bound calls. Each uses its own curl handle.
 */
#include "providers/oauth.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/iso8601.h"
#include "providers/template.h"

/* ---- the blocking transport ---- */

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} answer_t;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    answer_t *a = ud;
    size_t n = size * nmemb;
    if (a->len + n > JN_OAUTH_MAX_ANSWER) {
        a->too_big = true;
        return 0;
    }
    char *grown = realloc(a->data, a->len + n + 1);
    if (!grown)
        abort();
    a->data = grown;
    memcpy(a->data + a->len, ptr, n);
    a->len += n;
    a->data[a->len] = '\0';
    return n;
}

jn_err_t jn_oauth_send(const jn_oauth_request_t *req, const jn_egress_policy_t *egress,
                       jn_oauth_token_t *out, jn_oauth_error_t *e)
{
    memset(e, 0, sizeof *e);
    CURL *curl = curl_easy_init();
    if (!curl)
        abort();
    struct curl_slist *headers = NULL;
    for (int i = 0; i < req->header_count; i++)
        headers = curl_slist_append(headers, req->headers[i]);
    answer_t answer = {0};
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, JN_OAUTH_TOKEN_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "junction/0.1");
    jn_egress_guard_t guard = {.policy = egress};
    jn_egress_guard_curl(curl, &guard);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    /* The list copies hold the Authorization header. */
    for (struct curl_slist *h = headers; h; h = h->next)
        jn_secure_wipe(h->data, strlen(h->data));
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);

    jn_err_t err;
    if (rc != CURLE_OK && guard.refused)
        err = jn_oauth_request_failed(e, true, "token request refused: %s", guard.reason);
    else if (rc != CURLE_OK)
        err = jn_oauth_request_failed(e, false, "token request to %s failed: %s", req->url,
                                      answer.too_big ? "the answer is larger than 1 MiB"
                                                     : curl_easy_strerror(rc));
    else
        err = jn_oauth_request_parse(req, status, answer.data, answer.len, out, e);
    if (answer.data) {
        jn_secure_wipe(answer.data, answer.len);
        free(answer.data);
    }
    return err;
}

/* Sends a built request, or passes on why it could not be built. */
static jn_err_t send_built(jn_err_t built, jn_oauth_request_t *req, const jn_oauth_client_t *client,
                           jn_oauth_token_t *out, jn_oauth_error_t *e)
{
    jn_err_t err = built ? built : jn_oauth_send(req, client->egress, out, e);
    jn_oauth_request_cleanup(req);
    return err;
}

jn_err_t jn_oauth_exchange_code(json_object *provider, const jn_oauth_client_t *client,
                                json_object *connection_config, const char *code,
                                const char *redirect_uri, const char *code_verifier,
                                jn_oauth_token_t *out, jn_oauth_error_t *err)
{
    jn_oauth_request_t req;
    jn_err_t built = jn_oauth_request_code(provider, client, connection_config, code, redirect_uri,
                                           code_verifier, &req, err);
    return send_built(built, &req, client, out, err);
}

jn_err_t jn_oauth_refresh(json_object *provider, const jn_oauth_client_t *client,
                          json_object *connection_config, const char *refresh_token,
                          jn_oauth_token_t *out, jn_oauth_error_t *err)
{
    jn_oauth_request_t req;
    jn_err_t built =
        jn_oauth_request_refresh(provider, client, connection_config, refresh_token, &req, err);
    return send_built(built, &req, client, out, err);
}

jn_err_t jn_oauth_client_credentials(json_object *provider, const jn_oauth_client_t *client,
                                     json_object *connection_config, const char *scopes,
                                     jn_oauth_token_t *out, jn_oauth_error_t *err)
{
    jn_oauth_request_t req;
    jn_err_t built =
        jn_oauth_request_client_credentials(provider, client, connection_config, scopes, &req, err);
    return send_built(built, &req, client, out, err);
}

/* ---- the authorization URL ---- */

static void append_query(char **url, CURL *curl, const char *key, const char *value)
{
    if (!value)
        return;
    char *k = curl_easy_escape(curl, key, 0);
    char *v = curl_easy_escape(curl, value, 0);
    size_t n = strlen(*url) + strlen(k) + strlen(v) + 3;
    char *grown = realloc(*url, n);
    if (!grown)
        abort();
    bool has_query = strchr(grown, '?') != NULL;
    size_t at = strlen(grown);
    snprintf(grown + at, n - at, "%c%s=%s", has_query ? '&' : '?', k, v);
    *url = grown;
    curl_free(k);
    curl_free(v);
}

jn_err_t jn_oauth_authorize_url(json_object *provider, const char *client_id, const char *scopes,
                                json_object *connection_config, const char *redirect_uri,
                                const char *state, const char *code_challenge, char **url,
                                char *why, size_t why_len)
{
    jn_err_t err =
        jn_oauth_render_url(provider, "authorization_url", connection_config, url, why, why_len);
    if (err)
        return err;
    CURL *curl = curl_easy_init();
    if (!curl)
        abort();
    json_object *params = NULL, *rt = NULL;
    bool has_response_type = json_object_object_get_ex(provider, "authorization_params", &params) &&
                             json_object_object_get_ex(params, "response_type", &rt);
    if (!has_response_type)
        append_query(url, curl, "response_type", "code");
    append_query(url, curl, "client_id", client_id);
    append_query(url, curl, "redirect_uri", redirect_uri);
    char *scope = jn_oauth_join_scopes(provider, scopes);
    if (*scope)
        append_query(url, curl, "scope", scope);
    free(scope);
    append_query(url, curl, "state", state);
    if (code_challenge) {
        append_query(url, curl, "code_challenge", code_challenge);
        append_query(url, curl, "code_challenge_method", "S256");
    }
    if (params && json_object_is_type(params, json_type_object)) {
        json_object_object_foreach(params, key, tmpl)
        {
            char *value = NULL, twhy[128];
            bool complete = false;
            if (jn_template_render(json_object_get_string(tmpl), jn_oauth_config_lookup,
                                   connection_config, &value, &complete, twhy,
                                   sizeof twhy) == JN_OK &&
                complete)
                append_query(url, curl, key, value);
            free(value);
        }
    }
    curl_easy_cleanup(curl);
    return JN_OK;
}

json_object *jn_oauth_credentials(const jn_oauth_token_t *t, const char *type,
                                  const jn_oauth_client_t *client)
{
    json_object *c = json_object_new_object();
    bool cc = strcmp(type, "OAUTH2_CC") == 0;
    json_object_object_add(c, "type", json_object_new_string(type));
    json_object_object_add(c, cc ? "token" : "access_token",
                           json_object_new_string(t->access_token));
    if (!cc && t->refresh_token)
        json_object_object_add(c, "refresh_token", json_object_new_string(t->refresh_token));
    if (t->expires_at > 0) {
        char iso[JN_ISO8601_LEN];
        jn_iso8601_format(t->expires_at, iso);
        json_object_object_add(c, "expires_at", json_object_new_string(iso));
    }
    if (cc && client && client->client_id)
        json_object_object_add(c, "client_id", json_object_new_string(client->client_id));
    if (cc && client && client->client_secret)
        json_object_object_add(c, "client_secret", json_object_new_string(client->client_secret));
    json_object *raw = NULL;
    if (t->raw)
        json_object_deep_copy(t->raw, &raw, NULL);
    json_object_object_add(c, "raw", raw ? raw : json_object_new_object());
    return c;
}

/* base64url without padding, as RFC 7636 wants. */
static void base64url(const unsigned char *bin, size_t len, char *out)
{
    jn_base64_encode(bin, len, out);
    char *w = out;
    for (char *p = out; *p; p++) {
        if (*p == '=')
            continue;
        *w++ = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    *w = '\0';
}

void jn_oauth_pkce(char verifier[64], char challenge[64])
{
    unsigned char random[32];
    jn_crypto_random(random, sizeof random);
    base64url(random, sizeof random, verifier); /* 43 characters */
    unsigned char digest[32];
    jn_crypto_sha256(verifier, strlen(verifier), digest);
    base64url(digest, sizeof digest, challenge);
}
