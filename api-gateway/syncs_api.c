/*
 * syncs_api.c - /sync with Nango's paths and shapes (@nangohq/node's triggerSync,
 * startSync, pauseSync, syncStatus, updateSyncConnectionFrequency, createSyncVariant and
 * deleteSyncVariant work unchanged):
 *
 *   POST   /sync/trigger                      {syncs, provider_config_key, connection_id?,
 *                                              opts?: {reset?, emptyCache?}} or the
 *                                              deprecated sync_mode / full_resync
 *   POST   /sync/start, /sync/pause           {syncs, provider_config_key, connection_id?}
 *   GET    /sync/status?syncs=a,b::v|*&provider_config_key=&connection_id=
 *   PUT    /sync/update-connection-frequency  {sync_name, sync_variant?, provider_config_key,
 *                                              connection_id, frequency: string|null}
 *   POST   /sync/:name/variant/:variant       {provider_config_key, connection_id}
 *   DELETE /sync/:name/variant/:variant       {provider_config_key, connection_id}
 *
 * The integration and connection may also come in the Provider-Config-Key and
 * Connection-Id headers, as Nango allows. A sync is named "name", "name::variant" or
 * {name, variant}. The gateway only records what is asked; the scheduler starts the runs
 * (within its tick) and workers run them.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/frequency.h"
#include "store/syncs.h"

#define MAX_KEY 255
#define MAX_SYNCS 256

/* The syncs a call names, parsed into owned strings. */
typedef struct {
    char name[JN_SYNC_MAX_NAME + 1];
    char variant[JN_SYNC_MAX_NAME + 1];
} sync_name_t;

typedef struct {
    sync_name_t *items;
    jn_sync_ref_t *refs;
    size_t count;
} sync_list_t;

static void sync_list_cleanup(sync_list_t *l)
{
    free(l->items);
    free(l->refs);
    memset(l, 0, sizeof *l);
}

/* A variant name: letters, digits, '_', '-' and '.', 1 to 255 bytes. */
static bool variant_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > JN_SYNC_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > JN_SYNC_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    return true;
}

/* Adds "name" or "name::variant" (n bytes at s) to l; path names the item for errors. */
static jn_err_t add_name(sync_list_t *l, const char *s, size_t n, const char *variant,
                         const char *path, jn_field_error_t *e)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < n && !variant; i++) {
        if (s[i] == ':' && s[i + 1] == ':') {
            sep = s + i;
            break;
        }
    }
    size_t name_len = sep ? (size_t)(sep - s) : n;
    if (!name_ok(s, name_len))
        return jn_field_error(e, path, "must name a sync (1 to %d printable bytes)",
                              JN_SYNC_MAX_NAME);
    sync_name_t *it = &l->items[l->count];
    memcpy(it->name, s, name_len);
    it->name[name_len] = '\0';
    const char *v = variant ? variant : sep ? sep + 2 : "base";
    size_t v_len = sep && !variant ? n - name_len - 2 : strlen(v);
    if (v_len > JN_SYNC_MAX_NAME)
        return jn_field_error(e, path, "the variant is too long");
    memcpy(it->variant, v, v_len);
    it->variant[v_len] = '\0';
    if (!variant_ok(it->variant))
        return jn_field_error(e, path,
                              "the variant must be 1 to %d letters, digits, '_', '-' "
                              "or '.'",
                              JN_SYNC_MAX_NAME);
    l->refs[l->count] = (jn_sync_ref_t){it->name, it->variant};
    l->count++;
    return JN_OK;
}

static void sync_list_init(sync_list_t *l, size_t n)
{
    l->count = 0;
    l->items = calloc(n ? n : 1, sizeof *l->items);
    l->refs = calloc(n ? n : 1, sizeof *l->refs);
    if (!l->items || !l->refs)
        abort();
}

/* The body's "syncs": an array of "name", "name::variant" or {name, variant}. Absent or
 * empty: every sync (unless required). */
static jn_err_t read_syncs(json_object *body, bool required, sync_list_t *l, jn_field_error_t *e)
{
    json_object *arr = NULL;
    memset(l, 0, sizeof *l);
    if (!json_object_object_get_ex(body, "syncs", &arr) || !arr) {
        sync_list_init(l, 0);
        return required ? jn_field_error(e, "syncs", "is required") : JN_OK;
    }
    if (!json_object_is_type(arr, json_type_array))
        return jn_field_error(e, "syncs", "must be an array of sync names");
    size_t n = json_object_array_length(arr);
    if (n > MAX_SYNCS)
        return jn_field_error(e, "syncs", "at most %d syncs", MAX_SYNCS);
    sync_list_init(l, n);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        char path[32];
        snprintf(path, sizeof path, "syncs.%zu", i);
        jn_err_t err;
        if (json_object_is_type(v, json_type_string)) {
            err = add_name(l, json_object_get_string(v), (size_t)json_object_get_string_len(v),
                           NULL, path, e);
        } else if (json_object_is_type(v, json_type_object)) {
            static const char *const fields[] = {"name", "variant", NULL};
            const char *name = NULL, *variant = NULL;
            err = jn_json_only_keys(v, fields, path, e);
            if (!err)
                err = jn_json_string(v, "name", true, JN_SYNC_MAX_NAME, &name, e);
            if (!err)
                err = jn_json_string(v, "variant", false, JN_SYNC_MAX_NAME, &variant, e);
            if (err)
                jn_field_error_nest(e, path);
            else
                err = add_name(l, name, strlen(name), variant ? variant : "base", path, e);
        } else {
            err = jn_field_error(e, path, "must be a sync name or {name, variant}");
        }
        if (err)
            return err;
    }
    return JN_OK;
}

/* A key from the body, else from a header (Nango accepts both). */
static jn_err_t key_from(const jn_http_request_t *req, json_object *body, const char *field,
                         const char *header, bool required, const char **out, jn_field_error_t *e)
{
    jn_err_t err = jn_json_string(body, field, false, MAX_KEY, out, e);
    if (err)
        return err;
    if (!*out) {
        const char *h = jn_http_header(req, header);
        if (h && *h) {
            if (strlen(h) > MAX_KEY)
                return jn_field_error(e, field, "must be at most %d characters", MAX_KEY);
            *out = h;
        }
    }
    if (required && !*out)
        return jn_field_error(e, field, "is required (or the %s header)", header);
    return JN_OK;
}

/* Answers a store error: 404 naming what was not found, 409, 503, 500. */
static void answer_error(jn_http_response_t *res, jn_err_t err, const char *why)
{
    if (err == JN_ERR_NOT_FOUND)
        jn_http_respond_error(res, 404, "not_found", "%s was not found", why);
    else if (err == JN_ERR_CONFLICT)
        jn_http_respond_error(res, 409, "conflict", "%s already exists", why);
    else if (err == JN_ERR_TOO_LARGE)
        jn_http_respond_error(res, 400, "too_many_variants", "%s", why);
    else
        jn_api_store_error(res, err, "syncs");
}

typedef enum { CMD_TRIGGER, CMD_START, CMD_PAUSE } command_t;

/* Reads trigger's mode: opts {reset, emptyCache}, or the deprecated sync_mode or
 * full_resync, never two of them. */
static jn_err_t read_mode(json_object *body, jn_sync_mode_t *mode, jn_field_error_t *e)
{
    json_object *opts = NULL, *legacy = NULL, *resync = NULL;
    bool has_opts = json_object_object_get_ex(body, "opts", &opts) && opts;
    bool has_mode = json_object_object_get_ex(body, "sync_mode", &legacy) && legacy;
    bool has_resync = json_object_object_get_ex(body, "full_resync", &resync) && resync;
    *mode = JN_SYNC_RUN_INCREMENTAL;
    if (has_opts + has_mode + has_resync > 1)
        return jn_field_error(e, has_opts ? "opts" : "sync_mode",
                              "give one of opts, sync_mode and full_resync (the last two are "
                              "deprecated)");
    if (has_opts) {
        static const char *const fields[] = {"reset", "emptyCache", NULL};
        bool reset = false, empty = false, present;
        if (!json_object_is_type(opts, json_type_object))
            return jn_field_error(e, "opts", "must be an object");
        jn_err_t err = jn_json_only_keys(opts, fields, "opts", e);
        if (!err)
            err = jn_json_bool(opts, "reset", &reset, &present, e);
        if (!err)
            err = jn_json_bool(opts, "emptyCache", &empty, &present, e);
        if (err) {
            if (strncmp(e->path, "opts", 4) != 0)
                jn_field_error_nest(e, "opts");
            return err;
        }
        if (empty && !reset)
            return jn_field_error(e, "opts.emptyCache", "only together with opts.reset");
        *mode = empty ? JN_SYNC_RUN_FULL_EMPTY : reset ? JN_SYNC_RUN_FULL : JN_SYNC_RUN_INCREMENTAL;
    } else if (has_mode) {
        const char *m =
            json_object_is_type(legacy, json_type_string) ? json_object_get_string(legacy) : "";
        if (strcmp(m, "incremental") == 0)
            *mode = JN_SYNC_RUN_INCREMENTAL;
        else if (strcmp(m, "full_refresh") == 0)
            *mode = JN_SYNC_RUN_FULL;
        else if (strcmp(m, "full_refresh_and_clear_cache") == 0)
            *mode = JN_SYNC_RUN_FULL_EMPTY;
        else
            return jn_field_error(e, "sync_mode",
                                  "must be incremental, full_refresh or "
                                  "full_refresh_and_clear_cache");
    } else if (has_resync) {
        bool full = false, present;
        jn_err_t err = jn_json_bool(body, "full_resync", &full, &present, e);
        if (err)
            return err;
        *mode = full ? JN_SYNC_RUN_FULL : JN_SYNC_RUN_INCREMENTAL;
    }
    return JN_OK;
}

static void sync_command(const jn_http_request_t *req, jn_http_response_t *res, jn_gateway_t *gw,
                         command_t cmd)
{
    static const char *const trigger_fields[] = {
        "syncs", "provider_config_key", "connection_id", "opts", "sync_mode", "full_resync", NULL};
    static const char *const fields[] = {"syncs", "provider_config_key", "connection_id", NULL};
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *pck = NULL, *cid = NULL;
    sync_list_t list = {0};
    jn_sync_mode_t mode = JN_SYNC_RUN_INCREMENTAL;
    jn_err_t err = jn_json_only_keys(body, cmd == CMD_TRIGGER ? trigger_fields : fields, "", &e);
    if (!err)
        err = key_from(req, body, "provider_config_key", "Provider-Config-Key", true, &pck, &e);
    if (!err)
        err = key_from(req, body, "connection_id", "Connection-Id", false, &cid, &e);
    if (!err)
        err = read_syncs(body, cmd != CMD_TRIGGER, &list, &e);
    if (!err && cmd == CMD_TRIGGER)
        err = read_mode(body, &mode, &e);
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        sync_list_cleanup(&list);
        json_object_put(body);
        return;
    }
    jn_sync_selector_t sel = {env.id, pck, cid, list.refs, list.count};
    PGconn *conn = jn_api_db(gw, res);
    if (conn) {
        char why[512] = "";
        err = cmd == CMD_TRIGGER ? jn_syncs_trigger(conn, &sel, mode, NULL, why, sizeof why)
              : cmd == CMD_START ? jn_syncs_start(conn, &sel, NULL, why, sizeof why)
                                 : jn_syncs_pause(conn, &sel, NULL, why, sizeof why);
        jn_api_db_release(gw, conn);
        if (err)
            answer_error(res, err, why);
        else
            jn_api_success(res);
    }
    sync_list_cleanup(&list);
    json_object_put(body);
}

static void trigger_sync(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    sync_command(req, res, ud, CMD_TRIGGER);
}

static void start_sync(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    sync_command(req, res, ud, CMD_START);
}

static void pause_sync(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    sync_command(req, res, ud, CMD_PAUSE);
}

static void sync_status(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    jn_field_error_t e;
    const char *syncs = jn_http_query(req, "syncs");
    const char *pck = jn_http_query(req, "provider_config_key");
    const char *cid = jn_http_query(req, "connection_id");
    if (!pck || !*pck)
        pck = jn_http_header(req, "Provider-Config-Key");
    if (!cid || !*cid)
        cid = jn_http_header(req, "Connection-Id");
    if (cid && !*cid)
        cid = NULL;
    jn_err_t err = JN_OK;
    if (!syncs || !*syncs)
        err = jn_field_error(&e, "syncs", "is required: sync names separated by commas, or *");
    else if (strlen(syncs) > 64 * 1024)
        err = jn_field_error(&e, "syncs", "is too long");
    else if (!pck || !*pck || strlen(pck) > MAX_KEY)
        err = jn_field_error(&e, "provider_config_key", "is required");
    else if (cid && strlen(cid) > MAX_KEY)
        err = jn_field_error(&e, "connection_id", "must be at most %d characters", MAX_KEY);
    sync_list_t list = {0};
    if (!err && strcmp(syncs, "*") != 0) {
        size_t n = 1;
        for (const char *p = syncs; *p; p++)
            n += *p == ',';
        if (n > MAX_SYNCS)
            err = jn_field_error(&e, "syncs", "at most %d syncs", MAX_SYNCS);
        else
            sync_list_init(&list, n);
        for (const char *p = syncs; !err && *p;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char path[32];
            snprintf(path, sizeof path, "syncs.%zu", list.count);
            err = add_name(&list, p, len, NULL, path, &e);
            p += len + (comma ? 1 : 0);
        }
    } else if (!err) {
        sync_list_init(&list, 0);
    }
    if (err) {
        jn_api_invalid(res, "invalid_query_params", &e);
        sync_list_cleanup(&list);
        return;
    }
    jn_sync_selector_t sel = {env.id, pck, cid, list.refs, list.count};
    PGconn *conn = jn_api_db(gw, res);
    if (conn) {
        char why[512] = "";
        json_object *out = NULL;
        err = jn_syncs_status_json(conn, &sel, &out, why, sizeof why);
        jn_api_db_release(gw, conn);
        if (err)
            answer_error(res, err, why);
        else
            jn_http_respond_json(res, 200, out);
    }
    sync_list_cleanup(&list);
}

static void update_frequency(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    static const char *const fields[] = {"sync_name",     "sync_variant", "provider_config_key",
                                         "connection_id", "frequency",    NULL};
    jn_gateway_t *gw = ud;
    jn_environment_t env;
    if (!jn_api_begin(gw, req, res, &env))
        return;
    json_object *body = jn_api_body_object(req, res);
    if (!body)
        return;
    jn_field_error_t e;
    const char *name = NULL, *variant = NULL, *pck = NULL, *cid = NULL, *freq = NULL;
    json_object *freq_v = NULL;
    int64_t seconds = 0;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err)
        err = jn_json_string(body, "sync_name", true, JN_SYNC_MAX_NAME, &name, &e);
    if (!err)
        err = jn_json_string(body, "sync_variant", false, JN_SYNC_MAX_NAME, &variant, &e);
    if (!err && variant && !variant_ok(variant))
        err = jn_field_error(&e, "sync_variant", "must be letters, digits, '_', '-' or '.'");
    if (!err)
        err = key_from(req, body, "provider_config_key", "Provider-Config-Key", true, &pck, &e);
    if (!err)
        err = key_from(req, body, "connection_id", "Connection-Id", true, &cid, &e);
    if (!err && !json_object_object_get_ex(body, "frequency", &freq_v))
        err = jn_field_error(&e, "frequency",
                             "is required (a frequency, or null for the "
                             "sync's own)");
    if (!err && freq_v) {
        err = jn_json_string(body, "frequency", false, 64, &freq, &e);
        if (!err && (jn_frequency_parse(freq, &seconds, NULL, 0) != JN_OK ||
                     seconds < JN_SYNC_MIN_FREQUENCY_S || seconds > JN_SYNC_MAX_FREQUENCY_S))
            err = jn_field_error(&e, "frequency",
                                 "must be a frequency from 30 seconds to 31 days, e.g. "
                                 "\"every 5 minutes\" or \"1h\"");
    }
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (conn) {
        char why[512] = "";
        int effective = 0;
        err = jn_syncs_set_frequency(conn, env.id, pck, cid, name, variant, (int)seconds,
                                     &effective, why, sizeof why);
        jn_api_db_release(gw, conn);
        if (err) {
            answer_error(res, err, why);
        } else {
            char text[32];
            jn_syncs_frequency_text(effective, text, sizeof text);
            json_object *root = json_object_new_object();
            json_object_object_add(root, "frequency", json_object_new_string(freq ? freq : text));
            jn_http_respond_json(res, 200, root);
        }
    }
    json_object_put(body);
}

static void variant(const jn_http_request_t *req, jn_http_response_t *res, jn_gateway_t *gw,
                    bool create)
{
    static const char *const fields[] = {"provider_config_key", "connection_id", NULL};
    jn_environment_t env;
    const char *name, *var;
    if (!jn_api_begin(gw, req, res, &env) ||
        !jn_api_uri_param(req, res, "name", JN_SYNC_MAX_NAME, &name) ||
        !jn_api_uri_param(req, res, "variant", JN_SYNC_MAX_NAME, &var))
        return;
    jn_field_error_t e;
    if (!variant_ok(var) || strcmp(var, "base") == 0) {
        jn_field_error(&e, "variant",
                       "must be 1 to %d letters, digits, '_', '-' or '.', and not "
                       "\"base\"",
                       JN_SYNC_MAX_NAME);
        jn_api_invalid(res, "invalid_uri_params", &e);
        return;
    }
    json_object *body = req->body_len ? jn_api_body_object(req, res) : json_object_new_object();
    if (!body)
        return;
    const char *pck = NULL, *cid = NULL;
    jn_err_t err = jn_json_only_keys(body, fields, "", &e);
    if (!err)
        err = key_from(req, body, "provider_config_key", "Provider-Config-Key", true, &pck, &e);
    if (!err)
        err = key_from(req, body, "connection_id", "Connection-Id", true, &cid, &e);
    if (err) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (conn) {
        char why[512] = "", uuid[37] = "";
        err = create ? jn_syncs_variant_create(conn, env.id, pck, cid, name, var, uuid, why,
                                               sizeof why)
                     : jn_syncs_variant_delete(conn, env.id, pck, cid, name, var, why, sizeof why);
        jn_api_db_release(gw, conn);
        if (err) {
            answer_error(res, err, why);
        } else if (create) {
            json_object *root = json_object_new_object();
            json_object_object_add(root, "id", json_object_new_string(uuid));
            json_object_object_add(root, "name", json_object_new_string(name));
            json_object_object_add(root, "variant", json_object_new_string(var));
            jn_http_respond_json(res, 200, root);
        } else {
            jn_api_success(res);
        }
    }
    json_object_put(body);
}

static void create_variant(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    variant(req, res, ud, true);
}

static void delete_variant(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    variant(req, res, ud, false);
}

void jn_routes_syncs(jn_gateway_t *gw, jn_http_server_t *http)
{
    jn_http_route(http, "POST", "/sync/trigger", trigger_sync, gw);
    jn_http_route(http, "POST", "/sync/start", start_sync, gw);
    jn_http_route(http, "POST", "/sync/pause", pause_sync, gw);
    jn_http_route(http, "GET", "/sync/status", sync_status, gw);
    jn_http_route(http, "PUT", "/sync/update-connection-frequency", update_frequency, gw);
    jn_http_route(http, "POST", "/sync/:name/variant/:variant", create_variant, gw);
    jn_http_route(http, "DELETE", "/sync/:name/variant/:variant", delete_variant, gw);
}
