/*
 * frequency.c - parsing sync frequencies (grammar in frequency.h).
 */
#include "core/frequency.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_TEXT 64

static const struct {
    const char *word;
    int64_t seconds;
} units[] = {
    {"s", 1},          {"sec", 1},     {"secs", 1},     {"second", 1},  {"seconds", 1},
    {"m", 60},         {"min", 60},    {"mins", 60},    {"minute", 60}, {"minutes", 60},
    {"h", 3600},       {"hr", 3600},   {"hrs", 3600},   {"hour", 3600}, {"hours", 3600},
    {"d", 86400},      {"day", 86400}, {"days", 86400}, {"w", 604800},  {"week", 604800},
    {"weeks", 604800},
};

static const struct {
    const char *words;
    int64_t seconds;
} aliases[] = {
    {"second", 1},       {"minute", 60},        {"hour", 3600},
    {"day", 86400},      {"week", 604800},      {"month", 30 * 86400},
    {"half hour", 1800}, {"quarter hour", 900}, {"half day", 43200},
};

static jn_err_t invalid(char *why, size_t why_len, const char *text)
{
    if (why)
        snprintf(why, why_len,
                 "'%.64s' is not a frequency (write e.g. \"every 5 minutes\", \"30m\", \"1h\" or "
                 "\"every day\")",
                 text);
    return JN_ERR_INVALID;
}

jn_err_t jn_frequency_parse(const char *text, int64_t *seconds, char *why, size_t why_len)
{
    char buf[MAX_TEXT + 1];
    size_t n = 0;
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    for (; *p && n < MAX_TEXT; p++)
        buf[n++] = (char)tolower((unsigned char)*p);
    if (*p)
        return invalid(why, why_len, text);
    while (n && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    const char *s = buf;
    bool every = strncmp(s, "every ", 6) == 0;
    if (every) {
        s += 6;
        while (*s == ' ')
            s++;
    }
    int64_t total = -1;
    for (size_t i = 0; every && i < sizeof aliases / sizeof aliases[0]; i++) {
        if (strcmp(s, aliases[i].words) == 0)
            total = aliases[i].seconds;
    }
    if (total < 0) {
        /* <number> <unit>: at most 9 integer digits and 3 decimals, to stay exact. */
        int64_t whole = 0, frac = 0, scale = 1;
        int digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 10) {
            whole = whole * 10 + (*s++ - '0');
            digits++;
        }
        if (digits == 0 || digits == 10)
            return invalid(why, why_len, text);
        if (*s == '.') {
            s++;
            int fd = 0;
            while (*s >= '0' && *s <= '9' && fd < 3) {
                frac = frac * 10 + (*s++ - '0');
                scale *= 10;
                fd++;
            }
            if (fd == 0 || (*s >= '0' && *s <= '9'))
                return invalid(why, why_len, text);
        }
        while (*s == ' ')
            s++;
        int64_t unit = 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (strcmp(s, units[i].word) == 0)
                unit = units[i].seconds;
        }
        if (!unit)
            return invalid(why, why_len, text);
        total = (whole * scale + frac) * unit / scale;
    }
    if (total < JN_FREQUENCY_MIN_SECONDS) {
        if (why)
            snprintf(why, why_len, "'%.64s' is too frequent: at least %d seconds", text,
                     JN_FREQUENCY_MIN_SECONDS);
        return JN_ERR_INVALID;
    }
    if (total > JN_FREQUENCY_MAX_SECONDS) {
        if (why)
            snprintf(why, why_len, "'%.64s' is too long: at most 31 days", text);
        return JN_ERR_INVALID;
    }
    *seconds = total;
    return JN_OK;
}
