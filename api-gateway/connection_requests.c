/*
 * connection_requests.c - validation and storage of new connections (see the header).
 */
#include "connection_requests.h"

#include "providers/connection_save.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/iso8601.h"
#include "providers/custom_providers.h"
#include "providers/egress.h"
#include "core/log.h"
#include "net/job_message.h"
#include "providers/provider_http.h"
#include "store/integrations.h"

#define MAX_ID 255
#define MAX_TAGS 64
#define MAX_SECRET 8192
#define MAX_CREDENTIAL_KEY 64

static bool control_free(const char *s);

static json_object *deep_copy(json_object *o)
{
    json_object *c = NULL;
    if (o && json_object_deep_copy(o, &c, NULL) != 0)
        abort();
    return c;
}

char *jn_api_new_connection_id(void)
{
    char *id = malloc(37);
    if (!id)
        abort();
    jn_crypto_uuid4(id);
    return id;
}

static jn_err_t check_tags(json_object *tags, const char *path, jn_field_error_t *e)
{
    if (!json_object_is_type(tags, json_type_object))
        return jn_field_error(e, path, "must be an object of strings");
    if (json_object_object_length(tags) > MAX_TAGS)
        return jn_field_error(e, path, "at most %d tags", MAX_TAGS);
    json_object_object_foreach(tags, k, v)
    {
        char p[160];
        snprintf(p, sizeof p, "%s.%s", path, k);
        if (strlen(k) > 64)
            return jn_field_error(e, p, "tag names are at most 64 characters");
        if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) > 255)
            return jn_field_error(e, p, "must be a string of at most 255 characters");
    }
    return JN_OK;
}

jn_err_t jn_api_check_end_user(json_object *end_user, jn_field_error_t *e)
{
    static const char *const fields[] = {"id",   "email",        "display_name",
                                         "tags", "organization", NULL};
    if (!json_object_is_type(end_user, json_type_object))
        return jn_field_error(e, "end_user", "must be an object");
    jn_err_t err = jn_json_only_keys(end_user, fields, "end_user", e);
    const char *s;
    if (!err)
        err = jn_json_string(end_user, "id", true, MAX_ID, &s, e);
    if (!err)
        err = jn_json_string(end_user, "email", false, MAX_ID, &s, e);
    if (!err)
        err = jn_json_string(end_user, "display_name", false, MAX_ID, &s, e);
    if (err) {
        jn_field_error_nest(e, "end_user");
        return err;
    }
    json_object *v = NULL;
    if (json_object_object_get_ex(end_user, "tags", &v) && v &&
        (err = check_tags(v, "end_user.tags", e)))
        return err;
    if (json_object_object_get_ex(end_user, "organization", &v) && v) {
        static const char *const org_fields[] = {"id", "display_name", NULL};
        if (!json_object_is_type(v, json_type_object))
            return jn_field_error(e, "end_user.organization", "must be an object");
        if ((err = jn_json_only_keys(v, org_fields, "end_user.organization", e)) ||
            (err = jn_json_string(v, "id", true, MAX_ID, &s, e)) ||
            (err = jn_json_string(v, "display_name", false, MAX_ID, &s, e))) {
            if (strncmp(e->path, "end_user", 8) != 0)
                jn_field_error_nest(e, "end_user.organization");
            return err;
        }
    }
    return JN_OK;
}

jn_err_t jn_api_check_tags(json_object *body, jn_field_error_t *e)
{
    json_object *tags = NULL;
    if (json_object_object_get_ex(body, "tags", &tags) && tags)
        return check_tags(tags, "tags", e);
    return JN_OK;
}

static void put_string_tag(json_object *tags, const char *key, json_object *from, const char *field)
{
    json_object *v = NULL;
    if (from && json_object_object_get_ex(from, field, &v) &&
        json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0 &&
        json_object_object_length(tags) < MAX_TAGS)
        json_object_object_add(tags, key, json_object_new_string(json_object_get_string(v)));
}

json_object *jn_api_end_user_tags(json_object *end_user, json_object *organization,
                                  json_object *tags)
{
    json_object *out = json_object_new_object(), *v = NULL;
    if (end_user && !organization)
        json_object_object_get_ex(end_user, "organization", &organization);
    put_string_tag(out, "end_user_id", end_user, "id");
    put_string_tag(out, "end_user_email", end_user, "email");
    put_string_tag(out, "end_user_display_name", end_user, "display_name");
    put_string_tag(out, "organization_id", organization, "id");
    put_string_tag(out, "organization_display_name", organization, "display_name");
    if (end_user && json_object_object_get_ex(end_user, "tags", &v) &&
        json_object_is_type(v, json_type_object)) {
        json_object_object_foreach(v, key, value)
        {
            char lower[72];
            size_t n = 0;
            for (; key[n] && n < sizeof lower - 1; n++)
                lower[n] = (char)(key[n] >= 'A' && key[n] <= 'Z' ? key[n] + 32 : key[n]);
            lower[n] = '\0';
            if (json_object_object_length(out) < MAX_TAGS ||
                json_object_object_get_ex(out, lower, NULL))
                json_object_object_add(out, lower,
                                       json_object_new_string(json_object_get_string(value)));
        }
    }
    if (tags && json_object_is_type(tags, json_type_object)) {
        json_object_object_foreach(tags, key, value)
        {
            if (json_object_object_length(out) < MAX_TAGS ||
                json_object_object_get_ex(out, key, NULL))
                json_object_object_add(out, key,
                                       json_object_new_string(json_object_get_string(value)));
        }
    }
    if (json_object_object_length(out) == 0) {
        json_object_put(out);
        return NULL;
    }
    return out;
}

json_object *jn_api_end_user_with_org(json_object *end_user, json_object *organization)
{
    json_object *copy = deep_copy(end_user);
    if (copy && organization)
        json_object_object_add(copy, "organization", deep_copy(organization));
    return copy;
}

/* A copy of a string field, or JSON null. */
static json_object *string_or_null(json_object *o, const char *field)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, field, &v) && json_object_is_type(v, json_type_string)
               ? json_object_new_string(json_object_get_string(v))
               : NULL;
}

json_object *jn_api_end_user_output(json_object *end_user)
{
    if (!end_user || !json_object_is_type(end_user, json_type_object))
        return NULL;
    json_object *out = json_object_new_object(), *v = NULL;
    json_object_object_add(out, "id", string_or_null(end_user, "id"));
    json_object_object_add(out, "display_name", string_or_null(end_user, "display_name"));
    json_object_object_add(out, "email", string_or_null(end_user, "email"));
    json_object_object_add(out, "tags",
                           json_object_object_get_ex(end_user, "tags", &v) ? deep_copy(v) : NULL);
    json_object *org = NULL;
    if (json_object_object_get_ex(end_user, "organization", &v) &&
        json_object_is_type(v, json_type_object)) {
        org = json_object_new_object();
        json_object_object_add(org, "id", string_or_null(v, "id"));
        json_object_object_add(org, "display_name", string_or_null(v, "display_name"));
    }
    json_object_object_add(out, "organization", org);
    return out;
}

jn_err_t jn_api_check_webhook_url(const char *url, const char *field, jn_field_error_t *e)
{
    if (!url)
        return JN_OK;
    if (strlen(url) > 2048)
        return jn_field_error(e, field, "must be at most 2048 characters");
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    jn_err_t err = JN_OK;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        err = jn_field_error(e, field, "must be an http:// or https:// URL");
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
             curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
        err =
            jn_field_error(e, field, "may not carry a user or password (sign deliveries instead)");
    else if (!control_free(url) || strchr(url, ' '))
        err = jn_field_error(e, field, "may not contain spaces or control characters");
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return err;
}

/* An RFC 3339 date-time ("2026-11-28T18:00:00Z"; fractions and offsets allowed) or unix
 * seconds. */
static jn_err_t parse_expires_at(json_object *v, long long *out, jn_field_error_t *e)
{
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return JN_OK;
    }
    char why[96];
    if (!json_object_is_type(v, json_type_string))
        return jn_field_error(e, "credentials.expires_at",
                              "must be an ISO 8601 date-time or unix seconds");
    if (jn_iso8601_parse(json_object_get_string(v), out, why, sizeof why) != JN_OK)
        return jn_field_error(e, "credentials.expires_at",
                              "must be an ISO 8601 date-time such as 2026-11-28T18:00:00Z: %s",
                              why);
    return JN_OK;
}

static jn_err_t str(json_object *o, const char *key, bool required, size_t max, const char **out,
                    jn_field_error_t *e)
{
    jn_err_t err = jn_json_string(o, key, required, max, out, e);
    if (err)
        jn_field_error_nest(e, "credentials");
    return err;
}

jn_err_t jn_api_read_credentials(json_object *creds, const char *type, jn_connection_request_t *cr,
                                 jn_field_error_t *e)
{
    const char *a = NULL, *b = NULL, *c = NULL;
    jn_err_t err;
    json_object *stored = json_object_new_object();
    json_object_object_add(stored, "type", json_object_new_string(type));
    if (strcmp(type, "OAUTH2") == 0) {
        static const char *const f[] = {
            "type", "access_token", "refresh_token", "expires_at", "config_override", "raw", NULL};
        json_object *v = NULL;
        if (!(err = jn_json_only_keys(creds, f, "credentials", e)) &&
            !(err = str(creds, "access_token", true, MAX_SECRET, &a, e)) &&
            !(err = str(creds, "refresh_token", false, MAX_SECRET, &b, e)) &&
            json_object_object_get_ex(creds, "expires_at", &v) && v)
            err = parse_expires_at(v, &cr->expires_at, e);
        if (!err) {
            json_object_object_add(stored, "access_token", json_object_new_string(a));
            if (b)
                json_object_object_add(stored, "refresh_token", json_object_new_string(b));
            if (json_object_object_get_ex(creds, "expires_at", &v) && v)
                json_object_object_add(stored, "expires_at", deep_copy(v));
            json_object_object_add(stored, "raw", deep_copy(creds));
        }
    } else if (strcmp(type, "OAUTH2_CC") == 0) {
        static const char *const f[] = {"type",       "token", "client_id", "client_secret",
                                        "expires_at", "raw",   NULL};
        json_object *v = NULL;
        if (!(err = jn_json_only_keys(creds, f, "credentials", e)) &&
            !(err = str(creds, "token", false, MAX_SECRET, &a, e)) &&
            !(err = str(creds, "client_id", true, MAX_ID * 4, &b, e)) &&
            !(err = str(creds, "client_secret", true, MAX_SECRET, &c, e)) &&
            json_object_object_get_ex(creds, "expires_at", &v) && v)
            err = parse_expires_at(v, &cr->expires_at, e);
        if (!err) {
            if (a)
                json_object_object_add(stored, "token", json_object_new_string(a));
            json_object_object_add(stored, "client_id", json_object_new_string(b));
            json_object_object_add(stored, "client_secret", json_object_new_string(c));
            json_object_object_add(stored, "raw", json_object_new_object());
        }
    } else if (strcmp(type, "API_KEY") == 0) {
        /* apiKey and whatever else the provider declares (Datadog's applicationKey). */
        err = JN_OK;
        json_object_object_foreach(creds, key, value)
        {
            (void)value;
            if (strcmp(key, "type") == 0)
                continue;
            if (strlen(key) > MAX_CREDENTIAL_KEY) {
                err = jn_field_error(e, "credentials", "credential names are at most %d characters",
                                     MAX_CREDENTIAL_KEY);
                break;
            }
            if ((err = str(creds, key, false, MAX_SECRET, &a, e)))
                break;
            if (a)
                json_object_object_add(stored, key, json_object_new_string(a));
        }
    } else if (strcmp(type, "BASIC") == 0) {
        static const char *const f[] = {"type", "username", "password", NULL};
        if (!(err = jn_json_only_keys(creds, f, "credentials", e)) &&
            !(err = str(creds, "username", false, 1024, &a, e)) &&
            !(err = str(creds, "password", false, MAX_SECRET, &b, e))) {
            if (!a)
                err = jn_field_error(e, "credentials.username", "is required");
            else if (!b)
                err = jn_field_error(e, "credentials.password", "is required");
        }
        if (!err) {
            json_object_object_add(stored, "username", json_object_new_string(a));
            json_object_object_add(stored, "password", json_object_new_string(b));
        }
    } else if (strcmp(type, "NONE") == 0) {
        static const char *const f[] = {"type", NULL};
        err = jn_json_only_keys(creds, f, "credentials", e);
    } else {
        err = jn_field_error(e, "credentials.type",
                             "'%s' is not supported (OAUTH2, OAUTH2_CC, API_KEY, BASIC or NONE)",
                             type);
    }
    if (err) {
        json_object_put(stored);
        return err;
    }
    json_object_put(cr->credentials);
    cr->credentials = stored;
    /* Points into the stored object, which cr now owns. */
    cr->credentials_type = json_object_get_string(json_object_object_get(stored, "type"));
    return JN_OK;
}

static bool control_free(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

jn_err_t jn_api_read_connection_request(json_object *body, bool import, jn_connection_request_t *cr,
                                        jn_field_error_t *e)
{
    static const char *const fields[] = {"connection_id",
                                         "provider_config_key",
                                         "credentials",
                                         "metadata",
                                         "connection_config",
                                         "webhook_url_override",
                                         "end_user",
                                         "tags",
                                         NULL};
    memset(cr, 0, sizeof *cr);
    (void)import;
    jn_err_t err = jn_json_only_keys(body, fields, "", e);
    if (!err)
        err =
            jn_json_string(body, "provider_config_key", true, MAX_ID, &cr->provider_config_key, e);
    if (!err)
        err = jn_json_string(body, "connection_id", false, MAX_ID, &cr->connection_id, e);
    if (!err && cr->connection_id && (!*cr->connection_id || !control_free(cr->connection_id)))
        err = jn_field_error(e, "connection_id", "must be non-empty, without control characters");
    if (!err)
        err =
            jn_json_string(body, "webhook_url_override", false, 2048, &cr->webhook_url_override, e);
    if (!err)
        err = jn_api_check_webhook_url(cr->webhook_url_override, "webhook_url_override", e);
    json_object *v = NULL;
    if (!err && json_object_object_get_ex(body, "metadata", &v) && v) {
        if (!json_object_is_type(v, json_type_object))
            err = jn_field_error(e, "metadata", "must be an object");
        cr->metadata = v;
    }
    if (!err && json_object_object_get_ex(body, "connection_config", &v) && v) {
        json_object *ignored = NULL;
        err = jn_json_string_map(body, "connection_config", 2048, &ignored, e);
        cr->connection_config = deep_copy(v);
    }
    if (!err && json_object_object_get_ex(body, "end_user", &v) && v) {
        err = jn_api_check_end_user(v, e);
        cr->end_user = v;
    }
    if (!err) {
        err = jn_api_check_tags(body, e);
        json_object_object_get_ex(body, "tags", &cr->tags);
    }
    if (err)
        return err;
    json_object *creds = NULL;
    if (!json_object_object_get_ex(body, "credentials", &creds) ||
        !json_object_is_type(creds, json_type_object))
        return jn_field_error(e, "credentials", "is required and must be an object");
    const char *type = NULL;
    if ((err = jn_json_string(creds, "type", true, 32, &type, e))) {
        jn_field_error_nest(e, "credentials");
        return err;
    }
    return jn_api_read_credentials(creds, type, cr, e);
}

void jn_api_connection_request_cleanup(jn_connection_request_t *cr)
{
    json_object_put(cr->credentials);
    json_object_put(cr->connection_config);
    free(cr->generated_id);
    memset(cr, 0, sizeof *cr);
}

bool jn_api_save_connection(jn_gateway_t *gw, const jn_environment_t *env,
                            jn_connection_request_t *cr, jn_conncfg_source_t source, bool verify,
                            jn_http_response_t *res, jn_connection_t *out, bool *created)
{
    jn_connection_save_t in = {
        .provider_config_key = cr->provider_config_key,
        .connection_id = cr->connection_id,
        .credentials_type = cr->credentials_type,
        .credentials = cr->credentials,
        .expires_at = cr->expires_at,
        .connection_config = cr->connection_config,
        .metadata = cr->metadata,
        .end_user = cr->end_user,
        .tags = cr->tags,
        .webhook_url_override = cr->webhook_url_override,
    };
    jn_connection_save_error_t e;
    jn_webhook_jobs_t webhooks;
    jn_err_t err = jn_connection_save(&gw->engine->sessions, env, &in, source, verify, out, created,
                                      &webhooks, &e);
    switch (err) {
    case JN_OK:
        /* The auth webhook's deliveries committed with the connection. */
        jn_job_message_send_all(gw->engine->producer, gw->engine->config.topic_prefix,
                                webhooks.jobs, webhooks.count);
        return true;
    case JN_ERR_INVALID: jn_api_invalid(res, "invalid_body", &e.field); return false;
    case JN_ERR_NOT_FOUND: jn_http_respond_error(res, 404, "not_found", "%s", e.why); return false;
    case JN_ERR_UPSTREAM:
        jn_http_respond_error(res, 400, "connection_test_failed", "%s", e.why);
        return false;
    default: jn_api_store_error(res, err, "connection"); return false;
    }
}
