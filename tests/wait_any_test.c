/*
 * wait_any_test.c — gh_wait_any over tasks, events, cross-thread events and
 * channels, local and across hubs and threads, with timeouts and kills.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

static void sleeper(void *arg)
{
    gh_sleep((int64_t)(intptr_t)arg);
}

static void test_ready_at_once_lowest_wins(void **state)
{
    (void)state;
    gh_event a, b;
    assert_int_equal(gh_event_init(&a), 0);
    assert_int_equal(gh_event_init(&b), 0);
    gh_chan *c = gh_chan_new(1);
    assert_non_null(c);
    gh_waitable w[] = {{GH_WAIT_EVENT, &a}, {GH_WAIT_CHAN, c}, {GH_WAIT_EVENT, &b}};
    assert_int_equal(gh_wait_any(w, 3, 0), -ETIMEDOUT);
    assert_int_equal(gh_event_set(&b, NULL), 0);
    assert_int_equal(gh_wait_any(w, 3, GH_SEC), 2);
    assert_int_equal(gh_chan_send(c, &a, 0), 0);
    assert_int_equal(gh_wait_any(w, 3, GH_SEC), 1); /* both ready: the lower index */
    assert_int_equal(gh_wait_any(w, 3, GH_SEC), 1); /* nothing consumed */
    void *item;
    assert_int_equal(gh_chan_recv(c, &item, 0), 0);
    assert_ptr_equal(item, &a);
    assert_int_equal(gh_wait_any(w, 3, GH_SEC), 2);
    assert_int_equal(gh_chan_close(c), 0);
    assert_int_equal(gh_wait_any(w, 2, GH_SEC), 1); /* closed: a receive returns at once */
    assert_int_equal(gh_chan_free(c), 0);
    assert_int_equal(gh_event_destroy(&a), 0);
    assert_int_equal(gh_event_destroy(&b), 0);
    end_clean();
}

static void setter_task(void *arg)
{
    gh_sleep(20 * GH_MSEC);
    gh_event_set(arg, NULL);
}

static void test_waits_for_task_and_event(void **state)
{
    (void)state;
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    gh_task *t = gh_spawn(sleeper, (void *)(intptr_t)(20 * GH_MSEC));
    gh_waitable w[] = {{GH_WAIT_EVENT, &ev}, {GH_WAIT_TASK, t}};
    int64_t t0 = gh_now();
    assert_int_equal(gh_wait_any(w, 2, 5 * GH_SEC), 1);
    assert_true(gh_now() - t0 >= 15 * GH_MSEC);
    assert_int_equal(gh_join(t, 0), 0);
    gh_task_release(t);

    gh_task *s = gh_spawn(setter_task, &ev);
    gh_task *long_sleeper = gh_spawn(sleeper, (void *)(intptr_t)(10 * GH_SEC));
    gh_waitable w2[] = {{GH_WAIT_TASK, long_sleeper}, {GH_WAIT_EVENT, &ev}};
    assert_int_equal(gh_wait_any(w2, 2, 5 * GH_SEC), 1);
    assert_int_equal(gh_join(s, GH_SEC), 0);
    assert_int_equal(gh_kill(long_sleeper), 0);
    assert_int_equal(gh_join(long_sleeper, GH_SEC), 0);
    gh_task_release(s);
    gh_task_release(long_sleeper);
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

/* Across threads and hubs: an xevent set by a plain thread, a channel fed by a
 * task of a runtime hub, a task of a runtime hub finishing. */
static void *xevent_setter(void *arg)
{
    sleep_ns(20 * GH_MSEC);
    gh_xevent_set(arg, NULL);
    return NULL;
}

static void chan_feeder(void *arg)
{
    gh_sleep(20 * GH_MSEC);
    gh_chan_send(arg, (void *)(intptr_t)42, GH_SEC);
}

static void test_across_hubs_and_threads(void **state)
{
    (void)state;
    gh_runtime *rt;
    gh_runtime_config cfg = {.threads = 1};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    gh_hub *other = gh_runtime_hub(rt, 0);

    gh_xevent xe;
    assert_int_equal(gh_xevent_init(&xe), 0);
    gh_chan *c = gh_chan_new(0); /* unbuffered: a waiting sender makes it ready */
    assert_non_null(c);
    gh_task *remote = gh_spawn_task_on(other, sleeper, (void *)(intptr_t)(10 * GH_SEC));
    assert_non_null(remote);
    gh_waitable w[] = {{GH_WAIT_TASK, remote}, {GH_WAIT_CHAN, c}, {GH_WAIT_XEVENT, &xe}};

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, xevent_setter, &xe), 0);
    assert_int_equal(gh_wait_any(w, 3, 5 * GH_SEC), 2);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(gh_xevent_reset(&xe), 0);

    assert_int_equal(gh_spawn_on(other, chan_feeder, c), 0);
    assert_int_equal(gh_wait_any(w, 3, 5 * GH_SEC), 1);
    void *item = NULL;
    assert_int_equal(gh_chan_recv(c, &item, 0), 0);
    assert_int_equal((int)(intptr_t)item, 42);

    assert_int_equal(gh_kill(remote), 0); /* it finishes on its own hub */
    assert_int_equal(gh_wait_any(w, 3, 5 * GH_SEC), 0);
    gh_task_release(remote);

    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(gh_chan_free(c), 0);
    gh_xevent_destroy(&xe);
    end_clean();
}

static int waiter_result;
static void waiter_task(void *arg)
{
    gh_waitable *w = arg;
    waiter_result = gh_wait_any(w, 2, 10 * GH_SEC);
}

static void test_timeout_kill_scope_and_bad_input(void **state)
{
    (void)state;
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    gh_chan *c = gh_chan_new(4);
    gh_waitable w[] = {{GH_WAIT_EVENT, &ev}, {GH_WAIT_CHAN, c}};
    int64_t t0 = gh_now();
    assert_int_equal(gh_wait_any(w, 2, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);

    waiter_result = 0;
    gh_task *t = gh_spawn(waiter_task, w);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    assert_int_equal(waiter_result, -ECANCELED);
    gh_task_release(t);

    assert_int_equal(gh_deadline_push(20 * GH_MSEC), 0);
    assert_int_equal(gh_wait_any(w, 2, GH_FOREVER), -ETIMEDOUT);
    assert_int_equal(gh_deadline_pop(), -ETIMEDOUT);

    gh_waitable bad_kind[] = {{99, &ev}};
    gh_waitable null_obj[] = {{GH_WAIT_EVENT, NULL}};
    assert_int_equal(gh_wait_any(NULL, 1, 0), -EINVAL);
    assert_int_equal(gh_wait_any(w, 0, 0), -EINVAL);
    assert_int_equal(gh_wait_any(w, 65, 0), -EINVAL);
    assert_int_equal(gh_wait_any(bad_kind, 1, 0), -EINVAL);
    assert_int_equal(gh_wait_any(null_obj, 1, 0), -EINVAL);
    assert_int_equal(gh_wait_any(w, 2, -2), -EINVAL);
    /* Nothing is left behind: the helpers are gone, the objects free. */
    assert_int_equal(gh_chan_free(c), 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_at_once_lowest_wins),
        cmocka_unit_test(test_waits_for_task_and_event),
        cmocka_unit_test(test_across_hubs_and_threads),
        cmocka_unit_test(test_timeout_kill_scope_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
