/*
 * sync_test.c — hub-local synchronisation: gh_event, gh_sem, gh_queue.
 *
 * Every behaviour and error path of sync/sync.c: values and FIFO hand-off,
 * timeouts (never early), kill, -EPERM from a timer callback, -EDEADLK for a
 * root that would wait forever, -EBUSY on destroy. Runs under the plain
 * build, ASan and TSan. Every test ends with a clean gh_hub_close().
 */
#include <errno.h>
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

/* Run every ready task (and what they make ready) until only the root is left. */
static void run_all(void)
{
    assert_int_equal(gh_hub_run(), 0);
}

/* ------------------------------------------------------------- gh_event */

typedef struct ev_waiter {
    gh_event *ev;
    int64_t timeout;
    int result;
    void *value;
    bool done;
} ev_waiter;

static void ev_waiter_task(void *arg)
{
    ev_waiter *w = arg;
    w->result = gh_event_wait(w->ev, &w->value, w->timeout);
    w->done = true;
}

static void test_event_set_wakes_every_waiter_with_value(void **state)
{
    (void)state;
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    assert_int_equal(gh_event_is_set(&ev), 0);
    ev_waiter w[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (ev_waiter){.ev = &ev, .timeout = GH_FOREVER, .result = 99};
        assert_int_equal(gh_spawn_n(ev_waiter_task, &w[i]), 0);
    }
    assert_int_equal(gh_yield(), 0); /* all three wait now */
    for (int i = 0; i < 3; i++)
        assert_false(w[i].done);
    assert_int_equal(gh_event_destroy(&ev), -EBUSY);

    int token;
    assert_int_equal(gh_event_set(&ev, &token), 0);
    assert_int_equal(gh_event_is_set(&ev), 1);
    assert_int_equal(gh_event_set(&ev, NULL), -EALREADY);
    /* Reset before the waiters run: each still gets the value it was woken with. */
    assert_int_equal(gh_event_reset(&ev), 0);
    assert_int_equal(gh_event_is_set(&ev), 0);
    run_all();
    for (int i = 0; i < 3; i++) {
        assert_true(w[i].done);
        assert_int_equal(w[i].result, 0);
        assert_ptr_equal(w[i].value, &token);
    }
    /* A set event returns at once, also with a zero timeout. */
    assert_int_equal(gh_event_set(&ev, (void *)7), 0);
    void *v = NULL;
    assert_int_equal(gh_event_wait(&ev, &v, 0), 0);
    assert_ptr_equal(v, (void *)7);
    assert_int_equal(gh_event_wait(&ev, NULL, GH_FOREVER), 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

static void test_event_wait_timeout_never_early(void **state)
{
    (void)state;
    gh_event ev;
    gh_event_init(&ev);
    assert_int_equal(gh_event_wait(&ev, NULL, 0), -ETIMEDOUT);
    int64_t t0 = gh_now();
    assert_int_equal(gh_event_wait(&ev, NULL, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    /* A timed-out waiter left the list: destroy is allowed. */
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

static void test_event_kill_waiter(void **state)
{
    (void)state;
    gh_event ev;
    gh_event_init(&ev);
    ev_waiter w = {.ev = &ev, .timeout = GH_FOREVER, .result = 99};
    gh_task *t = gh_spawn(ev_waiter_task, &w);
    assert_non_null(t);
    assert_int_equal(gh_yield(), 0);
    assert_false(w.done);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(w.result, -ECANCELED);
    gh_task_release(t);
    assert_int_equal(gh_event_destroy(&ev), 0);
    /* Setting after the only waiter left wakes nobody and breaks nothing. */
    assert_int_equal(gh_event_set(&ev, NULL), 0);
    end_clean();
}

static void test_event_root_deadlock(void **state)
{
    (void)state;
    gh_event ev;
    gh_event_init(&ev);
    /* Nothing else can ever set it. */
    assert_int_equal(gh_event_wait(&ev, NULL, GH_FOREVER), -EDEADLK);
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

static int cb_wait_result;
static void cb_set_event(void *arg)
{
    gh_event *ev = arg;
    cb_wait_result = gh_event_wait(ev, NULL, GH_FOREVER); /* MAINLOOP may not block */
    gh_event_set(ev, (void *)42);
}

static void test_event_timer_callback(void **state)
{
    (void)state;
    gh_event ev;
    gh_event_init(&ev);
    cb_wait_result = 0;
    gh_timer *tm = gh_call_after(5 * GH_MSEC, cb_set_event, &ev);
    assert_non_null(tm);
    gh_timer_release(tm);
    void *v = NULL;
    assert_int_equal(gh_event_wait(&ev, &v, 10 * GH_SEC), 0);
    assert_ptr_equal(v, (void *)42);
    assert_int_equal(cb_wait_result, -EPERM);
    end_clean();
}

static void test_event_invalid(void **state)
{
    (void)state;
    gh_event ev;
    assert_int_equal(gh_event_init(NULL), -EINVAL);
    gh_event_init(&ev);
    assert_int_equal(gh_event_wait(NULL, NULL, 0), -EINVAL);
    assert_int_equal(gh_event_wait(&ev, NULL, -2), -EINVAL);
    assert_int_equal(gh_event_set(NULL, NULL), -EINVAL);
    assert_int_equal(gh_event_reset(NULL), -EINVAL);
    assert_int_equal(gh_event_destroy(NULL), -EINVAL);
    assert_int_equal(gh_event_is_set(NULL), 0);
    end_clean();
}

static void killed_then_wait(void *arg)
{
    ev_waiter *w = arg;
    gh_kill(gh_current());
    /* Set: succeeds at once, even killed. Not set: -ECANCELED. */
    w->value = (void *)(intptr_t)gh_event_wait(w->ev, NULL, GH_FOREVER);
    gh_event_reset(w->ev);
    w->result = gh_event_wait(w->ev, NULL, GH_FOREVER);
    w->done = true;
}

static void test_event_killed_task(void **state)
{
    (void)state;
    gh_event ev;
    gh_event_init(&ev);
    gh_event_set(&ev, NULL);
    ev_waiter w = {.ev = &ev, .result = 99};
    assert_int_equal(gh_spawn_n(killed_then_wait, &w), 0);
    run_all();
    assert_true(w.done);
    assert_int_equal((int)(intptr_t)w.value, 0);
    assert_int_equal(w.result, -ECANCELED);
    end_clean();
}

/* --------------------------------------------------------------- gh_sem */

typedef struct sem_user {
    gh_sem *sem;
    int id;
    int *order;
    int *norder;
    int result;
    int64_t timeout;
} sem_user;

static void sem_acquire_task(void *arg)
{
    sem_user *u = arg;
    u->result = gh_sem_acquire(u->sem, u->timeout);
    if (u->result == 0)
        u->order[(*u->norder)++] = u->id;
}

static void test_sem_fifo_handoff_no_barging(void **state)
{
    (void)state;
    gh_sem sem;
    assert_int_equal(gh_sem_init(&sem, 0, 0), 0);
    int order[4], norder = 0;
    sem_user u[4];
    for (int i = 0; i < 4; i++) {
        u[i] = (sem_user){.sem = &sem,
                          .id = i,
                          .order = order,
                          .norder = &norder,
                          .result = 99,
                          .timeout = GH_FOREVER};
        assert_int_equal(gh_spawn_n(sem_acquire_task, &u[i]), 0);
    }
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(norder, 0);
    assert_int_equal(gh_sem_destroy(&sem), -EBUSY);

    /* The unit goes straight to the first waiter: the root cannot take it. */
    assert_int_equal(gh_sem_release(&sem), 0);
    assert_int_equal(gh_sem_count(&sem), 0);
    assert_int_equal(gh_sem_acquire(&sem, 0), -ETIMEDOUT);
    assert_int_equal(gh_sem_release(&sem), 0);
    assert_int_equal(gh_sem_release(&sem), 0);
    assert_int_equal(gh_sem_release(&sem), 0);
    run_all();
    assert_int_equal(norder, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(order[i], i);
        assert_int_equal(u[i].result, 0);
    }
    assert_int_equal(gh_sem_count(&sem), 0);
    assert_int_equal(gh_sem_release(&sem), 0);
    assert_int_equal(gh_sem_count(&sem), 1);
    assert_int_equal(gh_sem_acquire(&sem, 0), 0);
    assert_int_equal(gh_sem_destroy(&sem), 0);
    end_clean();
}

static void test_sem_bounded(void **state)
{
    (void)state;
    gh_sem sem;
    assert_int_equal(gh_sem_init(&sem, 3, 2), -EINVAL);
    assert_int_equal(gh_sem_init(NULL, 0, 0), -EINVAL);
    assert_int_equal(gh_sem_init(&sem, 2, 2), 0);
    assert_int_equal(gh_sem_release(&sem), -EOVERFLOW);
    assert_int_equal(gh_sem_count(&sem), 2);
    assert_int_equal(gh_sem_acquire(&sem, 0), 0);
    assert_int_equal(gh_sem_release(&sem), 0);
    assert_int_equal(gh_sem_release(&sem), -EOVERFLOW);
    assert_int_equal(gh_sem_count(&sem), 2);
    /* Unbounded: no such limit. */
    gh_sem un;
    gh_sem_init(&un, 5, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(gh_sem_release(&un), 0);
    assert_int_equal(gh_sem_count(&un), 105);
    assert_int_equal(gh_sem_acquire(NULL, 0), -EINVAL);
    assert_int_equal(gh_sem_acquire(&un, -5), -EINVAL);
    assert_int_equal(gh_sem_release(NULL), -EINVAL);
    end_clean();
}

static void test_sem_timeout_and_kill(void **state)
{
    (void)state;
    gh_sem sem;
    gh_sem_init(&sem, 0, 1);
    int64_t t0 = gh_now();
    assert_int_equal(gh_sem_acquire(&sem, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);

    int order[1], norder = 0;
    sem_user u = {
        .sem = &sem, .order = order, .norder = &norder, .result = 99, .timeout = GH_FOREVER};
    gh_task *t = gh_spawn(sem_acquire_task, &u);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    assert_int_equal(u.result, -ECANCELED);
    /* The killed waiter is gone: the unit stays in the semaphore. */
    assert_int_equal(gh_sem_release(&sem), 0);
    assert_int_equal(gh_sem_count(&sem), 1);
    assert_int_equal(norder, 0);
    /* Root alone waiting on an empty semaphore: nothing can release it. */
    assert_int_equal(gh_sem_acquire(&sem, 0), 0);
    assert_int_equal(gh_sem_acquire(&sem, GH_FOREVER), -EDEADLK);
    assert_int_equal(gh_sem_destroy(&sem), 0);
    end_clean();
}

typedef struct sem_load {
    gh_sem *sem;
    int *inside, *max_inside, *finished;
} sem_load;

static void sem_load_task(void *arg)
{
    sem_load *l = arg;
    assert_int_equal(gh_sem_acquire(l->sem, 10 * GH_SEC), 0);
    if (++*l->inside > *l->max_inside)
        *l->max_inside = *l->inside;
    gh_sleep(GH_MSEC);
    --*l->inside;
    assert_int_equal(gh_sem_release(l->sem), 0);
    ++*l->finished;
}

static void test_sem_limits_concurrency(void **state)
{
    (void)state;
    gh_sem sem;
    gh_sem_init(&sem, 2, 2);
    int inside = 0, max_inside = 0, finished = 0;
    sem_load l = {&sem, &inside, &max_inside, &finished};
    for (int i = 0; i < 20; i++)
        assert_int_equal(gh_spawn_n(sem_load_task, &l), 0);
    run_all();
    assert_int_equal(finished, 20);
    assert_int_equal(max_inside, 2);
    assert_int_equal(gh_sem_count(&sem), 2);
    end_clean();
}

static int cb_sem_poll, cb_sem_block, cb_sem_release;
static void cb_sem(void *arg)
{
    gh_sem *s = arg;
    cb_sem_poll = gh_sem_acquire(s, 0);           /* can succeed at once: allowed */
    cb_sem_block = gh_sem_acquire(s, GH_FOREVER); /* would block: -EPERM */
    cb_sem_release = gh_sem_release(s);
}

static void test_sem_timer_callback(void **state)
{
    (void)state;
    gh_sem sem;
    gh_sem_init(&sem, 1, 0);
    gh_timer *tm = gh_call_after(GH_MSEC, cb_sem, &sem);
    gh_timer_release(tm);
    run_all();
    assert_int_equal(cb_sem_poll, 0);
    assert_int_equal(cb_sem_block, -EPERM);
    assert_int_equal(cb_sem_release, 0);
    assert_int_equal(gh_sem_count(&sem), 1);
    end_clean();
}

/* ------------------------------------------------------------- gh_queue */

typedef struct q_user {
    gh_queue *q;
    int n;
    int64_t timeout;
    int result;
    int got[64];
    int ngot;
    int nput;
} q_user;

static void q_producer(void *arg)
{
    q_user *u = arg;
    for (int i = 0; i < u->n; i++) {
        u->result = gh_queue_put(u->q, (void *)(intptr_t)(i + 1), u->timeout);
        if (u->result)
            return;
        u->nput++;
    }
}

static void q_consumer(void *arg)
{
    q_user *u = arg;
    for (int i = 0; i < u->n; i++) {
        void *item;
        u->result = gh_queue_get(u->q, &item, u->timeout);
        if (u->result)
            return;
        u->got[u->ngot++] = (int)(intptr_t)item;
    }
}

static void test_queue_fifo_put_waits_while_full(void **state)
{
    (void)state;
    gh_queue q;
    assert_int_equal(gh_queue_init(&q, 3), 0);
    q_user p = {.q = &q, .n = 40, .timeout = GH_FOREVER};
    q_user c = {.q = &q, .n = 40, .timeout = GH_FOREVER};
    assert_int_equal(gh_spawn_n(q_producer, &p), 0);
    assert_int_equal(gh_yield(), 0);
    /* The producer filled the queue and waits. */
    assert_int_equal(p.nput, 3);
    assert_int_equal(gh_queue_len(&q), 3);
    assert_int_equal(gh_queue_destroy(&q), -EBUSY);
    assert_int_equal(gh_spawn_n(q_consumer, &c), 0);
    run_all();
    assert_int_equal(p.result, 0);
    assert_int_equal(c.result, 0);
    assert_int_equal(c.ngot, 40);
    for (int i = 0; i < 40; i++)
        assert_int_equal(c.got[i], i + 1);
    assert_int_equal(gh_queue_len(&q), 0);
    assert_int_equal(gh_queue_destroy(&q), 0);
    end_clean();
}

static void test_queue_direct_handoff_to_getter(void **state)
{
    (void)state;
    gh_queue q;
    gh_queue_init(&q, 1);
    q_user c = {.q = &q, .n = 2, .timeout = GH_FOREVER};
    assert_int_equal(gh_spawn_n(q_consumer, &c), 0);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_queue_put(&q, (void *)5, 0), 0);
    /* Given to the waiting getter, not queued: there is room for another. */
    assert_int_equal(gh_queue_len(&q), 0);
    assert_int_equal(gh_queue_put(&q, (void *)6, 0), 0);
    assert_int_equal(gh_queue_len(&q), 1);
    run_all();
    assert_int_equal(c.ngot, 2);
    assert_int_equal(c.got[0], 5);
    assert_int_equal(c.got[1], 6);
    gh_queue_destroy(&q);
    end_clean();
}

static void test_queue_poll_timeout_kill(void **state)
{
    (void)state;
    gh_queue q;
    assert_int_equal(gh_queue_init(&q, 0), -EINVAL);
    assert_int_equal(gh_queue_init(NULL, 1), -EINVAL);
    gh_queue_init(&q, 1);
    void *item;
    assert_int_equal(gh_queue_get(&q, &item, 0), -EAGAIN);
    assert_int_equal(gh_queue_get(&q, NULL, 0), -EINVAL);
    assert_int_equal(gh_queue_get(&q, &item, -3), -EINVAL);
    int64_t t0 = gh_now();
    assert_int_equal(gh_queue_get(&q, &item, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_queue_put(&q, (void *)1, 0), 0);
    assert_int_equal(gh_queue_put(&q, (void *)2, 0), -EAGAIN);
    t0 = gh_now();
    assert_int_equal(gh_queue_put(&q, (void *)2, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_queue_len(&q), 1);

    /* A killed putter's item never enters the queue. */
    q_user p = {.q = &q, .n = 1, .timeout = GH_FOREVER, .result = 99};
    gh_task *t = gh_spawn(q_producer, &p);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    assert_int_equal(p.result, -ECANCELED);
    assert_int_equal(gh_queue_len(&q), 1);
    assert_int_equal(gh_queue_get(&q, &item, 0), 0);
    assert_ptr_equal(item, (void *)1);
    /* Root alone on an empty queue: nothing can ever put. */
    assert_int_equal(gh_queue_get(&q, &item, GH_FOREVER), -EDEADLK);
    assert_int_equal(gh_queue_destroy(&q), 0);
    end_clean();
}

static int cb_q_put, cb_q_put2, cb_q_block;
static void cb_queue(void *arg)
{
    gh_queue *q = arg;
    cb_q_put = gh_queue_put(q, (void *)9, 0);   /* to the waiting root */
    cb_q_put2 = gh_queue_put(q, (void *)10, 0); /* into the queue: now full */
    cb_q_block = gh_queue_put(q, (void *)11, GH_FOREVER);
}

static void test_queue_timer_callback(void **state)
{
    (void)state;
    gh_queue q;
    gh_queue_init(&q, 1);
    gh_timer *tm = gh_call_after(GH_MSEC, cb_queue, &q);
    gh_timer_release(tm);
    void *item = NULL;
    assert_int_equal(gh_queue_get(&q, &item, 10 * GH_SEC), 0);
    assert_ptr_equal(item, (void *)9);
    assert_int_equal(cb_q_put, 0);
    assert_int_equal(cb_q_put2, 0);
    assert_int_equal(cb_q_block, -EPERM);
    assert_int_equal(gh_queue_len(&q), 1);
    assert_int_equal(gh_queue_get(&q, &item, 0), 0);
    assert_ptr_equal(item, (void *)10);
    assert_int_equal(gh_queue_destroy(&q), 0);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_set_wakes_every_waiter_with_value),
        cmocka_unit_test(test_event_wait_timeout_never_early),
        cmocka_unit_test(test_event_kill_waiter),
        cmocka_unit_test(test_event_root_deadlock),
        cmocka_unit_test(test_event_timer_callback),
        cmocka_unit_test(test_event_invalid),
        cmocka_unit_test(test_event_killed_task),
        cmocka_unit_test(test_sem_fifo_handoff_no_barging),
        cmocka_unit_test(test_sem_bounded),
        cmocka_unit_test(test_sem_timeout_and_kill),
        cmocka_unit_test(test_sem_limits_concurrency),
        cmocka_unit_test(test_sem_timer_callback),
        cmocka_unit_test(test_queue_fifo_put_waits_while_full),
        cmocka_unit_test(test_queue_direct_handoff_to_getter),
        cmocka_unit_test(test_queue_poll_timeout_kill),
        cmocka_unit_test(test_queue_timer_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
