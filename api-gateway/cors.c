/*
 * cors.c - origin lists and the CORS headers of the end-user routes (see cors.h).
 *
 * Origins are compared in one normal form: lowercase scheme and host, the port only when
 * it is not the scheme's default, no trailing slash — the form browsers put in Origin.
 */
#include "cors.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define HOST_MAX 253

/* Parses "scheme://host[:port]" at s (len bytes) into its normal form. With rest, anything
 * from a '/', '?' or '#' on is ignored (a URL); without, only one trailing '/' may follow
 * (an origin as written in a list). */
static bool normalize(const char *s, size_t len, bool rest, char out[JN_CORS_ORIGIN_MAX])
{
    const char *scheme;
    unsigned default_port;
    size_t i;
    out[0] = '\0';
    if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
        scheme = "http", default_port = 80, i = 7;
    } else if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
        scheme = "https", default_port = 443, i = 8;
    } else {
        return false;
    }
    char host[HOST_MAX + 3];
    size_t h = 0;
    if (i < len && s[i] == '[') {
        /* An IPv6 literal: hex digits, ':' and '.' (an embedded IPv4) inside brackets. */
        host[h++] = '[';
        for (i++; i < len && s[i] != ']'; i++) {
            if (!(isxdigit((unsigned char)s[i]) || s[i] == ':' || s[i] == '.') || h >= HOST_MAX)
                return false;
            host[h++] = (char)tolower((unsigned char)s[i]);
        }
        if (i == len || h == 1)
            return false;
        host[h++] = ']';
        i++;
    } else {
        for (; i < len && (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'); i++) {
            if (h >= HOST_MAX)
                return false;
            host[h++] = (char)tolower((unsigned char)s[i]);
        }
        if (h == 0)
            return false;
    }
    host[h] = '\0';
    unsigned port = 0;
    if (i < len && s[i] == ':') {
        size_t digits = 0;
        for (i++; i < len && isdigit((unsigned char)s[i]); i++, digits++) {
            port = port * 10 + (unsigned)(s[i] - '0');
            if (port > 65535)
                return false;
        }
        if (digits == 0 || port == 0)
            return false;
    }
    if (i < len) {
        if (rest ? !strchr("/?#", s[i]) : !(s[i] == '/' && i + 1 == len))
            return false;
    }
    if (port && port != default_port)
        snprintf(out, JN_CORS_ORIGIN_MAX, "%s://%s:%u", scheme, host, port);
    else
        snprintf(out, JN_CORS_ORIGIN_MAX, "%s://%s", scheme, host);
    return true;
}

bool jn_cors_origin_of(const char *url, char out[JN_CORS_ORIGIN_MAX])
{
    return url && normalize(url, strlen(url), true, out);
}

/* The next comma-separated entry of *list, without surrounding spaces; false at the end. */
static bool next_entry(const char **list, const char **start, size_t *len)
{
    const char *p = *list;
    if (!*p)
        return false;
    const char *comma = strchr(p, ',');
    const char *end = comma ? comma : p + strlen(p);
    *list = comma ? comma + 1 : end;
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    *start = p;
    *len = (size_t)(end - p);
    return true;
}

/* NULL, blank or "*" alone: any origin. */
static bool admits_any(const char *list)
{
    if (!list)
        return true;
    while (isspace((unsigned char)*list))
        list++;
    if (!*list)
        return true;
    if (*list != '*')
        return false;
    for (list++; isspace((unsigned char)*list); list++)
        ;
    return *list == '\0';
}

jn_err_t jn_cors_origins_check(const char *list, char *why, size_t why_len)
{
    if (!list || admits_any(list))
        return JN_OK;
    if (strlen(list) > JN_CORS_LIST_MAX) {
        snprintf(why, why_len, "the list is longer than %d characters", JN_CORS_LIST_MAX);
        return JN_ERR_INVALID;
    }
    const char *p = list, *entry;
    size_t len, count = 0;
    while (next_entry(&p, &entry, &len)) {
        char origin[JN_CORS_ORIGIN_MAX];
        if (++count > JN_CORS_MAX_ORIGINS) {
            snprintf(why, why_len, "at most %d origins", JN_CORS_MAX_ORIGINS);
            return JN_ERR_INVALID;
        }
        if (len == 0) {
            snprintf(why, why_len, "entry %zu is empty", count);
            return JN_ERR_INVALID;
        }
        if (len == 1 && entry[0] == '*') {
            snprintf(why, why_len, "'*' (any origin) cannot be combined with other origins");
            return JN_ERR_INVALID;
        }
        if (!normalize(entry, len, false, origin)) {
            snprintf(why, why_len,
                     "'%.*s' is not an origin (http:// or https://, a host and an optional "
                     "port; no path, user or query)",
                     (int)(len > 200 ? 200 : len), entry);
            return JN_ERR_INVALID;
        }
    }
    /* A trailing comma leaves an empty last entry that next_entry does not return. */
    size_t n = strlen(list);
    while (n > 0 && isspace((unsigned char)list[n - 1]))
        n--;
    if (n > 0 && list[n - 1] == ',') {
        snprintf(why, why_len, "the list ends with a comma");
        return JN_ERR_INVALID;
    }
    return JN_OK;
}

bool jn_cors_origin_allowed(const char *list, const char *origin, const char *own_origin)
{
    if (admits_any(list))
        return true;
    char want[JN_CORS_ORIGIN_MAX];
    if (!origin || !normalize(origin, strlen(origin), false, want))
        return false;
    char own[JN_CORS_ORIGIN_MAX];
    if (own_origin && jn_cors_origin_of(own_origin, own) && strcmp(own, want) == 0)
        return true;
    const char *p = list, *entry;
    size_t len;
    while (next_entry(&p, &entry, &len)) {
        char allowed[JN_CORS_ORIGIN_MAX];
        if (normalize(entry, len, false, allowed) && strcmp(allowed, want) == 0)
            return true;
    }
    return false;
}

/* Adds the Allow-Origin header for an origin already known to be allowed. */
static void allow_origin(jn_http_response_t *res, const char *list, const char *origin)
{
    if (admits_any(list)) {
        jn_http_add_header(res, "Access-Control-Allow-Origin", "*");
    } else {
        jn_http_add_header(res, "Access-Control-Allow-Origin", origin);
        jn_http_add_header(res, "Vary", "Origin");
    }
}

bool jn_cors_answer(const jn_http_request_t *req, jn_http_response_t *res, const char *list,
                    const char *own_origin)
{
    const char *origin = jn_http_header(req, "Origin");
    if (!origin)
        return true;
    if (jn_cors_origin_allowed(list, origin, own_origin)) {
        allow_origin(res, list, origin);
        return true;
    }
    jn_http_respond_error(res, 403, "origin_not_allowed",
                          "this environment does not accept requests from pages of %.*s", 200,
                          origin);
    return false;
}

void jn_cors_preflight(const jn_http_request_t *req, jn_http_response_t *res, const char *list,
                       const char *own_origin, const char *methods)
{
    char allow[64];
    snprintf(allow, sizeof allow, "%s, OPTIONS", methods);
    jn_http_respond_text(res, 204, "text/plain", "");
    jn_http_add_header(res, "Allow", allow);
    const char *origin = jn_http_header(req, "Origin");
    if (!origin || !jn_cors_origin_allowed(list, origin, own_origin))
        return;
    allow_origin(res, list, origin);
    jn_http_add_header(res, "Access-Control-Allow-Methods", allow);
    jn_http_add_header(res, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    jn_http_add_header(res, "Access-Control-Max-Age", "600");
}

json_object *jn_cors_message_targets(const char *list, const char *own_origin)
{
    json_object *targets = json_object_new_array();
    char origin[JN_CORS_ORIGIN_MAX];
    if (jn_cors_origin_of(own_origin, origin))
        json_object_array_add(targets, json_object_new_string(origin));
    if (admits_any(list))
        return targets;
    const char *p = list, *entry;
    size_t len;
    while (next_entry(&p, &entry, &len)) {
        if (normalize(entry, len, false, origin))
            json_object_array_add(targets, json_object_new_string(origin));
    }
    return targets;
}
