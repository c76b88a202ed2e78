/*
 * fake_provider_oauth.c - the OAuth 2 authorization server of the fake provider.
 *
 *   GET  /oauth/authorize  auto-approves: 302 back to redirect_uri with code and state
 *   POST /oauth/token      authorization_code (with PKCE S256 or plain), refresh_token
 *                          and client_credentials grants
 * Codes live 10 minutes and are consumed by the first successful exchange only, so a
 * test may retry a failed exchange (a wrong verifier) with the same code. Access tokens
 * are "at_" + 32 hex digits, refresh tokens "rt_" + 32; refresh tokens never expire but
 * can be revoked (/_admin/revoke) or rotated away. Every token request is counted and
 * remembered (secrets redacted) for /_admin/stats, whatever its outcome.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "fake_provider.h"
#include "core/json_util.h"

/* A growable string; aborts when out of memory. */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_append(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown)
            abort();
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends s percent-encoded for a query component (RFC 3986 unreserved kept). */
static void sb_append_encoded(sbuf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            sb_append(b, (const char *)&c, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_append(b, esc, 3);
        }
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes len bytes of a form component ("+" is a space; a bad escape stays as it is).
 * Returns a new string. */
static char *form_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%' && hi >= 0 && lo >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

/* Parses an application/x-www-form-urlencoded body into a new object of strings (a
 * repeated field: the last one wins). */
static json_object *parse_form(const char *body, size_t len)
{
    json_object *out = json_object_new_object();
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(body + i, '=', end - i);
            size_t key_len = eq ? (size_t)(eq - (body + i)) : end - i;
            char *key = form_decode(body + i, key_len);
            char *value =
                eq ? form_decode(eq + 1, (size_t)(body + end - eq - 1)) : form_decode("", 0);
            json_object_object_add(out, key, json_object_new_string(value));
            free(key);
            free(value);
        }
        i = end + 1;
    }
    return out;
}

/* The token request's parameters from a JSON body: scalars become strings. */
static json_object *params_from_json(const char *body, size_t len)
{
    json_object *parsed = NULL, *out = json_object_new_object();
    jn_field_error_t e;
    if (jn_json_parse(body, len, true, &parsed, &e) != JN_OK)
        return out;
    json_object_object_foreach(parsed, key, value)
    {
        if (json_object_is_type(value, json_type_string) ||
            json_object_is_type(value, json_type_int) ||
            json_object_is_type(value, json_type_double) ||
            json_object_is_type(value, json_type_boolean))
            json_object_object_add(out, key, json_object_new_string(json_object_get_string(value)));
    }
    json_object_put(parsed);
    return out;
}

static const char *param(json_object *params, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(params, key, &v) ? json_object_get_string(v) : NULL;
}

static bool secret_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && jn_crypto_equal(a, b, n);
}

/* BASE64URL-NOPAD(SHA256(verifier)) into out (at least 44 bytes). */
static void s256_challenge(const char *verifier, char out[48])
{
    unsigned char digest[32];
    jn_crypto_sha256(verifier, strlen(verifier), digest);
    jn_base64_encode(digest, sizeof digest, out);
    size_t n = 0;
    for (size_t i = 0; out[i]; i++) {
        if (out[i] == '=')
            break;
        out[n++] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    }
    out[n] = '\0';
}

static void redirect(jn_http_response_t *res, sbuf_t *location)
{
    jn_http_respond_text(res, 302, "text/plain", "");
    jn_http_add_header(res, "Location", location->p);
    free(location->p);
}

/* Starts a redirect to redirect_uri with its first query separator. */
static void redirect_start(sbuf_t *b, const char *redirect_uri)
{
    sb_append(b, redirect_uri, strlen(redirect_uri));
    sb_append(b, strchr(redirect_uri, '?') ? "&" : "?", 1);
}

static void redirect_param(sbuf_t *b, const char *name, const char *value, bool first)
{
    if (!value)
        return;
    if (!first)
        sb_append(b, "&", 1);
    sb_append(b, name, strlen(name));
    sb_append(b, "=", 1);
    sb_append_encoded(b, value);
}

static void redirect_error(jn_http_response_t *res, const char *redirect_uri, const char *error,
                           const char *description, const char *state)
{
    sbuf_t b = {0};
    redirect_start(&b, redirect_uri);
    redirect_param(&b, "error", error, true);
    redirect_param(&b, "error_description", description, false);
    redirect_param(&b, "state", state, false);
    redirect(res, &b);
}

static void authorize(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_fake_t *fp = ud;
    const char *response_type = jn_http_query(req, "response_type");
    const char *client_id = jn_http_query(req, "client_id");
    const char *redirect_uri = jn_http_query(req, "redirect_uri");
    const char *state = jn_http_query(req, "state");
    const char *scope = jn_http_query(req, "scope");
    const char *challenge = jn_http_query(req, "code_challenge");
    const char *method = jn_http_query(req, "code_challenge_method");
    if (challenge && !*challenge)
        challenge = NULL;

    pthread_mutex_lock(&fp->mu);
    fp->authorize_requests++;
    bool known = client_id && jn_fake_client_find(fp->clients, client_id);
    bool deny = fp->knobs.deny, require_pkce = fp->knobs.require_pkce;
    pthread_mutex_unlock(&fp->mu);

    if (!client_id || !*client_id) {
        jn_fake_respond_oauth_error(res, 400, "invalid_request", "client_id is required");
        return;
    }
    if (!known) {
        jn_fake_respond_oauth_error(res, 400, "invalid_request", "unknown client_id");
        return;
    }
    if (!redirect_uri || !*redirect_uri) {
        jn_fake_respond_oauth_error(res, 400, "invalid_request", "redirect_uri is required");
        return;
    }
    if (!response_type || strcmp(response_type, "code") != 0) {
        redirect_error(res, redirect_uri, "unsupported_response_type",
                       "only response_type=code is supported", state);
        return;
    }
    if (deny) {
        redirect_error(res, redirect_uri, "access_denied", "the user denied access", state);
        return;
    }
    if (require_pkce && !challenge) {
        redirect_error(res, redirect_uri, "invalid_request", "code_challenge is required", state);
        return;
    }
    if (challenge && !method)
        method = "plain"; /* RFC 7636 4.3 */
    if (challenge && strcmp(method, "S256") != 0 && strcmp(method, "plain") != 0) {
        redirect_error(res, redirect_uri, "invalid_request",
                       "code_challenge_method must be S256 or plain", state);
        return;
    }

    jn_fake_code_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    jn_fake_random_value("", c->code);
    c->client_id = jn_fake_strdup(client_id);
    c->redirect_uri = jn_fake_strdup(redirect_uri);
    c->challenge = jn_fake_strdup(challenge);
    c->challenge_method = jn_fake_strdup(challenge ? method : NULL);
    c->scope = jn_fake_strdup(scope);
    c->expires_at_ms = jn_fake_now_ms() + JN_FAKE_CODE_TTL_MS;

    sbuf_t b = {0};
    redirect_start(&b, redirect_uri);
    redirect_param(&b, "code", c->code, true);
    redirect_param(&b, "state", state, false);

    pthread_mutex_lock(&fp->mu);
    c->next = fp->codes;
    fp->codes = c;
    pthread_mutex_unlock(&fp->mu);
    redirect(res, &b);
}

/* Who the client says it is. */
typedef struct {
    char id[256];
    char secret[256];
    bool has_secret;
    char raw_id[256]; /* Basic only: the halves as sent, before form-decoding */
    char raw_secret[256];
    const char *method; /* "basic", "body" or "none" */
} client_auth_t;

/* Reads client credentials from Authorization: Basic, else from the body. */
static void read_client_auth(const jn_http_request_t *req, json_object *params, client_auth_t *a)
{
    memset(a, 0, sizeof *a);
    a->method = "none";
    const char *auth = jn_http_header(req, "Authorization");
    if (auth && strncasecmp(auth, "Basic ", 6) == 0) {
        const char *b64 = auth + 6;
        while (*b64 == ' ')
            b64++;
        unsigned char raw[512];
        size_t n = 0;
        a->method = "basic";
        if (jn_base64_decode(b64, strlen(b64), raw, sizeof raw - 1, &n) != JN_OK)
            return;
        raw[n] = '\0';
        const char *colon = memchr(raw, ':', n);
        if (!colon || memchr(raw, '\0', n))
            return;
        size_t id_len = (size_t)(colon - (const char *)raw);
        /* RFC 6749 2.3.1 form-encodes both halves before base64, but many clients send
         * them raw: both readings are tried. */
        char *id = form_decode((const char *)raw, id_len);
        char *secret = form_decode(colon + 1, n - id_len - 1);
        snprintf(a->id, sizeof a->id, "%s", id);
        snprintf(a->secret, sizeof a->secret, "%s", secret);
        snprintf(a->raw_id, sizeof a->raw_id, "%.*s", (int)id_len, (const char *)raw);
        snprintf(a->raw_secret, sizeof a->raw_secret, "%s", colon + 1);
        a->has_secret = true;
        jn_secure_wipe(secret, strlen(secret));
        jn_secure_wipe(raw, sizeof raw);
        free(id);
        free(secret);
        return;
    }
    const char *id = param(params, "client_id");
    const char *secret = param(params, "client_secret");
    if (id) {
        a->method = "body";
        snprintf(a->id, sizeof a->id, "%s", id);
    }
    if (secret) {
        snprintf(a->secret, sizeof a->secret, "%s", secret);
        a->has_secret = true;
    }
}

/* True when id/secret name a registered client. Call with the mutex held. */
static bool client_valid(const jn_fake_t *fp, const char *id, const char *secret)
{
    const jn_fake_client_t *c = id[0] ? jn_fake_client_find(fp->clients, id) : NULL;
    return c && secret_equal(c->secret, secret);
}

/* Checks the client's credentials; on success a->id is the client's id. Call with the
 * mutex held. */
static bool authenticate_client(const jn_fake_t *fp, client_auth_t *a)
{
    if (!a->has_secret)
        return false;
    if (client_valid(fp, a->id, a->secret))
        return true;
    if (strcmp(a->method, "basic") == 0 && client_valid(fp, a->raw_id, a->raw_secret)) {
        snprintf(a->id, sizeof a->id, "%s", a->raw_id);
        return true;
    }
    return false;
}

/* A deep copy of params with the secrets replaced by "<redacted>". */
static json_object *redacted(json_object *params)
{
    static const char *const secret_keys[] = {"client_secret", "code_verifier",    "refresh_token",
                                              "password",      "client_assertion", NULL};
    json_object *out = json_object_new_object();
    json_object_object_foreach(params, key, value)
    {
        bool secret = false;
        for (size_t i = 0; secret_keys[i] && !secret; i++)
            secret = strcmp(secret_keys[i], key) == 0;
        /* A fresh string, not a shared reference: json-c's reference counts are not
         * atomic, and this object outlives the request on another thread's watch. */
        json_object_object_add(
            out, key,
            json_object_new_string(secret ? "<redacted>" : json_object_get_string(value)));
    }
    return out;
}

static jn_fake_token_t *token_new(jn_fake_t *fp, bool refresh, const char *client_id,
                                  const char *scope, int64_t expires_in)
{
    jn_fake_token_t *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    jn_fake_random_value(refresh ? "rt_" : "at_", t->value);
    t->refresh = refresh;
    t->client_id = jn_fake_strdup(client_id);
    t->scope = jn_fake_strdup(scope);
    t->expires_at_ms = !refresh && expires_in > 0 ? jn_fake_now_ms() + expires_in * 1000 : 0;
    t->next = fp->tokens;
    fp->tokens = t;
    return t;
}

/* Issues an access token (and a refresh token when with_refresh) and builds the success
 * body. Call with the mutex held. */
static json_object *issue(jn_fake_t *fp, const char *client_id, const char *scope,
                          bool with_refresh)
{
    const jn_fake_knobs_t *k = &fp->knobs;
    jn_fake_token_t *at = token_new(fp, false, client_id, scope, k->expires_in);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "access_token", json_object_new_string(at->value));
    json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
    if (k->expires_in > 0)
        json_object_object_add(o, "expires_in", json_object_new_int64(k->expires_in));
    if (with_refresh) {
        jn_fake_token_t *rt = token_new(fp, true, client_id, scope, 0);
        json_object_object_add(o, "refresh_token", json_object_new_string(rt->value));
    }
    if (scope)
        json_object_object_add(o, "scope", json_object_new_string(scope));
    if (k->extra_token_fields) {
        json_object_object_foreach(k->extra_token_fields, key, value)
        {
            json_object *copy = NULL;
            json_object_deep_copy(value, &copy, NULL);
            json_object_object_add(o, key, copy);
        }
    }
    return o;
}

typedef struct {
    int status;
    const char *error;
    const char *description;
    json_object *body; /* success */
} outcome_t;

static outcome_t fail(int status, const char *error, const char *description)
{
    return (outcome_t){status, error, description, NULL};
}

static outcome_t grant_code(jn_fake_t *fp, json_object *params, const char *client_id)
{
    const char *code = param(params, "code");
    const char *redirect_uri = param(params, "redirect_uri");
    const char *verifier = param(params, "code_verifier");
    if (!code)
        return fail(400, "invalid_request", "code is required");
    jn_fake_code_t *c = fp->codes;
    while (c && strcmp(c->code, code) != 0)
        c = c->next;
    if (!c)
        return fail(400, "invalid_grant", "unknown authorization code");
    if (c->used)
        return fail(400, "invalid_grant", "authorization code already used");
    if (jn_fake_now_ms() >= c->expires_at_ms)
        return fail(400, "invalid_grant", "authorization code expired");
    if (strcmp(c->client_id, client_id) != 0)
        return fail(400, "invalid_grant", "authorization code was issued to another client");
    if (!redirect_uri || strcmp(redirect_uri, c->redirect_uri) != 0)
        return fail(400, "invalid_grant", "redirect_uri does not match the authorization request");
    if (c->challenge) {
        if (!verifier)
            return fail(400, "invalid_grant", "code_verifier is required");
        char computed[48];
        if (strcmp(c->challenge_method, "S256") == 0)
            s256_challenge(verifier, computed);
        else
            snprintf(computed, sizeof computed, "%s", verifier);
        if (strlen(verifier) > 128 || strcmp(computed, c->challenge) != 0)
            return fail(400, "invalid_grant", "code_verifier does not match the code_challenge");
    }
    c->used = true;
    return (outcome_t){200, NULL, NULL,
                       issue(fp, client_id, c->scope, fp->knobs.issue_refresh_token)};
}

static outcome_t grant_refresh(jn_fake_t *fp, json_object *params, const char *client_id)
{
    const char *value = param(params, "refresh_token");
    if (!value)
        return fail(400, "invalid_request", "refresh_token is required");
    jn_fake_token_t *t = fp->tokens;
    while (t && !(t->refresh && strcmp(t->value, value) == 0))
        t = t->next;
    if (!t || t->revoked)
        return fail(400, "invalid_grant", "refresh token revoked");
    if (strcmp(t->client_id, client_id) != 0)
        return fail(400, "invalid_grant", "refresh token was issued to another client");
    bool rotate = fp->knobs.rotate_refresh_tokens;
    if (rotate)
        t->revoked = true;
    return (outcome_t){200, NULL, NULL, issue(fp, client_id, t->scope, rotate)};
}

static void token(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_fake_t *fp = ud;
    const char *content_type = jn_http_header(req, "Content-Type");
    bool is_json = content_type && strncasecmp(content_type, "application/json", 16) == 0;
    json_object *params =
        is_json ? params_from_json(req->body, req->body_len) : parse_form(req->body, req->body_len);
    const char *grant = param(params, "grant_type");
    client_auth_t auth;
    read_client_auth(req, params, &auth);

    json_object *last = json_object_new_object();
    json_object_object_add(last, "grant_type", grant ? json_object_new_string(grant) : NULL);
    json_object_object_add(last, "client_id", auth.id[0] ? json_object_new_string(auth.id) : NULL);
    json_object_object_add(last, "auth_method", json_object_new_string(auth.method));
    json_object_object_add(last, "content_type",
                           content_type ? json_object_new_string(content_type) : NULL);
    json_object_object_add(last, "params", redacted(params));

    pthread_mutex_lock(&fp->mu);
    fp->token_requests++;
    jn_fake_count(fp->token_requests_by_grant, grant ? grant : "(none)");
    json_object_put(fp->last_token_request);
    fp->last_token_request = last;
    int64_t latency = fp->knobs.token_latency_ms;
    bool fail_now = fp->knobs.fail_token_requests > 0;
    if (fail_now)
        fp->knobs.fail_token_requests--;
    pthread_mutex_unlock(&fp->mu);

    jn_fake_sleep_ms(latency);
    outcome_t out;
    if (fail_now) {
        out = fail(500, "server_error", "injected failure (fail_token_requests)");
    } else {
        pthread_mutex_lock(&fp->mu);
        if (!authenticate_client(fp, &auth))
            out = fail(401, "invalid_client", "client authentication failed");
        else if (!grant)
            out = fail(400, "invalid_request", "grant_type is required");
        else if (strcmp(grant, "authorization_code") == 0)
            out = grant_code(fp, params, auth.id);
        else if (strcmp(grant, "refresh_token") == 0)
            out = grant_refresh(fp, params, auth.id);
        else if (strcmp(grant, "client_credentials") == 0)
            out = (outcome_t){200, NULL, NULL, issue(fp, auth.id, param(params, "scope"), false)};
        else
            out = fail(400, "unsupported_grant_type", "unsupported grant_type");
        pthread_mutex_unlock(&fp->mu);
    }
    jn_secure_wipe(auth.secret, sizeof auth.secret);
    jn_secure_wipe(auth.raw_secret, sizeof auth.raw_secret);

    if (out.body) {
        jn_http_respond_json(res, 200, out.body);
    } else {
        jn_fake_respond_oauth_error(res, out.status, out.error, out.description);
        if (out.status == 401 && strcmp(auth.method, "basic") == 0)
            jn_http_add_header(res, "WWW-Authenticate", "Basic realm=\"fake_provider\"");
    }
    jn_http_add_header(res, "Cache-Control", "no-store");
    json_object_put(params);
}

void jn_fake_routes_oauth(jn_fake_t *fp, jn_http_server_t *srv)
{
    jn_http_route(srv, "GET", "/oauth/authorize", authorize, fp);
    jn_http_route(srv, "POST", "/oauth/token", token, fp);
}
