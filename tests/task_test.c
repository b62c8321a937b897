/*
 * task_test.c — green tasks: spawn, scheduling order, sleep, join, kill,
 * deadlock detection, blocking from callbacks, gh_hub_run / gh_hub_close,
 * hub teardown at thread exit, and 100,000 live tasks at once.
 *
 * Every test ends by closing the hub and asserting it closes clean.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

/* Internal (sched/stack.h): live guarded stacks in the process and their budget. */
long gh__stack_guarded_live(void);
long gh__stack_guard_budget(void);
void gh__stack_set_guard_budget(long budget);

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_SANITIZER 2 /* TSan: a fiber per task is costly in time and memory */
#elif defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#else
#define UNDER_SANITIZER 0
#endif

#define HUB_CLOSES_CLEAN() assert_int_equal(gh_hub_close(), 0)

/* ------------------------------------------------------------ helpers */

typedef struct order_log {
    int seq[64];
    int n;
} order_log;

typedef struct order_arg {
    order_log *log;
    int id;
} order_arg;

static void log_task(void *arg)
{
    order_arg *a = arg;
    a->log->seq[a->log->n++] = a->id;
}

static void count_task(void *arg)
{
    (*(int *)arg)++;
}

static void sleep_forever_task(void *arg)
{
    int *result = arg;
    *result = gh_sleep(GH_FOREVER);
}

/* ------------------------------------------------------------ scheduling */

static void test_task_spawn_only_schedules(void **state)
{
    (void)state;
    int ran = 0;
    gh_task *t = gh_spawn(count_task, &ran);
    assert_non_null(t);
    /* Not run by spawn itself. */
    assert_int_equal(ran, 0);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(ran, 1);
    gh_task_release(t);

    errno = 0;
    assert_null(gh_spawn(NULL, NULL));
    assert_int_equal(errno, EINVAL);
    HUB_CLOSES_CLEAN();
}

static void test_task_fifo_order(void **state)
{
    (void)state;
    order_log log = {.n = 0};
    order_arg args[20];
    for (int i = 0; i < 20; i++) {
        args[i] = (order_arg){&log, i};
        assert_int_equal(gh_spawn_n(log_task, &args[i]), 0);
    }
    assert_int_equal(log.n, 0);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(log.n, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(log.seq[i], i);
    HUB_CLOSES_CLEAN();
}

/*
 * gh_yield's FIFO rule while timers come due mid-batch: each task spins past
 * the timer's period, so the hub is due whenever the scheduler asks it
 * between direct switches (every 16); the tasks ready before the root still
 * all run, twice (start, then after their own yield), before each of the
 * root's yields returns.
 */
#define YF_N 40

typedef struct yf_ctx {
    int seq[2][YF_N];
    int n[2];
    int ticks;
} yf_ctx;

typedef struct yf_arg {
    yf_ctx *c;
    int id;
} yf_arg;

static void yf_spin(int64_t ns)
{
    int64_t end = gh_now() + ns;
    while (gh_now() < end)
        ;
}

static void yf_task(void *arg)
{
    yf_arg *a = arg;
    a->c->seq[0][a->c->n[0]++] = a->id;
    yf_spin(100 * GH_USEC);
    assert_int_equal(gh_yield(), 0);
    a->c->seq[1][a->c->n[1]++] = a->id;
}

static void yf_tick(void *arg)
{
    ((yf_ctx *)arg)->ticks++;
}

static void test_task_yield_fifo_with_due_timers(void **state)
{
    (void)state;
    static yf_ctx c;
    static yf_arg args[YF_N];
    memset(&c, 0, sizeof c);
    gh_task *tasks[YF_N];
    for (int i = 0; i < YF_N; i++) {
        args[i] = (yf_arg){&c, i};
        tasks[i] = gh_spawn(yf_task, &args[i]);
        assert_non_null(tasks[i]);
    }
    gh_timer *tick = gh_call_repeatedly(50 * GH_USEC, yf_tick, &c);
    assert_non_null(tick);

    assert_int_equal(gh_yield(), 0);
    assert_int_equal(c.n[0], YF_N);
    assert_int_equal(c.n[1], 0); /* their yields put them behind the root */
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(c.n[1], YF_N);
    for (int i = 0; i < YF_N; i++) {
        assert_int_equal(c.seq[0][i], i);
        assert_int_equal(c.seq[1][i], i);
    }
    /* The case this is about happened: the timer fired while tasks were ahead. */
    assert_true(c.ticks > 0);
    assert_int_equal(gh_timer_cancel(tick), 0);
    for (int i = 0; i < YF_N; i++) {
        assert_int_equal(gh_join(tasks[i], 10 * GH_SEC), 0);
        gh_task_release(tasks[i]);
    }
    HUB_CLOSES_CLEAN();
}

/*
 * A task that returns hands its stack to the next never-run task of the
 * batch and runs it in place. Each chained task must still be itself to
 * gh_current, keep FIFO order, block and resume, wake its joiners, and
 * leave its handle valid.
 */
#define CHAIN_N 16

typedef struct chain_rec {
    gh_task *handle; /* set by the spawner; NULL for gh_spawn_n tasks */
    gh_task *seen;   /* gh_current() inside the task */
    uint64_t seen_id;
    int order;
    int block_rc;
} chain_rec;

static int chain_next_order;

static void chain_task(void *arg)
{
    chain_rec *r = arg;
    r->seen = gh_current();
    r->seen_id = gh_task_id(r->seen);
    r->order = chain_next_order++;
    if (r->order == 5 || r->order == 11)
        r->block_rc = r->order == 5 ? gh_sleep(GH_MSEC) : gh_yield();
}

typedef struct chain_joiner {
    gh_task *target;
    int rc;
    int target_order_at_wake;
    chain_rec *recs;
} chain_joiner;

static void chain_join_task(void *arg)
{
    chain_joiner *j = arg;
    j->rc = gh_join(j->target, GH_FOREVER);
    j->target_order_at_wake = j->recs[8].order;
}

static void test_task_chained_tasks_keep_their_identity(void **state)
{
    (void)state;
    chain_rec recs[CHAIN_N];
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < CHAIN_N; i++)
        recs[i].order = -1;
    chain_next_order = 0;
    gh_hub_stats before, after;
    gh_hub *h = gh_get_hub();
    assert_non_null(h);

    for (int i = 0; i < CHAIN_N; i++) {
        if (i % 2 == 0) {
            recs[i].handle = gh_spawn(chain_task, &recs[i]);
            assert_non_null(recs[i].handle);
        } else {
            assert_int_equal(gh_spawn_n(chain_task, &recs[i]), 0);
        }
    }
    /* Spawned last, so it first runs after task 8 returned: its join finds it done. */
    chain_joiner j = {.target = recs[8].handle, .rc = -1, .recs = recs};
    gh_task *jt = gh_spawn(chain_join_task, &j);
    assert_non_null(jt);

    gh_hub_get_stats(h, &before);
    assert_int_equal(gh_hub_run(), 0);
    gh_hub_get_stats(h, &after);

    for (int i = 0; i < CHAIN_N; i++) {
        assert_int_equal(recs[i].order, i); /* FIFO, chained or not */
        assert_non_null(recs[i].seen);
        if (recs[i].handle) {
            assert_ptr_equal(recs[i].seen, recs[i].handle);
            assert_int_equal(gh_task_id(recs[i].handle), recs[i].seen_id);
            assert_int_equal(gh_join(recs[i].handle, 0), 0); /* done, handle still valid */
            gh_task_release(recs[i].handle);
        }
        for (int k = 0; k < i; k++)
            assert_int_not_equal(recs[k].seen_id, recs[i].seen_id);
    }
    assert_int_equal(recs[5].block_rc, 0);
    assert_int_equal(recs[11].block_rc, 0);
    assert_int_equal(j.rc, 0);
    assert_int_equal(j.target_order_at_wake, 8);
    assert_int_equal(gh_join(jt, 0), 0);
    gh_task_release(jt);
    /*
     * 17 tasks without chaining cost at least 2 switches each (in and out)
     * plus 4 for the two that block; chained, runs of fresh tasks share one
     * switch in and one out.
     */
    uint64_t switches = after.switches - before.switches;
    assert_true(switches < 2 * (CHAIN_N + 1));
    HUB_CLOSES_CLEAN();
}

typedef struct yielder {
    int runs;
    int rounds;
    int errors;
} yielder;

static void yield_loop_task(void *arg)
{
    yielder *y = arg;
    for (int i = 0; i < y->rounds; i++) {
        y->runs++;
        /* No cmocka assertion inside a task: its longjmp must not leave a task's stack. */
        if (gh_yield() != 0)
            y->errors++;
    }
}

static void test_task_sleep0_runs_ready_then_returns(void **state)
{
    (void)state;
    int a = 0, b = 0;
    yielder y = {0, 10, 0};
    assert_int_equal(gh_spawn_n(count_task, &a), 0);
    assert_int_equal(gh_spawn_n(yield_loop_task, &y), 0);
    assert_int_equal(gh_spawn_n(count_task, &b), 0);

    /* Every task ready before the sleep ran exactly once; the yielder went behind us. */
    assert_int_equal(gh_sleep(0), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 1);
    assert_int_equal(y.runs, 1);

    /* Each further yield gives the yielder exactly one more turn. */
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(y.runs, 2);
    assert_int_equal(gh_sleep(0), 0);
    assert_int_equal(y.runs, 3);

    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(y.runs, 10);
    assert_int_equal(y.errors, 0);
    assert_int_equal(gh_sleep(-2), -EINVAL);
    HUB_CLOSES_CLEAN();
}

static void test_task_spawn_n(void **state)
{
    (void)state;
    int count = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(gh_spawn_n(count_task, &count), 0);
    assert_int_equal(gh_spawn_n(NULL, NULL), -EINVAL);
    assert_int_equal(count, 0);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(count, 100);
    HUB_CLOSES_CLEAN();
}

static void record_time_task(void *arg)
{
    *(int64_t *)arg = gh_now();
}

static void test_task_spawn_after(void **state)
{
    (void)state;
    int64_t ran_at = 0;
    int64_t t0 = gh_now();
    gh_task *t = gh_spawn_after(50 * GH_MSEC, record_time_task, &ran_at);
    assert_non_null(t);
    /* A yield is not enough: it is not ready before its delay. */
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(ran_at, 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_true(ran_at - t0 >= 50 * GH_MSEC);
    assert_true(ran_at - t0 < 50 * GH_MSEC + GH_SEC);
    gh_task_release(t);

    /* Zero delay is a plain spawn. */
    ran_at = 0;
    t = gh_spawn_after(0, record_time_task, &ran_at);
    assert_non_null(t);
    assert_int_equal(gh_yield(), 0);
    assert_true(ran_at != 0);
    gh_task_release(t);

    errno = 0;
    assert_null(gh_spawn_after(-1, record_time_task, &ran_at));
    assert_int_equal(errno, EINVAL);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------------ join */

static void sleep_ms_task(void *arg)
{
    gh_sleep((int64_t)(intptr_t)arg * GH_MSEC);
}

static void test_task_join_repeatable_and_timeout(void **state)
{
    (void)state;
    gh_task *t = gh_spawn(sleep_ms_task, (void *)(intptr_t)200);
    assert_non_null(t);

    int64_t t0 = gh_now();
    assert_int_equal(gh_join(t, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_join(t, 0), -ETIMEDOUT);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_true(gh_now() - t0 >= 200 * GH_MSEC);
    /* Repeatable, with any timeout. */
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(gh_join(t, 0), 0);
    assert_int_equal(gh_join(t, 5 * GH_MSEC), 0);
    assert_int_equal(gh_join(t, -5), -EINVAL);
    assert_int_equal(gh_join(NULL, 0), -EINVAL);
    gh_task_release(t);
    HUB_CLOSES_CLEAN();
}

typedef struct self_join {
    gh_task *self;
    int result;
} self_join;

static void join_self_task(void *arg)
{
    self_join *sj = arg;
    sj->self = gh_current();
    sj->result = gh_join(sj->self, GH_FOREVER);
}

static void test_task_join_self_deadlk(void **state)
{
    (void)state;
    self_join sj = {NULL, 1};
    gh_task *t = gh_spawn(join_self_task, &sj);
    assert_non_null(t);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_ptr_equal(sj.self, t);
    assert_int_equal(sj.result, -EDEADLK);
    gh_task_release(t);
    /* The root joining itself, too. */
    assert_non_null(gh_current());
    assert_int_equal(gh_join(gh_current(), GH_FOREVER), -EDEADLK);
    HUB_CLOSES_CLEAN();
}

typedef struct other_hub {
    pthread_barrier_t barrier;
    gh_task *task;
    int yield_result;
    int close_result;
} other_hub;

static void yield_probe_task(void *arg)
{
    other_hub *o = arg;
    o->yield_result = gh_yield();
}

static void *other_hub_thread(void *arg)
{
    other_hub *o = arg;
    o->task = gh_spawn(yield_probe_task, o);
    pthread_barrier_wait(&o->barrier); /* main thread tries its calls now */
    pthread_barrier_wait(&o->barrier);
    gh_join(o->task, GH_FOREVER);
    o->close_result = gh_hub_close();
    return NULL;
}

/*
 * Another thread's task, from here: a join waits for a message that hub
 * cannot read while its thread is outside greenhub (so it times out), a
 * kill is queued and acted on when that hub runs, and the handle is
 * released from here, after that hub was closed.
 */
static void test_task_handle_other_hub(void **state)
{
    (void)state;
    other_hub o = {.yield_result = 1, .close_result = 1};
    pthread_t th;
    assert_non_null(gh_get_hub());
    pthread_barrier_init(&o.barrier, NULL, 2);
    assert_int_equal(pthread_create(&th, NULL, other_hub_thread, &o), 0);
    pthread_barrier_wait(&o.barrier);
    assert_non_null(o.task);
    assert_int_equal(gh_join(o.task, 0), -ETIMEDOUT);
    assert_int_equal(gh_join(o.task, 20 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_kill(o.task), 0);
    assert_ptr_not_equal(gh_task_hub(o.task), gh_get_hub());
    pthread_barrier_wait(&o.barrier);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&o.barrier);
    assert_int_equal(o.yield_result, -ECANCELED);
    assert_int_equal(o.close_result, 0);
    assert_null(gh_task_hub(o.task)); /* its hub is gone */
    assert_int_equal(gh_join(o.task, GH_FOREVER), 0);
    assert_int_equal(gh_kill(o.task), 0);
    gh_task_release(o.task);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------------ kill */

typedef struct kill_probe {
    int first, second, third, yield_result, join_result, read_result, trampoline_result;
    int started;
    int64_t woke_at;
    gh_task *other;
    int pipe_rfd;
} kill_probe;

static void kill_probe_task(void *arg)
{
    kill_probe *p = arg;
    p->started = 1;
    p->first = gh_sleep(10 * GH_SEC);
    p->woke_at = gh_now();
    /* Sticky: every later blocking call is cancelled too, without waiting. */
    p->second = gh_sleep(GH_MSEC);
    p->third = gh_sleep(GH_FOREVER);
    p->yield_result = gh_yield();
    p->join_result = gh_join(p->other, GH_FOREVER);
    char c;
    p->read_result = (int)gh_read(p->pipe_rfd, &c, 1, GH_FOREVER);
    p->trampoline_result = gh_trampoline(p->pipe_rfd, GH_READ, GH_FOREVER);
}

static void test_task_kill_blocked_is_sticky(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    int forever_result = 1;
    kill_probe p = {.first = 1, .pipe_rfd = pfd[0]};
    p.other = gh_spawn(sleep_forever_task, &forever_result);
    gh_task *t = gh_spawn(kill_probe_task, &p);
    assert_non_null(t);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(p.started, 1);

    int64_t t0 = gh_now();
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_kill(t), 0); /* twice is fine */
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_true(gh_now() - t0 < 5 * GH_SEC);
    assert_int_equal(p.first, -ECANCELED);
    assert_int_equal(p.second, -ECANCELED);
    assert_int_equal(p.third, -ECANCELED);
    assert_int_equal(p.yield_result, -ECANCELED);
    assert_int_equal(p.join_result, -ECANCELED);
    assert_int_equal(p.read_result, -ECANCELED);
    assert_int_equal(p.trampoline_result, -ECANCELED);

    /* Killing a finished task is a no-op. */
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_kill(NULL), -EINVAL);
    gh_task_release(t);

    assert_int_equal(gh_kill(p.other), 0);
    assert_int_equal(gh_join(p.other, GH_FOREVER), 0);
    assert_int_equal(forever_result, -ECANCELED);
    gh_task_release(p.other);
    close(pfd[0]);
    close(pfd[1]);
    HUB_CLOSES_CLEAN();
}

typedef struct unstarted {
    int started;
    int killed_seen;
    int sleep_result;
} unstarted;

static void unstarted_task(void *arg)
{
    unstarted *u = arg;
    u->started = 1;
    u->sleep_result = gh_sleep(GH_SEC);
}

static void test_task_kill_unstarted_starts_cancelled(void **state)
{
    (void)state;
    unstarted u = {0, 0, 1};
    gh_task *t = gh_spawn(unstarted_task, &u);
    assert_non_null(t);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(u.started, 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    /* It ran (so it could release what its argument carries), already cancelled. */
    assert_int_equal(u.started, 1);
    assert_int_equal(u.sleep_result, -ECANCELED);
    assert_true(gh_now() - t0 < GH_SEC);
    gh_task_release(t);

    /* A delayed task killed before its start time starts at once, cancelled too. */
    unstarted v = {0, 0, 1};
    t = gh_spawn_after(3600 * GH_SEC, unstarted_task, &v);
    assert_non_null(t);
    assert_int_equal(gh_kill(t), 0);
    t0 = gh_now();
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_true(gh_now() - t0 < GH_SEC);
    assert_int_equal(v.started, 1);
    assert_int_equal(v.sleep_result, -ECANCELED);
    gh_task_release(t);
    HUB_CLOSES_CLEAN();
}

typedef struct joiner {
    gh_task *target;
    int result;
} joiner;

static void joiner_task(void *arg)
{
    joiner *j = arg;
    j->result = gh_join(j->target, GH_FOREVER);
}

static void test_task_join_cancelled_means_caller_killed(void **state)
{
    (void)state;
    int forever_result = 1;
    gh_task *target = gh_spawn(sleep_forever_task, &forever_result);
    joiner j = {target, 1};
    gh_task *jt = gh_spawn(joiner_task, &j);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_kill(jt), 0);
    assert_int_equal(gh_join(jt, GH_FOREVER), 0);
    assert_int_equal(j.result, -ECANCELED);
    /* The target was not touched by its joiner's death. */
    assert_int_equal(forever_result, 1);
    assert_int_equal(gh_join(target, 0), -ETIMEDOUT);

    assert_int_equal(gh_kill(target), 0);
    assert_int_equal(gh_join(target, GH_FOREVER), 0);
    assert_int_equal(forever_result, -ECANCELED);
    gh_task_release(jt);
    gh_task_release(target);
    HUB_CLOSES_CLEAN();
}

static void test_task_root_deadlock(void **state)
{
    (void)state;
    int forever_result = 1;
    gh_task *t = gh_spawn(sleep_forever_task, &forever_result);
    assert_non_null(t);
    /* Nothing (no timer, fd or other thread) can ever wake the task, so nor the root. */
    int64_t t0 = gh_now();
    assert_int_equal(gh_join(t, GH_FOREVER), -EDEADLK);
    assert_true(gh_now() - t0 < 5 * GH_SEC);
    assert_int_equal(forever_result, 1);

    /* With a timeout the root can wake: that is a timeout, not a deadlock. */
    assert_int_equal(gh_join(t, 10 * GH_MSEC), -ETIMEDOUT);

    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(forever_result, -ECANCELED);
    gh_task_release(t);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------ blocking from a callback */

typedef struct cb_probe {
    int fired;
    int sleep0, sleep1, yield, join, read, tramp, tramp0, run, close, use, wall;
    gh_task *current;
    gh_task *victim;
    int rfd;
} cb_probe;

static void blocking_cb(void *arg)
{
    cb_probe *p = arg;
    char c;
    p->fired++;
    p->current = gh_current();
    p->sleep0 = gh_sleep(0);
    p->sleep1 = gh_sleep(GH_MSEC);
    p->yield = gh_yield();
    p->join = gh_join(p->victim, GH_FOREVER);
    p->read = (int)gh_read(p->rfd, &c, 1, GH_FOREVER);
    p->wall = (int)gh_write_all(p->rfd, &c, 1, GH_FOREVER);
    p->tramp = gh_trampoline(p->rfd, GH_READ, GH_FOREVER);
    p->tramp0 = gh_trampoline(p->rfd, GH_READ, 0);
    p->run = gh_hub_run();
    p->close = gh_hub_close();
    p->use = gh_use_hub("poll");
}

static void test_task_blocking_from_timer_callback_eperm(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    int forever_result = 1;
    cb_probe p = {.rfd = pfd[0], .current = (gh_task *)&p};
    p.victim = gh_spawn(sleep_forever_task, &forever_result);
    const char *backend = gh_hub_backend(gh_get_hub());
    gh_timer *tm = gh_call_after(GH_MSEC, blocking_cb, &p);
    assert_non_null(tm);
    gh_timer_release(tm);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(p.fired, 1);
    assert_null(p.current);
    assert_int_equal(p.sleep0, -EPERM);
    assert_int_equal(p.sleep1, -EPERM);
    assert_int_equal(p.yield, -EPERM);
    assert_int_equal(p.join, -EPERM);
    assert_int_equal(p.read, -EPERM);
    assert_int_equal(p.wall, -EPERM);
    assert_int_equal(p.tramp, -EPERM);
    assert_int_equal(p.tramp0, -EPERM);
    assert_int_equal(p.run, -EPERM);
    assert_int_equal(p.close, -EPERM);
    assert_int_equal(p.use, -EPERM);
    assert_string_equal(gh_hub_backend(gh_get_hub()), backend);
    assert_int_equal(forever_result, 1);

    assert_int_equal(gh_kill(p.victim), 0);
    assert_int_equal(gh_join(p.victim, GH_FOREVER), 0);
    gh_task_release(p.victim);
    close(pfd[0]);
    close(pfd[1]);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------ gh_hub_run / gh_hub_close */

typedef struct run_state {
    int errors;
    int tasks_done;
    int timers_fired;
    int nested_run;
} run_state;

static void run_task(void *arg)
{
    run_state *r = arg;
    if (gh_sleep(10 * GH_MSEC) != 0)
        r->errors++;
    r->nested_run = gh_hub_run();
    r->tasks_done++;
}

static void run_timer_cb(void *arg)
{
    run_state *r = arg;
    r->timers_fired++;
    /* A timer that spawns more work keeps gh_hub_run going. */
    if (r->timers_fired == 1)
        gh_spawn_n(run_task, r);
}

static void test_task_hub_run(void **state)
{
    (void)state;
    /* Only the root: returns at once. */
    assert_int_equal(gh_hub_run(), 0);

    run_state r = {0, 0, 0, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(gh_spawn_n(run_task, &r), 0);
    /* Read before the timers are made: their deadlines count from their own calls. */
    int64_t t0 = gh_now();
    gh_timer_release(gh_call_after(30 * GH_MSEC, run_timer_cb, &r));
    gh_timer_release(gh_call_after(60 * GH_MSEC, run_timer_cb, &r));
    gh_task_release(gh_spawn_after(40 * GH_MSEC, run_task, &r));
    assert_int_equal(gh_hub_run(), 0);
    assert_true(gh_now() - t0 >= 60 * GH_MSEC);
    assert_int_equal(r.tasks_done, 7);
    assert_int_equal(r.timers_fired, 2);
    assert_int_equal(r.nested_run, -EPERM);
    assert_int_equal(r.errors, 0);
    assert_int_equal(gh_hub_run(), 0);
    HUB_CLOSES_CLEAN();
}

static void noop_cb(void *arg)
{
    (void)arg;
}

typedef struct pipe_reader {
    int fd;
    ssize_t result;
    char c;
} pipe_reader;

static void pipe_reader_task(void *arg)
{
    pipe_reader *p = arg;
    p->result = gh_read(p->fd, &p->c, 1, GH_FOREVER);
}

static void test_task_hub_close_busy(void **state)
{
    (void)state;
    /* A ready task. */
    int ran = 0;
    assert_int_equal(gh_spawn_n(count_task, &ran), 0);
    assert_int_equal(gh_hub_close(), -EBUSY);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(ran, 1);
    HUB_CLOSES_CLEAN();

    /* A sleeping task. */
    gh_task *t = gh_spawn(sleep_ms_task, (void *)(intptr_t)20);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_hub_close(), -EBUSY);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    HUB_CLOSES_CLEAN();

    /* A timer, even one whose handle was dropped. */
    gh_timer *tm = gh_call_after(GH_SEC, noop_cb, NULL);
    assert_int_equal(gh_hub_close(), -EBUSY);
    assert_int_equal(gh_timer_cancel(tm), 0);
    gh_timer_release(gh_call_after(5 * GH_MSEC, noop_cb, NULL));
    assert_int_equal(gh_hub_close(), -EBUSY);
    assert_int_equal(gh_hub_run(), 0);
    HUB_CLOSES_CLEAN();

    /* An fd waiter. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pipe_reader pr = {pfd[0], -100, 0};
    t = gh_spawn(pipe_reader_task, &pr);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(pr.result, -100);
    assert_int_equal(gh_hub_close(), -EBUSY);
    assert_int_equal(write(pfd[1], "x", 1), 1);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(pr.result, 1);
    assert_int_equal(pr.c, 'x');
    gh_task_release(t);
    assert_int_equal(gh_close(pfd[0]), 0);
    close(pfd[1]);
    HUB_CLOSES_CLEAN();
    /* Closing with no hub at all is fine. */
    HUB_CLOSES_CLEAN();
}

/* --------------------------------------------------- thread exit frees it */

typedef struct exit_thread {
    long guarded_inside;
    int finished;
    int never_ran;
} exit_thread;

static void finish_quickly_task(void *arg)
{
    exit_thread *e = arg;
    gh_sleep(GH_MSEC);
    e->finished++;
}

static void sleep_an_hour_task(void *arg)
{
    (void)arg;
    gh_sleep(3600 * GH_SEC);
}

static void *exit_thread_main(void *arg)
{
    exit_thread *e = arg;
    for (int i = 0; i < 20; i++)
        gh_spawn_n(finish_quickly_task, e);
    for (int i = 0; i < 30; i++)
        gh_spawn_n(sleep_an_hour_task, e);
    gh_task *unstarted = gh_spawn(sleep_an_hour_task, e);
    gh_task_release(unstarted);
    gh_task_release(gh_spawn_after(3600 * GH_SEC, sleep_an_hour_task, e));
    gh_timer_release(gh_call_after(3600 * GH_SEC, noop_cb, NULL));
    gh_timer_release(gh_call_repeatedly(3600 * GH_SEC, noop_cb, NULL));
    while (e->finished < 20)
        gh_sleep(GH_MSEC);
    gh_yield(); /* the long sleepers all started */
    e->guarded_inside = gh__stack_guarded_live();
    /* And a few tasks in the run queue, never run. */
    for (int i = 0; i < 5; i++)
        gh_spawn_n(count_task, &e->never_ran);
    /*
     * Leave with 31 blocked tasks, 5 ready ones, a delayed one and two timers:
     * the thread's exit frees it all.
     */
    return NULL;
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_task_hub_freed_at_thread_exit(void **state)
{
    (void)state;
    long before = gh__stack_guarded_live();
    int maps_before = count_maps();
    for (int round = 0; round < 3; round++) {
        exit_thread e = {0, 0, 0};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, exit_thread_main, &e), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(e.finished, 20);
        assert_int_equal(e.never_ran, 0);
        /* 50 task stacks and MAINLOOP's were live inside (when guards are in budget). */
        assert_true(e.guarded_inside >= before + 51 || gh__stack_guard_budget() < before + 51);
        assert_int_equal(gh__stack_guarded_live(), before);
    }
    /* Stacks unmapped, not merely forgotten (a little slack for the allocator). */
    int maps_after = count_maps();
#if UNDER_SANITIZER != 2 /* TSan maps and keeps memory of its own for every fiber */
    assert_true(maps_after >= 0 && maps_after <= maps_before + 8);
#else
    (void)maps_after;
    (void)maps_before;
#endif
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------- 100,000 live tasks */

typedef struct live_state {
    int n;
    int started, live, max_live, count, errors;
    long guarded_at_peak;
    uint64_t stats_live_at_peak;
} live_state;

static void live_task(void *arg)
{
    live_state *s = arg;
    s->started++;
    s->live++;
    if (s->live > s->max_live)
        s->max_live = s->live;
    if (s->started == s->n) {
        gh_hub_stats st;
        gh_hub_get_stats(gh_get_hub(), &st);
        s->stats_live_at_peak = st.tasks_live;
        s->guarded_at_peak = gh__stack_guarded_live();
    }
    /* Sleep on a timer until every task has started, so all are alive at once. */
    do {
        if (gh_sleep(50 * GH_MSEC) != 0)
            s->errors++;
    } while (s->started < s->n);
    s->count++;
    s->live--;
}

static void test_task_100k_live(void **state)
{
    (void)state;
#if UNDER_SANITIZER
    /*
     * Each task costs the sanitizers far more (ASan's shadow and fake stacks,
     * a TSan fiber per task, slow to make and to free): fewer tasks, and a guard budget
     * shrunk below their number so they still cross from guarded to canary
     * stacks.
     */
    const int n = UNDER_SANITIZER == 2 ? 200 : 20000;
    long saved_budget = gh__stack_guard_budget();
    gh__stack_set_guard_budget(gh__stack_guarded_live() + n / 4);
#else
    const int n = 100000;
#endif
    static live_state s;
    memset(&s, 0, sizeof s);
    s.n = n;
    for (int i = 0; i < n; i++)
        assert_int_equal(gh_spawn_n(live_task, &s), 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_hub_run(), 0);
    int64_t ms = (gh_now() - t0) / GH_MSEC;
    print_message("%d live tasks: %lld ms, guarded stacks at peak %ld (budget %ld)\n", n,
                  (long long)ms, s.guarded_at_peak, gh__stack_guard_budget());
    assert_int_equal(s.started, n);
    assert_int_equal(s.count, n);
    assert_int_equal(s.max_live, n);
    assert_int_equal(s.errors, 0);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.stats_live_at_peak, (uint64_t)n);
    if (gh__stack_guard_budget() >= n) {
        /* Guard regions (Linux 6.13+) cost no mapping: every stack had its guard page. */
        assert_true(s.guarded_at_peak >= n);
    } else {
        /* More tasks than the guard budget: the rest ran on canary stacks. */
        assert_true(s.guarded_at_peak <= gh__stack_guard_budget());
    }
#if UNDER_SANITIZER
    gh__stack_set_guard_budget(saved_budget);
#endif
    HUB_CLOSES_CLEAN();
    /* Closing the hub unmapped every cached stack. */
    assert_int_equal(gh__stack_guarded_live(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_spawn_only_schedules),
        cmocka_unit_test(test_task_fifo_order),
        cmocka_unit_test(test_task_yield_fifo_with_due_timers),
        cmocka_unit_test(test_task_chained_tasks_keep_their_identity),
        cmocka_unit_test(test_task_sleep0_runs_ready_then_returns),
        cmocka_unit_test(test_task_spawn_n),
        cmocka_unit_test(test_task_spawn_after),
        cmocka_unit_test(test_task_join_repeatable_and_timeout),
        cmocka_unit_test(test_task_join_self_deadlk),
        cmocka_unit_test(test_task_handle_other_hub),
        cmocka_unit_test(test_task_kill_blocked_is_sticky),
        cmocka_unit_test(test_task_kill_unstarted_starts_cancelled),
        cmocka_unit_test(test_task_join_cancelled_means_caller_killed),
        cmocka_unit_test(test_task_root_deadlock),
        cmocka_unit_test(test_task_blocking_from_timer_callback_eperm),
        cmocka_unit_test(test_task_hub_run),
        cmocka_unit_test(test_task_hub_close_busy),
        cmocka_unit_test(test_task_hub_freed_at_thread_exit),
        cmocka_unit_test(test_task_100k_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
