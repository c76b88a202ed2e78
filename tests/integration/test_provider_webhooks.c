/*
 * Integration: webhooks from providers, end to end with real processes - a gateway, a
 * worker and the scheduler on one database and Kafka - a custom provider whose webhooks
 * are signed like Stripe's (HMAC-SHA256 of "<timestamp>.<body>", a five-minute window),
 * signed here, and a receiver in this process standing for the app.
 *
 * Covers: a signed webhook reaching on_webhook, whose records are read back through
 * GET /records (written by the handler's own job); routing one payload to the two
 * connections it names, and a batch split so each connection sees only its events; event
 * subscriptions; forwarding on (one wrapped forward per matched connection, the raw
 * payload when none matched) and off; refusals that record nothing (a forged, missing,
 * replayed, future or tampered signature, an integration without a secret, unknown
 * environments and integrations answered alike, another environment's integration never
 * reached through the wrong environment's path); bodies past the cap refused without
 * being read whole, and anonymous bodies under it accepted; what is kept of the headers;
 * the secret never returned by the integrations API; a Slack url_verification answered
 * and not recorded; a handler whose script fails is not retried.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "fake_oauth.h"
#include "harness.h"
#include "receiver.h"

#define API_KEY "k-hooks-1"
#define DEV_SECRET "whsec-dev-0123456789"
#define PROD_SECRET "whsec-prod-9876543210"

static jn_test_gateway_t gw;
static jn_test_process_t worker, scheduler;
static char worker_admin[64], scheduler_admin[64];
static jn_test_receiver_t *rx;
static char dev_uuid[64], prod_uuid[64];

static const char *const service_env[] = {
    "JUNCTION_JOB_LEASE_SECONDS=5",      "JUNCTION_JOB_RESEND_SECONDS=2",
    "JUNCTION_WORKER_DRAIN_SECONDS=2",   "JUNCTION_DELIVERY_BACKOFF_SECONDS=1",
    "JUNCTION_DELIVERY_TIMEOUT_MS=3000", NULL};

/* A provider that signs like Stripe, routes by "account" and types events by "type". */
static const char provider_json[] =
    "{\"display_name\":\"Hooky\",\"categories\":[\"dev-tools\"],"
    "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
    "\"proxy\":{\"base_url\":\"https://api.example.com\",\"headers\":{\"x-api-key\":"
    "\"${apiKey}\"}},"
    "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\",\"secret\":true}},"
    "\"connection_config\":{\"account\":{\"type\":\"string\",\"title\":\"Account\","
    "\"pattern\":\"^[A-Za-z0-9-]+$\"}},"
    "\"webhook\":{\"signature\":{\"algorithm\":\"hmac-sha256\",\"header\":\"x-hooky-signature\","
    "\"encoding\":\"hex\",\"prefix\":\"sha256=\",\"payload\":\"${timestamp}.${body}\","
    "\"timestamp\":{\"header\":\"x-hooky-timestamp\",\"tolerance_seconds\":300}},"
    "\"routing\":{\"path\":\"account\",\"match\":\"connection_config.account\"},"
    "\"event_type\":{\"path\":\"type\"},\"headers\":[\"x-hooky-*\"]}}";

/* The same provider without a webhook section. */
static const char silent_json[] =
    "{\"display_name\":\"Silent\",\"categories\":[\"dev-tools\"],"
    "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
    "\"proxy\":{\"base_url\":\"https://api.example.com\",\"headers\":{\"x-api-key\":"
    "\"${apiKey}\"}},"
    "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\",\"secret\":true}}}";

/* A sync whose on_webhook saves or deletes the notes a webhook carries. */
static const char script[] =
    "return {\n"
    "  type = 'sync', description = 'notes pushed by webhooks', frequency = '1h',\n"
    "  models = { Note = { id = 'string', text = 'string', account = 'string',\n"
    "                      event = 'string', delivery = 'string', verified = 'boolean' } },\n"
    "  webhook_subscriptions = { 'note.created', 'note.deleted' },\n"
    "  exec = function(ctx) end,\n"
    "  on_webhook = function(ctx, payload, webhook)\n"
    "    local events = payload\n"
    "    if payload[1] == nil then events = { payload } end\n"
    "    for _, ev in ipairs(events) do\n"
    "      if ev.text == 'boom' then error('the script failed on purpose') end\n"
    "      if ev.type == 'note.deleted' then\n"
    "        ctx:batch_delete({ { id = ev.id } }, 'Note')\n"
    "      else\n"
    "        ctx:batch_save({ { id = ev.id, text = ev.text, account = ev.account,\n"
    "                           event = webhook.event_type or '',\n"
    "                           delivery = webhook.headers['x-hooky-delivery'] or '',\n"
    "                           verified = webhook.verified } }, 'Note')\n"
    "      end\n"
    "    end\n"
    "  end,\n"
    "}\n";

/* ---- helpers ---- */

static json_object *api(const char *key, const char *method, const char *path, const char *body,
                        long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    return resp;
}

static void api_ok(const char *key, const char *method, const char *path, const char *body,
                   long want)
{
    json_object_put(api(key, method, path, body, want));
}

static long long sql_number(const char *sql)
{
    char *v = jn_test_sql_value(gw.db_url, sql);
    long long n = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return n;
}

static long long webhook_jobs(void)
{
    return sql_number("SELECT count(*) FROM jobs WHERE kind = 'webhook'");
}

static void deploy(const char *key, const char *integration)
{
    json_object *fn = json_object_new_object();
    json_object_object_add(fn, "name", json_object_new_string("notes"));
    json_object_object_add(fn, "source", json_object_new_string(script));
    json_object *fns = json_object_new_array();
    json_object_array_add(fns, fn);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", fns);
    char path[128];
    snprintf(path, sizeof path, "/junction/integrations/%s/functions", integration);
    api_ok(key, "PUT", path, json_object_to_json_string(body), 200);
    json_object_put(body);
}

static void connect(const char *key, const char *integration, const char *cid, const char *account)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"provider_config_key\":\"%s\",\"connection_id\":\"%s\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"},"
             "\"connection_config\":{\"account\":\"%s\"}}",
             integration, cid, account);
    api_ok(key, "POST", "/connections", body, 201);
}

/* The environment uuid in the integration's webhook_url (include=webhook). */
static void uuid_of(const char *key, const char *integration, char *out, size_t cap)
{
    char path[160];
    snprintf(path, sizeof path, "/integrations/%s?include=webhook", integration);
    json_object *resp = api(key, "GET", path, NULL, 200);
    const char *url = jn_test_json_str(resp, "data.webhook_url");
    assert_non_null(url);
    const char *p = strstr(url, "/webhook/");
    assert_non_null(p);
    p += strlen("/webhook/");
    snprintf(out, cap, "%.36s", p);
    char tail[200];
    snprintf(tail, sizeof tail, "/webhook/%s/%s", out, integration);
    assert_non_null(strstr(url, tail));
    json_object_put(resp);
}

/* Posts body to /webhook/uuid/integration, signed with secret at ts (secret NULL: no
 * signature), with extra header lines (NULL-terminated; may be NULL). The answer's body
 * into *resp when resp is not NULL. */
static long post_hook(const char *uuid, const char *integration, const char *body, size_t len,
                      const char *secret, long long ts, const char *const *extra, char **resp)
{
    char url[512], sig[128] = "", stamp[64];
    snprintf(url, sizeof url, "%s/webhook/%s/%s", gw.url, uuid, integration);
    snprintf(stamp, sizeof stamp, "X-Hooky-Timestamp: %lld", ts);
    if (secret) {
        char ts_text[32];
        snprintf(ts_text, sizeof ts_text, "%lld.", ts);
        const void *parts[] = {ts_text, body};
        size_t lens[] = {strlen(ts_text), len};
        unsigned char mac[32];
        char hex[65];
        jn_crypto_hmac_sha256_parts(secret, strlen(secret), parts, lens, 2, mac);
        jn_hex_encode(mac, 32, hex);
        snprintf(sig, sizeof sig, "X-Hooky-Signature: sha256=%s", hex);
    }
    const char *headers[16] = {"Content-Type: application/json", stamp};
    size_t n = 2;
    if (secret)
        headers[n++] = sig;
    for (size_t i = 0; extra && extra[i] && n < 15; i++)
        headers[n++] = extra[i];
    char *text = NULL;
    long st = jn_test_http("POST", url, headers, body, len, &text);
    if (resp)
        *resp = text;
    else
        free(text);
    return st;
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* Posts a signed webhook and expects 200. */
static void hook_ok(const char *uuid, const char *integration, const char *secret, const char *body)
{
    char *resp = NULL;
    long st = post_hook(uuid, integration, body, strlen(body), secret, now_s(), NULL, &resp);
    if (st != 200)
        fail_msg("POST webhook %s: %ld %s", integration, st, resp ? resp : "");
    free(resp);
}

/* Expects a refusal with status and code, and that nothing was recorded. */
/* Posts a webhook that must be refused with status and code, creating no job; true once
 * checked (it fails the test otherwise). */
static bool hook_refused(const char *uuid, const char *integration, const char *body, size_t len,
                         const char *secret, long long ts, long status, const char *code)
{
    long long before = webhook_jobs();
    char *resp = NULL;
    long st = post_hook(uuid, integration, body, len, secret, ts, NULL, &resp);
    json_object *o = resp ? json_tokener_parse(resp) : NULL;
    if (st != status || !o || strcmp(jn_test_json_str(o, "error.code"), code) != 0)
        fail_msg("POST webhook %s: %ld %s; wanted %ld %s", integration, st, resp ? resp : "",
                 status, code);
    json_object_put(o);
    free(resp);
    assert_int_equal(webhook_jobs(), before);
    return true;
}

/* The records of model Note of a connection: a new object id -> record. */
static json_object *notes(const char *key, const char *integration, const char *cid)
{
    char url[512], auth[200], conn_h[200], pck_h[200];
    snprintf(url, sizeof url, "%s/records?model=Note&limit=1000", gw.url);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    snprintf(conn_h, sizeof conn_h, "Connection-Id: %s", cid);
    snprintf(pck_h, sizeof pck_h, "Provider-Config-Key: %s", integration);
    const char *headers[] = {auth, conn_h, pck_h, NULL};
    char *text = NULL;
    long st = jn_test_http("GET", url, headers, NULL, 0, &text);
    json_object *resp = text ? json_tokener_parse(text) : NULL;
    if (st != 200 || !resp)
        fail_msg("GET /records: %ld %s", st, text ? text : "");
    free(text);
    json_object *out = json_object_new_object();
    json_object *records = json_object_object_get(resp, "records");
    for (size_t i = 0; i < json_object_array_length(records); i++) {
        json_object *rec = json_object_array_get_idx(records, i);
        json_object_object_add(out, jn_test_json_str(rec, "id"), json_object_get(rec));
    }
    json_object_put(resp);
    return out;
}

typedef struct {
    const char *key, *integration, *cid, *id, *action;
} note_wait_t;

/* The note is there with last_action (or, for "absent", not there). */
static bool note_is(void *ud)
{
    note_wait_t *w = ud;
    json_object *all = notes(w->key, w->integration, w->cid);
    json_object *rec = json_object_object_get(all, w->id);
    const char *action = rec ? jn_test_json_str(rec, "_nango_metadata.last_action") : NULL;
    bool ok =
        strcmp(w->action, "absent") == 0 ? rec == NULL : action && strcmp(action, w->action) == 0;
    json_object_put(all);
    return ok;
}

static void wait_note(const char *key, const char *integration, const char *cid, const char *id,
                      const char *action)
{
    note_wait_t w = {key, integration, cid, id, action};
    if (!jn_test_wait_until(note_is, &w, 30000))
        fail_msg("note %s of %s/%s is not %s", id, integration, cid, action);
}

/* The intake job whose body holds marker: its id into out; false when none yet. */
static bool intake_of(const char *marker, char out[64])
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT id FROM jobs WHERE kind = 'webhook' AND input->>'stage' = 'intake' "
             "AND input->>'body' LIKE '%%%s%%' ORDER BY created_at LIMIT 1",
             marker);
    char *id = jn_test_sql_value(gw.db_url, sql);
    if (id)
        snprintf(out, 64, "%s", id);
    free(id);
    return id != NULL;
}

typedef struct {
    const char *marker;
} settled_t;

/* The intake of marker and every handler it made have their final outcome. */
static bool settled(void *ud)
{
    settled_t *s = ud;
    char id[64];
    if (!intake_of(s->marker, id))
        return false;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE kind = 'webhook' AND state IN ('queued','running') "
             "AND (id = '%s' OR input->>'intake' = '%s')",
             id, id);
    return sql_number(sql) == 0;
}

static void wait_settled(const char *marker)
{
    settled_t s = {marker};
    if (!jn_test_wait_until(settled, &s, 30000))
        fail_msg("the webhook with %s did not settle", marker);
}

/* The intake's output field (handlers, connections, forwards). */
static long long intake_output(const char *marker, const char *field)
{
    char id[64], sql[512];
    assert_true(intake_of(marker, id));
    snprintf(sql, sizeof sql, "SELECT (output->>'%s')::bigint FROM jobs WHERE id = '%s'", field,
             id);
    return sql_number(sql);
}

/* Requests the receiver got whose body holds marker. */
static size_t received_with(const char *marker, json_object **bodies, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < jn_test_receiver_count(rx); i++) {
        jn_test_received_t q;
        if (!jn_test_receiver_get(rx, i, &q))
            continue;
        if (strstr(q.body, marker)) {
            if (n < cap && bodies)
                bodies[n] = json_tokener_parse(q.body);
            n++;
        }
        jn_test_received_cleanup(&q);
    }
    return n;
}

typedef struct {
    const char *marker;
    size_t n;
} received_t;

static bool received_enough(void *ud)
{
    received_t *r = ud;
    return received_with(r->marker, NULL, 0) >= r->n;
}

static void wait_received(const char *marker, size_t n)
{
    received_t r = {marker, n};
    if (!jn_test_wait_until(received_enough, &r, 30000))
        fail_msg("the app got %zu request(s) with %s, wanted %zu", received_with(marker, NULL, 0),
                 marker, n);
}

/* ---- setup ---- */

static int setup(void **state)
{
    (void)state;
    jn_test_gateway_start(&gw, GATEWAY_BIN, service_env);
    rx = jn_test_receiver_start(0);
    char hook_url[128], settings[256];
    jn_test_receiver_url(rx, "/app", hook_url, sizeof hook_url);
    jn_test_allow_loopback(&gw, gw.dev_key);
    snprintf(settings, sizeof settings, "{\"primary_url\":\"%s\"}", hook_url);
    api_ok(gw.dev_key, "PATCH", "/junction/webhooks/settings", settings, 200);

    const char *keys[] = {gw.dev_key, gw.prod_key};
    for (int k = 0; k < 2; k++) {
        api_ok(keys[k], "PUT", "/junction/providers/hooky", provider_json, 201);
        api_ok(keys[k], "PUT", "/junction/providers/silent", silent_json, 201);
    }
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"hooky\",\"unique_key\":\"hooks\",\"webhook_secret\":\"" DEV_SECRET
           "\"}",
           200);
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"hooky\",\"unique_key\":\"quiet\",\"forward_webhooks\":false,"
           "\"webhook_secret\":\"" DEV_SECRET "\"}",
           200);
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"hooky\",\"unique_key\":\"nosecret\"}", 200);
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"silent\",\"unique_key\":\"silent\",\"webhook_secret\":\"" DEV_SECRET
           "\"}",
           200);
    api_ok(gw.prod_key, "POST", "/integrations",
           "{\"provider\":\"hooky\",\"unique_key\":\"hooks\",\"webhook_secret\":\"" PROD_SECRET
           "\"}",
           200);
    api_ok(gw.prod_key, "POST", "/integrations",
           "{\"provider\":\"hooky\",\"unique_key\":\"prod-only\",\"webhook_secret\":\"" DEV_SECRET
           "\"}",
           200);
    deploy(gw.dev_key, "hooks");
    deploy(gw.dev_key, "quiet");
    deploy(gw.prod_key, "hooks");
    connect(gw.dev_key, "hooks", "c1", "A1");
    connect(gw.dev_key, "hooks", "c2", "A2");
    connect(gw.dev_key, "hooks", "c3", "A1");
    connect(gw.dev_key, "quiet", "q1", "A1");
    connect(gw.prod_key, "hooks", "p1", "A1");
    uuid_of(gw.dev_key, "hooks", dev_uuid, sizeof dev_uuid);
    uuid_of(gw.prod_key, "hooks", prod_uuid, sizeof prod_uuid);
    assert_string_not_equal(dev_uuid, prod_uuid);

    jn_test_service_start(&worker, &gw, WORKER_BIN, "provider_webhooks_worker", service_env,
                          worker_admin);
    jn_test_service_start(&scheduler, &gw, SCHEDULER_BIN, "provider_webhooks_scheduler",
                          service_env, scheduler_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    bool scheduler_clean = jn_test_service_stop(&scheduler, 20000);
    jn_test_gateway_stop(&gw);
    jn_test_receiver_stop(rx);
    assert_true(worker_clean);
    assert_true(scheduler_clean);
    return 0;
}

/* ---- tests ---- */

/* A signed webhook reaches on_webhook for both connections its account names (and no
 * other), through their own handler jobs, with its event type and the headers scripts
 * may see; the app gets one forward per connection. */
static void test_signed_webhook_reaches_scripts(void **state)
{
    (void)state;
    const char *body = "{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-first\","
                       "\"text\":\"hello\"}";
    const char *extra[] = {"X-Hooky-Delivery: d-1", "Authorization: Bearer stolen",
                           "Cookie: session=1", "X-Forwarded-For: 10.0.0.1", NULL};
    char *resp = NULL;
    assert_int_equal(
        post_hook(dev_uuid, "hooks", body, strlen(body), DEV_SECRET, now_s(), extra, &resp), 200);
    free(resp);
    wait_note(gw.dev_key, "hooks", "c1", "n-first", "ADDED");
    wait_note(gw.dev_key, "hooks", "c3", "n-first", "ADDED");
    wait_settled("n-first");
    json_object *c2 = notes(gw.dev_key, "hooks", "c2");
    assert_null(json_object_object_get(c2, "n-first"));
    json_object_put(c2);
    /* The same account on another integration (q1) or in another environment (p1) is not
     * this webhook's: routing stays inside the integration of the path. */
    json_object *q1 = notes(gw.dev_key, "quiet", "q1");
    assert_null(json_object_object_get(q1, "n-first"));
    json_object_put(q1);
    json_object *p1 = notes(gw.prod_key, "hooks", "p1");
    assert_null(json_object_object_get(p1, "n-first"));
    json_object_put(p1);
    json_object *c1 = notes(gw.dev_key, "hooks", "c1");
    json_object *n = json_object_object_get(c1, "n-first");
    assert_string_equal(jn_test_json_str(n, "text"), "hello");
    assert_string_equal(jn_test_json_str(n, "event"), "note.created");
    assert_string_equal(jn_test_json_str(n, "delivery"), "d-1");
    assert_true(json_object_get_boolean(json_object_object_get(n, "verified")));
    json_object_put(c1);
    assert_int_equal(intake_output("n-first", "connections"), 2);
    assert_int_equal(intake_output("n-first", "handlers"), 2);
    /* The records were written by the handlers' jobs, one per connection. */
    assert_int_equal(sql_number("SELECT count(DISTINCT r.job_id) FROM records r JOIN jobs j ON "
                                "j.id = r.job_id WHERE r.external_id = 'n-first' AND j.kind = "
                                "'webhook' AND j.function_name = 'notes' AND j.state = "
                                "'succeeded'"),
                     2);
    /* Kept: the provider's own headers; never the signature, credentials or hop headers. */
    char id[64], sql[512];
    assert_true(intake_of("n-first", id));
    snprintf(sql, sizeof sql, "SELECT input->'headers' FROM jobs WHERE id = '%s'", id);
    char *headers = jn_test_sql_value(gw.db_url, sql);
    assert_non_null(headers);
    assert_non_null(strstr(headers, "\"x-hooky-delivery\": \"d-1\""));
    assert_non_null(strstr(headers, "x-hooky-timestamp"));
    assert_non_null(strstr(headers, "content-type"));
    assert_null(strstr(headers, "x-hooky-signature"));
    assert_null(strstr(headers, "authorization"));
    assert_null(strstr(headers, "cookie"));
    assert_null(strstr(headers, "x-forwarded-for"));
    free(headers);
    /* Forwarded once per matched connection, wrapped as Nango does. */
    wait_received("n-first", 2);
    json_object *got[4] = {0};
    assert_int_equal(received_with("n-first", got, 4), 2);
    bool seen_c1 = false, seen_c3 = false;
    for (int i = 0; i < 2; i++) {
        assert_string_equal(jn_test_json_str(got[i], "type"), "forward");
        assert_string_equal(jn_test_json_str(got[i], "from"), "hooky");
        assert_string_equal(jn_test_json_str(got[i], "providerConfigKey"), "hooks");
        assert_string_equal(jn_test_json_str(got[i], "payload.id"), "n-first");
        seen_c1 |= strcmp(jn_test_json_str(got[i], "connectionId"), "c1") == 0;
        seen_c3 |= strcmp(jn_test_json_str(got[i], "connectionId"), "c3") == 0;
        json_object_put(got[i]);
    }
    assert_true(seen_c1 && seen_c3);

    /* A later delete through a webhook. */
    hook_ok(dev_uuid, "hooks", DEV_SECRET,
            "{\"account\":\"A1\",\"type\":\"note.deleted\",\"id\":\"n-first\"}");
    wait_note(gw.dev_key, "hooks", "c1", "n-first", "DELETED");
    wait_note(gw.dev_key, "hooks", "c3", "n-first", "DELETED");
}

/* A batch naming two accounts is split: each connection's script sees its own events. */
static void test_batch_split(void **state)
{
    (void)state;
    hook_ok(dev_uuid, "hooks", DEV_SECRET,
            "[{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-batch-1\",\"text\":\"a\"},"
            "{\"account\":\"A2\",\"type\":\"note.created\",\"id\":\"n-batch-2\",\"text\":\"b\"},"
            "{\"account\":\"A9\",\"type\":\"note.created\",\"id\":\"n-batch-9\",\"text\":\"c\"}]");
    wait_note(gw.dev_key, "hooks", "c1", "n-batch-1", "ADDED");
    wait_note(gw.dev_key, "hooks", "c2", "n-batch-2", "ADDED");
    wait_note(gw.dev_key, "hooks", "c3", "n-batch-1", "ADDED");
    wait_settled("n-batch-1");
    assert_int_equal(intake_output("n-batch-1", "handlers"), 3);
    const char *cids[] = {"c1", "c2", "c3"};
    for (int i = 0; i < 3; i++) {
        json_object *all = notes(gw.dev_key, "hooks", cids[i]);
        assert_null(json_object_object_get(all, "n-batch-9"));
        assert_true((json_object_object_get(all, "n-batch-1") != NULL) == (i != 1));
        assert_true((json_object_object_get(all, "n-batch-2") != NULL) == (i == 1));
        json_object_put(all);
    }
}

/* An event type no sync subscribes to runs nothing; unmatched payloads are forwarded raw. */
static void test_subscriptions_and_unmatched(void **state)
{
    (void)state;
    hook_ok(dev_uuid, "hooks", DEV_SECRET,
            "{\"account\":\"A1\",\"type\":\"note.ignored\",\"id\":\"n-ignored\",\"text\":\"x\"}");
    wait_settled("n-ignored");
    assert_int_equal(intake_output("n-ignored", "connections"), 2);
    assert_int_equal(intake_output("n-ignored", "handlers"), 0);

    hook_ok(dev_uuid, "hooks", DEV_SECRET,
            "{\"account\":\"nobody\",\"type\":\"note.created\",\"id\":\"n-nobody\","
            "\"text\":\"x\"}");
    wait_settled("n-nobody");
    assert_int_equal(intake_output("n-nobody", "connections"), 0);
    wait_received("n-nobody", 1);
    json_object *got[2] = {0};
    assert_int_equal(received_with("n-nobody", got, 2), 1);
    /* The provider's body itself, without Nango's wrapper. */
    assert_string_equal(jn_test_json_str(got[0], "account"), "nobody");
    assert_null(jn_test_json_get(got[0], "providerConfigKey"));
    json_object_put(got[0]);
}

/* Forwarding off: the scripts run, the app gets nothing. */
static void test_forwarding_off(void **state)
{
    (void)state;
    hook_ok(dev_uuid, "quiet", DEV_SECRET,
            "{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-quiet\",\"text\":\"q\"}");
    wait_note(gw.dev_key, "quiet", "q1", "n-quiet", "ADDED");
    wait_settled("n-quiet");
    assert_int_equal(intake_output("n-quiet", "forwards"), 0);
    /* Forwards are written with the intake's outcome: none exists, none will (q1's
     * connection did send its auth webhook). */
    assert_int_equal(sql_number("SELECT count(*) FROM deliveries WHERE type = 'forward' AND "
                                "(provider_config_key = 'quiet' OR body LIKE '%n-quiet%')"),
                     0);
    /* The same webhook to "hooks" is forwarded (the switch is the integration's). */
    hook_ok(dev_uuid, "hooks", DEV_SECRET,
            "{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-loud\",\"text\":\"q\"}");
    wait_received("n-loud", 2);
    assert_int_equal(received_with("n-quiet", NULL, 0), 0);
}

/* Forged, missing, replayed, future and tampered signatures: 401, nothing recorded. */
static void test_bad_signatures_refused(void **state)
{
    (void)state;
    const char *body = "{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-forged\","
                       "\"text\":\"x\"}";
    size_t len = strlen(body);
    long long now = now_s();
    hook_refused(dev_uuid, "hooks", body, len, "not-the-secret", now, 401, "invalid_signature");
    hook_refused(dev_uuid, "hooks", body, len, NULL, now, 401, "invalid_signature");
    hook_refused(dev_uuid, "hooks", body, len, DEV_SECRET, now - 3600, 401, "invalid_signature");
    hook_refused(dev_uuid, "hooks", body, len, DEV_SECRET, now + 3600, 401, "invalid_signature");
    /* Another environment's secret for the same integration key. */
    hook_refused(dev_uuid, "hooks", body, len, PROD_SECRET, now, 401, "invalid_signature");
    /* Tampered: signed over one body, another sent. */
    char url[512], stamp[64], sig[128], ts_text[32], hex[65];
    snprintf(url, sizeof url, "%s/webhook/%s/hooks", gw.url, dev_uuid);
    snprintf(ts_text, sizeof ts_text, "%lld.", now);
    const void *parts[] = {ts_text, body};
    size_t lens[] = {strlen(ts_text), len};
    unsigned char mac[32];
    jn_crypto_hmac_sha256_parts(DEV_SECRET, strlen(DEV_SECRET), parts, lens, 2, mac);
    jn_hex_encode(mac, 32, hex);
    snprintf(stamp, sizeof stamp, "X-Hooky-Timestamp: %lld", now);
    snprintf(sig, sizeof sig, "X-Hooky-Signature: sha256=%s", hex);
    const char *headers[] = {"Content-Type: application/json", stamp, sig, NULL};
    const char *tampered = "{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-forged\","
                           "\"text\":\"y\"}";
    long long before = webhook_jobs();
    assert_int_equal(jn_test_http("POST", url, headers, tampered, strlen(tampered), NULL), 401);
    /* The timestamp moved to the present with the old signature: refused too. */
    snprintf(stamp, sizeof stamp, "X-Hooky-Timestamp: %lld", now + 1);
    assert_int_equal(jn_test_http("POST", url, headers, body, len, NULL), 401);
    /* No timestamp at all. */
    const char *no_stamp[] = {"Content-Type: application/json", sig, NULL};
    assert_int_equal(jn_test_http("POST", url, no_stamp, body, len, NULL), 401);
    assert_int_equal(webhook_jobs(), before);
    /* An integration of a signing provider without a secret refuses everything. */
    hook_refused(dev_uuid, "nosecret", body, len, DEV_SECRET, now, 401, "invalid_signature");
    hook_refused(dev_uuid, "nosecret", body, len, NULL, now, 401, "invalid_signature");
    /* The one genuine copy still passes (the refusals changed nothing). */
    hook_ok(dev_uuid, "hooks", DEV_SECRET, body);
    wait_note(gw.dev_key, "hooks", "c1", "n-forged", "ADDED");
}

/* Unknown environments and integrations answer alike; the path's environment is the only
 * one reached. */
static void test_environments_isolated(void **state)
{
    (void)state;
    const char *body = "{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-env\","
                       "\"text\":\"x\"}";
    size_t len = strlen(body);
    char *answers[5] = {0};
    long long before = webhook_jobs();
    /* prod-only exists in prod only; dev's path does not reach it, even signed right. */
    assert_int_equal(
        post_hook(dev_uuid, "prod-only", body, len, DEV_SECRET, now_s(), NULL, &answers[0]), 404);
    assert_int_equal(
        post_hook(dev_uuid, "no-such", body, len, DEV_SECRET, now_s(), NULL, &answers[1]), 404);
    assert_int_equal(post_hook("00000000-0000-4000-8000-000000000000", "hooks", body, len,
                               DEV_SECRET, now_s(), NULL, &answers[2]),
                     404);
    assert_int_equal(
        post_hook("not-a-uuid", "hooks", body, len, DEV_SECRET, now_s(), NULL, &answers[3]), 404);
    /* A provider that receives no webhooks answers the same. */
    assert_int_equal(
        post_hook(dev_uuid, "silent", body, len, DEV_SECRET, now_s(), NULL, &answers[4]), 404);
    for (int i = 1; i < 5; i++)
        assert_string_equal(answers[i], answers[0]);
    for (int i = 0; i < 5; i++)
        free(answers[i]);
    assert_int_equal(webhook_jobs(), before);
    /* Dev's signature on prod's path: refused; prod's own reaches prod only. */
    hook_refused(prod_uuid, "hooks", body, len, DEV_SECRET, now_s(), 401, "invalid_signature");
    hook_ok(prod_uuid, "hooks", PROD_SECRET, body);
    wait_note(gw.prod_key, "hooks", "p1", "n-env", "ADDED");
    wait_settled("n-env");
    json_object *c1 = notes(gw.dev_key, "hooks", "c1");
    assert_null(json_object_object_get(c1, "n-env"));
    json_object_put(c1);
    assert_int_equal(sql_number("SELECT count(DISTINCT environment_id) FROM jobs WHERE kind = "
                                "'webhook' AND (input->>'body' LIKE '%n-env%' OR input->>'intake' "
                                "IN (SELECT id::text FROM jobs WHERE input->>'body' LIKE "
                                "'%n-env%'))"),
                     1);
    /* Prod's forward is not dev's app's business: prod has no webhook URL. */
    assert_int_equal(received_with("n-env", NULL, 0), 0);
}

/* Past the cap: refused from the head, or while a chunked body streams, never read whole.
 * Under it, anonymous bodies larger than the API's anonymous cap are taken. */
static void test_body_caps(void **state)
{
    (void)state;
    int port = jn_test_url_port(gw.url);
    char head[512];
    jn_test_response_t r;
    long long before = webhook_jobs();
    snprintf(head, sizeof head,
             "POST /webhook/%s/hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: 104857600\r\n\r\n",
             dev_uuid);
    long t0 = jn_test_now_ms();
    assert_int_equal(jn_test_raw_request(port, head, strlen(head), 5000, &r), 413);
    jn_test_expect_error(&r, 413, "payload_too_large", "a declared 100 MiB body");
    jn_test_response_cleanup(&r);
    assert_true(jn_test_now_ms() - t0 < 4000);

    /* Chunked: 1 MiB and a bit is sent of a body that never ends; the answer comes. */
    int fd = jn_test_connect(NULL, port);
    assert_true(fd >= 0);
    snprintf(head, sizeof head,
             "POST /webhook/%s/hooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             dev_uuid);
    assert_true(jn_test_send(fd, head, strlen(head)));
    static char chunk[65536 + 16];
    int hl = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + hl, 'x', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    for (int i = 0; i < 17; i++)
        assert_true(jn_test_send(fd, chunk, (size_t)hl + 65536 + 2));
    assert_int_equal(jn_test_read_response(fd, 10000, &r), 413);
    jn_test_response_cleanup(&r);
    assert_true(jn_test_wait_closed(fd, 5000));
    close(fd);
    assert_int_equal(webhook_jobs(), before);

    /* 200 KiB, signed, from no one in particular: accepted. */
    size_t big = 200 * 1024;
    char *body = malloc(big + 1);
    assert_non_null(body);
    int n = snprintf(body, big,
                     "{\"account\":\"A2\",\"type\":\"note.created\",\"id\":\"n-big\","
                     "\"text\":\"");
    memset(body + n, 'b', big - (size_t)n - 2);
    memcpy(body + big - 2, "\"}", 2);
    body[big] = '\0';
    char *resp = NULL;
    long st = post_hook(dev_uuid, "hooks", body, big, DEV_SECRET, now_s(), NULL, &resp);
    if (st != 200)
        fail_msg("a 200 KiB webhook: %ld %s", st, resp ? resp : "");
    free(resp);
    free(body);
    wait_note(gw.dev_key, "hooks", "c2", "n-big", "ADDED");
}

/* A body that is not text, however well signed, is refused and not recorded. */
static void test_binary_body_refused(void **state)
{
    (void)state;
    const char body[] = "{\"account\":\"A1\",\"id\":\"n-bin\",\"text\":\"\xff\xfe\"}";
    assert_true(hook_refused(dev_uuid, "hooks", body, sizeof body - 1, DEV_SECRET, now_s(), 400,
                             "invalid_body"));
    const char nul[] = "{\"account\":\"A1\",\"id\":\"n-nul\"}\0tail";
    assert_true(hook_refused(dev_uuid, "hooks", nul, sizeof nul - 1, DEV_SECRET, now_s(), 400,
                             "invalid_body"));
}

/* A handler whose script fails ends failed after one attempt: a script error is not
 * retried; the other connection's handler is not affected. */
static void test_failing_handler(void **state)
{
    (void)state;
    hook_ok(dev_uuid, "hooks", DEV_SECRET,
            "[{\"account\":\"A1\",\"type\":\"note.created\",\"id\":\"n-boom\",\"text\":\"boom\"},"
            "{\"account\":\"A2\",\"type\":\"note.created\",\"id\":\"n-fine\",\"text\":\"ok\"}]");
    wait_note(gw.dev_key, "hooks", "c2", "n-fine", "ADDED");
    wait_settled("n-boom");
    char id[64], sql[512];
    assert_true(intake_of("n-boom", id));
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM jobs WHERE input->>'intake' = '%s' AND state = 'failed' AND "
             "attempts = 1 AND error->>'message' LIKE '%%failed on purpose%%'",
             id);
    assert_int_equal(sql_number(sql), 2); /* c1 and c3 */
    json_object *c1 = notes(gw.dev_key, "hooks", "c1");
    assert_null(json_object_object_get(c1, "n-boom"));
    json_object_put(c1);
}

/* The webhook secret: set for any provider, never returned, cleared with "". */
static void test_secret_never_returned(void **state)
{
    (void)state;
    api_ok(gw.dev_key, "POST", "/integrations",
           "{\"provider\":\"slack\",\"unique_key\":\"slack-app\",\"webhook_secret\":\"s-1\","
           "\"credentials\":{\"type\":\"OAUTH2\",\"client_id\":\"cid\",\"client_secret\":\"cs\"}}",
           200);
    json_object *resp =
        api(gw.dev_key, "GET", "/integrations/slack-app?include=credentials&include=webhook", NULL,
            200);
    const char *text = json_object_to_json_string(resp);
    assert_null(strstr(text, "s-1"));
    assert_non_null(jn_test_json_get(resp, "data.credentials"));
    assert_null(jn_test_json_get(resp, "data.credentials.webhook_secret"));
    assert_string_equal(jn_test_json_str(resp, "data.credentials.client_secret"), "cs");
    assert_true(json_object_get_boolean(jn_test_json_get(resp, "data.has_webhook_secret")));
    json_object_put(resp);
    /* Twice in one body: refused, nothing changes. */
    api_ok(gw.dev_key, "PATCH", "/integrations/slack-app",
           "{\"webhook_secret\":\"a\",\"credentials\":{\"type\":\"OAUTH2\","
           "\"webhook_secret\":\"b\"}}",
           400);
    /* Slack's url_verification, signed with the secret: answered, not recorded. */
    long long before = webhook_jobs();
    const char *body = "{\"token\":\"t\",\"challenge\":\"c-123\",\"type\":\"url_verification\"}";
    char ts[32], base[256], hex[65], sig[128], stamp[64], url[512];
    snprintf(ts, sizeof ts, "%lld", now_s());
    snprintf(base, sizeof base, "v0:%s:%s", ts, body);
    unsigned char mac[32];
    jn_crypto_hmac_sha256("s-1", 3, base, strlen(base), mac);
    jn_hex_encode(mac, 32, hex);
    snprintf(sig, sizeof sig, "X-Slack-Signature: v0=%s", hex);
    snprintf(stamp, sizeof stamp, "X-Slack-Request-Timestamp: %s", ts);
    snprintf(url, sizeof url, "%s/webhook/%s/slack-app", gw.url, dev_uuid);
    const char *headers[] = {"Content-Type: application/json", sig, stamp, NULL};
    char *answer = NULL;
    assert_int_equal(jn_test_http("POST", url, headers, body, strlen(body), &answer), 200);
    json_object *o = json_tokener_parse(answer);
    assert_string_equal(jn_test_json_str(o, "challenge"), "c-123");
    json_object_put(o);
    free(answer);
    assert_int_equal(webhook_jobs(), before);
    /* Cleared: the same request is refused. */
    api_ok(gw.dev_key, "PATCH", "/integrations/slack-app", "{\"webhook_secret\":\"\"}", 200);
    resp = api(gw.dev_key, "GET", "/integrations/slack-app?include=webhook", NULL, 200);
    assert_false(json_object_get_boolean(jn_test_json_get(resp, "data.has_webhook_secret")));
    json_object_put(resp);
    assert_int_equal(jn_test_http("POST", url, headers, body, strlen(body), NULL), 401);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_webhook_reaches_scripts),
        cmocka_unit_test(test_batch_split),
        cmocka_unit_test(test_subscriptions_and_unmatched),
        cmocka_unit_test(test_forwarding_off),
        cmocka_unit_test(test_bad_signatures_refused),
        cmocka_unit_test(test_environments_isolated),
        cmocka_unit_test(test_body_caps),
        cmocka_unit_test(test_binary_body_refused),
        cmocka_unit_test(test_failing_handler),
        cmocka_unit_test(test_secret_never_returned),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
