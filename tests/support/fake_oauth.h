/*
 * fake_oauth.h - what OAuth integration tests share: the fake provider as a process
 * (started, steered through /_admin, its counters read), a gateway set up to use it, and
 * the OAuth dance a browser would do (connect session, /oauth/connect, the provider's
 * approval, /oauth/callback).
 *
 * The gateway's dev environment gets two custom providers pointing at the fake: fake-oauth
 * (authorization code with PKCE) behind integration "fake" with the fake's registered
 * client, and fake-cc (client credentials) behind integration "fake-cc". Both copy
 * instance_url and team.id from token answers into connection_config
 * (token_response_metadata).
 */
#ifndef JN_TEST_FAKE_OAUTH_H
#define JN_TEST_FAKE_OAUTH_H

#include <stddef.h>

#include "harness.h"

struct json_object;

typedef struct {
    jn_test_process_t proc;
    char url[64]; /* http://127.0.0.1:<port> */
} jn_test_fake_t;

/* Starts fake_provider on a free port and waits until it listens. */
void jn_test_fake_start(jn_test_fake_t *f, const char *fake_bin, const char *log_name);
void jn_test_fake_stop(jn_test_fake_t *f);

/* method path on the fake with a JSON body (may be NULL); *resp (if non-NULL) is the
 * parsed answer or NULL. Returns the status. */
long jn_test_fake_call(const jn_test_fake_t *f, const char *method, const char *path,
                       const char *body, struct json_object **resp);

/* Sets knobs (a JSON object for POST /_admin/config); fails the test unless accepted. */
void jn_test_fake_config(const jn_test_fake_t *f, const char *knobs);

/* Token requests the fake has counted for grant ("refresh_token", …). */
long jn_test_fake_token_requests(const jn_test_fake_t *f, const char *grant);

/* Registers the two providers and integrations described above in gw's dev environment.
 * Token requests to the fake (on loopback) are refused until jn_test_fake_allow. */
void jn_test_fake_setup_gateway(const jn_test_gateway_t *gw, const jn_test_fake_t *f);

/* Lets gw's dev environment reach loopback (the fake) through its egress allow-list. */
void jn_test_fake_allow(const jn_test_gateway_t *gw);
/* The same for the environment of secret key key. */
void jn_test_allow_loopback(const jn_test_gateway_t *gw, const char *key);

/* In the environment of secret key key: a custom API_KEY provider named provider whose
 * proxy sends the key as x-api-key to the fake's base URL, an integration unique_key of it
 * and a connection connection_id holding api_key; the fake learns the key too. */
void jn_test_fake_api_key_connection(const jn_test_gateway_t *gw, const char *key,
                                     const jn_test_fake_t *f, const char *provider,
                                     const char *unique_key, const char *connection_id,
                                     const char *api_key);

/* A new connect session of gw's dev environment for end user "oauth-user"; its token. */
void jn_test_connect_session(const jn_test_gateway_t *gw, char *token, size_t cap);

/* The test's browser: the last cookie the gateway set ("name=value"), sent back on every
 * request to the gateway, and that Set-Cookie line whole. Tests may change the cookie to
 * play another browser. jn_test_fake_setup_gateway() starts a fresh browser for its
 * gateway; jn_test_browser_for() for another. */
extern char jn_test_browser_cookie[256];
extern char jn_test_browser_set_cookie[512];
void jn_test_browser_for(const char *gateway_url);

/* text with each "/" escaped as JSON's encoder writes it ("\/"), into out. */
void jn_test_slash_escaped(const char *text, char *out, size_t cap);

/* GET without following redirects, as the test's browser: the status, the Location
 * header, and (if body is non-NULL) the body as a new string. */
long jn_test_get_no_follow(const char *url, char *location, size_t cap, char **body);

/* The whole OAuth dance for integration "fake" through gw and the fake; ws_client_id may
 * be NULL. Returns the new connection's id and the callback URL that created it. */
void jn_test_oauth_dance(const jn_test_gateway_t *gw, const jn_test_fake_t *f,
                         const char *ws_client_id, char *connection_id, size_t cap,
                         char *callback_url, size_t cb_cap);

#endif
