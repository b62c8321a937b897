/*
 * fd_test.c — an fd belongs to the process, not to a hub (hub/fdtable.c,
 * hub/fd.c), on every backend.
 *
 * gh_close from any thread or hub wakes every waiter on every hub with
 * -EBADF before it closes; a number closed on one hub and reused is never
 * served from the old file's state on another (the new fd in blocking mode
 * must not block the hub's thread); fds the kernel does not know are -EBADF
 * at once, whatever their size; a close that other hubs must hear of still
 * completes when the closing task is killed, or when it is a timer callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

static void rt_end(gh_runtime *rt)
{
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* A task that waits to read @fd and records what its read returned, and when. */
typedef struct waiter {
    int fd;
    int64_t timeout;
    atomic_int started, done;
    atomic_long got;
    atomic_llong woke_at;
} waiter;

static void waiter_task(void *arg)
{
    waiter *w = arg;
    char c;
    atomic_store(&w->started, 1);
    ssize_t n = gh_read(w->fd, &c, 1, w->timeout);
    atomic_store(&w->got, (long)n);
    atomic_store(&w->woke_at, (long long)gh_now());
    atomic_store(&w->done, 1);
}

static void waiter_start(gh_runtime *rt, int hub, waiter *w, int fd)
{
    memset(w, 0, sizeof *w);
    w->fd = fd;
    w->timeout = 10 * GH_SEC;
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, hub), waiter_task, w), 0);
    assert_true(wait_at_least(&w->started, 1, 5 * GH_SEC));
    sleep_ns(20 * GH_MSEC); /* it is parked in its read now */
}

/* A plain thread (no hub) closes an fd a runtime hub's task waits on. */
static void test_fd_close_from_plain_thread_wakes_waiter(void **state)
{
    gh_runtime *rt = rt_start(1);
    int p[2];
    assert_int_equal(pipe(p), 0);
    waiter w;
    waiter_start(rt, 0, &w, p[0]);

    int64_t t0 = gh_now();
    assert_int_equal(gh_close(p[0]), 0);
    assert_false(fd_is_open(p[0]));
    assert_true(wait_at_least(&w.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&w.got), -EBADF);
    assert_true(atomic_load(&w.woke_at) - t0 < 500 * GH_MSEC);
    close(p[1]);
    rt_end(rt);
}

/* Hub 1's task closes what hub 0's task waits on; hub 0 and the closer both go on. */
typedef struct closer {
    int fd;
    atomic_int result, done;
} closer;

static void closer_task(void *arg)
{
    closer *c = arg;
    atomic_store(&c->result, gh_close(c->fd));
    atomic_store(&c->done, 1);
}

static void test_fd_close_from_other_hub_wakes_waiter(void **state)
{
    gh_runtime *rt = rt_start(2);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    waiter w;
    waiter_start(rt, 0, &w, sv[0]);

    closer c = {.fd = sv[0]};
    atomic_store(&c.result, 1);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), closer_task, &c), 0);
    assert_true(wait_at_least(&c.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&c.result), 0);
    assert_true(wait_at_least(&w.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&w.got), -EBADF);
    assert_false(fd_is_open(sv[0]));
    close(sv[1]);
    rt_end(rt);
}

/* One fd, a reader on each of two hubs: one close wakes both. */
static void test_fd_close_wakes_every_hub(void **state)
{
    gh_runtime *rt = rt_start(2);
    int p[2];
    assert_int_equal(pipe(p), 0);
    waiter w0, w1;
    waiter_start(rt, 0, &w0, p[0]);
    waiter_start(rt, 1, &w1, p[0]);

    assert_int_equal(gh_close(p[0]), 0);
    assert_true(wait_at_least(&w0.done, 1, 2 * GH_SEC));
    assert_true(wait_at_least(&w1.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&w0.got), -EBADF);
    assert_int_equal(atomic_load(&w1.got), -EBADF);
    close(p[1]);
    rt_end(rt);
}

/*
 * Hub 0 serves fd X (it is then non-blocking, and watched). X is closed from
 * another thread, and the number is reused for a new pipe in blocking mode.
 * Hub 0 serves the new X: data written at 50 ms is read at about 50 ms (a
 * stale registration made it time out), and a ticker task on hub 0 is never
 * held up (a stale "non-blocking" mark made the hub's thread sit in read()).
 */
typedef struct ticker {
    atomic_int stop, ticks;
    atomic_llong max_gap;
} ticker;

static void ticker_task(void *arg)
{
    ticker *t = arg;
    int64_t last = gh_now();
    while (!atomic_load(&t->stop)) {
        gh_sleep(2 * GH_MSEC);
        int64_t now = gh_now();
        if (now - last > atomic_load(&t->max_gap))
            atomic_store(&t->max_gap, (long long)(now - last));
        last = now;
        atomic_fetch_add(&t->ticks, 1);
    }
}

static void test_fd_reused_number_gets_fresh_state(void **state)
{
    gh_runtime *rt = rt_start(1);
    int p[2], q[2];
    assert_int_equal(pipe(p), 0);
    int x = p[0];

    /* Hub 0 reads X once: X becomes non-blocking and is watched. */
    waiter w;
    waiter_start(rt, 0, &w, x);
    assert_int_equal(write(p[1], "a", 1), 1);
    assert_true(wait_at_least(&w.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&w.got), 1);

    assert_int_equal(gh_close(x), 0);
    close(p[1]);
    assert_int_equal(pipe(q), 0);
    if (q[0] != x) {
        assert_int_equal(dup2(q[0], x), x); /* the same number, whatever the kernel chose */
        close(q[0]);
    }
    assert_int_equal(fcntl(x, F_GETFL) & O_NONBLOCK, 0); /* blocking, as opened */

    ticker tk = {0};
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), ticker_task, &tk), 0);
    assert_true(wait_at_least(&tk.ticks, 3, 2 * GH_SEC));
    atomic_store(&tk.max_gap, 0);

    waiter_start(rt, 0, &w, x);
    int64_t t0 = gh_now();
    sleep_ns(50 * GH_MSEC);
    assert_int_equal(write(q[1], "b", 1), 1);
    assert_true(wait_at_least(&w.done, 1, 3 * GH_SEC));
    assert_int_equal(atomic_load(&w.got), 1);
    assert_true(atomic_load(&w.woke_at) - t0 < 800 * GH_MSEC);
    atomic_store(&tk.stop, 1);
    assert_true(atomic_load(&tk.max_gap) < 200 * GH_MSEC);

    assert_int_equal(gh_close(x), 0);
    close(q[1]);
    rt_end(rt);
}

/* Numbers the kernel does not know: -EBADF at once, no table growth, no overflow. */
static void test_fd_unknown_and_huge(void **state)
{
    static const int fds[] = {1 << 30, INT_MAX, INT_MAX - 1, 100000000, 65536 + 17};
    char c;
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        int64_t t0 = gh_now();
        assert_int_equal(gh_trampoline(fds[i], GH_READ, GH_SEC), -EBADF);
        assert_int_equal(gh_read(fds[i], &c, 1, GH_SEC), -EBADF);
        assert_int_equal(gh_write_all(fds[i], "x", 1, GH_SEC), -EBADF);
        assert_int_equal(gh_close(fds[i]), -EBADF);
        assert_true(gh_now() - t0 < 500 * GH_MSEC);
    }
    assert_int_equal(gh_close(-1), -EBADF);
    assert_int_equal(gh_read(-5, &c, 1, GH_SEC), -EBADF);
    end_clean();
}

/* The eventfds among this process's open fds (a hub's wakeup fd is one). */
static int eventfds(int *out, int max)
{
    int n = 0;
    for (int fd = 0; fd < 1024 && n < max; fd++) {
        char path[64], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, link, sizeof link - 1);
        if (len <= 0)
            continue;
        link[len] = 0;
        if (strcmp(link, "anon_inode:[eventfd]") == 0)
            out[n++] = fd;
    }
    return n;
}

static void *close_from_thread(void *arg)
{
    return (void *)(intptr_t)gh_close((int)(intptr_t)arg);
}

/* A hub's own wakeup fd is not the caller's to close, from its thread or any other. */
static void test_fd_wakeup_fd_refused(void **state)
{
    int before[16], after[16];
    int nb = eventfds(before, 16);
    assert_non_null(gh_get_hub());
    int na = eventfds(after, 16);
    assert_int_equal(na, nb + 1);
    int wake = -1;
    for (int i = 0; i < na; i++) {
        bool old = false;
        for (int j = 0; j < nb; j++)
            old |= after[i] == before[j];
        if (!old)
            wake = after[i];
    }
    assert_true(wake >= 0);
    assert_int_equal(gh_close(wake), -EBADF);
    pthread_t th;
    void *ret;
    assert_int_equal(pthread_create(&th, NULL, close_from_thread, (void *)(intptr_t)wake), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, -EBADF);
    assert_true(fd_is_open(wake));
    assert_int_equal(gh_sleep(GH_MSEC), 0); /* the hub still works */
    end_clean();
    assert_false(fd_is_open(wake)); /* closed with its hub */
}

/*
 * The closing task is killed while it waits for the other hub (which is
 * busy for 200 ms): the close still completes, and only after the other
 * hub forgot the fd; the killed task's next blocking call is cancelled.
 */
typedef struct killed_closer {
    int fd;
    gh_task *self;
    atomic_int result, after, done, killed;
} killed_closer;

static void busy_task(void *arg)
{
    int64_t end = gh_now() + 200 * GH_MSEC;
    while (gh_now() < end) {
    }
    (void)arg;
}

static void killed_closer_task(void *arg)
{
    killed_closer *k = arg;
    k->self = gh_current();
    atomic_store(&k->result, gh_close(k->fd));
    atomic_store(&k->after, gh_sleep(GH_MSEC));
    atomic_store(&k->done, 1);
}

static void killer_task(void *arg)
{
    killed_closer *k = arg;
    gh_sleep(20 * GH_MSEC);
    atomic_store(&k->killed, gh_kill(k->self) == 0);
}

static void spawn_closer_and_killer(void *arg)
{
    killed_closer *k = arg;
    gh_spawn_n(killed_closer_task, k);
    gh_spawn_n(killer_task, k);
}

static void test_fd_close_survives_kill(void **state)
{
    gh_runtime *rt = rt_start(2);
    int p[2];
    assert_int_equal(pipe(p), 0);
    waiter w;
    waiter_start(rt, 1, &w, p[0]);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), busy_task, NULL), 0);
    sleep_ns(5 * GH_MSEC);

    killed_closer k = {.fd = p[0]};
    atomic_store(&k.result, 1);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), spawn_closer_and_killer, &k), 0);
    assert_true(wait_at_least(&k.done, 1, 3 * GH_SEC));
    assert_int_equal(atomic_load(&k.result), 0);
    assert_int_equal(atomic_load(&k.killed), 1);
    assert_int_equal(atomic_load(&k.after), -ECANCELED);
    assert_true(wait_at_least(&w.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&w.got), -EBADF);
    assert_false(fd_is_open(p[0]));
    close(p[1]);
    rt_end(rt);
}

/* A timer callback closes what another hub waits on: the last hub to let go closes. */
static void close_cb(void *arg)
{
    closer *c = arg;
    atomic_store(&c->result, gh_close(c->fd));
    atomic_store(&c->done, 1);
}

static void arm_close_timer(void *arg)
{
    gh_timer_release(gh_call_after(GH_MSEC, close_cb, arg));
}

static void test_fd_close_from_callback(void **state)
{
    gh_runtime *rt = rt_start(2);
    int p[2];
    assert_int_equal(pipe(p), 0);
    waiter w;
    waiter_start(rt, 1, &w, p[0]);

    closer c = {.fd = p[0]};
    atomic_store(&c.result, 1);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), arm_close_timer, &c), 0);
    assert_true(wait_at_least(&c.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&c.result), 0);
    assert_true(wait_at_least(&w.done, 1, 2 * GH_SEC));
    assert_int_equal(atomic_load(&w.got), -EBADF);
    int64_t end = gh_now() + 2 * GH_SEC;
    while (fd_is_open(p[0]) && gh_now() < end)
        sleep_ns(GH_MSEC);
    assert_false(fd_is_open(p[0]));
    close(p[1]);
    rt_end(rt);
}

/*
 * A stop while closes cross hubs: hub 1's tasks wait on 200 pipes, hub 0's
 * task closes them one by one, and the runtime is stopped meanwhile. The
 * control messages still flow into the stopping hub: every waiter wakes
 * with -EBADF, every fd is closed, the stop drains in time.
 */
#define STOP_FDS 200

typedef struct stop_closes {
    int rfd[STOP_FDS], wfd[STOP_FDS];
    waiter w[STOP_FDS];
    atomic_int closed, bad;
} stop_closes;

static void stop_closer(void *arg)
{
    stop_closes *sc = arg;
    for (int i = 0; i < STOP_FDS; i++) {
        if (gh_close(sc->rfd[i]) != 0)
            atomic_fetch_add(&sc->bad, 1);
        atomic_fetch_add(&sc->closed, 1);
        if (i % 16 == 0)
            gh_sleep(GH_MSEC);
    }
}

static void test_fd_stop_while_closing(void **state)
{
    gh_runtime *rt = rt_start(2);
    static stop_closes sc;
    memset(&sc, 0, sizeof sc);
    for (int i = 0; i < STOP_FDS; i++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        sc.rfd[i] = p[0];
        sc.wfd[i] = p[1];
        sc.w[i].fd = p[0];
        sc.w[i].timeout = 10 * GH_SEC;
        assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), waiter_task, &sc.w[i]), 0);
    }
    for (int i = 0; i < STOP_FDS; i++)
        assert_true(wait_at_least(&sc.w[i].started, 1, 5 * GH_SEC));
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), stop_closer, &sc), 0);
    assert_true(wait_at_least(&sc.closed, 1, 5 * GH_SEC));
    assert_int_equal(gh_runtime_stop(rt, 10 * GH_SEC), 0);
    assert_int_equal(atomic_load(&sc.closed), STOP_FDS);
    assert_int_equal(atomic_load(&sc.bad), 0);
    for (int i = 0; i < STOP_FDS; i++) {
        assert_int_equal(atomic_load(&sc.w[i].done), 1);
        assert_int_equal(atomic_load(&sc.w[i].got), -EBADF);
        assert_false(fd_is_open(sc.rfd[i]));
        close(sc.wfd[i]);
    }
    gh_runtime_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_close_from_plain_thread_wakes_waiter),
        cmocka_unit_test(test_fd_close_from_other_hub_wakes_waiter),
        cmocka_unit_test(test_fd_close_wakes_every_hub),
        cmocka_unit_test(test_fd_reused_number_gets_fresh_state),
        cmocka_unit_test(test_fd_unknown_and_huge),
        cmocka_unit_test(test_fd_wakeup_fd_refused),
        cmocka_unit_test(test_fd_close_survives_kill),
        cmocka_unit_test(test_fd_close_from_callback),
        cmocka_unit_test(test_fd_stop_while_closing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
