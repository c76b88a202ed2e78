/*
 * models.h - the model language of scripts, and validation of JSON values against it.
 *
 * A model describes a JSON value. Scripts write it in Lua; it is stored as JSON of the
 * same shape:
 *
 *   a type expression (a string)
 *       string  number  integer  boolean  date  object  any  null
 *       'literal'             a string constant ("'open'|'closed'")
 *       Name                  a model declared in the script's `models`
 *       T[]                   an array of T (T[][] nests)
 *       A|B                   A or B ("string|number"; [] binds tighter than |)
 *       ...?                  at the very end: the field may be absent or null
 *   a table of fields  { field = <model>, ... }
 *       an object with those fields; no others unless a field "*" gives the type of
 *       every other key ({ ["*"] = "string" } is a map of strings)
 *   a one-element list { <model> }
 *       an array of that model ({ { sku = "string" } } is an array of objects)
 *
 * Meanings: integer accepts 3 and 3.0 (stored as 3); number any JSON number; date an
 * ISO 8601 date "2024-01-31" or date-time "2024-01-31T10:00:00Z" (fraction and offset
 * allowed); object any JSON object; any any JSON value, null included. An empty object
 * {} is accepted where an array is expected and becomes [] (a Lua table has no way to
 * say which an empty table is).
 *
 * Errors name the place: "records[3].email: expected a string, got a number". Indexes
 * count from index_base: 1 for values that come from a script (Lua lists), 0 for JSON
 * sent by an API client.
 */
#ifndef JN_MODELS_H
#define JN_MODELS_H

#include <json-c/json.h>
#include <stdbool.h>

#include "core/err.h"
#include "core/json_util.h"

#define JN_MODEL_NAME_MAX 64

typedef struct jn_model_set jn_model_set_t;
typedef struct jn_model_type jn_model_type_t;

/* Builds the set of named models from models, an object Name -> model (may be NULL for
 * none). Names are [A-Za-z][A-Za-z0-9_]{0,63} and not a built-in type. References
 * between models are resolved (and may be recursive). JN_ERR_INVALID with e naming the
 * model and field ("models.Contact.email: unknown type 'strin'"). *out is new. */
jn_err_t jn_model_set_new(json_object *models, jn_model_set_t **out, jn_field_error_t *e);
void jn_model_set_free(jn_model_set_t *set);

/* Compiles a model (type expression, table of fields or one-element list) whose
 * references resolve in set. The type belongs to set. where names it for errors
 * ("input"). */
jn_err_t jn_model_compile(jn_model_set_t *set, json_object *spec, const char *where,
                          const jn_model_type_t **out, jn_field_error_t *e);

/* A named model as a type, or NULL. */
const jn_model_type_t *jn_model_get(const jn_model_set_t *set, const char *name);

/* The names of the set's models, in declaration order. */
size_t jn_model_count(const jn_model_set_t *set);
const char *jn_model_name(const jn_model_set_t *set, size_t i);

/* True when the type is optional (ends with ?). */
bool jn_model_optional(const jn_model_type_t *t);

/* True when values of t are JSON objects (a table of fields or a named model). */
bool jn_model_is_object(const jn_model_type_t *t);

/* The type of field `name` when t is an object model with that field declared, else NULL. */
const jn_model_type_t *jn_model_field(const jn_model_type_t *t, const char *name);

enum {
    JN_MODEL_PARTIAL = 1, /* the top object's required fields may be missing (updates) */
};

/* Checks *value (which may be NULL for JSON null) against t. *value may be replaced
 * (an empty {} becoming [], 3.0 becoming 3): the old reference is released and the
 * new one is the caller's. root names the value ("output"). */
jn_err_t jn_model_validate(const jn_model_type_t *t, json_object **value, const char *root,
                           int index_base, unsigned flags, jn_field_error_t *e);

/* A JSON Schema (draft 7) of t, with references as "#/definitions/Name". New object. */
json_object *jn_model_json_schema(const jn_model_type_t *t);

/* Nango's field list for an object type ([{name, value, optional?, array?, model?}]),
 * as GET /scripts/config returns it. New array; empty when t is not an object. */
json_object *jn_model_nango_fields(const jn_model_type_t *t);

/* True when text is an ISO 8601 date or date-time as the `date` type accepts. */
bool jn_model_is_date(const char *text, size_t len);

#endif
