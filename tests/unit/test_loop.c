/*
 * Unit tests for common/net/loop.c on a spawned loop: timers fire in deadline order (ties
 * in start order), a timer stopped (and freed) inside another's callback never fires, a
 * watch stopped (and freed) while its event waits in the same batch is never called, a
 * zero-delay timer that re-arms itself cannot starve descriptors, posts from other threads
 * run in posting order, and stopping runs the work still posted.
 *
 * Everything that must run on the loop is posted to it; the test thread waits for a flag
 * with a deadline, never for a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/loop.h"

/* A flag the loop sets and the test thread waits on. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool set;
} done_t;

static void done_init(done_t *d)
{
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cond, NULL);
    d->set = false;
}

static void done_signal(done_t *d)
{
    pthread_mutex_lock(&d->mu);
    d->set = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->mu);
}

/* Waits up to ms for the flag; true when it was set. */
static bool done_wait(done_t *d, int ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->set) {
        if (pthread_cond_timedwait(&d->cond, &d->mu, &deadline) != 0)
            break;
    }
    bool set = d->set;
    pthread_mutex_unlock(&d->mu);
    return set;
}

static void done_cleanup(done_t *d)
{
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->mu);
}

static jn_loop_t *loop;

/* cmocka's assertions may not run on the loop's thread (they jump out of the test):
 * callbacks record a failed check here, and the test thread asserts there were none. */
static atomic_int loop_failures;
static atomic_int loop_failure_line;
#define LOOP_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            atomic_fetch_add(&loop_failures, 1);                                                   \
            atomic_store(&loop_failure_line, __LINE__);                                            \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    (void)state;
    atomic_store(&loop_failures, 0);
    loop = jn_loop_new("test");
    jn_loop_spawn(loop);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jn_loop_stop(loop);
    jn_loop_free(loop);
    loop = NULL;
    if (atomic_load(&loop_failures))
        fail_msg("%d checks failed on the loop's thread (the last at line %d)",
                 atomic_load(&loop_failures), atomic_load(&loop_failure_line));
    return 0;
}

/* ---- timers in order ---- */

enum { ORDER_N = 7 };

typedef struct {
    jn_loop_timer_t timers[ORDER_N];
    int fired[ORDER_N];
    int fired_count;
    bool wrong_thread;
    done_t done;
} order_t;

static void order_fire(jn_loop_timer_t *t)
{
    order_t *o = t->ud;
    o->wrong_thread |= !jn_loop_on_thread(loop);
    o->fired[o->fired_count++] = (int)(t - o->timers);
    if (o->fired_count == ORDER_N)
        done_signal(&o->done);
}

static void order_start(void *ud)
{
    order_t *o = ud;
    /* started in this order, with these delays: */
    static const uint64_t delays[ORDER_N] = {60, 20, 40, 0, 20, 5, 60};
    for (int i = 0; i < ORDER_N; i++) {
        jn_loop_timer_init(&o->timers[i]);
        jn_loop_timer_start(loop, &o->timers[i], delays[i], order_fire, o);
        LOOP_CHECK(jn_loop_timer_armed(&o->timers[i]));
    }
}

static void test_timers_fire_in_deadline_order(void **state)
{
    (void)state;
    order_t o = {0};
    done_init(&o.done);
    jn_loop_post(loop, order_start, &o);
    assert_true(done_wait(&o.done, 5000));
    /* by deadline; equal deadlines in start order */
    static const int want[ORDER_N] = {3, 5, 1, 4, 2, 0, 6};
    for (int i = 0; i < ORDER_N; i++) {
        if (o.fired[i] != want[i])
            fail_msg("timer %d fired in place %d (wanted timer %d)", o.fired[i], i, want[i]);
        assert_false(jn_loop_timer_armed(&o.timers[o.fired[i]]));
    }
    assert_false(o.wrong_thread);
    done_cleanup(&o.done);
}

/* ---- a timer stopped inside another's callback ---- */

typedef struct {
    jn_loop_timer_t first, last;
    jn_loop_timer_t *victim; /* heap-allocated: freed when stopped */
    int victim_fired;
    int first_fired;
    done_t done;
} stopper_t;

static void victim_fire(jn_loop_timer_t *t)
{
    stopper_t *s = t->ud;
    s->victim_fired++;
}

static void first_fire(jn_loop_timer_t *t)
{
    stopper_t *s = t->ud;
    s->first_fired++;
    /* Due in this same iteration, after us: stop it and free it at once. */
    LOOP_CHECK(jn_loop_timer_armed(s->victim));
    jn_loop_timer_stop(s->victim);
    LOOP_CHECK(!jn_loop_timer_armed(s->victim));
    jn_loop_timer_stop(s->victim); /* twice is fine */
    free(s->victim);
    s->victim = NULL;
}

static void last_fire(jn_loop_timer_t *t)
{
    stopper_t *s = t->ud;
    done_signal(&s->done);
}

static void stopper_start(void *ud)
{
    stopper_t *s = ud;
    jn_loop_timer_init(&s->first);
    jn_loop_timer_init(&s->last);
    s->victim = malloc(sizeof *s->victim);
    if (!s->victim)
        abort();
    jn_loop_timer_init(s->victim);
    /* Same deadline: first runs before victim, both in one iteration. */
    jn_loop_timer_start(loop, &s->first, 10, first_fire, s);
    jn_loop_timer_start(loop, s->victim, 10, victim_fire, s);
    jn_loop_timer_start(loop, &s->last, 40, last_fire, s);
}

static void test_timer_stopped_by_another_never_fires(void **state)
{
    (void)state;
    stopper_t s = {0};
    done_init(&s.done);
    jn_loop_post(loop, stopper_start, &s);
    assert_true(done_wait(&s.done, 5000));
    assert_int_equal(s.first_fired, 1);
    assert_int_equal(s.victim_fired, 0);
    assert_null(s.victim);
    done_cleanup(&s.done);
}

/* A timer re-armed before it fires moves (and fires once); one re-armed from its own
 * callback fires again. */
typedef struct {
    jn_loop_timer_t moved, repeat;
    uint64_t moved_at, started_at;
    int moved_fired;
    int repeats;
    done_t repeats_done, moved_done, idle_checked;
} rearm_t;

static void moved_fire(jn_loop_timer_t *t)
{
    rearm_t *r = t->ud;
    if (r->moved_fired++ == 0)
        r->moved_at = jn_loop_now_ms(loop);
    done_signal(&r->moved_done);
}

static void repeat_fire(jn_loop_timer_t *t)
{
    rearm_t *r = t->ud;
    if (++r->repeats < 5)
        jn_loop_timer_start(loop, t, 1, repeat_fire, r);
    else
        done_signal(&r->repeats_done);
}

static void rearm_start(void *ud)
{
    rearm_t *r = ud;
    jn_loop_timer_init(&r->moved);
    jn_loop_timer_init(&r->repeat);
    r->started_at = jn_loop_now_ms(loop);
    jn_loop_timer_start(loop, &r->moved, 5, moved_fire, r);
    jn_loop_timer_start(loop, &r->moved, 60, moved_fire, r); /* replaces the first arming */
    jn_loop_timer_start(loop, &r->repeat, 0, repeat_fire, r);
}

static void rearm_check_idle(void *ud)
{
    rearm_t *r = ud;
    LOOP_CHECK(!jn_loop_timer_armed(&r->moved) && !jn_loop_timer_armed(&r->repeat));
    done_signal(&r->idle_checked);
}

static void test_timer_rearm(void **state)
{
    (void)state;
    rearm_t r = {0};
    done_init(&r.repeats_done);
    done_init(&r.moved_done);
    done_init(&r.idle_checked);
    jn_loop_post(loop, rearm_start, &r);
    assert_true(done_wait(&r.repeats_done, 5000));
    assert_int_equal(r.repeats, 5);
    assert_true(done_wait(&r.moved_done, 5000));
    /* Nothing is left armed, and the moved timer fired once, at its second deadline. */
    jn_loop_post(loop, rearm_check_idle, &r);
    assert_true(done_wait(&r.idle_checked, 5000));
    assert_int_equal(r.moved_fired, 1);
    assert_true(r.moved_at >= r.started_at + 60);
    done_cleanup(&r.idle_checked);
    done_cleanup(&r.moved_done);
    done_cleanup(&r.repeats_done);
}

/* ---- a watch stopped while its event is pending in the same batch ---- */

typedef struct {
    int pipes[2][2];
    jn_loop_watch_t *watches[2]; /* heap-allocated: freed when stopped */
    int calls[2];
    int batch_checks;
    done_t done;
} pair_t;

static void pair_check(void *ud)
{
    /* Posted from the callback: runs after the rest of that batch. */
    pair_t *p = ud;
    p->batch_checks++;
    done_signal(&p->done);
}

static void pair_io(jn_loop_watch_t *w, unsigned events)
{
    pair_t *p = w->ud;
    LOOP_CHECK(events & JN_LOOP_READ);
    int me = w == p->watches[0] ? 0 : 1, other = 1 - me;
    p->calls[me]++;
    /* The other pipe is readable too, so its event is in this batch: stop its watch,
     * close its descriptor and free the watch. It must not be called. */
    if (p->watches[other]) {
        jn_loop_watch_stop(p->watches[other]);
        jn_loop_watch_stop(p->watches[other]); /* twice is fine */
        close(p->pipes[other][0]);
        p->pipes[other][0] = -1;
        free(p->watches[other]);
        p->watches[other] = NULL;
    }
    /* And stop our own, so the data left in our pipe is not reported again. */
    jn_loop_watch_stop(w);
    close(p->pipes[me][0]);
    p->pipes[me][0] = -1;
    free(w);
    p->watches[me] = NULL;
    jn_loop_post(loop, pair_check, p);
}

static void pair_start(void *ud)
{
    pair_t *p = ud;
    for (int i = 0; i < 2; i++) {
        p->watches[i] = calloc(1, sizeof *p->watches[i]);
        if (!p->watches[i])
            abort();
        LOOP_CHECK(jn_loop_watch_start(loop, p->watches[i], p->pipes[i][0], JN_LOOP_READ, pair_io,
                                       p) == JN_OK);
    }
}

static void test_watch_stopped_while_pending_is_not_called(void **state)
{
    (void)state;
    pair_t p = {0};
    done_init(&p.done);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(p.pipes[i]), 0);
        /* Readable before the watches exist: both events arrive in one epoll batch. */
        assert_int_equal(write(p.pipes[i][1], "x", 1), 1);
    }
    jn_loop_post(loop, pair_start, &p);
    assert_true(done_wait(&p.done, 5000));
    assert_int_equal(p.calls[0] + p.calls[1], 1);
    assert_int_equal(p.batch_checks, 1);
    for (int i = 0; i < 2; i++) {
        assert_null(p.watches[i]);
        close(p.pipes[i][1]);
    }
    done_cleanup(&p.done);
}

/* ---- a zero-delay timer cannot starve descriptors ---- */

typedef struct {
    int pipe[2];
    jn_loop_watch_t watch;
    jn_loop_timer_t spin;
    long spins;
    bool stop_spinning;
    done_t done;
} starve_t;

static void spin_fire(jn_loop_timer_t *t)
{
    starve_t *s = t->ud;
    s->spins++;
    if (!s->stop_spinning)
        jn_loop_timer_start(loop, t, 0, spin_fire, s);
}

static void starve_io(jn_loop_watch_t *w, unsigned events)
{
    (void)events;
    starve_t *s = w->ud;
    jn_loop_watch_stop(w);
    s->stop_spinning = true;
    jn_loop_timer_stop(&s->spin); /* the test's stack frame holds it */
    done_signal(&s->done);
}

static void starve_start(void *ud)
{
    starve_t *s = ud;
    jn_loop_timer_init(&s->spin);
    jn_loop_timer_start(loop, &s->spin, 0, spin_fire, s);
    LOOP_CHECK(jn_loop_watch_start(loop, &s->watch, s->pipe[0], JN_LOOP_READ, starve_io, s) ==
               JN_OK);
}

static void test_zero_timer_does_not_starve_descriptors(void **state)
{
    (void)state;
    starve_t s = {0};
    done_init(&s.done);
    assert_int_equal(pipe(s.pipe), 0);
    jn_loop_post(loop, starve_start, &s);
    /* Let the timer spin a little before the descriptor becomes readable. */
    assert_int_equal(write(s.pipe[1], "x", 1), 1);
    assert_true(done_wait(&s.done, 5000));
    assert_true(s.spins >= 1);
    close(s.pipe[0]);
    close(s.pipe[1]);
    done_cleanup(&s.done);
}

/* ---- posted work ---- */

enum { POSTERS = 4, POSTS_EACH = 5000 };

typedef struct {
    int last_seen[POSTERS];
    long runs;
    bool out_of_order;
    bool wrong_thread;
    done_t done;
} posts_t;

typedef struct {
    posts_t *p;
    int thread;
    int seq;
} post_item_t;

static void run_item(void *ud)
{
    post_item_t *it = ud;
    posts_t *p = it->p;
    p->wrong_thread |= !jn_loop_on_thread(loop);
    if (it->seq != p->last_seen[it->thread] + 1)
        p->out_of_order = true;
    p->last_seen[it->thread] = it->seq;
    if (++p->runs == (long)POSTERS * POSTS_EACH)
        done_signal(&p->done);
    free(it);
}

typedef struct {
    posts_t *p;
    int thread;
    pthread_barrier_t *go;
} poster_arg_t;

static void *poster(void *arg)
{
    poster_arg_t *a = arg;
    pthread_barrier_wait(a->go);
    for (int i = 1; i <= POSTS_EACH; i++) {
        post_item_t *it = malloc(sizeof *it);
        *it = (post_item_t){a->p, a->thread, i};
        jn_loop_post(loop, run_item, it);
    }
    return NULL;
}

static void test_posts_from_threads_run_in_order(void **state)
{
    (void)state;
    posts_t p = {0};
    done_init(&p.done);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, POSTERS);
    pthread_t threads[POSTERS];
    poster_arg_t args[POSTERS];
    for (int t = 0; t < POSTERS; t++) {
        args[t] = (poster_arg_t){&p, t, &go};
        pthread_create(&threads[t], NULL, poster, &args[t]);
    }
    for (int t = 0; t < POSTERS; t++)
        pthread_join(threads[t], NULL);
    pthread_barrier_destroy(&go);
    assert_true(done_wait(&p.done, 10000));
    assert_int_equal(p.runs, (long)POSTERS * POSTS_EACH);
    assert_false(p.out_of_order);
    assert_false(p.wrong_thread);
    for (int t = 0; t < POSTERS; t++)
        assert_int_equal(p.last_seen[t], POSTS_EACH);
    done_cleanup(&p.done);
}

typedef struct {
    bool inside; /* set while the posting function runs */
    bool ran_inside;
    int order[3];
    int n;
    done_t done;
} self_post_t;

static void self_second(void *ud)
{
    self_post_t *s = ud;
    s->ran_inside |= s->inside;
    s->order[s->n++] = 2;
    done_signal(&s->done);
}

static void self_first(void *ud)
{
    self_post_t *s = ud;
    s->inside = true;
    jn_loop_post(loop, self_second, s);
    s->order[s->n++] = 1;
    s->inside = false;
}

static void test_post_from_the_loop_runs_later(void **state)
{
    (void)state;
    self_post_t s = {0};
    done_init(&s.done);
    jn_loop_post(loop, self_first, &s);
    assert_true(done_wait(&s.done, 5000));
    assert_false(s.ran_inside);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.order[0], 1);
    assert_int_equal(s.order[1], 2);
    done_cleanup(&s.done);
}

static void count_run(void *ud)
{
    (*(int *)ud)++;
}

static void test_stop_runs_what_is_still_posted(void **state)
{
    (void)state;
    jn_loop_t *l = jn_loop_new("stopper");
    jn_loop_spawn(l);
    int ran = 0;
    for (int i = 0; i < 100; i++)
        jn_loop_post(l, count_run, &ran);
    jn_loop_stop(l);
    assert_int_equal(ran, 100);
    /* A loop that never ran still runs its posts when stopped. */
    jn_loop_t *idle = jn_loop_new("idle");
    int idle_ran = 0;
    jn_loop_post(idle, count_run, &idle_ran);
    jn_loop_stop(idle);
    assert_int_equal(idle_ran, 1);
    jn_loop_free(idle);
    jn_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timers_fire_in_deadline_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_stopped_by_another_never_fires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_stopped_while_pending_is_not_called, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zero_timer_does_not_starve_descriptors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_posts_from_threads_run_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_from_the_loop_runs_later, setup, teardown),
        cmocka_unit_test(test_stop_runs_what_is_still_posted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
