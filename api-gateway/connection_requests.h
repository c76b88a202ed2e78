/*
 * connection_requests.h - turning a request for a connection (an import through
 * POST /connections, or an end user's API key / basic / client-credentials / OAuth
 * result) into a stored connection, with the same checks everywhere:
 * the credentials have the shape of their type, the type is the integration's auth mode,
 * an API key connection holds the credentials its provider declares, and connection_config
 * passes common/providers/connection_config for where it came from (the HTTP mapping of
 * that module's answers lives here).
 */
#ifndef JN_GATEWAY_CONNECTION_REQUESTS_H
#define JN_GATEWAY_CONNECTION_REQUESTS_H

#include "api.h"
#include "providers/connection_config.h"
#include "store/connections.h"

typedef struct {
    const char *provider_config_key;
    const char *connection_id; /* NULL: a new uuid is generated */
    const char *credentials_type;
    json_object *credentials; /* owned: the credentials to store */
    long long expires_at;
    json_object *metadata;          /* borrowed */
    json_object *connection_config; /* owned */
    json_object *end_user;          /* borrowed */
    json_object *tags;              /* borrowed */
    const char *webhook_url_override;
    char *generated_id;
} jn_connection_request_t;

/* Reads an import body (Nango's POST /connections). Borrowed pointers point into body. */
jn_err_t jn_api_read_connection_request(json_object *body, bool import, jn_connection_request_t *cr,
                                        jn_field_error_t *e);

/* Reads credentials of one type (the object sent by the frontend SDK for API key, basic,
 * client credentials) into cr->credentials. type is the auth mode. API_KEY credentials
 * may carry more strings than apiKey; which ones the provider takes is checked on saving. */
jn_err_t jn_api_read_credentials(json_object *creds, const char *type, jn_connection_request_t *cr,
                                 jn_field_error_t *e);

void jn_api_connection_request_cleanup(jn_connection_request_t *cr);

/* Saves through jn_connection_save (common/providers/connection_save.h): connection_config
 * judged as coming from source (JN_CONNCFG_DEVELOPER for an import; a connect flow, which
 * judged the end user's part itself, passes JN_CONNCFG_VALUES), credentials verified with
 * the provider when verify (the connect flows; an import stores what it is given). On
 * failure answers res itself (404, 400, 503) and returns false. Holds no database
 * connection of the caller's. */
bool jn_api_save_connection(jn_gateway_t *gw, const jn_environment_t *env,
                            jn_connection_request_t *cr, jn_conncfg_source_t source, bool verify,
                            jn_http_response_t *res, jn_connection_t *out, bool *created);

/* A new connection id: a version-4 UUID (new string; caller frees). */
char *jn_api_new_connection_id(void);
/* Checks an end_user object ({id, email?, display_name?, tags?, organization?}). */
jn_err_t jn_api_check_end_user(json_object *end_user, jn_field_error_t *e);
/* Checks body's optional "tags": an object of at most 64 short strings. */
jn_err_t jn_api_check_tags(json_object *body, jn_field_error_t *e);

/* The tags a connection gets, as Nango builds them: end_user_id, end_user_email,
 * end_user_display_name, organization_id and organization_display_name from end_user and
 * organization (each may be NULL; an organization inside end_user counts too), then the
 * end user's own tags (keys lowercased), then tags (may be NULL), each overriding the one
 * before; at most 64. A new object, or NULL when there is none of them. Inputs are
 * validated already (jn_api_check_end_user, jn_api_check_tags). */
json_object *jn_api_end_user_tags(json_object *end_user, json_object *organization,
                                  json_object *tags);

/* The end user as stored on a connection: a copy of end_user with the organization (when
 * given) set. NULL when end_user is. */
json_object *jn_api_end_user_with_org(json_object *end_user, json_object *organization);

/* Nango's ApiEndUser shape of a stored end user: {id, display_name, email, tags,
 * organization: {id, display_name} | null}, every key present (null when unknown). NULL
 * when end_user is. */
json_object *jn_api_end_user_output(json_object *end_user);

/* Checks webhook_url_override: an http(s) URL with a host, without user or password, of
 * at most 2048 characters. field names it in e. */
jn_err_t jn_api_check_webhook_url(const char *url, const char *field, jn_field_error_t *e);

#endif
