/*
 * luajson.h - JSON for scripts: Lua values <-> json-c, and the `json` library.
 *
 * One set of rules for everything that crosses between a script and JSON (json.encode
 * and json.decode, HTTP bodies, records, metadata, checkpoints, action input and
 * output), documented in docs/scripts.md:
 *
 *   Lua -> JSON
 *     nil, json.null       null
 *     boolean              true / false
 *     integer              a JSON integer
 *     float                a number (shortest text that reads back the same; an
 *                          integral float keeps a ".0"); NaN and infinities are errors
 *     string               a string; it must be valid UTF-8 without NUL characters
 *     table                an array when its keys are exactly 1..n (n >= 1) or when it
 *                          is marked by json.array() (also every array json.decode
 *                          made); an object when every key is a string; the empty
 *                          table is an object {} unless marked; anything else (mixed
 *                          keys, holes, float or boolean keys) is an error
 *     others               (functions, userdata, threads) are errors
 *   Object keys come out sorted by bytes, so equal tables give equal text.
 *
 *   JSON -> Lua
 *     null                 json.null inside arrays (positions are kept); an object
 *                          member whose value is null is left out (so `if t.x then`
 *                          works); null as the whole value gives json.null
 *     numbers              integers that fit in 64 bits become Lua integers, others floats
 *     arrays               tables marked as arrays (json.array), so [] stays []
 *     objects              plain tables
 *
 * Caps: nesting depth (32, as for every JSON the project parses) and the encoded size.
 * Conversions name the offending place: "items[3].email: ...".
 */
#ifndef JN_LUAJSON_H
#define JN_LUAJSON_H

#include <json-c/json.h>
#include <lua.h>
#include <stddef.h>

#include "core/err.h"
#include "core/json_util.h"
#include "scripts/sandbox.h"

typedef struct {
    size_t max_bytes; /* of the encoded text (estimated while converting) */
    int max_depth;    /* levels of arrays and objects */
} jn_luajson_caps_t;

/* 16 MB and 32 levels. */
jn_luajson_caps_t jn_luajson_caps_default(void);

/* Pushes the json library table: encode(v), decode(s), null, array(t), object(t),
 * is_array(t). */
void jn_luajson_open(lua_State *L);

/* Converts the value at idx to *out (a new reference; NULL for nil/json.null is
 * represented as a NULL json_object). Never raises: reads only. JN_ERR_INVALID (why
 * names the place) for a value that has no JSON form, JN_ERR_TOO_LARGE past a cap. */
jn_err_t jn_luajson_to_json(lua_State *L, int idx, const jn_luajson_caps_t *caps, json_object **out,
                            char *why, size_t why_len);

/* Pushes v (NULL pushes json.null) as a Lua value per the rules above. Allocates Lua
 * memory, so it may raise a memory error: call it where a raise is caught. */
void jn_luajson_push(lua_State *L, json_object *v);

/* Pushes v like jn_luajson_push, except that NULL and JSON null push nil. */
void jn_luajson_push_value(lua_State *L, json_object *v);

/* Parses text (jn_json_parse) with the tree's C memory counted against the script's
 * memory cap (jn_sandbox_reserve), so that a few MB of text cannot make a worker hold
 * hundreds of MB outside the cap: raises "not enough memory" when the tree would not
 * fit. Pushes the reservation's box and returns the tree (a new reference) with *held
 * set; release *held once the tree is freed (or leave both to the collector). When the
 * text is not JSON, returns NULL with e set and pushes nothing. */
json_object *jn_luajson_parse(lua_State *L, const char *text, size_t len, jn_sandbox_box_t **held,
                              jn_field_error_t *e);

/* True when the value at idx is json.null. */
int jn_luajson_is_null(lua_State *L, int idx);

/* True when the value at idx is the metatable that marks arrays. */
int jn_luajson_is_array_mt(lua_State *L, int idx);

/* Marks the table at idx as an array (for json.encode) when it has no metatable. */
void jn_luajson_mark_array(lua_State *L, int idx);

#endif
