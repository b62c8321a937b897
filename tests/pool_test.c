/*
 * pool_test.c — gh_pool, eventlet's GreenPool: spawn waits while the pool is
 * full, waitall, resize, running/free/waiting counts and every error path.
 * Runs under the plain build, ASan and TSan; every test closes its hub clean.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "greenhub.h"
#include "tests/test_util.h"

typedef struct load {
    int inside, max_inside, finished;
    gh_event *gate; /* when set, tasks wait on it before finishing */
    bool forever;   /* wait on the gate without a timeout */
} load;

static void load_task(void *arg)
{
    load *l = arg;
    if (++l->inside > l->max_inside)
        l->max_inside = l->inside;
    if (l->gate)
        gh_event_wait(l->gate, NULL, l->forever ? GH_FOREVER : 10 * GH_SEC);
    else
        gh_sleep(GH_MSEC);
    l->inside--;
    l->finished++;
}

static void test_pool_limits_running(void **state)
{
    (void)state;
    gh_pool *p = gh_pool_new(3);
    assert_non_null(p);
    assert_int_equal(gh_pool_free_slots(p), 3);
    load l = {0};
    /* The root spawns 12: from the 4th on, spawn waits for a slot. */
    for (int i = 0; i < 12; i++)
        assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 10 * GH_SEC), 0);
    assert_true(gh_pool_running(p) <= 3);
    assert_int_equal(gh_pool_waitall(p, 10 * GH_SEC), 0);
    assert_int_equal(l.finished, 12);
    assert_int_equal(l.max_inside, 3);
    assert_int_equal(gh_pool_running(p), 0);
    assert_int_equal(gh_pool_free_slots(p), 3);
    assert_int_equal(gh_pool_waiting(p), 0);
    assert_int_equal(gh_pool_free(p), 0);
    end_clean();
}

typedef struct spawner {
    gh_pool *pool;
    load *l;
    int64_t timeout;
    int result;
    bool returned;
} spawner;

static void spawner_task(void *arg)
{
    spawner *s = arg;
    s->result = gh_pool_spawn(s->pool, load_task, s->l, NULL, s->timeout);
    s->returned = true;
}

static void test_pool_spawn_timeout_and_kill(void **state)
{
    (void)state;
    gh_pool *p = gh_pool_new(1);
    gh_event gate;
    gh_event_init(&gate);
    load l = {.gate = &gate};
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 0), 0);
    assert_int_equal(gh_pool_free_slots(p), 0);
    /* Full: a poll fails at once, a timed spawn only after its timeout. */
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 0), -ETIMEDOUT);
    int64_t t0 = gh_now();
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_pool_waitall(p, 0), -ETIMEDOUT);
    t0 = gh_now();
    assert_int_equal(gh_pool_waitall(p, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);

    /* A waiting spawner that is killed gives up; its function never runs. */
    spawner s = {.pool = p, .l = &l, .timeout = GH_FOREVER, .result = 99};
    gh_task *t = gh_spawn(spawner_task, &s);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_pool_waiting(p), 1);
    assert_int_equal(gh_pool_free(p), -EBUSY);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    assert_int_equal(s.result, -ECANCELED);
    assert_int_equal(gh_pool_waiting(p), 0);

    assert_int_equal(gh_event_set(&gate, NULL), 0);
    assert_int_equal(gh_pool_waitall(p, 10 * GH_SEC), 0);
    assert_int_equal(l.finished, 1);
    assert_int_equal(gh_pool_free(p), 0);
    end_clean();
}

static void test_pool_resize(void **state)
{
    (void)state;
    gh_pool *p = gh_pool_new(1);
    gh_event gate;
    gh_event_init(&gate);
    load l = {.gate = &gate};
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 0), 0);
    spawner s[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (spawner){.pool = p, .l = &l, .timeout = 10 * GH_SEC, .result = 99};
        assert_int_equal(gh_spawn_n(spawner_task, &s[i]), 0);
    }
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_pool_waiting(p), 3);
    assert_int_equal(gh_pool_running(p), 1);

    /* Growing lets two waiting spawners in at once, in order. */
    assert_int_equal(gh_pool_resize(p, 3), 0);
    assert_int_equal(gh_pool_running(p), 3);
    assert_int_equal(gh_pool_free_slots(p), 0);
    assert_int_equal(gh_yield(), 0);
    assert_true(s[0].returned && s[1].returned);
    assert_false(s[2].returned);
    assert_int_equal(gh_pool_waiting(p), 1);
    assert_int_equal(gh_yield(), 0); /* the two new tasks start and wait on the gate */
    assert_int_equal(l.inside, 3);

    /* Shrinking below the running count: nothing is stopped, nothing new starts. */
    assert_int_equal(gh_pool_resize(p, 1), 0);
    assert_int_equal(gh_pool_running(p), 3);
    assert_int_equal(gh_pool_free_slots(p), 0);
    assert_int_equal(gh_pool_resize(p, 0), -EINVAL);

    assert_int_equal(gh_event_set(&gate, NULL), 0);
    assert_int_equal(gh_pool_waitall(p, 10 * GH_SEC), 0);
    assert_int_equal(gh_hub_run(), 0);
    assert_true(s[2].returned);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s[i].result, 0);
    assert_int_equal(l.finished, 4);
    assert_int_equal(l.max_inside, 3);
    assert_int_equal(gh_pool_free(p), 0);
    end_clean();
}

static void handle_task(void *arg)
{
    *(int *)arg = 1;
}

static void *other_thread_spawn(void *arg)
{
    gh_pool *p = arg;
    int x = 0;
    return (void *)(intptr_t)gh_pool_spawn(p, handle_task, &x, NULL, 0);
}

static void test_pool_handle_and_errors(void **state)
{
    (void)state;
    gh_pool *p = gh_pool_new(2);
    int ran = 0;
    gh_task *t = NULL;
    assert_int_equal(gh_pool_spawn(p, handle_task, &ran, &t, 0), 0);
    assert_non_null(t);
    assert_int_equal(gh_pool_free(p), -EBUSY);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(ran, 1);
    assert_int_equal(gh_pool_running(p), 0);

    assert_int_equal(gh_pool_spawn(NULL, handle_task, &ran, NULL, 0), -EINVAL);
    assert_int_equal(gh_pool_spawn(p, NULL, &ran, NULL, 0), -EINVAL);
    assert_int_equal(gh_pool_spawn(p, handle_task, &ran, NULL, -7), -EINVAL);
    assert_int_equal(gh_pool_waitall(NULL, 0), -EINVAL);
    assert_int_equal(gh_pool_free(NULL), -EINVAL);
    errno = 0;
    assert_null(gh_pool_new(0));
    assert_int_equal(errno, EINVAL);

    /* Another thread may not use this hub's pool. */
    pthread_t th;
    void *r;
    assert_int_equal(pthread_create(&th, NULL, other_thread_spawn, p), 0);
    pthread_join(th, &r);
    assert_int_equal((int)(intptr_t)r, -EINVAL);
    assert_int_equal(gh_pool_running(p), 0);
    /* Root waits on a full pool whose task can never finish: -EDEADLK. */
    gh_event never;
    gh_event_init(&never);
    load l = {.gate = &never, .forever = true};
    gh_pool_resize(p, 1);
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 0), 0);
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, GH_FOREVER), -EDEADLK);
    gh_event_set(&never, NULL);
    assert_int_equal(gh_pool_waitall(p, 10 * GH_SEC), 0);
    assert_int_equal(gh_pool_free(p), 0);
    end_clean();
}

typedef struct self_wait {
    gh_pool *pool;
    int result;
} self_wait;

static void self_waitall_task(void *arg)
{
    self_wait *w = arg;
    w->result = gh_pool_waitall(w->pool, GH_FOREVER);
}

static void test_pool_waitall_from_member_is_deadlock(void **state)
{
    (void)state;
    gh_pool *p = gh_pool_new(2);
    self_wait w = {.pool = p, .result = 99};
    assert_int_equal(gh_pool_spawn(p, self_waitall_task, &w, NULL, 0), 0);
    assert_int_equal(gh_pool_waitall(p, 10 * GH_SEC), 0);
    assert_int_equal(w.result, -EDEADLK);
    assert_int_equal(gh_pool_free(p), 0);
    end_clean();
}

static int cb_spawn, cb_wait;
static void cb_pool(void *arg)
{
    gh_pool *p = arg;
    cb_spawn = gh_pool_spawn(p, handle_task, &cb_wait, NULL, GH_FOREVER);
    cb_wait = gh_pool_waitall(p, GH_FOREVER);
}

static void test_pool_timer_callback(void **state)
{
    (void)state;
    gh_pool *p = gh_pool_new(1);
    gh_event gate;
    gh_event_init(&gate);
    load l = {.gate = &gate};
    assert_int_equal(gh_pool_spawn(p, load_task, &l, NULL, 0), 0);
    gh_timer *tm = gh_call_after(GH_MSEC, cb_pool, p);
    gh_timer_release(tm);
    gh_sleep(20 * GH_MSEC);
    assert_int_equal(cb_spawn, -EPERM);
    assert_int_equal(cb_wait, -EPERM);
    gh_event_set(&gate, NULL);
    assert_int_equal(gh_pool_waitall(p, 10 * GH_SEC), 0);
    assert_int_equal(gh_pool_free(p), 0);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_limits_running),
        cmocka_unit_test(test_pool_spawn_timeout_and_kill),
        cmocka_unit_test(test_pool_resize),
        cmocka_unit_test(test_pool_handle_and_errors),
        cmocka_unit_test(test_pool_waitall_from_member_is_deadlock),
        cmocka_unit_test(test_pool_timer_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
