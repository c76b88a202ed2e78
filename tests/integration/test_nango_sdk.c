/*
 * Integration: Nango's own Node SDK (@nangohq/node, pinned by tests/sdk/install.sh) runs
 * unchanged against Junction - providers and their templates, integrations, deployed
 * functions, environment variables, connect sessions, connections, metadata, the proxy,
 * actions sync and async, the scripts config - through a real gateway, worker and
 * scheduler. The checks themselves are in tests/sdk/nango_node.cjs; this test sets the
 * stage, fails with the script's output when a check fails, and then checks that the
 * environment variable's value the SDK read (and a script used) is in no log.
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

#include "fake_oauth.h"
#include "harness.h"

#define API_KEY "k-sdk-1"

/* Reads the environment variables: proves it saw SDK_TOKEN whole without returning it. */
static const char read_env[] =
    "return {\n"
    "  type = 'action', description = 'reads the environment variables',\n"
    "  exec = function(ctx)\n"
    "    local token\n"
    "    local vars = ctx:get_environment_variables()\n"
    "    for _, v in ipairs(vars) do if v.name == 'SDK_TOKEN' then token = v.value end end\n"
    "    return { token_reversed = token and token:reverse(), count = #vars }\n"
    "  end,\n"
    "}\n";
static const char scratch[] = "return { type = 'action', description = 'to delete', exec = "
                              "function(ctx) return {} end }\n";
static char secret[64]; /* SDK_TOKEN's value */

static jn_test_fake_t fake;
static jn_test_gateway_t gw;
static jn_test_process_t worker, scheduler;
static char worker_admin[64], scheduler_admin[64];

static void api_ok(const char *method, const char *path, const char *body, long want)
{
    json_object *resp = NULL;
    long st = jn_test_api(&gw, method, path, gw.dev_key, body, &resp);
    if (st != want)
        fail_msg("%s %s: %ld, wanted %ld: %s", method, path, st, want,
                 resp ? json_object_to_json_string(resp) : "(not JSON)");
    json_object_put(resp);
}

static int setup(void **state)
{
    (void)state;
    jn_test_fake_start(&fake, FAKE_PROVIDER_BIN, "sdk_fake_provider");
    jn_test_gateway_start(&gw, GATEWAY_BIN, NULL);
    if (jn_test_fake_call(&fake, "POST", "/_admin/api_keys", "{\"key\":\"" API_KEY "\"}", NULL) !=
        201)
        fail_msg("cannot register the API key at the fake");
    char body[1024];
    snprintf(body, sizeof body,
             "{\"display_name\":\"SDK notes\",\"categories\":[\"dev-tools\"],"
             "\"docs\":\"https://example.com/docs\",\"auth_mode\":\"API_KEY\","
             "\"proxy\":{\"base_url\":\"%s\",\"headers\":{\"x-api-key\":\"${apiKey}\"}},"
             "\"credentials\":{\"apiKey\":{\"type\":\"string\",\"title\":\"API key\","
             "\"secret\":true}}}",
             fake.url);
    api_ok("PUT", "/junction/providers/sdk-api", body, 201);
    api_ok("POST", "/integrations", "{\"provider\":\"sdk-api\",\"unique_key\":\"sdk-notes\"}", 200);
    api_ok("POST", "/connections",
           "{\"provider_config_key\":\"sdk-notes\",\"connection_id\":\"sdk-c1\","
           "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"}}",
           201);
    jn_test_fake_allow(&gw);
    char path[512];
    snprintf(path, sizeof path, "%s/fake-provider/post-note.lua", EXAMPLES_DIR);
    char *note = jn_test_read_file(path);
    const char *sources[][2] = {{"post-note", note}, {"read-env", read_env}, {"scratch", scratch}};
    json_object *fns = json_object_new_array();
    for (size_t i = 0; i < 3; i++) {
        json_object *fn = json_object_new_object();
        json_object_object_add(fn, "name", json_object_new_string(sources[i][0]));
        json_object_object_add(fn, "source", json_object_new_string(sources[i][1]));
        json_object_array_add(fns, fn);
    }
    free(note);
    json_object *deploy = json_object_new_object();
    json_object_object_add(deploy, "functions", fns);
    api_ok("PUT", "/junction/integrations/sdk-notes/functions", json_object_to_json_string(deploy),
           200);
    json_object_put(deploy);
    char token[48];
    jn_test_unique("sdk-secret", token, sizeof token);
    snprintf(secret, sizeof secret, "%s-value", token);
    snprintf(body, sizeof body,
             "{\"variables\":[{\"name\":\"SDK_TOKEN\",\"value\":\"%s\"},"
             "{\"name\":\"SDK_REGION\",\"value\":\"eu-west-1\"}]}",
             secret);
    api_ok("PUT", "/junction/environment/variables", body, 200);
    /* A second integration with a sync (its own, so that the functions listed above stay
     * what they are), and its connection. */
    api_ok("POST", "/integrations", "{\"provider\":\"sdk-api\",\"unique_key\":\"sdk-items\"}", 200);
    snprintf(path, sizeof path, "%s/fake-provider/fetch-items.lua", EXAMPLES_DIR);
    char *items = jn_test_read_file(path);
    json_object *sync = json_object_new_object();
    json_object_object_add(sync, "name", json_object_new_string("fetch-items"));
    json_object_object_add(sync, "source", json_object_new_string(items));
    free(items);
    json_object *syncs = json_object_new_array();
    json_object_array_add(syncs, sync);
    json_object *deploy_items = json_object_new_object();
    json_object_object_add(deploy_items, "functions", syncs);
    api_ok("PUT", "/junction/integrations/sdk-items/functions",
           json_object_to_json_string(deploy_items), 200);
    json_object_put(deploy_items);
    api_ok("POST", "/connections",
           "{\"provider_config_key\":\"sdk-items\",\"connection_id\":\"sdk-c2\","
           "\"credentials\":{\"type\":\"API_KEY\",\"apiKey\":\"" API_KEY "\"}}",
           201);
    jn_test_service_start(&worker, &gw, WORKER_BIN, "sdk_worker", NULL, worker_admin);
    jn_test_service_start(&scheduler, &gw, SCHEDULER_BIN, "sdk_scheduler", NULL, scheduler_admin);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bool worker_clean = jn_test_service_stop(&worker, 30000);
    bool scheduler_clean = jn_test_service_stop(&scheduler, 20000);
    jn_test_gateway_stop(&gw);
    jn_test_fake_stop(&fake);
    assert_true(worker_clean);
    assert_true(scheduler_clean);
    return 0;
}

static void test_nango_node_sdk(void **state)
{
    (void)state;
    char host[96], key[160], fake_url[96], node_path[600], script[512], secret_env[96];
    snprintf(host, sizeof host, "JN_SDK_HOST=%s", gw.url);
    snprintf(key, sizeof key, "JN_SDK_KEY=%s", gw.dev_key);
    snprintf(fake_url, sizeof fake_url, "JN_SDK_FAKE=%s", fake.url);
    snprintf(node_path, sizeof node_path, "NODE_PATH=%s/sdk/node_modules",
             jn_test_env("JUNCTION_LOCAL_DIR"));
    snprintf(script, sizeof script, "%s/tests/sdk/nango_node.cjs",
             jn_test_env("JUNCTION_REPO_DIR"));
    snprintf(secret_env, sizeof secret_env, "JN_SDK_SECRET=%s", secret);
    const char *env[] = {
        host,       key, fake_url, node_path, "JN_SDK_API_KEY=" API_KEY, "JN_SDK_ITEMS=250",
        secret_env, NULL};
    const char *argv[] = {"/usr/bin/env", "node", script, NULL};
    jn_test_process_t node;
    jn_test_spawn(&node, argv, env, "sdk_node");
    bool exited = jn_test_process_wait(&node, 120000);
    if (!exited)
        jn_test_process_kill(&node);
    char *out = jn_test_read_log(&node);
    if (!exited || node.exit_status != 0)
        fail_msg("the Nango SDK checks failed (exit %d):\n%s", exited ? node.exit_status : -1, out);
    assert_non_null(strstr(out, "all SDK checks passed"));
    free(out);
    /* The gateway served the value and the worker handed it to a script: neither logged it. */
    jn_test_process_t *procs[] = {&gw.proc, &worker};
    for (size_t i = 0; i < 2; i++) {
        char *log = jn_test_read_log(procs[i]);
        assert_non_null(strstr(log, "\"level\""));
        if (strstr(log, secret))
            fail_msg("a log shows the environment variable's value %s", secret);
        free(log);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nango_node_sdk),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
