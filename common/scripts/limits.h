/*
 * limits.h - an environment's script limits: how far its scripts may go, per kind of run.
 *
 * An environment may lower (or, within hard ceilings, raise) the sandbox's defaults
 * (sandbox.h) for each kind of run. Its settings are a JSON object stored with the
 * environment, every field optional:
 *
 *   {"action":  {"memory_mb", "timeout_seconds", "instructions", "output_bytes"},
 *    "sync":    {"memory_mb", "timeout_seconds", "instructions"},
 *    "webhook": {"memory_mb", "timeout_seconds", "instructions"}}
 *
 *   memory_mb        8 .. 1024
 *   timeout_seconds  1 .. 3600 (action, webhook), 1 .. 86400 (sync)
 *   instructions     1e6 .. 1e13
 *   output_bytes     1024 .. 16 MiB (an action's output)
 *
 * A field left out keeps the default. The gateway checks settings before storing them;
 * readers (the worker, the gateway's wait for an action) trust what is stored but fall
 * back to the defaults for anything unreadable, so a bad row never stops a run.
 */
#ifndef JN_SCRIPT_LIMITS_H
#define JN_SCRIPT_LIMITS_H

#include <json-c/json.h>

#include "core/json_util.h"
#include "scripts/sandbox.h"

typedef enum { JN_LIMITS_ACTION, JN_LIMITS_SYNC, JN_LIMITS_WEBHOOK } jn_limits_kind_t;

/* Checks settings (the object above); JN_ERR_INVALID with e naming the field
 * ("action.timeout_seconds: must be an integer from 1 to 3600"). */
jn_err_t jn_script_limits_check(json_object *settings, jn_field_error_t *e);

/* The sandbox limits of a kind of run under settings_json (as stored; NULL or "" for
 * none). */
jn_sandbox_limits_t jn_script_limits_for(const char *settings_json, jn_limits_kind_t kind);

/* The limits in force for every kind, in the settings' shape with every field filled
 * (GET /junction/environment). New object. */
json_object *jn_script_limits_effective(const char *settings_json);

#endif
