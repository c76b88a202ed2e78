/*
 * canonical_json.h - one text per JSON value, so that equal values hash equal.
 *
 * Records are diffed by a hash of their content; Nango hashes JSON.stringify's output,
 * which changes with key order and number spelling and so reports records as UPDATED
 * that did not change. The canonical text fixes every free choice of JSON:
 *   - objects: keys sorted by their UTF-8 bytes, no whitespace anywhere;
 *   - strings: UTF-8 as is, escaping only '"', '\' and control characters (\b \f \n \r
 *     \t by name, the others and NUL as \u00XX); invalid UTF-8 is refused;
 *   - numbers: the value decides, not the spelling: an integer, or a double with an
 *     integral value of magnitude below 2^53, is written as an integer ("1", "1.0",
 *     "1e0" and "10E-1" are all "1"; "-0" is "0"); any other double is written with the
 *     fewest significant digits that read back as the same double ("%.*g"); NaN and
 *     infinities are refused;
 *   - true, false, null as themselves; arrays keep their order.
 * Depth is capped at JN_CANONICAL_MAX_DEPTH. Thread-safe; no globals.
 */
#ifndef JN_CANONICAL_JSON_H
#define JN_CANONICAL_JSON_H

#include <json-c/json.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json_util.h"

#define JN_CANONICAL_MAX_DEPTH 64

/* Appends the canonical text of v to out. JN_ERR_INVALID with e naming the path below
 * the value ("address.lines[2]": "not a finite number") for what JSON cannot hold;
 * JN_ERR_TOO_LARGE when out's cap is reached (out may then hold part of the text). */
jn_err_t jn_canonical_json(json_object *v, jn_buf_t *out, jn_field_error_t *e);

/* jn_canonical_json of the object v with its member named drop left out and its member
 * named key (added when absent) given value instead (drop and key may be NULL): a record
 * without its metadata and with its id as a string, without building a copy of it. */
jn_err_t jn_canonical_json_object(json_object *v, const char *drop, const char *key,
                                  json_object *value, jn_buf_t *out, jn_field_error_t *e);

/* Appends s[0..n) as a canonical JSON string literal (quotes included). JN_ERR_INVALID
 * when s is not valid UTF-8; JN_ERR_TOO_LARGE at out's cap. */
jn_err_t jn_canonical_json_string(const char *s, size_t n, jn_buf_t *out);

/* The number v (a json-c int or double) in canonical form into out (at least 32 bytes).
 * JN_ERR_INVALID for NaN and infinities. */
jn_err_t jn_canonical_number(json_object *v, char out[32]);

#endif
