/*
 * tpool_test.c — gh_tpool: blocking calls on native threads while the
 * calling task waits green; default and private pools, sizes, timeouts (the
 * job still completes and its result is dropped: ASan/TSan check nothing is
 * freed early), kill, plain-thread callers and the error paths.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "greenhub.h"
#include "tests/test_util.h"

/*
 * A blocking job: counts itself in, records the peak, then blocks the thread
 * until `release` is set (or 20 s pass), then returns arg + 1.
 */
typedef struct gate {
    atomic_int inside, peak, finished, release;
} gate;

static gate g;

static void gate_reset(void)
{
    atomic_store(&g.inside, 0);
    atomic_store(&g.peak, 0);
    atomic_store(&g.finished, 0);
    atomic_store(&g.release, 0);
}

static void *gate_job(void *arg)
{
    int in = atomic_fetch_add(&g.inside, 1) + 1;
    int peak = atomic_load(&g.peak);
    while (in > peak && !atomic_compare_exchange_weak(&g.peak, &peak, in)) {
    }
    int64_t end = gh_now() + 20 * GH_SEC;
    while (!atomic_load(&g.release) && gh_now() < end)
        sleep_ns(GH_MSEC);
    atomic_fetch_sub(&g.inside, 1);
    atomic_fetch_add(&g.finished, 1);
    return (void *)((intptr_t)arg + 1);
}

static void *plus_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

typedef struct caller {
    gh_tpool *pool; /* NULL: the default pool */
    int64_t timeout;
    void *arg;
    void *result;
    int err;
    bool done;
} caller;

static void caller_task(void *arg)
{
    caller *c = arg;
    c->err = c->pool ? gh_tpool_run_on(c->pool, gate_job, c->arg, &c->result, c->timeout)
                     : gh_tpool_run(gate_job, c->arg, &c->result, c->timeout);
    c->done = true;
}

static int ticks;
static void ticker_task(void *arg)
{
    gate *gg = arg;
    while (!atomic_load(&gg->release)) {
        ticks++;
        gh_sleep(GH_MSEC);
    }
}

static void test_tpool_tasks_wait_green_and_run_in_parallel(void **state)
{
    (void)state;
    gate_reset();
    ticks = 0;
    caller c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (caller){.timeout = 30 * GH_SEC, .arg = (void *)(intptr_t)(100 * i), .err = 99};
        assert_int_equal(gh_spawn_n(caller_task, &c[i]), 0);
    }
    assert_int_equal(gh_spawn_n(ticker_task, &g), 0);
    /* Four blocking jobs on the default pool (4 threads) at once... */
    while (atomic_load(&g.inside) < 4)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    /* ...while this hub keeps running its tasks. */
    int t0 = ticks;
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_true(ticks > t0);
    atomic_store(&g.release, 1);
    assert_int_equal(gh_hub_run(), 0);
    for (int i = 0; i < 4; i++) {
        assert_true(c[i].done);
        assert_int_equal(c[i].err, 0);
        assert_ptr_equal(c[i].result, (void *)(intptr_t)(100 * i + 1));
    }
    assert_int_equal(atomic_load(&g.peak), 4);
    end_clean();
}

static void *plain_thread_caller(void *arg)
{
    void *r = NULL;
    int err = gh_tpool_run(plus_one, arg, &r, 10 * GH_SEC);
    return err ? NULL : r;
}

static void test_tpool_plain_thread_blocks(void **state)
{
    (void)state;
    pthread_t th;
    void *r;
    void *base = (void *)(intptr_t)40;
    assert_int_equal(pthread_create(&th, NULL, plain_thread_caller, base), 0);
    pthread_join(th, &r);
    assert_ptr_equal(r, (void *)(intptr_t)41);
    /* And from the main thread, which has no hub here: it blocks too. */
    void *res = NULL;
    assert_int_equal(gh_tpool_run(plus_one, base, &res, 10 * GH_SEC), 0);
    assert_ptr_equal(res, (void *)(intptr_t)41);
    assert_int_equal(gh_tpool_run(plus_one, base, NULL, 10 * GH_SEC), 0);
    end_clean();
}

static void test_tpool_timeout_drops_result(void **state)
{
    (void)state;
    gate_reset();
    gh_get_hub();
    void *res = (void *)1;
    int64_t t0 = gh_now();
    assert_int_equal(gh_tpool_run(gate_job, NULL, &res, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_ptr_equal(res, (void *)1); /* untouched */
    /* The job is still running; it completes later and nothing is freed early. */
    assert_int_equal(atomic_load(&g.finished), 0);
    /* A zero timeout queues the job and gives up at once. */
    assert_int_equal(gh_tpool_run(gate_job, NULL, &res, 0), -ETIMEDOUT);
    atomic_store(&g.release, 1);
    assert_true(wait_at_least(&g.finished, 2, 20 * GH_SEC));
    /* The hub holds nothing of the dropped calls. */
    assert_int_equal(gh_hub_run(), 0);
    end_clean();
}

static void test_tpool_kill_waiter(void **state)
{
    (void)state;
    gate_reset();
    caller c = {.timeout = GH_FOREVER, .err = 99};
    gh_task *t = gh_spawn(caller_task, &c);
    while (atomic_load(&g.inside) < 1)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(c.err, -ECANCELED);
    atomic_store(&g.release, 1);
    assert_true(wait_at_least(&g.finished, 1, 20 * GH_SEC));
    end_clean();
}

static void test_tpool_private_pool_size_and_resize(void **state)
{
    (void)state;
    gate_reset();
    gh_tpool *p = gh_tpool_new(2);
    assert_non_null(p);
    caller c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = (caller){.pool = p, .timeout = 30 * GH_SEC, .arg = (void *)(intptr_t)(i), .err = 99};
        assert_int_equal(gh_spawn_n(caller_task, &c[i]), 0);
    }
    while (atomic_load(&g.inside) < 2)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_int_equal(atomic_load(&g.inside), 2); /* never more than its size */
    /* Growing lets a third run now. */
    assert_int_equal(gh_tpool_resize(p, 3), 0);
    assert_int_equal(gh_tpool_resize(p, 0), -EINVAL);
    assert_int_equal(gh_tpool_resize(NULL, 2), -EINVAL);
    while (atomic_load(&g.inside) < 3)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    /* Shrinking back: extra threads leave once idle; the jobs all finish. */
    assert_int_equal(gh_tpool_resize(p, 1), 0);
    atomic_store(&g.release, 1);
    assert_int_equal(gh_hub_run(), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c[i].err, 0);
        assert_ptr_equal(c[i].result, (void *)(intptr_t)(i + 1));
    }
    assert_int_equal(atomic_load(&g.peak), 3);
    /* After the shrink it still works, one at a time. */
    void *res = NULL;
    assert_int_equal(gh_tpool_run_on(p, plus_one, (void *)(intptr_t)(7), &res, 10 * GH_SEC), 0);
    assert_ptr_equal(res, (void *)(intptr_t)(8));
    gh_tpool_free(p);
    end_clean();
}

static void test_tpool_free_runs_abandoned_jobs(void **state)
{
    (void)state;
    gate_reset();
    gh_tpool *p = gh_tpool_new(1);
    gh_get_hub();
    for (int i = 0; i < 3; i++)
        assert_int_equal(gh_tpool_run_on(p, gate_job, NULL, NULL, 0), -ETIMEDOUT);
    atomic_store(&g.release, 1);
    gh_tpool_free(p); /* runs the queued jobs, then joins its thread */
    assert_int_equal(atomic_load(&g.finished), 3);
    end_clean();
}

static void test_tpool_set_size(void **state)
{
    (void)state;
    gate_reset();
    assert_int_equal(gh_tpool_set_size(0), -EINVAL);
    assert_int_equal(gh_tpool_set_size(2), 0);
    caller c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (caller){.timeout = 30 * GH_SEC, .err = 99};
        assert_int_equal(gh_spawn_n(caller_task, &c[i]), 0);
    }
    while (atomic_load(&g.inside) < 2)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_int_equal(atomic_load(&g.inside), 2);
    atomic_store(&g.release, 1);
    assert_int_equal(gh_hub_run(), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(c[i].err, 0);
    assert_int_equal(atomic_load(&g.peak), 2);
    assert_int_equal(gh_tpool_set_size(4), 0);
    end_clean();
}

static int cb_err;
static void cb_tpool(void *arg)
{
    cb_err = gh_tpool_run(plus_one, arg, NULL, GH_FOREVER);
}

static void test_tpool_errors(void **state)
{
    (void)state;
    errno = 0;
    assert_null(gh_tpool_new(0));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(gh_tpool_run(NULL, NULL, NULL, 0), -EINVAL);
    assert_int_equal(gh_tpool_run(plus_one, NULL, NULL, -2), -EINVAL);
    assert_int_equal(gh_tpool_run_on(NULL, plus_one, NULL, NULL, 0), -EINVAL);
    gh_tpool_free(NULL);
    gh_timer *tm = gh_call_after(GH_MSEC, cb_tpool, NULL);
    gh_timer_release(tm);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(cb_err, -EPERM);
    /* A killed task does not even queue the job. */
    gh_kill(gh_current());
    assert_int_equal(gh_tpool_run(plus_one, NULL, NULL, GH_FOREVER), -ECANCELED);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tpool_tasks_wait_green_and_run_in_parallel),
        cmocka_unit_test(test_tpool_plain_thread_blocks),
        cmocka_unit_test(test_tpool_timeout_drops_result),
        cmocka_unit_test(test_tpool_kill_waiter),
        cmocka_unit_test(test_tpool_private_pool_size_and_resize),
        cmocka_unit_test(test_tpool_free_runs_abandoned_jobs),
        cmocka_unit_test(test_tpool_set_size),
        cmocka_unit_test(test_tpool_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
