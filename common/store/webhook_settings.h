/*
 * webhook_settings.h - an environment's settings for webhooks to the customer's app
 * (migration 0030, docs/webhooks.md): where they go, which events send one, how many times a
 * delivery is attempted, and the key that signs them.
 *
 * The signing key is separate from the environment's secret key: 32 random bytes written
 * as 64 hex characters, the HMAC key as text (what Nango's SDKs take as webhookSigningKey).
 * It is stored sealed (core/crypto.h) under associated data naming the environment, made
 * the first time a delivery needs it, and replaced by a rotation, the only call that
 * returns it. Callers wipe what they receive (jn_secure_wipe) and never log it.
 */
#ifndef JN_WEBHOOK_SETTINGS_H
#define JN_WEBHOOK_SETTINGS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "core/crypto.h"
#include "core/err.h"

#define JN_WEBHOOK_URL_MAX 2048
#define JN_WEBHOOK_KEY_LEN 64 /* hex characters */
#define JN_WEBHOOK_ATTEMPTS_MAX 10

typedef struct {
    char primary_url[JN_WEBHOOK_URL_MAX + 1];   /* "" for none */
    char secondary_url[JN_WEBHOOK_URL_MAX + 1]; /* "" for none */
    bool on_auth_creation;
    bool on_auth_refresh_error;
    bool on_sync_completion_always;
    bool on_sync_error;
    bool on_async_action_completion;
    int delivery_attempts; /* 1..JN_WEBHOOK_ATTEMPTS_MAX, the first attempt included */
    bool has_signing_key;
    char signing_key_rotated_at[40]; /* ISO 8601 UTC, "" when never rotated */
} jn_webhook_settings_t;

/* A change: NULL strings and unset flags leave a setting as it is; "" clears a URL. The
 * values are checked by the caller (URLs: http(s), no credentials; attempts in range). */
typedef struct {
    const char *primary_url;
    const char *secondary_url;
    bool set_on_auth_creation, on_auth_creation;
    bool set_on_auth_refresh_error, on_auth_refresh_error;
    bool set_on_sync_completion_always, on_sync_completion_always;
    bool set_on_sync_error, on_sync_error;
    bool set_on_async_action_completion, on_async_action_completion;
    int delivery_attempts; /* 0: unchanged */
} jn_webhook_settings_patch_t;

/* The settings of environment env_id (the defaults when it never set any). */
jn_err_t jn_webhook_settings_get(PGconn *conn, long long env_id, jn_webhook_settings_t *out);

/* Applies p. */
jn_err_t jn_webhook_settings_patch(PGconn *conn, long long env_id,
                                   const jn_webhook_settings_patch_t *p);

/* The environment's signing key into key (NUL-terminated), made and stored first when it
 * has none (two processes making one at once agree on the stored one). JN_ERR_INVALID
 * when the stored key cannot be opened (another encryption key). */
jn_err_t jn_webhook_signing_key(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                char key[JN_WEBHOOK_KEY_LEN + 1]);

/* Replaces the environment's signing key with a new one, returned in key. Deliveries
 * signed from then on (retries and replays included) use the new key. */
jn_err_t jn_webhook_signing_key_rotate(PGconn *conn, const jn_crypto_keyring_t *ring,
                                       long long env_id, char key[JN_WEBHOOK_KEY_LEN + 1]);

#endif
