/*
 * iso8601.h - date-times as text: the RFC 3339 profile of ISO 8601 that APIs exchange
 * ("2026-11-28T18:00:00Z", "2026-11-28T19:00:00.250+01:00").
 *
 * Parsing is strict and checks the whole grammar, so a value either means one instant or
 * is refused: four-digit year, month 01-12, a day that exists in that month (leap years
 * included), hour 00-23, minute 00-59, second 00-60 (60 only as a leap second, read as the
 * next second), an optional fraction of 1 to 9 digits (dropped: the result is whole
 * seconds), then "Z" or an offset "+hh:mm" / "-hh:mm" with hh 00-23 and mm 00-59. The
 * separators are "T" and "Z" in upper case. A date-time without any offset is read as UTC,
 * which is what a JavaScript client that forgot the "Z" almost always meant. Nothing may
 * follow. No globals; every function is thread-safe.
 */
#ifndef JN_ISO8601_H
#define JN_ISO8601_H

#include <stddef.h>

#include "core/err.h"

#define JN_ISO8601_LEN 32 /* bytes jn_iso8601_format writes, with the NUL */

/* Parses text into unix seconds (*out). JN_ERR_INVALID, *out untouched, when text is not a
 * date-time of the grammar above; why (may be NULL) then says which part is wrong
 * ("the offset's hours must be 00-23"). */
jn_err_t jn_iso8601_parse(const char *text, long long *out, char *why, size_t why_len);

/* Formats unix seconds as UTC with milliseconds, as JavaScript's toISOString() does:
 * "2026-11-28T18:00:00.000Z". */
void jn_iso8601_format(long long unix_seconds, char out[JN_ISO8601_LEN]);

#endif
