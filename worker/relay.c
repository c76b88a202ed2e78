/*
 * relay.c - the outbox relay's threads (see relay.h).
 *
 * A cycle: read the heads of the shards whose lease is safely ours, split each row into
 * its changes, produce one event per change (each message's delivery report counts
 * against its row), wait until every report is in (renewing the leases meanwhile), delete
 * per shard the leading rows whose events were all acknowledged, and start again. Cycles
 * do not overlap: the next read would otherwise have to skip rows in flight, and one
 * cycle of up to JUNCTION_RELAY_BATCH_CHANGES events already keeps the producer's batches
 * full. Ordering rests on three things: a shard's rows are produced in id order; the
 * producer is idempotent and gapless, so within a partition nothing produced after a
 * refused message is written; and after any failure a shard's rows are published again
 * from the first row not wholly acknowledged.
 */
#include "relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/metrics.h"
#include "net/kafka.h"
#include "store/outbox.h"
#include "store/record_events.h"

#define TICK_FAST_MS 1000         /* ticks while below the share: taking shards quickly */
#define BACKLOG_EVERY_MS 10000    /* the backlog gauges' refresh */
#define ACK_SLICE_MS 100          /* waits on acknowledgements wake this often */
#define STOP_ACK_WAIT_MS 10000    /* a stopping relay waits this long for its cycle */
#define BATCH_BYTES (32L << 20)   /* stored outbox bytes one cycle reads */
#define MAX_REMEMBERED 512        /* event ids remembered as too large, per thread */
#define PRODUCER_SLACK (64 << 10) /* librdkafka's own limit sits above ours */
#define BLOCKED_RETRY_MS 60000    /* a row that cannot be published is tried again after */

typedef struct cycle cycle_t;

typedef struct {
    cycle_t *cycle;
    int row;
    int change;
    size_t size; /* key + value bytes */
} msg_t;

typedef struct {
    jn_record_change_t *changes;
    size_t count;
    int produced; /* messages produced for it */
    int acked;    /* delivered (under the cycle's lock) */
    int failed;
    bool complete; /* every change was produced */
} row_state_t;

struct cycle {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int outstanding;
    row_state_t *rows;
    msg_t *msgs;
    size_t nmsgs;
    /* the messages the broker refused for their size */
    msg_t too_large[MAX_REMEMBERED];
    int ntoo_large;
    bool failed;
};

typedef struct {
    char ids[MAX_REMEMBERED][37];
    int count, next;
} id_set_t;

typedef struct relay_thread relay_thread_t;

struct jn_relay {
    const jn_config_t *cfg;
    const jn_crypto_keyring_t *ring;
    jn_pg_pool_t *pg;
    jn_relay_options_t opts;
    char topic[160];
    atomic_bool stop;
    pthread_mutex_t lock; /* sleeps and the gauges' sums */
    pthread_cond_t wake;
    atomic_llong published;
    relay_thread_t *threads;
    int nthreads;
    jn_metric_t *m_events, *m_omitted, *m_failures, *m_rows, *m_lost;
    jn_metric_t *g_shards, *g_rows, *g_changes, *g_oldest, *g_blocked;
};

struct relay_thread {
    jn_relay_t *relay;
    int index;
    pthread_t thread;
    char owner[JN_OUTBOX_MAX_OWNER];
    jn_kafka_producer_t *producer;
    jn_outbox_leases_t leases;
    long long valid_until[JN_OUTBOX_SHARDS]; /* monotonic ms: when our lease may end */
    long long next_tick, next_backlog;
    long max_event;  /* lowered when the broker refuses less */
    id_set_t omit;   /* events to publish without payload */
    id_set_t alone;  /* events to publish on their own: refused once in a batch */
    int busy_shards; /* shards that had rows in the last cycle */
    int idle_ms;
    bool tick_failing;
    /* gauges of this thread, summed over threads */
    jn_outbox_backlog_t backlog;
    int blocked;
    /* per shard, the row that could not be published (0: none) and when to try it again:
     * trying it publishes the changes before the one that fails once more */
    long long blocked_row[JN_OUTBOX_SHARDS];
    long long blocked_retry[JN_OUTBOX_SHARDS];
    jn_buf_t key, value;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool stopping(const jn_relay_t *r)
{
    return atomic_load(&r->stop);
}

/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
static struct timespec realtime_in(int ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Sleeps up to ms, less when the relay stops. */
static void nap(jn_relay_t *r, int ms)
{
    struct timespec until = realtime_in(ms);
    pthread_mutex_lock(&r->lock);
    if (!stopping(r))
        pthread_cond_timedwait(&r->wake, &r->lock, &until);
    pthread_mutex_unlock(&r->lock);
}

static bool id_in(const id_set_t *s, const char *id)
{
    for (int i = 0; i < s->count; i++) {
        if (strcmp(s->ids[i], id) == 0)
            return true;
    }
    return false;
}

static void id_add(id_set_t *s, const char *id)
{
    if (id_in(s, id))
        return;
    snprintf(s->ids[s->next], sizeof s->ids[0], "%s", id);
    s->next = (s->next + 1) % MAX_REMEMBERED;
    if (s->count < MAX_REMEMBERED)
        s->count++;
}

static void id_remove(id_set_t *s, const char *id)
{
    for (int i = 0; i < s->count; i++) {
        if (strcmp(s->ids[i], id) == 0)
            s->ids[i][0] = '\0';
    }
}

/* The sums of every thread's gauges. */
static void update_gauges(jn_relay_t *r)
{
    long long shards = 0, rows = 0, changes = 0, blocked = 0;
    double oldest = 0;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nthreads; i++) {
        const relay_thread_t *t = &r->threads[i];
        shards += t->leases.count;
        rows += t->backlog.rows;
        changes += t->backlog.changes;
        blocked += t->blocked;
        if (t->backlog.oldest_s > oldest)
            oldest = t->backlog.oldest_s;
    }
    pthread_mutex_unlock(&r->lock);
    jn_metric_set(r->g_shards, shards);
    jn_metric_set(r->g_rows, rows);
    jn_metric_set(r->g_changes, changes);
    jn_metric_set(r->g_oldest, (int64_t)oldest);
    jn_metric_set(r->g_blocked, blocked);
}

static PGconn *db(relay_thread_t *t)
{
    jn_err_t err;
    PGconn *conn = jn_pg_acquire(t->relay->pg, 5000, &err);
    if (!conn)
        jn_log_debug("relay", "%s: no database connection: %s", t->owner, jn_err_str(err));
    return conn;
}

/* Renews, gives back and takes leases (store/outbox.h). */
static void tick(relay_thread_t *t, bool may_release)
{
    jn_relay_t *r = t->relay;
    long long started = now_ms();
    PGconn *conn = db(t);
    jn_outbox_leases_t next = t->leases;
    jn_err_t err = conn ? jn_outbox_tick(conn, t->owner, r->opts.lease_s, may_release, &next)
                        : JN_ERR_DB_UNAVAILABLE;
    if (conn)
        jn_pg_release(r->pg, conn);
    if (err) {
        if (!t->tick_failing)
            jn_log_warn("relay", "%s: cannot renew its shard leases: %s", t->owner,
                        jn_err_str(err));
        t->tick_failing = true;
        t->next_tick = now_ms() + TICK_FAST_MS;
        return;
    }
    t->tick_failing = false;
    pthread_mutex_lock(&r->lock);
    t->leases = next;
    pthread_mutex_unlock(&r->lock);
    memset(t->valid_until, 0, sizeof t->valid_until);
    for (int i = 0; i < next.count; i++)
        t->valid_until[next.held[i].shard] = started + r->opts.lease_s * 1000LL;
    if (next.lost) {
        jn_metric_add(r->m_lost, next.lost);
        jn_log_warn("relay", "%s: %d shard lease(s) were taken over after they expired", t->owner,
                    next.lost);
    }
    if (next.acquired || next.released || next.lost)
        jn_log_info("relay", "%s: holds %d of %d shards (share %d, %d relay(s) alive)", t->owner,
                    next.count, JN_OUTBOX_SHARDS, next.share, next.relays);
    t->next_tick =
        now_ms() + (next.count < next.share ? TICK_FAST_MS : r->opts.lease_s * 1000LL / 3);
    update_gauges(r);
}

static void refresh_backlog(relay_thread_t *t)
{
    t->next_backlog = now_ms() + BACKLOG_EVERY_MS;
    PGconn *conn = db(t);
    if (!conn)
        return;
    jn_outbox_backlog_t b;
    jn_err_t err = jn_outbox_backlog(conn, t->leases.held, t->leases.count, &b);
    jn_pg_release(t->relay->pg, conn);
    if (err)
        return;
    pthread_mutex_lock(&t->relay->lock);
    t->backlog = b;
    pthread_mutex_unlock(&t->relay->lock);
    update_gauges(t->relay);
}

static jn_kafka_producer_t *make_producer(relay_thread_t *t)
{
    const jn_relay_t *r = t->relay;
    char client_id[256];
    snprintf(client_id, sizeof client_id, "%s-relay-%d", r->cfg->instance_id, t->index);
    /* Throughput first: a cycle produces thousands of events and waits for all of them,
     * so a short linger fills batches; messages never time out (a Kafka outage holds the
     * cycle, it loses nothing); gapless, so a refused message never leaves a later one of
     * its partition written before it. */
    jn_kafka_producer_options_t o = {
        .linger_ms = 5,
        .message_timeout_ms = 0,
        .max_message_bytes = r->opts.max_event_bytes + PRODUCER_SLACK,
        .gapless = true,
    };
    return jn_kafka_producer_new_with(r->cfg, client_id, &o);
}

/* ---- a cycle ---- */

static void delivered(jn_err_t err, void *opaque)
{
    msg_t *m = opaque;
    cycle_t *c = m->cycle;
    pthread_mutex_lock(&c->lock);
    row_state_t *row = &c->rows[m->row];
    if (err == JN_OK) {
        row->acked++;
    } else {
        row->failed++;
        c->failed = true;
        if (err == JN_ERR_TOO_LARGE && c->ntoo_large < MAX_REMEMBERED)
            c->too_large[c->ntoo_large++] = *m;
    }
    if (--c->outstanding == 0)
        pthread_cond_broadcast(&c->done);
    pthread_mutex_unlock(&c->lock);
}

/* Waits until no message of c is outstanding; renews leases meanwhile (without giving any
 * back). False when it gave up: the relay stops, or the producer failed for good. */
static bool wait_acks(relay_thread_t *t, cycle_t *c)
{
    long long stop_deadline = 0;
    pthread_mutex_lock(&c->lock);
    while (c->outstanding > 0) {
        struct timespec until = realtime_in(ACK_SLICE_MS);
        pthread_cond_timedwait(&c->done, &c->lock, &until);
        if (c->outstanding == 0)
            break;
        pthread_mutex_unlock(&c->lock);
        bool give_up = false;
        if (stopping(t->relay)) {
            if (!stop_deadline)
                stop_deadline = now_ms() + STOP_ACK_WAIT_MS;
            give_up = now_ms() > stop_deadline;
        }
        char why[256];
        if (jn_kafka_producer_failed(t->producer, why, sizeof why)) {
            jn_log_warn("relay", "%s: the producer failed (%s); its events go again", t->owner,
                        why);
            give_up = true;
        }
        if (!give_up && now_ms() >= t->next_tick)
            tick(t, false);
        pthread_mutex_lock(&c->lock);
        if (give_up && c->outstanding > 0) {
            pthread_mutex_unlock(&c->lock);
            return false;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return true;
}

/* The result of producing one event. */
typedef enum { SENT, BLOCKED, ABORT } produce_t;

/* Produces change k of row i; alone: on its own, acknowledged before returning. */
static produce_t produce_one(relay_thread_t *t, cycle_t *c, const jn_outbox_row_t *row, int i,
                             size_t k, bool *omitted_out)
{
    jn_relay_t *r = t->relay;
    const jn_record_change_t *ch = &c->rows[i].changes[k];
    bool alone = id_in(&t->alone, ch->event_id);
    bool omit = id_in(&t->omit, ch->event_id);
    for (int attempt = 0; attempt < 2; attempt++) {
        bool omitted = false;
        jn_err_t err = jn_record_event_encode(row, ch, r->ring, (size_t)t->max_event, omit, &t->key,
                                              &t->value, &omitted);
        if (err) {
            jn_log_error("relay",
                         "%s: outbox row %lld (%s/%s %s) cannot be published: %s: event %s; "
                         "its shard waits, and the row is tried again in a minute",
                         t->owner, row->id, row->integration, row->connection, row->model,
                         err == JN_ERR_INTERNAL ? "a sealed payload does not open"
                                                : jn_err_str(err),
                         ch->event_id);
            return BLOCKED;
        }
        *omitted_out = omitted;
        if (alone && !wait_acks(t, c))
            return ABORT;
        if (alone && c->failed)
            return ABORT;
        msg_t *m = &c->msgs[c->nmsgs];
        *m = (msg_t){c, i, (int)k, t->key.len + t->value.len};
        const char *headers[] = {JN_RECORD_EVENT_ID_HEADER, ch->event_id,
                                 JN_RECORD_EVENT_VERSION_HEADER, "1", NULL};
        pthread_mutex_lock(&c->lock);
        c->outstanding++;
        pthread_mutex_unlock(&c->lock);
        for (;;) {
            err = jn_kafka_produce_with_headers(t->producer, r->topic, t->key.data, t->key.len,
                                                t->value.data, t->value.len, headers, delivered, m);
            if (err != JN_ERR_KAFKA_UNAVAILABLE || stopping(r))
                break;
            nap(r, 5); /* the local queue is full: librdkafka drains it */
        }
        if (err) {
            pthread_mutex_lock(&c->lock);
            c->outstanding--;
            pthread_mutex_unlock(&c->lock);
        }
        if (err == JN_ERR_TOO_LARGE && !omit) {
            omit = true; /* above librdkafka's own limit: without payload */
            continue;
        }
        if (err)
            return ABORT;
        c->nmsgs++;
        c->rows[i].produced++;
        if (!alone)
            return SENT;
        /* Refused on its own for its size: the broker's limit is below ours. */
        if (!wait_acks(t, c))
            return ABORT;
        id_remove(&t->alone, ch->event_id);
        pthread_mutex_lock(&c->lock);
        bool refused = c->ntoo_large > 0 && c->too_large[c->ntoo_large - 1].change == (int)k &&
                       c->too_large[c->ntoo_large - 1].row == i;
        pthread_mutex_unlock(&c->lock);
        if (refused) {
            long limit = (long)m->size - 1;
            if (limit < t->max_event) {
                jn_log_warn("relay",
                            "%s: Kafka refused a %zu-byte event: events above %ld bytes now "
                            "go without their payload (JUNCTION_RELAY_MAX_EVENT_BYTES is "
                            "above the topic's max.message.bytes)",
                            t->owner, m->size, limit);
                t->max_event = limit;
            }
            id_add(&t->omit, ch->event_id);
            return ABORT; /* the producer failed for good (gapless): the next cycle goes on */
        }
        return SENT;
    }
    return ABORT;
}

/* One cycle over the leased shards in leases; returns the events acknowledged, or -1. */
static long long cycle_run(relay_thread_t *t, const jn_outbox_lease_t *leases, int n)
{
    jn_relay_t *r = t->relay;
    int busy = t->busy_shards > 0 ? t->busy_shards : n;
    int per_shard = r->opts.batch_changes / busy;
    PGconn *conn = db(t);
    if (!conn)
        return -1;
    jn_outbox_batch_t batch;
    jn_err_t err =
        jn_outbox_read(conn, leases, n, per_shard > 0 ? per_shard : 1, BATCH_BYTES / busy, &batch);
    jn_pg_release(r->pg, conn);
    if (err)
        return -1;
    if (batch.count == 0) {
        jn_outbox_batch_free(&batch);
        return 0;
    }
    cycle_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->done, NULL);
    c->rows = calloc((size_t)batch.count, sizeof *c->rows);
    if (!c->rows)
        abort();

    /* Split every row first: the messages' array is then sized once, and its entries,
     * which the delivery reports point to, never move. */
    size_t total = 0;
    int busy_now = 0;
    for (int i = 0; i < batch.count; i++) {
        char why[256];
        if (i == 0 || batch.shards[i] != batch.shards[i - 1])
            busy_now++;
        if (jn_record_changes_parse(batch.rows[i].changes, batch.rows[i].changes_len,
                                    &c->rows[i].changes, &c->rows[i].count, why,
                                    sizeof why) != JN_OK) {
            c->rows[i].changes = NULL;
            c->rows[i].count = (size_t)-1;
            int sh = batch.shards[i];
            if (t->blocked_row[sh] != batch.rows[i].id)
                jn_log_error("relay", "%s: outbox row %lld cannot be read: %s; its shard waits",
                             t->owner, batch.rows[i].id, why);
            t->blocked_row[sh] = batch.rows[i].id;
            t->blocked_retry[sh] = now_ms() + BLOCKED_RETRY_MS;
            continue;
        }
        total += c->rows[i].count;
    }
    t->busy_shards = busy_now;
    c->msgs = calloc(total ? total : 1, sizeof *c->msgs);
    if (!c->msgs)
        abort();

    /* Produce, shard by shard in id order; a shard stops at a row it cannot publish. */
    long long omitted = 0;
    int blocked = 0, blocked_shard = -1;
    bool aborted = false;
    for (int i = 0; i < batch.count && !aborted && !stopping(r); i++) {
        int sh = batch.shards[i];
        if (sh == blocked_shard)
            continue;
        row_state_t *row = &c->rows[i];
        if (row->count == (size_t)-1 ||
            (t->blocked_row[sh] == batch.rows[i].id && now_ms() < t->blocked_retry[sh])) {
            blocked++;
            blocked_shard = sh;
            continue;
        }
        size_t k = 0;
        for (; k < row->count; k++) {
            bool o = false;
            produce_t p = produce_one(t, c, &batch.rows[i], i, k, &o);
            if (p == BLOCKED) {
                blocked++;
                blocked_shard = sh;
                t->blocked_row[sh] = batch.rows[i].id;
                t->blocked_retry[sh] = now_ms() + BLOCKED_RETRY_MS;
                break;
            }
            if (p == ABORT) {
                aborted = true;
                break;
            }
            omitted += o;
        }
        row->complete = k == row->count;
    }
    bool all_in = wait_acks(t, c);

    /* Per shard, the leading rows whose every event Kafka acknowledged. */
    int *del_shards = calloc((size_t)batch.count, sizeof *del_shards);
    long long *del_ids = calloc((size_t)batch.count, sizeof *del_ids);
    if (!del_shards || !del_ids)
        abort();
    int ndel = 0;
    long long acked = 0;
    pthread_mutex_lock(&c->lock);
    int stop_shard = -1;
    for (int i = 0; i < batch.count; i++) {
        row_state_t *row = &c->rows[i];
        acked += row->acked;
        if (batch.shards[i] == stop_shard)
            continue;
        if (row->complete && row->failed == 0 && row->acked == row->produced) {
            del_shards[ndel] = batch.shards[i];
            del_ids[ndel++] = batch.rows[i].id;
        } else {
            stop_shard = batch.shards[i];
        }
    }
    for (int i = 0; i < c->ntoo_large; i++) {
        const msg_t *m = &c->too_large[i];
        id_add(&t->alone, c->rows[m->row].changes[m->change].event_id);
    }
    bool failed = c->failed;
    pthread_mutex_unlock(&c->lock);

    long long deleted = 0;
    if (ndel) {
        conn = db(t);
        err = conn
                  ? jn_outbox_delete(conn, t->owner, leases, n, del_shards, del_ids, ndel, &deleted)
                  : JN_ERR_DB_UNAVAILABLE;
        if (conn)
            jn_pg_release(r->pg, conn);
        if (err || deleted < ndel)
            t->next_tick = 0; /* a lease moved, or the database failed: look again */
    }
    free(del_shards);
    free(del_ids);

    jn_metric_add(r->m_events, acked);
    jn_metric_add(r->m_omitted, omitted);
    jn_metric_add(r->m_rows, deleted);
    atomic_fetch_add(&r->published, acked);
    if (failed)
        jn_metric_inc(r->m_failures);
    pthread_mutex_lock(&r->lock);
    t->blocked = blocked;
    pthread_mutex_unlock(&r->lock);

    /* A producer that failed for good is replaced; its reports will not come, so the
     * cycle is freed only once it is gone. */
    char why[256];
    if (!all_in || jn_kafka_producer_failed(t->producer, why, sizeof why)) {
        jn_kafka_producer_free(t->producer, 0);
        t->producer = NULL;
    }
    for (int i = 0; i < batch.count; i++)
        free(c->rows[i].changes);
    free(c->rows);
    free(c->msgs);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->done);
    free(c);
    jn_outbox_batch_free(&batch);
    return failed && acked == 0 ? -1 : acked;
}

static void *relay_main(void *arg)
{
    relay_thread_t *t = arg;
    jn_relay_t *r = t->relay;
    while (!stopping(r)) {
        if (!t->producer && !(t->producer = make_producer(t))) {
            nap(r, 1000);
            continue;
        }
        long long now = now_ms();
        if (now >= t->next_tick)
            tick(t, true);
        if (now >= t->next_backlog)
            refresh_backlog(t);
        /* Only shards whose lease has a third of its time left: a lease that ran out
         * while we were cut off may already be another relay's. */
        jn_outbox_lease_t usable[JN_OUTBOX_SHARDS];
        int n = 0;
        long long margin = r->opts.lease_s * 1000LL / 3;
        for (int i = 0; i < t->leases.count; i++) {
            if (t->valid_until[t->leases.held[i].shard] - now_ms() > margin)
                usable[n++] = t->leases.held[i];
        }
        if (n == 0) {
            long long wait = t->next_tick - now_ms();
            nap(r, wait < 10 ? 10 : wait > 1000 ? 1000 : (int)wait);
            continue;
        }
        long long done = cycle_run(t, usable, n);
        if (done > 0) {
            t->idle_ms = 0;
            continue;
        }
        /* Nothing to do (or a failure): wait a little longer each time. */
        t->idle_ms = t->idle_ms ? t->idle_ms * 2 : 5;
        if (t->idle_ms > r->opts.idle_poll_ms)
            t->idle_ms = r->opts.idle_poll_ms;
        nap(r, t->idle_ms);
    }
    jn_kafka_producer_free(t->producer, 5000);
    t->producer = NULL;
    PGconn *conn = db(t);
    if (conn) {
        if (jn_outbox_leave(conn, t->owner, &t->leases) != JN_OK)
            jn_log_warn("relay",
                        "%s: could not give its shards back; they move when the "
                        "lease expires",
                        t->owner);
        jn_pg_release(r->pg, conn);
    }
    return NULL;
}

void jn_relay_options_from_config(const jn_config_t *cfg, jn_relay_options_t *opts)
{
    opts->threads = cfg->relay_threads;
    opts->lease_s = cfg->relay_lease_s;
    opts->max_event_bytes = cfg->relay_max_event_bytes;
    opts->batch_changes = cfg->relay_batch_changes;
    opts->idle_poll_ms = 200;
}

jn_relay_t *jn_relay_start(const jn_config_t *cfg, const jn_crypto_keyring_t *ring,
                           jn_pg_pool_t *pg, const jn_relay_options_t *opts)
{
    if (opts->threads <= 0)
        return NULL;
    jn_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->cfg = cfg;
    r->ring = ring;
    r->pg = pg;
    r->opts = *opts;
    if (r->opts.idle_poll_ms <= 0)
        r->opts.idle_poll_ms = 200;
    jn_kafka_topic_name(cfg, "records", r->topic, sizeof r->topic);
    atomic_init(&r->stop, false);
    atomic_init(&r->published, 0);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    r->m_events = jn_metrics_counter("jn_relay_events_published_total",
                                     "Record-change events Kafka acknowledged", NULL);
    r->m_omitted = jn_metrics_counter("jn_relay_payloads_omitted_total",
                                      "Events published without their payload (too large)", NULL);
    r->m_failures = jn_metrics_counter("jn_relay_failed_cycles_total",
                                       "Publishing cycles in which Kafka refused an event", NULL);
    r->m_rows =
        jn_metrics_counter("jn_relay_outbox_rows_deleted_total",
                           "Outbox rows deleted once all their events were published", NULL);
    r->m_lost =
        jn_metrics_counter("jn_relay_leases_lost_total",
                           "Shard leases taken over by another relay after they expired", NULL);
    r->g_shards =
        jn_metrics_gauge("jn_relay_shards_held", "Outbox shards this process holds", NULL);
    r->g_rows = jn_metrics_gauge("jn_relay_backlog_rows",
                                 "Outbox rows waiting in the shards this process holds", NULL);
    r->g_changes =
        jn_metrics_gauge("jn_relay_backlog_changes",
                         "Record changes waiting in the shards this process holds", NULL);
    r->g_oldest =
        jn_metrics_gauge("jn_relay_backlog_oldest_seconds",
                         "Age of the oldest outbox row in the shards this process holds", NULL);
    r->g_blocked = jn_metrics_gauge(
        "jn_relay_blocked_rows", "Outbox rows that cannot be published (their shard waits)", NULL);
    r->nthreads = opts->threads;
    r->threads = calloc((size_t)r->nthreads, sizeof *r->threads);
    if (!r->threads)
        abort();
    for (int i = 0; i < r->nthreads; i++) {
        relay_thread_t *t = &r->threads[i];
        t->relay = r;
        t->index = i;
        t->max_event = opts->max_event_bytes;
        snprintf(t->owner, sizeof t->owner, "%.160s/relay-%d", cfg->instance_id, i);
        jn_buf_init(&t->key, 8 * 1024);
        jn_buf_init(&t->value, (size_t)opts->max_event_bytes + 64 * 1024);
        t->producer = make_producer(t);
        if (!t->producer) {
            for (int j = 0; j <= i; j++) {
                jn_kafka_producer_free(r->threads[j].producer, 0);
                jn_buf_cleanup(&r->threads[j].key);
                jn_buf_cleanup(&r->threads[j].value);
            }
            free(r->threads);
            free(r);
            return NULL;
        }
    }
    for (int i = 0; i < r->nthreads; i++) {
        if (pthread_create(&r->threads[i].thread, NULL, relay_main, &r->threads[i]) != 0)
            abort();
    }
    jn_log_info("relay", "%d relay(s) publishing to %s", r->nthreads, r->topic);
    return r;
}

long long jn_relay_published(const jn_relay_t *r)
{
    return r ? atomic_load(&r->published) : 0;
}

void jn_relay_stop(jn_relay_t *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    atomic_store(&r->stop, true);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    for (int i = 0; i < r->nthreads; i++) {
        pthread_join(r->threads[i].thread, NULL);
        jn_buf_cleanup(&r->threads[i].key);
        jn_buf_cleanup(&r->threads[i].value);
    }
    update_gauges(r);
    free(r->threads);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    free(r);
}
