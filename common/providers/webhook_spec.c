/*
 * webhook_spec.c - the "webhook" section of a provider entry: its checks, its reading, and
 * the verification of a webhook's signature (see the header).
 */
#include "providers/webhook_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/iso8601.h"

#define PREFIX_MAX 32
#define PATH_MAX_LEN 128
#define SIG_MAX 128 /* bytes of a decoded signature worth comparing (a digest is 32) */

static const char *const section_fields[] = {"signature", "unsigned",  "routing", "event_type",
                                             "headers",   "challenge", NULL};
static const char *const signature_fields[] = {"algorithm", "header",  "encoding",  "prefix",
                                               "pairs",     "payload", "timestamp", NULL};
static const char *const timestamp_fields[] = {"header", "pairs", "unit", "tolerance_seconds",
                                               NULL};
static const char *const routing_fields[] = {"path", "match", NULL};
static const char *const event_fields[] = {"path", "header", NULL};
static const char *const challenge_fields[] = {"path", "equals", "answer", NULL};

/* Headers that carry a credential of the caller or of the hop: never kept for a script,
 * never a signature's header (a token there would be stored with the webhook). */
static const char *const hop_headers[] = {
    "authorization",  "proxy-authorization", "cookie",     "set-cookie", "host",
    "content-length", "transfer-encoding",   "connection", NULL};

static bool in_list(const char *s, const char *const *items)
{
    for (size_t i = 0; items[i]; i++) {
        if (strcmp(s, items[i]) == 0)
            return true;
    }
    return false;
}

/* A lowercase RFC 9110 token, at most 64 bytes. */
static bool header_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("!#$%&'+-.^_`|~", *p)))
            return false;
    }
    return true;
}

static bool dot_path(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PATH_MAX_LEN || s[0] == '.' || s[n - 1] == '.' || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

/* Printable ASCII, at most PREFIX_MAX bytes. */
static bool printable(const char *s)
{
    if (strlen(s) > PREFIX_MAX)
        return false;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return false;
    }
    return true;
}

/* ---- the payload template ---- */

typedef enum { PART_TEXT, PART_BODY, PART_TIMESTAMP, PART_METHOD, PART_URL } part_kind_t;

typedef struct {
    part_kind_t kind;
    const char *text; /* PART_TEXT */
    size_t len;
} part_t;

#define PARTS_MAX 16

/* Splits a payload template into parts; JN_ERR_INVALID with a message in e (path "path"). */
static jn_err_t parse_payload(const char *tmpl, const char *path, part_t *parts, size_t *n,
                              jn_field_error_t *e)
{
    static const struct {
        const char *name;
        part_kind_t kind;
    } names[] = {{"body", PART_BODY},
                 {"timestamp", PART_TIMESTAMP},
                 {"method", PART_METHOD},
                 {"url", PART_URL}};
    *n = 0;
    size_t bodies = 0;
    const char *p = tmpl;
    while (*p) {
        if (*n == PARTS_MAX)
            return jn_field_error(e, path, "has more than %d parts", PARTS_MAX);
        const char *open = strstr(p, "${");
        if (open != p) {
            size_t len = open ? (size_t)(open - p) : strlen(p);
            parts[(*n)++] = (part_t){PART_TEXT, p, len};
            p += len;
            continue;
        }
        const char *close = strchr(open, '}');
        if (!close)
            return jn_field_error(e, path, "an unclosed ${");
        size_t len = (size_t)(close - open - 2);
        bool known = false;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            if (strlen(names[i].name) == len && memcmp(open + 2, names[i].name, len) == 0) {
                parts[(*n)++] = (part_t){names[i].kind, NULL, 0};
                bodies += names[i].kind == PART_BODY;
                known = true;
            }
        }
        if (!known) {
            char shown[JN_SHOWN_CAP];
            return jn_field_error(e, path,
                                  "unknown placeholder ${%s} (use ${body}, ${timestamp}, "
                                  "${method} or ${url})",
                                  jn_shown(shown, open + 2, len));
        }
        p = close + 1;
    }
    if (bodies != 1)
        return jn_field_error(e, path,
                              "must contain ${body} exactly once (the signature must "
                              "cover the body)");
    return JN_OK;
}

static bool has_timestamp(const part_t *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (parts[i].kind == PART_TIMESTAMP)
            return true;
    }
    return false;
}

/* ---- checks ---- */

/* A string field: absent -> *out NULL (an error when required). */
static jn_err_t string_field(json_object *obj, const char *path, const char *key, bool required,
                             const char **out, jn_field_error_t *e)
{
    jn_err_t err = jn_json_string(obj, key, required, 512, out, e);
    if (err) {
        jn_field_error_nest(e, path);
        return err;
    }
    if (*out && !**out) {
        char full[128];
        snprintf(full, sizeof full, "%s.%s", path, key);
        return jn_field_error(e, full, "must not be empty");
    }
    return JN_OK;
}

/* The object at obj.key (NULL when absent), with only the allowed fields; path names it. */
static jn_err_t object_field(json_object *obj, const char *key, const char *path,
                             const char *const *allowed, json_object **out, jn_field_error_t *e)
{
    *out = NULL;
    json_object *v;
    if (!json_object_object_get_ex(obj, key, &v))
        return JN_OK;
    if (!json_object_is_type(v, json_type_object))
        return jn_field_error(e, path, "must be an object");
    *out = v;
    return jn_json_only_keys(v, allowed, path, e);
}

static jn_err_t check_header_field(json_object *obj, const char *path, const char *key,
                                   bool required, const char **out, jn_field_error_t *e)
{
    jn_err_t err = string_field(obj, path, key, required, out, e);
    if (err || !*out)
        return err;
    char full[128];
    snprintf(full, sizeof full, "%s.%s", path, key);
    if (!header_name(*out))
        return jn_field_error(e, full, "must be a lowercase header name");
    if (in_list(*out, hop_headers))
        return jn_field_error(e, full, "'%s' cannot carry a webhook's signature", *out);
    return JN_OK;
}

static jn_err_t check_timestamp(json_object *sig, const char *pairs, jn_webhook_spec_t *out,
                                jn_field_error_t *e)
{
    json_object *ts;
    const char *path = "webhook.signature.timestamp";
    jn_err_t err = object_field(sig, "timestamp", path, timestamp_fields, &ts, e);
    if (err || !ts)
        return err;
    const char *unit = NULL;
    if ((err = check_header_field(ts, path, "header", false, &out->ts_header, e)) ||
        (err = string_field(ts, path, "pairs", false, &out->ts_pair, e)) ||
        (err = string_field(ts, path, "unit", false, &unit, e)))
        return err;
    if (!out->ts_header == !out->ts_pair)
        return jn_field_error(e, path, "needs exactly one of header and pairs");
    if (out->ts_pair && !pairs)
        return jn_field_error(e, "webhook.signature.timestamp.pairs",
                              "needs a signature header of pairs (signature.pairs)");
    if (out->ts_pair && (!printable(out->ts_pair) || strpbrk(out->ts_pair, "=, ")))
        return jn_field_error(e, "webhook.signature.timestamp.pairs", "must be a short key");
    out->ts_unit = JN_WEBHOOK_TS_SECONDS;
    if (unit && strcmp(unit, "milliseconds") == 0)
        out->ts_unit = JN_WEBHOOK_TS_MILLISECONDS;
    else if (unit && strcmp(unit, "iso8601") == 0)
        out->ts_unit = JN_WEBHOOK_TS_ISO8601;
    else if (unit && strcmp(unit, "seconds") != 0)
        return jn_field_error(e, "webhook.signature.timestamp.unit",
                              "must be seconds, milliseconds or iso8601");
    out->tolerance_s = JN_WEBHOOK_TOLERANCE_DEFAULT;
    json_object *v;
    if (json_object_object_get_ex(ts, "tolerance_seconds", &v)) {
        int64_t t = json_object_get_int64(v);
        if (!json_object_is_type(v, json_type_int) || t < 1 || t > JN_WEBHOOK_TOLERANCE_MAX)
            return jn_field_error(e, "webhook.signature.timestamp.tolerance_seconds",
                                  "must be an integer from 1 to %d", JN_WEBHOOK_TOLERANCE_MAX);
        out->tolerance_s = (int)t;
    }
    return JN_OK;
}

static jn_err_t check_signature(json_object *sig, jn_webhook_spec_t *out, jn_field_error_t *e)
{
    const char *path = "webhook.signature";
    const char *algorithm, *encoding;
    jn_err_t err;
    if ((err = string_field(sig, path, "algorithm", true, &algorithm, e)) ||
        (err = check_header_field(sig, path, "header", true, &out->header, e)) ||
        (err = string_field(sig, path, "encoding", false, &encoding, e)) ||
        (err = string_field(sig, path, "pairs", false, &out->pairs, e)) ||
        (err = string_field(sig, path, "payload", false, &out->payload, e)))
        return err;
    if ((err = jn_json_string(sig, "prefix", false, 512, &out->prefix, e))) {
        jn_field_error_nest(e, path);
        return err;
    }
    if (!out->prefix)
        out->prefix = "";
    if (!printable(out->prefix))
        return jn_field_error(e, "webhook.signature.prefix",
                              "must be printable ASCII of at most %d bytes", PREFIX_MAX);
    bool token = strcmp(algorithm, "token") == 0;
    if (!token && strcmp(algorithm, "hmac-sha256") != 0)
        return jn_field_error(e, "webhook.signature.algorithm", "must be hmac-sha256 or token");
    if (token) {
        static const char *const not_for_token[] = {"encoding", "pairs", "payload", "timestamp",
                                                    NULL};
        for (size_t i = 0; not_for_token[i]; i++) {
            if (json_object_object_get_ex(sig, not_for_token[i], NULL)) {
                char full[64];
                snprintf(full, sizeof full, "webhook.signature.%s", not_for_token[i]);
                return jn_field_error(e, full, "does not apply to the token algorithm");
            }
        }
        out->scheme = JN_WEBHOOK_TOKEN;
        return JN_OK;
    }
    out->scheme = JN_WEBHOOK_HMAC_SHA256;
    if (!encoding)
        return jn_field_error(e, "webhook.signature.encoding", "missing (hex or base64)");
    if (strcmp(encoding, "hex") != 0 && strcmp(encoding, "base64") != 0)
        return jn_field_error(e, "webhook.signature.encoding", "must be hex or base64");
    out->base64 = strcmp(encoding, "base64") == 0;
    if (out->pairs && (!printable(out->pairs) || strpbrk(out->pairs, "=, ")))
        return jn_field_error(e, "webhook.signature.pairs", "must be a short key");
    if (!out->payload)
        out->payload = "${body}";
    part_t parts[PARTS_MAX];
    size_t n;
    if ((err = parse_payload(out->payload, "webhook.signature.payload", parts, &n, e)) ||
        (err = check_timestamp(sig, out->pairs, out, e)))
        return err;
    bool signed_ts = has_timestamp(parts, n);
    bool declared_ts = out->ts_header || out->ts_pair;
    if (signed_ts && !declared_ts)
        return jn_field_error(e, "webhook.signature.timestamp",
                              "missing: the payload signs ${timestamp}");
    if (declared_ts && !signed_ts)
        return jn_field_error(e, "webhook.signature.payload",
                              "must sign ${timestamp}: an unsigned timestamp proves nothing");
    return JN_OK;
}

/* True when key is a connection_config key the entry declares or fills. */
static bool config_key_known(json_object *entry, const char *key)
{
    json_object *v;
    if (json_object_object_get_ex(entry, "connection_config", &v) &&
        json_object_object_get_ex(v, key, NULL))
        return true;
    static const char *const lists[] = {"token_response_metadata", "redirect_uri_metadata"};
    for (size_t l = 0; l < 2; l++) {
        if (!json_object_object_get_ex(entry, lists[l], &v) ||
            !json_object_is_type(v, json_type_array))
            continue;
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            const char *s = json_object_get_string(json_object_array_get_idx(v, i));
            if (s && strcmp(s, key) == 0)
                return true;
        }
    }
    return false;
}

static jn_err_t check_routing(json_object *entry, json_object *section, jn_webhook_spec_t *out,
                              jn_field_error_t *e)
{
    json_object *r;
    const char *path = "webhook.routing";
    const char *match;
    jn_err_t err = object_field(section, "routing", path, routing_fields, &r, e);
    if (err || !r)
        return err;
    if ((err = string_field(r, path, "path", true, &out->route_path, e)) ||
        (err = string_field(r, path, "match", true, &match, e)))
        return err;
    if (!dot_path(out->route_path))
        return jn_field_error(e, "webhook.routing.path",
                              "must be a dot-separated path of at most %d bytes", PATH_MAX_LEN);
    if (strcmp(match, "connection_id") == 0)
        return JN_OK;
    if (strncmp(match, "connection_config.", 18) != 0 || !match[18])
        return jn_field_error(e, "webhook.routing.match",
                              "must be connection_id or connection_config.<key>");
    out->route_config_key = match + 18;
    if (!config_key_known(entry, out->route_config_key))
        return jn_field_error(e, "webhook.routing.match",
                              "'%s' is not a connection_config key this provider declares "
                              "(connection_config, token_response_metadata or "
                              "redirect_uri_metadata)",
                              out->route_config_key);
    return JN_OK;
}

static jn_err_t check_event(json_object *section, jn_webhook_spec_t *out, jn_field_error_t *e)
{
    json_object *ev;
    const char *path = "webhook.event_type";
    jn_err_t err = object_field(section, "event_type", path, event_fields, &ev, e);
    if (err || !ev)
        return err;
    if ((err = string_field(ev, path, "path", false, &out->event_path, e)) ||
        (err = check_header_field(ev, path, "header", false, &out->event_header, e)))
        return err;
    if (!out->event_path == !out->event_header)
        return jn_field_error(e, path, "needs exactly one of path and header");
    if (out->event_path && !dot_path(out->event_path))
        return jn_field_error(e, "webhook.event_type.path",
                              "must be a dot-separated path of at most %d bytes", PATH_MAX_LEN);
    return JN_OK;
}

static jn_err_t check_challenge(json_object *section, jn_webhook_spec_t *out, jn_field_error_t *e)
{
    json_object *ch;
    const char *path = "webhook.challenge";
    jn_err_t err = object_field(section, "challenge", path, challenge_fields, &ch, e);
    if (err || !ch)
        return err;
    if ((err = string_field(ch, path, "path", true, &out->challenge_path, e)) ||
        (err = string_field(ch, path, "equals", true, &out->challenge_equals, e)) ||
        (err = string_field(ch, path, "answer", true, &out->challenge_answer, e)))
        return err;
    if (!dot_path(out->challenge_path) || !dot_path(out->challenge_answer))
        return jn_field_error(e, path,
                              "path and answer must be dot-separated paths of at most "
                              "%d bytes",
                              PATH_MAX_LEN);
    return JN_OK;
}

static jn_err_t check_headers(json_object *section, jn_webhook_spec_t *out, jn_field_error_t *e)
{
    json_object *v;
    if (!json_object_object_get_ex(section, "headers", &v))
        return JN_OK;
    if (!json_object_is_type(v, json_type_array))
        return jn_field_error(e, "webhook.headers", "must be an array of header names");
    size_t n = json_object_array_length(v);
    if (n > JN_WEBHOOK_HEADERS_MAX)
        return jn_field_error(e, "webhook.headers", "at most %d entries", JN_WEBHOOK_HEADERS_MAX);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "webhook.headers[%zu]", i);
        json_object *item = json_object_array_get_idx(v, i);
        if (!json_object_is_type(item, json_type_string))
            return jn_field_error(e, path, "must be a string");
        const char *s = json_object_get_string(item);
        char name[80];
        size_t len = strlen(s);
        bool wildcard = len > 0 && s[len - 1] == '*';
        snprintf(name, sizeof name, "%.*s", (int)(wildcard ? len - 1 : len), s);
        if (len > 64 || !header_name(name) || (wildcard && strlen(name) < 3))
            return jn_field_error(e, path,
                                  "must be a lowercase header name, or a prefix of at least 3 "
                                  "characters ending in '*'");
        if (!wildcard && in_list(name, hop_headers))
            return jn_field_error(e, path, "'%s' is never given to scripts", name);
    }
    out->headers = v;
    return JN_OK;
}

static jn_err_t check_section(json_object *entry, jn_webhook_spec_t *out, jn_field_error_t *e)
{
    memset(out, 0, sizeof *out);
    json_object *section;
    if (!json_object_object_get_ex(entry, "webhook", &section))
        return JN_ERR_NOT_FOUND;
    if (!json_object_is_type(section, json_type_object))
        return jn_field_error(e, "webhook", "must be an object");
    jn_err_t err = jn_json_only_keys(section, section_fields, "webhook", e);
    if (err)
        return err;
    json_object *sig = NULL;
    bool unsigned_ = false, has_unsigned = false;
    if ((err = object_field(section, "signature", "webhook.signature", signature_fields, &sig, e)))
        return err;
    if ((err = jn_json_bool(section, "unsigned", &unsigned_, &has_unsigned, e))) {
        jn_field_error_nest(e, "webhook");
        return err;
    }
    if (has_unsigned && !unsigned_)
        return jn_field_error(e, "webhook.unsigned", "may only be true (or left out)");
    if (!sig == !unsigned_)
        return jn_field_error(e, "webhook",
                              "needs either signature (how webhooks are signed) or "
                              "\"unsigned\": true (they are taken on trust)");
    if (sig && (err = check_signature(sig, out, e)))
        return err;
    if (!sig)
        out->scheme = JN_WEBHOOK_UNSIGNED;
    if ((err = check_routing(entry, section, out, e)) || (err = check_event(section, out, e)) ||
        (err = check_headers(section, out, e)) || (err = check_challenge(section, out, e)))
        return err;
    return JN_OK;
}

jn_err_t jn_webhook_spec_check(json_object *entry, jn_field_error_t *e)
{
    jn_webhook_spec_t spec;
    jn_err_t err = check_section(entry, &spec, e);
    return err == JN_ERR_NOT_FOUND ? JN_OK : err;
}

jn_err_t jn_webhook_spec_read(json_object *entry, jn_webhook_spec_t *out)
{
    jn_field_error_t e;
    return check_section(entry, out, &e);
}

/* ---- verification ---- */

/* The value of key among "k=v, k=v" pairs of header, the nth occurrence (0-based), into
 * out; false when there is none. */
static bool pair_value(const char *header, const char *key, int nth, const char **val,
                       size_t *val_len)
{
    size_t klen = strlen(key);
    const char *p = header;
    for (int seen = 0, pairs = 0; *p && pairs < JN_WEBHOOK_PAIRS_MAX; pairs++) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq && (size_t)(eq - p) == klen && memcmp(p, key, klen) == 0 && seen++ == nth) {
            *val = eq + 1;
            *val_len = len - klen - 1;
            while (*val_len && ((*val)[*val_len - 1] == ' ' || (*val)[*val_len - 1] == '\t'))
                (*val_len)--;
            return true;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* Decodes a signature as sent (hex in either case, or base64) into out; false when it is
 * not one. */
static bool decode_signature(bool base64, const char *s, size_t len, unsigned char *out,
                             size_t *out_len)
{
    if (base64)
        return jn_base64_decode(s, len, out, SIG_MAX, out_len) == JN_OK;
    if (len % 2 || len / 2 > SIG_MAX)
        return false;
    for (size_t i = 0; i < len; i += 2) {
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = s[i + k];
            unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                         : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                         : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                                : 16u;
            if (d > 15)
                return false;
            v = v * 16 + d;
        }
        out[i / 2] = (unsigned char)v;
    }
    *out_len = len / 2;
    return true;
}

/* The timestamp's text and its unix seconds. */
static jn_err_t read_timestamp(const jn_webhook_spec_t *spec, const jn_webhook_request_t *req,
                               const char *sig_header, char *text, size_t cap, char *why,
                               size_t why_len)
{
    const char *v = NULL;
    size_t len = 0;
    if (spec->ts_header) {
        v = req->header(spec->ts_header, req->ud);
        len = v ? strlen(v) : 0;
    } else if (!pair_value(sig_header, spec->ts_pair, 0, &v, &len)) {
        v = NULL;
    }
    if (!v || !len)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "the signature's timestamp is missing");
    if (len >= cap)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "the signature's timestamp is malformed");
    memcpy(text, v, len);
    text[len] = '\0';
    long long seconds = 0;
    if (spec->ts_unit == JN_WEBHOOK_TS_ISO8601) {
        if (jn_iso8601_parse(text, &seconds, NULL, 0) != JN_OK)
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "the signature's timestamp is malformed");
    } else {
        if (len > 16 || strspn(text, "0123456789") != len)
            return jn_err_why(JN_ERR_INVALID, why, why_len,
                              "the signature's timestamp is malformed");
        seconds = strtoll(text, NULL, 10);
        if (spec->ts_unit == JN_WEBHOOK_TS_MILLISECONDS)
            seconds /= 1000;
    }
    long long skew = req->now - seconds;
    if (skew > spec->tolerance_s || skew < -spec->tolerance_s)
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "the signature's timestamp is %lld s away from now (at most %d s "
                          "allowed): a replay or a wrong clock",
                          skew < 0 ? -skew : skew, spec->tolerance_s);
    return JN_OK;
}

/* HMAC-SHA256(secret, payload) as the template builds it. */
static void expected_mac(const jn_webhook_spec_t *spec, const char *secret, size_t secret_len,
                         const jn_webhook_request_t *req, const char *timestamp,
                         unsigned char mac[32])
{
    part_t parts[PARTS_MAX];
    size_t n = 0;
    jn_field_error_t e;
    if (parse_payload(spec->payload, "", parts, &n, &e) != JN_OK)
        abort(); /* the section was checked when read */
    const void *ptrs[PARTS_MAX];
    size_t lens[PARTS_MAX];
    for (size_t i = 0; i < n; i++) {
        switch (parts[i].kind) {
        case PART_TEXT: ptrs[i] = parts[i].text, lens[i] = parts[i].len; break;
        case PART_BODY: ptrs[i] = req->body, lens[i] = req->body_len; break;
        case PART_TIMESTAMP: ptrs[i] = timestamp, lens[i] = strlen(timestamp); break;
        case PART_METHOD: ptrs[i] = req->method, lens[i] = strlen(req->method); break;
        case PART_URL: ptrs[i] = req->url, lens[i] = strlen(req->url); break;
        }
    }
    jn_crypto_hmac_sha256_parts(secret, secret_len, ptrs, lens, n, mac);
}

/* Whether candidate (a header value or a pair's value) holds the expected MAC. */
static bool candidate_matches(const jn_webhook_spec_t *spec, const char *s, size_t len,
                              const unsigned char mac[32])
{
    size_t plen = strlen(spec->prefix);
    if (len < plen || memcmp(s, spec->prefix, plen) != 0)
        return false;
    unsigned char got[SIG_MAX];
    size_t got_len = 0;
    if (!decode_signature(spec->base64, s + plen, len - plen, got, &got_len) || got_len != 32)
        return false;
    return jn_crypto_equal(got, mac, 32);
}

jn_err_t jn_webhook_verify(const jn_webhook_spec_t *spec, const char *secret, size_t secret_len,
                           const jn_webhook_request_t *req, char *why, size_t why_len)
{
    if (spec->scheme == JN_WEBHOOK_UNSIGNED)
        return JN_OK;
    const char *sig = req->header(spec->header, req->ud);
    if (!sig || !*sig)
        return jn_err_why(JN_ERR_INVALID, why, why_len, "the %s header is missing", spec->header);
    if (!secret || !secret_len)
        return jn_err_why(JN_ERR_INVALID, why, why_len,
                          "the integration has no webhook secret to verify it with");
    if (spec->scheme == JN_WEBHOOK_TOKEN) {
        /* Compare digests: equal lengths, and a time that does not depend on the secret. */
        size_t plen = strlen(spec->prefix);
        size_t len = strlen(sig);
        unsigned char a[32], b[32];
        bool prefixed = len >= plen && memcmp(sig, spec->prefix, plen) == 0;
        jn_crypto_sha256(prefixed ? sig + plen : "", prefixed ? len - plen : 0, a);
        jn_crypto_sha256(secret, secret_len, b);
        bool ok = prefixed && jn_crypto_equal(a, b, 32);
        jn_secure_wipe(b, sizeof b);
        return ok ? JN_OK
                  : jn_err_why(JN_ERR_INVALID, why, why_len, "the %s header does not match",
                               spec->header);
    }
    char timestamp[64] = "";
    if (spec->ts_header || spec->ts_pair) {
        jn_err_t err = read_timestamp(spec, req, sig, timestamp, sizeof timestamp, why, why_len);
        if (err)
            return err;
    }
    unsigned char mac[32];
    expected_mac(spec, secret, secret_len, req, timestamp, mac);
    bool ok = false;
    if (!spec->pairs) {
        ok = candidate_matches(spec, sig, strlen(sig), mac);
    } else {
        /* Every signature under the key is tried (a provider rolling its secret sends one
         * per secret); the loop's length depends on the header, never on the secret. */
        const char *v;
        size_t len;
        for (int i = 0; pair_value(sig, spec->pairs, i, &v, &len); i++)
            ok |= candidate_matches(spec, v, len, mac);
    }
    jn_secure_wipe(mac, sizeof mac);
    return ok ? JN_OK
              : jn_err_why(JN_ERR_INVALID, why, why_len, "the signature in %s does not match",
                           spec->header);
}

bool jn_webhook_header_kept(const jn_webhook_spec_t *spec, const char *name)
{
    if (in_list(name, hop_headers) || (spec->header && strcmp(name, spec->header) == 0))
        return false;
    if (strcmp(name, "content-type") == 0 || strcmp(name, "user-agent") == 0)
        return true;
    if ((spec->ts_header && strcmp(name, spec->ts_header) == 0) ||
        (spec->event_header && strcmp(name, spec->event_header) == 0))
        return true;
    for (size_t i = 0; spec->headers && i < json_object_array_length(spec->headers); i++) {
        const char *h = json_object_get_string(json_object_array_get_idx(spec->headers, i));
        size_t len = strlen(h);
        if (len && h[len - 1] == '*' ? strncmp(name, h, len - 1) == 0 : strcmp(name, h) == 0)
            return true;
    }
    return false;
}

const char *jn_webhook_challenge(const jn_webhook_spec_t *spec, json_object *payload)
{
    json_object *v = NULL;
    if (!spec->challenge_path || !jn_json_path_get(payload, spec->challenge_path, &v) ||
        !json_object_is_type(v, json_type_string) ||
        strcmp(json_object_get_string(v), spec->challenge_equals) != 0)
        return NULL;
    if (!jn_json_path_get(payload, spec->challenge_answer, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}
