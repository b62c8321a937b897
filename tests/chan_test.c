/*
 * chan_test.c — gh_chan between tasks of several hubs and plain threads.
 *
 * The exact-count test streams items from producers on 2 runtime hubs and 2
 * plain threads to consumers on the same, and checks that every item is
 * received exactly once. Close drains, waiters are woken by close, a stopping
 * hub loses nothing, and every error path. Runs under the plain build, ASan
 * and TSan; waits on other threads have generous deadlines and no timing
 * check asserts an upper bound.
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

static gh_runtime *start_rt(int threads)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = threads};
    int err = gh_runtime_start(&rt, &cfg);
    if (err)
        fail_msg("gh_runtime_start: %s", gh_strerror(err));
    return rt;
}

/* ------------------------------------------------------- one hub basics */

typedef struct chan_user {
    gh_chan *c;
    int n;
    int64_t timeout;
    int result;
    int got[64];
    int ngot;
    int nsent;
} chan_user;

static void sender_task(void *arg)
{
    chan_user *u = arg;
    for (int i = 0; i < u->n; i++) {
        u->result = gh_chan_send(u->c, (void *)(intptr_t)(i + 1), u->timeout);
        if (u->result)
            return;
        u->nsent++;
    }
}

static void receiver_task(void *arg)
{
    chan_user *u = arg;
    for (int i = 0; i < u->n; i++) {
        void *item;
        u->result = gh_chan_recv(u->c, &item, u->timeout);
        if (u->result)
            return;
        u->got[u->ngot++] = (int)(intptr_t)item;
    }
}

static void test_chan_fifo_one_hub(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(4);
    assert_non_null(c);
    chan_user s = {.c = c, .n = 50, .timeout = GH_FOREVER};
    chan_user r = {.c = c, .n = 50, .timeout = GH_FOREVER};
    assert_int_equal(gh_spawn_n(sender_task, &s), 0);
    assert_int_equal(gh_yield(), 0);
    /* The sender filled the buffer and waits. */
    assert_int_equal(s.nsent, 4);
    assert_int_equal(gh_chan_len(c), 4);
    assert_int_equal(gh_chan_free(c), -EBUSY);
    assert_int_equal(gh_spawn_n(receiver_task, &r), 0);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(s.result, 0);
    assert_int_equal(r.result, 0);
    assert_int_equal(r.ngot, 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(r.got[i], i + 1);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

static void test_chan_poll_timeout_errors(void **state)
{
    (void)state;
    assert_int_equal(gh_chan_send(NULL, NULL, 0), -EINVAL);
    void *item;
    assert_int_equal(gh_chan_recv(NULL, &item, 0), -EINVAL);
    assert_int_equal(gh_chan_close(NULL), -EINVAL);
    assert_int_equal(gh_chan_free(NULL), -EINVAL);

    gh_chan *c = gh_chan_new(1);
    assert_int_equal(gh_chan_recv(c, NULL, 0), -EINVAL);
    assert_int_equal(gh_chan_recv(c, &item, -2), -EINVAL);
    assert_int_equal(gh_chan_recv(c, &item, 0), -EAGAIN);
    int64_t t0 = gh_now();
    assert_int_equal(gh_chan_recv(c, &item, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_chan_send(c, (void *)1, 0), 0);
    assert_int_equal(gh_chan_send(c, (void *)2, 0), -EAGAIN);
    t0 = gh_now();
    assert_int_equal(gh_chan_send(c, (void *)2, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_chan_len(c), 1);
    assert_int_equal(gh_chan_recv(c, &item, 0), 0);
    assert_ptr_equal(item, (void *)1);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

static void *thread_recv_timeout(void *arg)
{
    gh_chan *c = arg;
    void *item;
    int64_t t0 = gh_now();
    int err = gh_chan_recv(c, &item, 20 * GH_MSEC);
    if (gh_now() - t0 < 20 * GH_MSEC)
        err = 1000; /* early */
    return (void *)(intptr_t)err;
}

static void test_chan_plain_thread_timeout(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(2);
    pthread_t th;
    void *r;
    assert_int_equal(pthread_create(&th, NULL, thread_recv_timeout, c), 0);
    pthread_join(th, &r);
    assert_int_equal((int)(intptr_t)r, -ETIMEDOUT);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

static void test_chan_kill_waiters(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(1);
    chan_user r = {.c = c, .n = 1, .timeout = GH_FOREVER, .result = 99};
    gh_task *t = gh_spawn(receiver_task, &r);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    assert_int_equal(r.result, -ECANCELED);
    /* The killed receiver took nothing: the item stays for the next one. */
    assert_int_equal(gh_chan_send(c, (void *)3, 0), 0);
    assert_int_equal(gh_chan_len(c), 1);

    chan_user s = {.c = c, .n = 1, .timeout = GH_FOREVER, .result = 99};
    t = gh_spawn(sender_task, &s);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    assert_int_equal(s.result, -ECANCELED);
    assert_int_equal(gh_chan_len(c), 1);
    void *item;
    assert_int_equal(gh_chan_recv(c, &item, 0), 0);
    assert_ptr_equal(item, (void *)3);
    assert_int_equal(gh_chan_recv(c, &item, 0), -EAGAIN);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

static int cb_send, cb_recv;
static void cb_chan(void *arg)
{
    gh_chan *c = arg;
    cb_send = gh_chan_send(c, (void *)4, 0); /* no wait needed: allowed */
    void *item;
    cb_recv = gh_chan_recv(c, &item, GH_FOREVER);
    cb_recv = gh_chan_recv(c, &item, GH_FOREVER); /* empty: would block */
}

static void test_chan_timer_callback(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(1);
    gh_timer *tm = gh_call_after(GH_MSEC, cb_chan, c);
    gh_timer_release(tm);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(cb_send, 0);
    assert_int_equal(cb_recv, -EPERM);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

/* ---------------------------------------------------------------- close */

static void test_chan_close_drains(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(8);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(gh_chan_send(c, (void *)(intptr_t)i, 0), 0);
    assert_int_equal(gh_chan_close(c), 0);
    assert_int_equal(gh_chan_close(c), -EALREADY);
    assert_int_equal(gh_chan_send(c, (void *)9, 0), -EPIPE);
    assert_int_equal(gh_chan_send(c, (void *)9, GH_FOREVER), -EPIPE);
    /* Receivers drain the buffer, in order, then get -EPIPE, every time. */
    chan_user r = {.c = c, .n = 10, .timeout = GH_FOREVER};
    assert_int_equal(gh_spawn_n(receiver_task, &r), 0);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(r.ngot, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(r.got[i], i + 1);
    assert_int_equal(r.result, -EPIPE);
    void *item;
    assert_int_equal(gh_chan_recv(c, &item, 0), -EPIPE);
    assert_int_equal(gh_chan_recv(c, &item, GH_FOREVER), -EPIPE);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

static void *thread_recv_forever(void *arg)
{
    gh_chan *c = arg;
    void *item;
    return (void *)(intptr_t)gh_chan_recv(c, &item, GH_FOREVER);
}

static void *thread_send_forever(void *arg)
{
    gh_chan *c = arg;
    return (void *)(intptr_t)gh_chan_send(c, (void *)77, GH_FOREVER);
}

typedef struct close_waiter {
    gh_chan *c;
    bool send;
    atomic_int *ready; /* bumped just before waiting */
    atomic_int *done;
    int result;
} close_waiter;

static void close_waiter_task(void *arg)
{
    close_waiter *w = arg;
    void *item;
    atomic_fetch_add(w->ready, 1);
    w->result = w->send ? gh_chan_send(w->c, (void *)55, GH_FOREVER)
                        : gh_chan_recv(w->c, &item, GH_FOREVER);
    atomic_fetch_add(w->done, 1);
}

static void test_chan_close_wakes_every_waiter(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2);
    atomic_int ready = 0, done = 0;

    /* Receivers on an empty channel: two hubs' tasks and a plain thread. */
    gh_chan *rc = gh_chan_new(2);
    close_waiter rw[2];
    for (int i = 0; i < 2; i++) {
        rw[i] = (close_waiter){.c = rc, .ready = &ready, .done = &done, .result = 99};
        assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, i), close_waiter_task, &rw[i]), 0);
    }
    pthread_t rth;
    assert_int_equal(pthread_create(&rth, NULL, thread_recv_forever, rc), 0);

    /* Senders on a full channel: same again. */
    gh_chan *sc = gh_chan_new(1);
    assert_int_equal(gh_chan_send(sc, (void *)1, 0), 0);
    close_waiter sw[2];
    for (int i = 0; i < 2; i++) {
        sw[i] = (close_waiter){.c = sc, .send = true, .ready = &ready, .done = &done, .result = 99};
        assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, i), close_waiter_task, &sw[i]), 0);
    }
    pthread_t sth;
    assert_int_equal(pthread_create(&sth, NULL, thread_send_forever, sc), 0);

    assert_true(wait_at_least(&ready, 4, 20 * GH_SEC));
    sleep_ns(50 * GH_MSEC); /* let them park; close is correct either way */
    assert_int_equal(atomic_load(&done), 0);
    assert_int_equal(gh_chan_close(rc), 0);
    assert_int_equal(gh_chan_close(sc), 0);
    assert_true(wait_at_least(&done, 4, 20 * GH_SEC));
    void *r;
    pthread_join(rth, &r);
    assert_int_equal((int)(intptr_t)r, -EPIPE);
    pthread_join(sth, &r);
    assert_int_equal((int)(intptr_t)r, -EPIPE);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(rw[i].result, -EPIPE);
        assert_int_equal(sw[i].result, -EPIPE);
    }
    /* The item buffered before close is still there, and only it. */
    void *item;
    assert_int_equal(gh_chan_recv(sc, &item, 0), 0);
    assert_ptr_equal(item, (void *)1);
    assert_int_equal(gh_chan_recv(sc, &item, 0), -EPIPE);
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(gh_chan_free(rc), 0);
    assert_int_equal(gh_chan_free(sc), 0);
    end_clean();
}

static void *thread_send_three(void *arg)
{
    gh_chan *c = arg;
    for (int i = 1; i <= 3; i++)
        if (gh_chan_send(c, (void *)(intptr_t)i, 10 * GH_SEC) != 0)
            return (void *)(intptr_t)i;
    return NULL;
}

static void test_chan_unbuffered(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(0);
    void *item;
    /* No receiver waits: a send cannot complete. */
    assert_int_equal(gh_chan_send(c, (void *)1, 0), -EAGAIN);
    assert_int_equal(gh_chan_recv(c, &item, 0), -EAGAIN);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_send_three, c), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(gh_chan_recv(c, &item, 10 * GH_SEC), 0);
        assert_ptr_equal(item, (void *)(intptr_t)i);
        assert_int_equal(gh_chan_len(c), 0);
    }
    void *r;
    pthread_join(th, &r);
    assert_null(r);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

/* ------------------------------------- 2 hubs + 2 plain threads, exact */

/*
 * Hub 0 and hub 1 each run 2 producer and 2 consumer tasks; plain thread 0
 * produces, plain thread 1 consumes: 5 producers, 5 consumers, one channel.
 * Run with capacity 64 (mostly buffered), 1 and 0 (unbuffered: every item is
 * a direct hand-off and most of them a cross-thread wake).
 */
#define PC_TASKS_PER_HUB 2
#define PC_PRODUCERS     (2 * PC_TASKS_PER_HUB + 1)
#define PC_CONSUMERS     (2 * PC_TASKS_PER_HUB + 1)
#define PC_ITEMS         4000 /* per producer */
#define PC_TOTAL         (PC_PRODUCERS * PC_ITEMS)

typedef struct pc_shared {
    gh_chan *c;
    atomic_uchar seen[PC_TOTAL];
    atomic_int received;
    atomic_int producers_done, consumers_done;
    atomic_int errors;
} pc_shared;

typedef struct pc_role {
    pc_shared *sh;
    int index;
} pc_role;

static void pc_produce(pc_role *r)
{
    for (int i = 0; i < PC_ITEMS; i++) {
        /* Item values are 1-based so that NULL is never sent. */
        intptr_t v = (intptr_t)r->index * PC_ITEMS + i + 1;
        if (gh_chan_send(r->sh->c, (void *)v, 30 * GH_SEC) != 0)
            atomic_fetch_add(&r->sh->errors, 1);
    }
    atomic_fetch_add(&r->sh->producers_done, 1);
}

static void pc_consume(pc_role *r)
{
    for (;;) {
        void *item;
        int err = gh_chan_recv(r->sh->c, &item, 30 * GH_SEC);
        if (err == -EPIPE)
            break;
        if (err) {
            atomic_fetch_add(&r->sh->errors, 1);
            break;
        }
        intptr_t v = (intptr_t)item - 1;
        if (v < 0 || v >= PC_TOTAL)
            atomic_fetch_add(&r->sh->errors, 1);
        else
            atomic_fetch_add(&r->sh->seen[v], 1);
        atomic_fetch_add(&r->sh->received, 1);
    }
    atomic_fetch_add(&r->sh->consumers_done, 1);
}

static void pc_produce_task(void *arg)
{
    pc_produce(arg);
}
static void pc_consume_task(void *arg)
{
    pc_consume(arg);
}
static void *pc_produce_thread(void *arg)
{
    pc_produce(arg);
    return NULL;
}
static void *pc_consume_thread(void *arg)
{
    pc_consume(arg);
    return NULL;
}

static void pc_run(size_t capacity)
{
    pc_shared *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->c = gh_chan_new(capacity);
    assert_non_null(sh->c);
    gh_runtime *rt = start_rt(2);
    pc_role prod[PC_PRODUCERS], cons[PC_CONSUMERS];
    pthread_t pth, cth;

    for (int i = 0; i < PC_CONSUMERS; i++) {
        cons[i] = (pc_role){sh, i};
        if (i < 2 * PC_TASKS_PER_HUB)
            assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, i % 2), pc_consume_task, &cons[i]), 0);
        else
            assert_int_equal(pthread_create(&cth, NULL, pc_consume_thread, &cons[i]), 0);
    }
    for (int i = 0; i < PC_PRODUCERS; i++) {
        prod[i] = (pc_role){sh, i};
        if (i < 2 * PC_TASKS_PER_HUB)
            assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, i % 2), pc_produce_task, &prod[i]), 0);
        else
            assert_int_equal(pthread_create(&pth, NULL, pc_produce_thread, &prod[i]), 0);
    }
    pthread_join(pth, NULL);
    assert_true(wait_at_least(&sh->producers_done, PC_PRODUCERS, 60 * GH_SEC));
    /* Every item is sent; closing now lets the consumers drain and stop. */
    assert_int_equal(gh_chan_close(sh->c), 0);
    pthread_join(cth, NULL);
    assert_true(wait_at_least(&sh->consumers_done, PC_CONSUMERS, 60 * GH_SEC));

    assert_int_equal(atomic_load(&sh->errors), 0);
    assert_int_equal(atomic_load(&sh->received), PC_TOTAL);
    for (int v = 0; v < PC_TOTAL; v++)
        if (atomic_load(&sh->seen[v]) != 1)
            fail_msg("capacity %zu: item %d received %d times", capacity, v,
                     (int)atomic_load(&sh->seen[v]));
    assert_int_equal(gh_chan_len(sh->c), 0);
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(gh_chan_free(sh->c), 0);
    free(sh);
}

static void test_chan_producer_consumer_two_hubs_two_threads(void **state)
{
    (void)state;
    pc_run(64);
    pc_run(1);
    pc_run(0);
    end_clean();
}

/* ------------------------------------------- a stopping hub loses nothing */

typedef struct stop_sender {
    gh_chan *c;
    atomic_int sent;   /* sends that returned 0 */
    atomic_int result; /* the send that ended the loop */
    atomic_int done;
} stop_sender;

static void stop_sender_task(void *arg)
{
    stop_sender *s = arg;
    for (int i = 1;; i++) {
        int err = gh_chan_send(s->c, (void *)(intptr_t)i, GH_FOREVER);
        if (err) {
            atomic_store(&s->result, err);
            break;
        }
        atomic_fetch_add(&s->sent, 1);
    }
    atomic_store(&s->done, 1);
}

static void test_chan_hub_stop_loses_nothing(void **state)
{
    (void)state;
    gh_chan *c = gh_chan_new(8);
    gh_runtime *rt = start_rt(1);
    stop_sender s = {.c = c};
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), stop_sender_task, &s), 0);
    assert_true(wait_at_least(&s.sent, 8, 20 * GH_SEC));
    /* Take a few while it runs, so wakes cross threads both ways. */
    void *item;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(gh_chan_recv(c, &item, 10 * GH_SEC), 0);
        assert_ptr_equal(item, (void *)(intptr_t)i);
    }
    /* The sender waits forever: the stop's drain timeout kills it. */
    assert_int_equal(gh_runtime_stop(rt, 100 * GH_MSEC), -ETIMEDOUT);
    gh_runtime_destroy(rt);
    assert_int_equal(atomic_load(&s.done), 1);
    assert_int_equal(atomic_load(&s.result), -ECANCELED);
    /* Every send that reported success is in the channel, in order, once. */
    int sent = atomic_load(&s.sent);
    assert_int_equal(gh_chan_len(c), (size_t)(sent - 3));
    for (int i = 4; i <= sent; i++) {
        assert_int_equal(gh_chan_recv(c, &item, 0), 0);
        assert_ptr_equal(item, (void *)(intptr_t)i);
    }
    assert_int_equal(gh_chan_recv(c, &item, 0), -EAGAIN);
    assert_int_equal(gh_chan_free(c), 0);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chan_fifo_one_hub),
        cmocka_unit_test(test_chan_poll_timeout_errors),
        cmocka_unit_test(test_chan_plain_thread_timeout),
        cmocka_unit_test(test_chan_kill_waiters),
        cmocka_unit_test(test_chan_timer_callback),
        cmocka_unit_test(test_chan_close_drains),
        cmocka_unit_test(test_chan_close_wakes_every_waiter),
        cmocka_unit_test(test_chan_unbuffered),
        cmocka_unit_test(test_chan_producer_consumer_two_hubs_two_threads),
        cmocka_unit_test(test_chan_hub_stop_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
