/*
 * job_calls.c - the provider-call journal of running jobs (see the header).
 */
#include "store/job_calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "store/pg.h"

void jn_job_call_cleanup(jn_job_call_t *c)
{
    json_object_put(c->headers);
    free(c->body);
    memset(c, 0, sizeof *c);
}

jn_err_t jn_job_calls_get(PGconn *conn, const char *job_id, int seq, const char *request_hash,
                          jn_job_call_t *out)
{
    memset(out, 0, sizeof *out);
    char n[16];
    snprintf(n, sizeof n, "%d", seq);
    const char *params[] = {job_id, n};
    PGresult *r = NULL;
    /* base64 without the line breaks PostgreSQL puts every 76 characters. */
    jn_err_t err = jn_pg_exec(conn,
                              "SELECT request_hash, status, headers::text, "
                              "translate(encode(body, 'base64'), E'\\n', '') "
                              "FROM job_calls WHERE job_id = $1::uuid AND seq = $2::int",
                              2, params, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return JN_ERR_NOT_FOUND;
    }
    if (strcmp(PQgetvalue(r, 0, 0), request_hash) != 0) {
        PQclear(r);
        return JN_ERR_CONFLICT;
    }
    out->status = atoi(PQgetvalue(r, 0, 1));
    out->headers = json_tokener_parse(PQgetvalue(r, 0, 2));
    if (!out->headers)
        out->headers = json_object_new_object();
    const char *b64 = PQgetvalue(r, 0, 3);
    size_t len = (size_t)PQgetlength(r, 0, 3);
    if (len) {
        size_t cap = len / 4 * 3 + 1;
        out->body = malloc(cap);
        if (!out->body)
            abort();
        if (jn_base64_decode(b64, len, (unsigned char *)out->body, cap, &out->body_len)) {
            PQclear(r);
            jn_job_call_cleanup(out);
            return JN_ERR_INTERNAL;
        }
        out->body[out->body_len] = '\0';
    }
    PQclear(r);
    return JN_OK;
}

jn_err_t jn_job_calls_put(PGconn *conn, const char *job_id, long long lease_token, int seq,
                          const char *request_hash, int status, json_object *headers,
                          const char *body, size_t body_len)
{
    char token[24], n[16], st[16];
    snprintf(token, sizeof token, "%lld", lease_token);
    snprintf(n, sizeof n, "%d", seq);
    snprintf(st, sizeof st, "%d", status);
    char *b64 = malloc(4 * ((body_len + 2) / 3) + 1);
    if (!b64)
        abort();
    jn_base64_encode((const unsigned char *)(body ? body : ""), body ? body_len : 0, b64);
    const char *params[] = {
        job_id, token,
        n,      request_hash,
        st,     headers ? json_object_to_json_string_ext(headers, JSON_C_TO_STRING_PLAIN) : "{}",
        b64};
    PGresult *r = NULL;
    jn_err_t err = jn_pg_exec(
        conn,
        "WITH owner AS (SELECT 1 FROM jobs WHERE id = $1::uuid AND lease_token = $2::bigint "
        "AND state = 'running'), "
        "ins AS (INSERT INTO job_calls (job_id, seq, request_hash, status, headers, body) "
        "SELECT $1::uuid, $3::int, $4, $5::int, $6::jsonb, decode($7, 'base64') FROM owner "
        "ON CONFLICT (job_id, seq) DO NOTHING RETURNING 1) "
        "SELECT (SELECT count(*) FROM owner)",
        7, params, &r);
    free(b64);
    if (err)
        return err;
    bool owned = strcmp(PQgetvalue(r, 0, 0), "0") != 0;
    PQclear(r);
    return owned ? JN_OK : JN_ERR_CONFLICT;
}
