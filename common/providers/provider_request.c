/*
 * provider_request.c - URL and header construction for provider requests.
 */
#include "providers/provider_request.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/crypto.h"
#include "providers/template.h"

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

static void add_header(jn_built_request_t *r, const char *name, size_t name_len, const char *value)
{
    if (r->header_count == JN_PROVIDER_MAX_HEADERS)
        return;
    size_t n = name_len + strlen(value) + 3;
    char *h = malloc(n);
    if (!h)
        abort();
    snprintf(h, n, "%.*s: %s", (int)name_len, name, value);
    r->headers[r->header_count++] = h;
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
    free(r->headers[i]);
    memmove(&r->headers[i], &r->headers[i + 1],
            (size_t)(r->header_count - i - 1) * sizeof r->headers[0]);
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
            abort();
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void append_param(text_t *t, CURL *curl, const char *key, const char *value)
{
    append(t, strchr(t->data, '?') ? "&" : "?", 1);
    char *k = curl_easy_escape(curl, key, 0), *v = curl_easy_escape(curl, value, 0);
    append(t, k, strlen(k));
    append(t, "=", 1);
    append(t, v, strlen(v));
    curl_free(k);
    jn_secure_wipe(v, strlen(v));
    curl_free(v);
}

static void free_secret_string(char *s)
{
    if (s) {
        jn_secure_wipe(s, strlen(s));
        free(s);
    }
}

jn_err_t jn_provider_build(const jn_provider_target_t *t, const char *base_url_override,
                           const char *endpoint, const char *query,
                           const char *const *caller_headers, jn_built_request_t *out, char *why,
                           size_t why_len)
{
    memset(out, 0, sizeof *out);
    /* The caller's headers first: refuse smuggling before anything else. */
    for (size_t i = 0; caller_headers && caller_headers[i]; i++) {
        const char *h = caller_headers[i];
        if (strpbrk(h, "\r\n") || !strchr(h, ':') || h[0] == ':') {
            snprintf(why, why_len, "header %zu is malformed or contains CR/LF", i + 1);
            return JN_ERR_INVALID;
        }
    }
    char *base = NULL;
    bool complete = true;
    char twhy[256];
    if (base_url_override && *base_url_override) {
        if (strncmp(base_url_override, "https://", 8) != 0 &&
            strncmp(base_url_override, "http://", 7) != 0) {
            snprintf(why, why_len, "Base-Url-Override must be an http(s) URL");
            return JN_ERR_INVALID;
        }
        base = strdup(base_url_override);
    } else {
        json_object *tmpl = proxy_field(t->provider, "base_url");
        if (!tmpl) {
            snprintf(why, why_len, "provider '%s' has no proxy.base_url; send Base-Url-Override",
                     t->provider_name);
            return JN_ERR_INVALID;
        }
        if (jn_template_render(json_object_get_string(tmpl), lookup, (void *)t, &base, &complete,
                               twhy, sizeof twhy) != JN_OK ||
            !complete) {
            snprintf(why, why_len,
                     "provider '%s': proxy.base_url needs connection values that are missing",
                     t->provider_name);
            free(base);
            return JN_ERR_INVALID;
        }
    }
    if (!base)
        abort();

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

    CURL *curl = curl_easy_init();
    if (!curl)
        abort();
    json_object *qt = proxy_field(t->provider, "query");
    if (qt && json_object_is_type(qt, json_type_object)) {
        json_object_object_foreach(qt, key, tmpl)
        {
            char *value = NULL;
            if (jn_template_render(json_object_get_string(tmpl), lookup, (void *)t, &value,
                                   &complete, twhy, sizeof twhy) == JN_OK &&
                complete)
                append_param(&url, curl, key, value);
            free_secret_string(value);
        }
    }
    curl_easy_cleanup(curl);
    out->url = url.data;

    /* Provider headers, remembering which carry credentials. */
    bool credential_header[JN_PROVIDER_MAX_HEADERS] = {false};
    bool provider_sets_auth = false, token_in_template = false;
    json_object *ht = proxy_field(t->provider, "headers");
    if (ht && json_object_is_type(ht, json_type_object)) {
        json_object_object_foreach(ht, key, tmpl)
        {
            const char *text = json_object_get_string(tmpl);
            if (strstr(text, "${accessToken}"))
                token_in_template = true;
            char *value = NULL;
            if (jn_template_render(text, lookup, (void *)t, &value, &complete, twhy, sizeof twhy) ==
                    JN_OK &&
                complete) {
                credential_header[out->header_count] = carries_credentials(text);
                add_header(out, key, strlen(key), value);
                if (strcasecmp(key, "authorization") == 0)
                    provider_sets_auth = true;
            }
            free_secret_string(value);
        }
    }

    /* Credentials by auth mode. */
    const char *mode = string_at(t->provider, "auth_mode");
    mode = mode ? mode : "NONE";
    if (!provider_sets_auth && !token_in_template) {
        if (strcmp(mode, "OAUTH2") == 0 || strcmp(mode, "OAUTH2_CC") == 0) {
            const char *token = lookup("accessToken", (void *)t);
            if (token) {
                char value[8300];
                snprintf(value, sizeof value, "Bearer %s", token);
                credential_header[out->header_count] = true;
                add_header(out, "Authorization", 13, value);
                jn_secure_wipe(value, sizeof value);
            }
        } else if (strcmp(mode, "BASIC") == 0) {
            const char *user = string_at(t->credentials, "username");
            const char *pass = string_at(t->credentials, "password");
            if (user) {
                char pair[4200], b64[5700], value[5800];
                snprintf(pair, sizeof pair, "%s:%s", user, pass ? pass : "");
                jn_base64_encode((const unsigned char *)pair, strlen(pair), b64);
                snprintf(value, sizeof value, "Basic %s", b64);
                credential_header[out->header_count] = true;
                add_header(out, "Authorization", 13, value);
                jn_secure_wipe(pair, sizeof pair);
                jn_secure_wipe(b64, sizeof b64);
                jn_secure_wipe(value, sizeof value);
            }
        }
    }

    /* Caller headers replace provider defaults, but never credential-carrying ones. */
    for (size_t i = 0; caller_headers && caller_headers[i]; i++) {
        const char *h = caller_headers[i];
        size_t name_len = (size_t)(strchr(h, ':') - h);
        int existing = find_header(out, h, name_len);
        if (existing >= 0) {
            if (credential_header[existing])
                continue;
            drop_header(out, existing);
            memmove(&credential_header[existing], &credential_header[existing + 1],
                    (size_t)(JN_PROVIDER_MAX_HEADERS - existing - 1) * sizeof(bool));
        }
        const char *value = h + name_len + 1;
        while (*value == ' ')
            value++;
        add_header(out, h, name_len, value);
    }
    return JN_OK;
}

void jn_built_request_cleanup(jn_built_request_t *r)
{
    if (r->url) {
        jn_secure_wipe(r->url, strlen(r->url));
        free(r->url);
    }
    for (int i = 0; i < r->header_count; i++)
        free_secret_string(r->headers[i]);
    memset(r, 0, sizeof *r);
}
