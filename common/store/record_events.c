/*
 * record_events.c - outbox rows into record-change events (see the header).
 *
 * The changes text is written by the records store (canonical JSON) or by PostgreSQL
 * (json_agg, for a purge: other spacing, the same members). It is read with a scanner that
 * keeps byte spans instead of building json-c objects: a payload goes from the row into
 * the event as the bytes it is, which is both the fastest way and the only one that keeps
 * its canonical spelling. The scanner still checks what it relies on: strings end,
 * brackets balance, and each member has the form the event needs.
 */
#include "store/record_events.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/canonical_json.h"
#include "store/records.h"

typedef struct {
    const char *p, *end;
} scan_t;

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

/* Consumes c (after white space) when it is next. */
static bool take(scan_t *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* Skips a string token; *escaped tells whether it holds a backslash. */
static bool skip_string(scan_t *s, bool *escaped)
{
    *escaped = false;
    if (s->p >= s->end || *s->p != '"')
        return false;
    for (const char *p = s->p + 1; p < s->end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            s->p = p + 1;
            return true;
        }
        if (c == '\\') {
            *escaped = true;
            p++;
        } else if (c < 0x20) {
            return false;
        }
    }
    return false;
}

/* Skips one JSON value of any kind, nested or not, without recursion. */
static bool skip_value(scan_t *s)
{
    int depth = 0;
    skip_ws(s);
    do {
        if (s->p >= s->end)
            return false;
        char c = *s->p;
        bool escaped;
        if (c == '"') {
            if (!skip_string(s, &escaped))
                return false;
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return false;
            s->p++;
        } else if (depth > 0 &&
                   (c == ',' || c == ':' || c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
            s->p++;
        } else {
            /* a number or a literal: up to the next delimiter */
            const char *start = s->p;
            while (s->p < s->end && !strchr(",:]} \n\r\t\"{[", *s->p))
                s->p++;
            if (s->p == start)
                return false;
        }
    } while (depth > 0);
    return true;
}

static bool is_uuid(const char *p, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = p[i];
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bool is_base64url(const char *p, size_t n)
{
    if (n == 0 || n > JN_RECORDS_MAX_CURSOR)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* A string token's contents when it has no escapes (*start, *len); false otherwise. */
static bool plain_string(scan_t *s, const char **start, size_t *len)
{
    const char *from = s->p;
    bool escaped;
    if (!skip_string(s, &escaped) || escaped)
        return false;
    *start = from + 1;
    *len = (size_t)(s->p - from) - 2;
    return true;
}

/* One {…} change of the array. */
static bool parse_change(scan_t *s, jn_record_change_t *c, char *why, size_t why_len)
{
    memset(c, 0, sizeof *c);
    if (!take(s, '{')) {
        snprintf(why, why_len, "a change is not an object");
        return false;
    }
    bool has_id = false, has_seq = false;
    if (!take(s, '}')) {
        do {
            skip_ws(s);
            const char *name;
            size_t name_len;
            if (!plain_string(s, &name, &name_len) || !take(s, ':')) {
                snprintf(why, why_len, "a change's member name is malformed");
                return false;
            }
            skip_ws(s);
            const char *v;
            size_t n;
#define IS(lit) (name_len == sizeof lit - 1 && memcmp(name, lit, name_len) == 0)
            if (IS("event_id")) {
                if (!plain_string(s, &v, &n) || !is_uuid(v, n)) {
                    snprintf(why, why_len, "event_id is not a lowercase UUID");
                    return false;
                }
                memcpy(c->event_id, v, n);
                c->event_id[n] = '\0';
                has_id = true;
            } else if (IS("record_id")) {
                const char *from = s->p;
                bool escaped;
                if (!skip_string(s, &escaped) || s->p - from < 3) {
                    snprintf(why, why_len, "record_id is not a non-empty string");
                    return false;
                }
                c->record_id = from;
                c->record_id_len = (size_t)(s->p - from);
            } else if (IS("action")) {
                if (!plain_string(s, &v, &n)) {
                    snprintf(why, why_len, "action is not a string");
                    return false;
                }
                c->action = n == 5 && memcmp(v, "ADDED", 5) == 0     ? "ADDED"
                            : n == 7 && memcmp(v, "UPDATED", 7) == 0 ? "UPDATED"
                            : n == 7 && memcmp(v, "DELETED", 7) == 0 ? "DELETED"
                                                                     : NULL;
                if (!c->action) {
                    snprintf(why, why_len, "action is not ADDED, UPDATED or DELETED");
                    return false;
                }
            } else if (IS("seq")) {
                long long seq = 0;
                int digits = 0;
                while (s->p < s->end && *s->p >= '0' && *s->p <= '9' && digits < 18) {
                    seq = seq * 10 + (*s->p++ - '0');
                    digits++;
                }
                if (!digits || seq <= 0 || (s->p < s->end && *s->p >= '0' && *s->p <= '9')) {
                    snprintf(why, why_len, "seq is not a positive integer");
                    return false;
                }
                c->seq = seq;
                has_seq = true;
            } else if (IS("cursor")) {
                if (!plain_string(s, &v, &n) || !is_base64url(v, n)) {
                    snprintf(why, why_len, "cursor is not base64url text");
                    return false;
                }
                c->cursor = v;
                c->cursor_len = n;
            } else if (IS("payload")) {
                const char *from = s->p;
                if (!skip_value(s)) {
                    snprintf(why, why_len, "payload is not a JSON value");
                    return false;
                }
                c->payload = from;
                c->payload_len = (size_t)(s->p - from);
            } else if (!skip_value(s)) {
                snprintf(why, why_len, "a change's member is malformed");
                return false;
            }
#undef IS
        } while (take(s, ','));
        if (!take(s, '}')) {
            snprintf(why, why_len, "a change does not end with '}'");
            return false;
        }
    }
    if (!has_id || !c->record_id || !c->action || !has_seq || !c->cursor || !c->payload) {
        snprintf(why, why_len,
                 "a change lacks one of event_id, record_id, action, seq, "
                 "cursor, payload");
        return false;
    }
    return true;
}

jn_err_t jn_record_changes_parse(const char *changes, size_t len, jn_record_change_t **out,
                                 size_t *n, char *why, size_t why_len)
{
    *out = NULL;
    *n = 0;
    scan_t s = {changes, changes + len};
    if (!take(&s, '[')) {
        snprintf(why, why_len, "the changes are not a JSON array");
        return JN_ERR_INVALID;
    }
    size_t cap = 0, count = 0;
    jn_record_change_t *list = NULL;
    if (!take(&s, ']')) {
        do {
            if (count == cap) {
                cap = cap ? cap * 2 : 64;
                list = realloc(list, cap * sizeof *list);
                if (!list)
                    abort();
            }
            if (!parse_change(&s, &list[count], why, why_len)) {
                free(list);
                return JN_ERR_INVALID;
            }
            count++;
        } while (take(&s, ','));
        if (!take(&s, ']')) {
            free(list);
            snprintf(why, why_len, "the changes do not end with ']'");
            return JN_ERR_INVALID;
        }
    }
    skip_ws(&s);
    if (s.p != s.end) {
        free(list);
        snprintf(why, why_len, "text follows the changes");
        return JN_ERR_INVALID;
    }
    *out = list;
    *n = count;
    return JN_OK;
}

/* The contents of the string token tok[0..len) as a new NUL-terminated string (caller
 * frees): the bytes between the quotes, or json-c's reading when it holds escapes. */
static char *string_value(const char *tok, size_t len)
{
    if (len < 2)
        return NULL;
    if (!memchr(tok, '\\', len))
        return strndup(tok + 1, len - 2);
    json_tokener *t = json_tokener_new();
    json_object *o = json_tokener_parse_ex(t, tok, (int)len);
    char *v = NULL;
    if (o && json_object_is_type(o, json_type_string))
        v = strndup(json_object_get_string(o), (size_t)json_object_get_string_len(o));
    json_object_put(o);
    json_tokener_free(t);
    return v;
}

static jn_err_t put_str_or_null(jn_buf_t *b, const char *name, const char *v)
{
    jn_err_t err = jn_buf_printf(b, ",\"%s\":", name);
    if (!err)
        err = v ? jn_canonical_json_string(v, strlen(v), b) : jn_buf_append(b, "null", 4);
    return err;
}

jn_err_t jn_record_event_encode(const jn_outbox_row_t *row, const jn_record_change_t *c,
                                const jn_crypto_keyring_t *ring, size_t max_bytes, bool omit,
                                jn_buf_t *key, jn_buf_t *value, bool *omitted)
{
    jn_buf_reset(key);
    jn_buf_reset(value);
    *omitted = false;
    char *record_id = string_value(c->record_id, c->record_id_len);
    if (!record_id)
        return JN_ERR_INVALID;
    /* The record id as canonical JSON: the token itself unless it holds escapes, which
     * PostgreSQL and the records store may spell differently. */
    jn_buf_t id_text;
    jn_buf_init(&id_text, 4 * JN_RECORDS_MAX_ID + 16);
    jn_err_t err = memchr(c->record_id, '\\', c->record_id_len)
                       ? jn_canonical_json_string(record_id, strlen(record_id), &id_text)
                       : jn_buf_append(&id_text, c->record_id, c->record_id_len);

    /* key: [environment_id,"integration","connection","model","record id"] */
    if (!err)
        err = jn_buf_printf(key, "[%lld,", row->environment_id);
    if (!err)
        err = jn_canonical_json_string(row->integration, strlen(row->integration), key);
    if (!err)
        err = jn_buf_append(key, ",", 1);
    if (!err)
        err = jn_canonical_json_string(row->connection, strlen(row->connection), key);
    if (!err)
        err = jn_buf_append(key, ",", 1);
    if (!err)
        err = jn_canonical_json_string(row->model, strlen(row->model), key);
    if (!err)
        err = jn_buf_append(key, ",", 1);
    if (!err)
        err = jn_buf_append(key, id_text.data, id_text.len);
    if (!err)
        err = jn_buf_append(key, "]", 1);

    if (!err)
        err = jn_buf_printf(value, "{\"version\":%d,\"event_id\":\"%s\",\"environment_id\":%lld",
                            JN_RECORD_EVENT_VERSION, c->event_id, row->environment_id);
    if (!err)
        err = put_str_or_null(value, "environment", row->environment);
    if (!err)
        err = put_str_or_null(value, "provider_config_key", row->integration);
    if (!err)
        err = put_str_or_null(value, "provider", row->provider);
    if (!err)
        err = put_str_or_null(value, "connection_id", row->connection);
    if (!err)
        err = put_str_or_null(value, "model", row->model);
    if (!err)
        err = jn_buf_append_str(value, ",\"record_id\":");
    if (!err)
        err = jn_buf_append(value, id_text.data, id_text.len);
    if (!err)
        err = jn_buf_printf(value, ",\"action\":\"%s\",\"seq\":%lld,\"cursor\":\"%.*s\"", c->action,
                            c->seq, (int)c->cursor_len, c->cursor);
    if (!err)
        err = put_str_or_null(value, "job_id", row->job_id);
    if (!err)
        err = put_str_or_null(value, "changed_at", row->changed_at);
    if (!err)
        err = jn_buf_append_str(value, ",\"payload\":");
    jn_buf_cleanup(&id_text);
    if (err) {
        free(record_id);
        return err;
    }

    /* The payload as the record's canonical JSON: as written, or opened. */
    const char *payload = c->payload;
    size_t payload_len = c->payload_len;
    char *opened = NULL;
    bool is_null = payload_len == 4 && memcmp(payload, "null", 4) == 0;
    if (!omit && row->sealed && !is_null) {
        char *blob = string_value(payload, payload_len);
        err = blob ? jn_records_open_payload(ring, row->scope_id, record_id, blob, true, &opened,
                                             &payload_len)
                   : JN_ERR_INTERNAL;
        free(blob);
        payload = opened;
    }
    free(record_id);
    if (err)
        return err;
    size_t fixed = key->len + value->len + JN_RECORD_EVENT_OVERHEAD;
    if (omit || fixed + payload_len + 1 > max_bytes) {
        *omitted = !is_null;
        err = jn_buf_append_str(value,
                                *omitted ? "null,\"payload_omitted\":\"too_large\"}" : "null}");
    } else {
        err = jn_buf_append(value, payload, payload_len);
        if (!err)
            err = jn_buf_append(value, "}", 1);
    }
    if (opened) {
        jn_secure_wipe(opened, payload_len);
        free(opened);
    }
    if (!err && key->len + value->len + JN_RECORD_EVENT_OVERHEAD > max_bytes)
        err = JN_ERR_TOO_LARGE;
    return err;
}
