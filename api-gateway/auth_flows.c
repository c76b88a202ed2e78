/*
 * auth_flows.c - how an end user's browser creates a connection, authorised by a connect
 * session token (query parameter connect_session_token), as Nango's frontend SDK calls it:
 *
 *   GET  /oauth/connect/:providerConfigKey   302 to the provider, with state and PKCE
 *   GET  /oauth/callback                      code exchange; a small page tells the opener
 *   POST /api-auth/api-key/:providerConfigKey {apiKey}
 *   POST /api-auth/basic/:providerConfigKey   {username, password}
 *   POST /oauth2/auth/:providerConfigKey      {client_id, client_secret} (client credentials)
 *   POST /auth/unauthenticated/:providerConfigKey
 *
 * A state is random, stored hashed, bound to the session, valid 30 minutes and claimed
 * at most once (an UPDATE … WHERE used_at IS NULL), so a forged, stale or replayed
 * callback creates nothing.
 */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect_sessions.h"
#include "connection_requests.h"
#include "cors.h"
#include "store/connections.h"
#include "providers/custom_providers.h"
#include "store/integrations.h"
#include "core/log.h"
#include "providers/connection_config.h"
#include "providers/oauth.h"
#include "oauth_ws.h"

#define MAX_KEY 255
#define ATTEMPT_TTL_S 1800

/* Everything an auth route needs once the session is checked. */
typedef struct {
    PGconn *conn;
    jn_connect_session_t session;
    jn_environment_t env;
    jn_integration_t integration;
    json_object *provider;
    const char *pck;
    json_object *end_user; /* the session's end user with its organization, for the row */
} flow_t;

static void flow_cleanup(jn_gateway_t *gw, flow_t *f)
{
    json_object_put(f->provider);
    json_object_put(f->end_user);
    jn_integration_cleanup(&f->integration);
    jn_connect_session_cleanup(&f->session);
    if (f->conn)
        jn_api_db_release(gw, f->conn);
    memset(f, 0, sizeof *f);
}

/* Checks the session token, the origin of the page that calls (CORS), the integration
 * and that the session may use it. Until the session is known, an answer is readable from
 * any origin (it says only that the token is wrong); after, only from the environment's
 * origins, and a page of another origin is refused before anything changes. */
static bool flow_begin(jn_gateway_t *gw, const jn_http_request_t *req, jn_http_response_t *res,
                       bool with_secrets, flow_t *f)
{
    memset(f, 0, sizeof *f);
    const char *own = gw->engine->config.server_url;
    const char *token = jn_http_query(req, "connect_session_token");
    if (!token || !jn_connect_token_well_formed(token)) {
        jn_cors_answer(req, res, NULL, own);
        if (!jn_api_uri_param(req, res, "providerConfigKey", MAX_KEY, &f->pck))
            return false;
        if (!token || !*token)
            jn_http_respond_error(res, 401, "missing_connect_session_token",
                                  "the connect_session_token query parameter is required");
        else
            jn_http_respond_error(res, 401, "invalid_connect_session_token_format",
                                  "the connect session token is malformed");
        return false;
    }
    f->conn = jn_api_db(gw, res);
    if (!f->conn) {
        jn_cors_answer(req, res, NULL, own);
        return false;
    }
    jn_err_t err = jn_connect_sessions_find(f->conn, token, &f->session);
    if (err) {
        jn_cors_answer(req, res, NULL, own);
        if (err == JN_ERR_NOT_FOUND)
            jn_http_respond_error(res, 401, "unknown_connect_session_token",
                                  "the connect session is unknown or expired");
        else
            jn_api_store_error(res, err, "connect session");
        flow_cleanup(gw, f);
        return false;
    }
    if (!jn_cors_answer(req, res, f->session.cors_allowed_origins, own) ||
        !jn_api_uri_param(req, res, "providerConfigKey", MAX_KEY, &f->pck)) {
        flow_cleanup(gw, f);
        return false;
    }
    /* The environment as every process sees it, with its one egress policy. */
    if (jn_env_cache_get(gw->envs, f->session.env_id, &f->env) != JN_OK) {
        jn_http_respond_error(res, 503, "service_unavailable",
                              "the environment cannot be read right now; retry shortly");
        flow_cleanup(gw, f);
        return false;
    }
    if (!jn_connect_session_allows(&f->session, f->pck)) {
        jn_http_respond_error(res, 400, "integration_not_allowed",
                              "this connect session does not allow integration '%s'", f->pck);
        flow_cleanup(gw, f);
        return false;
    }
    err = jn_integrations_get(f->conn, &gw->keyring, f->env.id, f->pck, with_secrets,
                              &f->integration);
    if (err == JN_OK)
        err = jn_providers_lookup(gw->catalog, f->conn, f->env.id, f->integration.provider,
                                  &f->provider);
    if (err) {
        if (err == JN_ERR_NOT_FOUND)
            jn_http_respond_error(res, 404, "unknown_provider_config",
                                  "integration '%s' does not exist", f->pck);
        else
            jn_api_store_error(res, err, "integration");
        flow_cleanup(gw, f);
        return false;
    }
    /* No database connection is held while a provider is asked. */
    jn_api_db_release(gw, f->conn);
    f->conn = NULL;
    return true;
}

/* The environment's egress policy for token requests (parsed once per flow; the stored
 * list was validated when it was set, so a parse failure means "no allow-list"). */
static const jn_egress_policy_t *flow_egress(flow_t *f)
{
    return f->env.egress;
}

static const char *auth_mode(json_object *provider)
{
    json_object *v = NULL;
    return json_object_object_get_ex(provider, "auth_mode", &v) ? json_object_get_string(v) : "";
}

static bool require_mode(flow_t *f, jn_http_response_t *res, const char *mode)
{
    if (strcmp(auth_mode(f->provider), mode) == 0)
        return true;
    jn_http_respond_error(res, 400, "invalid_auth_mode",
                          "integration '%s' uses %s; this route is for %s", f->pck,
                          auth_mode(f->provider), mode);
    return false;
}

/* connection_config for a flow: the defaults the developer put into the connect session
 * for this integration (judged as the developer's), overridden by the end user's
 * params[k]=v (judged as the end user's), with every required field given. Answers 400
 * and returns NULL when not; otherwise a new object. */
static json_object *flow_connection_config(const jn_http_request_t *req, const flow_t *f,
                                           jn_http_response_t *res)
{
    json_object *config = json_object_new_object(), *typed = json_object_new_object();
    json_object *defaults = NULL, *cc = NULL;
    if (f->session.integrations_config_defaults &&
        json_object_object_get_ex(f->session.integrations_config_defaults, f->pck, &defaults) &&
        json_object_object_get_ex(defaults, "connection_config", &cc) &&
        json_object_is_type(cc, json_type_object)) {
        json_object_object_foreach(cc, k, v)
        {
            if (json_object_is_type(v, json_type_string))
                json_object_object_add(config, k,
                                       json_object_new_string(json_object_get_string(v)));
        }
    }
    if (req)
        jn_http_query_bracketed(req, "params", typed);
    jn_field_error_t e;
    jn_err_t err = jn_connection_config_check(f->provider, config, JN_CONNCFG_DEVELOPER, &e);
    if (err) {
        char message[sizeof e.message];
        snprintf(message, sizeof message, "the connect session's default: %.200s", e.message);
        snprintf(e.message, sizeof e.message, "%s", message);
    }
    if (!err)
        err = jn_connection_config_check(f->provider, typed, JN_CONNCFG_END_USER, &e);
    if (!err) {
        json_object_object_foreach(typed, k, v)
        {
            json_object_object_add(config, k, json_object_new_string(json_object_get_string(v)));
        }
        err = jn_connection_config_require(f->provider, config, &e);
    }
    json_object_put(typed);
    if (err) {
        jn_api_invalid(res, "invalid_query_params", &e);
        json_object_put(config);
        return NULL;
    }
    return config;
}

/* Merges the provider's token_response_metadata from a token answer into config, after
 * judging it as the provider's: a token endpoint does not choose where requests go either.
 * False, with why, when a value is refused. */
static bool merge_token_metadata(json_object *provider, json_object *answer, json_object *config,
                                 char *why, size_t why_len)
{
    json_object *meta = jn_connection_config_from_token(provider, answer);
    jn_field_error_t e;
    bool ok = jn_connection_config_check(provider, meta, JN_CONNCFG_PROVIDER, &e) == JN_OK;
    if (ok) {
        json_object_object_foreach(meta, k, v)
        {
            json_object_object_add(config, k, json_object_new_string(json_object_get_string(v)));
        }
    } else {
        snprintf(why, why_len, "the provider's token response was refused: %s: %s", e.path,
                 e.message);
    }
    json_object_put(meta);
    return ok;
}

/* The connection a flow writes: the reconnect target, or a new one. */
static void flow_request(flow_t *f, jn_connection_request_t *cr, json_object *config)
{
    cr->provider_config_key = f->pck;
    cr->connection_id = f->session.reconnect_connection_key;
    cr->connection_config = config;
    /* The session's organization belongs to its end user (Nango's end_user.organization,
     * what endUserOrganizationId filters on). */
    if (!f->end_user)
        f->end_user = jn_api_end_user_with_org(f->session.end_user, f->session.organization);
    cr->end_user = f->end_user;
    cr->tags = f->session.tags;
    cr->webhook_url_override = f->session.webhook_url_override;
}

static void respond_created(jn_http_response_t *res, const jn_connection_t *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "connectionId", json_object_new_string(c->connection_id));
    json_object_object_add(o, "providerConfigKey", json_object_new_string(c->provider_config_key));
    jn_http_respond_json(res, 200, o);
}

/* Shared by the API key, basic and unauthenticated routes. */
static void credentials_route(const jn_http_request_t *req, jn_http_response_t *res,
                              jn_gateway_t *gw, const char *mode)
{
    flow_t f;
    if (!flow_begin(gw, req, res, false, &f))
        return;
    if (!require_mode(&f, res, mode)) {
        flow_cleanup(gw, &f);
        return;
    }
    json_object *body = NULL;
    if (req->body_len > 0) {
        body = jn_api_body_object(req, res);
        if (!body) {
            flow_cleanup(gw, &f);
            return;
        }
    } else {
        body = json_object_new_object();
    }
    jn_connection_request_t cr = {0};
    jn_field_error_t e;
    json_object *config = NULL;
    if (jn_api_read_credentials(body, mode, &cr, &e)) {
        jn_field_error_nest(&e, "");
        /* The frontend sends the credentials at the top level: name the field as sent. */
        if (strncmp(e.path, ".credentials.", 13) == 0)
            memmove(e.path, e.path + 13, strlen(e.path + 13) + 1);
        jn_api_invalid(res, "invalid_body", &e);
    } else if ((config = flow_connection_config(req, &f, res)) != NULL) {
        flow_request(&f, &cr, config);
        jn_connection_t c;
        bool created;
        if (!jn_api_long_begin(gw, f.env.id)) {
            jn_api_long_busy(res);
        } else {
            /* The provider's verification request may take its time. */
            if (jn_api_save_connection(gw, &f.env, &cr, JN_CONNCFG_VALUES, true, res, &c,
                                       &created)) {
                respond_created(res, &c);
                jn_connection_cleanup(&c);
            }
            jn_api_long_end(gw, f.env.id);
        }
    }
    jn_api_connection_request_cleanup(&cr);
    json_object_put(body);
    flow_cleanup(gw, &f);
}

static void api_key_route(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    credentials_route(req, res, ud, "API_KEY");
}

static void basic_route(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    credentials_route(req, res, ud, "BASIC");
}

static void unauthenticated_route(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    credentials_route(req, res, ud, "NONE");
}

static void client_credentials_route(const jn_http_request_t *req, jn_http_response_t *res,
                                     void *ud)
{
    static const char *const fields[] = {"client_id", "client_secret", NULL};
    jn_gateway_t *gw = ud;
    flow_t f;
    if (!flow_begin(gw, req, res, false, &f))
        return;
    if (!require_mode(&f, res, "OAUTH2_CC")) {
        flow_cleanup(gw, &f);
        return;
    }
    json_object *body = jn_api_body_object(req, res);
    if (!body) {
        flow_cleanup(gw, &f);
        return;
    }
    jn_oauth_client_t client = {.egress = flow_egress(&f)};
    jn_field_error_t e;
    if (jn_json_only_keys(body, fields, "", &e) ||
        jn_json_string(body, "client_id", true, 1024, &client.client_id, &e) ||
        jn_json_string(body, "client_secret", true, 8192, &client.client_secret, &e)) {
        jn_api_invalid(res, "invalid_body", &e);
        json_object_put(body);
        flow_cleanup(gw, &f);
        return;
    }
    json_object *config = flow_connection_config(req, &f, res);
    jn_oauth_token_t token = {0};
    jn_oauth_error_t oerr;
    char why[512];
    bool slot = false;
    if (!config) {
        /* answered */
    } else if (!(slot = jn_api_long_begin(gw, f.env.id))) {
        jn_api_long_busy(res);
        json_object_put(config);
    } else if (jn_oauth_client_credentials(f.provider, &client, config, f.integration.scopes,
                                           &token, &oerr)) {
        jn_http_respond_error(res, 400, "connection_test_failed", "%s", oerr.message);
        json_object_put(config);
    } else if (!merge_token_metadata(f.provider, token.raw, config, why, sizeof why)) {
        jn_http_respond_error(res, 400, "connection_test_failed", "%s", why);
        json_object_put(config);
    } else {
        jn_connection_request_t cr = {0};
        flow_request(&f, &cr, config);
        cr.credentials_type = "OAUTH2_CC";
        cr.credentials = jn_oauth_credentials(&token, "OAUTH2_CC", &client);
        cr.expires_at = token.expires_at;
        jn_connection_t c;
        bool created;
        if (jn_api_save_connection(gw, &f.env, &cr, JN_CONNCFG_VALUES, true, res, &c, &created)) {
            respond_created(res, &c);
            jn_connection_cleanup(&c);
        }
        jn_api_connection_request_cleanup(&cr);
    }
    if (slot)
        jn_api_long_end(gw, f.env.id);
    jn_oauth_token_cleanup(&token);
    json_object_put(body);
    flow_cleanup(gw, &f);
}

/* ---- the authorization-code flow ---- */

static bool provider_bool(json_object *provider, const char *field)
{
    json_object *v = NULL;
    return json_object_object_get_ex(provider, field, &v) && json_object_get_boolean(v);
}

/* ---- the browser binding of an attempt ----
 * /oauth/connect sets a random nonce in a cookie of the browser that starts the flow and
 * stores only its SHA-256 with the attempt; /oauth/callback accepts the attempt only from a
 * browser that presents it. Without this, anyone could start a flow, authorize their own
 * provider account and send the callback link to a victim, whose session would then link
 * the attacker's account (login CSRF). The cookie is HttpOnly, SameSite=Lax (sent on the
 * provider's top-level redirect back, not on cross-site subrequests), scoped to the
 * callback's path, and named after the state so that flows started in parallel in one
 * browser do not overwrite each other. */

#define NONCE_COOKIE_PREFIX "jn_oauth_"

/* The cookie's name for an attempt: the prefix and 16 hex digits of the state's hash. */
static void nonce_cookie_name(const char *state_hash, char out[48])
{
    snprintf(out, 48, NONCE_COOKIE_PREFIX "%.16s", state_hash);
}

/* The path part of the callback URL ("/oauth/callback", or under JUNCTION_SERVER_URL's
 * own path), for the cookie's Path. */
static const char *callback_path(const char *redirect)
{
    const char *scheme_end = strstr(redirect, "://");
    const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    return path ? path : "/oauth/callback";
}

/* Adds the Set-Cookie that carries nonce (NULL: expires the cookie). */
static void set_nonce_cookie(jn_http_response_t *res, const char *redirect, const char *state_hash,
                             const char *nonce)
{
    char name[48], cookie[512];
    nonce_cookie_name(state_hash, name);
    bool secure = strncmp(redirect, "https://", 8) == 0;
    snprintf(cookie, sizeof cookie, "%s=%s; Path=%.300s; Max-Age=%d; HttpOnly; SameSite=Lax%s",
             name, nonce ? nonce : "", callback_path(redirect), nonce ? ATTEMPT_TTL_S : 0,
             secure ? "; Secure" : "");
    jn_http_add_header(res, "Set-Cookie", cookie);
}

/* The value of cookie name in a Cookie header (borrowed; len in *len), or NULL. */
static const char *find_cookie(const char *header, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t item = end ? (size_t)(end - p) : strlen(p);
        if (item > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            *len = item - n - 1;
            while (*len > 0 && p[n + *len] == ' ')
                (*len)--;
            return p + n + 1;
        }
        p = end;
    }
    return NULL;
}

/* True when the request carries the nonce whose hash the attempt stored; compared in
 * constant time. An attempt without a stored hash (from before the binding) never passes. */
static bool browser_matches(const jn_http_request_t *req, const char *state_hash,
                            const char *stored_hash)
{
    const char *header = jn_http_header(req, "Cookie");
    if (!header || !stored_hash || strlen(stored_hash) != 64)
        return false;
    char name[48];
    nonce_cookie_name(state_hash, name);
    size_t len = 0;
    const char *value = find_cookie(header, name, &len);
    if (!value || len == 0 || len > 128)
        return false;
    char copy[129], hash[65];
    memcpy(copy, value, len);
    copy[len] = '\0';
    jn_crypto_sha256_hex(copy, hash);
    jn_secure_wipe(copy, sizeof copy);
    return jn_crypto_equal(hash, stored_hash, 64);
}

static void oauth_connect(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    flow_t f;
    if (!flow_begin(gw, req, res, false, &f))
        return;
    if (!require_mode(&f, res, "OAUTH2")) {
        flow_cleanup(gw, &f);
        return;
    }
    if (!f.integration.client_id) {
        jn_http_respond_error(res, 400, "missing_client_credentials",
                              "integration '%s' has no OAuth client id; set its credentials first",
                              f.pck);
        flow_cleanup(gw, &f);
        return;
    }
    jn_field_error_t e;
    const char *ws_client_id = jn_http_query(req, "ws_client_id");
    if (ws_client_id && !jn_oauth_ws_client_id_valid(ws_client_id)) {
        jn_field_error(&e, "ws_client_id", "is not an id this gateway handed out");
        jn_api_invalid(res, "invalid_query_params", &e);
        flow_cleanup(gw, &f);
        return;
    }
    json_object *config = flow_connection_config(req, &f, res);
    if (!config) {
        flow_cleanup(gw, &f);
        return;
    }
    unsigned char random[32];
    jn_crypto_random(random, sizeof random);
    char state[65], state_hash[65], verifier[64], challenge[64], nonce[65], nonce_hash[65];
    jn_hex_encode(random, sizeof random, state);
    jn_crypto_sha256_hex(state, state_hash);
    jn_crypto_random(random, sizeof random);
    jn_hex_encode(random, sizeof random, nonce);
    jn_secure_wipe(random, sizeof random);
    jn_crypto_sha256_hex(nonce, nonce_hash);
    bool pkce = provider_bool(f.provider, "pkce");
    if (pkce)
        jn_oauth_pkce(verifier, challenge);
    char redirect[512];
    snprintf(redirect, sizeof redirect, "%s/oauth/callback", gw->engine->config.server_url);
    char *url = NULL, why[512];
    jn_err_t err =
        jn_oauth_authorize_url(f.provider, f.integration.client_id, f.integration.scopes, config,
                               redirect, state, pkce ? challenge : NULL, &url, why, sizeof why);
    if (err) {
        jn_http_respond_error(res, 400, "provider_config_err", "%s", why);
    } else {
        char *sealed = NULL;
        char aad[96];
        snprintf(aad, sizeof aad, "oauth:%s", state_hash);
        if (pkce)
            jn_crypto_seal(&gw->keyring, verifier, strlen(verifier), aad, strlen(aad), &sealed);
        char *cid = f.session.reconnect_connection_key ? NULL : jn_api_new_connection_id();
        char session[24], integration[24], ttl[16];
        snprintf(session, sizeof session, "%lld", f.session.id);
        snprintf(integration, sizeof integration, "%lld", f.integration.id);
        snprintf(ttl, sizeof ttl, "%d", ATTEMPT_TTL_S);
        const char *params[] = {state_hash,
                                session,
                                integration,
                                cid ? cid : f.session.reconnect_connection_key,
                                json_object_to_json_string_ext(config, JSON_C_TO_STRING_PLAIN),
                                sealed,
                                redirect,
                                ttl,
                                ws_client_id,
                                nonce_hash};
        PGconn *conn = jn_api_db(gw, res);
        err = conn ? jn_pg_exec(
                         conn,
                         "INSERT INTO oauth_attempts (state_hash, session_id, integration_id, "
                         "connection_id, connection_config, code_verifier_sealed, redirect_uri, "
                         "expires_at, ws_client_id, browser_nonce_hash) VALUES ($1, $2, $3, $4, "
                         "$5::jsonb, $6, $7, now() + make_interval(secs => $8), $9, $10)",
                         10, params, NULL)
                   : JN_ERR_DB_UNAVAILABLE;
        if (conn)
            jn_api_db_release(gw, conn);
        free(cid);
        free(sealed);
        if (err && conn) {
            jn_api_store_error(res, err, "authorization attempt");
        } else if (!err) {
            jn_http_respond_text(res, 302, "text/plain; charset=utf-8", "Redirecting\n");
            jn_http_add_header(res, "Location", url);
            jn_http_add_header(res, "Cache-Control", "no-store");
            set_nonce_cookie(res, redirect, state_hash, nonce);
        }
    }
    jn_secure_wipe(nonce, sizeof nonce);
    jn_secure_wipe(verifier, sizeof verifier);
    free(url);
    json_object_put(config);
    flow_cleanup(gw, &f);
}

static void html_escape(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = in; *p && n + 7 < cap; p++) {
        const char *rep = *p == '<'   ? "&lt;"
                          : *p == '>' ? "&gt;"
                          : *p == '&' ? "&amp;"
                          : *p == '"' ? "&quot;"
                                      : NULL;
        if (rep) {
            memcpy(out + n, rep, strlen(rep));
            n += strlen(rep);
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

/* The page the OAuth popup ends on: it tells the opener (postMessage and a
 * BroadcastChannel, as Nango's connect UI listens for) and closes itself on success.
 *
 * The message goes only to the gateway's own origin (its connect page) and to the origins
 * the environment lists (origins, may be NULL), never to '*': the opener may have been
 * navigated to any site meanwhile, and the message names the new connection. Nango's
 * frontend SDK (0.71) does not listen for it at all: auth() learns the result over its
 * WebSocket, so narrowing breaks nothing there. */
static void callback_page(jn_http_response_t *res, const jn_gateway_t *gw, const char *origins,
                          const char *error, const char *connection_id, const char *pck)
{
    json_object *targets = jn_cors_message_targets(origins, gw->engine->config.server_url);
    const char *targets_js = json_object_to_json_string_ext(targets, JSON_C_TO_STRING_PLAIN);
    json_object *err_obj = NULL;
    if (error) {
        err_obj = json_object_new_object();
        json_object_object_add(err_obj, "message", json_object_new_string(error));
        json_object_object_add(err_obj, "errorType", json_object_new_string("callback_err"));
    }
    json_object *data = json_object_new_object();
    if (connection_id) {
        json_object_object_add(data, "connectionId", json_object_new_string(connection_id));
        json_object_object_add(data, "providerConfigKey", json_object_new_string(pck));
    }
    /* json-c escapes "/" as "\/", so the JSON cannot close the script element. */
    const char *err_js =
        err_obj ? json_object_to_json_string_ext(err_obj, JSON_C_TO_STRING_PLAIN) : "null";
    const char *data_js = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN);
    char text[1200];
    html_escape(error ? error : "Connected. You can close this window.", text, sizeof text);
    size_t cap = 4096 + strlen(err_js) + strlen(data_js) + strlen(targets_js);
    char *page = malloc(cap);
    if (!page)
        abort();
    snprintf(page, cap,
             "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>%s</title></head>"
             "<body><p>%s</p><script>(function(){var e=%s,d=%s,t=%s;window.__nangoOAuthError=e;"
             "var m=e?{type:'nango_oauth_callback_error',payload:e}:"
             "{type:'nango_oauth_callback_success',data:d};"
             "t.forEach(function(o){try{if(window.opener)window.opener.postMessage(m,o)}"
             "catch(x){}});"
             "try{new BroadcastChannel('nango-oauth-callback').postMessage(m)}catch(x){}"
             "window.addEventListener('message',function(v){if(v.data&&v.data.type==="
             "'nango_oauth_callback_ack')window.close()});"
             "if(!e)setTimeout(function(){window.close()},500)})();</script></body></html>",
             error ? "Authorization failed" : "Authorization complete", text, err_js, data_js,
             targets_js);
    res->status = error ? 400 : 200;
    res->content_type = "text/html; charset=utf-8";
    free(res->body);
    res->body = page;
    res->body_len = strlen(page);
    jn_http_add_header(res, "Cache-Control", "no-store");
    json_object_put(err_obj);
    json_object_put(data);
    json_object_put(targets);
}

/* Tells the frontend SDK's WebSocket (if the flow was started with one) how it ended, in
 * Nango's message shapes. */
static void notify_frontend(jn_gateway_t *gw, const char *ws_client, const char *pck,
                            const char *connection_id, const char *error)
{
    if (!ws_client[0])
        return;
    jn_http_response_t scratch = {0};
    PGconn *conn = jn_api_db(gw, &scratch);
    jn_http_response_cleanup(&scratch);
    if (!conn) {
        jn_log_warn("oauth", "could not notify the frontend's WebSocket: no database");
        return;
    }
    json_object *m = json_object_new_object();
    json_object_object_add(m, "message_type", json_object_new_string(error ? "error" : "success"));
    if (pck)
        json_object_object_add(m, "provider_config_key", json_object_new_string(pck));
    json_object_object_add(m, "connection_id", json_object_new_string(connection_id));
    if (error) {
        json_object_object_add(m, "error_type", json_object_new_string("callback_err"));
        json_object_object_add(m, "error_desc", json_object_new_string(error));
    } else {
        json_object_object_add(m, "is_pending", json_object_new_boolean(0));
    }
    if (jn_oauth_ws_publish(conn, ws_client, m) != JN_OK)
        jn_log_warn("oauth", "could not notify the frontend's WebSocket");
    jn_api_db_release(gw, conn);
    json_object_put(m);
}

static void oauth_callback(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_gateway_t *gw = ud;
    const char *state = jn_http_query(req, "state");
    const char *code = jn_http_query(req, "code");
    if (!state || !*state || strlen(state) > 256) {
        callback_page(res, gw, NULL, "No state found in callback", NULL, NULL);
        return;
    }
    PGconn *conn = jn_api_db(gw, res);
    if (!conn)
        return;
    char state_hash[65];
    jn_crypto_sha256_hex(state, state_hash);
    const char *params[] = {state_hash};
    PGresult *r = NULL;
    /* Only the browser that started the attempt may finish it. A callback from another
     * one leaves the attempt untouched: the real browser may still come back with it. */
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT browser_nonce_hash FROM oauth_attempts "
                              "WHERE state_hash = $1 AND used_at IS NULL AND expires_at > now()",
                              1, params, &r);
    if (err || PQntuples(r) == 0) {
        PQclear(r);
        jn_api_db_release(gw, conn);
        if (err)
            callback_page(res, gw, NULL, "the authorization could not be checked; try again", NULL,
                          NULL);
        else
            callback_page(res, gw, NULL, "invalid, expired or already used state", NULL, NULL);
        return;
    }
    bool same_browser =
        browser_matches(req, state_hash, PQgetisnull(r, 0, 0) ? NULL : PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    if (!same_browser) {
        jn_api_db_release(gw, conn);
        jn_log_warn("oauth", "a callback came from a browser that did not start the attempt");
        callback_page(res, gw, NULL,
                      "this authorization was not started in this browser (or its cookie was "
                      "blocked); start the connection again from the application",
                      NULL, NULL);
        return;
    }
    /* Claim the attempt: only one callback can ever get this row back. */
    err = jn_pg_exec(conn,
                     "UPDATE oauth_attempts SET used_at = now() WHERE state_hash = $1 "
                     "AND used_at IS NULL AND expires_at > now() RETURNING session_id, "
                     "integration_id, connection_id, connection_config::text, "
                     "code_verifier_sealed, redirect_uri, ws_client_id",
                     1, params, &r);
    if (err || PQntuples(r) == 0) {
        PQclear(r);
        jn_api_db_release(gw, conn);
        if (err)
            callback_page(res, gw, NULL, "the authorization could not be checked; try again", NULL,
                          NULL);
        else
            callback_page(res, gw, NULL, "invalid, expired or already used state", NULL, NULL);
        return;
    }
    long long session_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    char integration_id[24], connection_id[256], redirect[512];
    snprintf(integration_id, sizeof integration_id, "%s", PQgetvalue(r, 0, 1));
    snprintf(connection_id, sizeof connection_id, "%s", PQgetvalue(r, 0, 2));
    json_object *config = json_tokener_parse(PQgetvalue(r, 0, 3));
    char *verifier = NULL;
    size_t verifier_len = 0;
    if (!PQgetisnull(r, 0, 4)) {
        char aad[96];
        snprintf(aad, sizeof aad, "oauth:%s", state_hash);
        jn_crypto_open(&gw->keyring, PQgetvalue(r, 0, 4), aad, strlen(aad), &verifier,
                       &verifier_len);
    }
    snprintf(redirect, sizeof redirect, "%s", PQgetvalue(r, 0, 5));
    char ws_client[48] = "";
    snprintf(ws_client, sizeof ws_client, "%s", PQgetvalue(r, 0, 6));
    PQclear(r);
    set_nonce_cookie(res, redirect, state_hash, NULL);

    flow_t f = {.conn = conn};
    char message[700] = "";
    err = jn_connect_sessions_find_by_id(conn, session_id, &f.session);
    if (err) {
        snprintf(message, sizeof message, "the connect session expired; start again");
    } else {
        const char *q[] = {integration_id};
        err = jn_pg_exec(conn, "SELECT unique_key FROM integrations WHERE id = $1", 1, q, &r);
        if (!err && PQntuples(r) == 1) {
            char pck[256];
            snprintf(pck, sizeof pck, "%s", PQgetvalue(r, 0, 0));
            err = jn_env_cache_get(gw->envs, f.session.env_id, &f.env);
            if (!err)
                err = jn_integrations_get(conn, &gw->keyring, f.env.id, pck, true, &f.integration);
            f.pck = f.integration.unique_key;
        } else if (!err) {
            err = JN_ERR_NOT_FOUND;
        }
        PQclear(r);
        if (!err)
            err = jn_providers_lookup(gw->catalog, conn, f.env.id, f.integration.provider,
                                      &f.provider);
        if (err)
            snprintf(message, sizeof message, "the integration no longer exists");
    }
    /* No database connection is held while the token endpoint is asked. */
    jn_api_db_release(gw, conn);
    f.conn = conn = NULL;
    const char *provider_error = jn_http_query(req, "error");
    if (!err && (provider_error || !code || !*code)) {
        const char *desc = jn_http_query(req, "error_description");
        snprintf(message, sizeof message,
                 "Did not get authorization code in the callback. Provider error: %.128s%s%.256s",
                 provider_error ? provider_error : "none", desc ? ": " : "", desc ? desc : "");
        err = JN_ERR_UPSTREAM;
    }
    jn_oauth_token_t token = {0};
    bool slot = false;
    if (!err && !(slot = jn_api_long_begin(gw, f.env.id))) {
        snprintf(message, sizeof message,
                 "too many connection attempts are in progress; start the connection again "
                 "in a moment");
        err = JN_ERR_BUSY;
    }
    if (!err) {
        jn_oauth_client_t client = {f.integration.client_id, f.integration.client_secret,
                                    flow_egress(&f)};
        jn_oauth_error_t oerr;
        err = jn_oauth_exchange_code(f.provider, &client, config, code, redirect, verifier, &token,
                                     &oerr);
        if (err)
            snprintf(message, sizeof message, "%s", oerr.message);
    }
    if (!err && !merge_token_metadata(f.provider, token.raw, config, message, sizeof message))
        err = JN_ERR_UPSTREAM;
    if (!err) {
        jn_connection_request_t cr = {0};
        flow_request(&f, &cr, config);
        config = NULL; /* cr owns it now */
        cr.connection_id = connection_id;
        cr.credentials_type = "OAUTH2";
        cr.credentials = jn_oauth_credentials(&token, "OAUTH2", NULL);
        cr.expires_at = token.expires_at;
        jn_connection_t c;
        bool created;
        jn_http_response_t scratch = {0};
        if (jn_api_save_connection(gw, &f.env, &cr, JN_CONNCFG_VALUES, true, &scratch, &c,
                                   &created)) {
            callback_page(res, gw, f.session.cors_allowed_origins, NULL, c.connection_id,
                          c.provider_config_key);
            notify_frontend(gw, ws_client, c.provider_config_key, c.connection_id, NULL);
            jn_log_info("oauth", "connection %lld %s through OAuth", c.id,
                        created ? "created" : "renewed");
            jn_connection_cleanup(&c);
        } else {
            snprintf(message, sizeof message, "the connection could not be saved (HTTP %d)",
                     scratch.status);
            err = JN_ERR_INVALID;
        }
        jn_http_response_cleanup(&scratch);
        jn_api_connection_request_cleanup(&cr);
    }
    if (slot)
        jn_api_long_end(gw, f.env.id);
    if (err) {
        callback_page(res, gw, f.session.cors_allowed_origins, message, NULL, NULL);
        notify_frontend(gw, ws_client, f.pck, connection_id, message);
    }
    jn_oauth_token_cleanup(&token);
    if (verifier) {
        jn_secure_wipe(verifier, verifier_len);
        free(verifier);
    }
    json_object_put(config);
    flow_cleanup(gw, &f);
}

/* A browser's preflight before a cross-origin call of an auth route: the token in the
 * query (the preflight carries the real request's URL) tells the environment and so its
 * origins; without a known session any origin may ask, as the answer to the real request
 * then says only that the token is wrong. */
static void flow_preflight(const jn_http_request_t *req, jn_http_response_t *res, void *ud,
                           const char *methods)
{
    jn_gateway_t *gw = ud;
    const char *token = jn_http_query(req, "connect_session_token");
    jn_connect_session_t s = {0};
    bool found = false;
    if (token && jn_connect_token_well_formed(token) && jn_http_header(req, "Origin")) {
        jn_http_response_t scratch = {0};
        PGconn *conn = jn_api_db(gw, &scratch);
        if (conn) {
            found = jn_connect_sessions_find(conn, token, &s) == JN_OK;
            jn_api_db_release(gw, conn);
        }
        jn_http_response_cleanup(&scratch);
    }
    jn_cors_preflight(req, res, found ? s.cors_allowed_origins : NULL,
                      gw->engine->config.server_url, methods);
    if (found)
        jn_connect_session_cleanup(&s);
}

static void preflight_post(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    flow_preflight(req, res, ud, "POST");
}

static void preflight_get(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    flow_preflight(req, res, ud, "GET");
}

/* The routes that wait on a provider run on the gateway's pool for such waits. */
static void offload_callback(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_api_offload(ud, req, res, oauth_callback, ud);
}

static void offload_api_key(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_api_offload(ud, req, res, api_key_route, ud);
}

static void offload_basic(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_api_offload(ud, req, res, basic_route, ud);
}

static void offload_unauthenticated(const jn_http_request_t *req, jn_http_response_t *res, void *ud)
{
    jn_api_offload(ud, req, res, unauthenticated_route, ud);
}

static void offload_client_credentials(const jn_http_request_t *req, jn_http_response_t *res,
                                       void *ud)
{
    jn_api_offload(ud, req, res, client_credentials_route, ud);
}

void jn_routes_auth_flows(jn_gateway_t *gw, jn_http_server_t *http)
{
    static const char *const posts[] = {
        "/api-auth/api-key/:providerConfigKey", "/api-auth/basic/:providerConfigKey",
        "/oauth2/auth/:providerConfigKey", "/auth/unauthenticated/:providerConfigKey"};
    for (size_t i = 0; i < sizeof posts / sizeof posts[0]; i++)
        jn_http_route(http, "OPTIONS", posts[i], preflight_post, gw);
    jn_http_route(http, "OPTIONS", "/oauth/connect/:providerConfigKey", preflight_get, gw);
    jn_http_route(http, "GET", "/oauth/connect/:providerConfigKey", oauth_connect, gw);
    jn_http_route(http, "GET", "/oauth/callback", offload_callback, gw);
    jn_http_route(http, "POST", "/api-auth/api-key/:providerConfigKey", offload_api_key, gw);
    jn_http_route(http, "POST", "/api-auth/basic/:providerConfigKey", offload_basic, gw);
    jn_http_route(http, "POST", "/oauth2/auth/:providerConfigKey", offload_client_credentials, gw);
    jn_http_route(http, "POST", "/auth/unauthenticated/:providerConfigKey", offload_unauthenticated,
                  gw);
}
