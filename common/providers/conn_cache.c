/*
 * conn_cache.c - two hash indexes (by key, by connection row) and an LRU list over
 * reference-counted entries, behind one mutex. Critical sections are a few pointer moves;
 * freeing an entry (wiping credentials) happens outside the lock.
 */
#include "providers/conn_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"

struct jn_conn_cache {
    pthread_mutex_t lock;
    size_t max_entries, count;
    uint64_t ttl_ms;
    size_t nbuckets;
    jn_conn_entry_t **by_key, **by_row;
    jn_conn_entry_t *lru_head, *lru_tail; /* head = most recently used */
    uint64_t epoch;
    bool bypass;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static size_t hash_row(long long id)
{
    uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29));
}

static char *make_key(long long env_id, const char *pck, const char *cid)
{
    size_t n = strlen(pck) + strlen(cid) + 32;
    char *k = malloc(n);
    if (!k)
        abort();
    snprintf(k, n, "%lld\x1f%s\x1f%s", env_id, pck, cid);
    return k;
}

jn_conn_cache_t *jn_conn_cache_new(size_t max_entries, uint64_t ttl_ms)
{
    jn_conn_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    pthread_mutex_init(&c->lock, NULL);
    c->max_entries = max_entries ? max_entries : 100000;
    c->ttl_ms = ttl_ms ? ttl_ms : 300000;
    c->nbuckets = 1024;
    while (c->nbuckets < c->max_entries)
        c->nbuckets *= 2;
    c->by_key = calloc(c->nbuckets, sizeof *c->by_key);
    c->by_row = calloc(c->nbuckets, sizeof *c->by_row);
    if (!c->by_key || !c->by_row)
        abort();
    return c;
}

jn_conn_entry_t *jn_conn_entry_new(long long env_id, jn_connection_t *conn, json_object *provider,
                                   bool provider_owned)
{
    jn_conn_entry_t *e = calloc(1, sizeof *e);
    if (!e)
        abort();
    e->env_id = env_id;
    e->conn = *conn;
    memset(conn, 0, sizeof *conn);
    e->provider = provider;
    e->provider_owned = provider_owned;
    atomic_init(&e->refs, 1);
    e->key = make_key(env_id, e->conn.provider_config_key ? e->conn.provider_config_key : "",
                      e->conn.connection_id ? e->conn.connection_id : "");
    e->loaded_ms = monotonic_ms();
    return e;
}

void jn_conn_entry_ref(jn_conn_entry_t *e)
{
    atomic_fetch_add(&e->refs, 1);
}

void jn_conn_entry_unref(jn_conn_entry_t *e)
{
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1)
        return;
    jn_connection_cleanup(&e->conn);
    if (e->provider_owned)
        json_object_put(e->provider);
    free(e->key);
    free(e);
}

/* Unlinks e from both indexes and the LRU list; the cache's reference goes to *drop. Call
 * with the lock. */
static void unlink_entry(jn_conn_cache_t *c, jn_conn_entry_t *e)
{
    size_t kb = hash_text(e->key) & (c->nbuckets - 1);
    for (jn_conn_entry_t **pp = &c->by_key[kb]; *pp; pp = &(*pp)->key_next) {
        if (*pp == e) {
            *pp = e->key_next;
            break;
        }
    }
    size_t rb = hash_row(e->conn.id) & (c->nbuckets - 1);
    for (jn_conn_entry_t **pp = &c->by_row[rb]; *pp; pp = &(*pp)->row_next) {
        if (*pp == e) {
            *pp = e->row_next;
            break;
        }
    }
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->key_next = e->row_next = e->lru_prev = e->lru_next = NULL;
    e->cached = false;
    c->count--;
}

/* A small list of entries to unref after the lock is dropped. */
typedef struct {
    jn_conn_entry_t *items[64];
    int n;
    jn_conn_entry_t **more;
    size_t more_n, more_cap;
} drop_list_t;

static void drop_add(drop_list_t *d, jn_conn_entry_t *e)
{
    if (d->n < 64) {
        d->items[d->n++] = e;
        return;
    }
    if (d->more_n == d->more_cap) {
        d->more_cap = d->more_cap ? d->more_cap * 2 : 256;
        d->more = realloc(d->more, d->more_cap * sizeof *d->more);
        if (!d->more)
            abort();
    }
    d->more[d->more_n++] = e;
}

static void drop_all(drop_list_t *d)
{
    for (int i = 0; i < d->n; i++)
        jn_conn_entry_unref(d->items[i]);
    for (size_t i = 0; i < d->more_n; i++)
        jn_conn_entry_unref(d->more[i]);
    free(d->more);
}

jn_conn_entry_t *jn_conn_cache_get(jn_conn_cache_t *c, long long env_id,
                                   const char *provider_config_key, const char *connection_id)
{
    char *key = make_key(env_id, provider_config_key, connection_id);
    size_t kb = hash_text(key) & (c->nbuckets - 1);
    jn_conn_entry_t *found = NULL, *expired = NULL;
    uint64_t now = monotonic_ms();
    pthread_mutex_lock(&c->lock);
    if (!c->bypass) {
        for (jn_conn_entry_t *e = c->by_key[kb]; e; e = e->key_next) {
            if (strcmp(e->key, key) != 0)
                continue;
            if (now - e->loaded_ms > c->ttl_ms) {
                unlink_entry(c, e);
                expired = e;
            } else {
                found = e;
                jn_conn_entry_ref(e);
                /* most recently used */
                if (c->lru_head != e) {
                    e->lru_prev->lru_next = e->lru_next;
                    if (e->lru_next)
                        e->lru_next->lru_prev = e->lru_prev;
                    else
                        c->lru_tail = e->lru_prev;
                    e->lru_prev = NULL;
                    e->lru_next = c->lru_head;
                    c->lru_head->lru_prev = e;
                    c->lru_head = e;
                }
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    free(key);
    jn_conn_entry_unref(expired);
    return found;
}

uint64_t jn_conn_cache_epoch(jn_conn_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    uint64_t e = c->epoch;
    pthread_mutex_unlock(&c->lock);
    return e;
}

void jn_conn_cache_put(jn_conn_cache_t *c, jn_conn_entry_t *e, uint64_t epoch)
{
    drop_list_t drop = {0};
    pthread_mutex_lock(&c->lock);
    if (c->bypass || c->epoch != epoch || e->cached) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    size_t kb = hash_text(e->key) & (c->nbuckets - 1);
    for (jn_conn_entry_t *old = c->by_key[kb]; old; old = old->key_next) {
        if (strcmp(old->key, e->key) == 0) {
            unlink_entry(c, old);
            drop_add(&drop, old);
            break;
        }
    }
    while (c->count >= c->max_entries && c->lru_tail) {
        jn_conn_entry_t *victim = c->lru_tail;
        unlink_entry(c, victim);
        drop_add(&drop, victim);
    }
    jn_conn_entry_ref(e);
    e->cached = true;
    e->key_next = c->by_key[kb];
    c->by_key[kb] = e;
    size_t rb = hash_row(e->conn.id) & (c->nbuckets - 1);
    e->row_next = c->by_row[rb];
    c->by_row[rb] = e;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
    c->count++;
    pthread_mutex_unlock(&c->lock);
    drop_all(&drop);
}

void jn_conn_cache_invalidate_connection(jn_conn_cache_t *c, long long row_id)
{
    drop_list_t drop = {0};
    pthread_mutex_lock(&c->lock);
    c->epoch++;
    size_t rb = hash_row(row_id) & (c->nbuckets - 1);
    for (jn_conn_entry_t *e = c->by_row[rb], *next; e; e = next) {
        next = e->row_next;
        if (e->conn.id == row_id) {
            unlink_entry(c, e);
            drop_add(&drop, e);
        }
    }
    pthread_mutex_unlock(&c->lock);
    drop_all(&drop);
}

static void clear_matching(jn_conn_cache_t *c, bool all, long long env_id)
{
    drop_list_t drop = {0};
    pthread_mutex_lock(&c->lock);
    c->epoch++;
    for (jn_conn_entry_t *e = c->lru_head, *next; e; e = next) {
        next = e->lru_next;
        if (all || e->env_id == env_id) {
            unlink_entry(c, e);
            drop_add(&drop, e);
        }
    }
    pthread_mutex_unlock(&c->lock);
    drop_all(&drop);
}

void jn_conn_cache_invalidate_env(jn_conn_cache_t *c, long long env_id)
{
    clear_matching(c, false, env_id);
}

void jn_conn_cache_clear(jn_conn_cache_t *c, bool bypass)
{
    pthread_mutex_lock(&c->lock);
    if (bypass)
        c->bypass = true;
    pthread_mutex_unlock(&c->lock);
    clear_matching(c, true, 0);
}

void jn_conn_cache_resume(jn_conn_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->bypass = false;
    c->epoch++;
    pthread_mutex_unlock(&c->lock);
}

size_t jn_conn_cache_size(jn_conn_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void jn_conn_cache_free(jn_conn_cache_t *c)
{
    if (!c)
        return;
    clear_matching(c, true, 0);
    free(c->by_key);
    free(c->by_row);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
