/*
 * sync_run.c - the records benchmarks' sync run (sync_run.h).
 */
#include "sync_run.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "store/jobs.h"
#include "store/pg.h"

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *what)
{
    fprintf(stderr, "bench: %s\n", what);
    exit(1);
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

static long post(CURL *c, const char *gw, const char *path, struct curl_slist *h, const char *body)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", gw, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

void bench_sync_run(PGconn *conn, const char *gw, const char *key, jn_sync_run_t *run)
{
    CURL *c = curl_easy_init();
    if (!c)
        bench_die("no curl handle");
    char auth[300];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (post(c, gw, "/integrations", h, "{\"provider\":\"hackernews\",\"unique_key\":\"bench\"}") !=
        200)
        bench_die("cannot create the integration");
    if (post(c, gw, "/connections", h,
             "{\"provider_config_key\":\"bench\",\"connection_id\":\"b1\",\"credentials\":{"
             "\"type\":\"NONE\"}}") != 201)
        bench_die("cannot create the connection");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);

    PGresult *r = NULL;
    if (jn_pg_exec(conn, "SELECT id, environment_id FROM integrations WHERE unique_key = 'bench'",
                   0, NULL, &r))
        bench_die("no integration");
    long long integration = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    long long env = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    const char *models[] = {"Contact"};
    jn_sync_decl_t decl = {"bench", false, false, false, 3600, models, 1};
    char why[256];
    if (jn_syncs_reconcile(conn, env, integration, &decl, 1, NULL, why, sizeof why))
        bench_die(why);
    if (jn_pg_exec_script(conn, "UPDATE syncs SET requested_mode = 'incremental', "
                                "next_due_at = now() WHERE name = 'bench'"))
        bench_die("cannot ask for a run");
    jn_job_ref_t *jobs = NULL;
    size_t n_jobs = 0, skipped = 0;
    if (jn_syncs_fire_due(conn, 10, &jobs, &n_jobs, &skipped) || n_jobs != 1)
        bench_die("the run was not fired");
    jn_job_t job;
    if (jn_jobs_claim(conn, jobs[0].id, "bench", 3600, &job))
        bench_die("cannot claim the run");
    if (jn_syncs_run_begin(conn, env, jobs[0].id, job.lease_token, run))
        bench_die("cannot begin the run");
    jn_job_cleanup(&job);
    free(jobs);
}
