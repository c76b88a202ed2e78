/*
 * provider_request.c - URL and header construction for provider requests.
 *
 * Headers come from the provider's templates, the auth mode and the caller, so their
 * number and size are data: the header arrays grow with a cap (JN_PROVIDER_MAX_HEADERS)
 * and every line is allocated to its size, up to JN_PROVIDER_MAX_HEADER_BYTES. What does
 * not fit is refused with a reason, never cut: a truncated credential would be sent as a
 * different, wrong one. Everything that held a secret is wiped before it is freed.
 */
#include "providers/provider_request.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "providers/connection_config.h"
#include "providers/template.h"

static void oom(void)
{
    fputs("provider_request: out of memory\n", stderr);
    abort();
}

static const char *string_at(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static const char *lookup(const char *name, void *ud)
{
    const jn_provider_target_t *t = ud;
    if (strncmp(name, "connectionConfig.", 17) == 0)
        return string_at(t->connection_config, name + 17);
    if (strncmp(name, "credentials.", 12) == 0)
        return string_at(t->credentials, name + 12);
    if (strcmp(name, "apiKey") == 0)
        return string_at(t->credentials, "apiKey");
    if (strcmp(name, "accessToken") == 0) {
        const char *a = string_at(t->credentials, "access_token");
        return a ? a : string_at(t->credentials, "token");
    }
    return NULL;
}

static json_object *proxy_field(json_object *provider, const char *field)
{
    json_object *proxy = NULL, *v = NULL;
    if (json_object_object_get_ex(provider, "proxy", &proxy) &&
        json_object_object_get_ex(proxy, field, &v))
        return v;
    return NULL;
}

static bool carries_credentials(const char *tmpl)
{
    return strstr(tmpl, "${apiKey}") || strstr(tmpl, "${credentials.") ||
           strstr(tmpl, "${accessToken}");
}

static void free_secret_string(char *s)
{
    if (s) {
        jn_secure_wipe(s, strlen(s));
        free(s);
    }
}

/* Appends "name: prefix value" (prefix may be NULL). Checks the cap on the count and on
 * the line's size before anything is written. */
static jn_err_t add_header(jn_built_request_t *r, const char *name, size_t name_len,
                           const char *prefix, const char *value, bool credential, char *why,
                           size_t why_len)
{
    size_t prefix_len = prefix ? strlen(prefix) : 0, value_len = strlen(value);
    if (strpbrk(value, "\r\n"))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "header '%.*s': the value holds a line break", (int)name_len, name);
    if (name_len + prefix_len + value_len + 2 > JN_PROVIDER_MAX_HEADER_BYTES)
        return jn_err_why(JN_ERR_TOO_LARGE, why, why_len,
                          "header '%.*s' would be %zu bytes; at most %d are sent%s", (int)name_len,
                          name, name_len + prefix_len + value_len + 2, JN_PROVIDER_MAX_HEADER_BYTES,
                          credential ? " (the credential is too large)" : "");
    if (r->header_count == r->header_cap) {
        if (r->header_cap == JN_PROVIDER_MAX_HEADERS)
            return jn_err_why(JN_ERR_TOO_LARGE, why, why_len, "more than %d headers",
                              JN_PROVIDER_MAX_HEADERS);
        int cap = r->header_cap ? r->header_cap * 2 : 16;
        if (cap > JN_PROVIDER_MAX_HEADERS)
            cap = JN_PROVIDER_MAX_HEADERS;
        char **headers = realloc(r->headers, (size_t)cap * sizeof *headers);
        if (!headers)
            oom();
        r->headers = headers;
        bool *flags = realloc(r->credential, (size_t)cap * sizeof *flags);
        if (!flags)
            oom();
        r->credential = flags;
        r->header_cap = cap;
    }
    size_t n = name_len + 2 + prefix_len + value_len + 1;
    char *line = malloc(n);
    if (!line)
        oom();
    memcpy(line, name, name_len);
    memcpy(line + name_len, ": ", 2);
    if (prefix_len)
        memcpy(line + name_len + 2, prefix, prefix_len);
    memcpy(line + name_len + 2 + prefix_len, value, value_len + 1);
    r->credential[r->header_count] = credential;
    r->headers[r->header_count++] = line;
    return JN_OK;
}

/* Index of the header named name (case-insensitive), or -1. */
static int find_header(const jn_built_request_t *r, const char *name, size_t name_len)
{
    for (int i = 0; i < r->header_count; i++) {
        if (strncasecmp(r->headers[i], name, name_len) == 0 && r->headers[i][name_len] == ':')
            return i;
    }
    return -1;
}

static void drop_header(jn_built_request_t *r, int i)
{
    free_secret_string(r->headers[i]);
    size_t after = (size_t)(r->header_count - i - 1);
    memmove(&r->headers[i], &r->headers[i + 1], after * sizeof r->headers[0]);
    memmove(&r->credential[i], &r->credential[i + 1], after * sizeof r->credential[0]);
    r->header_count--;
}

typedef struct {
    char *data;
    size_t len, cap;
} text_t;

static void append(text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        if (!t->data)
            oom();
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void append_param(text_t *t, CURL *curl, const char *key, const char *value)
{
    append(t, strchr(t->data, '?') ? "&" : "?", 1);
    char *k = curl_easy_escape(curl, key, 0), *v = curl_easy_escape(curl, value, 0);
    if (!k || !v)
        oom();
    append(t, k, strlen(k));
    append(t, "=", 1);
    append(t, v, strlen(v));
    curl_free(k);
    jn_secure_wipe(v, strlen(v));
    curl_free(v);
}

/* Renders a header or parameter template. *value is NULL when it does not resolve (the
 * header or parameter is then left out); a template that is broken or renders too much is
 * an error, not a silent omission. */
static jn_err_t render_optional(const jn_provider_target_t *t, const char *what, const char *key,
                                const char *tmpl, char **value, char *why, size_t why_len)
{
    bool complete = false;
    char twhy[256];
    *value = NULL;
    jn_err_t err = jn_template_render(tmpl, lookup, (void *)t, value, &complete, twhy, sizeof twhy);
    if (err)
        return jn_err_why(err, why, why_len, "provider '%s': %s '%s': %s", t->provider_name, what,
                          key, twhy);
    if (!complete) {
        free_secret_string(*value);
        *value = NULL;
    }
    return JN_OK;
}

/* The base URL, from the override or the provider's template. *out is a new string. */
static jn_err_t base_url(const jn_provider_target_t *t, const char *override, char **out, char *why,
                         size_t why_len)
{
    *out = NULL;
    if (override && *override) {
        if (strncmp(override, "https://", 8) != 0 && strncmp(override, "http://", 7) != 0)
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "Base-Url-Override must be an http(s) URL");
        *out = strdup(override);
        if (!*out)
            oom();
        return JN_OK;
    }
    json_object *tmpl = proxy_field(t->provider, "base_url");
    if (!tmpl)
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "provider '%s' has no proxy.base_url; send Base-Url-Override",
                          t->provider_name);
    bool complete = false;
    char twhy[256];
    if (jn_template_render(json_object_get_string(tmpl), lookup, (void *)t, out, &complete, twhy,
                           sizeof twhy) != JN_OK ||
        !complete) {
        free(*out);
        *out = NULL;
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "provider '%s': proxy.base_url needs connection values that are missing",
                          t->provider_name);
    }
    return JN_OK;
}

/* Authorization for the auth mode, unless the provider's templates set it. */
static jn_err_t add_auth(const jn_provider_target_t *t, jn_built_request_t *out, char *why,
                         size_t why_len)
{
    const char *mode = string_at(t->provider, "auth_mode");
    mode = mode ? mode : "NONE";
    if (strcmp(mode, "OAUTH2") == 0 || strcmp(mode, "OAUTH2_CC") == 0) {
        const char *token = lookup("accessToken", (void *)t);
        if (!token)
            return JN_OK;
        return add_header(out, "Authorization", 13, "Bearer ", token, true, why, why_len);
    }
    if (strcmp(mode, "BASIC") != 0)
        return JN_OK;
    const char *user = string_at(t->credentials, "username");
    const char *pass = string_at(t->credentials, "password");
    if (!user)
        return JN_OK;
    pass = pass ? pass : "";
    size_t ulen = strlen(user), plen = strlen(pass);
    if (ulen + plen + 1 > JN_PROVIDER_MAX_HEADER_BYTES)
        return jn_err_why(JN_ERR_TOO_LARGE, why, why_len,
                          "the user name and password are too large for a header (%zu bytes)",
                          ulen + plen + 1);
    size_t n = ulen + 1 + plen;
    char *pair = malloc(n + 1), *b64 = malloc(4 * ((n + 2) / 3) + 1);
    if (!pair || !b64)
        oom();
    memcpy(pair, user, ulen);
    pair[ulen] = ':';
    memcpy(pair + ulen + 1, pass, plen + 1);
    jn_base64_encode((const unsigned char *)pair, n, b64);
    jn_err_t err = add_header(out, "Authorization", 13, "Basic ", b64, true, why, why_len);
    free_secret_string(pair);
    free_secret_string(b64);
    return err;
}

static jn_err_t build(const jn_provider_target_t *t, const char *base_url_override,
                      const char *endpoint, const char *query, const char *const *caller_headers,
                      jn_built_request_t *out, char *why, size_t why_len)
{
    /* The caller's headers first: refuse smuggling before anything else. */
    for (size_t i = 0; caller_headers && caller_headers[i]; i++) {
        const char *h = caller_headers[i];
        if (strpbrk(h, "\r\n") || !strchr(h, ':') || h[0] == ':')
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "header %zu is malformed or contains CR/LF", i + 1);
    }
    /* A stored value the provider does not admit (a host outside its allow-list, a value
     * off its enum) is never rendered into a request. */
    jn_field_error_t fe;
    if (jn_connection_config_check(t->provider, t->connection_config, JN_CONNCFG_VALUES, &fe))
        return jn_err_why(JN_ERR_INVALID, why, why_len, "provider '%s': %s: %s", t->provider_name,
                          fe.path, fe.message);

    char *base = NULL;
    jn_err_t err = base_url(t, base_url_override, &base, why, why_len);
    if (err)
        return err;
    text_t url = {0};
    size_t base_len = strlen(base);
    while (base_len > 0 && base[base_len - 1] == '/')
        base_len--;
    append(&url, base, base_len);
    free(base);
    if (endpoint && *endpoint) {
        if (*endpoint != '/')
            append(&url, "/", 1);
        append(&url, endpoint, strlen(endpoint));
    }
    if (query && *query) {
        append(&url, strchr(url.data, '?') ? "&" : "?", 1);
        append(&url, query, strlen(query));
    }
    out->url = url.data;

    json_object *qt = proxy_field(t->provider, "query");
    if (qt && json_object_is_type(qt, json_type_object)) {
        CURL *curl = curl_easy_init();
        if (!curl)
            oom();
        struct json_object_iterator it = json_object_iter_begin(qt);
        struct json_object_iterator end = json_object_iter_end(qt);
        for (; !err && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *key = json_object_iter_peek_name(&it);
            char *value = NULL;
            err = render_optional(t, "query parameter", key,
                                  json_object_get_string(json_object_iter_peek_value(&it)), &value,
                                  why, why_len);
            if (!err && value) {
                append_param(&url, curl, key, value);
                out->url = url.data;
            }
            free_secret_string(value);
        }
        curl_easy_cleanup(curl);
        if (err)
            return err;
    }

    /* Provider headers, remembering which carry credentials. */
    bool provider_sets_auth = false, token_in_template = false;
    json_object *ht = proxy_field(t->provider, "headers");
    if (ht && json_object_is_type(ht, json_type_object)) {
        struct json_object_iterator it = json_object_iter_begin(ht);
        struct json_object_iterator end = json_object_iter_end(ht);
        for (; !err && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *key = json_object_iter_peek_name(&it);
            const char *text = json_object_get_string(json_object_iter_peek_value(&it));
            if (strstr(text, "${accessToken}"))
                token_in_template = true;
            char *value = NULL;
            err = render_optional(t, "header", key, text, &value, why, why_len);
            if (!err && value) {
                err = add_header(out, key, strlen(key), NULL, value, carries_credentials(text), why,
                                 why_len);
                if (strcasecmp(key, "authorization") == 0)
                    provider_sets_auth = true;
            }
            free_secret_string(value);
        }
        if (err)
            return err;
    }

    if (!provider_sets_auth && !token_in_template && (err = add_auth(t, out, why, why_len)))
        return err;

    /* Caller headers replace provider defaults, but never credential-carrying ones. */
    for (size_t i = 0; caller_headers && caller_headers[i]; i++) {
        const char *h = caller_headers[i];
        size_t name_len = (size_t)(strchr(h, ':') - h);
        int existing = find_header(out, h, name_len);
        if (existing >= 0) {
            if (out->credential[existing])
                continue;
            drop_header(out, existing);
        }
        const char *value = h + name_len + 1;
        while (*value == ' ')
            value++;
        if ((err = add_header(out, h, name_len, NULL, value, false, why, why_len)))
            return err;
    }
    return JN_OK;
}

jn_err_t jn_provider_build(const jn_provider_target_t *t, const char *base_url_override,
                           const char *endpoint, const char *query,
                           const char *const *caller_headers, jn_built_request_t *out, char *why,
                           size_t why_len)
{
    memset(out, 0, sizeof *out);
    jn_err_t err = build(t, base_url_override, endpoint, query, caller_headers, out, why, why_len);
    if (err)
        jn_built_request_cleanup(out);
    return err;
}

void jn_built_request_cleanup(jn_built_request_t *r)
{
    free_secret_string(r->url);
    for (int i = 0; i < r->header_count; i++)
        free_secret_string(r->headers[i]);
    free(r->headers);
    free(r->credential);
    memset(r, 0, sizeof *r);
}
