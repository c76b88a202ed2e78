/*
 * http_parse.c - the request head, chunked bodies and percent-decoding (see the header for
 * the rules and why they are strict).
 */
#include "net/http_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/json_util.h"

#define MAX_METHOD 32
#define MAX_CHUNK_LINE 4096
#define MAX_TRAILERS 16384

static jn_http_parse_result_t refuse(jn_http_parse_error_t *e, int status, const char *code,
                                     const char *message)
{
    e->status = status;
    e->code = code;
    snprintf(e->message, sizeof e->message, "%s", message);
    return JN_HTTP_PARSE_ERROR;
}

/* A refusal that names a header: "header <name> <what>". */
static jn_http_parse_result_t refuse_header(jn_http_parse_error_t *e, const char *name,
                                            const char *what)
{
    e->status = 400;
    e->code = "invalid_headers";
    snprintf(e->message, sizeof e->message, "header %.64s %s", name, what);
    return JN_HTTP_PARSE_ERROR;
}

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte allowed raw in a request target: visible ASCII. RFC 3986 would have "[", "]", "|"
 * and a few others escaped, but clients send them raw (axios leaves the brackets of
 * tags[key]=value as they are), and they are harmless once the target is split and
 * decoded; white space, control bytes and bytes past ASCII are refused. */
static bool is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '#';
}

/* Finds the end of the line starting at p (before end): returns the position of its LF and
 * sets *eol_len to 1 or 2 (CRLF); NULL when there is no LF yet. *bare_cr is set when a CR
 * appears anywhere but right before the LF. */
static char *line_end(char *p, char *end, size_t *eol_len, bool *bare_cr)
{
    for (char *q = p; q < end; q++) {
        if (*q == '\n') {
            *eol_len = (q > p && q[-1] == '\r') ? 2 : 1;
            return q;
        }
        if (*q == '\r' && q + 1 < end && q[1] != '\n')
            *bare_cr = true;
    }
    return NULL;
}

static bool token_list_has(const char *value, const char *token)
{
    size_t n = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *stop = p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if ((size_t)(stop - start) == n && strncasecmp(start, token, n) == 0)
            return true;
    }
    return false;
}

const char *jn_http_head_field(const jn_http_head_t *head, const char *name)
{
    for (size_t i = 0; i < head->field_count; i++) {
        if (strcasecmp(head->fields[i].name, name) == 0)
            return head->fields[i].value;
    }
    return NULL;
}

static jn_http_parse_result_t parse_request_line(char *line, char *stop,
                                                 const jn_http_parse_limits_t *lim,
                                                 jn_http_head_t *head, jn_http_parse_error_t *e)
{
    char *p = line;
    while (p < stop && is_tchar((unsigned char)*p))
        p++;
    if (p == line || p >= stop || *p != ' ')
        return refuse(e, 400, "invalid_request", "the request line is malformed");
    if (p - line > MAX_METHOD)
        return refuse(e, 400, "invalid_request", "the method is too long");
    *p++ = '\0';
    head->method = line;
    char *target = p;
    while (p < stop && *p != ' ') {
        if (!is_target_char((unsigned char)*p))
            return refuse(e, 400, "invalid_uri_params",
                          "the request target holds a character that must be percent-encoded");
        p++;
    }
    if (p == target || p >= stop)
        return refuse(e, 400, "invalid_request", "the request line is malformed");
    if ((size_t)(p - target) > lim->max_target)
        return refuse(e, 414, "uri_too_long", "the request target is too long");
    *p++ = '\0';
    head->target = target;
    if (stop - p != 8 || strncmp(p, "HTTP/1.", 7) != 0)
        return refuse(e, 400, "invalid_request", "the request line is malformed");
    if (p[7] == '1')
        head->minor_version = 1;
    else if (p[7] == '0')
        head->minor_version = 0;
    else
        return refuse(e, 505, "http_version_not_supported", "only HTTP/1.0 and 1.1 are served");
    if (target[0] != '/' && !(strcmp(target, "*") == 0 && strcmp(head->method, "OPTIONS") == 0))
        return refuse(e, 400, "invalid_request", "the request target must start with /");
    return JN_HTTP_PARSE_DONE;
}

static jn_http_parse_result_t parse_field(char *line, char *stop, jn_http_head_t *head,
                                          const jn_http_parse_limits_t *lim,
                                          jn_http_parse_error_t *e)
{
    if (*line == ' ' || *line == '\t')
        return refuse(e, 400, "invalid_headers", "folded header lines are not accepted");
    char *p = line;
    while (p < stop && is_tchar((unsigned char)*p))
        p++;
    if (p == line || p >= stop || *p != ':')
        return refuse(e, 400, "invalid_headers", "a header line is malformed");
    if (head->field_count == lim->max_fields)
        return refuse(e, 431, "headers_too_large", "more than the allowed number of headers");
    *p++ = '\0';
    while (p < stop && (*p == ' ' || *p == '\t'))
        p++;
    char *vend = stop;
    while (vend > p && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    for (char *q = p; q < vend; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return refuse_header(e, line, "holds a control character");
    }
    if (!jn_utf8_valid(p, (size_t)(vend - p)))
        return refuse_header(e, line, "is not valid UTF-8");
    *vend = '\0';
    head->fields[head->field_count++] = (jn_http_field_t){line, p};
    return JN_HTTP_PARSE_DONE;
}

static jn_http_parse_result_t check_semantics(jn_http_head_t *head, jn_http_parse_error_t *e)
{
    int lengths = 0, encodings = 0, hosts = 0;
    bool conn_close = false, conn_keep = false, conn_upgrade = false, has_upgrade = false;
    for (size_t i = 0; i < head->field_count; i++) {
        const char *n = head->fields[i].name, *v = head->fields[i].value;
        if (strcasecmp(n, "content-length") == 0) {
            if (++lengths > 1)
                return refuse(e, 400, "invalid_headers", "Content-Length appears twice");
            size_t digits = strspn(v, "0123456789");
            if (digits == 0 || v[digits] != '\0' || digits > 18)
                return refuse(e, 400, "invalid_headers", "Content-Length is not a number");
            head->content_length = 0;
            for (const char *d = v; *d; d++)
                head->content_length = head->content_length * 10 + (*d - '0');
        } else if (strcasecmp(n, "transfer-encoding") == 0) {
            if (++encodings > 1 || strcasecmp(v, "chunked") != 0)
                return refuse(e, 501, "not_implemented",
                              "only Transfer-Encoding: chunked is accepted");
            head->chunked = true;
        } else if (strcasecmp(n, "host") == 0) {
            hosts++;
        } else if (strcasecmp(n, "connection") == 0) {
            conn_close |= token_list_has(v, "close");
            conn_keep |= token_list_has(v, "keep-alive");
            conn_upgrade |= token_list_has(v, "upgrade");
        } else if (strcasecmp(n, "upgrade") == 0) {
            has_upgrade = true;
        } else if (strcasecmp(n, "expect") == 0) {
            if (strcasecmp(v, "100-continue") != 0)
                return refuse(e, 417, "expectation_failed", "only Expect: 100-continue is met");
            head->expect_continue = true;
        }
    }
    if (lengths && encodings)
        return refuse(e, 400, "invalid_headers",
                      "Content-Length and Transfer-Encoding may not both be sent");
    if (encodings && head->minor_version == 0)
        return refuse(e, 400, "invalid_headers", "HTTP/1.0 has no chunked encoding");
    if (hosts > 1 || (hosts == 0 && head->minor_version == 1))
        return refuse(e, 400, "invalid_headers", "exactly one Host header is required");
    head->keep_alive = head->minor_version == 1 ? !conn_close : (conn_keep && !conn_close);
    head->upgrade = conn_upgrade && has_upgrade;
    return JN_HTTP_PARSE_DONE;
}

jn_http_parse_result_t jn_http_parse_head(char *buf, size_t len,
                                          const jn_http_parse_limits_t *limits,
                                          jn_http_head_t *head, size_t *consumed,
                                          jn_http_parse_error_t *error)
{
    jn_http_field_t *fields = head->fields;
    memset(head, 0, sizeof *head);
    head->fields = fields;
    head->content_length = -1;
    char *p = buf, *end = buf + len;
    /* Empty lines before a request are skipped, a few of them. */
    for (int skipped = 0; p < end && skipped < 4; skipped++) {
        if (*p == '\n')
            p++;
        else if (*p == '\r' && p + 1 < end && p[1] == '\n')
            p += 2;
        else
            break;
    }
    /* Find the empty line that ends the head before touching anything. */
    bool bare_cr = false;
    char *line = p;
    size_t eol_len = 0;
    char *request_line_end = NULL;
    char *head_end = NULL;
    for (;;) {
        char *lf = line_end(line, end, &eol_len, &bare_cr);
        if (!lf)
            break;
        if (!request_line_end)
            request_line_end = lf;
        if (lf + 1 - eol_len == line) {
            head_end = lf + 1;
            break;
        }
        line = lf + 1;
    }
    if (bare_cr)
        return refuse(error, 400, "invalid_request", "a bare CR is not a line ending");
    if (!head_end) {
        if (!request_line_end && (size_t)(end - p) > limits->max_target + 64)
            return refuse(error, 414, "uri_too_long", "the request target is too long");
        if ((size_t)(end - buf) > limits->max_head)
            return refuse(error, 431, "headers_too_large", "the request head is too large");
        return JN_HTTP_PARSE_MORE;
    }
    if ((size_t)(head_end - buf) > limits->max_head)
        return refuse(error, 431, "headers_too_large", "the request head is too large");

    /* Now parse line by line, writing NULs in place. */
    line = p;
    char *lf = line_end(line, head_end, &eol_len, &bare_cr);
    jn_http_parse_result_t r = parse_request_line(line, lf + 1 - eol_len, limits, head, error);
    if (r != JN_HTTP_PARSE_DONE)
        return r;
    line = lf + 1;
    for (;;) {
        lf = line_end(line, head_end, &eol_len, &bare_cr);
        char *stop = lf + 1 - eol_len;
        if (stop == line)
            break;
        for (char *q = line; q < stop; q++) {
            if (*q == '\0')
                return refuse(error, 400, "invalid_headers", "a header holds a NUL byte");
        }
        r = parse_field(line, stop, head, limits, error);
        if (r != JN_HTTP_PARSE_DONE)
            return r;
        line = lf + 1;
    }
    r = check_semantics(head, error);
    if (r != JN_HTTP_PARSE_DONE)
        return r;
    *consumed = (size_t)(head_end - buf);
    return JN_HTTP_PARSE_DONE;
}

/* ---- chunked bodies ---- */

enum {
    S_SIZE,
    S_EXT,
    S_SIZE_LF,
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TRAILER_START,
    S_TRAILER_LINE,
    S_TRAILER_END_LF,
    S_DONE
};

void jn_http_chunked_init(jn_http_chunked_t *d)
{
    memset(d, 0, sizeof *d);
    d->state = S_SIZE;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long jn_http_chunked_decode(jn_http_chunked_t *d, char *buf, size_t len, size_t *consumed)
{
    size_t in = 0, out = 0;
    while (in < len && d->state != S_DONE) {
        char c = buf[in];
        switch (d->state) {
        case S_SIZE: {
            int h = hex_value(c);
            if (h >= 0) {
                if (d->remaining >> 56)
                    return -1; /* past 2^60 */
                d->remaining = d->remaining * 16 + (unsigned)h;
                if (++d->line_bytes > 16)
                    return -1;
                in++;
                break;
            }
            if (d->line_bytes == 0)
                return -1; /* no digits */
            if (c == ';' || c == ' ' || c == '\t') {
                d->state = S_EXT;
            } else if (c == '\r') {
                d->state = S_SIZE_LF;
            } else if (c == '\n') {
                d->state = d->remaining ? S_DATA : S_TRAILER_START;
                d->line_bytes = 0;
            } else {
                return -1;
            }
            in++;
            break;
        }
        case S_EXT:
            if (++d->line_bytes > MAX_CHUNK_LINE)
                return -1;
            if (c == '\r') {
                d->state = S_SIZE_LF;
            } else if (c == '\n') {
                d->state = d->remaining ? S_DATA : S_TRAILER_START;
                d->line_bytes = 0;
            }
            in++;
            break;
        case S_SIZE_LF:
            if (c != '\n')
                return -1;
            d->state = d->remaining ? S_DATA : S_TRAILER_START;
            d->line_bytes = 0;
            in++;
            break;
        case S_DATA: {
            size_t n = len - in;
            if (n > d->remaining)
                n = (size_t)d->remaining;
            memmove(buf + out, buf + in, n);
            out += n;
            in += n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = S_DATA_CR;
            break;
        }
        case S_DATA_CR:
            if (c == '\r')
                d->state = S_DATA_LF;
            else if (c == '\n')
                d->state = S_SIZE;
            else
                return -1;
            d->line_bytes = 0;
            in++;
            break;
        case S_DATA_LF:
            if (c != '\n')
                return -1;
            d->state = S_SIZE;
            in++;
            break;
        case S_TRAILER_START:
            /* line_bytes counts the whole trailer section, not one line: many short
             * trailer lines are bounded too. */
            if (++d->line_bytes > MAX_TRAILERS)
                return -1;
            if (c == '\r')
                d->state = S_TRAILER_END_LF;
            else if (c == '\n')
                d->state = S_DONE;
            else
                d->state = S_TRAILER_LINE;
            in++;
            break;
        case S_TRAILER_LINE:
            if (++d->line_bytes > MAX_TRAILERS)
                return -1;
            if (c == '\n')
                d->state = S_TRAILER_START;
            in++;
            break;
        case S_TRAILER_END_LF:
            if (c != '\n')
                return -1;
            d->state = S_DONE;
            in++;
            break;
        default: return -1;
        }
    }
    d->done = d->state == S_DONE;
    *consumed = in;
    return (long)out;
}

/* ---- percent-decoding ---- */

jn_err_t jn_http_percent_decode(const char *in, size_t len, bool plus_is_space, char *out,
                                size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (len - i < 3)
                return JN_ERR_INVALID;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return JN_ERR_INVALID;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return JN_ERR_INVALID;
        out[o++] = c;
    }
    out[o] = '\0';
    if (!jn_utf8_valid(out, o))
        return JN_ERR_INVALID;
    *out_len = o;
    return JN_OK;
}
