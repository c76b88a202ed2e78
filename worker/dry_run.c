/*
 * dry_run.c - the --dry-run command (see the header): the worker's host with every write
 * replaced by a line on standard output.
 */
#include "dry_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "core/log.h"
#include "engine/engine.h"
#include "host.h"
#include "scripts/declaration.h"
#include "store/environments.h"

#define MAX_SOURCE (1024 * 1024)
#define SHOWN_RECORDS 3

static int usage(void)
{
    fprintf(stderr, "usage: junction-worker --dry-run FILE --integration KEY --connection ID "
                    "[--environment NAME] [--input JSON]\n");
    return 2;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(MAX_SOURCE + 1);
    if (!buf)
        abort();
    *len = fread(buf, 1, MAX_SOURCE + 1, f);
    fclose(f);
    if (*len > MAX_SOURCE) {
        free(buf);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

/* ---- what a sync would write ---- */

typedef struct {
    json_object *checkpoint; /* kept in memory for the run */
    json_object *counts;     /* model -> {saved, updated, deleted} */
} dry_state_t;

static jn_worker_host_t *dry_host;
static dry_state_t dry;

static jn_err_t dry_records(void *ud, jn_script_records_op_t op, const char *model,
                            json_object *records, char *why, size_t why_len)
{
    (void)ud;
    (void)why;
    (void)why_len;
    static const char *const ops[] = {"saved", "updated", "deleted"};
    json_object *m = NULL;
    if (!json_object_object_get_ex(dry.counts, model, &m)) {
        m = json_object_new_object();
        for (int i = 0; i < 3; i++)
            json_object_object_add(m, ops[i], json_object_new_int(0));
        json_object_object_add(dry.counts, model, m);
    }
    json_object *n = NULL;
    json_object_object_get_ex(m, ops[op], &n);
    size_t count = json_object_array_length(records);
    json_object_set_int(n, json_object_get_int(n) + (int)count);
    printf("records %s %zu %s (not written: dry run)\n", ops[op], count, model);
    for (size_t i = 0; i < count && i < SHOWN_RECORDS; i++)
        printf("  %s\n", json_object_to_json_string_ext(json_object_array_get_idx(records, i),
                                                        JSON_C_TO_STRING_PLAIN));
    return JN_OK;
}

static jn_err_t dry_records_by_ids(void *ud, const char *model, json_object *ids, json_object **out,
                                   char *why, size_t why_len)
{
    (void)ud;
    (void)model;
    (void)ids;
    (void)why;
    (void)why_len;
    *out = json_object_new_object(); /* a dry run starts with no records */
    return JN_OK;
}

static jn_err_t dry_get_checkpoint(void *ud, json_object **out, char *why, size_t why_len)
{
    (void)ud;
    (void)why;
    (void)why_len;
    json_object *copy = NULL;
    if (dry.checkpoint && json_object_deep_copy(dry.checkpoint, &copy, NULL) != 0)
        abort();
    *out = copy;
    return JN_OK;
}

static jn_err_t dry_save_checkpoint(void *ud, json_object *checkpoint, char *why, size_t why_len)
{
    (void)ud;
    (void)why;
    (void)why_len;
    json_object_put(dry.checkpoint);
    dry.checkpoint = NULL;
    if (checkpoint && json_object_deep_copy(checkpoint, &dry.checkpoint, NULL) != 0)
        abort();
    printf("checkpoint %s (not written: dry run)\n",
           checkpoint ? json_object_to_json_string_ext(checkpoint, JSON_C_TO_STRING_PLAIN)
                      : "cleared");
    return JN_OK;
}

/* ---- the command ---- */

static jn_err_t find_environment(jn_engine_t *e, const char *name, jn_environment_t *out)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(e->pg, 5000, &err);
    if (!conn)
        return err;
    jn_environment_row_t *rows = NULL;
    size_t count = 0;
    err = jn_environments_load(conn, &rows, &count);
    jn_pg_release(e->pg, conn);
    if (err)
        return err;
    err = JN_ERR_NOT_FOUND;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(rows[i].env.name, name) == 0) {
            jn_env_cache_get(e->envs, rows[i].env.id, out); /* with its egress policy */
            err = JN_OK;
        }
    }
    free(rows);
    return err;
}

int jn_dry_run_main(int argc, char **argv)
{
    const char *file = NULL, *integration = NULL, *connection = NULL, *env_name = "dev",
               *input_text = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dry-run") == 0 && v)
            file = argv[++i];
        else if (strcmp(a, "--integration") == 0 && v)
            integration = argv[++i];
        else if (strcmp(a, "--connection") == 0 && v)
            connection = argv[++i];
        else if (strcmp(a, "--environment") == 0 && v)
            env_name = argv[++i];
        else if (strcmp(a, "--input") == 0 && v)
            input_text = argv[++i];
        else
            return usage();
    }
    if (!file || !integration || !connection)
        return usage();
    size_t len = 0;
    char *source = read_file(file, &len);
    if (!source) {
        fprintf(stderr, "dry run: cannot read %s (or it is larger than %d bytes)\n", file,
                MAX_SOURCE);
        return 2;
    }
    /* The script's name: the file name without folders and ".lua". */
    const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
    char name[JN_SCRIPT_NAME_MAX];
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    jn_declaration_t decl;
    jn_script_error_t serr;
    if (jn_declaration_load(name, source, len, NULL, &decl, &serr) != JN_SCRIPT_OK) {
        fprintf(stderr, "dry run: %s\n", serr.message);
        json_object_put(serr.payload);
        free(source);
        return 1;
    }
    json_object *input = NULL;
    if (input_text) {
        jn_field_error_t fe;
        if (jn_json_parse(input_text, strlen(input_text), false, &input, &fe) != JN_OK) {
            fprintf(stderr, "dry run: --input is not valid JSON: %s\n", fe.message);
            jn_declaration_cleanup(&decl);
            free(source);
            return 2;
        }
    }

    jn_engine_t engine;
    jn_engine_start(&engine, "dry-run", JN_PROGRAM_WORKER); /* never listens */
    jn_environment_t env;
    jn_session_t *session = NULL;
    char why[512];
    int rc = 0;
    if (find_environment(&engine, env_name, &env) != JN_OK) {
        fprintf(stderr, "dry run: environment '%s' was not found\n", env_name);
        rc = 2;
    } else if (jn_session_open_sync(&engine.sessions, &env, integration, connection, &session, why,
                                    sizeof why) != JN_OK) {
        fprintf(stderr, "dry run: %s\n", why);
        rc = 2;
    }
    if (rc == 0) {
        jn_worker_host_t wh = {
            .engine = &engine, .session = session, .job_id = "dry-run", .dry_run = stdout};
        jn_script_host_t host;
        jn_worker_host_init(&wh, &host);
        dry_host = &wh;
        dry.counts = json_object_new_object();
        const jn_connection_t *c = jn_session_connection(session);
        jn_script_run_info_t info = {.connection_id = c->connection_id,
                                     .provider_config_key = c->provider_config_key,
                                     .provider = c->provider,
                                     .base_url = wh.base_url[0] ? wh.base_url : NULL};
        jn_script_source_t src = {name, source, len};
        jn_script_outcome_t outcome = {0};
        jn_script_status_t status;
        if (decl.kind == JN_SCRIPT_ACTION) {
            status = jn_script_run_action(&src, input, &host, &info, NULL, &outcome);
        } else {
            host.records = dry_records;
            host.records_by_ids = dry_records_by_ids;
            host.get_checkpoint = dry_get_checkpoint;
            host.save_checkpoint = dry_save_checkpoint;
            status = jn_script_run_sync(&src, &host, &info, NULL, &outcome);
        }
        if (status == JN_SCRIPT_OK) {
            if (decl.kind == JN_SCRIPT_ACTION)
                printf("output %s\n", outcome.output ? json_object_to_json_string_ext(
                                                           outcome.output, JSON_C_TO_STRING_PLAIN)
                                                     : "null");
            else
                printf("records %s\n",
                       json_object_to_json_string_ext(dry.counts, JSON_C_TO_STRING_PLAIN));
        } else {
            int http_status = 500;
            json_object *e = jn_script_outcome_error_json(&outcome, &http_status);
            printf("error %d %s\n", http_status,
                   json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN));
            json_object_put(e);
            rc = 1;
        }
        printf("run %s in %lld ms, %llu instructions, %zu bytes of memory at most\n",
               jn_script_status_str(status), (long long)outcome.duration_ms,
               (unsigned long long)outcome.instructions, outcome.memory_peak);
        fflush(stdout);
        jn_script_outcome_cleanup(&outcome);
        json_object_put(dry.counts);
        json_object_put(dry.checkpoint);
    }
    jn_session_close(session);
    jn_engine_stop(&engine);
    json_object_put(input);
    jn_declaration_cleanup(&decl);
    free(source);
    return rc;
}
