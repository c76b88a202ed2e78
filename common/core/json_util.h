/*
 * json_util.h - strict JSON input: parsing untrusted bodies and reading typed fields
 * with errors that name the offending field.
 *
 * Everything that reads JSON from outside (HTTP bodies, custom providers, job
 * messages) goes through here, so the rules exist once: strict RFC 8259 syntax, valid
 * UTF-8, a depth cap, no trailing data, no NUL bytes (raw or \u0000 escaped) in strings,
 * and a length cap per string field.
 */
#ifndef JN_JSON_UTIL_H
#define JN_JSON_UTIL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

#define JN_JSON_MAX_DEPTH 32
#define JN_SHOWN_MAX 64                 /* bytes of an input quoted in an error message */
#define JN_SHOWN_CAP (JN_SHOWN_MAX + 4) /* room for them, "..." and the NUL */

/* Where and why an input is wrong: path is the field ("credentials.client_id"), empty for
 * the document itself. */
typedef struct {
    char path[128];
    char message[256];
} jn_field_error_t;

/* Sets e (printf-style message) and returns JN_ERR_INVALID. */
jn_err_t jn_field_error(jn_field_error_t *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies s[0..n) into dst for an error message: control characters become '?', and text
 * beyond JN_SHOWN_MAX bytes becomes "...". Returns dst. */
const char *jn_shown(char dst[JN_SHOWN_CAP], const char *s, size_t n);

/* Prepends "prefix." to e->path, for errors found inside a nested object. */
void jn_field_error_nest(jn_field_error_t *e, const char *prefix);

/* Parses exactly len bytes as one JSON value; with want_object the value must be an
 * object. *out is a new reference (json_object_put it). */
jn_err_t jn_json_parse(const char *text, size_t len, bool want_object, json_object **out,
                       jn_field_error_t *e);

/* Fails on the first key of obj not in allowed (NULL-terminated); prefix names obj's own
 * path ("" at the top) for the error. */
jn_err_t jn_json_only_keys(json_object *obj, const char *const *allowed, const char *prefix,
                           jn_field_error_t *e);

/* Reads a string field. Absent or null: *out = NULL, and JN_ERR_INVALID when required.
 * Wrong type, a NUL character, more than max_len bytes, or (when required) empty: error. */
jn_err_t jn_json_string(json_object *obj, const char *key, bool required, size_t max_len,
                        const char **out, jn_field_error_t *e);

/* Reads a boolean field; absent or null leaves *out untouched and sets *present false. */
jn_err_t jn_json_bool(json_object *obj, const char *key, bool *out, bool *present,
                      jn_field_error_t *e);

/* Reads an object field whose values must all be strings (each at most max_len bytes, no
 * NUL). Absent or null: *out = NULL. *out is borrowed from obj. */
jn_err_t jn_json_string_map(json_object *obj, const char *key, size_t max_len, json_object **out,
                            jn_field_error_t *e);

/* The value at a dot-separated path in obj ("paging.next.after"): at each level the whole
 * remaining path is first tried as one key, then split at its first dot, so a key that
 * itself holds dots (Microsoft Graph's "@odata.nextLink") is reached. False when absent;
 * *out (borrowed from obj) is NULL for a JSON null. Segments longer than 256 bytes are
 * never found. */
bool jn_json_path_get(json_object *obj, const char *path, json_object **out);

/* True when text is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF). */
bool jn_utf8_valid(const char *text, size_t len);

/* Zeroes every string inside v (an object only the caller holds: no other reference may
 * read it afterwards), for values that held secrets. Does not put v. */
void jn_json_wipe_strings(json_object *v);

/* True when the string s of length len contains a NUL byte. */
bool jn_json_has_nul(const char *s, size_t len);

#endif
