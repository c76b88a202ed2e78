/*
 * webhook_routing.c - payloads, routing values, batch parts and event types (see the
 * header).
 */
#include "providers/webhook_routing.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json_util.h"

/* ---- the payload ---- */

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes a form value (s, len: '+' is a space, %XX a byte) into a new string; NULL when it
 * is not UTF-8 text without NUL once decoded. */
static char *form_decode(const char *s, size_t len, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (!out)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '+') {
            out[n++] = ' ';
        } else if (s[i] == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 &&
                   hex_digit(s[i + 2]) >= 0) {
            out[n++] = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
            i += 2;
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    if (memchr(out, '\0', n) || !jn_utf8_valid(out, n)) {
        free(out);
        return NULL;
    }
    *out_len = n;
    return out;
}

static bool is_form(const char *content_type)
{
    static const char form[] = "application/x-www-form-urlencoded";
    return content_type && strncasecmp(content_type, form, sizeof form - 1) == 0 &&
           (content_type[sizeof form - 1] == '\0' || content_type[sizeof form - 1] == ';' ||
            content_type[sizeof form - 1] == ' ');
}

static json_object *form_fields(const char *body, size_t len)
{
    json_object *o = json_object_new_object();
    const char *p = body, *end = body + len;
    for (size_t fields = 0; p < end && fields < JN_WEBHOOK_FORM_FIELDS_MAX; fields++) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        size_t klen = 0, vlen = 0;
        char *key = form_decode(p, (size_t)(kend - p), &klen);
        const char *vs = eq ? eq + 1 : stop;
        char *value = form_decode(vs, (size_t)(stop - vs), &vlen);
        if (key && klen) {
            json_object *v = value ? json_object_new_string_len(value, (int)vlen)
                                   : json_object_new_string_len(vs, (int)(stop - vs));
            json_object_object_add(o, key, v);
        }
        free(key);
        free(value);
        p = amp ? amp + 1 : end;
    }
    return o;
}

json_object *jn_webhook_payload(const char *body, size_t len, const char *content_type)
{
    if (is_form(content_type))
        return form_fields(body, len);
    json_object *v = NULL;
    jn_field_error_t e;
    if (len && jn_json_parse(body, len, false, &v, &e) == JN_OK)
        return v;
    return json_object_new_string_len(body, (int)len);
}

/* ---- routing ---- */

/* The routing value at path in obj as text into out; false when there is none usable. */
static bool value_at(json_object *obj, const char *path, char *out, size_t cap)
{
    json_object *v = NULL;
    if (!jn_json_path_get(obj, path, &v) || !v)
        return false;
    if (json_object_is_type(v, json_type_int)) {
        snprintf(out, cap, "%lld", (long long)json_object_get_int64(v));
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return false;
    size_t len = (size_t)json_object_get_string_len(v);
    if (len == 0 || len > JN_WEBHOOK_ROUTE_VALUE_MAX || len >= cap)
        return false;
    memcpy(out, json_object_get_string(v), len + 1);
    return true;
}

static void add_distinct(json_object *list, const char *value, size_t max)
{
    size_t n = json_object_array_length(list);
    if (n >= max)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(json_object_get_string(json_object_array_get_idx(list, i)), value) == 0)
            return;
    }
    json_object_array_add(list, json_object_new_string(value));
}

json_object *jn_webhook_route_values(json_object *payload, const char *path, size_t max)
{
    json_object *out = json_object_new_array();
    char value[JN_WEBHOOK_ROUTE_VALUE_MAX + 1];
    if (!json_object_is_type(payload, json_type_array)) {
        if (value_at(payload, path, value, sizeof value))
            add_distinct(out, value, max);
        return out;
    }
    for (size_t i = 0; i < json_object_array_length(payload); i++) {
        if (value_at(json_object_array_get_idx(payload, i), path, value, sizeof value))
            add_distinct(out, value, max);
    }
    return out;
}

json_object *jn_webhook_payload_part(json_object *payload, const char *path, const char *value)
{
    if (!json_object_is_type(payload, json_type_array))
        return json_object_get(payload);
    json_object *part = json_object_new_array();
    char v[JN_WEBHOOK_ROUTE_VALUE_MAX + 1];
    for (size_t i = 0; i < json_object_array_length(payload); i++) {
        json_object *item = json_object_array_get_idx(payload, i);
        if (value_at(item, path, v, sizeof v) && strcmp(v, value) == 0)
            json_object_array_add(part, json_object_get(item));
    }
    return part;
}

const char *jn_webhook_event_type(json_object *payload, const char *path)
{
    size_t n =
        json_object_is_type(payload, json_type_array) ? json_object_array_length(payload) : 1;
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_is_type(payload, json_type_array)
                                ? json_object_array_get_idx(payload, i)
                                : payload;
        json_object *v = NULL;
        if (jn_json_path_get(item, path, &v) && json_object_is_type(v, json_type_string))
            return json_object_get_string(v);
    }
    return NULL;
}
