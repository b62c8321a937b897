/*
 * sched_stress_test.c — a random mix of everything that schedules:
 * tasks that return at once (and so run chained on each other's stacks),
 * yield, sleep, wait on an event with a timeout, spawn children and
 * delayed tasks; while the root kills, joins and releases the handles it
 * holds, cancels timers, and another thread hands tasks in with
 * gh_spawn_on.
 *
 * The books must balance: every task spawned starts exactly once and
 * returns exactly once, killed or not; every handoff runs once; joins on
 * finished tasks succeed; and the hub closes clean (no task, timer or
 * handle left). Under ASan and TSan this is the test that would catch a
 * task struct or stack used after it was recycled. The generator is seeded,
 * but timeouts and the other thread make each run's interleaving its own.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greenhub.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer) ||                             \
    defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define ROUNDS 1500
#define REMOTE 20000
#else
#define ROUNDS 10000
#define REMOTE 200000
#endif
#define MAX_TASKS (ROUNDS * 64)
#define HELD      64

enum kind { K_RETURN, K_YIELD, K_SLEEP, K_EVENT, K_SPAWN, K_KINDS };

typedef struct task_rec {
    uint8_t kind;
    uint8_t arg;
    int started, finished;
    int blocked_rc; /* what its blocking calls returned last */
} task_rec;

static task_rec *recs;
static int nrecs;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static gh_event ev;
static int event_sets;
static int bad; /* a check that failed inside a task (cmocka must not run there) */

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void task_main(void *arg);

static task_rec *rec_new(void)
{
    if (nrecs == MAX_TASKS)
        return NULL;
    task_rec *r = &recs[nrecs++];
    r->kind = (uint8_t)rnd(K_KINDS);
    r->arg = (uint8_t)rnd(8);
    return r;
}

static void task_main(void *arg)
{
    task_rec *r = arg;
    if (r->started++ != 0 || r->finished != 0)
        bad = 1;
    switch (r->kind) {
    case K_YIELD:
        for (int i = 0; i <= r->arg; i++)
            r->blocked_rc = gh_yield();
        break;
    case K_SLEEP:
        r->blocked_rc = gh_sleep((int64_t)r->arg * 20 * GH_USEC);
        break;
    case K_EVENT: {
        void *v = NULL;
        r->blocked_rc = gh_event_wait(&ev, &v, (int64_t)(r->arg + 1) * 100 * GH_USEC);
        break;
    }
    case K_SPAWN:
        for (int i = 0; i <= r->arg % 3; i++) {
            task_rec *c = rec_new();
            if (!c)
                break;
            c->kind = (uint8_t)(rnd(2) ? K_RETURN : K_YIELD);
            if (rnd(4) == 0) {
                gh_task *t = gh_spawn_after((int64_t)rnd(200) * GH_USEC, task_main, c);
                if (!t)
                    bad = 1;
                else
                    gh_task_release(t);
            } else if (gh_spawn_n(task_main, c) != 0) {
                bad = 1;
            }
        }
        break;
    default:
        break;
    }
    r->finished++;
}

static atomic_int remote_ran;

static void remote_task(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&remote_ran, 1, memory_order_relaxed);
}

static void *remote_main(void *arg)
{
    gh_hub *h = arg;
    for (int i = 0; i < REMOTE; i++)
        if (gh_spawn_on(h, remote_task, NULL) != 0)
            return (void *)1;
    return NULL;
}

static int timer_fired;

static void timer_cb(void *arg)
{
    (void)arg;
    timer_fired++;
}

static void test_sched_stress(void **state)
{
    (void)state;
    recs = calloc(MAX_TASKS, sizeof *recs);
    assert_non_null(recs);
    assert_int_equal(gh_event_init(&ev), 0);
    gh_task *held[HELD] = {0};
    task_rec *held_rec[HELD] = {0};
    gh_timer *timers[8] = {0};
    gh_hub *h = gh_get_hub();
    assert_non_null(h);
    pthread_t remote;
    assert_int_equal(pthread_create(&remote, NULL, remote_main, h), 0);

    for (int round = 0; round < ROUNDS; round++) {
        /* A batch of new tasks, some with handles kept. */
        int n = 1 + (int)rnd(20);
        for (int i = 0; i < n; i++) {
            task_rec *r = rec_new();
            if (!r)
                break;
            int slot = (int)rnd(HELD);
            if (!held[slot] && rnd(3) == 0) {
                held[slot] = gh_spawn(task_main, r);
                assert_non_null(held[slot]);
                held_rec[slot] = r;
            } else {
                assert_int_equal(gh_spawn_n(task_main, r), 0);
            }
        }
        /* Do something to a held task: kill it, join it, or let it go. */
        for (int k = 0; k < 4; k++) {
            int slot = (int)rnd(HELD);
            if (!held[slot])
                continue;
            switch (rnd(4)) {
            case 0:
                assert_int_equal(gh_kill(held[slot]), 0);
                break;
            case 1: {
                int rc = gh_join(held[slot], rnd(2) ? 0 : 2 * GH_MSEC);
                assert_true(rc == 0 || rc == -ETIMEDOUT);
                if (rc == 0)
                    assert_int_equal(held_rec[slot]->finished, 1);
                break;
            }
            default:
                gh_task_release(held[slot]);
                held[slot] = NULL;
                break;
            }
        }
        /* Timers come and go; the event is set now and then. */
        int ti = (int)rnd(8);
        if (timers[ti]) {
            int rc = gh_timer_cancel(timers[ti]);
            assert_true(rc == 0 || rc == -ENOENT);
            timers[ti] = NULL;
        } else {
            timers[ti] =
                rnd(2) ? gh_call_after((int64_t)rnd(300) * GH_USEC, timer_cb, NULL)
                       : gh_call_repeatedly((1 + (int64_t)rnd(5)) * 50 * GH_USEC, timer_cb, NULL);
            assert_non_null(timers[ti]);
        }
        if (rnd(8) == 0 && gh_event_set(&ev, NULL) == 0)
            event_sets++;
        if (rnd(8) == 0)
            assert_int_equal(gh_event_reset(&ev), 0);
        assert_int_equal(rnd(4) ? gh_yield() : gh_sleep((int64_t)rnd(100) * GH_USEC), 0);
    }

    void *remote_rc;
    pthread_join(remote, &remote_rc);
    assert_null(remote_rc);
    for (int i = 0; i < 8; i++)
        if (timers[i])
            gh_timer_cancel(timers[i]);
    if (!gh_event_is_set(&ev))
        assert_int_equal(gh_event_set(&ev, NULL), 0);
    assert_int_equal(gh_hub_run(), 0); /* everything left runs to its end */

    for (int i = 0; i < HELD; i++)
        if (held[i]) {
            assert_int_equal(gh_join(held[i], 0), 0);
            gh_task_release(held[i]);
        }
    int not_started = 0, not_finished = 0;
    for (int i = 0; i < nrecs; i++) {
        not_started += recs[i].started != 1;
        not_finished += recs[i].finished != 1;
    }
    gh_hub_stats st;
    gh_hub_get_stats(h, &st);
    print_message("%d tasks, %d handoffs, %d timer firings, %d event sets, %llu switches\n", nrecs,
                  atomic_load(&remote_ran), timer_fired, event_sets,
                  (unsigned long long)st.switches);
    assert_int_equal(bad, 0);
    assert_int_equal(not_started, 0);
    assert_int_equal(not_finished, 0);
    assert_int_equal(atomic_load(&remote_ran), REMOTE);
    assert_true(nrecs > ROUNDS);
    assert_true(timer_fired > 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    free(recs);
    assert_int_equal(gh_hub_close(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sched_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
