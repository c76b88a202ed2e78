/*
 * oauth.c - OAuth 2 requests to providers.
 *
 * Workload: a token exchange per new connection, a refresh per connection per token
 * lifetime: rare, latency-bound calls. Each uses its own curl handle.
 */
#include "providers/oauth.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/iso8601.h"
#include "core/log.h"
#include "providers/connection_config.h"
#include "providers/template.h"

#define TOKEN_TIMEOUT_MS 15000L
#define MAX_ANSWER (1024 * 1024)

/* ---- templates ---- */

static const char *config_lookup(const char *name, void *ud)
{
    json_object *config = ud, *v = NULL;
    if (config && strncmp(name, "connectionConfig.", 17) == 0 &&
        json_object_object_get_ex(config, name + 17, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

/* Renders a template that must resolve completely (a URL). The config is checked first:
 * a value the provider does not admit (a host outside its allow-list) never becomes the
 * address that a client secret or an end user's browser is sent to. */
static jn_err_t render_required(json_object *provider, const char *field, json_object *config,
                                char **out, char *why, size_t why_len)
{
    jn_field_error_t fe;
    *out = NULL;
    if (jn_connection_config_check(provider, config, JN_CONNCFG_VALUES, &fe) != JN_OK) {
        snprintf(why, why_len, "%s: %s", fe.path, fe.message);
        return JN_ERR_INVALID;
    }
    json_object *v = NULL;
    if (!json_object_object_get_ex(provider, field, &v) ||
        !json_object_is_type(v, json_type_string)) {
        snprintf(why, why_len, "the provider has no %s", field);
        return JN_ERR_INVALID;
    }
    bool complete = false;
    char twhy[256];
    jn_err_t err = jn_template_render(json_object_get_string(v), config_lookup, config, out,
                                      &complete, twhy, sizeof twhy);
    if (err) {
        snprintf(why, why_len, "%s: %s", field, twhy);
        return err;
    }
    if (!complete) {
        snprintf(why, why_len, "%s needs connection_config values that were not given (%s)", field,
                 *out);
        free(*out);
        *out = NULL;
        return JN_ERR_INVALID;
    }
    return JN_OK;
}

static const char *provider_string(json_object *provider, const char *field, const char *dflt)
{
    json_object *v = NULL;
    if (json_object_object_get_ex(provider, field, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return dflt;
}

/* ---- a small form/JSON body builder ---- */

typedef struct {
    CURL *curl; /* for escaping */
    bool json;
    json_object *obj;
    char *form;
    size_t len, cap;
} body_t;

static void body_add(body_t *b, const char *key, const char *value)
{
    if (!value)
        return;
    if (b->json) {
        json_object_object_add(b->obj, key, json_object_new_string(value));
        return;
    }
    char *k = curl_easy_escape(b->curl, key, 0);
    char *v = curl_easy_escape(b->curl, value, 0);
    size_t need = b->len + strlen(k) + strlen(v) + 3;
    if (need > b->cap) {
        b->cap = need * 2;
        b->form = realloc(b->form, b->cap);
        if (!b->form)
            abort();
    }
    b->len +=
        (size_t)snprintf(b->form + b->len, b->cap - b->len, "%s%s=%s", b->len ? "&" : "", k, v);
    jn_secure_wipe(v, strlen(v));
    curl_free(k);
    curl_free(v);
}

/* Adds a provider's params object (templates); a param whose template does not resolve is
 * left out, as documented. */
static void body_add_params(body_t *b, json_object *provider, const char *field,
                            json_object *config, const char *skip)
{
    json_object *params = NULL;
    if (!json_object_object_get_ex(provider, field, &params) ||
        !json_object_is_type(params, json_type_object))
        return;
    json_object_object_foreach(params, key, tmpl)
    {
        if (skip && strcmp(key, skip) == 0)
            continue;
        char *value = NULL, why[128];
        bool complete = false;
        if (jn_template_render(json_object_get_string(tmpl), config_lookup, config, &value,
                               &complete, why, sizeof why) == JN_OK &&
            complete)
            body_add(b, key, value);
        free(value);
    }
}

/* ---- the request ---- */

typedef struct {
    char *data;
    size_t len;
    bool too_big;
} answer_t;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    answer_t *a = ud;
    size_t n = size * nmemb;
    if (a->len + n > MAX_ANSWER) {
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

static long long parse_expires_in(json_object *v)
{
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
        return (long long)json_object_get_double(v);
    if (json_object_is_type(v, json_type_string))
        return strtoll(json_object_get_string(v), NULL, 10);
    return 0;
}

static char *dup_field(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0)
        return NULL;
    char *s = strdup(json_object_get_string(v));
    if (!s)
        abort();
    return s;
}

static jn_err_t fail(jn_oauth_error_t *e, int status, bool invalid_grant, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static jn_err_t fail(jn_oauth_error_t *e, int status, bool invalid_grant, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->http_status = status;
    e->invalid_grant = invalid_grant;
    return status >= 500 || status == 0 ? JN_ERR_UPSTREAM : JN_ERR_INVALID;
}

/* POSTs to the provider's token (or refresh) URL and parses the answer into out. */
static jn_err_t token_request(json_object *provider, const char *url_field,
                              const jn_oauth_client_t *client, json_object *config, body_t *b,
                              jn_oauth_token_t *out, jn_oauth_error_t *e)
{
    memset(e, 0, sizeof *e);
    char *url = NULL, why[256];
    jn_err_t err = render_required(provider, url_field, config, &url, why, sizeof why);
    if (err == JN_ERR_INVALID && strcmp(url_field, "refresh_url") == 0)
        err = render_required(provider, "token_url", config, &url, why, sizeof why);
    if (err) {
        fail(e, 0, false, "%s", why);
        return JN_ERR_INVALID; /* a configuration problem, not the provider's */
    }

    bool basic =
        strcmp(provider_string(provider, "token_request_auth_method", "body"), "basic") == 0;
    if (!basic) {
        body_add(b, "client_id", client->client_id);
        body_add(b, "client_secret", client->client_secret);
    }
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Accept: application/json");
    headers =
        curl_slist_append(headers, b->json ? "Content-Type: application/json"
                                           : "Content-Type: application/x-www-form-urlencoded");
    const char *payload = b->json ? json_object_to_json_string_ext(b->obj, JSON_C_TO_STRING_PLAIN)
                                  : (b->form ? b->form : "");
    answer_t answer = {0};
    CURL *curl = b->curl;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TOKEN_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "junction/0.1");
    if (basic) {
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(curl, CURLOPT_USERNAME, client->client_id ? client->client_id : "");
        curl_easy_setopt(curl, CURLOPT_PASSWORD,
                         client->client_secret ? client->client_secret : "");
    }
    jn_egress_guard_t guard = {.policy = client->egress};
    jn_egress_guard_curl(curl, &guard);
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);

    if (rc != CURLE_OK && guard.refused) {
        err = fail(e, 0, false, "token request refused: %s", guard.reason);
        free(url);
        free(answer.data);
        return JN_ERR_INVALID;
    }
    if (rc != CURLE_OK) {
        err = fail(e, 0, false, "token request to %s failed: %s", url,
                   answer.too_big ? "the answer is larger than 1 MiB" : curl_easy_strerror(rc));
        free(url);
        free(answer.data);
        return err;
    }
    json_object *json = answer.data ? json_tokener_parse(answer.data) : NULL;
    free(answer.data);
    if (!json || !json_object_is_type(json, json_type_object)) {
        json_object_put(json);
        err = fail(e, (int)status, false, "the provider answered HTTP %ld without a JSON object",
                   status);
        free(url);
        return err;
    }
    char *error = dup_field(json, "error");
    if (status < 200 || status >= 300 || error) {
        char *desc = dup_field(json, "error_description");
        bool dead = error && strcmp(error, "invalid_grant") == 0;
        err =
            fail(e, (int)status, dead, "the provider refused the token request (HTTP %ld): %s%s%s",
                 status, error ? error : "no error code", desc ? ": " : "", desc ? desc : "");
        free(error);
        free(desc);
        json_object_put(json);
        free(url);
        return err;
    }
    memset(out, 0, sizeof *out);
    out->access_token = dup_field(json, "access_token");
    if (!out->access_token) {
        json_object_put(json);
        free(url);
        return fail(e, (int)status, false, "the provider's answer has no access_token");
    }
    out->refresh_token = dup_field(json, "refresh_token");
    json_object *expires = NULL;
    json_object_object_get_ex(json, "expires_in", &expires);
    long long in = parse_expires_in(expires);
    out->expires_at = in > 0 ? (long long)time(NULL) + in : 0;
    out->raw = json;
    free(url);
    return JN_OK;
}

static void body_init(body_t *b, json_object *provider)
{
    memset(b, 0, sizeof *b);
    b->curl = curl_easy_init();
    if (!b->curl)
        abort();
    b->json = strcmp(provider_string(provider, "token_request_body_format", "form"), "json") == 0;
    if (b->json)
        b->obj = json_object_new_object();
}

static void body_cleanup(body_t *b)
{
    curl_easy_cleanup(b->curl);
    json_object_put(b->obj);
    if (b->form) {
        jn_secure_wipe(b->form, b->len);
        free(b->form);
    }
}

jn_err_t jn_oauth_exchange_code(json_object *provider, const jn_oauth_client_t *client,
                                json_object *connection_config, const char *code,
                                const char *redirect_uri, const char *code_verifier,
                                jn_oauth_token_t *out, jn_oauth_error_t *err)
{
    body_t b;
    body_init(&b, provider);
    body_add(&b, "grant_type", "authorization_code");
    body_add_params(&b, provider, "token_params", connection_config, "grant_type");
    body_add(&b, "code", code);
    body_add(&b, "redirect_uri", redirect_uri);
    body_add(&b, "code_verifier", code_verifier);
    jn_err_t e = token_request(provider, "token_url", client, connection_config, &b, out, err);
    body_cleanup(&b);
    return e;
}

jn_err_t jn_oauth_refresh(json_object *provider, const jn_oauth_client_t *client,
                          json_object *connection_config, const char *refresh_token,
                          jn_oauth_token_t *out, jn_oauth_error_t *err)
{
    body_t b;
    body_init(&b, provider);
    body_add(&b, "grant_type", "refresh_token");
    body_add_params(&b, provider, "refresh_params", connection_config, "grant_type");
    body_add(&b, "refresh_token", refresh_token);
    const char *field =
        provider_string(provider, "refresh_url", NULL) ? "refresh_url" : "token_url";
    jn_err_t e = token_request(provider, field, client, connection_config, &b, out, err);
    body_cleanup(&b);
    return e;
}

typedef struct {
    char *data;
    size_t len;
} scope_text_t;

static void scope_add(scope_text_t *t, const char *sep, const char *scope, size_t n)
{
    while (n > 0 && *scope == ' ') {
        scope++;
        n--;
    }
    while (n > 0 && scope[n - 1] == ' ')
        n--;
    if (n == 0)
        return;
    size_t extra = (t->len ? strlen(sep) : 0) + n;
    t->data = realloc(t->data, t->len + extra + 1);
    if (!t->data)
        abort();
    if (t->len) {
        memcpy(t->data + t->len, sep, strlen(sep));
        t->len += strlen(sep);
    }
    memcpy(t->data + t->len, scope, n);
    t->len += n;
    t->data[t->len] = '\0';
}

/* The scope parameter: the integration's comma-separated scopes, or the provider's
 * default_scopes, joined with the provider's separator. New string ("" when none). */
static char *join_scopes(json_object *provider, const char *scopes)
{
    const char *sep = provider_string(provider, "scope_separator", " ");
    scope_text_t t = {0};
    json_object *defaults = NULL;
    if (scopes) {
        for (const char *p = scopes; *p;) {
            size_t n = strcspn(p, ",");
            scope_add(&t, sep, p, n);
            p += n;
            if (*p == ',')
                p++;
        }
    } else if (json_object_object_get_ex(provider, "default_scopes", &defaults)) {
        for (size_t i = 0; i < json_object_array_length(defaults); i++) {
            const char *scope = json_object_get_string(json_object_array_get_idx(defaults, i));
            scope_add(&t, sep, scope, strlen(scope));
        }
    }
    if (!t.data) {
        t.data = strdup("");
        if (!t.data)
            abort();
    }
    return t.data;
}

jn_err_t jn_oauth_client_credentials(json_object *provider, const jn_oauth_client_t *client,
                                     json_object *connection_config, const char *scopes,
                                     jn_oauth_token_t *out, jn_oauth_error_t *err)
{
    body_t b;
    body_init(&b, provider);
    body_add_params(&b, provider, "token_params", connection_config, NULL);
    json_object *params = NULL, *grant = NULL;
    if (!json_object_object_get_ex(provider, "token_params", &params) ||
        !json_object_object_get_ex(params, "grant_type", &grant))
        body_add(&b, "grant_type", "client_credentials");
    char *scope = join_scopes(provider, scopes);
    if (*scope)
        body_add(&b, "scope", scope);
    free(scope);
    jn_err_t e = token_request(provider, "token_url", client, connection_config, &b, out, err);
    body_cleanup(&b);
    return e;
}

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
        render_required(provider, "authorization_url", connection_config, url, why, why_len);
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
    char *scope = join_scopes(provider, scopes);
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
            if (jn_template_render(json_object_get_string(tmpl), config_lookup, connection_config,
                                   &value, &complete, twhy, sizeof twhy) == JN_OK &&
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
    if (cc && client) {
        json_object_object_add(c, "client_id", json_object_new_string(client->client_id));
        json_object_object_add(c, "client_secret", json_object_new_string(client->client_secret));
    }
    json_object *raw = NULL;
    if (t->raw)
        json_object_deep_copy(t->raw, &raw, NULL);
    json_object_object_add(c, "raw", raw ? raw : json_object_new_object());
    return c;
}

void jn_oauth_token_cleanup(jn_oauth_token_t *t)
{
    if (t->access_token) {
        jn_secure_wipe(t->access_token, strlen(t->access_token));
        free(t->access_token);
    }
    if (t->refresh_token) {
        jn_secure_wipe(t->refresh_token, strlen(t->refresh_token));
        free(t->refresh_token);
    }
    json_object_put(t->raw);
    memset(t, 0, sizeof *t);
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
