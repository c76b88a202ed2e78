/*
 * frequency.c - parsing "every 5 minutes" into seconds.
 */
#include "core/frequency.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *name;
    long long ms;
} unit_t;

static const unit_t units[] = {
    {"ms", 1},
    {"s", 1000},
    {"sec", 1000},
    {"secs", 1000},
    {"second", 1000},
    {"seconds", 1000},
    {"m", 60000},
    {"min", 60000},
    {"mins", 60000},
    {"minute", 60000},
    {"minutes", 60000},
    {"h", 3600000},
    {"hr", 3600000},
    {"hrs", 3600000},
    {"hour", 3600000},
    {"hours", 3600000},
    {"d", 86400000},
    {"day", 86400000},
    {"days", 86400000},
    {"w", 604800000},
    {"week", 604800000},
    {"weeks", 604800000},
    {"month", 2592000000LL},
    {"months", 2592000000LL},
};

static const unit_t aliases[] = {
    {"hour", 3600000},       {"day", 86400000},      {"week", 604800000},
    {"month", 2592000000LL}, {"half hour", 1800000}, {"quarter hour", 900000},
    {"half day", 43200000},
};

jn_err_t jn_frequency_parse(const char *text, long long *seconds)
{
    if (!text)
        return JN_ERR_INVALID;
    const char *p = text;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "every ", 6) == 0) {
        p += 6;
        while (*p == ' ')
            p++;
    }
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == ' ')
        n--;
    if (n == 0 || n > 40)
        return JN_ERR_INVALID;
    long long ms = -1;
    for (size_t i = 0; i < sizeof aliases / sizeof *aliases; i++) {
        if (strlen(aliases[i].name) == n && strncasecmp(p, aliases[i].name, n) == 0)
            ms = aliases[i].ms;
    }
    if (ms < 0) {
        long long count = 0;
        size_t i = 0;
        while (i < n && isdigit((unsigned char)p[i])) {
            if (count > 1000000000LL)
                return JN_ERR_INVALID;
            count = count * 10 + (p[i] - '0');
            i++;
        }
        if (i == 0 || count == 0)
            return JN_ERR_INVALID;
        while (i < n && p[i] == ' ')
            i++;
        size_t unit_len = n - i;
        for (size_t u = 0; u < sizeof units / sizeof *units && unit_len; u++) {
            if (strlen(units[u].name) == unit_len &&
                strncasecmp(p + i, units[u].name, unit_len) == 0)
                ms = count * units[u].ms;
        }
        if (ms < 0)
            return JN_ERR_INVALID;
    }
    if (ms % 1000)
        return JN_ERR_INVALID;
    *seconds = ms / 1000;
    return JN_OK;
}
