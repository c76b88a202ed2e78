/*
 * job_calls.h - the journal of a job's provider calls (migration 0021): what lets a run
 * taken over from a dead worker skip the side effects its predecessor already caused.
 *
 * A run numbers its journaled calls 1, 2, 3... (calls that change something; reads are
 * simply made again). Before making call n it looks up entry n: an entry with the same
 * request hash is the answer (the call is not made again); an entry with another hash
 * means the script took another path, and the journal no longer applies to this run;
 * no entry means the call is new: it is made and then recorded, fenced by the run's
 * lease token. A call cut short by the worker's death has no entry and is made again:
 * that, and a script whose requests differ between runs (a timestamp in a body), are the
 * only ways a side effect is repeated. Finishing the attempt deletes the journal.
 */
#ifndef JN_JOB_CALLS_H
#define JN_JOB_CALLS_H

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "core/err.h"

/* Bodies larger than this are not journaled (the call would be made again). */
#define JN_JOB_CALL_MAX_BODY (1u << 20)

typedef struct {
    int status;
    json_object *headers; /* owned */
    char *body;           /* owned, NUL-terminated; NULL when empty */
    size_t body_len;
} jn_job_call_t;

void jn_job_call_cleanup(jn_job_call_t *c);

/* Entry seq of job_id. JN_OK with *out when it exists with request_hash; JN_ERR_CONFLICT
 * when it exists with another hash; JN_ERR_NOT_FOUND when there is none. */
jn_err_t jn_job_calls_get(PGconn *conn, const char *job_id, int seq, const char *request_hash,
                          jn_job_call_t *out);

/* Records entry seq for the run holding lease_token. JN_ERR_CONFLICT when the lease is
 * no longer that run's (nothing written); an existing entry is left as it is. */
jn_err_t jn_job_calls_put(PGconn *conn, const char *job_id, long long lease_token, int seq,
                          const char *request_hash, int status, json_object *headers,
                          const char *body, size_t body_len);

#endif
