/*
 * buf.h - a growing byte buffer with a cap (curl's dynbuf): what builds a response body, a
 * COPY stream or a canonical JSON text whose size depends on data.
 *
 * The cap is set at init and never exceeded: an append that would pass it fails with
 * JN_ERR_TOO_LARGE and leaves the buffer as it was, so the caller can report the limit
 * instead of growing without bound. The content is always NUL-terminated (the NUL is not
 * counted in len). Allocation failure aborts (the project's policy outside Lua). Not
 * thread-safe: a buffer belongs to one request or job.
 */
#ifndef JN_BUF_H
#define JN_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct {
    char *data; /* NUL-terminated; NULL until the first append */
    size_t len;
    size_t cap_alloc;
    size_t max; /* the cap on len */
} jn_buf_t;

/* An empty buffer that may grow to max bytes. Allocates nothing yet. */
void jn_buf_init(jn_buf_t *b, size_t max);

/* Frees the memory; the buffer is empty (and reusable) afterwards. */
void jn_buf_cleanup(jn_buf_t *b);

/* Empties it, keeping the memory. */
void jn_buf_reset(jn_buf_t *b);

/* Makes room for n more bytes up front (the cap still applies), so that a buffer whose
 * size is known roughly grows once. JN_ERR_TOO_LARGE past the cap. */
jn_err_t jn_buf_reserve(jn_buf_t *b, size_t n);

/* Appends n bytes. JN_ERR_TOO_LARGE (nothing appended) past the cap. */
jn_err_t jn_buf_append(jn_buf_t *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
jn_err_t jn_buf_append_str(jn_buf_t *b, const char *s);

/* Appends printf-style text. */
jn_err_t jn_buf_printf(jn_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends integers in network byte order (PostgreSQL's binary COPY). */
jn_err_t jn_buf_be16(jn_buf_t *b, uint16_t v);
jn_err_t jn_buf_be32(jn_buf_t *b, uint32_t v);
jn_err_t jn_buf_be64(jn_buf_t *b, uint64_t v);

/* Takes the content as a new NUL-terminated string (caller frees; never NULL) and leaves
 * the buffer empty. *len (may be NULL) receives its length. */
char *jn_buf_take(jn_buf_t *b, size_t *len);

#endif
