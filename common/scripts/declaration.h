/*
 * declaration.h - what a script declares about itself, checked.
 *
 * A script is one Lua file whose chunk returns a table (docs/scripts.md has the whole
 * contract):
 *   every script  type ("action" | "sync"), description, version ("0.0.1" by default),
 *                 scopes (list of strings), models (Name -> fields), metadata (the
 *                 connection metadata's model), endpoint ({method, path} or
 *                 "POST /notes"), exec (a function)
 *   an action     input, output (models)
 *   a sync        frequency (required, >= 30 s), sync_type ("incremental" | "full",
 *                 default incremental), track_deletes (full syncs only, default false),
 *                 auto_start (default true), models (at least one; each with an id of
 *                 type string or integer), on_webhook (a function), webhook_subscriptions
 *                 (event types routed to on_webhook), checkpoint (a flat model)
 * Unknown fields are errors, so a typo never passes silently.
 *
 * The declaration has a JSON form, stored beside the source and served by
 * GET /scripts/config; jn_declaration_from_json() reads it back through the same
 * checks. Errors: a syntax or run-time error of the chunk is "name:line: message"; a
 * declaration error is "name: field: message".
 */
#ifndef JN_DECLARATION_H
#define JN_DECLARATION_H

#include <json-c/json.h>
#include <lua.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"
#include "scripts/models.h"
#include "scripts/sandbox.h"

typedef enum { JN_SCRIPT_ACTION, JN_SCRIPT_SYNC } jn_script_kind_t;

typedef struct {
    char name[JN_SCRIPT_NAME_MAX];
    jn_script_kind_t kind;
    json_object *json; /* owned: the JSON form */
    /* The fields below point into json or into models. */
    const char *description;
    const char *version;
    int64_t frequency_seconds; /* syncs */
    bool full_sync, track_deletes, auto_start, has_on_webhook;
    jn_model_set_t *models; /* owned: the named models, and the types below */
    const jn_model_type_t *input, *output, *metadata, *checkpoint; /* NULL when absent */
} jn_declaration_t;

/* Loads source as script `name` in a new sandbox (limits NULL = the declaration
 * defaults), runs its chunk and checks what it returns. On failure err holds the
 * classified error (JN_SCRIPT_ERROR for syntax, run-time and declaration errors; a
 * limit otherwise) and *out is untouched. */
jn_script_status_t jn_declaration_load(const char *name, const char *source, size_t len,
                                       const jn_sandbox_limits_t *limits, jn_declaration_t *out,
                                       jn_script_error_t *err);

/* Checks the declaration table at idx of L (a sandboxed state). Reads fields raw, so no
 * metamethod runs; may raise a memory error, so call it protected. why gets
 * "name: field: message". */
jn_err_t jn_declaration_read(lua_State *L, int idx, const char *name, jn_declaration_t *out,
                             char *why, size_t why_len);

/* Reads and checks a stored JSON form; out keeps a reference of its own to json. */
jn_err_t jn_declaration_from_json(json_object *json, jn_declaration_t *out, char *why,
                                  size_t why_len);

/* Frees what out holds. */
void jn_declaration_cleanup(jn_declaration_t *d);

/* The name of the function a run calls: "exec" or "on_webhook". */
#define JN_DECLARATION_EXEC "exec"
#define JN_DECLARATION_ON_WEBHOOK "on_webhook"

#endif
