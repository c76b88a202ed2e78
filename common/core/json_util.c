/*
 * json_util.c - strict parsing and typed field access over json-c.
 */
#include "core/json_util.h"

#include "core/crypto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

jn_err_t jn_field_error(jn_field_error_t *e, const char *path, const char *fmt, ...)
{
    snprintf(e->path, sizeof e->path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return JN_ERR_INVALID;
}

const char *jn_shown(char dst[JN_SHOWN_CAP], const char *s, size_t n)
{
    size_t k = n > JN_SHOWN_MAX ? JN_SHOWN_MAX : n;
    for (size_t i = 0; i < k; i++)
        dst[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (n > JN_SHOWN_MAX) {
        memcpy(dst + k, "...", 3);
        k += 3;
    }
    dst[k] = '\0';
    return dst;
}

void jn_field_error_nest(jn_field_error_t *e, const char *prefix)
{
    char nested[sizeof e->path + 64];
    snprintf(nested, sizeof nested, "%s%s%s", prefix, e->path[0] ? "." : "", e->path);
    snprintf(e->path, sizeof e->path, "%.*s", (int)sizeof e->path - 1, nested);
}

bool jn_json_has_nul(const char *s, size_t len)
{
    return memchr(s, '\0', len) != NULL;
}

/* Strict UTF-8: no overlong forms, no surrogates (json-c turns a lone "\ud800" escape
 * into one), nothing above U+10FFFF. */
bool jn_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* A string C code can hold safely: no NUL (a \u0000 escape would silently cut it) and
 * valid UTF-8. */
static bool bad_string(const char *s, size_t len)
{
    return jn_json_has_nul(s, len) || !jn_utf8_valid(s, len);
}

/* Walks every string (keys and values) for bad_string(). */
static bool contains_bad_string(json_object *v, char *where, size_t cap)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        return bad_string(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (contains_bad_string(json_object_array_get_idx(v, i), where, cap))
                return true;
        }
        return false;
    case json_type_object: {
        json_object_object_foreach(v, key, child)
        {
            if (bad_string(key, strlen(key)) || contains_bad_string(child, where, cap)) {
                if (!where[0])
                    snprintf(where, cap, "%s", key);
                return true;
            }
        }
        return false;
    }
    default: return false;
    }
}

static int hex4(const char *p, size_t avail)
{
    if (avail < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Escapes json-c decodes in ways C code cannot see: an unpaired surrogate ("\ud800")
 * quietly becomes U+FFFD, and "\u0000" inside an object key cuts the key short. We refuse
 * both, so what a client sent is what is stored, or nothing is. Returns the offset of the
 * first such escape (and sets *nul when it is \u0000), or -1. */
static long bad_escape(const char *text, size_t len, bool *nul)
{
    *nul = false;
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] != 'u') {
            i++; /* skip the escaped character, which may be a backslash */
            continue;
        }
        int v = hex4(text + i + 2, len - i - 2);
        if (v == 0) {
            *nul = true;
            return (long)i;
        }
        if (v >= 0xdc00 && v <= 0xdfff)
            return (long)i;
        if (v >= 0xd800 && v <= 0xdbff) {
            size_t j = i + 6;
            int low = (j + 1 < len && text[j] == '\\' && text[j + 1] == 'u')
                          ? hex4(text + j + 2, len - j - 2)
                          : -1;
            if (low < 0xdc00 || low > 0xdfff)
                return (long)i;
            i = j + 5;
            continue;
        }
        i++;
    }
    return -1;
}

jn_err_t jn_json_parse(const char *text, size_t len, bool want_object, json_object **out,
                       jn_field_error_t *e)
{
    *out = NULL;
    if (len == 0)
        return jn_field_error(e, "", "the body is empty; a JSON %s is required",
                              want_object ? "object" : "value");
    if (jn_json_has_nul(text, len))
        return jn_field_error(e, "", "the body contains a NUL byte");
    if (len > (size_t)INT32_MAX)
        return jn_field_error(e, "", "the body is too large");
    json_tokener *tok = json_tokener_new_ex(JN_JSON_MAX_DEPTH);
    if (!tok)
        return JN_ERR_NOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *value = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue && end == len) {
        /* A bare number ("12") is complete only once something follows it. */
        value = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
    }
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        json_object_put(value);
        return jn_field_error(e, "", "invalid JSON: the document ends too early");
    }
    if (jerr != json_tokener_success || !value) {
        json_object_put(value);
        if (jerr == json_tokener_error_depth)
            return jn_field_error(e, "", "invalid JSON: nested deeper than %d levels",
                                  JN_JSON_MAX_DEPTH);
        return jn_field_error(e, "", "invalid JSON at byte %zu: %s", end,
                              json_tokener_error_desc(jerr));
    }
    for (size_t i = end; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r') {
            json_object_put(value);
            return jn_field_error(e, "",
                                  "invalid JSON: unexpected data after the value at byte %zu", i);
        }
    }
    bool nul = false;
    long escape = bad_escape(text, len, &nul);
    if (escape >= 0) {
        json_object_put(value);
        return jn_field_error(e, "", "invalid JSON at byte %ld: %s", escape,
                              nul ? "strings may not contain NUL characters (\\u0000)"
                                  : "unpaired UTF-16 surrogate escape");
    }
    if (want_object && !json_object_is_type(value, json_type_object)) {
        json_object_put(value);
        return jn_field_error(e, "", "the body must be a JSON object");
    }
    char where[128] = "";
    if (contains_bad_string(value, where, sizeof where)) {
        json_object_put(value);
        return jn_field_error(e, where,
                              "strings may not contain NUL characters or invalid Unicode "
                              "(such as unpaired surrogates)");
    }
    *out = value;
    return JN_OK;
}

static void join_path(char *out, size_t cap, const char *prefix, const char *key)
{
    if (prefix && *prefix)
        snprintf(out, cap, "%s.%s", prefix, key);
    else
        snprintf(out, cap, "%s", key);
}

jn_err_t jn_json_only_keys(json_object *obj, const char *const *allowed, const char *prefix,
                           jn_field_error_t *e)
{
    json_object_object_foreach(obj, key, value)
    {
        (void)value;
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], key) == 0;
        if (!ok) {
            char path[128];
            join_path(path, sizeof path, prefix, key);
            return jn_field_error(e, path, "unknown field");
        }
    }
    return JN_OK;
}

jn_err_t jn_json_string(json_object *obj, const char *key, bool required, size_t max_len,
                        const char **out, jn_field_error_t *e)
{
    *out = NULL;
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !v) {
        if (required)
            return jn_field_error(e, key, "is required");
        return JN_OK;
    }
    if (!json_object_is_type(v, json_type_string))
        return jn_field_error(e, key, "must be a string");
    size_t len = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (jn_json_has_nul(s, len))
        return jn_field_error(e, key, "may not contain NUL characters");
    if (len > max_len)
        return jn_field_error(e, key, "must be at most %zu characters", max_len);
    if (required && len == 0)
        return jn_field_error(e, key, "may not be empty");
    *out = s;
    return JN_OK;
}

jn_err_t jn_json_bool(json_object *obj, const char *key, bool *out, bool *present,
                      jn_field_error_t *e)
{
    *present = false;
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !v)
        return JN_OK;
    if (!json_object_is_type(v, json_type_boolean))
        return jn_field_error(e, key, "must be true or false");
    *out = json_object_get_boolean(v);
    *present = true;
    return JN_OK;
}

jn_err_t jn_json_string_map(json_object *obj, const char *key, size_t max_len, json_object **out,
                            jn_field_error_t *e)
{
    *out = NULL;
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || !v)
        return JN_OK;
    if (!json_object_is_type(v, json_type_object))
        return jn_field_error(e, key, "must be an object of strings");
    json_object_object_foreach(v, k, item)
    {
        char path[128];
        join_path(path, sizeof path, key, k);
        if (!json_object_is_type(item, json_type_string))
            return jn_field_error(e, path, "must be a string");
        if ((size_t)json_object_get_string_len(item) > max_len)
            return jn_field_error(e, path, "must be at most %zu characters", max_len);
    }
    *out = v;
    return JN_OK;
}

bool jn_json_path_get(json_object *obj, const char *path, json_object **out)
{
    char seg[257];
    *out = NULL;
    for (;;) {
        if (!json_object_is_type(obj, json_type_object))
            return false;
        if (json_object_object_get_ex(obj, path, out))
            return true;
        const char *dot = strchr(path, '.');
        if (!dot || (size_t)(dot - path) >= sizeof seg)
            return false;
        memcpy(seg, path, (size_t)(dot - path));
        seg[dot - path] = '\0';
        if (!json_object_object_get_ex(obj, seg, &obj))
            return false;
        path = dot + 1;
    }
}

void jn_json_wipe_strings(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        jn_secure_wipe((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++)
            jn_json_wipe_strings(json_object_array_get_idx(v, i));
        break;
    case json_type_object: {
        json_object_object_foreach(v, key, child)
        {
            (void)key;
            jn_json_wipe_strings(child);
        }
        break;
    }
    default: break;
    }
}
