/*
 * err.h - the one error type of Junction.
 *
 * Every fallible function returns a jn_err_t (JN_OK = 0) and hands results out
 * through parameters. Whether an error is worth retrying is decided here, where the
 * code is defined, so callers never guess (librdkafka's rd_kafka_error_t is the model).
 * The human-readable "why" is logged once, at the place that knows it.
 */
#ifndef JN_ERR_H
#define JN_ERR_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    JN_OK = 0,
    JN_ERR_INVALID,           /* bad input or configuration: retrying will not help */
    JN_ERR_NOT_FOUND,         /* the thing asked for does not exist */
    JN_ERR_CONFLICT,          /* it exists already, or a concurrent change won */
    JN_ERR_TOO_LARGE,         /* a size cap was hit */
    JN_ERR_NOMEM,             /* an allocation failed (only where we propagate, e.g. Lua) */
    JN_ERR_IO,                /* a local I/O or system call failed */
    JN_ERR_DB,                /* PostgreSQL refused the statement (not a connection problem) */
    JN_ERR_DB_UNAVAILABLE,    /* PostgreSQL cannot be reached: retryable */
    JN_ERR_KAFKA,             /* Kafka refused permanently */
    JN_ERR_KAFKA_UNAVAILABLE, /* Kafka cannot be reached or timed out: retryable */
    JN_ERR_TIMEOUT,           /* a deadline passed: retryable */
    JN_ERR_UPSTREAM,          /* an external provider failed */
    JN_ERR_INTERNAL,          /* a bug: an invariant did not hold */
    JN_ERR_BUSY,              /* overloaded: a queue or a concurrency limit is full; retryable */
} jn_err_t;

/* Returns a static, stable, lowercase name for the code ("db_unavailable"). */
const char *jn_err_str(jn_err_t err);

/* True when the same operation may succeed if tried again later. */
bool jn_err_retryable(jn_err_t err);

/* Writes the printf-style reason into why (when why is not NULL and why_len > 0) and
 * returns err: `return jn_err_why(JN_ERR_INVALID, why, why_len, "...", ...);`. */
jn_err_t jn_err_why(jn_err_t err, char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
