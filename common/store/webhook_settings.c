/*
 * webhook_settings.c - reading and writing environment_webhooks, and the sealed signing key.
 */
#include "store/webhook_settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg.h"

static const char *flag(bool set, bool value)
{
    return set ? (value ? "t" : "f") : NULL;
}

jn_err_t jn_webhook_settings_get(PGconn *conn, long long env_id, jn_webhook_settings_t *out)
{
    memset(out, 0, sizeof *out);
    out->on_auth_creation = true;
    out->on_auth_refresh_error = true;
    out->on_sync_error = true;
    out->delivery_attempts = 3;
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "SELECT primary_url, secondary_url, on_auth_creation, on_auth_refresh_error, "
                   "on_sync_completion_always, on_sync_error, on_async_action_completion, "
                   "delivery_attempts, signing_key_sealed IS NOT NULL, "
                   "coalesce(to_char(signing_key_rotated_at AT TIME ZONE 'UTC', "
                   "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '') "
                   "FROM environment_webhooks WHERE environment_id = $1",
                   1, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 1) {
        snprintf(out->primary_url, sizeof out->primary_url, "%s", PQgetvalue(r, 0, 0));
        snprintf(out->secondary_url, sizeof out->secondary_url, "%s", PQgetvalue(r, 0, 1));
        out->on_auth_creation = PQgetvalue(r, 0, 2)[0] == 't';
        out->on_auth_refresh_error = PQgetvalue(r, 0, 3)[0] == 't';
        out->on_sync_completion_always = PQgetvalue(r, 0, 4)[0] == 't';
        out->on_sync_error = PQgetvalue(r, 0, 5)[0] == 't';
        out->on_async_action_completion = PQgetvalue(r, 0, 6)[0] == 't';
        out->delivery_attempts = (int)strtol(PQgetvalue(r, 0, 7), NULL, 10);
        out->has_signing_key = PQgetvalue(r, 0, 8)[0] == 't';
        snprintf(out->signing_key_rotated_at, sizeof out->signing_key_rotated_at, "%s",
                 PQgetvalue(r, 0, 9));
    }
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_webhook_settings_patch(PGconn *conn, long long env_id,
                                   const jn_webhook_settings_patch_t *p)
{
    char env[24], attempts[16];
    snprintf(env, sizeof env, "%lld", env_id);
    snprintf(attempts, sizeof attempts, "%d", p->delivery_attempts);
    const char *params[] = {env,
                            p->primary_url,
                            p->secondary_url,
                            flag(p->set_on_auth_creation, p->on_auth_creation),
                            flag(p->set_on_auth_refresh_error, p->on_auth_refresh_error),
                            flag(p->set_on_sync_completion_always, p->on_sync_completion_always),
                            flag(p->set_on_sync_error, p->on_sync_error),
                            flag(p->set_on_async_action_completion, p->on_async_action_completion),
                            p->delivery_attempts > 0 ? attempts : NULL};
    /* A missing row takes the defaults for what p leaves unset. */
    jn_err_t err = jn_pg_exec(conn,
                              "INSERT INTO environment_webhooks (environment_id) VALUES ($1) "
                              "ON CONFLICT (environment_id) DO NOTHING",
                              1, params, NULL);
    if (err)
        return err;
    return jn_pg_exec(
        conn,
        "UPDATE environment_webhooks SET "
        "primary_url = coalesce($2, primary_url), "
        "secondary_url = coalesce($3, secondary_url), "
        "on_auth_creation = coalesce($4::bool, on_auth_creation), "
        "on_auth_refresh_error = coalesce($5::bool, on_auth_refresh_error), "
        "on_sync_completion_always = coalesce($6::bool, on_sync_completion_always), "
        "on_sync_error = coalesce($7::bool, on_sync_error), "
        "on_async_action_completion = coalesce($8::bool, on_async_action_completion), "
        "delivery_attempts = coalesce($9::int, delivery_attempts), "
        "updated_at = now() WHERE environment_id = $1",
        9, params, NULL);
}

static void key_aad(long long env_id, char *aad, size_t cap)
{
    snprintf(aad, cap, "environment:%lld:webhook_signing_key", env_id);
}

/* A new key, and it sealed (free()). */
static jn_err_t new_key(const jn_crypto_keyring_t *ring, long long env_id,
                        char key[JN_WEBHOOK_KEY_LEN + 1], char **sealed)
{
    unsigned char raw[JN_WEBHOOK_KEY_LEN / 2];
    jn_crypto_random(raw, sizeof raw);
    jn_hex_encode(raw, sizeof raw, key);
    jn_secure_wipe(raw, sizeof raw);
    char aad[64];
    key_aad(env_id, aad, sizeof aad);
    return jn_crypto_seal(ring, key, JN_WEBHOOK_KEY_LEN, aad, strlen(aad), sealed);
}

static jn_err_t open_key(const jn_crypto_keyring_t *ring, long long env_id, const char *sealed,
                         char key[JN_WEBHOOK_KEY_LEN + 1])
{
    char aad[64];
    key_aad(env_id, aad, sizeof aad);
    char *plain = NULL;
    size_t len = 0;
    jn_err_t err = jn_crypto_open(ring, sealed, aad, strlen(aad), &plain, &len);
    if (err)
        return err;
    if (len != JN_WEBHOOK_KEY_LEN)
        err = JN_ERR_INVALID;
    else
        memcpy(key, plain, JN_WEBHOOK_KEY_LEN + 1);
    jn_secure_wipe(plain, len);
    free(plain);
    return err;
}

static jn_err_t store_key(PGconn *conn, long long env_id, const char *sealed, bool replace,
                          char **stored)
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env, sealed, replace ? "t" : "f"};
    PGresult *r = NULL;
    jn_err_t err =
        jn_pg_exec(conn,
                   "INSERT INTO environment_webhooks AS w (environment_id, signing_key_sealed, "
                   " signing_key_rotated_at) VALUES ($1, $2, CASE WHEN $3::bool THEN now() END) "
                   "ON CONFLICT (environment_id) DO UPDATE SET "
                   " signing_key_sealed = CASE WHEN $3::bool THEN EXCLUDED.signing_key_sealed"
                   "  ELSE coalesce(w.signing_key_sealed, EXCLUDED.signing_key_sealed) END,"
                   " signing_key_rotated_at = CASE WHEN $3::bool THEN now()"
                   "  ELSE w.signing_key_rotated_at END,"
                   " updated_at = now() "
                   "RETURNING signing_key_sealed",
                   3, params, &r);
    if (err)
        return err;
    *stored = jn_pg_dup(r, 0, 0);
    PQclear(r);
    return *stored ? JN_OK : JN_ERR_INTERNAL;
}

jn_err_t jn_webhook_signing_key(PGconn *conn, const jn_crypto_keyring_t *ring, long long env_id,
                                char key[JN_WEBHOOK_KEY_LEN + 1])
{
    char env[24];
    snprintf(env, sizeof env, "%lld", env_id);
    const char *params[] = {env};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT signing_key_sealed FROM environment_webhooks "
                              "WHERE environment_id = $1 AND signing_key_sealed IS NOT NULL",
                              1, params, &r);
    if (err)
        return err;
    char *sealed = PQntuples(r) == 1 ? jn_pg_dup(r, 0, 0) : NULL;
    PQclear(r);
    if (!sealed) {
        /* None yet: make one; a concurrent maker's stored key wins. */
        char *mine = NULL;
        if ((err = new_key(ring, env_id, key, &mine)))
            return err;
        jn_secure_wipe(key, JN_WEBHOOK_KEY_LEN + 1);
        err = store_key(conn, env_id, mine, false, &sealed);
        free(mine);
        if (err)
            return err;
    }
    err = open_key(ring, env_id, sealed, key);
    free(sealed);
    return err;
}

jn_err_t jn_webhook_signing_key_rotate(PGconn *conn, const jn_crypto_keyring_t *ring,
                                       long long env_id, char key[JN_WEBHOOK_KEY_LEN + 1])
{
    char *sealed = NULL, *stored = NULL;
    jn_err_t err = new_key(ring, env_id, key, &sealed);
    if (!err)
        err = store_key(conn, env_id, sealed, true, &stored);
    free(sealed);
    free(stored);
    if (err)
        jn_secure_wipe(key, JN_WEBHOOK_KEY_LEN + 1);
    return err;
}
