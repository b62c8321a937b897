/*
 * loop_test.c — fd watchers (gh_watch), per-iteration hooks (gh_tick_add)
 * and deadline scopes (gh_deadline_push/pop), on every backend.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

static void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

static void write_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

/* ------------------------------------------------------------ watchers */

typedef struct watch_rec {
    int calls;
    int last_events;
    int last_fd;
    int sleep_err; /* what a blocking call returned in the callback */
    bool drain;    /* read what is there */
    bool unwatch;  /* unwatch itself on the first call */
    bool close_fd; /* gh_close its fd on the first call */
    gh_watcher *self;
} watch_rec;

static void watch_cb(int fd, int events, void *arg)
{
    watch_rec *r = arg;
    r->calls++;
    r->last_events = events;
    r->last_fd = fd;
    r->sleep_err = gh_sleep(GH_MSEC);
    if (r->drain) {
        char buf[64];
        while (read(fd, buf, sizeof buf) > 0) {
        }
    }
    if (r->unwatch && r->self) {
        assert_int_equal(gh_unwatch(r->self), 0);
        r->self = NULL;
    }
    if (r->close_fd) {
        r->close_fd = false;
        assert_int_equal(gh_close(fd), 0);
    }
}

/* Level-triggered: called at every iteration while unread; a drain stops it. */
static void test_watch_level_triggered(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    watch_rec r = {0};
    gh_watcher *w = gh_watch(p[0], GH_READ, watch_cb, &r);
    assert_non_null(w);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(r.calls, 0); /* nothing to read: never called */

    write_byte(p[1]);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_true(r.calls >= 2); /* not drained: called again and again */
    assert_int_equal(r.last_events, GH_READ);
    assert_int_equal(r.last_fd, p[0]);
    assert_int_equal(r.sleep_err, -EPERM); /* a callback never blocks */

    r.drain = true;
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    int after_drain = r.calls;
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(r.calls, after_drain); /* drained: quiet */

    assert_int_equal(gh_unwatch(w), 0);
    write_byte(p[1]);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(r.calls, after_drain); /* unwatched: never again */
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    end_clean();
}

/* A writable socket, unwatched from its own callback: exactly one call. */
static void test_watch_write_unwatch_in_callback(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    watch_rec r = {.unwatch = true};
    r.self = gh_watch(sv[0], GH_READ | GH_WRITE, watch_cb, &r);
    assert_non_null(r.self);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.last_events, GH_WRITE); /* nothing to read yet */
    assert_null(r.self);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
    end_clean();
}

/* Two watchers of one fd are both told; one task waits beside them on another fd. */
static int side_task_result;
static void side_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    side_task_result = (int)gh_read(fd, &c, 1, 5 * GH_SEC);
}

static void test_watch_beside_tasks(void **state)
{
    (void)state;
    int a[2], b[2];
    make_pipe(a);
    make_pipe(b);
    watch_rec r1 = {.drain = false}, r2 = {.drain = true};
    gh_watcher *w1 = gh_watch(a[0], GH_READ, watch_cb, &r1);
    gh_watcher *w2 = gh_watch(a[0], GH_READ, watch_cb, &r2);
    assert_non_null(w1);
    assert_non_null(w2);
    side_task_result = -1;
    gh_task *t = gh_spawn(side_task, (void *)(intptr_t)b[0]);
    assert_non_null(t);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    write_byte(a[1]);
    write_byte(b[1]);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(side_task_result, 1);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_true(r1.calls >= 1);
    assert_true(r2.calls >= 1);
    gh_task_release(t);
    assert_int_equal(gh_unwatch(w1), 0);
    assert_int_equal(gh_unwatch(w2), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(gh_close(a[i]), 0);
        assert_int_equal(gh_close(b[i]), 0);
    }
    end_clean();
}

/* gh_close of the fd from its own callback ends the watch; unwatch still frees. */
static void test_watch_close_in_callback(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    watch_rec r = {.close_fd = true};
    gh_watcher *w = gh_watch(p[0], GH_READ, watch_cb, &r);
    assert_non_null(w);
    write_byte(p[1]);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(r.calls, 1);
    /* The number is reused by a new pipe: the old watch must not see it. */
    int q[2];
    make_pipe(q);
    write_byte(q[1]);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(gh_unwatch(w), 0);
    assert_int_equal(gh_close(p[1]), 0);
    assert_int_equal(gh_close(q[0]), 0);
    assert_int_equal(gh_close(q[1]), 0);
    end_clean();
}

/* gh_hub_run goes on while a watcher is active, and returns once it unwatches. */
static void test_watch_keeps_hub_run(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    watch_rec r = {.unwatch = true, .drain = true};
    r.self = gh_watch(p[0], GH_READ, watch_cb, &r);
    assert_non_null(r.self);
    write_byte(p[1]);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(r.calls, 1);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    end_clean();
}

/* Another thread closes the fd, then unwatches: both reach the hub's thread. */
typedef struct cross_ctx {
    int fd;
    gh_watcher *w;
    atomic_int step;
    int close_err, unwatch_err;
} cross_ctx;

static void *cross_thread(void *arg)
{
    cross_ctx *c = arg;
    c->close_err = gh_close(c->fd);
    atomic_store(&c->step, 1);
    c->unwatch_err = gh_unwatch(c->w);
    atomic_store(&c->step, 2);
    return NULL;
}

static void test_watch_cross_thread_close_and_unwatch(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    watch_rec r = {0};
    cross_ctx c = {.fd = p[0]};
    c.w = gh_watch(p[0], GH_READ, watch_cb, &r);
    assert_non_null(c.w);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cross_thread, &c), 0);
    int64_t end = gh_now() + 5 * GH_SEC;
    while (atomic_load(&c.step) < 2 && gh_now() < end)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(c.close_err, 0);
    assert_int_equal(c.unwatch_err, 0);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_int_equal(r.calls, 0);
    assert_int_equal(gh_close(p[1]), 0);
    end_clean();
}

static void test_watch_bad_input(void **state)
{
    (void)state;
    errno = 0;
    assert_null(gh_watch(-1, GH_READ, watch_cb, NULL));
    assert_int_equal(errno, EBADF);
    assert_null(gh_watch(1 << 28, GH_READ, watch_cb, NULL));
    assert_int_equal(errno, EBADF);
    int p[2];
    make_pipe(p);
    assert_null(gh_watch(p[0], 0, watch_cb, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(gh_watch(p[0], GH_READ | 0x40, watch_cb, NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(gh_watch(p[0], GH_READ, NULL, NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(gh_unwatch(NULL), -EINVAL);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    assert_null(gh_watch(p[0], GH_READ, watch_cb, NULL)); /* closed */
    assert_int_equal(errno, EBADF);
    end_clean();
}

/* --------------------------------------------------------------- hooks */

typedef struct tick_rec {
    int calls;
    int sleep_err;
    gh_event *ev;    /* set it: a hook readies a task */
    gh_tick *remove; /* remove this one on the first call */
    gh_tick **add;   /* add a hook here on the first call */
    struct tick_rec *added;
} tick_rec;

static void tick_cb(void *arg)
{
    tick_rec *r = arg;
    r->calls++;
    r->sleep_err = gh_sleep(GH_MSEC);
    if (r->ev && !gh_event_is_set(r->ev))
        assert_int_equal(gh_event_set(r->ev, NULL), 0);
    if (r->remove) {
        assert_int_equal(gh_tick_remove(r->remove), 0);
        r->remove = NULL;
    }
    if (r->add) {
        *r->add = gh_tick_add(tick_cb, r->added);
        assert_non_null(*r->add);
        r->add = NULL;
    }
}

static void test_tick_runs_each_iteration(void **state)
{
    (void)state;
    tick_rec r = {0};
    gh_tick *k = gh_tick_add(tick_cb, &r);
    assert_non_null(k);
    for (int i = 0; i < 5; i++)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_true(r.calls >= 5); /* at least once per wake-up of the root */
    assert_int_equal(r.sleep_err, -EPERM);
    assert_int_equal(gh_hub_run(), 0); /* a hook alone does not keep it going */
    assert_int_equal(gh_tick_remove(k), 0);
    int calls = r.calls;
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(r.calls, calls);
    assert_int_equal(gh_tick_remove(NULL), -EINVAL);
    assert_null(gh_tick_add(NULL, NULL));
    assert_int_equal(errno, EINVAL);
    end_clean();
}

/* A hook that readies a task: the poll does not sleep past it. */
static void test_tick_readies_task(void **state)
{
    (void)state;
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    tick_rec r = {.ev = &ev};
    gh_tick *k = gh_tick_add(tick_cb, &r);
    assert_non_null(k);
    int64_t t0 = gh_now();
    assert_int_equal(gh_event_wait(&ev, NULL, 5 * GH_SEC), 0);
    assert_true(gh_now() - t0 < 2 * GH_SEC);
    assert_int_equal(gh_tick_remove(k), 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

/* A hook removes another and adds a third; the order of the list holds. */
static void test_tick_add_remove_from_hook(void **state)
{
    (void)state;
    tick_rec r2 = {0}, r3 = {0};
    gh_tick *k3 = NULL;
    tick_rec r1 = {.add = &k3, .added = &r3};
    gh_tick *k1 = gh_tick_add(tick_cb, &r1);
    gh_tick *k2 = gh_tick_add(tick_cb, &r2);
    r1.remove = k2; /* removed before it runs in the first iteration */
    assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(r2.calls, 0);
    assert_non_null(k3);
    assert_true(r3.calls >= 1 && r3.calls < r1.calls); /* from the next iteration on */
    assert_int_equal(gh_tick_remove(k1), 0);
    assert_int_equal(gh_tick_remove(k3), 0);
    end_clean();
}

/* ------------------------------------------------------- deadline scopes */

static void test_scope_cuts_sleep_and_reports(void **state)
{
    (void)state;
    int64_t t0 = gh_now(); /* before the push, which reads the clock for its deadline */
    assert_int_equal(gh_deadline_push(30 * GH_MSEC), 0);
    assert_int_equal(gh_sleep(GH_SEC), -ETIMEDOUT);
    int64_t took = gh_now() - t0;
    assert_true(took >= 30 * GH_MSEC);
    assert_true(took < 900 * GH_MSEC);
    /* Past the deadline: a call that would wait returns at once. */
    t0 = gh_now();
    assert_int_equal(gh_sleep(GH_SEC), -ETIMEDOUT);
    assert_int_equal(gh_yield(), -ETIMEDOUT);
    assert_true(gh_now() - t0 < 100 * GH_MSEC);
    assert_int_equal(gh_deadline_pop(), -ETIMEDOUT);
    assert_int_equal(gh_deadline_pop(), -ENOENT);
    assert_int_equal(gh_sleep(GH_MSEC), 0); /* no scope: a sleep again */
    end_clean();
}

/* Nested scopes take the earliest; the call's own timeout applies when earlier. */
static void test_scope_nested_and_own_timeout(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    char c;
    assert_int_equal(gh_deadline_push(2 * GH_SEC), 0);
    assert_int_equal(gh_deadline_push(30 * GH_MSEC), 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_read(p[0], &c, 1, GH_FOREVER), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    assert_true(gh_now() - t0 < GH_SEC);
    assert_int_equal(gh_deadline_pop(), -ETIMEDOUT);
    /* The outer one (2 s) is left: the call's own 20 ms comes first. */
    t0 = gh_now();
    assert_int_equal(gh_read(p[0], &c, 1, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 < GH_SEC);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0); /* shorter than the scope: a sleep */
    write_byte(p[1]);
    assert_int_equal(gh_read(p[0], &c, 1, GH_FOREVER), 1);
    assert_int_equal(gh_deadline_pop(), 0); /* never ran out */
    /* A scope inside a later, earlier outer one: the outer wins. */
    assert_int_equal(gh_deadline_push(20 * GH_MSEC), 0);
    assert_int_equal(gh_deadline_push(GH_FOREVER), 0);
    t0 = gh_now();
    assert_int_equal(gh_sleep(GH_SEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 < GH_SEC);
    assert_int_equal(gh_deadline_pop(), 0); /* its own deadline: none */
    assert_int_equal(gh_deadline_pop(), -ETIMEDOUT);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    end_clean();
}

/* gh_join, an event and a channel inside a scope; a task ending with a scope open. */
static void sleepy_task(void *arg)
{
    (void)arg;
    gh_sleep(GH_SEC);
}

static void scoped_task(void *arg)
{
    int *result = arg;
    assert_int_equal(gh_deadline_push(10 * GH_MSEC), 0);
    assert_int_equal(gh_deadline_push(GH_SEC), 0);
    *result = gh_sleep(GH_SEC); /* ends with both scopes open */
}

static void test_scope_join_event_chan_and_task_exit(void **state)
{
    (void)state;
    gh_task *t = gh_spawn(sleepy_task, NULL);
    assert_non_null(t);
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    gh_chan *ch = gh_chan_new(1);
    assert_non_null(ch);
    void *item;

    assert_int_equal(gh_deadline_push(20 * GH_MSEC), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), -ETIMEDOUT);
    assert_int_equal(gh_event_wait(&ev, NULL, GH_FOREVER), -ETIMEDOUT);
    assert_int_equal(gh_chan_recv(ch, &item, GH_FOREVER), -ETIMEDOUT);
    assert_int_equal(gh_deadline_pop(), -ETIMEDOUT);

    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);

    int result = 0;
    gh_task *s = gh_spawn(scoped_task, &result);
    assert_non_null(s);
    assert_int_equal(gh_join(s, 5 * GH_SEC), 0);
    assert_int_equal(result, -ETIMEDOUT);
    gh_task_release(s);
    assert_int_equal(gh_chan_free(ch), 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    end_clean();
}

/* A kill inside a scope is still a kill. */
static int killed_result;
static void killed_in_scope_task(void *arg)
{
    (void)arg;
    gh_deadline_push(GH_SEC);
    killed_result = gh_sleep(10 * GH_SEC);
    gh_deadline_pop();
}

static void scope_from_timer_cb(void *arg)
{
    int *r = arg;
    r[0] = gh_deadline_push(GH_SEC);
    r[1] = gh_deadline_pop();
}

static void test_scope_kill_and_bad_input(void **state)
{
    (void)state;
    killed_result = 0;
    gh_task *t = gh_spawn(killed_in_scope_task, NULL);
    assert_non_null(t);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(killed_result, -ECANCELED);
    gh_task_release(t);

    assert_int_equal(gh_deadline_push(-2), -EINVAL);
    assert_int_equal(gh_deadline_pop(), -ENOENT);
    int r[2] = {1, 1};
    gh_timer *tm = gh_call_after(0, scope_from_timer_cb, r);
    assert_non_null(tm);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(r[0], -EPERM);
    assert_int_equal(r[1], -EPERM);
    gh_timer_release(tm);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_level_triggered),
        cmocka_unit_test(test_watch_write_unwatch_in_callback),
        cmocka_unit_test(test_watch_beside_tasks),
        cmocka_unit_test(test_watch_close_in_callback),
        cmocka_unit_test(test_watch_keeps_hub_run),
        cmocka_unit_test(test_watch_cross_thread_close_and_unwatch),
        cmocka_unit_test(test_watch_bad_input),
        cmocka_unit_test(test_tick_runs_each_iteration),
        cmocka_unit_test(test_tick_readies_task),
        cmocka_unit_test(test_tick_add_remove_from_hook),
        cmocka_unit_test(test_scope_cuts_sleep_and_reports),
        cmocka_unit_test(test_scope_nested_and_own_timeout),
        cmocka_unit_test(test_scope_join_event_chan_and_task_exit),
        cmocka_unit_test(test_scope_kill_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
