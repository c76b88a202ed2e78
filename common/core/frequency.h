/*
 * frequency.h - a sync's frequency: "every 5 minutes", "1h", "every day".
 *
 * The grammar follows Nango's (the `ms` notation after an optional "every "):
 *   [every] <number> <unit>     number: digits with an optional fraction ("1.5h");
 *                               unit: s sec secs second seconds, m min mins minute
 *                               minutes, h hr hrs hour hours, d day days, w week weeks
 *   every <unit word>           second, minute, hour, day, week, month (30 days),
 *                               half hour (30 min), quarter hour (15 min), half day (12 h)
 * Case and surrounding spaces do not matter; a space between number and unit is
 * optional. The result is whole seconds, from 30 s (Nango's minimum) to 31 days.
 */
#ifndef JN_FREQUENCY_H
#define JN_FREQUENCY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define JN_FREQUENCY_MIN_SECONDS 30
#define JN_FREQUENCY_MAX_SECONDS (31 * 24 * 3600)

/* Parses text into *seconds. JN_ERR_INVALID with why ("not a frequency: ...", "at least
 * 30 seconds", ...) otherwise. why may be NULL. */
jn_err_t jn_frequency_parse(const char *text, int64_t *seconds, char *why, size_t why_len);

#endif
