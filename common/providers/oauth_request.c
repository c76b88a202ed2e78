/*
 * oauth_request.c - building OAuth 2 token requests and reading their answers, without I/O.
 *
 * Workload: a token exchange per new connection, a refresh per connection per token
 * lifetime. Bodies are small: a growing buffer with a cap is plenty.
 */
#include "providers/oauth_request.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "providers/connection_config.h"
#include "providers/template.h"

/* A form body never comes near this; it bounds what a hostile template could grow. */
#define MAX_BODY (256 * 1024)

/* ---- templates ---- */

const char *jn_oauth_config_lookup(const char *name, void *ud)
{
    json_object *config = ud, *v = NULL;
    if (config && strncmp(name, "connectionConfig.", 17) == 0 &&
        json_object_object_get_ex(config, name + 17, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

jn_err_t jn_oauth_render_url(json_object *provider, const char *field, json_object *config,
                             char **out, char *why, size_t why_len)
{
    json_object *v = NULL;
    *out = NULL;
    /* The config is checked first: a value the provider does not admit (a host outside its
     * allow-list) never becomes the address that a client secret or an end user's browser
     * is sent to. */
    jn_field_error_t fe;
    if (jn_connection_config_check(provider, config, JN_CONNCFG_VALUES, &fe) != JN_OK) {
        snprintf(why, why_len, "%s: %s", fe.path, fe.message);
        return JN_ERR_INVALID;
    }
    if (!json_object_object_get_ex(provider, field, &v) ||
        !json_object_is_type(v, json_type_string)) {
        snprintf(why, why_len, "the provider has no %s", field);
        return JN_ERR_INVALID;
    }
    bool complete = false;
    char twhy[256];
    jn_err_t err = jn_template_render(json_object_get_string(v), jn_oauth_config_lookup, config,
                                      out, &complete, twhy, sizeof twhy);
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

/* ---- scopes ---- */

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

char *jn_oauth_join_scopes(json_object *provider, const char *scopes)
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

/* ---- the body: form or JSON ---- */

typedef struct {
    bool json;
    json_object *obj;
    char *form;
    size_t len, cap;
    bool too_big;
} body_t;

static void body_init(body_t *b, json_object *provider)
{
    memset(b, 0, sizeof *b);
    b->json = strcmp(provider_string(provider, "token_request_body_format", "form"), "json") == 0;
    if (b->json)
        b->obj = json_object_new_object();
}

static void body_add(body_t *b, const char *key, const char *value)
{
    if (!value)
        return;
    if (b->json) {
        json_object_object_add(b->obj, key, json_object_new_string(value));
        return;
    }
    char *k = curl_easy_escape(NULL, key, 0);
    char *v = curl_easy_escape(NULL, value, 0);
    if (!k || !v)
        abort();
    size_t need = b->len + strlen(k) + strlen(v) + 3;
    if (need > MAX_BODY) {
        b->too_big = true;
    } else {
        if (need > b->cap) {
            size_t cap = need * 2;
            char *grown = malloc(cap);
            if (!grown)
                abort();
            if (b->form) {
                memcpy(grown, b->form, b->len + 1);
                jn_secure_wipe(b->form, b->cap);
                free(b->form);
            }
            b->form = grown;
            b->cap = cap;
        }
        b->len +=
            (size_t)snprintf(b->form + b->len, b->cap - b->len, "%s%s=%s", b->len ? "&" : "", k, v);
    }
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
        if (jn_template_render(json_object_get_string(tmpl), jn_oauth_config_lookup, config, &value,
                               &complete, why, sizeof why) == JN_OK &&
            complete)
            body_add(b, key, value);
        free(value);
    }
}

static void body_cleanup(body_t *b)
{
    json_object_put(b->obj);
    if (b->form) {
        jn_secure_wipe(b->form, b->cap);
        free(b->form);
    }
    memset(b, 0, sizeof *b);
}

/* ---- errors ---- */

static jn_err_t fail_status(jn_oauth_error_t *e, int status, bool grant_dead, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static jn_err_t fail_status(jn_oauth_error_t *e, int status, bool grant_dead, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->http_status = status;
    e->grant_dead = grant_dead;
    /* No answer, the provider's own trouble and rate limits pass; refusals do not. */
    return status == 0 || status >= 500 || status == 429 ? JN_ERR_UPSTREAM : JN_ERR_INVALID;
}

jn_err_t jn_oauth_request_failed(jn_oauth_error_t *e, bool refused, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->http_status = 0;
    e->grant_dead = false;
    return refused ? JN_ERR_INVALID : JN_ERR_UPSTREAM;
}

/* True when the OAuth error code means the grant is gone for good. */
static bool grant_is_dead(jn_oauth_grant_t grant, const char *code)
{
    static const char *const dead[] = {"invalid_grant", "invalid_refresh_token", "token_revoked",
                                       "token_expired", NULL};
    static const char *const dead_client[] = {"invalid_client", "unauthorized_client", NULL};
    if (!code)
        return false;
    for (size_t i = 0; dead[i]; i++) {
        if (strcmp(code, dead[i]) == 0)
            return true;
    }
    for (size_t i = 0; grant == JN_OAUTH_GRANT_CLIENT_CREDENTIALS && dead_client[i]; i++) {
        if (strcmp(code, dead_client[i]) == 0)
            return true;
    }
    return false;
}

/* ---- building ---- */

static void add_header(jn_oauth_request_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_header(jn_oauth_request_t *req, const char *fmt, ...)
{
    if (req->header_count == JN_OAUTH_MAX_HEADERS)
        abort(); /* a fixed set of at most four headers: more is a bug here */
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    if (vasprintf(&line, fmt, ap) < 0)
        abort();
    va_end(ap);
    req->headers[req->header_count++] = line;
}

/* Finishes a request: the URL, client authentication, headers, the body. Takes b. */
static jn_err_t finish(json_object *provider, const char *url_field,
                       const jn_oauth_client_t *client, json_object *config, jn_oauth_grant_t grant,
                       body_t *b, jn_oauth_request_t *req, jn_oauth_error_t *e)
{
    memset(req, 0, sizeof *req);
    memset(e, 0, sizeof *e);
    req->grant = grant;
    char why[256];
    jn_err_t err = jn_oauth_render_url(provider, url_field, config, &req->url, why, sizeof why);
    if (err) {
        body_cleanup(b);
        fail_status(e, 0, false, "%s", why);
        return JN_ERR_INVALID; /* a configuration problem, not the provider's */
    }
    bool basic =
        strcmp(provider_string(provider, "token_request_auth_method", "body"), "basic") == 0;
    if (!basic) {
        body_add(b, "client_id", client->client_id);
        body_add(b, "client_secret", client->client_secret);
    }
    if (b->too_big) {
        body_cleanup(b);
        jn_oauth_request_cleanup(req);
        fail_status(e, 0, false, "the token request would exceed %d bytes", MAX_BODY);
        return JN_ERR_INVALID;
    }
    add_header(req, "Accept: application/json");
    add_header(req, "Content-Type: %s",
               b->json ? "application/json" : "application/x-www-form-urlencoded");
    if (basic) {
        /* RFC 7617 user-pass as most providers read it: id ":" secret, unescaped. */
        const char *id = client->client_id ? client->client_id : "";
        const char *secret = client->client_secret ? client->client_secret : "";
        size_t n = strlen(id) + 1 + strlen(secret);
        char *pair = malloc(n + 1);
        char *b64 = malloc(4 * ((n + 2) / 3) + 1);
        if (!pair || !b64)
            abort();
        snprintf(pair, n + 1, "%s:%s", id, secret);
        jn_base64_encode((const unsigned char *)pair, n, b64);
        add_header(req, "Authorization: Basic %s", b64);
        jn_secure_wipe(pair, n);
        jn_secure_wipe(b64, strlen(b64));
        free(pair);
        free(b64);
    }
    if (b->json) {
        size_t len = 0;
        const char *text = json_object_to_json_string_length(b->obj, JSON_C_TO_STRING_PLAIN, &len);
        req->body = malloc(len + 1);
        if (!req->body)
            abort();
        memcpy(req->body, text, len + 1);
        req->body_len = len;
        jn_secure_wipe((char *)text, len);
    } else {
        req->body = b->form ? b->form : strdup("");
        if (!req->body)
            abort();
        req->body_len = b->len;
        b->form = NULL;
    }
    body_cleanup(b);
    return JN_OK;
}

jn_err_t jn_oauth_request_code(json_object *provider, const jn_oauth_client_t *client,
                               json_object *connection_config, const char *code,
                               const char *redirect_uri, const char *code_verifier,
                               jn_oauth_request_t *req, jn_oauth_error_t *e)
{
    body_t b;
    body_init(&b, provider);
    body_add(&b, "grant_type", "authorization_code");
    body_add_params(&b, provider, "token_params", connection_config, "grant_type");
    body_add(&b, "code", code);
    body_add(&b, "redirect_uri", redirect_uri);
    body_add(&b, "code_verifier", code_verifier);
    return finish(provider, "token_url", client, connection_config, JN_OAUTH_GRANT_CODE, &b, req,
                  e);
}

jn_err_t jn_oauth_request_refresh(json_object *provider, const jn_oauth_client_t *client,
                                  json_object *connection_config, const char *refresh_token,
                                  jn_oauth_request_t *req, jn_oauth_error_t *e)
{
    body_t b;
    body_init(&b, provider);
    body_add(&b, "grant_type", "refresh_token");
    body_add_params(&b, provider, "refresh_params", connection_config, "grant_type");
    body_add(&b, "refresh_token", refresh_token);
    const char *field =
        provider_string(provider, "refresh_url", NULL) ? "refresh_url" : "token_url";
    return finish(provider, field, client, connection_config, JN_OAUTH_GRANT_REFRESH, &b, req, e);
}

jn_err_t jn_oauth_request_client_credentials(json_object *provider, const jn_oauth_client_t *client,
                                             json_object *connection_config, const char *scopes,
                                             jn_oauth_request_t *req, jn_oauth_error_t *e)
{
    body_t b;
    body_init(&b, provider);
    body_add_params(&b, provider, "token_params", connection_config, NULL);
    json_object *params = NULL, *grant = NULL;
    if (!json_object_object_get_ex(provider, "token_params", &params) ||
        !json_object_object_get_ex(params, "grant_type", &grant))
        body_add(&b, "grant_type", "client_credentials");
    char *scope = jn_oauth_join_scopes(provider, scopes);
    if (*scope)
        body_add(&b, "scope", scope);
    free(scope);
    return finish(provider, "token_url", client, connection_config,
                  JN_OAUTH_GRANT_CLIENT_CREDENTIALS, &b, req, e);
}

void jn_oauth_request_cleanup(jn_oauth_request_t *req)
{
    free(req->url);
    for (int i = 0; i < req->header_count; i++) {
        jn_secure_wipe(req->headers[i], strlen(req->headers[i]));
        free(req->headers[i]);
    }
    if (req->body) {
        jn_secure_wipe(req->body, req->body_len);
        free(req->body);
    }
    memset(req, 0, sizeof *req);
}

/* ---- reading the answer ---- */

static long long parse_expires_in(json_object *v)
{
    long long n = 0;
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
        n = (long long)json_object_get_double(v);
    else if (json_object_is_type(v, json_type_string))
        n = strtoll(json_object_get_string(v), NULL, 10);
    return n > 0 ? n : 0;
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

jn_err_t jn_oauth_request_parse(const jn_oauth_request_t *req, long status, const char *body,
                                size_t body_len, jn_oauth_token_t *out, jn_oauth_error_t *e)
{
    memset(e, 0, sizeof *e);
    json_object *json = NULL;
    if (body && body_len > 0 && body_len <= JN_OAUTH_MAX_ANSWER) {
        json_tokener *tok = json_tokener_new();
        if (!tok)
            abort();
        json = json_tokener_parse_ex(tok, body, (int)body_len);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(json);
            json = NULL;
        }
        json_tokener_free(tok);
    }
    if (!json || !json_object_is_type(json, json_type_object)) {
        json_object_put(json);
        return fail_status(e, (int)status, false,
                           "the provider answered HTTP %ld without a JSON object", status);
    }
    /* Some providers (Slack) answer 200 with {"ok": false, "error": "..."}. */
    char *error = dup_field(json, "error");
    if (status < 200 || status >= 300 || error) {
        char *desc = dup_field(json, "error_description");
        jn_err_t err =
            fail_status(e, (int)status, grant_is_dead(req->grant, error),
                        "the provider refused the token request (HTTP %ld): %s%s%s", status,
                        error ? error : "no error code", desc ? ": " : "", desc ? desc : "");
        free(error);
        free(desc);
        json_object_put(json);
        return err;
    }
    jn_oauth_token_t t = {0};
    t.access_token = dup_field(json, "access_token");
    if (!t.access_token) {
        json_object_put(json);
        return fail_status(e, (int)status, false, "the provider's answer has no access_token");
    }
    t.refresh_token = dup_field(json, "refresh_token");
    json_object *expires = NULL;
    json_object_object_get_ex(json, "expires_in", &expires);
    t.expires_in = parse_expires_in(expires);
    t.expires_at = t.expires_in > 0 ? (long long)time(NULL) + t.expires_in : 0;
    t.raw = json;
    *out = t;
    return JN_OK;
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
