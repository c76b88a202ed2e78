/*
 * Integration: syncs run by real workers against the fake provider, end to end - the
 * scheduler fires the run, a worker runs the script, records land in PostgreSQL and are
 * read back through GET /records and GET /sync/status, and the app gets its sync webhook.
 *
 * Covers: an initial full sync over many pages; upstream updates, deletions and reordered
 * keys on a rerun give exact added/updated/deleted counts (reordered keys are no change);
 * a full sync that fails half way deletes nothing; a worker killed in the middle of a
 * checkpointed run: another worker takes the run over after its lease and resumes from
 * the checkpoint, and the records end up exactly the upstream set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_oauth.h"
#include "harness.h"
#include "receiver.h"

#define API_KEY "k-syncs-1"
#define ITEMS 230

static jn_test_fake_t fake;
static jn_test_gateway_t gw;
static jn_test_process_t worker, scheduler;
static char worker_admin[64], scheduler_admin[64];
static jn_test_receiver_t *rx;

static const char *const service_env[] = {"JUNCTION_JOB_LEASE_SECONDS=5",
                                          "JUNCTION_JOB_RESEND_SECONDS=2",
                                          "JUNCTION_WORKER_DRAIN_SECONDS=2", NULL};

/* A sync that pages from its checkpoint and logs where it starts. */
static const char *const resumable =
    "return {\n"
    "  type = 'sync', description = 'pages from its checkpoint', frequency = '1h',\n"
    "  sync_type = 'incremental', auto_start = false,\n"
    "  models = { Item = { id = 'string', name = 'string', updated_at = 'date', seq = 'integer' } "
    "},\n"
    "  checkpoint = { offset = 'integer' },\n"
    "  exec = function(ctx)\n"
    "    local offset = (ctx:get_checkpoint() or {}).offset or 0\n"
    "    ctx:log('starting at offset ' .. offset)\n"
    "    while true do\n"
    "      local res = ctx:get{ endpoint = '/api/items/offset',\n"
    "                           params = { offset = tostring(offset), limit = '50' } }\n"
    "      local items = res.data.items\n"
    "      if #items == 0 then break end\n"
    "      ctx:batch_save(items, 'Item')\n"
    "      offset = offset + 50\n"
    "      ctx:save_checkpoint{ offset = offset }\n"
    "    end\n"
    "    ctx:clear_checkpoint()\n"
    "  end,\n"
    "}\n";

static void api_ok(const char *method, const char *path, const char *body, long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, gw.dev_key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    json_object_put(resp);
}

static void deploy(const char *integration, const char *name, const char *source)
{
    json_object *fn = json_object_new_object();
    json_object_object_add(fn, "name", json_object_new_string(name));
    json_object_object_add(fn, "source", json_object_new_string(source));
    json_object *fns = json_object_new_array();
    json_object_array_add(fns, fn);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "functions", fns);
    char path[128];
    snprintf(path, sizeof path, "/junction/integrations/%s/functions", integration);
    api_ok("PUT", path, json_object_to_json_string(body), 200);
    json_object_put(body);
}

static void connect(const char *integration, const char *cid)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"provider_config_key\":\"%s\",\"connection_id\":\"%s\","
             "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"}}",
             integration, cid);
    api_ok("POST", "/connections", body, 201);
}

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "syncs_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, service_env);
    if (jn_test_fake_call(&fake, "POST", "/_admin/api_keys", "{\"key\":\"" API_KEY "\"}", NULL) !=
        201)
        fail_msg("cannot register the API key at the fake");
    char knobs[64];
    snprintf(knobs, sizeof knobs, "{\"items_count\":%d}", ITEMS);
    jn_test_fake_config(&fake, knobs);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"display_name\":\"Fake key\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
             "\"proxy\":{\"base_url\":\"%s\",\"headers\":{\"x-api-key\":\"${apiKey}\"}},"
             "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\","
             "\"secret\":true}}}",
             fake.url);
    api_ok("PUT", "/junction/providers/fake-key", body, 201);
    api_ok("POST", "/integrations", "{\"provider\":\"fake-key\",\"unique_key\":\"items\"}", 200);
    api_ok("POST", "/integrations", "{\"provider\":\"fake-key\",\"unique_key\":\"resumable\"}",
           200);
    jn_test_fake_allow(&gw);
    /* The app's webhook receiver, told about every sync. */
    rx = jn_test_receiver_start(0);
    char hook_url[128], settings[512];
    jn_test_receiver_url(rx, "/hooks", hook_url, sizeof hook_url);
    snprintf(settings, sizeof settings,
             "{\"primary_url\":\"%s\",\"on_sync_completion_always\":true,"
             "\"on_sync_error\":true}",
             hook_url);
    api_ok("PATCH", "/junction/webhooks/settings", settings, 200);

    char path[512];
    snprintf(path, sizeof path, "%s/fake-provider/fetch-items.lua", EXAMPLES_DIR);
    char *items = jn_test_read_file(path);
    deploy("items", "fetch-items", items);
    free(items);
    deploy("resumable", "pages", resumable);

    jn_test_service_start(&worker, &gw, WORKER_BIN, "syncs_worker", service_env, worker_admin);
    jn_test_service_start(&scheduler, &gw, SCHEDULER_BIN, "syncs_scheduler", service_env,
                          scheduler_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    bool scheduler_clean = jn_test_service_stop(&scheduler, 20000);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    jn_test_receiver_stop(rx);
    assert_true(worker_clean);
    assert_true(scheduler_clean);
    return 0;
}

/* ---- reading what happened ---- */

/* The sync's entry of GET /sync/status (a new object), or NULL. */
static json_object *sync_status(const char *integration, const char *cid, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/sync/status?syncs=%s&provider_config_key=%s&connection_id=%s",
             name, integration, cid);
    json_object *resp = NULL;
    if (jn_test_api(&gw, "GET", path, gw.dev_key, NULL, &resp) != 200) {
        json_object_put(resp);
        return NULL;
    }
    json_object *syncs = json_object_object_get(resp, "syncs");
    json_object *one = syncs && json_object_array_length(syncs) == 1
                           ? json_object_get(json_object_array_get_idx(syncs, 0))
                           : NULL;
    json_object_put(resp);
    return one;
}

typedef struct {
    const char *integration, *cid, *name, *status;
    char after[64]; /* a finishedAt other than this one */
} wait_t;

static bool sync_finished(void *ud)
{
    wait_t *w = ud;
    json_object *s = sync_status(w->integration, w->cid, w->name);
    const char *status = s ? jn_test_json_str(s, "status") : NULL;
    const char *finished = s ? jn_test_json_str(s, "finishedAt") : NULL;
    bool done =
        status && strcmp(status, w->status) == 0 && finished && strcmp(finished, w->after) != 0;
    json_object_put(s);
    return done;
}

static void wait_sync(const char *integration, const char *cid, const char *name,
                      const char *status, const char *after, int timeout_ms)
{
    wait_t w = {integration, cid, name, status, ""};
    snprintf(w.after, sizeof w.after, "%s", after ? after : "");
    if (!jn_test_wait_until(sync_finished, &w, timeout_ms)) {
        json_object *s = sync_status(integration, cid, name);
        fail_msg("sync %s of %s/%s did not reach %s: %s", name, integration, cid, status,
                 s ? json_object_to_json_string(s) : "(no status)");
    }
}

static long long result_of(json_object *s, const char *model, const char *what)
{
    json_object *r = NULL, *m = NULL, *v = NULL;
    if (!json_object_object_get_ex(s, "latestResult", &r) ||
        !json_object_object_get_ex(r, model, &m) || !json_object_object_get_ex(m, what, &v))
        fail_msg("no latestResult.%s.%s in %s", model, what, json_object_to_json_string(s));
    return json_object_get_int64(v);
}

/* Records of model read through GET /records, following next_cursor to the end;
 * counts by last_action, and whether every id is unique. */
typedef struct {
    long long total, added, updated, deleted;
    bool unique;
} records_t;

static records_t read_records(const char *integration, const char *cid, const char *model)
{
    records_t out = {.unique = true};
    char cursor[256] = "";
    json_object *seen = json_object_new_object();
    for (int page = 0; page < 1000; page++) {
        char url[768], auth[256], conn_h[128], pck_h[128];
        snprintf(url, sizeof url, "%s/records?model=%s&limit=100%s%s", gw.url, model,
                 cursor[0] ? "&cursor=" : "", cursor);
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", gw.dev_key);
        snprintf(conn_h, sizeof conn_h, "Connection-Id: %s", cid);
        snprintf(pck_h, sizeof pck_h, "Provider-Config-Key: %s", integration);
        const char *headers[] = {auth, conn_h, pck_h, NULL};
        char *text = NULL;
        long st = jn_test_http("GET", url, headers, NULL, 0, &text);
        json_object *resp = text ? json_tokener_parse(text) : NULL;
        free(text);
        if (st != 200)
            fail_msg("GET /records: %ld %s", st, resp ? json_object_to_json_string(resp) : "");
        json_object *records = json_object_object_get(resp, "records");
        for (size_t i = 0; i < json_object_array_length(records); i++) {
            json_object *rec = json_object_array_get_idx(records, i);
            const char *id = jn_test_json_str(rec, "id");
            if (json_object_object_get_ex(seen, id, NULL))
                out.unique = false;
            json_object_object_add(seen, id, json_object_new_boolean(1));
            const char *action = jn_test_json_str(rec, "_nango_metadata.last_action");
            out.total++;
            if (action && strcmp(action, "ADDED") == 0)
                out.added++;
            else if (action && strcmp(action, "UPDATED") == 0)
                out.updated++;
            else if (action && strcmp(action, "DELETED") == 0)
                out.deleted++;
        }
        const char *next = jn_test_json_str(resp, "next_cursor");
        bool more = next && *next;
        if (more)
            snprintf(cursor, sizeof cursor, "%s", next);
        json_object_put(resp);
        if (!more)
            break;
    }
    json_object_put(seen);
    return out;
}

/* ---- tests ---- */

static void test_initial_sync_then_changes_upstream(void **state)
{
    (void)state;
    connect("items", "c1");
    /* A new connection's running syncs fire at once. */
    wait_sync("items", "c1", "fetch-items", "SUCCESS", NULL, 60000);
    json_object *s = sync_status("items", "c1", "fetch-items");
    assert_int_equal(result_of(s, "Item", "added"), ITEMS);
    char first[64];
    snprintf(first, sizeof first, "%s", jn_test_json_str(s, "finishedAt"));
    json_object_put(s);
    records_t r = read_records("items", "c1", "Item");
    assert_int_equal(r.total, ITEMS);
    assert_int_equal(r.added, ITEMS);
    assert_true(r.unique);

    /* Upstream: every third item renamed, every tenth gone, every field in another order. */
    jn_test_fake_config(&fake, "{\"items_version\":1,\"items_delete_every\":10,"
                               "\"items_reverse_keys\":true}");
    api_ok("POST", "/sync/trigger",
           "{\"syncs\":[\"fetch-items\"],\"provider_config_key\":\"items\","
           "\"connection_id\":\"c1\"}",
           200);
    wait_sync("items", "c1", "fetch-items", "SUCCESS", first, 60000);
    long long deleted = ITEMS / 10, updated = 0;
    for (int seq = 1; seq <= ITEMS; seq++)
        updated += seq % 3 == 0 && seq % 10 != 0;
    s = sync_status("items", "c1", "fetch-items");
    assert_int_equal(result_of(s, "Item", "added"), 0);
    assert_int_equal(result_of(s, "Item", "updated"), updated);
    assert_int_equal(result_of(s, "Item", "deleted"), deleted);
    snprintf(first, sizeof first, "%s", jn_test_json_str(s, "finishedAt"));
    json_object_put(s);
    r = read_records("items", "c1", "Item");
    assert_int_equal(r.total, ITEMS);
    assert_int_equal(r.deleted, deleted);
    assert_int_equal(r.updated, updated);
    assert_int_equal(r.added, ITEMS - deleted - updated);

    /* A full sync that fails half way deletes nothing, though more items are gone. */
    jn_test_fake_config(&fake, "{\"items_delete_every\":7,\"items_fail_from_offset\":100}");
    api_ok("POST", "/sync/trigger",
           "{\"syncs\":[\"fetch-items\"],\"provider_config_key\":\"items\","
           "\"connection_id\":\"c1\"}",
           200);
    wait_sync("items", "c1", "fetch-items", "ERROR", first, 60000);
    /* The pages it did read brought back the items it saw again (seq 10, 20, ... among
     * the first 100 that are not multiples of 7): they count as ADDED. Nothing else
     * changed: no item missing upstream was marked deleted. */
    long long back = 0;
    for (int seq = 1; seq <= 100; seq++)
        back += seq % 10 == 0 && seq % 7 != 0;
    r = read_records("items", "c1", "Item");
    assert_int_equal(r.total, ITEMS);
    assert_int_equal(r.deleted, deleted - back);
    jn_test_fake_config(&fake, "{\"items_fail_from_offset\":-1,\"items_delete_every\":0,"
                               "\"items_version\":0,\"items_reverse_keys\":false}");
}

static bool sync_webhook_arrived(void *ud)
{
    (void)ud;
    size_t n = jn_test_receiver_count(rx);
    for (size_t i = 0; i < n; i++) {
        jn_test_received_t q;
        if (!jn_test_receiver_get(rx, i, &q))
            continue;
        json_object *o = json_tokener_parse(q.body);
        bool hit = o && strcmp(jn_test_json_str(o, "type"), "sync") == 0 &&
                   strcmp(jn_test_json_str(o, "syncName"), "fetch-items") == 0 &&
                   strcmp(jn_test_json_str(o, "syncType"), "INITIAL") == 0 &&
                   json_object_get_int(json_object_object_get(
                       json_object_object_get(o, "responseResults"), "added")) == ITEMS;
        json_object_put(o);
        jn_test_received_cleanup(&q);
        if (hit)
            return true;
    }
    return false;
}

static void test_the_app_hears_of_each_sync(void **state)
{
    (void)state;
    assert_true(jn_test_wait_until(sync_webhook_arrived, NULL, 30000));
}

typedef struct {
    long long offset;
} checkpoint_t;

static bool checkpoint_past(void *ud)
{
    checkpoint_t *c = ud;
    json_object *s = sync_status("resumable", "c2", "pages");
    json_object *cp = s ? json_object_object_get(s, "checkpoint") : NULL;
    json_object *off = NULL;
    bool past = cp && json_object_object_get_ex(cp, "offset", &off) &&
                json_object_get_int64(off) >= c->offset;
    if (past)
        c->offset = json_object_get_int64(off);
    json_object_put(s);
    return past;
}

static void test_killed_worker_resumes_from_the_checkpoint(void **state)
{
    (void)state;
    jn_test_fake_config(&fake, "{\"latency_ms\":150,\"items_fail_from_offset\":-1,"
                               "\"items_delete_every\":0,\"items_version\":0}");
    connect("resumable", "c2");
    api_ok("POST", "/sync/start",
           "{\"syncs\":[\"pages\"],\"provider_config_key\":\"resumable\",\"connection_id\":\"c2\"}",
           200);
    checkpoint_t cp = {100};
    assert_true(jn_test_wait_until(checkpoint_past, &cp, 60000));
    jn_test_signal(&worker, SIGKILL);
    jn_test_process_wait(&worker, 10000);
    jn_test_service_start(&worker, &gw, WORKER_BIN, "syncs_worker_after_kill", service_env,
                          worker_admin);
    wait_sync("resumable", "c2", "pages", "SUCCESS", NULL, 90000);
    jn_test_fake_config(&fake, "{\"latency_ms\":0}");
    /* The new worker started where the checkpoint was, not from the beginning. */
    char *log = jn_test_read_log(&worker);
    char want[64];
    snprintf(want, sizeof want, "starting at offset %lld", cp.offset);
    bool resumed = false;
    for (long long o = cp.offset; o < ITEMS && !resumed; o += 50) {
        snprintf(want, sizeof want, "starting at offset %lld", o);
        resumed = strstr(log, want) != NULL;
    }
    if (!resumed || strstr(log, "starting at offset 0"))
        fail_msg("the run did not resume from its checkpoint (>= %lld):\n%s", cp.offset, log);
    free(log);
    /* Exactly the upstream set: nothing lost, nothing twice. */
    records_t r = read_records("resumable", "c2", "Item");
    assert_int_equal(r.total, ITEMS);
    assert_true(r.unique);
    json_object *s = sync_status("resumable", "c2", "pages");
    assert_int_equal(result_of(s, "Item", "added"), ITEMS);
    json_object_put(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_initial_sync_then_changes_upstream),
        cmocka_unit_test(test_the_app_hears_of_each_sync),
        cmocka_unit_test(test_killed_worker_resumes_from_the_checkpoint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
