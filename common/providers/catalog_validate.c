/*
 * catalog_validate.c - validation of provider entries (docs/providers.md), for the
 * built-in catalog at start-up and for custom providers sent over the API.
 *
 * The validator walks an entry top-down and stops at the first problem, which it reports
 * as one line: provider, field path, problem. It checks every level for unknown fields,
 * the types and value sets of each field, the rules of each auth mode, and every template:
 * its syntax, the names it uses (declared in this entry and allowed for its auth mode),
 * the shape of URLs and paths, that a connection_config value placed in a URL has a
 * pattern, and that one placed in a host name is held to an enum or to host_suffixes
 * (where its hosts are judged by connection_config.c, as they will be at run time). A
 * header or parameter that carries a credential may not use connection_config, which is
 * not secret. Patterns are compiled with POSIX regcomp, as the engine will match them;
 * syntax that POSIX and ECMAScript read differently (\d, a backslash inside [...]) is
 * refused so that the catalog means the same thing to Junction and to a browser.
 */
#include "providers/catalog.h"

#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json_util.h"
#include "providers/connection_config.h"
#include "providers/template.h"
#include "providers/webhook_spec.h"

#define PATH_CAP 256 /* a field path in a message */
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef enum { MODE_OAUTH2, MODE_OAUTH2_CC, MODE_API_KEY, MODE_BASIC, MODE_NONE } auth_mode_t;

static const char *const mode_names[] = {"OAUTH2", "OAUTH2_CC", "API_KEY", "BASIC", "NONE"};

static const char *const category_names[] = {
    "accounting", "ai",        "analytics",  "ats",     "communication", "crm",
    "design",     "dev-tools", "e-commerce", "hr",      "iam",           "knowledge-base",
    "legal",      "marketing", "other",      "payment", "productivity",  "search",
    "social",     "storage",   "support",    "surveys", "ticketing",     "video"};

static const char *const top_fields[] = {"name",
                                         "display_name",
                                         "categories",
                                         "docs",
                                         "auth_mode",
                                         "authorization_url",
                                         "authorization_params",
                                         "token_url",
                                         "token_params",
                                         "refresh_url",
                                         "refresh_params",
                                         "scope_separator",
                                         "default_scopes",
                                         "pkce",
                                         "token_request_auth_method",
                                         "token_request_body_format",
                                         "token_expiration_buffer",
                                         "token_response_metadata",
                                         "redirect_uri_metadata",
                                         "proxy",
                                         "connection_config",
                                         "credentials",
                                         "webhook"};

/* docs/providers.md: "The fields from authorization_url through redirect_uri_metadata". */
static const char *const oauth_fields[] = {"authorization_url",
                                           "authorization_params",
                                           "token_url",
                                           "token_params",
                                           "refresh_url",
                                           "refresh_params",
                                           "scope_separator",
                                           "default_scopes",
                                           "pkce",
                                           "token_request_auth_method",
                                           "token_request_body_format",
                                           "token_expiration_buffer",
                                           "token_response_metadata",
                                           "redirect_uri_metadata"};

/* Fields of the authorization step and of refreshing, which a client-credentials grant
 * does not have. */
static const char *const cc_forbidden[] = {
    "authorization_url", "authorization_params", "pkce",
    "refresh_url",       "refresh_params",       "redirect_uri_metadata"};

static const char *const conn_spec_fields[] = {"type",    "title",    "description",   "example",
                                               "pattern", "enum",     "prefix",        "suffix",
                                               "format",  "optional", "host_suffixes", "automated"};
static const char *const cred_spec_fields[] = {"type",    "title",   "description", "secret",
                                               "example", "pattern", "format",      "optional",
                                               "default", "hidden"};
static const char *const formats[] = {"uri", "email", "hostname", "uuid"};

static const char *const proxy_fields[] = {"base_url", "headers",  "query",
                                           "retry",    "paginate", "verification"};
static const char *const retry_fields[] = {"at", "after", "remaining", "error_code"};
static const char *const verification_fields[] = {"method", "endpoints"};
static const char *const methods[] = {"GET", "POST", "HEAD"};

static const char *const paginate_fields[] = {"type",
                                              "limit_name_in_request",
                                              "response_path",
                                              "cursor_path_in_response",
                                              "cursor_name_in_request",
                                              "link_rel_in_response_header",
                                              "link_path_in_response_body",
                                              "offset_name_in_request",
                                              "offset_calculation_method",
                                              "page_name_in_request"};

typedef struct {
    const char *type;
    const char *fields[2]; /* the fields only this type accepts */
    size_t required;       /* how many of them, from the first, are required; 0: at least one */
} paginate_type_t;

static const paginate_type_t paginate_types[] = {
    {"cursor", {"cursor_path_in_response", "cursor_name_in_request"}, 2},
    {"link", {"link_rel_in_response_header", "link_path_in_response_body"}, 0},
    {"offset", {"offset_name_in_request", "offset_calculation_method"}, 1},
    {"page", {"page_name_in_request", NULL}, 1},
};

typedef struct {
    char *why;
    size_t why_len;
    char provider[JN_SHOWN_CAP];
    auth_mode_t mode;
    json_object *conn;  /* connection_config, or NULL */
    json_object *creds; /* credentials, or NULL */
} ctx_t;

/* ---- messages ---- */

static jn_err_t fail(ctx_t *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static jn_err_t fail(ctx_t *c, const char *path, const char *fmt, ...)
{
    if (!c->why || !c->why_len)
        return JN_ERR_INVALID;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (path && *path)
        snprintf(c->why, c->why_len, "catalog: provider '%s': %s: %s", c->provider, path, what);
    else
        snprintf(c->why, c->why_len, "catalog: provider '%s': %s", c->provider, what);
    return JN_ERR_INVALID;
}

/* Paths are short in practice; a long one ends in "..." rather than being cut silently. */
static const char *mark_cut(char *dst, int written)
{
    if (written < 0 || written >= PATH_CAP)
        memcpy(dst + PATH_CAP - 4, "...", 4);
    return dst;
}

static const char *join(char *dst, const char *base, const char *key)
{
    char k[JN_SHOWN_CAP];
    jn_shown(k, key, strlen(key));
    return mark_cut(dst, snprintf(dst, PATH_CAP, "%s%s%s", base, *base ? "." : "", k));
}

static const char *at_index(char *dst, const char *base, size_t i)
{
    return mark_cut(dst, snprintf(dst, PATH_CAP, "%s[%zu]", base, i));
}

/* "a, b, c" into dst. */
static void list(char *dst, size_t cap, const char *const *items, size_t n)
{
    size_t len = 0;
    dst[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        int w = snprintf(dst + len, cap - len, "%s%s", i ? ", " : "", items[i]);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static bool in(const char *s, const char *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i] && strcmp(s, items[i]) == 0)
            return true;
    }
    return false;
}

static bool starts_with(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(s, prefix, k) == 0;
}

/* Edit distance of two short strings, or SIZE_MAX when one is too long to bother. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[JN_SHOWN_MAX + 1];
    if (la > JN_SHOWN_MAX || lb > JN_SHOWN_MAX)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ---- typed access ---- */

static const char *type_name(json_type t)
{
    switch (t) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a decimal number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "unknown";
}

static jn_err_t want(ctx_t *c, const char *path, json_object *v, json_type t)
{
    json_type got = json_object_get_type(v);
    if (got != t)
        return fail(c, path, "must be %s, not %s", type_name(t), type_name(got));
    if (t == json_type_string &&
        strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
        return fail(c, path, "must not contain NUL characters");
    return JN_OK;
}

/* The string at path, which must be a string (non-empty when nonempty is set). */
static jn_err_t string_value(ctx_t *c, const char *path, json_object *v, bool nonempty,
                             const char **out)
{
    jn_err_t err = want(c, path, v, json_type_string);
    if (err)
        return err;
    *out = json_object_get_string(v);
    if (nonempty && !**out)
        return fail(c, path, "must not be empty");
    return JN_OK;
}

/* *out = the string at obj.key, or NULL when the field is absent. */
static jn_err_t get_string(ctx_t *c, json_object *obj, const char *base, const char *key,
                           bool nonempty, const char **out)
{
    json_object *v;
    char path[PATH_CAP];
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return JN_OK;
    return string_value(c, join(path, base, key), v, nonempty, out);
}

/* Like get_string, and the value must be one of items. */
static jn_err_t get_choice(ctx_t *c, json_object *obj, const char *base, const char *key,
                           const char *const *items, size_t n, const char **out)
{
    jn_err_t err = get_string(c, obj, base, key, false, out);
    if (err || !*out || in(*out, items, n))
        return err;
    char path[PATH_CAP], all[256], v[JN_SHOWN_CAP];
    list(all, sizeof all, items, n);
    return fail(c, join(path, base, key), "must be %s%s, not '%s'", n > 1 ? "one of " : "", all,
                jn_shown(v, *out, strlen(*out)));
}

static jn_err_t get_bool(ctx_t *c, json_object *obj, const char *base, const char *key,
                         bool *present, bool *value)
{
    json_object *v;
    char path[PATH_CAP];
    *present = *value = false;
    if (!json_object_object_get_ex(obj, key, &v))
        return JN_OK;
    jn_err_t err = want(c, join(path, base, key), v, json_type_boolean);
    if (err)
        return err;
    *present = true;
    *value = json_object_get_boolean(v);
    return JN_OK;
}

/* *out = the object at obj.key, or NULL when absent. */
static jn_err_t get_object(ctx_t *c, json_object *obj, const char *base, const char *key,
                           json_object **out)
{
    json_object *v;
    char path[PATH_CAP];
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return JN_OK;
    jn_err_t err = want(c, join(path, base, key), v, json_type_object);
    if (!err)
        *out = v;
    return err;
}

/* *out = the array at obj.key, or NULL when absent; every element a non-empty string, and
 * the array itself non-empty when nonempty is set. */
static jn_err_t get_strings(ctx_t *c, json_object *obj, const char *base, const char *key,
                            bool nonempty, json_object **out)
{
    json_object *v;
    char path[PATH_CAP], item[PATH_CAP];
    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return JN_OK;
    join(path, base, key);
    jn_err_t err = want(c, path, v, json_type_array);
    if (err)
        return err;
    size_t n = json_object_array_length(v);
    if (nonempty && n == 0)
        return fail(c, path, "must not be empty");
    for (size_t i = 0; i < n; i++) {
        const char *s;
        err = string_value(c, at_index(item, path, i), json_object_array_get_idx(v, i), true, &s);
        if (err)
            return err;
    }
    *out = v;
    return JN_OK;
}

/* Every field of obj must be one of allowed. */
static jn_err_t check_fields(ctx_t *c, json_object *obj, const char *base,
                             const char *const *allowed, size_t n)
{
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        if (in(key, allowed, n))
            continue;
        char path[PATH_CAP], all[512];
        join(path, base, key);
        const char *near = NULL;
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            size_t d = distance(key, allowed[i]);
            if (d < best) {
                best = d;
                near = allowed[i];
            }
        }
        if (near && best <= 2 && 2 * best < strlen(key))
            return fail(c, path, "unknown field (did you mean '%s'?)", near);
        list(all, sizeof all, allowed, n);
        return fail(c, path, "unknown field (allowed here: %s)", all);
    }
    return JN_OK;
}

/* ---- small value checks ---- */

static bool valid_provider_name(const char *s)
{
    if (!*s || *s == '-')
        return false;
    for (const char *p = s; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                  (*p == '-' && p[1] && p[1] != '-');
        if (!ok)
            return false;
    }
    return true;
}

/* A field key usable in ${connectionConfig.<key>} and ${credentials.<key>}. */
static bool valid_key(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' ||
                  (ch == '.' && s[i + 1] != '.');
        if (!ok)
            return false;
    }
    return true;
}

/* A header name as the schema writes it: a lowercase RFC 9110 token. */
static bool valid_header_name(const char *s)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return false;
    }
    return true;
}

/* A dot-separated path ("team.id"): no empty segment. */
static bool valid_dot_path(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[0] != '.' && s[n - 1] != '.' && !strstr(s, "..");
}

static bool valid_error_code(const char *s)
{
    if (strlen(s) != 3 || s[0] < '1' || s[0] > '5')
        return false;
    if (s[1] == 'x' && s[2] == 'x')
        return true;
    return s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9';
}

static bool has_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return true;
    }
    return false;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* Refuses regular-expression syntax that POSIX ERE, ECMAScript and PCRE do not read the
 * same way, or that glibc accepts silently with another meaning (it reads \d as "d"). */
static bool portable_regex(const char *re, char *problem, size_t cap)
{
    bool bracket = false;
    size_t first = 0; /* index of the first member of the open bracket expression */
    for (size_t i = 0; re[i]; i++) {
        char ch = re[i];
        if (bracket) {
            if (ch == '\\') {
                snprintf(problem, cap,
                         "a backslash inside [...] is literal in POSIX but an "
                         "escape in ECMAScript (put '-' last instead of \\-)");
                return false;
            }
            if (ch == '[' && (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
                snprintf(problem, cap, "[%c...%c] inside [...] is POSIX only", re[i + 1],
                         re[i + 1]);
                return false;
            }
            if (ch == ']' && i > first)
                bracket = false;
            continue;
        }
        if (ch == '\\') {
            char e = re[i + 1];
            if (!e || !strchr(".[](){}*+?|^$\\/-", e)) {
                snprintf(problem, cap,
                         "\\%c is not portable to POSIX regular expressions (write a bracket "
                         "expression such as [0-9] for \\d)",
                         e ? e : ' ');
                return false;
            }
            i++;
        } else if (ch == '[') {
            bracket = true;
            first = i + 1 + (re[i + 1] == '^');
        } else if (ch == '(' && re[i + 1] == '?') {
            snprintf(problem, cap, "(?...) groups are not POSIX");
            return false;
        }
    }
    return true;
}

/* ---- field specs (connection_config, credentials) ---- */

static jn_err_t value_matches(ctx_t *c, const char *path, const regex_t *re, const char *pattern,
                              const char *value, const char *what)
{
    if (regexec(re, value, 0, NULL, 0) == 0)
        return JN_OK;
    char v[JN_SHOWN_CAP], p[JN_SHOWN_CAP];
    return fail(c, path, "%s '%s' does not match the pattern %s", what,
                jn_shown(v, value, strlen(value)), jn_shown(p, pattern, strlen(pattern)));
}

/* The pattern of one spec compiles, and the spec's own example, enum values and default
 * match it. */
static jn_err_t check_pattern(ctx_t *c, json_object *spec, const char *base, const char *pattern,
                              bool is_cred)
{
    char path[PATH_CAP], problem[192], item[PATH_CAP];
    join(path, base, "pattern");
    if (!portable_regex(pattern, problem, sizeof problem))
        return fail(c, path, "%s", problem);
    regex_t re;
    int rc = regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        regerror(rc, &re, problem, sizeof problem);
        return fail(c, path, "does not compile as a regular expression: %s", problem);
    }
    jn_err_t err = JN_OK;
    json_object *v;
    if (json_object_object_get_ex(spec, "example", &v)) {
        const char *ex = json_object_get_string(v);
        size_t n = strlen(ex);
        bool abbreviated = is_cred && n >= 3 && strcmp(ex + n - 3, "...") == 0;
        if (!abbreviated)
            err = value_matches(c, join(path, base, "example"), &re, pattern, ex, "example");
    }
    if (!err && json_object_object_get_ex(spec, "default", &v) && *json_object_get_string(v))
        err = value_matches(c, join(path, base, "default"), &re, pattern, json_object_get_string(v),
                            "default");
    if (!err && json_object_object_get_ex(spec, "enum", &v)) {
        join(path, base, "enum");
        for (size_t i = 0; !err && i < json_object_array_length(v); i++)
            err = value_matches(c, at_index(item, path, i), &re, pattern,
                                json_object_get_string(json_object_array_get_idx(v, i)), "value");
    }
    regfree(&re);
    return err;
}

/* spec.host_suffixes, when present: hosts or ".domain" suffixes a value may lead to. */
static jn_err_t check_host_suffixes(ctx_t *c, json_object *spec, const char *path)
{
    json_object *arr;
    char base[PATH_CAP], item[PATH_CAP], v[JN_SHOWN_CAP];
    jn_err_t err = get_strings(c, spec, path, "host_suffixes", true, &arr);
    if (err || !arr)
        return err;
    join(base, path, "host_suffixes");
    size_t n = json_object_array_length(arr);
    if (n > JN_CONNCFG_SUFFIXES_MAX)
        return fail(c, base, "at most %d entries", JN_CONNCFG_SUFFIXES_MAX);
    for (size_t i = 0; i < n; i++) {
        const char *a = json_object_get_string(json_object_array_get_idx(arr, i));
        at_index(item, base, i);
        if (!jn_connection_config_suffix_valid(a))
            return fail(c, item,
                        "'%s' is not a host (\"login.example.com\") or a suffix "
                        "(\".example.com\"): a lowercase DNS name of two labels or more, "
                        "ending in a top-level domain",
                        jn_shown(v, a, strlen(a)));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(a, json_object_get_string(json_object_array_get_idx(arr, j))) == 0)
                return fail(c, item, "listed twice");
        }
    }
    return JN_OK;
}

static jn_err_t check_spec(ctx_t *c, json_object *spec, const char *path, bool is_cred)
{
    jn_err_t err = want(c, path, spec, json_type_object);
    if (!err)
        err = is_cred ? check_fields(c, spec, path, cred_spec_fields, COUNT(cred_spec_fields))
                      : check_fields(c, spec, path, conn_spec_fields, COUNT(conn_spec_fields));
    if (err)
        return err;
    char sub[PATH_CAP], item[PATH_CAP];
    const char *type, *s, *pattern = NULL, *dflt = NULL;
    static const char *const string_type[] = {"string"};
    if ((err = get_choice(c, spec, path, "type", string_type, 1, &type)))
        return err;
    if (!type)
        return fail(c, join(sub, path, "type"), "missing (always \"string\")");
    if ((err = get_string(c, spec, path, "title", true, &s)) ||
        (err = get_string(c, spec, path, "description", true, &s)) ||
        (err = get_string(c, spec, path, "example", true, &s)) ||
        (err = get_string(c, spec, path, "pattern", true, &pattern)) ||
        (err = get_choice(c, spec, path, "format", formats, COUNT(formats), &s)))
        return err;
    bool present, value, hidden = false;
    if ((err = get_bool(c, spec, path, "optional", &present, &value)))
        return err;
    if (is_cred) {
        if ((err = get_string(c, spec, path, "default", false, &dflt)) ||
            (err = get_bool(c, spec, path, "secret", &present, &value)) ||
            (err = get_bool(c, spec, path, "hidden", &present, &hidden)))
            return err;
        if (hidden && !dflt)
            return fail(c, join(sub, path, "hidden"), "a hidden field needs a default");
    } else {
        json_object *values;
        if ((err = get_string(c, spec, path, "prefix", true, &s)) ||
            (err = get_string(c, spec, path, "suffix", true, &s)) ||
            (err = get_bool(c, spec, path, "automated", &present, &value)) ||
            (err = get_strings(c, spec, path, "enum", true, &values)))
            return err;
        for (size_t i = 0; values && i < json_object_array_length(values); i++) {
            const char *a = json_object_get_string(json_object_array_get_idx(values, i));
            for (size_t j = 0; j < i; j++) {
                if (strcmp(a, json_object_get_string(json_object_array_get_idx(values, j))) == 0)
                    return fail(c, at_index(item, join(sub, path, "enum"), i), "listed twice");
            }
        }
        if ((err = check_host_suffixes(c, spec, path)))
            return err;
    }
    return pattern ? check_pattern(c, spec, path, pattern, is_cred) : JN_OK;
}

static jn_err_t check_specs(ctx_t *c, json_object *entry, const char *section, bool is_cred,
                            json_object **out)
{
    json_object *specs;
    jn_err_t err = get_object(c, entry, "", section, &specs);
    if (err || !specs)
        return err;
    struct json_object_iterator it = json_object_iter_begin(specs);
    struct json_object_iterator end = json_object_iter_end(specs);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        char path[PATH_CAP];
        const char *key = json_object_iter_peek_name(&it);
        join(path, section, key);
        if (!valid_key(key))
            return fail(c, path,
                        "not a valid key (letters, digits, '_', '-' and single '.', "
                        "at most 64)");
        if ((err = check_spec(c, json_object_iter_peek_value(&it), path, is_cred)))
            return err;
    }
    *out = specs;
    return JN_OK;
}

/* ---- templates ---- */

typedef enum { TPL_VALUE, TPL_URL, TPL_BASE_URL, TPL_PATH } tpl_kind_t;

typedef struct {
    ctx_t *c;
    const char *path;
    tpl_kind_t kind;
    bool failed;  /* the visitor wrote why */
    bool in_host; /* the current piece is in the scheme or host of a URL */
    size_t skip;  /* bytes of scheme at the start of the next text piece */
} tpl_t;

static jn_err_t tpl_fail(tpl_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static jn_err_t tpl_fail(tpl_t *t, const char *fmt, ...)
{
    char what[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    t->failed = true;
    return fail(t->c, t->path, "%s", what);
}

static jn_err_t tpl_alternative(tpl_t *t, const char *a, size_t n)
{
    char v[JN_SHOWN_CAP];
    t->in_host = false;
    t->skip = 0;
    if (t->kind == TPL_PATH) {
        if (n == 0 || a[0] != '/')
            return tpl_fail(t, "'%s' must start with '/'", jn_shown(v, a, n));
        return JN_OK;
    }
    if (t->kind == TPL_VALUE)
        return JN_OK;
    size_t scheme = starts_with(a, n, "https://") ? 8 : starts_with(a, n, "http://") ? 7 : 0;
    if (!scheme && !starts_with(a, n, "${"))
        return tpl_fail(t, "not an http(s) URL: '%s'", jn_shown(v, a, n));
    if (scheme && (n == scheme || strchr("/?#", a[scheme])))
        return tpl_fail(t, "'%s' has no host", jn_shown(v, a, n));
    if (t->kind == TPL_BASE_URL && a[n - 1] == '/')
        return tpl_fail(t, "'%s' must not end with '/'", jn_shown(v, a, n));
    t->in_host = true;
    t->skip = scheme;
    return JN_OK;
}

static jn_err_t tpl_text(tpl_t *t, const char *s, size_t n)
{
    size_t skip = t->skip;
    t->skip = 0;
    if (t->kind == TPL_VALUE)
        return JN_OK;
    if (has_space(s, n))
        return tpl_fail(t, "must not contain spaces or control characters");
    for (size_t i = skip; t->in_host && i < n; i++) {
        if (s[i] == '/' || s[i] == '?' || s[i] == '#')
            t->in_host = false;
    }
    return JN_OK;
}

static jn_err_t tpl_name(tpl_t *t, const char *name)
{
    ctx_t *c = t->c;
    json_object *spec;
    if (strncmp(name, "connectionConfig.", 17) == 0) {
        const char *key = name + 17;
        if (!c->conn || !json_object_object_get_ex(c->conn, key, &spec))
            return tpl_fail(t, "${%s}: connection_config does not declare '%s'", name, key);
        if (t->kind != TPL_VALUE && !json_object_object_get_ex(spec, "pattern", NULL))
            return tpl_fail(t,
                            "${%s} is inserted into %s, so connection_config.%s must declare "
                            "a pattern",
                            name, t->in_host ? "the host name" : "a URL", key);
    } else if (strncmp(name, "credentials.", 12) == 0) {
        if (!c->creds || !json_object_object_get_ex(c->creds, name + 12, &spec))
            return tpl_fail(t, "${%s}: credentials does not declare '%s'", name, name + 12);
    } else if (strcmp(name, "apiKey") == 0) {
        if (c->mode != MODE_API_KEY)
            return tpl_fail(t, "${apiKey} is only for auth_mode API_KEY (auth_mode is %s)",
                            mode_names[c->mode]);
        if (!c->creds || !json_object_object_get_ex(c->creds, "apiKey", &spec))
            return tpl_fail(t, "${apiKey} needs credentials.apiKey to be declared");
    } else if (strcmp(name, "accessToken") == 0) {
        if (c->mode != MODE_OAUTH2 && c->mode != MODE_OAUTH2_CC)
            return tpl_fail(t,
                            "${accessToken} is only for auth_mode OAUTH2 and OAUTH2_CC "
                            "(auth_mode is %s)",
                            mode_names[c->mode]);
    } else {
        return tpl_fail(t,
                        "unknown placeholder ${%s} (use connectionConfig.<key>, "
                        "credentials.<key>, apiKey or accessToken)",
                        name);
    }
    return JN_OK;
}

static jn_err_t tpl_visit(const jn_template_part_t *part, void *ud)
{
    tpl_t *t = ud;
    switch (part->kind) {
    case JN_TEMPLATE_ALTERNATIVE: return tpl_alternative(t, part->text, part->len);
    case JN_TEMPLATE_TEXT: return part->depth == 0 ? tpl_text(t, part->text, part->len) : JN_OK;
    case JN_TEMPLATE_NAME: return tpl_name(t, part->text);
    case JN_TEMPLATE_CALL: return JN_OK;
    }
    return JN_OK;
}

static jn_err_t check_template(ctx_t *c, const char *path, const char *tmpl, tpl_kind_t kind)
{
    tpl_t t = {.c = c, .path = path, .kind = kind};
    char why[192];
    jn_err_t err = jn_template_walk(tmpl, tpl_visit, &t, why, sizeof why);
    if (err && !t.failed)
        return fail(c, path, "%s", why);
    return err;
}

/* obj.key, when present: a non-empty URL template. */
static jn_err_t check_url(ctx_t *c, json_object *obj, const char *base, const char *key,
                          tpl_kind_t kind)
{
    const char *url;
    char path[PATH_CAP];
    jn_err_t err = get_string(c, obj, base, key, true, &url);
    if (err || !url)
        return err;
    return check_template(c, join(path, base, key), url, kind);
}

/* Whether a header or parameter name says it carries a credential. */
static bool credential_name(const char *name)
{
    static const char *const words[] = {"auth",      "key",       "token",     "secret",
                                        "password",  "passwd",    "session",   "cookie",
                                        "signature", "assertion", "credential"};
    for (size_t w = 0; w < COUNT(words); w++) {
        size_t k = strlen(words[w]);
        for (const char *p = name; strlen(p) >= k; p++) {
            if (strncasecmp(p, words[w], k) == 0)
                return true;
        }
    }
    return false;
}

typedef struct {
    bool credential;    /* a credential placeholder */
    const char *config; /* the first connectionConfig key, or NULL */
    char key[JN_SHOWN_CAP];
} uses_t;

static void note_use(const char *name, void *ud)
{
    uses_t *u = ud;
    if (strncmp(name, "connectionConfig.", 17) == 0 && !u->config)
        u->config = jn_shown(u->key, name + 17, strlen(name + 17));
    else if (strncmp(name, "credentials.", 12) == 0 || strcmp(name, "apiKey") == 0 ||
             strcmp(name, "accessToken") == 0)
        u->credential = true;
}

/* A header or parameter carries a credential when its name says so (credential_name) or
 * its template uses one; then it must not use connection_config, which is stored in plain
 * text and returned by the API: what sits beside a credential is a credential. */
static jn_err_t check_secret_slot(ctx_t *c, const char *path, const char *name, const char *tmpl)
{
    uses_t u = {0};
    jn_template_check(tmpl, note_use, &u, NULL, 0);
    if (!u.config || !(u.credential || credential_name(name)))
        return JN_OK;
    return fail(c, path,
                "carries a credential, so it must not use ${connectionConfig.%s}: "
                "connection_config is not secret (it is stored in plain text and returned by "
                "the API); declare it under credentials and use ${credentials.%s}",
                u.key, u.key);
}

/* obj.key, when present: an object of at most JN_CATALOG_MAX_TEMPLATES templates, with
 * header names as keys when headers is set. *out = it, or NULL. */
static jn_err_t check_template_map(ctx_t *c, json_object *obj, const char *base, const char *key,
                                   bool headers, json_object **out)
{
    json_object *map;
    jn_err_t err = get_object(c, obj, base, key, &map);
    *out = map;
    if (err || !map)
        return err;
    char mpath[PATH_CAP];
    join(mpath, base, key);
    if (json_object_object_length(map) > JN_CATALOG_MAX_TEMPLATES)
        return fail(c, mpath, "at most %d entries", JN_CATALOG_MAX_TEMPLATES);
    struct json_object_iterator it = json_object_iter_begin(map);
    struct json_object_iterator end = json_object_iter_end(map);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *name = json_object_iter_peek_name(&it), *tmpl;
        char path[PATH_CAP];
        join(path, mpath, name);
        if (headers && !valid_header_name(name))
            return fail(c, path, "not a lowercase header name");
        if (!headers && !*name)
            return fail(c, path, "the name must not be empty");
        if ((err = string_value(c, path, json_object_iter_peek_value(&it), false, &tmpl)) ||
            (err = check_template(c, path, tmpl, TPL_VALUE)) ||
            (err = check_secret_slot(c, path, name, tmpl)))
            return err;
    }
    return JN_OK;
}

/* ---- OAuth fields ---- */

static jn_err_t check_oauth(ctx_t *c, json_object *entry)
{
    jn_err_t err;
    json_object *map, *arr, *v;
    const char *s;
    bool present, value;
    if ((err = check_url(c, entry, "", "authorization_url", TPL_URL)) ||
        (err = check_url(c, entry, "", "token_url", TPL_URL)) ||
        (err = check_url(c, entry, "", "refresh_url", TPL_URL)) ||
        (err = check_template_map(c, entry, "", "authorization_params", false, &map)) ||
        (err = check_template_map(c, entry, "", "token_params", false, &map)))
        return err;
    if (c->mode == MODE_OAUTH2_CC && (!map || !json_object_object_get_ex(map, "grant_type", NULL)))
        return fail(c, "token_params.grant_type", "missing (required when auth_mode is OAUTH2_CC)");
    if ((err = check_template_map(c, entry, "", "refresh_params", false, &map)))
        return err;
    if (map) {
        if (!json_object_object_get_ex(map, "grant_type", &v))
            return fail(c, "refresh_params.grant_type", "missing (must be \"refresh_token\")");
        if (strcmp(json_object_get_string(v), "refresh_token") != 0)
            return fail(c, "refresh_params.grant_type", "must be \"refresh_token\"");
    }
    static const char *const auth_methods[] = {"body", "basic"};
    static const char *const body_formats[] = {"form", "json"};
    if ((err = get_string(c, entry, "", "scope_separator", true, &s)) ||
        (err = get_strings(c, entry, "", "default_scopes", false, &arr)) ||
        (err = get_bool(c, entry, "", "pkce", &present, &value)) ||
        (err = get_choice(c, entry, "", "token_request_auth_method", auth_methods, 2, &s)) ||
        (err = get_choice(c, entry, "", "token_request_body_format", body_formats, 2, &s)))
        return err;
    if (json_object_object_get_ex(entry, "token_expiration_buffer", &v)) {
        if ((err = want(c, "token_expiration_buffer", v, json_type_int)))
            return err;
        int64_t n = json_object_get_int64(v);
        if (n < 0 || n > 86400)
            return fail(c, "token_expiration_buffer", "must be between 0 and 86400 seconds");
    }
    static const char *const path_lists[] = {"token_response_metadata", "redirect_uri_metadata"};
    for (size_t k = 0; k < COUNT(path_lists); k++) {
        if ((err = get_strings(c, entry, "", path_lists[k], false, &arr)))
            return err;
        for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
            char path[PATH_CAP];
            if (!valid_dot_path(json_object_get_string(json_object_array_get_idx(arr, i))))
                return fail(c, at_index(path, path_lists[k], i),
                            "not a dot-separated path (no empty segment)");
        }
    }
    return JN_OK;
}

/* ---- proxy ---- */

static jn_err_t check_header_list(ctx_t *c, json_object *retry, const char *key)
{
    json_object *arr;
    char base[PATH_CAP], path[PATH_CAP];
    jn_err_t err = get_strings(c, retry, "proxy.retry", key, true, &arr);
    join(base, "proxy.retry", key);
    for (size_t i = 0; !err && arr && i < json_object_array_length(arr); i++) {
        if (!valid_header_name(json_object_get_string(json_object_array_get_idx(arr, i))))
            err = fail(c, at_index(path, base, i), "not a lowercase header name");
    }
    return err;
}

static jn_err_t check_retry(ctx_t *c, json_object *proxy)
{
    json_object *retry, *arr;
    const char *s = NULL;
    jn_err_t err = get_object(c, proxy, "proxy", "retry", &retry);
    if (err || !retry)
        return err;
    if ((err = check_fields(c, retry, "proxy.retry", retry_fields, COUNT(retry_fields))) ||
        (err = check_header_list(c, retry, "at")) || (err = check_header_list(c, retry, "after")) ||
        (err = get_string(c, retry, "proxy.retry", "remaining", true, &s)))
        return err;
    if (s && !valid_header_name(s))
        return fail(c, "proxy.retry.remaining", "not a lowercase header name");
    if ((err = get_strings(c, retry, "proxy.retry", "error_code", true, &arr)))
        return err;
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        char path[PATH_CAP], v[JN_SHOWN_CAP];
        const char *code = json_object_get_string(json_object_array_get_idx(arr, i));
        if (!valid_error_code(code))
            return fail(c, at_index(path, "proxy.retry.error_code", i),
                        "'%s' is not a status code (\"429\") or class (\"5xx\") from 100 to 599",
                        jn_shown(v, code, strlen(code)));
    }
    return JN_OK;
}

static jn_err_t check_paginate(ctx_t *c, json_object *proxy)
{
    static const char *const base = "proxy.paginate";
    json_object *pg;
    jn_err_t err = get_object(c, proxy, "proxy", "paginate", &pg);
    if (err || !pg)
        return err;
    if ((err = check_fields(c, pg, base, paginate_fields, COUNT(paginate_fields))))
        return err;
    const char *type, *s;
    const paginate_type_t *pt = NULL;
    static const char *const types[] = {"cursor", "link", "offset", "page"};
    if ((err = get_choice(c, pg, base, "type", types, COUNT(types), &type)))
        return err;
    if (!type)
        return fail(c, "proxy.paginate.type", "missing (cursor, link, offset or page)");
    for (size_t i = 0; i < COUNT(paginate_types); i++) {
        if (strcmp(type, paginate_types[i].type) == 0)
            pt = &paginate_types[i];
    }
    /* Every field a non-empty string; none of another type's. */
    struct json_object_iterator it = json_object_iter_begin(pg);
    struct json_object_iterator end = json_object_iter_end(pg);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        const char *key = json_object_iter_peek_name(&it);
        char path[PATH_CAP];
        join(path, base, key);
        if ((err = string_value(c, path, json_object_iter_peek_value(&it), true, &s)))
            return err;
        bool common = strcmp(key, "type") == 0 || strcmp(key, "limit_name_in_request") == 0 ||
                      strcmp(key, "response_path") == 0;
        if (!common && !in(key, pt->fields, COUNT(pt->fields)))
            return fail(c, path, "not allowed when type is '%s'", type);
    }
    char path[PATH_CAP];
    for (size_t i = 0; i < pt->required; i++) {
        if (!json_object_object_get_ex(pg, pt->fields[i], NULL))
            return fail(c, join(path, base, pt->fields[i]), "missing (required when type is '%s')",
                        type);
    }
    if (pt->required == 0 && !json_object_object_get_ex(pg, pt->fields[0], NULL) &&
        !json_object_object_get_ex(pg, pt->fields[1], NULL))
        return fail(c, base, "type '%s' needs %s or %s", type, pt->fields[0], pt->fields[1]);
    static const char *const offset_methods[] = {"by-response-size", "per-page"};
    return get_choice(c, pg, base, "offset_calculation_method", offset_methods, 2, &s);
}

static jn_err_t check_verification(ctx_t *c, json_object *proxy)
{
    static const char *const base = "proxy.verification";
    json_object *ver, *arr;
    const char *s;
    jn_err_t err = get_object(c, proxy, "proxy", "verification", &ver);
    if (err || !ver)
        return err;
    if ((err = check_fields(c, ver, base, verification_fields, COUNT(verification_fields))) ||
        (err = get_choice(c, ver, base, "method", methods, COUNT(methods), &s)) ||
        (err = get_strings(c, ver, base, "endpoints", true, &arr)))
        return err;
    if (!arr)
        return fail(c, "proxy.verification.endpoints", "missing");
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        char path[PATH_CAP];
        at_index(path, "proxy.verification.endpoints", i);
        s = json_object_get_string(json_object_array_get_idx(arr, i));
        if ((err = check_template(c, path, s, TPL_PATH)))
            return err;
    }
    return JN_OK;
}

static jn_err_t check_proxy(ctx_t *c, json_object *entry)
{
    json_object *proxy, *map;
    jn_err_t err = get_object(c, entry, "", "proxy", &proxy);
    if (err)
        return err;
    if (!proxy) {
        if (c->mode == MODE_NONE)
            return JN_OK;
        return fail(c, "proxy", "missing (proxy.base_url is required unless auth_mode is NONE)");
    }
    if ((err = check_fields(c, proxy, "proxy", proxy_fields, COUNT(proxy_fields))))
        return err;
    if (c->mode != MODE_NONE && !json_object_object_get_ex(proxy, "base_url", NULL))
        return fail(c, "proxy.base_url", "missing (required unless auth_mode is NONE)");
    if ((err = check_url(c, proxy, "proxy", "base_url", TPL_BASE_URL)) ||
        (err = check_template_map(c, proxy, "proxy", "headers", true, &map)) ||
        (err = check_template_map(c, proxy, "proxy", "query", false, &map)) ||
        (err = check_retry(c, proxy)) || (err = check_paginate(c, proxy)) ||
        (err = check_verification(c, proxy)))
        return err;
    return JN_OK;
}

/* ---- host names ---- */

typedef struct {
    ctx_t *c;
    const char *url_path;
    json_object *hosted; /* the connection_config keys found in a host, as a set */
} hosts_t;

/* One connection_config value in a URL's host: the field must say which hosts it may
 * lead to, and its own enum values and example must lead to valid ones. */
static jn_err_t host_slot(const jn_conncfg_host_slot_t *slot, void *ud)
{
    hosts_t *h = ud;
    ctx_t *c = h->c;
    json_object *spec = NULL, *enums = NULL, *suffixes = NULL, *v;
    if (!c->conn || !json_object_object_get_ex(c->conn, slot->field, &spec))
        return fail(c, h->url_path, "${connectionConfig.%s}: connection_config does not declare it",
                    slot->field);
    json_object_object_add(h->hosted, slot->field, NULL);
    json_object_object_get_ex(spec, "enum", &enums);
    json_object_object_get_ex(spec, "host_suffixes", &suffixes);
    if (!enums && !suffixes)
        return fail(c, h->url_path,
                    "${connectionConfig.%s} is placed in the host name, so "
                    "connection_config.%s must declare enum or host_suffixes (the hosts it "
                    "may lead to)",
                    slot->field, slot->field);
    const char *list[JN_CONNCFG_SUFFIXES_MAX];
    size_t n = 0;
    for (size_t i = 0;
         suffixes && i < json_object_array_length(suffixes) && n < JN_CONNCFG_SUFFIXES_MAX; i++)
        list[n++] = json_object_get_string(json_object_array_get_idx(suffixes, i));
    char path[PATH_CAP], base[PATH_CAP], item[PATH_CAP], why[320];
    join(base, "connection_config", slot->field);
    join(item, base, "enum");
    for (size_t i = 0; enums && i < json_object_array_length(enums); i++) {
        const char *value = json_object_get_string(json_object_array_get_idx(enums, i));
        if (jn_connection_config_host_check(slot, value, list, n, why, sizeof why) != JN_OK)
            return fail(c, at_index(path, item, i), "in %s: %s", h->url_path, why);
    }
    if (json_object_object_get_ex(spec, "example", &v) &&
        jn_connection_config_host_check(slot, json_object_get_string(v), list, n, why,
                                        sizeof why) != JN_OK)
        return fail(c, join(path, base, "example"), "in %s: %s", h->url_path, why);
    return JN_OK;
}

static jn_err_t check_hosts(ctx_t *c, json_object *entry)
{
    hosts_t h = {.c = c, .hosted = json_object_new_object()};
    if (!h.hosted)
        abort();
    jn_err_t err = JN_OK;
    for (size_t i = 0; !err && i < JN_CONNCFG_URL_FIELDS; i++) {
        const char *tmpl = jn_connection_config_url_template(entry, i);
        char why[256] = "";
        h.url_path = jn_connection_config_url_fields[i];
        if (tmpl && (err = jn_connection_config_host_slots(tmpl, host_slot, &h, why, sizeof why)) &&
            why[0])
            err = fail(c, h.url_path, "%s", why);
    }
    if (!err && c->conn) {
        json_object_object_foreach(c->conn, key, spec)
        {
            char field[PATH_CAP], path[PATH_CAP];
            if (json_object_object_get_ex(spec, "host_suffixes", NULL) &&
                !json_object_object_get_ex(h.hosted, key, NULL)) {
                join(field, "connection_config", key);
                err = fail(c, join(path, field, "host_suffixes"),
                           "only for a field placed in the host name of authorization_url, "
                           "token_url, refresh_url or proxy.base_url");
                break;
            }
        }
    }
    json_object_put(h.hosted);
    return err;
}

/* ---- auth modes ---- */

typedef struct {
    const char *key;
    bool found;
} find_t;

static void find_credential(const char *name, void *ud)
{
    find_t *f = ud;
    if ((strncmp(name, "credentials.", 12) == 0 && strcmp(name + 12, f->key) == 0) ||
        (strcmp(f->key, "apiKey") == 0 && strcmp(name, "apiKey") == 0))
        f->found = true;
}

/* API_KEY: each credential appears in proxy.headers or proxy.query. */
static jn_err_t check_injected(ctx_t *c, json_object *entry)
{
    json_object *proxy = NULL, *maps[2] = {NULL, NULL};
    json_object_object_get_ex(entry, "proxy", &proxy);
    json_object_object_get_ex(proxy, "headers", &maps[0]);
    json_object_object_get_ex(proxy, "query", &maps[1]);
    struct json_object_iterator it = json_object_iter_begin(c->creds);
    struct json_object_iterator end = json_object_iter_end(c->creds);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        find_t f = {json_object_iter_peek_name(&it), false};
        for (size_t m = 0; m < 2 && !f.found; m++) {
            if (!maps[m])
                continue;
            struct json_object_iterator jt = json_object_iter_begin(maps[m]);
            struct json_object_iterator jend = json_object_iter_end(maps[m]);
            for (; !f.found && !json_object_iter_equal(&jt, &jend); json_object_iter_next(&jt))
                jn_template_check(json_object_get_string(json_object_iter_peek_value(&jt)),
                                  find_credential, &f, NULL, 0);
        }
        if (!f.found) {
            char path[PATH_CAP];
            join(path, "credentials", f.key);
            return fail(c, path,
                        "never sent: an API_KEY credential must appear in proxy.headers or "
                        "proxy.query (as ${credentials.%s}%s)",
                        f.key, strcmp(f.key, "apiKey") == 0 ? " or ${apiKey}" : "");
        }
    }
    return JN_OK;
}

static jn_err_t require_credentials(ctx_t *c, const char *a, const char *b)
{
    const char *mode = mode_names[c->mode];
    if (!c->creds)
        return fail(c, "credentials", "missing (required when auth_mode is %s)", mode);
    const char *keys[] = {a, b};
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_CAP];
        if (keys[i] && !json_object_object_get_ex(c->creds, keys[i], NULL))
            return fail(c, join(path, "credentials", keys[i]),
                        "missing (required when auth_mode is %s)", mode);
    }
    if (json_object_object_length(c->creds) == 0)
        return fail(c, "credentials", "must declare at least one credential");
    return JN_OK;
}

/* Which fields the auth mode requires and forbids. */
static jn_err_t check_mode(ctx_t *c, json_object *entry)
{
    const char *mode = mode_names[c->mode];
    switch (c->mode) {
    case MODE_OAUTH2:
        if (!json_object_object_get_ex(entry, "authorization_url", NULL))
            return fail(c, "authorization_url", "missing (required when auth_mode is OAUTH2)");
        if (!json_object_object_get_ex(entry, "token_url", NULL))
            return fail(c, "token_url", "missing (required when auth_mode is OAUTH2)");
        if (c->creds)
            return fail(c, "credentials",
                        "not allowed when auth_mode is OAUTH2 (the client ID and secret belong "
                        "to the integration)");
        return JN_OK;
    case MODE_OAUTH2_CC:
        if (!json_object_object_get_ex(entry, "token_url", NULL))
            return fail(c, "token_url", "missing (required when auth_mode is OAUTH2_CC)");
        for (size_t i = 0; i < COUNT(cc_forbidden); i++) {
            if (json_object_object_get_ex(entry, cc_forbidden[i], NULL))
                return fail(c, cc_forbidden[i], "not allowed when auth_mode is OAUTH2_CC");
        }
        return require_credentials(c, "client_id", "client_secret");
    case MODE_API_KEY:
    case MODE_BASIC:
    case MODE_NONE:
        for (size_t i = 0; i < COUNT(oauth_fields); i++) {
            if (json_object_object_get_ex(entry, oauth_fields[i], NULL))
                return fail(c, oauth_fields[i],
                            "only allowed when auth_mode is OAUTH2 or OAUTH2_CC (auth_mode is %s)",
                            mode);
        }
        if (c->mode == MODE_API_KEY)
            return require_credentials(c, NULL, NULL);
        if (c->mode == MODE_BASIC)
            return require_credentials(c, "username", "password");
        if (c->creds)
            return fail(c, "credentials", "not allowed when auth_mode is NONE");
        return JN_OK;
    }
    return JN_OK;
}

/* ---- the entry ---- */

static jn_err_t check_identity(ctx_t *c, json_object *entry, const char *expected)
{
    const char *name, *s;
    char v[JN_SHOWN_CAP], e[JN_SHOWN_CAP];
    jn_err_t err = get_string(c, entry, "", "name", true, &name);
    if (err)
        return err;
    if (!name)
        return fail(c, "name", "missing");
    if (strlen(name) > JN_CATALOG_NAME_MAX)
        return fail(c, "name", "longer than %d characters", JN_CATALOG_NAME_MAX);
    if (!valid_provider_name(name))
        return fail(c, "name", "'%s' must be lowercase letters, digits and single hyphens",
                    jn_shown(v, name, strlen(name)));
    if (expected && strcmp(name, expected) != 0)
        return fail(c, "name", "'%s' does not match the expected name '%s'",
                    jn_shown(v, name, strlen(name)), jn_shown(e, expected, strlen(expected)));
    if ((err = check_fields(c, entry, "", top_fields, COUNT(top_fields))) ||
        (err = get_string(c, entry, "", "display_name", true, &s)))
        return err;
    if (!s)
        return fail(c, "display_name", "missing");
    if (utf8_chars(s) > JN_CATALOG_DISPLAY_NAME_MAX)
        return fail(c, "display_name", "longer than %d characters", JN_CATALOG_DISPLAY_NAME_MAX);

    json_object *cats;
    if ((err = get_strings(c, entry, "", "categories", true, &cats)))
        return err;
    if (!cats)
        return fail(c, "categories", "missing");
    for (size_t i = 0; i < json_object_array_length(cats); i++) {
        char path[PATH_CAP], all[320];
        at_index(path, "categories", i);
        s = json_object_get_string(json_object_array_get_idx(cats, i));
        if (!in(s, category_names, COUNT(category_names))) {
            list(all, sizeof all, category_names, COUNT(category_names));
            return fail(c, path, "unknown category '%s' (one of %s)", jn_shown(v, s, strlen(s)),
                        all);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s, json_object_get_string(json_object_array_get_idx(cats, j))) == 0)
                return fail(c, path, "'%s' is listed twice", s);
        }
    }

    if ((err = get_string(c, entry, "", "docs", true, &s)))
        return err;
    if (!s)
        return fail(c, "docs", "missing");
    if (!starts_with(s, strlen(s), "https://") || !s[8] || strchr("/?#", s[8]) ||
        has_space(s, strlen(s)))
        return fail(c, "docs", "not an https URL");

    if ((err = get_choice(c, entry, "", "auth_mode", mode_names, COUNT(mode_names), &s)))
        return err;
    if (!s)
        return fail(c, "auth_mode", "missing");
    for (size_t i = 0; i < COUNT(mode_names); i++) {
        if (strcmp(s, mode_names[i]) == 0)
            c->mode = (auth_mode_t)i;
    }
    return JN_OK;
}

jn_err_t jn_catalog_validate(json_object *entry, const char *expected_name, char *why,
                             size_t why_len)
{
    ctx_t c = {.why = why, .why_len = why_len};
    json_object *v;
    if (expected_name)
        jn_shown(c.provider, expected_name, strlen(expected_name));
    else if (json_object_object_get_ex(entry, "name", &v) &&
             json_object_is_type(v, json_type_string))
        jn_shown(c.provider, json_object_get_string(v), strlen(json_object_get_string(v)));
    else
        jn_shown(c.provider, "?", 1);
    if (!json_object_is_type(entry, json_type_object))
        return fail(&c, NULL, "must be a JSON object");

    jn_err_t err;
    if ((err = check_identity(&c, entry, expected_name)) ||
        (err = check_specs(&c, entry, "connection_config", false, &c.conn)) ||
        (err = check_specs(&c, entry, "credentials", true, &c.creds)) ||
        (err = check_mode(&c, entry)) || (err = check_oauth(&c, entry)) ||
        (err = check_proxy(&c, entry)) || (err = check_hosts(&c, entry)))
        return err;
    jn_field_error_t e;
    if (jn_webhook_spec_check(entry, &e))
        return fail(&c, e.path, "%s", e.message);
    if (c.mode == MODE_API_KEY)
        return check_injected(&c, entry);
    return JN_OK;
}
