/*
 * canonical_json.c - the canonical JSON text (see the header for the rules).
 */
#include "core/canonical_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAFE_INTEGER 9007199254740992.0 /* 2^53: every integer below is exact in a double */

jn_err_t jn_canonical_number(json_object *v, char out[32])
{
    if (json_object_is_type(v, json_type_int)) {
        int64_t i = json_object_get_int64(v);
        if (i == INT64_MAX) {
            /* json-c keeps values above INT64_MAX as unsigned. */
            uint64_t u = json_object_get_uint64(v);
            snprintf(out, 32, "%" PRIu64, u);
        } else {
            snprintf(out, 32, "%" PRId64, i);
        }
        return JN_OK;
    }
    double d = json_object_get_double(v);
    if (!isfinite(d))
        return JN_ERR_INVALID;
    if (d == floor(d) && fabs(d) < SAFE_INTEGER) {
        snprintf(out, 32, "%" PRId64, (int64_t)d); /* -0.0 becomes "0" */
        return JN_OK;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, d);
        if (strtod(out, NULL) == d)
            break;
    }
    return JN_OK;
}

/* Where a value sits, as a chain to its parent: the path text is built only for an error. */
typedef struct where {
    const struct where *parent;
    const char *key; /* NULL for an array item */
    size_t index;
} where_t;

static void path_text(const where_t *w, char *out, size_t cap)
{
    if (!w) {
        out[0] = '\0';
        return;
    }
    char up[sizeof((jn_field_error_t *)0)->path], both[sizeof up + 64];
    path_text(w->parent, up, sizeof up);
    if (w->key)
        snprintf(both, sizeof both, "%s%s%.60s", up, up[0] ? "." : "", w->key);
    else
        snprintf(both, sizeof both, "%s[%zu]", up, w->index);
    snprintf(out, cap, "%.*s", (int)cap - 1, both);
}

static jn_err_t fail_at(jn_field_error_t *e, const where_t *w, const char *message)
{
    char path[sizeof e->path];
    path_text(w, path, sizeof path);
    return jn_field_error(e, path, "%s", message);
}

static jn_err_t put_string(jn_buf_t *out, const char *s, size_t n, const where_t *w,
                           jn_field_error_t *e)
{
    if (!jn_utf8_valid(s, n))
        return fail_at(e, w, "not valid UTF-8");
    jn_err_t err = jn_buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < n && !err; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                esc = hex;
            }
        }
        if (!esc) {
            run++;
            continue;
        }
        err = jn_buf_append(out, s + i - run, run);
        run = 0;
        if (!err)
            err = jn_buf_append_str(out, esc);
    }
    if (!err)
        err = jn_buf_append(out, s + n - run, run);
    if (!err)
        err = jn_buf_append(out, "\"", 1);
    return err;
}

static int entry_order(const void *a, const void *b)
{
    return strcmp((const char *)lh_entry_k(*(struct lh_entry *const *)a),
                  (const char *)lh_entry_k(*(struct lh_entry *const *)b));
}

static jn_err_t put_value(json_object *v, jn_buf_t *out, const where_t *w, int depth,
                          jn_field_error_t *e)
{
    if (depth > JN_CANONICAL_MAX_DEPTH)
        return fail_at(e, w, "nested too deep");
    jn_err_t err = JN_OK;
    switch (json_object_get_type(v)) {
    case json_type_null: return jn_buf_append(out, "null", 4);
    case json_type_boolean:
        return json_object_get_boolean(v) ? jn_buf_append(out, "true", 4)
                                          : jn_buf_append(out, "false", 5);
    case json_type_int:
    case json_type_double: {
        char num[32];
        if (jn_canonical_number(v, num))
            return fail_at(e, w, "not a finite number");
        return jn_buf_append_str(out, num);
    }
    case json_type_string:
        return put_string(out, json_object_get_string(v), (size_t)json_object_get_string_len(v), w,
                          e);
    case json_type_array: {
        size_t n = json_object_array_length(v);
        err = jn_buf_append(out, "[", 1);
        for (size_t i = 0; i < n && !err; i++) {
            where_t item = {w, NULL, i};
            if (i)
                err = jn_buf_append(out, ",", 1);
            if (!err)
                err = put_value(json_object_array_get_idx(v, i), out, &item, depth + 1, e);
        }
        return err ? err : jn_buf_append(out, "]", 1);
    }
    case json_type_object: {
        size_t n = (size_t)json_object_object_length(v), k = 0;
        struct lh_entry *small[32];
        struct lh_entry **entries = n <= 32 ? small : malloc(n * sizeof *entries);
        if (!entries)
            abort();
        for (struct lh_entry *ent = lh_table_head(json_object_get_object(v)); ent && k < n;
             ent = lh_entry_next(ent))
            entries[k++] = ent;
        /* lh_entry's key is its first member's pointee: sort the entries by key. */
        qsort(entries, k, sizeof *entries, entry_order);
        err = jn_buf_append(out, "{", 1);
        for (size_t i = 0; i < k && !err; i++) {
            const char *key = (const char *)lh_entry_k(entries[i]);
            where_t field = {w, key, 0};
            if (i)
                err = jn_buf_append(out, ",", 1);
            if (!err)
                err = put_string(out, key, strlen(key), &field, e);
            if (!err)
                err = jn_buf_append(out, ":", 1);
            if (!err)
                err = put_value((json_object *)lh_entry_v(entries[i]), out, &field, depth + 1, e);
        }
        if (entries != small)
            free(entries);
        return err ? err : jn_buf_append(out, "}", 1);
    }
    }
    return fail_at(e, w, "not a JSON value");
}

jn_err_t jn_canonical_json(json_object *v, jn_buf_t *out, jn_field_error_t *e)
{
    return put_value(v, out, NULL, 0, e);
}
