/*
 * delivery.c - sign, POST, judge, store (see the header).
 */
#include "delivery.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/json_util.h"
#include "core/log.h"
#include "core/metrics.h"
#include "providers/provider_http.h"
#include "store/deliveries.h"
#include "store/webhook_settings.h"

#define DB_WAIT_MS 5000

int jn_delivery_retry_delay_s(int base_s, int attempts, long retry_after_s)
{
    if (retry_after_s > 0)
        return (int)(retry_after_s > JN_DELIVERY_RETRY_AFTER_MAX_S ? JN_DELIVERY_RETRY_AFTER_MAX_S
                                                                   : retry_after_s);
    long d = base_s < 1 ? 1 : base_s;
    for (int i = 1; i < attempts && d < JN_DELIVERY_BACKOFF_MAX_S; i++)
        d *= 2;
    if (d > JN_DELIVERY_BACKOFF_MAX_S)
        d = JN_DELIVERY_BACKOFF_MAX_S;
    unsigned jitter;
    jn_crypto_random(&jitter, sizeof jitter);
    long half = d / 2;
    return (int)(d - half + (long)(jitter % (unsigned)(half + 1)));
}

long jn_delivery_retry_after(const char *value)
{
    if (!value || !*value)
        return 0;
    char *end = NULL;
    long s = strtol(value, &end, 10);
    if (end != value && *end == '\0')
        return s > 0 ? s : 0;
    time_t when = curl_getdate(value, NULL);
    if (when < 0)
        return 0;
    long left = (long)(when - time(NULL));
    return left > 0 ? left : 0;
}

static void count(const char *outcome)
{
    char labels[48];
    snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome);
    jn_metric_inc(jn_metrics_counter("jn_webhook_deliveries_total",
                                     "Webhook delivery attempts to the app, by outcome", labels));
}

/* Stores the outcome; JN_DELIVERY_GIVE_BACK only when nothing could be stored. */
static jn_delivery_result_t store(jn_engine_t *e, const jn_job_t *job, bool ok, int status,
                                  const char *error, bool retryable, long retry_after_s)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(e->pg, DB_WAIT_MS, &err);
    if (!conn) {
        /* The lease runs out and the scheduler sends the job again: the attempt is repeated. */
        jn_log_error("delivery", "job %s: the outcome could not be stored (%s)", job->id,
                     jn_err_str(err));
        return JN_DELIVERY_DONE;
    }
    bool requeued = false;
    int delay =
        jn_delivery_retry_delay_s(e->config.delivery_backoff_s, job->attempts, retry_after_s);
    err = jn_deliveries_finish(conn, job->id, job->lease_token, ok, status, error, retryable, delay,
                               &requeued);
    jn_pg_release(e->pg, conn);
    if (err == JN_ERR_CONFLICT)
        jn_log_warn("delivery", "job %s: another worker took the delivery over", job->id);
    else if (err)
        jn_log_error("delivery", "job %s: the outcome could not be stored (%s)", job->id,
                     jn_err_str(err));
    else if (ok)
        jn_log_info("delivery", "job %s: delivered (HTTP %d, attempt %d)", job->id, status,
                    job->attempts);
    else if (requeued)
        jn_log_info("delivery", "job %s: attempt %d of %d failed (%s); next in %d s", job->id,
                    job->attempts, job->max_attempts, error, delay);
    else
        jn_log_warn("delivery",
                    "job %s: failed for good after %d attempt(s) (%s); kept as a "
                    "dead letter",
                    job->id, job->attempts, error);
    count(ok ? "delivered" : requeued ? "retried" : "dead");
    return JN_DELIVERY_DONE;
}

/* Reads the delivery and the signing key. */
static jn_err_t load(jn_engine_t *e, const jn_job_t *job, jn_delivery_t *d,
                     char key[JN_WEBHOOK_KEY_LEN + 1])
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(e->pg, DB_WAIT_MS, &err);
    if (!conn)
        return err;
    err = jn_deliveries_get(conn, job->environment_id, job->id, true, d);
    if (!err) {
        err = jn_webhook_signing_key(conn, &e->keyring, job->environment_id, key);
        if (err)
            jn_delivery_cleanup(d);
    }
    jn_pg_release(e->pg, conn);
    return err;
}

static bool transient(jn_err_t err)
{
    return err == JN_ERR_DB_UNAVAILABLE || err == JN_ERR_TIMEOUT || err == JN_ERR_BUSY;
}

/* "HTTP 404: <the start of the answer>" */
static void describe(long status, const jn_provider_response_t *res, char *out, size_t cap)
{
    char shown[JN_SHOWN_CAP] = "";
    if (res->body && res->body_len)
        jn_shown(shown, res->body, res->body_len);
    snprintf(out, cap, "HTTP %ld%s%s", status, shown[0] ? ": " : "", shown);
}

jn_delivery_result_t jn_delivery_run(jn_engine_t *e, const jn_job_t *job, const atomic_bool *lost)
{
    jn_delivery_t d;
    char key[JN_WEBHOOK_KEY_LEN + 1];
    jn_err_t err = load(e, job, &d, key);
    if (transient(err))
        return JN_DELIVERY_GIVE_BACK;
    if (err) {
        char why[128];
        snprintf(why, sizeof why, "%s",
                 err == JN_ERR_NOT_FOUND ? "the delivery's record is missing"
                                         : "the environment's signing key cannot be opened");
        return store(e, job, false, 0, why, false, 0);
    }
    jn_environment_t env;
    if (jn_env_cache_get(e->envs, job->environment_id, &env) != JN_OK) {
        jn_secure_wipe(key, sizeof key);
        jn_delivery_cleanup(&d);
        return store(e, job, false, 0, "the environment no longer exists", false, 0);
    }

    /* The signatures, over the exact bytes sent. */
    unsigned char mac[32];
    char hmac_hex[65], sig_hex[65];
    jn_crypto_hmac_sha256(key, JN_WEBHOOK_KEY_LEN, d.body, d.body_len, mac);
    jn_hex_encode(mac, sizeof mac, hmac_hex);
    char *keyed = malloc(JN_WEBHOOK_KEY_LEN + d.body_len);
    if (!keyed)
        abort();
    memcpy(keyed, key, JN_WEBHOOK_KEY_LEN);
    memcpy(keyed + JN_WEBHOOK_KEY_LEN, d.body, d.body_len);
    jn_crypto_sha256(keyed, JN_WEBHOOK_KEY_LEN + d.body_len, mac);
    jn_hex_encode(mac, sizeof mac, sig_hex);
    jn_secure_wipe(keyed, JN_WEBHOOK_KEY_LEN);
    free(keyed);
    jn_secure_wipe(key, sizeof key);

    char h_hmac[96], h_sig[96];
    snprintf(h_hmac, sizeof h_hmac, "X-Nango-Hmac-Sha256: %s", hmac_hex);
    snprintf(h_sig, sizeof h_sig, "X-Nango-Signature: %s", sig_hex);
    const char *headers[] = {"Content-Type: application/json", h_hmac, h_sig,
                             "User-Agent: Junction-Webhooks/" JUNCTION_VERSION, NULL};
    jn_provider_target_t target = {0};
    jn_provider_call_t call = {
        .method = "POST",
        .url = d.url,
        .headers = headers,
        .body = d.body,
        .body_len = d.body_len,
        .retries = 0, /* the job retries, durably */
        .timeout_ms = e->config.delivery_timeout_ms,
        .headers_timeout_ms = e->config.delivery_timeout_ms,
        .egress = env.egress,
        .no_redirects = true,
    };
    jn_provider_response_t res;
    char why[512] = "";
    err = jn_provider_fetch(e->provider_http, env.id, &target, &call, JN_DELIVERY_ANSWER_MAX, &res,
                            why, sizeof why);
    jn_delivery_cleanup(&d);
    if (atomic_load(lost)) {
        if (!err)
            jn_provider_response_cleanup(&res);
        return JN_DELIVERY_DONE; /* another worker owns the job now */
    }
    long status = err == JN_OK || err == JN_ERR_TOO_LARGE ? res.status : 0;
    char error[600];
    jn_delivery_result_t out;
    if (status >= 200 && status < 300) {
        out = store(e, job, true, (int)status, NULL, false, 0);
    } else if (status == 429 || status >= 500) {
        describe(status, &res, error, sizeof error);
        long after = jn_delivery_retry_after(jn_provider_response_header(&res, "retry-after"));
        out = store(e, job, false, (int)status, error, true, after);
    } else if (status > 0) {
        describe(status, &res, error, sizeof error);
        size_t n = strlen(error);
        snprintf(error + n, sizeof error - n, " (%s: not retried)",
                 status < 400 ? "a redirect is not followed" : "refused by the receiver");
        out = store(e, job, false, (int)status, error, false, 0);
    } else {
        /* No answer. A URL the egress policy refuses, or one that cannot be used, will not
         * get better by itself; a timeout or a broken connection may. */
        snprintf(error, sizeof error, "%s", why[0] ? why : jn_err_str(err));
        out = store(e, job, false, 0, error, err != JN_ERR_INVALID, 0);
    }
    if (err == JN_OK)
        jn_provider_response_cleanup(&res);
    return out;
}
