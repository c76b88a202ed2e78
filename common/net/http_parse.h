/*
 * http_parse.h - strict HTTP/1.1 request parsing: the request head, chunked bodies, and
 * percent-decoding of paths and queries. Pure functions over caller buffers, no I/O.
 *
 * Strict on purpose (RFC 9112): anything two parsers could read differently is refused,
 * because the gateway forwards requests and must never disagree with a peer about where
 * one ends. Refused: a bare CR, obsolete line folding, white space between a field name
 * and its colon, a field name that is not a token, control characters (other than HTAB)
 * or invalid UTF-8 in field values, Content-Length that is not all digits or appears
 * twice, Content-Length together with Transfer-Encoding, a Transfer-Encoding other than
 * "chunked", a request target that is not origin-form ("/...") — or "*" for OPTIONS —,
 * raw bytes outside visible ASCII in the target, and versions other than HTTP/1.0 and
 * HTTP/1.1. Lines may end in CRLF or LF.
 *
 * Every refusal carries the status the server answers with (400, 414, 431, 501, 505), a
 * code from the API's error vocabulary and a message for the client.
 */
#ifndef JN_HTTP_PARSE_H
#define JN_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct {
    const char *name;  /* NUL-terminated, as sent */
    const char *value; /* NUL-terminated, trimmed of surrounding white space */
} jn_http_field_t;

typedef struct {
    size_t max_target; /* bytes of the request target (414 past it) */
    size_t max_head;   /* bytes of the whole head (431 past it) */
    size_t max_fields; /* number of header fields (431 past it) */
} jn_http_parse_limits_t;

typedef struct {
    const char *method;      /* NUL-terminated */
    const char *target;      /* NUL-terminated, as sent: "/a%20b?x=1" */
    int minor_version;       /* 0 or 1 */
    jn_http_field_t *fields; /* the caller's array of limits->max_fields entries */
    size_t field_count;
    long long content_length; /* -1 when absent */
    bool chunked;
    bool keep_alive;      /* what the client asked for, by version and Connection */
    bool expect_continue; /* Expect: 100-continue */
    bool upgrade;         /* Connection: upgrade with an Upgrade field */
} jn_http_head_t;

typedef struct {
    int status;       /* 400, 414, 417, 431, 501 or 505 */
    const char *code; /* "invalid_request", "invalid_headers", ... (static) */
    char message[160];
} jn_http_parse_error_t;

typedef enum {
    JN_HTTP_PARSE_DONE,  /* a whole head was parsed */
    JN_HTTP_PARSE_MORE,  /* the head is not complete yet: read more */
    JN_HTTP_PARSE_ERROR, /* refused: *error says how to answer */
} jn_http_parse_result_t;

/* Parses the head at the start of buf[0..len). On DONE, *consumed is the head's length and
 * head points into buf, which is modified in place (NULs end each string); the caller
 * keeps buf unchanged while it uses head. head->fields must point to an array of
 * limits->max_fields entries. Leading empty lines are skipped (RFC 9112 §2.2). */
jn_http_parse_result_t jn_http_parse_head(char *buf, size_t len,
                                          const jn_http_parse_limits_t *limits,
                                          jn_http_head_t *head, size_t *consumed,
                                          jn_http_parse_error_t *error);

/* The value of the first field called name (case-insensitive), or NULL. */
const char *jn_http_head_field(const jn_http_head_t *head, const char *name);

/* Decoding a chunked body (RFC 9112 §7.1): chunk extensions are skipped (4 KiB per size
 * line), trailers are read and discarded (16 KiB for the whole trailer section). */
typedef struct {
    int state;
    unsigned long long remaining; /* of the current chunk */
    size_t line_bytes;            /* of the size line or trailer being read */
    bool done;
} jn_http_chunked_t;

void jn_http_chunked_init(jn_http_chunked_t *d);

/* Decodes in place: reads up to len bytes at buf, writes the body bytes they carry at the
 * start of buf (never past what was read), and returns how many body bytes were written.
 * *consumed is how many input bytes were used; after the last chunk and the trailers
 * d->done is true and the rest of buf belongs to the next request. -1 on malformed input
 * (a bad size line, a chunk larger than 2^60, a missing CRLF, over-long extensions or
 * trailers). */
long jn_http_chunked_decode(jn_http_chunked_t *d, char *buf, size_t len, size_t *consumed);

/* Percent-decodes in[0..len) into out (at least len + 1 bytes), NUL-terminated; with
 * plus_is_space "+" becomes " " (query strings). JN_ERR_INVALID on a malformed escape,
 * an encoded or raw NUL, or invalid UTF-8 in the result. *out_len excludes the NUL. */
jn_err_t jn_http_percent_decode(const char *in, size_t len, bool plus_is_space, char *out,
                                size_t *out_len);

#endif
