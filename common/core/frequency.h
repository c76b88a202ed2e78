/*
 * frequency.h - sync frequencies as people write them: "every 5 minutes", "30m", "1h",
 * "every hour", "every 2 days", "every half hour" (Nango's notation: the `ms` package's
 * units after an optional "every ").
 *
 * Grammar: optional "every " then either an alias (hour, day, week, month, "half hour",
 * "quarter hour", "half day") or a positive integer, optional spaces, and a unit: ms,
 * s / sec / secs / second / seconds, m / min / mins / minute / minutes, h / hr / hrs / hour
 * / hours, d / day / days, w / week / weeks, month / months (30 days). Case does not
 * matter. The result is whole seconds; the caller applies its bounds.
 */
#ifndef JN_FREQUENCY_H
#define JN_FREQUENCY_H

#include "core/err.h"

/* Parses text into seconds. JN_ERR_INVALID when it is not a frequency of the grammar or
 * is not a whole number of seconds. */
jn_err_t jn_frequency_parse(const char *text, long long *seconds);

#endif
