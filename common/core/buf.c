/*
 * buf.c - the growing, capped byte buffer.
 */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jn_buf_init(jn_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap_alloc = 0;
    b->max = max;
}

void jn_buf_cleanup(jn_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap_alloc = 0;
}

void jn_buf_reset(jn_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

/* Makes room for n more bytes and the NUL. */
static jn_err_t reserve(jn_buf_t *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return JN_ERR_TOO_LARGE;
    size_t need = b->len + n + 1;
    if (need <= b->cap_alloc)
        return JN_OK;
    size_t cap = b->cap_alloc ? b->cap_alloc : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1 > need ? b->max + 1 : need;
    char *grown = realloc(b->data, cap);
    if (!grown)
        abort();
    b->data = grown;
    b->cap_alloc = cap;
    return JN_OK;
}

jn_err_t jn_buf_reserve(jn_buf_t *b, size_t n)
{
    jn_err_t err = reserve(b, n);
    if (!err)
        b->data[b->len] = '\0';
    return err;
}

jn_err_t jn_buf_append(jn_buf_t *b, const void *p, size_t n)
{
    jn_err_t err = reserve(b, n);
    if (err)
        return err;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return JN_OK;
}

jn_err_t jn_buf_append_str(jn_buf_t *b, const char *s)
{
    return jn_buf_append(b, s, strlen(s));
}

jn_err_t jn_buf_printf(jn_buf_t *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return JN_ERR_INVALID;
    if ((size_t)n < sizeof small)
        return jn_buf_append(b, small, (size_t)n);
    jn_err_t err = reserve(b, (size_t)n);
    if (err)
        return err;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return JN_OK;
}

jn_err_t jn_buf_be16(jn_buf_t *b, uint16_t v)
{
    unsigned char p[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    return jn_buf_append(b, p, 2);
}

jn_err_t jn_buf_be32(jn_buf_t *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return jn_buf_append(b, p, 4);
}

jn_err_t jn_buf_be64(jn_buf_t *b, uint64_t v)
{
    jn_err_t err = jn_buf_be32(b, (uint32_t)(v >> 32));
    return err ? err : jn_buf_be32(b, (uint32_t)v);
}

char *jn_buf_take(jn_buf_t *b, size_t *len)
{
    if (!b->data) {
        b->data = malloc(1);
        if (!b->data)
            abort();
        b->data[0] = '\0';
    }
    char *out = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap_alloc = 0;
    return out;
}
