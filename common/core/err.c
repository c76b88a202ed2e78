/*
 * err.c - names and retry classes of jn_err_t.
 */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *jn_err_str(jn_err_t err)
{
    switch (err) {
    case JN_OK: return "ok";
    case JN_ERR_INVALID: return "invalid";
    case JN_ERR_NOT_FOUND: return "not_found";
    case JN_ERR_CONFLICT: return "conflict";
    case JN_ERR_TOO_LARGE: return "too_large";
    case JN_ERR_NOMEM: return "out_of_memory";
    case JN_ERR_IO: return "io";
    case JN_ERR_DB: return "db";
    case JN_ERR_DB_UNAVAILABLE: return "db_unavailable";
    case JN_ERR_KAFKA: return "kafka";
    case JN_ERR_KAFKA_UNAVAILABLE: return "kafka_unavailable";
    case JN_ERR_TIMEOUT: return "timeout";
    case JN_ERR_UPSTREAM: return "upstream";
    case JN_ERR_INTERNAL: return "internal";
    case JN_ERR_BUSY: return "busy";
    }
    return "unknown";
}

bool jn_err_retryable(jn_err_t err)
{
    switch (err) {
    case JN_ERR_DB_UNAVAILABLE:
    case JN_ERR_KAFKA_UNAVAILABLE:
    case JN_ERR_TIMEOUT:
    case JN_ERR_IO:
    case JN_ERR_UPSTREAM:
    case JN_ERR_BUSY: return true;
    default: return false;
    }
}

jn_err_t jn_err_why(jn_err_t err, char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return err;
}
