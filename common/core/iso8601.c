/*
 * iso8601.c - strict RFC 3339 date-times (see the header). A hand-written parser rather
 * than strptime(): strptime accepts one-digit fields, skips spaces, and knows nothing of
 * offsets, so it cannot tell a valid date-time from a near miss.
 */
#include "core/iso8601.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static jn_err_t refuse(char *why, size_t why_len, const char *what)
{
    if (why && why_len)
        snprintf(why, why_len, "%s", what);
    return JN_ERR_INVALID;
}

/* Reads exactly n digits at *p into *out; false (and *p unmoved) when one is missing. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool leap(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && leap(year) ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar (Howard
 * Hinnant's days_from_civil): no time zone, no libc state. */
static long long days_from_civil(int year, int month, int day)
{
    long long y = year - (month <= 2);
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

jn_err_t jn_iso8601_parse(const char *text, long long *out, char *why, size_t why_len)
{
    const char *p = text;
    int year, month, day, hour, minute, second;
    if (!p || !digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &month) || *p++ != '-' ||
        !digits(&p, 2, &day))
        return refuse(why, why_len, "the date must be YYYY-MM-DD");
    if (month < 1 || month > 12)
        return refuse(why, why_len, "the month must be 01-12");
    if (day < 1 || day > days_in_month(year, month))
        return refuse(why, why_len, "the day does not exist in that month");
    if (*p++ != 'T')
        return refuse(why, why_len, "the date must be followed by 'T' and a time");
    if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &minute) || *p++ != ':' ||
        !digits(&p, 2, &second))
        return refuse(why, why_len, "the time must be hh:mm:ss");
    if (hour > 23)
        return refuse(why, why_len, "the hours must be 00-23");
    if (minute > 59)
        return refuse(why, why_len, "the minutes must be 00-59");
    if (second > 60)
        return refuse(why, why_len, "the seconds must be 00-60");
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9' && n <= 9) {
            p++;
            n++;
        }
        if (n == 0 || n > 9)
            return refuse(why, why_len, "a fraction of a second must have 1 to 9 digits");
    }
    long long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '+' ? 1 : -1, oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om))
            return refuse(why, why_len, "the offset must be Z, +hh:mm or -hh:mm");
        if (oh > 23)
            return refuse(why, why_len, "the offset's hours must be 00-23");
        if (om > 59)
            return refuse(why, why_len, "the offset's minutes must be 00-59");
        offset = sign * (oh * 3600LL + om * 60LL);
    }
    if (*p != '\0')
        return refuse(why, why_len, "unexpected text after the date-time");
    *out = days_from_civil(year, month, day) * 86400LL + hour * 3600LL + minute * 60LL + second -
           offset;
    return JN_OK;
}

void jn_iso8601_format(long long unix_seconds, char out[JN_ISO8601_LEN])
{
    time_t t = (time_t)unix_seconds;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, JN_ISO8601_LEN, "%Y-%m-%dT%H:%M:%S.000Z", &tm) == 0)
        snprintf(out, JN_ISO8601_LEN, "1970-01-01T00:00:00.000Z");
}
