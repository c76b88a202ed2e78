/*
 * paginate.c - pagination strategies: config merging, record extraction, next-request
 * computation and the Link header parser.
 *
 * A paginator keeps only what a walk needs: the merged config as copied strings, the
 * current offset or page number, and a 64-bit FNV-1a hash of every cursor or link already
 * followed (one per page, so at most max_pages of them, scanned linearly; a page costs an
 * HTTP round trip, a scan of 10,000 integers does not). A hash collision can only end a
 * walk early, which a provider could do anyway by sending no next page.
 */
#include "providers/paginate.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json_util.h"

#define NAME_CAP 256 /* bytes of a config field: parameter names and paths */

struct jn_paginator {
    jn_paginate_type_t type;
    char *limit_name;    /* NULL: no limit parameter */
    char *response_path; /* NULL: the body itself when it is an array */
    char *cursor_path, *cursor_name;
    char *link_rel, *link_path;
    char *offset_name;
    bool per_page; /* offset grows by 1 per page rather than by records received */
    char *page_name;
    int limit;        /* 0: none */
    long long offset; /* the offset or page number of the last request */
    uint64_t *seen;   /* hashes of the cursors or links followed */
    size_t nseen, seen_cap;
    int pages, max_pages;
    bool done, capped;
};

static void oom(void)
{
    fputs("paginate: out of memory\n", stderr);
    abort();
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        oom();
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* ---- config ---- */

/* A dot path with no empty segment. */
static bool valid_path(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[0] != '.' && s[n - 1] != '.' && !strstr(s, "..");
}

/* Reads field key from overrides when it has it (a null there means "none"), else from
 * provider. *out is a new copy, or NULL when absent. */
static jn_err_t field(json_object *provider, json_object *overrides, const char *key, char **out,
                      char *why, size_t why_len)
{
    json_object *v = NULL;
    *out = NULL;
    if (!(overrides && json_object_object_get_ex(overrides, key, &v)) && provider)
        json_object_object_get_ex(provider, key, &v);
    if (!v)
        return JN_OK;
    if (!json_object_is_type(v, json_type_string))
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate.%s: must be a string", key);
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len == 0)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate.%s: must not be empty", key);
    if (len > NAME_CAP)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate.%s: longer than %d bytes", key,
                          NAME_CAP);
    if (strlen(s) != len)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate.%s: contains a NUL character",
                          key);
    *out = xstrndup(s, len);
    return JN_OK;
}

static jn_err_t path_field(json_object *provider, json_object *overrides, const char *key,
                           char **out, char *why, size_t why_len)
{
    jn_err_t err = field(provider, overrides, key, out, why, why_len);
    if (err == JN_OK && *out && !valid_path(*out))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate.%s: '%s' is not a dot-separated path (no empty segment)", key,
                          *out);
    return err;
}

static jn_err_t required(const char *value, const char *key, const char *type, char *why,
                         size_t why_len)
{
    if (value)
        return JN_OK;
    return jn_err_why(JN_ERR_INVALID, why, why_len,
                      "paginate.%s: missing (required when type is '%s')", key, type);
}

static jn_err_t read_config(jn_paginator_t *p, json_object *prov, json_object *over, char *why,
                            size_t why_len)
{
    char *type = NULL, *method = NULL;
    jn_err_t err;
    if ((err = field(prov, over, "type", &type, why, why_len)))
        return err;
    if (!type)
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate.type: missing (cursor, link, offset or page)");
    static const char *const names[] = {"cursor", "link", "offset", "page"};
    static const jn_paginate_type_t types[] = {JN_PAGINATE_CURSOR, JN_PAGINATE_LINK,
                                               JN_PAGINATE_OFFSET, JN_PAGINATE_PAGE};
    size_t t = 0;
    while (t < 4 && strcmp(type, names[t]) != 0)
        t++;
    if (t == 4) {
        err = jn_err_why(JN_ERR_INVALID, why, why_len,
                         "paginate.type: '%s' is not cursor, link, offset or page", type);
        free(type);
        return err;
    }
    free(type);
    p->type = types[t];
    const char *tn = names[t];
    if ((err = field(prov, over, "limit_name_in_request", &p->limit_name, why, why_len)) ||
        (err = path_field(prov, over, "response_path", &p->response_path, why, why_len)))
        return err;
    switch (p->type) {
    case JN_PAGINATE_CURSOR:
        if ((err = path_field(prov, over, "cursor_path_in_response", &p->cursor_path, why,
                              why_len)) ||
            (err = field(prov, over, "cursor_name_in_request", &p->cursor_name, why, why_len)) ||
            (err = required(p->cursor_path, "cursor_path_in_response", tn, why, why_len)))
            return err;
        return required(p->cursor_name, "cursor_name_in_request", tn, why, why_len);
    case JN_PAGINATE_LINK:
        if ((err = field(prov, over, "link_rel_in_response_header", &p->link_rel, why, why_len)) ||
            (err =
                 path_field(prov, over, "link_path_in_response_body", &p->link_path, why, why_len)))
            return err;
        if (!p->link_rel && !p->link_path)
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "paginate: type 'link' needs link_rel_in_response_header or "
                              "link_path_in_response_body");
        return JN_OK;
    case JN_PAGINATE_OFFSET:
        if ((err = field(prov, over, "offset_name_in_request", &p->offset_name, why, why_len)) ||
            (err = required(p->offset_name, "offset_name_in_request", tn, why, why_len)) ||
            (err = field(prov, over, "offset_calculation_method", &method, why, why_len)))
            return err;
        if (method && strcmp(method, "per-page") == 0) {
            p->per_page = true;
        } else if (method && strcmp(method, "by-response-size") != 0) {
            err = jn_err_why(JN_ERR_INVALID, why, why_len,
                             "paginate.offset_calculation_method: '%s' is not by-response-size or "
                             "per-page",
                             method);
        }
        free(method);
        return err;
    case JN_PAGINATE_PAGE:
        if ((err = field(prov, over, "page_name_in_request", &p->page_name, why, why_len)))
            return err;
        return required(p->page_name, "page_name_in_request", tn, why, why_len);
    }
    return jn_err_why(JN_ERR_INTERNAL, why, why_len, "paginate: unknown type");
}

jn_err_t jn_paginator_new(json_object *provider_config, json_object *overrides, int limit,
                          jn_paginator_t **out, char *why, size_t why_len)
{
    *out = NULL;
    if (!provider_config && !overrides)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate: no pagination config");
    if (provider_config && !json_object_is_type(provider_config, json_type_object))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: the provider config is not an object");
    if (overrides && !json_object_is_type(overrides, json_type_object))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: the overrides are not an object");
    if (limit < 0)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate: limit %d is negative", limit);
    jn_paginator_t *p = calloc(1, sizeof *p);
    if (!p)
        oom();
    p->limit = limit;
    p->max_pages = JN_PAGINATE_MAX_PAGES;
    jn_err_t err = read_config(p, provider_config, overrides, why, why_len);
    if (err) {
        jn_paginator_free(p);
        return err;
    }
    p->offset = p->type == JN_PAGINATE_PAGE ? 1 : 0;
    *out = p;
    return JN_OK;
}

void jn_paginator_free(jn_paginator_t *p)
{
    if (!p)
        return;
    free(p->limit_name);
    free(p->response_path);
    free(p->cursor_path);
    free(p->cursor_name);
    free(p->link_rel);
    free(p->link_path);
    free(p->offset_name);
    free(p->page_name);
    free(p->seen);
    free(p);
}

jn_paginate_type_t jn_paginator_type(const jn_paginator_t *p)
{
    return p->type;
}

void jn_paginator_set_max_pages(jn_paginator_t *p, int max_pages)
{
    p->max_pages = max_pages < 1 ? 1 : max_pages;
}

int jn_paginator_pages(const jn_paginator_t *p)
{
    return p->pages;
}

bool jn_paginator_capped(const jn_paginator_t *p)
{
    return p->capped;
}

/* ---- requests ---- */

static bool limit_sent(const jn_paginator_t *p)
{
    return p->limit > 0 && p->limit_name;
}

static void set_number(json_object *params, const char *name, long long v)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", v);
    json_object_object_add(params, name, json_object_new_string(text));
}

/* The parameters every request of the walk carries, with offset or page number at. */
static json_object *base_params(const jn_paginator_t *p, long long at)
{
    json_object *params = json_object_new_object();
    if (!params)
        oom();
    if (p->type == JN_PAGINATE_OFFSET)
        set_number(params, p->offset_name, at);
    else if (p->type == JN_PAGINATE_PAGE)
        set_number(params, p->page_name, at);
    if (limit_sent(p))
        set_number(params, p->limit_name, p->limit);
    return params;
}

json_object *jn_paginator_first_params(jn_paginator_t *p)
{
    return base_params(p, p->type == JN_PAGINATE_PAGE ? 1 : 0);
}

/* ---- responses ---- */

/* "a string", "an object", "null": what a value is, for messages. */
static const char *kind(json_object *v)
{
    switch (v ? json_object_get_type(v) : json_type_null) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number";
    case json_type_int: return "a number";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "a value";
}

/* Finds this page's records: *records is the array, or NULL when there is none to look
 * at; *null_page is true when response_path holds a JSON null, taken as an empty page. */
static jn_err_t extract_records(const jn_paginator_t *p, json_object *body, json_object **records,
                                bool *null_page, char *why, size_t why_len)
{
    *records = NULL;
    *null_page = false;
    if (!p->response_path) {
        if (body && json_object_is_type(body, json_type_array))
            *records = body;
        return JN_OK;
    }
    if (!body)
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: response_path '%s': the response body is not JSON",
                          p->response_path);
    json_object *v;
    if (!jn_json_path_get(body, p->response_path, &v))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: response_path '%s' is not in the response", p->response_path);
    if (v && !json_object_is_type(v, json_type_array))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: response_path '%s' is %s, not an array", p->response_path,
                          kind(v));
    *records = v;
    *null_page = !v;
    return JN_OK;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3u;
    }
    return h;
}

/* Records s as followed; false when it was followed before. */
static bool first_time(jn_paginator_t *p, const char *s)
{
    uint64_t h = hash(s);
    for (size_t i = 0; i < p->nseen; i++) {
        if (p->seen[i] == h)
            return false;
    }
    if (p->nseen == p->seen_cap) {
        size_t cap = p->seen_cap ? p->seen_cap * 2 : 16;
        uint64_t *n = realloc(p->seen, cap * sizeof *n);
        if (!n)
            oom();
        p->seen = n;
        p->seen_cap = cap;
    }
    p->seen[p->nseen++] = h;
    return true;
}

/* The cursor for the next request as a new string, or NULL when there is none. */
static jn_err_t next_cursor(jn_paginator_t *p, json_object *body, char **cursor, char *why,
                            size_t why_len)
{
    json_object *v = NULL;
    *cursor = NULL;
    if (!body || !jn_json_path_get(body, p->cursor_path, &v) || !v)
        return JN_OK;
    char text[32];
    const char *s;
    switch (json_object_get_type(v)) {
    case json_type_string: s = json_object_get_string(v); break;
    case json_type_int:
        snprintf(text, sizeof text, "%lld", (long long)json_object_get_int64(v));
        s = text;
        break;
    case json_type_double: s = json_object_get_string(v); break;
    default:
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: cursor_path_in_response '%s' is %s, not a string or number",
                          p->cursor_path, kind(v));
    }
    size_t len = strlen(s);
    if (len > JN_PAGINATE_MAX_VALUE)
        return jn_err_why(JN_ERR_TOO_LARGE, why, why_len,
                          "paginate: the cursor at '%s' is longer than %d bytes", p->cursor_path,
                          JN_PAGINATE_MAX_VALUE);
    if (len)
        *cursor = xstrndup(s, len);
    return JN_OK;
}

/* The next URL as a new string, or NULL when there is none. */
static jn_err_t next_link(jn_paginator_t *p, const char *link_header, json_object *body, char **url,
                          char *why, size_t why_len)
{
    *url = NULL;
    if (p->link_rel && link_header)
        *url = jn_paginate_link_find(link_header, p->link_rel);
    json_object *v = NULL;
    if (!*url && p->link_path && body && jn_json_path_get(body, p->link_path, &v) && v) {
        if (!json_object_is_type(v, json_type_string))
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "paginate: link_path_in_response_body '%s' is %s, not a string",
                              p->link_path, kind(v));
        *url = xstrndup(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    }
    if (*url && strlen(*url) > JN_PAGINATE_MAX_VALUE) {
        free(*url);
        *url = NULL;
        return jn_err_why(JN_ERR_TOO_LARGE, why, why_len,
                          "paginate: the next link is longer than %d bytes", JN_PAGINATE_MAX_VALUE);
    }
    if (*url && !**url) {
        free(*url);
        *url = NULL;
    }
    return JN_OK;
}

jn_err_t jn_paginator_next(jn_paginator_t *p, int status, const char *link_header,
                           json_object *body, json_object **records, bool *done, char **next_url,
                           json_object **next_params, char *why, size_t why_len)
{
    *records = NULL;
    *done = true;
    *next_url = NULL;
    *next_params = NULL;
    if (p->done)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "paginate: the walk has already ended");
    p->done = true; /* until a next page is found */
    p->pages++;
    if (status == 204)
        return JN_OK;
    if (status < 200 || status > 299)
        return jn_err_why(JN_ERR_UPSTREAM, why, why_len, "paginate: page %d: HTTP status %d",
                          p->pages, status);
    json_object *recs;
    bool null_page;
    jn_err_t err = extract_records(p, body, &recs, &null_page, why, why_len);
    if (err)
        return err;
    if (null_page)
        return JN_OK;
    /* Without records, cursor and link pagination still follow the body or header. */
    if (!recs && (p->type == JN_PAGINATE_OFFSET || p->type == JN_PAGINATE_PAGE))
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "paginate: %s pagination needs the records: the body is not an array and "
                          "there is no response_path",
                          p->type == JN_PAGINATE_OFFSET ? "offset" : "page");
    size_t n = recs ? json_object_array_length(recs) : 0;
    *records = recs;
    if (recs && n == 0)
        return JN_OK;

    char *next = NULL;
    switch (p->type) {
    case JN_PAGINATE_CURSOR:
        if ((err = next_cursor(p, body, &next, why, why_len))) {
            *records = NULL;
            return err;
        }
        if (!next || !first_time(p, next)) {
            free(next);
            return JN_OK;
        }
        break;
    case JN_PAGINATE_LINK:
        if ((err = next_link(p, link_header, body, &next, why, why_len))) {
            *records = NULL;
            return err;
        }
        if (!next || !first_time(p, next)) {
            free(next);
            return JN_OK;
        }
        break;
    case JN_PAGINATE_OFFSET:
    case JN_PAGINATE_PAGE:
        if (limit_sent(p) && n < (size_t)p->limit)
            return JN_OK;
        break;
    }

    if (p->pages >= p->max_pages) {
        free(next);
        p->capped = true;
        (void)jn_err_why(JN_OK, why, why_len, "paginate: stopped after %d pages (the cap)",
                         p->pages);
        return JN_OK;
    }
    switch (p->type) {
    case JN_PAGINATE_CURSOR:
        *next_params = base_params(p, p->offset);
        json_object_object_add(*next_params, p->cursor_name, json_object_new_string(next));
        free(next);
        break;
    case JN_PAGINATE_LINK: *next_url = next; break;
    case JN_PAGINATE_OFFSET:
        p->offset += p->per_page ? 1 : (long long)n;
        *next_params = base_params(p, p->offset);
        break;
    case JN_PAGINATE_PAGE:
        p->offset++;
        *next_params = base_params(p, p->offset);
        break;
    }
    p->done = false;
    *done = false;
    return JN_OK;
}

/* ---- Link header (RFC 8288) ---- */

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Moves past the rest of a malformed entry: to the next comma outside <...> and quotes. */
static const char *skip_entry(const char *s)
{
    bool quoted = false, angled = false;
    for (; *s; s++) {
        if (quoted) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                quoted = false;
        } else if (angled) {
            angled = *s != '>';
        } else if (*s == '"') {
            quoted = true;
        } else if (*s == '<') {
            angled = true;
        } else if (*s == ',') {
            break;
        }
    }
    return s;
}

/* Reads a parameter value (token or quoted-string) at s into a new string; *end is set
 * past it. NULL when a quoted string is not closed. */
static char *param_value(const char *s, const char **end)
{
    if (*s != '"') {
        const char *e = s;
        while (*e && !strchr(";, \t", *e))
            e++;
        *end = e;
        return xstrndup(s, (size_t)(e - s));
    }
    const char *e = ++s;
    for (; *e && *e != '"'; e++) {
        if (*e == '\\' && e[1])
            e++;
    }
    if (*e != '"')
        return NULL;
    char *v = xstrndup(s, (size_t)(e - s)); /* then unescaped */
    size_t n = 0;
    for (; s < e; s++) {
        if (*s == '\\' && s + 1 < e)
            s++;
        v[n++] = *s;
    }
    v[n] = '\0';
    *end = e + 1;
    return v;
}

/* True when the space-separated list of relation types in value names rel. */
static bool rel_listed(const char *value, const char *rel)
{
    size_t rlen = strlen(rel);
    const char *s = value;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        const char *e = s;
        while (*e && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - s) == rlen && rlen && strncasecmp(s, rel, rlen) == 0)
            return true;
        s = e;
    }
    return false;
}

char *jn_paginate_link_find(const char *header, const char *rel)
{
    if (!header || !rel || !*rel)
        return NULL;
    const char *s = header;
    while (*s) {
        while (*s == ',' || *s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        if (*s != '<') {
            s = skip_entry(s);
            continue;
        }
        const char *url = s + 1, *url_end = strchr(url, '>');
        if (!url_end)
            return NULL;
        s = url_end + 1;
        bool rel_seen = false, match = false, ok = true;
        for (;;) {
            s = skip_ows(s);
            if (*s != ';')
                break;
            s = skip_ows(s + 1);
            const char *name = s;
            while (*s && !strchr("=;, \t", *s))
                s++;
            size_t name_len = (size_t)(s - name);
            s = skip_ows(s);
            char *value = NULL;
            if (*s == '=') {
                value = param_value(skip_ows(s + 1), &s);
                if (!value) {
                    ok = false;
                    break;
                }
            }
            /* Only the first rel parameter counts (RFC 8288 section 3.3). */
            if (name_len == 3 && strncasecmp(name, "rel", 3) == 0 && !rel_seen) {
                rel_seen = true;
                match = value && rel_listed(value, rel);
            }
            free(value);
        }
        if (!ok)
            return NULL;
        if (*s && *s != ',') {
            s = skip_entry(s);
            continue;
        }
        if (match)
            return xstrndup(url, (size_t)(url_end - url));
    }
    return NULL;
}
