/*
 * log.h - JSON-lines logging to standard error.
 *
 * One line per event: {"ts":"2026-11-28T18:00:00.123Z","level":"info",
 * "service":"gateway","component":"kafka","msg":"..."}. A line is written with one
 * write(2), so lines from many threads never interleave; it is capped at
 * JN_LOG_LINE_MAX bytes (the message is cut, never the JSON). Thread-safe.
 * Never format a secret into a message: logs are shipped and kept.
 */
#ifndef JN_LOG_H
#define JN_LOG_H

#include <stddef.h>

#include "core/err.h"

#define JN_LOG_LINE_MAX 8192

typedef enum { JN_LOG_DEBUG = 0, JN_LOG_INFO, JN_LOG_WARN, JN_LOG_ERROR } jn_log_level_t;

/* Sets the service name stamped on each line (copied) and the lowest level written.
 * Call once at start-up, before threads. */
void jn_log_init(const char *service, jn_log_level_t min_level);

/* Parses "debug", "info", "warn" or "error". */
jn_err_t jn_log_level_parse(const char *text, jn_log_level_t *out);

/* Writes one line if level >= the minimum. component names the module ("pg"). */
void jn_log(jn_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define jn_log_debug(component, ...) jn_log(JN_LOG_DEBUG, component, __VA_ARGS__)
#define jn_log_info(component, ...) jn_log(JN_LOG_INFO, component, __VA_ARGS__)
#define jn_log_warn(component, ...) jn_log(JN_LOG_WARN, component, __VA_ARGS__)
#define jn_log_error(component, ...) jn_log(JN_LOG_ERROR, component, __VA_ARGS__)

/* Appends text to dst (capacity cap, currently used len) as the inside of a JSON string,
 * escaping quotes, backslashes and control characters, and writing each byte that is not
 * part of valid UTF-8 as \ufffd. Stops, NUL-terminated, when the next character would not
 * fit (a multi-byte character is never cut). Returns the new length. */
size_t jn_log_json_escape(char *dst, size_t cap, size_t len, const char *text);

#endif
