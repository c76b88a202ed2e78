/*
 * pipeline.c - per job kind: a poll thread, a queue, job threads, and an offset tracker
 * that stores each partition's low-water mark (see the header).
 *
 * Locking: one mutex per lane guards its queue, its counters and its offset tracker. The
 * consumer is used only by the lane's poll thread; job threads and delivery reports mark
 * offsets done under the lock, and the poll thread stores the new low-water marks.
 */
#include "pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "net/job_message.h"
#include "net/kafka.h"
#include "net/service.h"

#define LANES JN_JOB_KINDS
#define POLL_MS 100
#define DLQ_BACKOFF_MIN_MS 100
#define DLQ_BACKOFF_MAX_MS 30000
/* Jobs a lane holds waiting, whoever they belong to; past it fetching pauses. */
#define QUEUE_MAX 10000

typedef struct {
    int partition;
    long long *inflight; /* sorted */
    size_t n, cap;
    long long next;   /* one past the highest offset done */
    long long stored; /* last stored; -1 none */
} part_t;

typedef struct item {
    struct item *next;
    jn_job_ref_t job;
    int partition;
    long long offset;
} item_t;

typedef struct dlq {
    struct dlq *next;
    struct lane *lane;
    int partition;
    long long offset;
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    char reason[256];
    int tries;
    long long due_ms;
} dlq_t;

typedef struct lane {
    jn_pipeline_t *p;
    jn_job_kind_t kind;
    char topic[160];
    jn_kafka_consumer_t *consumer;
    pthread_t poller;
    pthread_t *threads;
    int nthreads;
    pthread_mutex_t lock;
    pthread_cond_t work;
    pthread_cond_t idle;
    item_t *head, *tail;
    int queued, busy;
    int env_cap; /* jobs of one environment running at once in this lane */
    /* Running jobs per environment (few environments at a time: a short list). */
    struct env_running {
        long long env_id;
        int n;
    } * envs;
    size_t nenvs, envs_cap;
    bool paused;
    bool done; /* no more work: job threads exit when the queue is empty */
    part_t *parts;
    size_t nparts;
    dlq_t *dlq_waiting; /* failed dead-letter writes to try again */
    jn_metric_t *dead_lettered, *jobs_run, *running;
} lane_t;

struct jn_pipeline {
    jn_engine_t *engine;
    jn_pipeline_options_t opts;
    lane_t lanes[LANES];
    atomic_bool stop_fetch;
    atomic_bool abort_jobs;
    char dlq_topic[160];
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- offsets (lane lock held) ---- */

static part_t *part_of(lane_t *l, int partition)
{
    for (size_t i = 0; i < l->nparts; i++) {
        if (l->parts[i].partition == partition)
            return &l->parts[i];
    }
    l->parts = realloc(l->parts, (l->nparts + 1) * sizeof *l->parts);
    if (!l->parts)
        abort();
    part_t *p = &l->parts[l->nparts++];
    memset(p, 0, sizeof *p);
    p->partition = partition;
    p->stored = -1;
    return p;
}

static void offset_begin(lane_t *l, int partition, long long offset)
{
    part_t *p = part_of(l, partition);
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->inflight = realloc(p->inflight, p->cap * sizeof *p->inflight);
        if (!p->inflight)
            abort();
    }
    size_t i = p->n;
    while (i > 0 && p->inflight[i - 1] > offset) {
        p->inflight[i] = p->inflight[i - 1];
        i--;
    }
    p->inflight[i] = offset;
    p->n++;
}

static void offset_done(lane_t *l, int partition, long long offset)
{
    part_t *p = part_of(l, partition);
    for (size_t i = 0; i < p->n; i++) {
        if (p->inflight[i] == offset) {
            memmove(&p->inflight[i], &p->inflight[i + 1], (p->n - i - 1) * sizeof *p->inflight);
            p->n--;
            break;
        }
    }
    if (offset + 1 > p->next)
        p->next = offset + 1;
}

/* Stores every partition's low-water mark that moved. Poll thread only. */
static void store_offsets(lane_t *l)
{
    long long marks[256];
    int parts[256];
    int n = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->nparts && n < 256; i++) {
        part_t *p = &l->parts[i];
        long long mark = p->n ? p->inflight[0] : p->next;
        if (mark > p->stored && mark > 0) {
            p->stored = mark;
            marks[n] = mark;
            parts[n++] = p->partition;
        }
    }
    pthread_mutex_unlock(&l->lock);
    for (int i = 0; i < n; i++)
        jn_kafka_consumer_store(l->consumer, l->topic, parts[i], marks[i]);
}

/* ---- the dead-letter topic ---- */

static void dlq_send(dlq_t *d);

static void dlq_delivered(jn_err_t err, void *opaque)
{
    dlq_t *d = opaque;
    lane_t *l = d->lane;
    if (err && jn_err_retryable(err)) {
        /* Kafka is away: try again later, with a growing pause; the offset waits. */
        d->tries++;
        long long wait = DLQ_BACKOFF_MIN_MS;
        for (int i = 1; i < d->tries && wait < DLQ_BACKOFF_MAX_MS; i++)
            wait *= 2;
        d->due_ms = now_ms() + (wait > DLQ_BACKOFF_MAX_MS ? DLQ_BACKOFF_MAX_MS : wait);
        pthread_mutex_lock(&l->lock);
        d->next = l->dlq_waiting;
        l->dlq_waiting = d;
        pthread_mutex_unlock(&l->lock);
        return;
    }
    if (err)
        jn_log_error("pipeline", "%s[%d]@%lld could not be dead-lettered (%s); it is skipped: %s",
                     l->topic, d->partition, d->offset, jn_err_str(err), d->reason);
    else
        jn_metric_inc(l->dead_lettered);
    pthread_mutex_lock(&l->lock);
    offset_done(l, d->partition, d->offset);
    pthread_mutex_unlock(&l->lock);
    free(d->key);
    free(d->value);
    free(d);
}

static void dlq_send(dlq_t *d)
{
    lane_t *l = d->lane;
    char partition[16], offset[24];
    snprintf(partition, sizeof partition, "%d", d->partition);
    snprintf(offset, sizeof offset, "%lld", d->offset);
    const char *headers[] = {"junction-dlq-reason",
                             d->reason,
                             "junction-dlq-topic",
                             l->topic,
                             "junction-dlq-partition",
                             partition,
                             "junction-dlq-offset",
                             offset,
                             NULL};
    jn_err_t err =
        jn_kafka_produce_with_headers(l->p->engine->producer, l->p->dlq_topic, d->key, d->key_len,
                                      d->value, d->value_len, headers, dlq_delivered, d);
    if (err)
        dlq_delivered(err, d); /* not even queued: the same outcome as a failed delivery */
}

static void dead_letter(lane_t *l, const jn_kafka_message_t *msg, const char *reason)
{
    jn_log_warn("pipeline", "%s[%d]@%lld: %s; sending it to the dead-letter topic", msg->topic,
                msg->partition, msg->offset, reason);
    dlq_t *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    d->lane = l;
    d->partition = msg->partition;
    d->offset = msg->offset;
    snprintf(d->reason, sizeof d->reason, "%s", reason);
    d->key_len = msg->key_len;
    d->value_len = msg->value_len;
    d->key = malloc(msg->key_len + 1);
    d->value = malloc(msg->value_len + 1);
    if (!d->key || !d->value)
        abort();
    if (msg->key_len)
        memcpy(d->key, msg->key, msg->key_len);
    if (msg->value_len)
        memcpy(d->value, msg->value, msg->value_len);
    pthread_mutex_lock(&l->lock);
    offset_begin(l, msg->partition, msg->offset);
    pthread_mutex_unlock(&l->lock);
    dlq_send(d);
}

/* Sends again the dead-letter writes whose pause is over. Poll thread. */
static void dlq_retry_due(lane_t *l)
{
    long long now = now_ms();
    pthread_mutex_lock(&l->lock);
    dlq_t *due = NULL;
    for (dlq_t **pp = &l->dlq_waiting; *pp;) {
        dlq_t *d = *pp;
        if (d->due_ms <= now) {
            *pp = d->next;
            d->next = due;
            due = d;
        } else {
            pp = &d->next;
        }
    }
    pthread_mutex_unlock(&l->lock);
    while (due) {
        dlq_t *next = due->next;
        dlq_send(due);
        due = next;
    }
}

/* ---- job threads ---- */

/* Jobs of env_id running in this lane now. Called with the lock held. */
static int env_running(const lane_t *l, long long env_id)
{
    for (size_t i = 0; i < l->nenvs; i++)
        if (l->envs[i].env_id == env_id)
            return l->envs[i].n;
    return 0;
}

static void env_add(lane_t *l, long long env_id, int delta)
{
    size_t i = 0;
    while (i < l->nenvs && l->envs[i].env_id != env_id)
        i++;
    if (i == l->nenvs) {
        if (l->nenvs == l->envs_cap) {
            l->envs_cap = l->envs_cap ? l->envs_cap * 2 : 8;
            l->envs = realloc(l->envs, l->envs_cap * sizeof *l->envs);
            if (!l->envs)
                abort();
        }
        l->envs[l->nenvs++] = (struct env_running){env_id, 0};
    }
    l->envs[i].n += delta;
    if (l->envs[i].n == 0)
        l->envs[i] = l->envs[--l->nenvs];
}

/* Takes the first queued job whose environment is below its share of the lane's threads,
 * so that one tenant's backlog of long jobs never holds every thread while another
 * tenant's job waits behind it (within an environment, jobs keep their order). NULL when
 * every queued job's environment is at its share. Called with the lock held. */
static item_t *take_fair(lane_t *l)
{
    item_t *prev = NULL;
    for (item_t *it = l->head; it; prev = it, it = it->next) {
        if (env_running(l, it->job.environment_id) >= l->env_cap)
            continue;
        if (prev)
            prev->next = it->next;
        else
            l->head = it->next;
        if (l->tail == it)
            l->tail = prev;
        it->next = NULL;
        return it;
    }
    return NULL;
}

/* Queued jobs that a free thread could start now. Called with the lock held. */
static int startable(const lane_t *l)
{
    int n = 0;
    for (const item_t *it = l->head; it && n < l->nthreads; it = it->next)
        n += env_running(l, it->job.environment_id) < l->env_cap;
    return n;
}

static void *job_thread(void *arg)
{
    lane_t *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->lock);
        item_t *it = NULL;
        while (!(it = take_fair(l)) && !(l->done && !l->head))
            pthread_cond_wait(&l->work, &l->lock);
        if (!it) {
            pthread_mutex_unlock(&l->lock);
            return NULL;
        }
        l->queued--;
        l->busy++;
        env_add(l, it->job.environment_id, 1);
        jn_metric_add(l->running, 1);
        pthread_mutex_unlock(&l->lock);

        l->p->opts.run(l->p->opts.ud, &it->job, &l->p->abort_jobs);
        jn_metric_inc(l->jobs_run);

        pthread_mutex_lock(&l->lock);
        l->busy--;
        env_add(l, it->job.environment_id, -1);
        jn_metric_add(l->running, -1);
        offset_done(l, it->partition, it->offset);
        /* A job of this environment that waited for its share may start now. */
        pthread_cond_broadcast(&l->work);
        pthread_cond_broadcast(&l->idle);
        pthread_mutex_unlock(&l->lock);
        free(it);
    }
}

/* ---- the poll thread ---- */

static void handle(lane_t *l, jn_kafka_message_t *msg)
{
    jn_job_ref_t job;
    char why[256];
    if (jn_job_message_decode(msg->value, msg->value_len, &job, why, sizeof why) != JN_OK) {
        dead_letter(l, msg, why);
        return;
    }
    if (job.kind != l->kind) {
        snprintf(why, sizeof why, "a %s job on the %s topic", jn_job_kind_name(job.kind),
                 jn_job_message_topic_kind(l->kind));
        dead_letter(l, msg, why);
        return;
    }
    item_t *it = calloc(1, sizeof *it);
    if (!it)
        abort();
    it->job = job;
    it->partition = msg->partition;
    it->offset = msg->offset;
    pthread_mutex_lock(&l->lock);
    offset_begin(l, msg->partition, msg->offset);
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->queued++;
    pthread_cond_signal(&l->work);
    pthread_mutex_unlock(&l->lock);
}

/* Pauses fetching while every job thread has work waiting, resumes when one is free. */
static void pace(lane_t *l)
{
    pthread_mutex_lock(&l->lock);
    /* Jobs waiting only for their environment's share do not count: fetching goes on so
     * that other environments' jobs behind them are seen (up to QUEUE_MAX held). */
    int ready = startable(l);
    bool full =
        ready >= l->nthreads || ready + l->busy >= 2 * l->nthreads || l->queued >= QUEUE_MAX;
    bool room = ready == 0 && l->busy < l->nthreads && l->queued < QUEUE_MAX;
    pthread_mutex_unlock(&l->lock);
    if (full && !l->paused) {
        jn_kafka_consumer_pause(l->consumer, true);
        l->paused = true;
    } else if (room && l->paused && !atomic_load(&l->p->stop_fetch)) {
        jn_kafka_consumer_pause(l->consumer, false);
        l->paused = false;
    }
}

static void *poll_thread(void *arg)
{
    lane_t *l = arg;
    while (!atomic_load(&l->p->stop_fetch)) {
        pace(l);
        jn_kafka_message_t msg;
        if (jn_kafka_consumer_poll(l->consumer, POLL_MS, &msg) == JN_OK) {
            handle(l, &msg);
            jn_kafka_consumer_forget(&msg);
        }
        dlq_retry_due(l);
        store_offsets(l);
    }
    /* Draining: no more fetching; keep the membership (and stores) alive until the job
     * threads are done. */
    jn_kafka_consumer_pause(l->consumer, true);
    for (;;) {
        pthread_mutex_lock(&l->lock);
        bool idle = l->busy == 0 && l->queued == 0 && l->done;
        pthread_mutex_unlock(&l->lock);
        jn_kafka_message_t msg;
        if (jn_kafka_consumer_poll(l->consumer, POLL_MS, &msg) == JN_OK)
            jn_kafka_consumer_forget(&msg); /* fetched before the pause: redelivered later */
        dlq_retry_due(l);
        store_offsets(l);
        if (idle)
            break;
    }
    return NULL;
}

/* ---- start and stop ---- */

static bool lane_start(jn_pipeline_t *p, lane_t *l, jn_job_kind_t kind, int threads)
{
    l->p = p;
    l->kind = kind;
    l->nthreads = threads > 0 ? threads : 1;
    /* One environment may use its share of the lane's threads (rounded up): the rest stay
     * for the others. */
    int share = p->opts.env_share_percent > 0 && p->opts.env_share_percent < 100
                    ? p->opts.env_share_percent
                    : 100;
    l->env_cap = (l->nthreads * share + 99) / 100;
    if (l->env_cap < 1)
        l->env_cap = 1;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->work, NULL);
    pthread_cond_init(&l->idle, NULL);
    const char *kind_name = jn_job_message_topic_kind(kind);
    jn_kafka_topic_name(&p->engine->config, kind_name, l->topic, sizeof l->topic);
    char group[200];
    snprintf(group, sizeof group, "%s.workers.%s", p->engine->config.topic_prefix, kind_name);
    const char *topics[] = {l->topic};
    l->consumer = jn_kafka_consumer_new(&p->engine->config, group, topics, 1);
    if (!l->consumer)
        return false;
    char labels[64];
    snprintf(labels, sizeof labels, "kind=\"%s\"", jn_job_kind_name(kind));
    l->dead_lettered = jn_metrics_counter("jn_worker_dead_lettered_total",
                                          "Job messages sent to the dead-letter topic", labels);
    l->jobs_run = jn_metrics_counter("jn_worker_jobs_total", "Jobs this worker ran", labels);
    l->running = jn_metrics_gauge("jn_worker_jobs_running", "Jobs running now", labels);
    l->threads = calloc((size_t)l->nthreads, sizeof *l->threads);
    if (!l->threads)
        abort();
    for (int i = 0; i < l->nthreads; i++) {
        pthread_create(&l->threads[i], NULL, job_thread, l);
        char name[16];
        snprintf(name, sizeof name, "jn-%.6s-%d", kind_name, i % 100);
        pthread_setname_np(l->threads[i], name);
    }
    pthread_create(&l->poller, NULL, poll_thread, l);
    return true;
}

jn_pipeline_t *jn_pipeline_start(jn_engine_t *engine, const jn_pipeline_options_t *opts)
{
    jn_pipeline_t *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->engine = engine;
    p->opts = *opts;
    jn_kafka_topic_name(&engine->config, "dlq", p->dlq_topic, sizeof p->dlq_topic);
    const jn_job_kind_t kinds[LANES] = {JN_JOB_ACTION, JN_JOB_SYNC, JN_JOB_WEBHOOK,
                                        JN_JOB_DELIVERY};
    for (int i = 0; i < LANES; i++) {
        if (!lane_start(p, &p->lanes[i], kinds[i], opts->concurrency[i])) {
            jn_log_error("pipeline", "cannot start the %s consumer", jn_job_kind_name(kinds[i]));
            atomic_store(&p->stop_fetch, true);
            return NULL;
        }
    }
    return p;
}

int jn_pipeline_running(jn_pipeline_t *p)
{
    int n = 0;
    for (int i = 0; i < LANES; i++) {
        lane_t *l = &p->lanes[i];
        pthread_mutex_lock(&l->lock);
        n += l->busy;
        pthread_mutex_unlock(&l->lock);
    }
    return n;
}

void jn_pipeline_stop(jn_pipeline_t *p)
{
    if (!p)
        return;
    atomic_store(&p->stop_fetch, true);
    /* Queued jobs that never started go back to Kafka's care: they are not run, and since
     * their offsets are not stored, they are delivered again after a restart. */
    for (int i = 0; i < LANES; i++) {
        lane_t *l = &p->lanes[i];
        pthread_mutex_lock(&l->lock);
        while (l->head) {
            item_t *it = l->head;
            l->head = it->next;
            l->queued--;
            free(it);
        }
        l->tail = NULL;
        l->done = true;
        pthread_cond_broadcast(&l->work);
        pthread_mutex_unlock(&l->lock);
    }
    /* Running jobs get the drain deadline, then are asked to give their jobs back. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += p->opts.drain_ms / 1000;
    deadline.tv_nsec += (long)(p->opts.drain_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (int i = 0; i < LANES; i++) {
        lane_t *l = &p->lanes[i];
        pthread_mutex_lock(&l->lock);
        while (l->busy > 0) {
            if (pthread_cond_timedwait(&l->idle, &l->lock, &deadline) != 0)
                break;
        }
        pthread_mutex_unlock(&l->lock);
    }
    if (jn_pipeline_running(p) > 0) {
        jn_log_warn("pipeline", "%d job(s) still running at the drain deadline; giving them back",
                    jn_pipeline_running(p));
        atomic_store(&p->abort_jobs, true);
    }
    for (int i = 0; i < LANES; i++) {
        lane_t *l = &p->lanes[i];
        for (int t = 0; t < l->nthreads; t++)
            pthread_join(l->threads[t], NULL);
        pthread_join(l->poller, NULL);
    }
    /* Dead-letter writes still in flight report back before their lanes go. */
    jn_kafka_flush(p->engine->producer, 5000);
    for (int i = 0; i < LANES; i++) {
        lane_t *l = &p->lanes[i];
        store_offsets(l); /* the poll thread is gone: the consumer is ours now */
        jn_kafka_consumer_free(l->consumer);
        while (l->dlq_waiting) {
            dlq_t *d = l->dlq_waiting;
            l->dlq_waiting = d->next;
            free(d->key);
            free(d->value);
            free(d);
        }
        for (size_t k = 0; k < l->nparts; k++)
            free(l->parts[k].inflight);
        free(l->parts);
        free(l->threads);
        free(l->envs);
        pthread_cond_destroy(&l->work);
        pthread_cond_destroy(&l->idle);
        pthread_mutex_destroy(&l->lock);
    }
    free(p);
}
