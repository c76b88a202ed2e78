/*
 * sandbox.c - what a script run costs before the script does anything: a fresh sandbox
 * per job (state, libraries, ctx, loading a typical script), printed beside a bare
 * luaL_newstate + luaL_openlibs measured in the same run, and the memory each holds.
 * Also the price of the instruction hook on a tight loop, which calibrates the
 * instruction budgets (docs/scripts.md).
 *
 * Usage: bench/sandbox [iterations]     (default 20000). Figures, not pass/fail.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script_ctx.h"
#include "scripts/declaration.h"
#include "scripts/sandbox.h"

static const char *const script =
    "-- a typical action: a declaration, a model, one request, a mapped result\n"
    "return {\n"
    "  type = 'action',\n"
    "  description = 'Creates a note',\n"
    "  version = '1.0.0',\n"
    "  input = { text = 'string', tags = 'string[]?' },\n"
    "  output = { id = 'string', text = 'string' },\n"
    "  endpoint = { method = 'POST', path = '/notes' },\n"
    "  exec = function(ctx, input)\n"
    "    local res = ctx:post{ endpoint = '/v1/notes', data = { body = input.text } }\n"
    "    return { id = tostring(res.data.id), text = res.data.body }\n"
    "  end,\n"
    "}\n";

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A host whose provider answers every request at once with a fixed note. */
static jn_err_t canned_http(void *ud, const jn_script_http_request_t *req,
                            jn_script_http_response_t *res, char *why, size_t why_len)
{
    (void)ud;
    (void)req;
    (void)why;
    (void)why_len;
    static const char body[] = "{\"id\":42,\"body\":\"hello\"}";
    res->status = 201;
    res->headers = json_object_new_object();
    json_object_object_add(res->headers, "content-type",
                           json_object_new_string("application/json"));
    res->body = strdup(body);
    res->body_len = sizeof body - 1;
    return JN_OK;
}

static size_t bare_memory(lua_State *L)
{
    return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n < 1)
        n = 1;
    jn_sandbox_limits_t lim = jn_sandbox_limits_action();

    /* Baseline: a bare state with every standard library. */
    size_t bare_mem = 0;
    double t0 = now_us();
    for (int i = 0; i < n; i++) {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        if (i == 0)
            bare_mem = bare_memory(L);
        lua_close(L);
    }
    double bare = (now_us() - t0) / n;

    /* A sandbox: the restricted libraries, json, error and box metatables. */
    size_t sb_mem = 0;
    t0 = now_us();
    for (int i = 0; i < n; i++) {
        jn_sandbox_t *sb = jn_sandbox_new("bench", &lim);
        if (i == 0)
            sb_mem = jn_sandbox_memory(sb);
        jn_sandbox_free(sb);
    }
    double sandbox = (now_us() - t0) / n;

    /* A sandbox that loads the script and checks its declaration (as a deployment does). */
    t0 = now_us();
    for (int i = 0; i < n; i++) {
        jn_declaration_t d;
        jn_script_error_t err;
        if (jn_declaration_load("bench", script, strlen(script), &lim, &d, &err) != JN_SCRIPT_OK) {
            fprintf(stderr, "declaration: %s\n", err.message);
            return 1;
        }
        jn_declaration_cleanup(&d);
    }
    double declared = (now_us() - t0) / n;

    /* A whole job: sandbox, ctx, load, declaration, input check, exec with one request,
     * output check. */
    jn_script_host_t host = {.http = canned_http};
    jn_script_source_t src = {"bench", script, strlen(script)};
    json_object *input = json_tokener_parse("{\"text\":\"hello\",\"tags\":[\"a\"]}");
    size_t job_peak = 0;
    t0 = now_us();
    for (int i = 0; i < n; i++) {
        jn_script_outcome_t out;
        if (jn_script_run_action(&src, input, &host, NULL, &lim, &out) != JN_SCRIPT_OK) {
            fprintf(stderr, "run: %s\n", out.error.message);
            return 1;
        }
        job_peak = out.memory_peak;
        jn_script_outcome_cleanup(&out);
    }
    double job = (now_us() - t0) / n;
    json_object_put(input);

    /* The hook's price: the same loop in a bare state and in a sandbox. */
    const char *loop = "local s = 0 for i = 1, 20000000 do s = s + i % 7 end return s";
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    t0 = now_us();
    if (luaL_dostring(L, loop) != LUA_OK)
        return 1;
    double loop_bare = (now_us() - t0) / 1000;
    lua_close(L);
    jn_sandbox_t *sb = jn_sandbox_new("loop", &lim);
    jn_script_error_t err;
    t0 = now_us();
    if (jn_sandbox_load(sb, loop, strlen(loop), &err) || jn_sandbox_call(sb, 0, 1, &err))
        return 1;
    double loop_sb = (now_us() - t0) / 1000;
    unsigned long long instructions = (unsigned long long)jn_sandbox_instructions(sb);
    jn_sandbox_free(sb);

    printf("sandbox set-up, %d iterations (µs per job; memory of one)\n", n);
    printf("  %-44s %8.1f µs %8zu bytes\n", "bare luaL_newstate + luaL_openlibs", bare, bare_mem);
    printf("  %-44s %8.1f µs %8zu bytes\n", "sandbox (restricted libraries, json)", sandbox,
           sb_mem);
    printf("  %-44s %8.1f µs\n", "sandbox + load + declaration check", declared);
    printf("  %-44s %8.1f µs %8zu bytes peak\n", "whole action job (ctx, 1 request, checks)", job,
           job_peak);
    printf("hook cost on a 20M-iteration loop\n");
    printf("  %-44s %8.1f ms\n", "bare state", loop_bare);
    printf("  %-44s %8.1f ms (%llu instructions counted, %.0f M/s)\n", "sandbox", loop_sb,
           instructions, (double)instructions / (loop_sb * 1000));
    return 0;
}
