/*
 * function_shapes.h - how Nango's clients see a function (a deployed script or a
 * template), built from its declaration (scripts/declaration.h).
 *
 * Nango names a function's models: an action's input and output, a sync's metadata (its
 * "input") and the models it returns. A script may declare an input or output as an
 * inline table of fields, which has no name: it is named after the function
 * ("create-note" -> CreateNoteInput, CreateNoteOutput), the same name everywhere Junction
 * shows it. Every shape carries json_schema {"$schema", "definitions"} with every model
 * it names.
 *
 * Every function returns a new object (the caller puts it); declarations are borrowed.
 */
#ifndef JN_GATEWAY_FUNCTION_SHAPES_H
#define JN_GATEWAY_FUNCTION_SHAPES_H

#include <json-c/json.h>

#include "scripts/declaration.h"
#include "store/functions.h"

/* Nango's NangoSyncFunction / NangoActionFunction (a template, and the base of a listed
 * function): {name, description, scopes?, type, input?, returns, json_schema} and, for a
 * sync, {runs, auto_start, track_deletes}. type is "sync" or "action". */
json_object *jn_shape_function(const char *name, const char *type, const jn_declaration_t *d);

/* Nango's ListedNangoFunction for a deployed function: jn_shape_function plus {id,
 * enabled, last_deployed, source}. d may be NULL when the stored declaration could not be
 * read: the shape then holds what the row alone tells. */
json_object *jn_shape_listed_function(const jn_function_t *f, const jn_declaration_t *d);

/* One function of GET /scripts/config: Nango's NangoSyncConfig. */
json_object *jn_shape_script_config(const jn_function_t *f, const jn_declaration_t *d);

/* One function of GET /scripts/config?format=openai: {name, description, parameters:
 * {type: "object", properties, required}} (an action's input; a sync takes none).
 * provider fills the default description. */
json_object *jn_shape_openai_function(const char *name, const char *provider,
                                      const jn_declaration_t *d);

#endif
