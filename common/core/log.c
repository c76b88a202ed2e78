/*
 * log.c - JSON-lines logger.
 *
 * Lines are composed in a stack buffer and written with a single write(2) so that
 * concurrent threads and processes sharing a file never interleave. Cost per line is a
 * vsnprintf, an escape pass and one system call.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/json_util.h"

static char service_name[32] = "junction";
static jn_log_level_t min_level = JN_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void jn_log_init(const char *service, jn_log_level_t level)
{
    snprintf(service_name, sizeof service_name, "%s", service);
    min_level = level;
}

jn_err_t jn_log_level_parse(const char *text, jn_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (jn_log_level_t)i;
            return JN_OK;
        }
    }
    return JN_ERR_INVALID;
}

/* The length of the UTF-8 sequence a lead byte starts (1 for anything else). */
static size_t utf8_length(unsigned char lead)
{
    return lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
}

size_t jn_log_json_escape(char *dst, size_t cap, size_t len, const char *text)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[7];
        size_t n;
        if (*p >= 0x80) {
            /* A whole valid sequence is copied (never cut); anything else becomes U+FFFD,
             * so a line stays valid JSON whatever bytes it was given. */
            n = utf8_length(*p);
            if (n > 1 && jn_utf8_valid((const char *)p, n)) {
                if (len + n + 1 > cap)
                    break;
                memcpy(dst + len, p, n);
                len += n;
                p += n - 1;
                continue;
            }
            memcpy(esc, "\\ufffd", 6);
            n = 6;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p == '\n') {
            memcpy(esc, "\\n", 2);
            n = 2;
        } else if (*p == '\t') {
            memcpy(esc, "\\t", 2);
            n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            n = 6;
        } else {
            esc[0] = (char)*p;
            n = 1;
        }
        if (len + n + 1 > cap)
            break;
        memcpy(dst + len, esc, n);
        len += n;
    }
    if (cap > 0)
        dst[len < cap ? len : cap - 1] = '\0';
    return len;
}

void jn_log(jn_log_level_t level, const char *component, const char *fmt, ...)
{
    if (level < min_level)
        return;

    char msg[JN_LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);

    char line[JN_LOG_LINE_MAX];
    int head = snprintf(line, sizeof line,
                        "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
                        "\"service\":\"%s\",\"component\":\"",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, now.tv_nsec / 1000000L, level_names[level], service_name);
    size_t len = (size_t)head;
    /* Keep room for the raw separator and the closing "\"}\n" whatever the lengths. */
    const size_t reserve = 16;
    len = jn_log_json_escape(line, sizeof line - reserve, len, component);
    memcpy(line + len, "\",\"msg\":\"", 9);
    len += 9;
    len = jn_log_json_escape(line, sizeof line - reserve, len, msg);
    memcpy(line + len, "\"}\n", 3);
    len += 3;

    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
