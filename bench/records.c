/*
 * records - the records store's throughput beside PostgreSQL's own, in one run.
 *
 *   records <database url> <gateway url> <secret key> [records]
 *
 * Against a gateway started on that database (bench/records.sh does it all), prints:
 *   ingest: records/s through jn_records_save (1 KB records, batches of 1,000, the whole
 *           path: validation, canonical JSON and its hash, the fence and the scope lock, the
 *           lookup, the COPY into records, the outbox, the counters, the commit), beside a
 *           raw binary COPY of the same rows into an equivalent table (same columns and
 *           indexes), 1,000 rows a transaction, from the same parsed records (serialized,
 *           hashed, encoded, copied, committed);
 *   read:   records/s through GET /records (pages of 1,000, following next_cursor), beside
 *           a raw keyset SELECT of the same rows and columns with libpq, 1,000 a page;
 * and the ratios. Loopback, one client thread. Each side's step alternates with the
 * other's, so that both meet the same load on a shared machine.
 */
#include <curl/curl.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "store/jobs.h"
#include "store/pg.h"
#include "store/records.h"
#include "store/syncs.h"
#include "sync_run.h"

#define BATCH 1000

static size_t collect(char *p, size_t s, size_t n, void *ud)
{
    jn_buf_t *b = ud;
    return jn_buf_append(b, p, s * n) == JN_OK ? s * n : 0;
}

/* An HTTP call; returns the status, the body in out (reset first). */
static long http(CURL *c, const char *method, const char *url, struct curl_slist *headers,
                 const char *body, jn_buf_t *out)
{
    jn_buf_reset(out);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (!body)
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* A ~1 KB record: a dozen fields of the kinds APIs return. */
static void make_record(jn_buf_t *b, int i)
{
    jn_buf_printf(b,
                  "{\"id\":\"rec-%08d\",\"email\":\"user%d@example.com\",\"first_name\":\"Ada\","
                  "\"last_name\":\"Lovelace %d\",\"company\":{\"name\":\"Analytical Engines "
                  "Ltd\",\"domain\":\"engines.example.com\",\"size\":%d},\"phone\":\"+44 20 7946 "
                  "%04d\",\"active\":%s,\"score\":%d.25,\"tags\":[\"customer\",\"newsletter\","
                  "\"beta\"],\"created_at\":\"2026-01-%02dT10:%02d:00Z\",\"notes\":\"",
                  i, i, i, i % 5000, i % 10000, i % 2 ? "true" : "false", i % 100, 1 + i % 28,
                  i % 60);
    for (int k = 0; k < 12; k++)
        jn_buf_append_str(b, "Lorem ipsum dolor sit amet, consectetur adipiscing. ");
    jn_buf_append_str(b, "\"}");
}

/* The binary COPY value of one raw row (the columns of records). */
static void raw_row(jn_buf_t *c, long long scope, const char *id, long long seq,
                    const unsigned char hash[16], const char *payload, size_t payload_len)
{
    jn_buf_be16(c, 13);
    jn_buf_be32(c, 8);
    jn_buf_be64(c, (uint64_t)scope);
    jn_buf_be32(c, (uint32_t)strlen(id));
    jn_buf_append_str(c, id);
    jn_buf_be32(c, 8);
    jn_buf_be64(c, (uint64_t)seq);
    jn_buf_be32(c, 16);
    jn_buf_append(c, hash, 16);
    jn_buf_be32(c, (uint32_t)payload_len);
    jn_buf_append(c, payload, payload_len);
    jn_buf_be32(c, 1);
    jn_buf_append(c, "\0", 1); /* sealed */
    jn_buf_be32(c, 1);
    jn_buf_append(c, "A", 1); /* last_action */
    /* first_seen_at, updated_at: microseconds since 2000-01-01 */
    jn_buf_be32(c, 8);
    jn_buf_be64(c, (uint64_t)(846000000000000LL + seq));
    jn_buf_be32(c, 8);
    jn_buf_be64(c, (uint64_t)(846000000000000LL + seq));
    jn_buf_be32(c, 0xffffffff); /* deleted_at */
    jn_buf_be32(c, 0xffffffff); /* pruned_at */
    jn_buf_be32(c, 8);
    jn_buf_be64(c, 1);          /* seen_gen */
    jn_buf_be32(c, 0xffffffff); /* job_id */
}

int main(int argc, char **argv)
{
    if (argc < 4)
        bench_die("usage: records <database url> <gateway url> <secret key> [records]");
    const char *db_url = argv[1], *gw = argv[2], *key = argv[3];
    int total = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 100000;
    total = (total / BATCH) * BATCH;
    if (total <= 0)
        bench_die("records must be at least 1000");
    const char *b64 = getenv("JUNCTION_ENCRYPTION_KEY");
    unsigned char k[32];
    size_t k_len = 0;
    if (!b64 || jn_base64_decode(b64, strlen(b64), k, sizeof k, &k_len) != JN_OK || k_len != 32)
        bench_die("JUNCTION_ENCRYPTION_KEY is missing");
    jn_crypto_keyring_t ring;
    jn_crypto_keyring_init(&ring, k);
    jn_pg_options_t opts;
    jn_pg_options_default(&opts, 2);
    opts.statement_timeout_ms = 600000;
    opts.query_deadline_ms = 610000;
    jn_pg_pool_t *pool = jn_pg_pool_new_with(db_url, "bench_records", &opts);
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(pool, 5000, &err);
    if (!conn)
        bench_die("cannot reach PostgreSQL");

    /* An integration, a connection and a sync run. */
    PGresult *r = NULL;
    jn_sync_run_t run;
    bench_sync_run(conn, gw, key, &run);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *c = curl_easy_init();
    char auth[300], url[1024];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    jn_buf_t resp;
    jn_buf_init(&resp, 256L * 1024 * 1024);

    /* The records, prepared once as JSON text per batch (parsing is part of neither side). */
    int batches = total / BATCH;
    json_object **parsed = calloc((size_t)batches, sizeof *parsed);
    size_t bytes = 0;
    for (int b = 0; b < batches; b++) {
        jn_buf_t t;
        jn_buf_init(&t, 64L * 1024 * 1024);
        jn_buf_append_str(&t, "[");
        for (int i = 0; i < BATCH; i++) {
            if (i)
                jn_buf_append_str(&t, ",");
            size_t before = t.len;
            make_record(&t, b * BATCH + i);
            bytes += t.len - before;
        }
        jn_buf_append_str(&t, "]");
        parsed[b] = json_tokener_parse(t.data);
        jn_buf_cleanup(&t);
        if (!parsed[b])
            bench_die("a batch does not parse");
    }
    printf("bench: %d records of %.0f bytes, batches of %d, loopback\n", total,
           (double)bytes / total, BATCH);

    /* The same rows for the raw side, as binary COPY input built ahead (only PostgreSQL's
     * part of the raw COPY is timed). */
    if (jn_pg_exec_script(conn, "DROP TABLE IF EXISTS bench_raw; "
                                "CREATE TABLE bench_raw (LIKE records INCLUDING DEFAULTS "
                                "INCLUDING CONSTRAINTS) WITH (fillfactor = 90); "
                                "ALTER TABLE bench_raw ADD PRIMARY KEY (scope_id, external_id); "
                                "CREATE UNIQUE INDEX ON bench_raw (scope_id, seq)"))
        bench_die("cannot create the raw table");
    /* The raw side's input, built per batch inside its timing: each record serialized
     * (json-c) and hashed into the same columns, as a binary COPY stream. */
    jn_buf_t copy;
    jn_buf_init(&copy, 128L * 1024 * 1024);
    /* Ingest: each batch through the store, then the same rows raw, alternating, so that
     * both sides meet the same load on a shared machine. */
    double store_s = 0, raw_s = 0;
    for (int b = 0; b < batches; b++) {
        jn_records_counts_t counts;
        jn_field_error_t e;
        double t0 = bench_now_s();
        if (jn_records_save(conn, &ring, &run.writer, "Contact", parsed[b], &counts, &e) ||
            counts.added != BATCH)
            bench_die("a batch did not save");
        double t1 = bench_now_s();
        jn_buf_reset(&copy);
        jn_buf_append(&copy, "PGCOPY\n\377\r\n", 11);
        jn_buf_be32(&copy, 0);
        jn_buf_be32(&copy, 0);
        for (int i = 0; i < BATCH; i++) {
            json_object *rec = json_object_array_get_idx(parsed[b], (size_t)i);
            size_t len = 0;
            const char *text = json_object_to_json_string_length(rec, JSON_C_TO_STRING_PLAIN, &len);
            unsigned char hash[32];
            jn_crypto_sha256(text, len, hash);
            json_object *id = json_object_object_get(rec, "id");
            raw_row(&copy, 1, json_object_get_string(id), (long long)b * BATCH + i + 1, hash, text,
                    len);
        }
        jn_buf_be16(&copy, 0xffff);
        if (jn_pg_exec_script(conn, "BEGIN") ||
            jn_pg_copy_in(conn, "COPY bench_raw FROM STDIN WITH (FORMAT binary)", copy.data,
                          copy.len, NULL) ||
            jn_pg_exec_script(conn, "COMMIT"))
            bench_die("the raw COPY failed");
        store_s += t1 - t0;
        raw_s += bench_now_s() - t1;
    }
    /* Both tables get their statistics, so that the raw SELECT has its best plan. */
    if (jn_pg_exec_script(conn, "ANALYZE bench_raw; ANALYZE records"))
        bench_die("cannot analyze");
    double store_rps = total / store_s, raw_rps = total / raw_s;
    printf("ingest: store %.0f records/s (%.2f s), raw COPY %.0f records/s (%.2f s), "
           "ratio %.2f\n",
           store_rps, store_s, raw_rps, raw_s, store_rps / raw_rps);

    /* Read: a page of 1,000 through the API, then the same page raw (a keyset SELECT of the
     * same rows and columns with libpq), alternating. The client reads what it needs (the
     * records, the next cursor) without a parser, as the raw side decodes no payload. */
    struct curl_slist *rh = curl_slist_append(NULL, auth);
    rh = curl_slist_append(rh, "Connection-Id: b1");
    rh = curl_slist_append(rh, "Provider-Config-Key: bench");
    char cursor[128] = "", scope[24] = "1";
    long got = 0;
    long long last = 0, raw_got = 0;
    double api_s = 0, select_s = 0;
    for (bool more = true; more;) {
        double t0 = bench_now_s();
        snprintf(url, sizeof url, "%s/records?model=Contact&limit=1000%s%s", gw,
                 cursor[0] ? "&cursor=" : "", cursor);
        if (http(c, "GET", url, rh, NULL, &resp) != 200)
            bench_die("GET /records failed");
        for (const char *p = resp.data; (p = strstr(p, "\"_nango_metadata\":")); p++)
            got++;
        /* next_cursor ends the body: look for it there. */
        const char *tail = resp.len > 256 ? resp.data + resp.len - 256 : resp.data;
        const char *next = strstr(tail, "],\"next_cursor\":\"");
        if (next) {
            next += strlen("],\"next_cursor\":\"");
            size_t n = strcspn(next, "\"");
            snprintf(cursor, sizeof cursor, "%.*s", (int)(n < sizeof cursor ? n : 0), next);
        }
        more = next != NULL;
        double t1 = bench_now_s();
        char after[24];
        snprintf(after, sizeof after, "%lld", last);
        const char *params[] = {scope, after};
        if (jn_pg_exec(conn,
                       "SELECT external_id, seq, payload, sealed, last_action, first_seen_at, "
                       "updated_at, deleted_at, pruned_at FROM bench_raw WHERE scope_id = $1 "
                       "AND seq > $2 ORDER BY seq LIMIT 1000",
                       2, params, &r))
            bench_die("the raw SELECT failed");
        int rows = PQntuples(r);
        raw_got += rows;
        if (rows)
            last = strtoll(PQgetvalue(r, rows - 1, 1), NULL, 10);
        PQclear(r);
        api_s += t1 - t0;
        select_s += bench_now_s() - t1;
    }
    if (got != total || raw_got != total)
        bench_die("a side did not return every record");
    double api_rps = total / api_s, select_rps = raw_got / select_s;
    printf("read:   GET /records %.0f records/s (%.2f s), raw SELECT %.0f records/s (%.2f s), "
           "ratio %.2f\n",
           api_rps, api_s, select_rps, select_s, api_rps / select_rps);

    for (int b = 0; b < batches; b++)
        json_object_put(parsed[b]);
    free(parsed);
    jn_buf_cleanup(&copy);
    jn_buf_cleanup(&resp);
    curl_slist_free_all(h);
    curl_slist_free_all(rh);
    curl_easy_cleanup(c);
    jn_sync_run_cleanup(&run);
    jn_pg_release(pool, conn);
    jn_pg_pool_free(pool);
    jn_crypto_keyring_cleanup(&ring);
    return 0;
}
