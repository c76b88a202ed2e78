/*
 * catalog.h - the provider catalog: what Junction knows about each third-party API.
 *
 * Each provider is one JSON object described by docs/providers.md. The built-in
 * providers are compiled into the library (embedded.h); environment-defined custom
 * providers arrive over the HTTP API and go through the same validator, so its messages
 * are written for an API user: one line naming the provider, the field path and the
 * problem ("catalog: provider 'zendesk': proxy.retry.error_code[2]: ..."). Validation is
 * strict: unknown fields, wrong types and placeholders that cannot resolve are errors.
 *
 * A catalog is built by one thread and is read-only afterwards; it is then shared by any
 * number of threads without locks. Entries are json-c objects owned by the catalog, and
 * json-c is not thread-safe for writes hidden in reads, so from shared entries:
 * - read with json_object_object_get_ex(), json_object_array_get_idx() and
 *   json_object_get_string() on strings (the validator made sure they are strings);
 *   json_object_deep_copy() is fine too;
 * - never take or drop a reference (json_object_get/put): json-c's reference count is a
 *   plain, non-atomic integer, so two threads doing it corrupt it;
 * - never serialise with json_object_to_json_string() (it caches the text inside the
 *   object): use jn_catalog_json_at(), made once at load, or serialise a deep copy;
 * - never modify them.
 */
#ifndef JN_CATALOG_H
#define JN_CATALOG_H

#include <json-c/json.h>
#include <stddef.h>

#include "core/err.h"

#define JN_CATALOG_NAME_MAX 64          /* bytes of a provider name */
#define JN_CATALOG_DISPLAY_NAME_MAX 128 /* characters of a display name */
#define JN_CATALOG_MAX_TEMPLATES 32 /* entries of proxy.headers, proxy.query and each *_params */

typedef struct jn_catalog jn_catalog_t;

/* Parses and validates every embedded provider into a new catalog (free with
 * jn_catalog_free). Each file is parsed as strict JSON over exactly its bytes (trailing
 * text is an error) and its "name" must equal the file name without ".json". On the first
 * bad file returns JN_ERR_INVALID, *out = NULL, and one line in why. */
jn_err_t jn_catalog_load_builtin(jn_catalog_t **out, char *why, size_t why_len);

/* Returns an empty catalog, for tests and for assembling one. Aborts when out of memory. */
jn_catalog_t *jn_catalog_new(void);

/* Validates entry and adds it under its "name", taking a reference (json_object_get): the
 * caller keeps its own and must not modify the object afterwards. JN_ERR_INVALID when the
 * entry is invalid, JN_ERR_CONFLICT when the name is taken; why says which. */
jn_err_t jn_catalog_add(jn_catalog_t *cat, json_object *entry, char *why, size_t why_len);

/* Validates one provider entry against docs/providers.md. When expected_name is not NULL, "name"
 * must equal it (the file name, or the name in an API path). JN_ERR_INVALID with one line
 * in why on the first problem found. Thread-safe. why may be NULL. */
jn_err_t jn_catalog_validate(json_object *entry, const char *expected_name, char *why,
                             size_t why_len);

/* Returns the entry named name (borrowed), or NULL. O(log n). */
json_object *jn_catalog_get(const jn_catalog_t *cat, const char *name);

/* Number of entries. */
size_t jn_catalog_count(const jn_catalog_t *cat);

/* Returns entry i in ascending order of name (borrowed), or NULL when i >= count. */
json_object *jn_catalog_at(const jn_catalog_t *cat, size_t i);

/* Returns entry i as compact JSON text (borrowed), made when it was added; NULL past the end. */
const char *jn_catalog_json_at(const jn_catalog_t *cat, size_t i);

/* Frees the catalog and drops its references to the entries. NULL is fine. */
void jn_catalog_free(jn_catalog_t *cat);

#endif
