/*
 * embed_test.c — gh_hub_run_once and gh_hub_fd: a hub driven by an outer
 * loop, on every backend.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    assert_true(n >= 0);
    return n;
}

/* Run the hub from "the outer loop" until @done is set: at most @max calls. */
static int run_until(atomic_int *done, int max)
{
    int total = 0;
    for (int i = 0; i < max && !atomic_load(done); i++) {
        int n = gh_hub_run_once(100 * GH_MSEC);
        assert_true(n >= 0);
        total += n;
    }
    return total;
}

static void flag_task(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
}

static void flag_cb(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
}

/* ------------------------------------------------------------- run once */

static void test_run_once_waits_whole_timeout_when_idle(void **state)
{
    (void)state;
    int64_t t0 = gh_now();
    assert_int_equal(gh_hub_run_once(50 * GH_MSEC), 0);
    int64_t took = gh_now() - t0;
    assert_true(took >= 50 * GH_MSEC);
    assert_true(took < 2 * GH_SEC);
    t0 = gh_now();
    assert_int_equal(gh_hub_run_once(0), 0);
    assert_true(gh_now() - t0 < GH_SEC);
    end_clean();
}

static void test_run_once_runs_ready_task_and_timer(void **state)
{
    (void)state;
    atomic_int ran = 0;
    gh_task *t = gh_spawn(flag_task, &ran);
    assert_non_null(t);
    int64_t t0 = gh_now();
    assert_true(gh_hub_run_once(5 * GH_SEC) >= 1);
    assert_int_equal(atomic_load(&ran), 1);
    assert_true(gh_now() - t0 < GH_SEC); /* ran at once, did not wait */
    gh_task_release(t);

    atomic_int fired = 0;
    gh_timer *tm = gh_call_after(20 * GH_MSEC, flag_cb, &fired);
    assert_non_null(tm);
    t0 = gh_now();
    assert_true(gh_hub_run_once(5 * GH_SEC) >= 1);
    assert_int_equal(atomic_load(&fired), 1);
    int64_t took = gh_now() - t0;
    assert_true(took >= 15 * GH_MSEC);
    assert_true(took < 2 * GH_SEC);
    gh_timer_release(tm);
    end_clean();
}

typedef struct spawner {
    gh_hub *hub;
    atomic_int done;
    int64_t delay;
} spawner;

static void *spawner_thread(void *arg)
{
    spawner *s = arg;
    sleep_ns(s->delay);
    assert_int_equal(gh_spawn_on(s->hub, flag_task, &s->done), 0);
    return NULL;
}

static void test_run_once_runs_handoff(void **state)
{
    (void)state;
    spawner s = {.hub = gh_get_hub(), .delay = 20 * GH_MSEC};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spawner_thread, &s), 0);
    int64_t t0 = gh_now();
    int n = gh_hub_run_once(5 * GH_SEC);
    assert_true(n >= 1);
    assert_int_equal(atomic_load(&s.done), 1);
    assert_true(gh_now() - t0 < 4 * GH_SEC);
    assert_int_equal(pthread_join(th, NULL), 0);
    end_clean();
}

static void pipe_reader(void *arg)
{
    int *p = arg;
    char c;
    p[2] = (int)gh_read(p[0], &c, 1, 10 * GH_SEC);
}

static void test_run_once_runs_fd_event(void **state)
{
    (void)state;
    int p[3] = {0, 0, 0};
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    gh_task *t = gh_spawn(pipe_reader, p);
    assert_non_null(t);
    assert_true(gh_hub_run_once(0) >= 1); /* it starts and parks on the pipe */
    assert_int_equal(p[2], 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    for (int i = 0; i < 50 && p[2] == 0; i++)
        assert_true(gh_hub_run_once(100 * GH_MSEC) >= 0);
    assert_int_equal(p[2], 1);
    gh_task_release(t);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    end_clean();
}

static void run_once_in_task(void *arg)
{
    *(int *)arg = gh_hub_run_once(0);
}

static void *breaker_thread(void *arg)
{
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(gh_hub_break(arg), 0);
    return NULL;
}

static void test_run_once_errors_and_break(void **state)
{
    (void)state;
    assert_int_equal(gh_hub_run_once(-2), -EINVAL);
    int r = 1;
    gh_task *t = gh_spawn(run_once_in_task, &r);
    assert_non_null(t);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    assert_int_equal(r, -EPERM);
    gh_task_release(t);

    assert_int_equal(gh_hub_break(gh_get_hub()), 0);
    assert_int_equal(gh_hub_run_once(5 * GH_SEC), -EINTR);
    assert_int_equal(gh_hub_run_once(0), 0); /* the break was used up */

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, breaker_thread, gh_get_hub()), 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_hub_run_once(GH_FOREVER), -EINTR);
    assert_true(gh_now() - t0 < 4 * GH_SEC);
    assert_int_equal(pthread_join(th, NULL), 0);
    end_clean();
}

/* ------------------------------------------------------------- hub fd */

static void test_hub_fd_basics(void **state)
{
    (void)state;
    int fd = gh_hub_fd();
    assert_true(fd >= 0);
    assert_int_equal(gh_hub_fd(), fd);
    assert_int_equal(gh_close(fd), -EBADF);   /* the hub's own */
    assert_int_equal(fd_readable(fd, 50), 0); /* nothing pending */

    /* The root spawns a task between two run_once calls: readable at once. */
    atomic_int ran = 0;
    gh_task *t = gh_spawn(flag_task, &ran);
    assert_non_null(t);
    assert_int_equal(fd_readable(fd, 0), 1);
    assert_true(gh_hub_run_once(0) >= 1);
    assert_int_equal(atomic_load(&ran), 1);
    assert_int_equal(fd_readable(fd, 50), 0);
    gh_task_release(t);

    /* A timer comes due. */
    atomic_int fired = 0;
    gh_timer *tm = gh_call_after(30 * GH_MSEC, flag_cb, &fired);
    assert_non_null(tm);
    int64_t t0 = gh_now();
    assert_int_equal(fd_readable(fd, 5000), 1);
    assert_true(gh_now() - t0 >= 25 * GH_MSEC);
    assert_true(gh_hub_run_once(0) >= 1);
    assert_int_equal(atomic_load(&fired), 1);
    assert_int_equal(fd_readable(fd, 50), 0);
    gh_timer_release(tm);
    assert_int_equal(gh_hub_close(), 0); /* closes the fd with the hub */
}

static void test_hub_fd_handoff_from_other_thread(void **state)
{
    (void)state;
    int fd = gh_hub_fd();
    assert_true(fd >= 0);
    spawner s = {.hub = gh_get_hub(), .delay = 20 * GH_MSEC};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, spawner_thread, &s), 0);
    /* The outer loop sleeps in poll(), not in greenhub. */
    assert_int_equal(fd_readable(fd, 5000), 1);
    assert_true(run_until(&s.done, 50) >= 1);
    assert_int_equal(atomic_load(&s.done), 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    end_clean();
}

static void test_hub_fd_fd_event(void **state)
{
    (void)state;
    int fd = gh_hub_fd();
    assert_true(fd >= 0);
    int p[3] = {0, 0, 0};
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    gh_task *t = gh_spawn(pipe_reader, p);
    assert_non_null(t);
    for (int i = 0; i < 5; i++)
        assert_true(gh_hub_run_once(0) >= 0); /* it parks; the backend is told */
    assert_int_equal(fd_readable(fd, 50), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(fd_readable(fd, 5000), 1);
    for (int i = 0; i < 50 && p[2] == 0; i++)
        assert_true(gh_hub_run_once(0) >= 0);
    assert_int_equal(p[2], 1);
    gh_task_release(t);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    assert_true(gh_hub_run_once(0) >= 0);
    end_clean();
}

static void drain_cb(int fd, int events, void *arg)
{
    (void)events;
    char buf[16];
    while (read(fd, buf, sizeof buf) > 0)
        atomic_store((atomic_int *)arg, 1);
}

static void test_hub_fd_watcher(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    atomic_int got = 0;
    gh_watcher *w = gh_watch(p[0], GH_READ, drain_cb, &got);
    assert_non_null(w);
    int fd = gh_hub_fd(); /* asked after the watcher: the mirror catches up */
    assert_true(fd >= 0);
    assert_int_equal(gh_hub_run_once(0), 0);
    assert_int_equal(fd_readable(fd, 50), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(fd_readable(fd, 5000), 1);
    assert_true(run_until(&got, 50) >= 1);
    assert_int_equal(atomic_load(&got), 1);
    assert_int_equal(gh_unwatch(w), 0);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    assert_true(gh_hub_run_once(0) >= 0);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_once_waits_whole_timeout_when_idle),
        cmocka_unit_test(test_run_once_runs_ready_task_and_timer),
        cmocka_unit_test(test_run_once_runs_handoff),
        cmocka_unit_test(test_run_once_runs_fd_event),
        cmocka_unit_test(test_run_once_errors_and_break),
        cmocka_unit_test(test_hub_fd_basics),
        cmocka_unit_test(test_hub_fd_handoff_from_other_thread),
        cmocka_unit_test(test_hub_fd_fd_event),
        cmocka_unit_test(test_hub_fd_watcher),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
