/*
 * canonical_json.c - the canonical JSON text (see the header for the rules).
 */
#include "core/canonical_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
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
    /* The fewest digits that read back as d: reading back is monotonic in the digits, so
     * a binary search over 1..17 finds them. */
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(out, 32, "%.*g", mid, d);
        if (strtod(out, NULL) == d)
            hi = mid;
        else
            lo = mid + 1;
    }
    snprintf(out, 32, "%.*g", lo, d);
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

/* What a string byte needs: 0 nothing, 1 an escape, 2 it starts a multi-byte sequence. */
static const unsigned char byte_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Writes s[0..n) as a JSON string in one pass: runs of plain bytes are copied whole,
 * escapes written, and each multi-byte sequence checked as strict UTF-8. */
static jn_err_t put_string(jn_buf_t *out, const char *str, size_t n, const where_t *w,
                           jn_field_error_t *e)
{
    const unsigned char *s = (const unsigned char *)str;
    jn_err_t err = jn_buf_append(out, "\"", 1);
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < n && !err;) {
        /* Eight plain bytes at a time (none below 0x20, '"', '\\' or from 0x80): the usual
         * case of long text. */
        while (i + 8 <= n) {
            uint64_t v, q, b;
            memcpy(&v, s + i, 8);
            q = v ^ 0x2222222222222222ULL;
            b = v ^ 0x5c5c5c5c5c5c5c5cULL;
            uint64_t special = ((v - 0x2020202020202020ULL) & ~v) |
                               ((q - 0x0101010101010101ULL) & ~q) |
                               ((b - 0x0101010101010101ULL) & ~b) | v;
            if (special & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned char cls = byte_class[s[i]];
        if (cls == 0) {
            i++;
            continue;
        }
        if (cls == 2) { /* the sequence's length from its lead byte, then the rules */
            size_t len = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
            if (len > n - i || !jn_utf8_valid(str + i, len))
                return fail_at(e, w, "not valid UTF-8");
            i += len;
            continue;
        }
        const char *esc;
        char hex[8];
        switch (s[i]) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default: snprintf(hex, sizeof hex, "\\u%04x", s[i]); esc = hex;
        }
        err = jn_buf_append(out, str + run, i - run);
        if (!err)
            err = jn_buf_append_str(out, esc);
        run = ++i;
    }
    if (!err)
        err = jn_buf_append(out, str + run, n - run);
    if (!err)
        err = jn_buf_append(out, "\"", 1);
    return err;
}

static jn_err_t put_value(json_object *v, jn_buf_t *out, const where_t *w, int depth,
                          jn_field_error_t *e);

typedef struct {
    const char *key;
    json_object *val;
} member_t;

static int member_order(const void *a, const void *b)
{
    return strcmp(((const member_t *)a)->key, ((const member_t *)b)->key);
}

/* An object's members sorted by key; drop (may be NULL) left out, key (may be NULL) given
 * value whether v has it or not. */
static jn_err_t put_object(json_object *v, jn_buf_t *out, const where_t *w, int depth,
                           const char *drop, const char *key, json_object *value,
                           jn_field_error_t *e)
{
    size_t n = (size_t)json_object_object_length(v) + 1, k = 0;
    member_t small[32];
    member_t *members = n <= 32 ? small : malloc(n * sizeof *members);
    if (!members)
        abort();
    for (struct lh_entry *ent = lh_table_head(json_object_get_object(v)); ent && k < n;
         ent = lh_entry_next(ent)) {
        const char *name = (const char *)lh_entry_k(ent);
        if ((drop && strcmp(name, drop) == 0) || (key && strcmp(name, key) == 0))
            continue;
        members[k++] = (member_t){name, (json_object *)lh_entry_v(ent)};
    }
    if (key)
        members[k++] = (member_t){key, value};
    qsort(members, k, sizeof *members, member_order);
    jn_err_t err = jn_buf_append(out, "{", 1);
    for (size_t i = 0; i < k && !err; i++) {
        where_t field = {w, members[i].key, 0};
        if (i)
            err = jn_buf_append(out, ",", 1);
        if (!err)
            err = put_string(out, members[i].key, strlen(members[i].key), &field, e);
        if (!err)
            err = jn_buf_append(out, ":", 1);
        if (!err)
            err = put_value(members[i].val, out, &field, depth + 1, e);
    }
    if (members != small)
        free(members);
    return err ? err : jn_buf_append(out, "}", 1);
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
    case json_type_object: return put_object(v, out, w, depth, NULL, NULL, NULL, e);
    }
    return fail_at(e, w, "not a JSON value");
}

jn_err_t jn_canonical_json(json_object *v, jn_buf_t *out, jn_field_error_t *e)
{
    return put_value(v, out, NULL, 0, e);
}

jn_err_t jn_canonical_json_object(json_object *v, const char *drop, const char *key,
                                  json_object *value, jn_buf_t *out, jn_field_error_t *e)
{
    if (!json_object_is_type(v, json_type_object))
        return fail_at(e, NULL, "not an object");
    return put_object(v, out, NULL, 0, drop, key, value, e);
}

jn_err_t jn_canonical_json_string(const char *s, size_t n, jn_buf_t *out)
{
    jn_field_error_t e;
    return put_string(out, s, n, NULL, &e);
}
