/*
 * kafka.c - librdkafka wrappers: idempotent producer, group consumer, topic admin.
 *
 * The producer's delivery reports are served by one thread per producer calling
 * rd_kafka_poll(); each message carries a small heap record with the caller's callback,
 * freed in the report. librdkafka's own log and error callbacks are routed into our
 * JSON log so operators see broker trouble in one place.
 */
#include "net/kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"

const char *const jn_kafka_topic_kinds[] = {"actions",    "syncs",   "webhooks",
                                            "deliveries", "records", "dlq"};
const size_t jn_kafka_topic_kind_count =
    sizeof jn_kafka_topic_kinds / sizeof jn_kafka_topic_kinds[0];

struct jn_kafka_producer {
    rd_kafka_t *rk;
    pthread_t poller;
    atomic_bool stop;
};

struct jn_kafka_consumer {
    rd_kafka_t *rk;
    bool reader; /* assigned partitions, no group */
};

typedef struct {
    jn_kafka_delivery_fn fn;
    void *opaque;
} delivery_t;

void jn_kafka_topic_name(const jn_config_t *cfg, const char *kind, char *out, size_t cap)
{
    snprintf(out, cap, "%s.%s", cfg->topic_prefix, kind);
}

static jn_err_t classify(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return JN_OK;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT: return JN_ERR_KAFKA_UNAVAILABLE;
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT: return JN_ERR_TIMEOUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE: return JN_ERR_TOO_LARGE;
    default: return JN_ERR_KAFKA;
    }
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* Connection failures also arrive through error_cb; say them once. */
    if (strcmp(fac, "FAIL") == 0)
        return;
    /* syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug */
    jn_log_level_t ours = level <= 3   ? JN_LOG_ERROR
                          : level == 4 ? JN_LOG_WARN
                          : level <= 6 ? JN_LOG_INFO
                                       : JN_LOG_DEBUG;
    jn_log(ours, "kafka", "%s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    jn_metric_inc(
        jn_metrics_counter("jn_kafka_errors_total", "Errors reported by librdkafka", NULL));
    jn_log_warn("kafka", "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* True on the thread of jn_kafka_producer_free while it drops what the flush left: those
 * reports only free their records (their callers are done with them). */
static _Thread_local bool dropping_reports;

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivery_t *d = msg->_private;
    if (dropping_reports) {
        free(d);
        return;
    }
    if (msg->err) {
        jn_metric_inc(jn_metrics_counter("jn_kafka_delivery_failures_total",
                                         "Messages Kafka did not accept", NULL));
        jn_log_warn("kafka", "delivery to %s failed: %s", rd_kafka_topic_name(msg->rkt),
                    rd_kafka_err2str(msg->err));
    } else {
        jn_metric_inc(jn_metrics_counter("jn_kafka_messages_delivered_total",
                                         "Messages acknowledged by Kafka", NULL));
    }
    if (d) {
        if (d->fn)
            d->fn(classify(msg->err), d->opaque);
        free(d);
    }
}

static bool set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char why[256];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        jn_log_error("kafka", "configuration %s=%s refused: %s", name, value, why);
        return false;
    }
    return true;
}

static rd_kafka_conf_t *base_conf(const jn_config_t *cfg, const char *client_id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (!set(conf, "bootstrap.servers", cfg->kafka_brokers) || !set(conf, "client.id", client_id) ||
        /* Reconnect quickly after a broker restart, without hammering it. */
        !set(conf, "reconnect.backoff.ms", "100") ||
        !set(conf, "reconnect.backoff.max.ms", "2000") ||
        /* A down broker is a health state, not log spam. */
        !set(conf, "log.connection.close", "false") ||
        /* Job messages are small and someone waits on each: send them at once rather than
         * let Nagle's algorithm hold one back behind an unacknowledged segment. */
        !set(conf, "socket.nagle.disable", "true")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

static void *poll_loop(void *arg)
{
    jn_kafka_producer_t *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

jn_kafka_producer_t *jn_kafka_producer_new(const jn_config_t *cfg, const char *client_id)
{
    /* No lingering: a job message is on the critical path of an action's round trip, and
     * under load messages still batch while earlier requests are in flight. */
    jn_kafka_producer_options_t opts = {.linger_ms = 0, .message_timeout_ms = 300000};
    return jn_kafka_producer_new_with(cfg, client_id, &opts);
}

jn_kafka_producer_t *jn_kafka_producer_new_with(const jn_config_t *cfg, const char *client_id,
                                                const jn_kafka_producer_options_t *opts)
{
    rd_kafka_conf_t *conf = base_conf(cfg, client_id);
    if (!conf)
        return NULL;
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
    char linger[16], timeout[16], max[24];
    snprintf(linger, sizeof linger, "%d", opts->linger_ms);
    snprintf(timeout, sizeof timeout, "%d", opts->message_timeout_ms);
    snprintf(max, sizeof max, "%ld", opts->max_message_bytes);
    if (!set(conf, "enable.idempotence", "true") || !set(conf, "acks", "all") ||
        !set(conf, "compression.codec", "lz4") || !set(conf, "linger.ms", linger) ||
        !set(conf, "message.timeout.ms", timeout) ||
        (opts->max_message_bytes > 0 && !set(conf, "message.max.bytes", max)) ||
        (opts->gapless && !set(conf, "enable.gapless.guarantee", "true"))) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!rk) {
        jn_log_error("kafka", "cannot create producer: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    jn_kafka_producer_t *p = calloc(1, sizeof *p);
    if (!p)
        abort();
    p->rk = rk;
    atomic_init(&p->stop, false);
    if (pthread_create(&p->poller, NULL, poll_loop, p) != 0)
        abort();
    return p;
}

bool jn_kafka_producer_failed(jn_kafka_producer_t *p, char *why, size_t cap)
{
    char reason[512];
    rd_kafka_resp_err_t e = rd_kafka_fatal_error(p->rk, reason, sizeof reason);
    if (e && why && cap)
        snprintf(why, cap, "%s: %s", rd_kafka_err2name(e), reason);
    return e != RD_KAFKA_RESP_ERR_NO_ERROR;
}

void jn_kafka_producer_free(jn_kafka_producer_t *p, int timeout_ms)
{
    if (!p)
        return;
    rd_kafka_resp_err_t e = rd_kafka_flush(p->rk, timeout_ms);
    if (e)
        jn_log_warn("kafka", "%d message(s) not delivered at shutdown: %s",
                    rd_kafka_outq_len(p->rk), rd_kafka_err2str(e));
    atomic_store(&p->stop, true);
    pthread_join(p->poller, NULL);
    /* Messages still queued or in flight (a flush that timed out, a producer that failed
     * for good) are purged and their reports served here, so that their records are
     * freed rather than lost with the handle. */
    if (rd_kafka_outq_len(p->rk) > 0) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        dropping_reports = true;
        for (int i = 0; i < 100 && rd_kafka_outq_len(p->rk) > 0; i++)
            rd_kafka_poll(p->rk, 10);
        dropping_reports = false;
    }
    rd_kafka_destroy(p->rk);
    free(p);
}

jn_err_t jn_kafka_produce(jn_kafka_producer_t *p, const char *topic, const void *key,
                          size_t key_len, const void *value, size_t value_len,
                          jn_kafka_delivery_fn on_delivery, void *opaque)
{
    return jn_kafka_produce_with_headers(p, topic, key, key_len, value, value_len, NULL,
                                         on_delivery, opaque);
}

jn_err_t jn_kafka_produce_with_headers(jn_kafka_producer_t *p, const char *topic, const void *key,
                                       size_t key_len, const void *value, size_t value_len,
                                       const char *const *headers, jn_kafka_delivery_fn on_delivery,
                                       void *opaque)
{
    delivery_t *d = malloc(sizeof *d);
    if (!d)
        abort();
    d->fn = on_delivery;
    d->opaque = opaque;
    rd_kafka_headers_t *hdrs = NULL;
    if (headers && headers[0]) {
        hdrs = rd_kafka_headers_new(8);
        for (size_t i = 0; headers[i] && headers[i + 1]; i += 2)
            rd_kafka_header_add(hdrs, headers[i], -1, headers[i + 1], -1);
    }
    rd_kafka_resp_err_t e =
        hdrs ? rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                 RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END)
             : rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_VALUE((void *)value, value_len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(d),
                                 RD_KAFKA_V_END);
    if (e) {
        /* On failure the headers stay ours. */
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        free(d);
        jn_log_warn("kafka", "cannot queue a message for %s: %s", topic, rd_kafka_err2str(e));
        return classify(e);
    }
    return JN_OK;
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    jn_err_t err;
    atomic_int refs; /* the waiter and the delivery report each hold one */
} sync_wait_t;

static void sync_release(sync_wait_t *w)
{
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w);
    }
}

static void sync_delivered(jn_err_t err, void *opaque)
{
    sync_wait_t *w = opaque;
    pthread_mutex_lock(&w->lock);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    sync_release(w);
}

jn_err_t jn_kafka_produce_sync(jn_kafka_producer_t *p, const char *topic, const void *key,
                               size_t key_len, const void *value, size_t value_len, int timeout_ms)
{
    /* Heap-allocated and reference-counted: when we time out, the report may still come
     * later and must find the record alive. */
    sync_wait_t *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    atomic_init(&w->refs, 2);
    jn_err_t err = jn_kafka_produce(p, topic, key, key_len, value, value_len, sync_delivered, w);
    if (err) {
        atomic_fetch_sub(&w->refs, 1);
        sync_release(w);
        return err;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!w->done && rc == 0)
        rc = pthread_cond_timedwait(&w->cond, &w->lock, &deadline);
    err = w->done ? w->err : JN_ERR_TIMEOUT;
    pthread_mutex_unlock(&w->lock);
    sync_release(w);
    return err;
}

jn_err_t jn_kafka_flush(jn_kafka_producer_t *p, int timeout_ms)
{
    return classify(rd_kafka_flush(p->rk, timeout_ms));
}

jn_err_t jn_kafka_ping(jn_kafka_producer_t *p, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(p->rk, 0, NULL, &md, timeout_ms);
    if (e)
        return JN_ERR_KAFKA_UNAVAILABLE; /* whatever the cause, no broker answered */
    bool has_brokers = md->broker_cnt > 0;
    rd_kafka_metadata_destroy(md);
    return has_brokers ? JN_OK : JN_ERR_KAFKA_UNAVAILABLE;
}

jn_err_t jn_kafka_create_topic(jn_kafka_producer_t *p, const char *topic, int partitions,
                               int replication, int timeout_ms)
{
    char why[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, replication, why, sizeof why);
    if (!nt) {
        jn_log_error("kafka", "topic %s: %s", topic, why);
        return JN_ERR_INVALID;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(p->rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, why, sizeof why);
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, why, sizeof why);
    rd_kafka_CreateTopics(p->rk, &nt, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    jn_err_t err = JN_OK;
    if (!ev) {
        err = JN_ERR_TIMEOUT;
        jn_log_warn("kafka", "creating topic %s timed out", topic);
    } else if (rd_kafka_event_error(ev)) {
        err = classify(rd_kafka_event_error(ev));
        jn_log_warn("kafka", "creating topic %s: %s", topic, rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **results = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t te = rd_kafka_topic_result_error(results[i]);
            if (te == RD_KAFKA_RESP_ERR_NO_ERROR) {
                jn_log_info("kafka", "created topic %s (%d partitions)", topic, partitions);
            } else if (te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                err = classify(te);
                jn_log_error("kafka", "creating topic %s: %s", topic,
                             rd_kafka_topic_result_error_string(results[i]));
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return err;
}

jn_err_t jn_kafka_ensure_topics(jn_kafka_producer_t *p, const jn_config_t *cfg, int timeout_ms)
{
    for (size_t i = 0; i < jn_kafka_topic_kind_count; i++) {
        char topic[160];
        jn_kafka_topic_name(cfg, jn_kafka_topic_kinds[i], topic, sizeof topic);
        jn_err_t err = jn_kafka_create_topic(p, topic, cfg->topic_partitions,
                                             cfg->topic_replication, timeout_ms);
        if (err)
            return err;
    }
    return JN_OK;
}

/* A consumer handle from conf (taken), its messages served by rd_kafka_consumer_poll.
 * NULL with a log line when librdkafka refuses. */
static rd_kafka_t *new_consumer(rd_kafka_conf_t *conf)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        jn_log_error("kafka", "cannot create consumer: %s", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

jn_kafka_consumer_t *jn_kafka_consumer_new(const jn_config_t *cfg, const char *group_id,
                                           const char *const *topics, size_t topic_count)
{
    char client_id[192];
    snprintf(client_id, sizeof client_id, "%s-%s", group_id, cfg->instance_id);
    rd_kafka_conf_t *conf = base_conf(cfg, client_id);
    if (!conf)
        return NULL;
    if (!set(conf, "group.id", group_id) || !set(conf, "enable.auto.offset.store", "false") ||
        !set(conf, "enable.auto.commit", "true") || !set(conf, "auto.offset.reset", "earliest") ||
        !set(conf, "partition.assignment.strategy", "cooperative-sticky") ||
        /* A member that died is replaced after 10 s rather than 45: members poll
         * continuously (long work runs on other threads), so they never miss a beat. */
        !set(conf, "session.timeout.ms", "10000") || !set(conf, "heartbeat.interval.ms", "2000")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = new_consumer(conf);
    if (!rk)
        return NULL;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)topic_count);
    for (size_t i = 0; i < topic_count; i++)
        rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) {
        jn_log_error("kafka", "cannot subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    jn_kafka_consumer_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->rk = rk;
    return c;
}

jn_kafka_consumer_t *jn_kafka_consumer_new_reader(const jn_config_t *cfg, const char *topic,
                                                  bool from_end, int timeout_ms)
{
    char client_id[192];
    snprintf(client_id, sizeof client_id, "reader-%s", cfg->instance_id);
    rd_kafka_conf_t *conf = base_conf(cfg, client_id);
    if (!conf)
        return NULL;
    /* librdkafka wants a group id even for assigned partitions; this one never joins. */
    if (!set(conf, "group.id", client_id) || !set(conf, "enable.auto.commit", "false") ||
        !set(conf, "enable.auto.offset.store", "false")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = new_consumer(conf);
    if (!rk)
        return NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    int partitions = 0;
    if (!e && md->topic_cnt == 1 && !md->topics[0].err)
        partitions = md->topics[0].partition_cnt;
    else
        jn_log_error("kafka", "cannot read topic %s: %s", topic,
                     e                    ? rd_kafka_err2str(e)
                     : md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err)
                                          : "no such topic");
    if (md)
        rd_kafka_metadata_destroy(md);
    if (partitions <= 0) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(partitions);
    for (int i = 0; i < partitions; i++)
        rd_kafka_topic_partition_list_add(list, topic, i)->offset =
            from_end ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
    e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) {
        jn_log_error("kafka", "cannot read %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    jn_kafka_consumer_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->rk = rk;
    c->reader = true;
    return c;
}

jn_err_t jn_kafka_consumer_poll(jn_kafka_consumer_t *c, int timeout_ms, jn_kafka_message_t *msg)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!m)
        return JN_ERR_TIMEOUT;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            jn_log_warn("kafka", "consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return JN_ERR_TIMEOUT;
    }
    msg->topic = rd_kafka_topic_name(m->rkt);
    msg->partition = (int)m->partition;
    msg->offset = (long long)m->offset;
    msg->key = m->key;
    msg->key_len = m->key_len;
    msg->value = m->payload;
    msg->value_len = m->len;
    msg->handle = m;
    return JN_OK;
}

bool jn_kafka_message_header(const jn_kafka_message_t *msg, const char *name, char *out, size_t cap)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *value = NULL;
    size_t len = 0;
    if (rd_kafka_message_headers(msg->handle, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &value, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    if (cap == 0)
        return true;
    size_t n = value && len < cap ? len : (value ? cap - 1 : 0);
    if (n)
        memcpy(out, value, n);
    out[n] = '\0';
    return true;
}

void jn_kafka_consumer_done(jn_kafka_consumer_t *c, jn_kafka_message_t *msg)
{
    rd_kafka_message_t *m = msg->handle;
    rd_kafka_resp_err_t e = rd_kafka_offset_store(m->rkt, m->partition, m->offset);
    if (e)
        jn_log_warn("kafka", "cannot store offset %lld of %s[%d]: %s", msg->offset, msg->topic,
                    msg->partition, rd_kafka_err2str(e));
    (void)c;
    rd_kafka_message_destroy(m);
    msg->handle = NULL;
}

void jn_kafka_consumer_store(jn_kafka_consumer_t *c, const char *topic, int partition,
                             long long next_offset)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, list);
    /* A partition taken away by a rebalance cannot store: its next owner sees the
     * message again and finds its job done. */
    if (e && e != RD_KAFKA_RESP_ERR__STATE && e != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        jn_log_warn("kafka", "cannot store offset %lld of %s[%d]: %s", next_offset, topic,
                    partition, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(list);
}

void jn_kafka_consumer_pause(jn_kafka_consumer_t *c, bool pause)
{
    rd_kafka_topic_partition_list_t *assigned = NULL;
    if (rd_kafka_assignment(c->rk, &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR || !assigned)
        return;
    if (pause)
        rd_kafka_pause_partitions(c->rk, assigned);
    else
        rd_kafka_resume_partitions(c->rk, assigned);
    rd_kafka_topic_partition_list_destroy(assigned);
}

void jn_kafka_consumer_forget(jn_kafka_message_t *msg)
{
    rd_kafka_message_destroy(msg->handle);
    msg->handle = NULL;
}

void jn_kafka_consumer_release(jn_kafka_message_t *msg)
{
    rd_kafka_message_destroy(msg->handle);
    msg->handle = NULL;
}

void jn_kafka_consumer_free(jn_kafka_consumer_t *c)
{
    if (!c)
        return;
    if (c->reader) {
        rd_kafka_assign(c->rk, NULL);
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
        free(c);
        return;
    }
    /* librdkafka 2.0's close does not send LeaveGroup for the cooperative assignor, so
     * the group would wait a whole session timeout (45 s) before handing this member's
     * partitions to another. Unsubscribing first does leave: the partitions are revoked
     * (their stored offsets committed) and the group rebalances at once. Messages polled
     * meanwhile were never handed out, so they are simply delivered again. */
    rd_kafka_resp_err_t e = rd_kafka_unsubscribe(c->rk);
    for (int i = 0; !e && i < 50; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
        rd_kafka_topic_partition_list_t *assigned = NULL;
        bool empty = rd_kafka_assignment(c->rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                     assigned->cnt == 0;
        if (assigned)
            rd_kafka_topic_partition_list_destroy(assigned);
        if (empty)
            break;
    }
    e = rd_kafka_consumer_close(c->rk);
    if (e)
        jn_log_warn("kafka", "consumer close: %s", rd_kafka_err2str(e));
    rd_kafka_destroy(c->rk);
    free(c);
}
