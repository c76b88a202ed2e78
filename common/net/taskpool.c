/*
 * taskpool.c - threads over a mutex-guarded ring of tasks.
 */
#include "net/taskpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

typedef struct {
    void (*fn)(void *);
    void *ud;
} task_t;

struct jn_taskpool {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    task_t *ring;
    size_t cap, head, count;
    bool stopping;
    int thread_count;
    pthread_t *threads;
    char name[24];
};

static void *worker(void *arg)
{
    jn_taskpool_t *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->count == 0 && !pool->stopping)
            pthread_cond_wait(&pool->ready, &pool->lock);
        if (pool->count == 0) {
            pthread_mutex_unlock(&pool->lock);
            return NULL;
        }
        task_t t = pool->ring[pool->head];
        pool->head = (pool->head + 1) % pool->cap;
        pool->count--;
        pthread_mutex_unlock(&pool->lock);
        t.fn(t.ud);
    }
}

jn_taskpool_t *jn_taskpool_new(const char *name, int threads, int queue_cap)
{
    jn_taskpool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        abort();
    snprintf(pool->name, sizeof pool->name, "%s", name);
    pool->cap = queue_cap > 0 ? (size_t)queue_cap : 1;
    pool->ring = calloc(pool->cap, sizeof *pool->ring);
    pool->thread_count = threads > 0 ? threads : 1;
    pool->threads = calloc((size_t)pool->thread_count, sizeof *pool->threads);
    if (!pool->ring || !pool->threads)
        abort();
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    for (int i = 0; i < pool->thread_count; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker, pool) != 0) {
            jn_log_error("taskpool", "cannot start thread %d of %s", i, name);
            abort();
        }
        char tname[16];
        snprintf(tname, sizeof tname, "%.8s-%d", name, i % 1000);
        pthread_setname_np(pool->threads[i], tname);
    }
    return pool;
}

jn_err_t jn_taskpool_submit(jn_taskpool_t *pool, void (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->count == pool->cap || pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        return JN_ERR_BUSY;
    }
    pool->ring[(pool->head + pool->count) % pool->cap] = (task_t){fn, ud};
    pool->count++;
    pthread_cond_signal(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    return JN_OK;
}

size_t jn_taskpool_queued(jn_taskpool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->count;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void jn_taskpool_free(jn_taskpool_t *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->thread_count; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->ready);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool->ring);
    free(pool);
}
