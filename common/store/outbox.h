/*
 * outbox.h - the relays' side of the records outbox (record_outbox, migrations 0013 and
 * 0045, docs/records.md#the-outbox): membership, shard leases fenced by tokens, the head
 * of each leased shard, deleting what Kafka acknowledged, and the backlog.
 *
 * The outbox is spread over JN_OUTBOX_SHARDS shards by scope, so one record's changes are
 * in one shard, in commit order by id. A relay holds whole shards under a lease
 * (record_outbox_shards: owner, lease_until, lease_token); taking a shard bumps its token,
 * and every delete a relay makes is fenced by the token it took the shard with, so a relay
 * that stalled past its lease can publish again (a duplicate) but never deletes what its
 * successor owns. Relays register in record_relays and each keeps ceil(shards / relays
 * alive): a new relay gets shards from the others within a few ticks, and the shards of a
 * relay that died are taken when its lease expires.
 *
 * Every function takes a connection that is not inside a transaction and manages its own;
 * one connection per thread, as libpq's.
 */
#ifndef JN_OUTBOX_H
#define JN_OUTBOX_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "core/err.h"
#include "store/record_events.h"

#define JN_OUTBOX_SHARDS 64
#define JN_OUTBOX_MAX_OWNER 200

typedef struct {
    int shard;
    long long token; /* the fence: the lease_token the shard was taken with */
} jn_outbox_lease_t;

/* What a relay holds, kept between ticks. Plain data. */
typedef struct {
    jn_outbox_lease_t held[JN_OUTBOX_SHARDS]; /* ordered by shard */
    int count;
    int relays; /* relays alive at the last tick, this one included */
    int share;  /* what this relay may hold: ceil(shards / relays) */
    /* by the last tick */
    int acquired, released, lost;
} jn_outbox_leases_t;

/* One maintenance step of relay owner, in one transaction: refreshes its membership (for
 * lease_s seconds; relays unseen for a minute are removed), renews its leases (a lease
 * not renewed was taken over after it expired: it leaves l and counts in l->lost), gives
 * back the shards beyond its share when may_release (the caller has nothing in flight for
 * them), and takes free or expired shards up to its share (FOR UPDATE SKIP LOCKED, each
 * with a new token). */
jn_err_t jn_outbox_tick(PGconn *conn, const char *owner, int lease_s, bool may_release,
                        jn_outbox_leases_t *l);

/* Gives back every shard l holds and the membership: a relay that stops hands its shards
 * on at once instead of after its lease. l is emptied. */
jn_err_t jn_outbox_leave(PGconn *conn, const char *owner, jn_outbox_leases_t *l);

/* Rows read from the heads of leased shards. */
typedef struct {
    PGresult *result;
    jn_outbox_row_t *rows; /* strings point into result */
    int *shards;           /* each row's shard */
    int count;
} jn_outbox_batch_t;

/* Reads the head of each of the count shards in leases, in id order: per shard, rows
 * while the changes before them stay under max_changes and their stored bytes under
 * max_bytes, at least one row. A shard's head is read from the start every time: a row
 * that committed after a higher id was published is found next time, never skipped. */
jn_err_t jn_outbox_read(PGconn *conn, const jn_outbox_lease_t *leases, int count, int max_changes,
                        long max_bytes, jn_outbox_batch_t *out);
void jn_outbox_batch_free(jn_outbox_batch_t *b);

/* Deletes the n published rows (shards[i], ids[i]) of relay owner, each only while its
 * shard's token is still the one in leases (count of them): *deleted receives how many
 * went. Rows of a shard that was taken over stay, for its new owner to publish again. */
jn_err_t jn_outbox_delete(PGconn *conn, const char *owner, const jn_outbox_lease_t *leases,
                          int count, const int *shards, const long long *ids, int n,
                          long long *deleted);

/* What waits in the given shards: rows, changes, and the age of the oldest row (seconds,
 * 0 when none). */
typedef struct {
    long long rows, changes;
    double oldest_s;
} jn_outbox_backlog_t;
jn_err_t jn_outbox_backlog(PGconn *conn, const jn_outbox_lease_t *leases, int count,
                           jn_outbox_backlog_t *out);

#endif
