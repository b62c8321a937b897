/*
 * xhub_test.c — task handles work from any thread: gh_spawn_task_on, and
 * gh_join, gh_kill, gh_task_release and gh_task_hub on a task of another
 * hub, from tasks (green) and from plain threads (blocking), on every
 * backend; and handles outlive their hub without leaking.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

static gh_runtime *rt_start(int threads)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = threads};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    return rt;
}

typedef struct probe {
    int64_t sleep_ns;
    atomic_int runs;
    atomic_int sleep_result;
    atomic_llong ended_at;
} probe;

static void probe_task(void *arg)
{
    probe *p = arg;
    atomic_fetch_add(&p->runs, 1);
    atomic_store(&p->sleep_result, gh_sleep(p->sleep_ns));
    atomic_store(&p->ended_at, (long long)gh_now());
}

/* A plain thread starts a task on a runtime hub, joins it (blocking) and releases it. */
static void test_xhub_plain_thread_spawn_join_release(void **state)
{
    gh_runtime *rt = rt_start(1);
    gh_hub *hub = gh_runtime_hub(rt, 0);
    probe p = {.sleep_ns = 20 * GH_MSEC};
    int64_t t0 = gh_now();
    gh_task *t = gh_spawn_task_on(hub, probe_task, &p);
    assert_non_null(t);
    assert_ptr_equal(gh_task_hub(t), hub);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(atomic_load(&p.runs), 1);
    assert_int_equal(atomic_load(&p.sleep_result), 0);
    assert_int_equal(gh_join(t, 0), 0); /* repeatable */
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A task of hub 0 starts a task on hub 1 and joins it green, while hub 0 goes on. */
typedef struct green_join {
    gh_hub *other;
    probe p;
    atomic_int join_result, ticks, done;
} green_join;

static void ticker(void *arg)
{
    green_join *g = arg;
    while (!atomic_load(&g->done)) {
        gh_sleep(GH_MSEC);
        atomic_fetch_add(&g->ticks, 1);
    }
}

static void green_joiner(void *arg)
{
    green_join *g = arg;
    gh_spawn_n(ticker, g);
    gh_task *t = gh_spawn_task_on(g->other, probe_task, &g->p);
    if (!t) {
        atomic_store(&g->join_result, -errno);
    } else {
        atomic_store(&g->join_result, gh_join(t, 5 * GH_SEC));
        gh_task_release(t);
    }
    atomic_store(&g->done, 1);
}

static void test_xhub_task_joins_other_hub_green(void **state)
{
    gh_runtime *rt = rt_start(2);
    green_join g = {.other = gh_runtime_hub(rt, 1), .p = {.sleep_ns = 50 * GH_MSEC}};
    atomic_store(&g.join_result, 1);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), green_joiner, &g), 0);
    assert_true(wait_at_least(&g.done, 1, 5 * GH_SEC));
    assert_int_equal(atomic_load(&g.join_result), 0);
    assert_int_equal(atomic_load(&g.p.runs), 1);
    assert_true(atomic_load(&g.ticks) >= 5); /* hub 0 ran its other task meanwhile */
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A kill from a plain thread reaches a task parked forever on another hub. */
static void test_xhub_kill_from_plain_thread(void **state)
{
    gh_runtime *rt = rt_start(1);
    probe p = {.sleep_ns = GH_FOREVER};
    atomic_store(&p.sleep_result, 1);
    gh_task *t = gh_spawn_task_on(gh_runtime_hub(rt, 0), probe_task, &p);
    assert_non_null(t);
    assert_true(wait_at_least(&p.runs, 1, 5 * GH_SEC));
    assert_int_equal(gh_join(t, 20 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&p.sleep_result), -ECANCELED);
    assert_int_equal(gh_kill(t), 0); /* finished: a no-op */
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A joiner killed while it waits on another hub's task returns -ECANCELED; the task lives on. */
typedef struct killed_joiner {
    gh_task *target;
    gh_task *self;
    atomic_int result, done;
} killed_joiner;

static void killed_joiner_task(void *arg)
{
    killed_joiner *k = arg;
    atomic_store(&k->result, gh_join(k->target, 10 * GH_SEC));
    atomic_store(&k->done, 1);
}

static void test_xhub_killed_joiner(void **state)
{
    gh_runtime *rt = rt_start(2);
    probe p = {.sleep_ns = 300 * GH_MSEC};
    gh_task *target = gh_spawn_task_on(gh_runtime_hub(rt, 1), probe_task, &p);
    assert_non_null(target);
    killed_joiner k = {.target = target};
    atomic_store(&k.result, 1);
    gh_task *joiner = gh_spawn_task_on(gh_runtime_hub(rt, 0), killed_joiner_task, &k);
    assert_non_null(joiner);
    sleep_ns(30 * GH_MSEC);
    assert_int_equal(gh_kill(joiner), 0);
    assert_int_equal(gh_join(joiner, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&k.result), -ECANCELED);
    assert_int_equal(atomic_load(&p.ended_at), 0); /* the target still sleeps */
    assert_int_equal(gh_join(target, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&p.sleep_result), 0);
    gh_task_release(joiner);
    gh_task_release(target);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* Released before it ran, from another thread: it still runs, exactly once. */
static void test_xhub_release_before_start(void **state)
{
    gh_runtime *rt = rt_start(1);
    probe p = {.sleep_ns = 0};
    for (int i = 0; i < 100; i++) {
        gh_task *t = gh_spawn_task_on(gh_runtime_hub(rt, 0), probe_task, &p);
        assert_non_null(t);
        gh_task_release(t);
    }
    assert_true(wait_at_least(&p.runs, 100, 5 * GH_SEC));
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&p.runs), 100);
    gh_runtime_destroy(rt);
}

/*
 * Many tasks started from a plain thread on hub 0, each joined and
 * released by a task of hub 1: every one runs once, every join sees it end.
 */
#define MANY 2000

typedef struct many {
    gh_task *tasks[MANY];
    probe p;
    atomic_int joined, bad;
} many;

static void many_joiner(void *arg)
{
    many *m = arg;
    for (int i = 0; i < MANY; i++) {
        if (gh_join(m->tasks[i], 10 * GH_SEC) != 0)
            atomic_fetch_add(&m->bad, 1);
        gh_task_release(m->tasks[i]);
        atomic_fetch_add(&m->joined, 1);
    }
}

static void test_xhub_many_joined_from_other_hub(void **state)
{
    gh_runtime *rt = rt_start(2);
    static many m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < MANY; i++) {
        m.tasks[i] = gh_spawn_task_on(gh_runtime_hub(rt, 0), probe_task, &m.p);
        assert_non_null(m.tasks[i]);
    }
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), many_joiner, &m), 0);
    assert_true(wait_at_least(&m.joined, MANY, 30 * GH_SEC));
    assert_int_equal(atomic_load(&m.bad), 0);
    assert_int_equal(atomic_load(&m.p.runs), MANY);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A stopping hub refuses; handles of a stopped runtime's tasks still join and release. */
static void test_xhub_stopped_runtime(void **state)
{
    gh_runtime *rt = rt_start(1);
    gh_hub *hub = gh_runtime_hub(rt, 0);
    probe p = {.sleep_ns = GH_MSEC};
    gh_task *t = gh_spawn_task_on(hub, probe_task, &p);
    assert_non_null(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    errno = 0;
    assert_null(gh_spawn_task_on(hub, probe_task, &p));
    assert_int_equal(errno, ESHUTDOWN);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(atomic_load(&p.runs), 1);
    gh_task_release(t); /* the hub is a tombstone: freed here, no leak */
    gh_runtime_destroy(rt);

    errno = 0;
    assert_null(gh_spawn_task_on(NULL, probe_task, &p));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(gh_join(NULL, 0), -EINVAL);
    assert_int_equal(gh_kill(NULL), -EINVAL);
    assert_null(gh_task_hub(NULL));
    gh_task_release(NULL);
}

/* A handle released after its hub was closed is freed then (LeakSanitizer checks). */
static void test_xhub_release_after_hub_close(void **state)
{
    probe p = {.sleep_ns = 0};
    gh_task *t = gh_spawn(probe_task, &p);
    assert_non_null(t);
    gh_hub *hub = gh_get_hub();
    assert_ptr_equal(gh_task_hub(t), hub);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(gh_hub_close(), 0);
    assert_null(gh_task_hub(t));
    assert_int_equal(gh_join(t, 0), 0);
    gh_task_release(t);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xhub_plain_thread_spawn_join_release),
        cmocka_unit_test(test_xhub_task_joins_other_hub_green),
        cmocka_unit_test(test_xhub_kill_from_plain_thread),
        cmocka_unit_test(test_xhub_killed_joiner),
        cmocka_unit_test(test_xhub_release_before_start),
        cmocka_unit_test(test_xhub_many_joined_from_other_hub),
        cmocka_unit_test(test_xhub_stopped_runtime),
        cmocka_unit_test(test_xhub_release_after_hub_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
