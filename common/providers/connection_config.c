/*
 * connection_config.c - connection_config values judged against a provider entry (see the
 * header).
 *
 * Workload: a check per new connection and per rendered provider request, against a few
 * dozen distinct entries (the catalog plus each environment's custom providers). Compiling
 * an entry's rules costs a regcomp per pattern and a walk of its URL templates; checking
 * costs a regexec per value. So rules are compiled once per distinct entry content and
 * kept in a small process-wide cache: reference-counted under one mutex, least recently
 * used out first, freed when the last user lets go. Compiled regex_t are shared by
 * threads: POSIX makes regexec() thread-safe, and glibc locks inside it.
 */
#include "providers/connection_config.h"

#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "providers/template.h"

#define CACHE_SLOTS 128
#define KEY_MAX (256 * 1024) /* bytes of an entry's cache key; larger entries go uncached */
#define HOST_MAX 253
#define LABEL_MAX 63
#define KEY_LEN_MAX 64 /* bytes of a field name, as the validator allows */

const char *const jn_connection_config_url_fields[JN_CONNCFG_URL_FIELDS] = {
    "authorization_url", "token_url", "refresh_url", "proxy.base_url"};

static void oom(void)
{
    fputs("connection_config: out of memory\n", stderr);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        oom();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d)
        oom();
    return d;
}

static const char *string_at(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

static bool bool_at(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
           json_object_get_boolean(v);
}

const char *jn_connection_config_url_template(json_object *provider, size_t i)
{
    if (i >= JN_CONNCFG_URL_FIELDS)
        return NULL;
    if (i == 3) {
        json_object *proxy = NULL;
        json_object_object_get_ex(provider, "proxy", &proxy);
        return string_at(proxy, "base_url");
    }
    return string_at(provider, jn_connection_config_url_fields[i]);
}

/* ---- host names ---- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A DNS host name: labels of 1 to 63 letters, digits and inner hyphens, dot-separated,
 * 253 bytes at most, no trailing dot. */
static bool valid_host(const char *h, size_t n)
{
    if (n == 0 || n > HOST_MAX)
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (label == 0 || label > LABEL_MAX || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_alnum(h[i]) && !(h[i] == '-' && label > 0))
            return false;
        label++;
    }
    return true;
}

bool jn_connection_config_suffix_valid(const char *s)
{
    if (*s == '.')
        s++;
    size_t n = strlen(s);
    const char *last = strrchr(s, '.');
    if (!last || !valid_host(s, n))
        return false;
    for (const char *p = s; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            return false;
    }
    for (const char *p = last + 1; *p; p++) {
        if (!is_alpha(*p))
            return false;
    }
    return true;
}

static bool suffix_admits(const char *suffix, const char *host, size_t n)
{
    size_t k = strlen(suffix);
    if (suffix[0] != '.')
        return k == n && strncasecmp(host, suffix, n) == 0;
    return n > k && strncasecmp(host + n - k, suffix, k) == 0;
}

/* "a, b or any host under .c" into dst. */
static void describe_suffixes(char *dst, size_t cap, const char *const *suffixes, size_t n)
{
    size_t len = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(dst + len, cap - len, "%s%s%s", sep,
                         suffixes[i][0] == '.' ? "any host under " : "", suffixes[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

jn_err_t jn_connection_config_host_check(const jn_conncfg_host_slot_t *slot, const char *value,
                                         const char *const *suffixes, size_t n_suffixes, char *why,
                                         size_t why_len)
{
    char v[JN_SHOWN_CAP], h[JN_SHOWN_CAP];
    size_t vlen = strlen(value), n = 0;
    char built[HOST_MAX + 2];
    jn_shown(v, value, vlen);
    if (slot->origin) {
        size_t scheme = strncmp(value, "https://", 8) == 0  ? 8
                        : strncmp(value, "http://", 7) == 0 ? 7
                                                            : 0;
        if (!scheme)
            return jn_err_why(JN_ERR_INVALID, why, why_len, "'%s' must be an http(s) URL", v);
        n = strcspn(value + scheme, "/?#");
        if (memchr(value + scheme, ':', n) || memchr(value + scheme, '@', n))
            return jn_err_why(JN_ERR_INVALID, why, why_len, "'%s' must not name a port or user", v);
        if (n > HOST_MAX || !valid_host(value + scheme, n))
            return jn_err_why(JN_ERR_INVALID, why, why_len, "'%s' does not name a valid host", v);
        memcpy(built, value + scheme, n);
    } else {
        for (size_t i = 0; i < vlen; i++) {
            if (!is_alnum(value[i]) && value[i] != '-' && value[i] != '.')
                return jn_err_why(JN_ERR_INVALID, why, why_len,
                                  "'%s' cannot be part of a host name (letters, digits, '-' and "
                                  "'.' only)",
                                  v);
        }
        n = slot->before_len + vlen + slot->after_len;
        if (n > HOST_MAX)
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "'%s' makes a host name longer than %d bytes", v, HOST_MAX);
        memcpy(built, slot->before, slot->before_len);
        memcpy(built + slot->before_len, value, vlen);
        memcpy(built + slot->before_len + vlen, slot->after, slot->after_len);
        if (!valid_host(built, n))
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "'%s' makes '%s', which is not a valid host name", v,
                              jn_shown(h, built, n));
    }
    built[n] = '\0';
    if (n_suffixes == 0)
        return JN_OK;
    for (size_t i = 0; i < n_suffixes; i++) {
        if (suffix_admits(suffixes[i], built, n))
            return JN_OK;
    }
    char allowed[512];
    describe_suffixes(allowed, sizeof allowed, suffixes, n_suffixes);
    if (slot->origin || slot->before_len || slot->after_len)
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "'%s' would send requests to '%s'; the provider allows only %s", v,
                          jn_shown(h, built, n), allowed);
    return jn_err_why(JN_ERR_INVALID, why, why_len,
                      "'%s' is not a host this provider allows (only %s)", v, allowed);
}

/* ---- where templates put values into hosts ---- */

typedef enum { AT_START, IN_HOST, IN_PORT, AFTER_ORIGIN, PAST_HOST } where_t;

typedef struct {
    jn_conncfg_slot_fn fn;
    void *ud;
    char *why;
    size_t why_len;
    where_t where;
    bool pending;   /* a placeholder in this host, waiting for the text after it */
    bool host_used; /* this alternative's host holds a placeholder already */
    char field[JN_TEMPLATE_MAX_NAME + 1];
    const char *before, *after;
    size_t before_len, after_len;
} slots_t;

/* Reports the pending placeholder, with the host text seen after it. */
static jn_err_t slots_flush(slots_t *s)
{
    if (!s->pending)
        return JN_OK;
    s->pending = false;
    jn_conncfg_host_slot_t slot = {s->field, s->before,    s->before_len,
                                   s->after, s->after_len, s->where == AFTER_ORIGIN};
    return s->fn ? s->fn(&slot, s->ud) : JN_OK;
}

static jn_err_t slots_text(slots_t *s, const char *t, size_t n)
{
    if (s->where == AT_START) {
        size_t scheme = n >= 8 && strncmp(t, "https://", 8) == 0  ? 8
                        : n >= 7 && strncmp(t, "http://", 7) == 0 ? 7
                                                                  : 0;
        if (!scheme) {
            s->where = PAST_HOST; /* not a URL: the validator says so */
            return JN_OK;
        }
        t += scheme;
        n -= scheme;
        s->where = IN_HOST;
    }
    if (s->where == AFTER_ORIGIN) {
        if (n > 0 && !strchr("/?#", t[0]))
            return jn_err_why(JN_ERR_INVALID, s->why, s->why_len,
                              "${connectionConfig.%s} starts the URL, so it must bring the "
                              "whole origin: follow it with '/', '?', '#' or nothing",
                              s->field);
        jn_err_t err = slots_flush(s);
        s->where = PAST_HOST;
        return err;
    }
    if (s->where != IN_HOST && s->where != IN_PORT)
        return JN_OK;
    /* The authority runs to the first '/', '?' or '#'; user info in it could move the host. */
    size_t authority = strcspn(t, "/?#");
    if (authority > n)
        authority = n;
    if (memchr(t, '@', authority))
        return jn_err_why(JN_ERR_INVALID, s->why, s->why_len,
                          "a URL with user info ('@') is not supported");
    if (s->where == IN_HOST) {
        size_t end = strcspn(t, ":");
        if (end > authority)
            end = authority;
        if (s->pending) {
            s->after = t;
            s->after_len = end;
        } else {
            s->before = t;
            s->before_len = end;
        }
        if (end == n)
            return JN_OK; /* the host may go on: a second placeholder in it is an error */
        s->where = IN_PORT;
    }
    if (authority < n)
        s->where = PAST_HOST;
    return slots_flush(s);
}

static jn_err_t slots_visit(const jn_template_part_t *part, void *ud)
{
    slots_t *s = ud;
    jn_err_t err;
    switch (part->kind) {
    case JN_TEMPLATE_ALTERNATIVE:
        if ((err = slots_flush(s)))
            return err;
        s->where = AT_START;
        s->host_used = false;
        s->before = s->after = "";
        s->before_len = s->after_len = 0;
        return JN_OK;
    case JN_TEMPLATE_TEXT: return part->depth == 0 ? slots_text(s, part->text, part->len) : JN_OK;
    case JN_TEMPLATE_NAME:
    case JN_TEMPLATE_CALL:
        if (part->depth > 0 || s->where == PAST_HOST)
            return JN_OK;
        if (s->where == IN_PORT)
            return jn_err_why(JN_ERR_INVALID, s->why, s->why_len,
                              "${%s} cannot be used in a URL's port", part->text);
        if (part->kind == JN_TEMPLATE_CALL)
            return jn_err_why(JN_ERR_INVALID, s->why, s->why_len,
                              "base64() cannot be used in a URL's host");
        if (strncmp(part->text, "connectionConfig.", 17) != 0)
            return jn_err_why(JN_ERR_INVALID, s->why, s->why_len,
                              "${%s} cannot be used in a URL's host", part->text);
        if (s->host_used)
            return jn_err_why(JN_ERR_INVALID, s->why, s->why_len,
                              "${%s} would share a URL's host with another placeholder: a host "
                              "may hold one",
                              part->text);
        snprintf(s->field, sizeof s->field, "%s", part->text + 17);
        s->pending = s->host_used = true;
        if (s->where == AT_START)
            s->where = AFTER_ORIGIN;
        return JN_OK;
    }
    return JN_OK;
}

jn_err_t jn_connection_config_host_slots(const char *url_template, jn_conncfg_slot_fn fn, void *ud,
                                         char *why, size_t why_len)
{
    slots_t s = {.fn = fn, .ud = ud, .why = why, .why_len = why_len, .before = "", .after = ""};
    jn_err_t err = jn_template_walk(url_template, slots_visit, &s, why, why_len);
    return err ? err : slots_flush(&s);
}

/* ---- compiled rules of one entry ---- */

typedef struct {
    char *before, *after;
    size_t before_len, after_len;
    bool origin;
} slot_t;

typedef struct {
    char *key;
    bool declared, optional, automated;
    bool has_pattern;
    regex_t re;
    char *pattern;
    char **enums;
    size_t n_enums;
    char **suffixes;
    size_t n_suffixes;
    slot_t *slots;
    size_t n_slots, cap_slots;
    char *broken; /* why no value is admitted, or NULL */
} field_t;

typedef struct {
    char *key; /* the entry's content, as cache key */
    size_t key_len;
    uint64_t hash;
    field_t *fields;
    size_t n_fields, cap_fields;
    char **metadata; /* token_response_metadata and redirect_uri_metadata */
    size_t n_metadata;
    char *broken; /* a URL template whose host cannot be judged, or NULL */
    int refs;
    bool cached;
    unsigned long long used;
} rules_t;

static field_t *field_find(rules_t *r, const char *key)
{
    for (size_t i = 0; i < r->n_fields; i++) {
        if (strcmp(r->fields[i].key, key) == 0)
            return &r->fields[i];
    }
    return NULL;
}

static field_t *field_add(rules_t *r, const char *key)
{
    if (r->n_fields == r->cap_fields) {
        r->cap_fields = r->cap_fields ? r->cap_fields * 2 : 8;
        r->fields = realloc(r->fields, r->cap_fields * sizeof *r->fields);
        if (!r->fields)
            oom();
    }
    field_t *f = &r->fields[r->n_fields++];
    memset(f, 0, sizeof *f);
    f->key = xstrndup(key, strlen(key));
    return f;
}

static char **strings_of(json_object *arr, size_t *n)
{
    *n = 0;
    if (!json_object_is_type(arr, json_type_array))
        return NULL;
    size_t len = json_object_array_length(arr);
    char **out = xcalloc(len, sizeof *out);
    for (size_t i = 0; i < len; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (json_object_is_type(v, json_type_string))
            out[(*n)++] = xstrndup(json_object_get_string(v), strlen(json_object_get_string(v)));
    }
    return out;
}

static void strings_free(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

static void set_broken(char **dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records why a field (or the entry) admits no value; the first reason stays. */
static void set_broken(char **dst, const char *fmt, ...)
{
    if (*dst)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    *dst = xstrndup(text, strlen(text));
}

typedef struct {
    rules_t *r;
    const char *url_field;
} compile_ctx_t;

static jn_err_t compile_slot(const jn_conncfg_host_slot_t *slot, void *ud)
{
    compile_ctx_t *cc = ud;
    field_t *f = field_find(cc->r, slot->field);
    if (!f) {
        f = field_add(cc->r, slot->field);
        set_broken(&f->broken,
                   "is placed in the host name of %s but connection_config does not declare "
                   "'%s'",
                   cc->url_field, slot->field);
    }
    if (f->n_slots == f->cap_slots) {
        f->cap_slots = f->cap_slots ? f->cap_slots * 2 : 4;
        f->slots = realloc(f->slots, f->cap_slots * sizeof *f->slots);
        if (!f->slots)
            oom();
    }
    slot_t *s = &f->slots[f->n_slots++];
    s->before = xstrndup(slot->before, slot->before_len);
    s->before_len = slot->before_len;
    s->after = xstrndup(slot->after, slot->after_len);
    s->after_len = slot->after_len;
    s->origin = slot->origin;
    return JN_OK;
}

static void rules_free(rules_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_fields; i++) {
        field_t *f = &r->fields[i];
        if (f->has_pattern)
            regfree(&f->re);
        free(f->key);
        free(f->pattern);
        strings_free(f->enums, f->n_enums);
        strings_free(f->suffixes, f->n_suffixes);
        for (size_t j = 0; j < f->n_slots; j++) {
            free(f->slots[j].before);
            free(f->slots[j].after);
        }
        free(f->slots);
        free(f->broken);
    }
    free(r->fields);
    strings_free(r->metadata, r->n_metadata);
    free(r->broken);
    free(r->key);
    free(r);
}

static rules_t *rules_compile(json_object *provider)
{
    rules_t *r = xcalloc(1, sizeof *r);
    json_object *specs = NULL;
    if (json_object_object_get_ex(provider, "connection_config", &specs) &&
        json_object_is_type(specs, json_type_object)) {
        json_object_object_foreach(specs, key, spec)
        {
            field_t *f = field_add(r, key);
            f->declared = true;
            f->optional = bool_at(spec, "optional");
            f->automated = bool_at(spec, "automated");
            json_object *v = NULL;
            if (json_object_object_get_ex(spec, "enum", &v))
                f->enums = strings_of(v, &f->n_enums);
            if (json_object_object_get_ex(spec, "host_suffixes", &v))
                f->suffixes = strings_of(v, &f->n_suffixes);
            const char *pattern = string_at(spec, "pattern");
            if (pattern) {
                f->pattern = xstrndup(pattern, strlen(pattern));
                if (regcomp(&f->re, pattern, REG_EXTENDED | REG_NOSUB) == 0)
                    f->has_pattern = true;
                else
                    set_broken(&f->broken, "%s%s", "the provider's pattern does not compile", "");
            }
        }
    }
    for (size_t i = 0; i < JN_CONNCFG_URL_FIELDS; i++) {
        const char *tmpl = jn_connection_config_url_template(provider, i);
        if (!tmpl)
            continue;
        compile_ctx_t cc = {r, jn_connection_config_url_fields[i]};
        char why[256];
        if (jn_connection_config_host_slots(tmpl, compile_slot, &cc, why, sizeof why) != JN_OK)
            set_broken(&r->broken, "the provider's %s cannot be judged: %s",
                       jn_connection_config_url_fields[i], why);
    }
    for (size_t i = 0; i < r->n_fields; i++) {
        field_t *f = &r->fields[i];
        if (f->n_slots > 0 && f->n_enums == 0 && f->n_suffixes == 0)
            set_broken(&f->broken,
                       "is placed in a host name, but the provider declares neither enum nor "
                       "host_suffixes for it, so no value is accepted (the provider definition "
                       "must be updated)");
    }
    static const char *const lists[] = {"token_response_metadata", "redirect_uri_metadata"};
    for (size_t k = 0; k < 2; k++) {
        json_object *v = NULL;
        size_t n = 0;
        if (!json_object_object_get_ex(provider, lists[k], &v))
            continue;
        char **more = strings_of(v, &n);
        r->metadata = realloc(r->metadata, (r->n_metadata + n + 1) * sizeof *r->metadata);
        if (!r->metadata)
            oom();
        memcpy(r->metadata + r->n_metadata, more, n * sizeof *more);
        r->n_metadata += n;
        free(more);
    }
    return r;
}

/* ---- the cache ---- */

typedef struct {
    char *data;
    size_t len, cap;
    bool too_big;
} cache_key_t;

static void key_add(cache_key_t *k, const char *s, size_t n)
{
    if (k->too_big || n > KEY_MAX - k->len) {
        k->too_big = true;
        return;
    }
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap : 1024;
        while (cap < k->len + n)
            cap *= 2;
        k->data = realloc(k->data, cap);
        if (!k->data)
            oom();
        k->cap = cap;
    }
    memcpy(k->data + k->len, s, n);
    k->len += n;
}

/* An encoding of v that no other value shares: a type letter, then lengths before
 * contents. Reads v only (no json_object_get_string on other types: that would write the
 * serialisation into shared objects). */
static void key_value(cache_key_t *k, json_object *v)
{
    char num[48];
    int w;
    switch (json_object_get_type(v)) {
    case json_type_null: key_add(k, "n", 1); return;
    case json_type_boolean: key_add(k, json_object_get_boolean(v) ? "t" : "f", 1); return;
    case json_type_int:
        w = snprintf(num, sizeof num, "i%lld;", (long long)json_object_get_int64(v));
        key_add(k, num, (size_t)w);
        return;
    case json_type_double:
        w = snprintf(num, sizeof num, "d%.17g;", json_object_get_double(v));
        key_add(k, num, (size_t)w);
        return;
    case json_type_string:
        w = snprintf(num, sizeof num, "s%d:", json_object_get_string_len(v));
        key_add(k, num, (size_t)w);
        key_add(k, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        return;
    case json_type_array:
        w = snprintf(num, sizeof num, "a%zu:", json_object_array_length(v));
        key_add(k, num, (size_t)w);
        for (size_t i = 0; i < json_object_array_length(v); i++)
            key_value(k, json_object_array_get_idx(v, i));
        return;
    case json_type_object: {
        w = snprintf(num, sizeof num, "o%d:", json_object_object_length(v));
        key_add(k, num, (size_t)w);
        struct json_object_iterator it = json_object_iter_begin(v);
        struct json_object_iterator end = json_object_iter_end(v);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *name = json_object_iter_peek_name(&it);
            w = snprintf(num, sizeof num, "%zu:", strlen(name));
            key_add(k, num, (size_t)w);
            key_add(k, name, strlen(name));
            key_value(k, json_object_iter_peek_value(&it));
        }
        return;
    }
    }
}

/* The parts of an entry that its rules depend on. */
static void entry_key(json_object *provider, cache_key_t *k)
{
    static const char *const parts[] = {"connection_config", "token_response_metadata",
                                        "redirect_uri_metadata"};
    for (size_t i = 0; i < 3; i++) {
        json_object *v = NULL;
        if (json_object_object_get_ex(provider, parts[i], &v))
            key_value(k, v);
        else
            key_add(k, "-", 1);
    }
    for (size_t i = 0; i < JN_CONNCFG_URL_FIELDS; i++) {
        const char *t = jn_connection_config_url_template(provider, i);
        char num[24];
        int w = snprintf(num, sizeof num, "u%zu:", t ? strlen(t) : 0);
        key_add(k, num, (size_t)w);
        if (t)
            key_add(k, t, strlen(t));
    }
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static rules_t *cache[CACHE_SLOTS];
static unsigned long long cache_tick;

/* Under cache_lock: the cached rules for key, with a reference taken, or NULL. */
static rules_t *cache_find(const cache_key_t *k, uint64_t hash)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        rules_t *r = cache[i];
        if (r && r->hash == hash && r->key_len == k->len && memcmp(r->key, k->data, k->len) == 0) {
            r->refs++;
            r->used = ++cache_tick;
            return r;
        }
    }
    return NULL;
}

/* Under cache_lock: puts r (one reference held by the caller) into the cache, evicting the
 * least recently used entry nobody holds. When every slot is held, r stays uncached. */
static void cache_insert(rules_t *r)
{
    size_t victim = CACHE_SLOTS;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        if (!cache[i]) {
            victim = i;
            break;
        }
        if (cache[i]->refs == 0 && (victim == CACHE_SLOTS || cache[i]->used < cache[victim]->used))
            victim = i;
    }
    if (victim == CACHE_SLOTS)
        return;
    rules_free(cache[victim]);
    r->cached = true;
    r->used = ++cache_tick;
    cache[victim] = r;
}

static rules_t *rules_get(json_object *provider)
{
    cache_key_t k = {0};
    entry_key(provider, &k);
    if (k.too_big) {
        free(k.data);
        rules_t *r = rules_compile(provider);
        r->refs = 1;
        return r;
    }
    uint64_t hash = fnv1a(k.data, k.len);
    pthread_mutex_lock(&cache_lock);
    rules_t *r = cache_find(&k, hash);
    pthread_mutex_unlock(&cache_lock);
    if (r) {
        free(k.data);
        return r;
    }
    /* Compile outside the lock: regcomp is the slow part. */
    rules_t *fresh = rules_compile(provider);
    fresh->key = k.data;
    fresh->key_len = k.len;
    fresh->hash = hash;
    fresh->refs = 1;
    pthread_mutex_lock(&cache_lock);
    r = cache_find(&k, hash); /* another thread may have been quicker */
    if (!r)
        cache_insert(fresh);
    pthread_mutex_unlock(&cache_lock);
    if (r) {
        rules_free(fresh);
        return r;
    }
    return fresh;
}

static void rules_release(rules_t *r)
{
    pthread_mutex_lock(&cache_lock);
    bool gone = --r->refs == 0 && !r->cached;
    pthread_mutex_unlock(&cache_lock);
    if (gone)
        rules_free(r);
}

/* ---- checks ---- */

static bool listed(char *const *items, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i], s) == 0)
            return true;
    }
    return false;
}

static void path_of(char path[128], const char *key)
{
    char k[JN_SHOWN_CAP];
    snprintf(path, 128, "connection_config.%s", jn_shown(k, key, strlen(key)));
}

/* The value checks every source gets. */
static jn_err_t check_value(const rules_t *r, const field_t *f, const char *path,
                            json_object *value, jn_field_error_t *e)
{
    if (!json_object_is_type(value, json_type_string))
        return jn_field_error(e, path, "must be a string");
    const char *s = json_object_get_string(value);
    size_t n = (size_t)json_object_get_string_len(value);
    if (n == 0)
        return JN_OK;
    if (n > JN_CONNCFG_VALUE_MAX)
        return jn_field_error(e, path, "is longer than %d bytes", JN_CONNCFG_VALUE_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return jn_field_error(e, path, "must not contain control characters");
    }
    if (!f)
        return JN_OK;
    if (f->broken)
        return jn_field_error(e, path, "%s", f->broken);
    if (r->broken) /* which fields sit in that host is unknown: admit none */
        return jn_field_error(e, path, "%s", r->broken);
    char v[JN_SHOWN_CAP];
    bool in_enum = f->n_enums > 0 && listed(f->enums, f->n_enums, s);
    if (f->n_enums > 0 && !in_enum) {
        char all[512];
        size_t len = 0;
        all[0] = '\0';
        for (size_t i = 0; i < f->n_enums && len < sizeof all; i++) {
            int w = snprintf(all + len, sizeof all - len, "%s'%s'", i ? ", " : "", f->enums[i]);
            if (w < 0)
                break;
            len += (size_t)w;
        }
        return jn_field_error(e, path, "'%s' is not one of %s", jn_shown(v, s, n), all);
    }
    if (f->has_pattern && regexec(&f->re, s, 0, NULL, 0) != 0)
        return jn_field_error(e, path, "'%s' does not match %s", jn_shown(v, s, n), f->pattern);
    if (f->n_suffixes == 0)
        return JN_OK; /* in a host only with an enum, and the value is in it */
    for (size_t i = 0; i < f->n_slots; i++) {
        const slot_t *sl = &f->slots[i];
        jn_conncfg_host_slot_t slot = {f->key,    sl->before,    sl->before_len,
                                       sl->after, sl->after_len, sl->origin};
        char why[sizeof e->message];
        if (jn_connection_config_host_check(&slot, s, (const char *const *)f->suffixes,
                                            f->n_suffixes, why, sizeof why) != JN_OK)
            return jn_field_error(e, path, "%s", why);
    }
    return JN_OK;
}

jn_err_t jn_connection_config_check(json_object *provider, json_object *config,
                                    jn_conncfg_source_t source, jn_field_error_t *e)
{
    if (!config)
        return JN_OK;
    if (!json_object_is_type(config, json_type_object))
        return jn_field_error(e, "connection_config", "must be an object");
    rules_t *r = rules_get(provider);
    jn_err_t err = JN_OK;
    struct json_object_iterator it = json_object_iter_begin(config);
    struct json_object_iterator end = json_object_iter_end(config);
    for (; !err && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        json_object *value = json_object_iter_peek_value(&it);
        char path[128];
        path_of(path, key);
        field_t *f = strlen(key) <= KEY_LEN_MAX ? field_find(r, key) : NULL;
        bool declared = f && f->declared;
        if (!declared && source != JN_CONNCFG_VALUES &&
            !(source == JN_CONNCFG_PROVIDER && listed(r->metadata, r->n_metadata, key))) {
            err = jn_field_error(e, path, "is not a setting of this provider");
            break;
        }
        if (declared && f->automated && source == JN_CONNCFG_END_USER) {
            err = jn_field_error(e, path,
                                 "is filled in automatically and cannot be given by the end user");
            break;
        }
        if (!declared && source == JN_CONNCFG_VALUES && !(f && f->n_slots > 0))
            continue; /* not a setting: no template can use it */
        err = check_value(r, f, path, value, e);
    }
    rules_release(r);
    return err;
}

jn_err_t jn_connection_config_require(json_object *provider, json_object *config,
                                      jn_field_error_t *e)
{
    json_object *specs = NULL;
    if (!json_object_object_get_ex(provider, "connection_config", &specs) ||
        !json_object_is_type(specs, json_type_object))
        return JN_OK;
    json_object_object_foreach(specs, key, spec)
    {
        if (bool_at(spec, "optional") || bool_at(spec, "automated"))
            continue;
        const char *v = string_at(config, key);
        if (!v || !*v) {
            char path[128];
            path_of(path, key);
            return jn_field_error(e, path, "is required by this provider");
        }
    }
    return JN_OK;
}

json_object *jn_connection_config_from_token(json_object *provider, json_object *token_answer)
{
    json_object *out = json_object_new_object(), *paths = NULL;
    if (!out)
        oom();
    if (!json_object_object_get_ex(provider, "token_response_metadata", &paths) ||
        !json_object_is_type(paths, json_type_array))
        return out;
    for (size_t i = 0; i < json_object_array_length(paths); i++) {
        json_object *p = json_object_array_get_idx(paths, i);
        if (!json_object_is_type(p, json_type_string))
            continue;
        const char *path = json_object_get_string(p);
        char *segment = xstrndup(path, strlen(path));
        json_object *v = token_answer;
        for (char *s = segment; v && s;) {
            char *dot = strchr(s, '.');
            if (dot)
                *dot = '\0';
            if (!json_object_is_type(v, json_type_object) || !json_object_object_get_ex(v, s, &v))
                v = NULL;
            s = dot ? dot + 1 : NULL;
        }
        free(segment);
        if (json_object_is_type(v, json_type_string))
            json_object_object_add(out, path, json_object_new_string(json_object_get_string(v)));
        else if (json_object_is_type(v, json_type_boolean))
            json_object_object_add(
                out, path, json_object_new_string(json_object_get_boolean(v) ? "true" : "false"));
    }
    return out;
}
