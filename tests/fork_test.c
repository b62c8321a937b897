/*
 * fork_test.c — a forked child's hub works on kernel objects of its own,
 * and the parent's hub is untouched by what the child does (hub/fork.c).
 *
 * Before the fork a parent task waits to read a pipe, so its fd is watched
 * in the backend. The child then closes that fd with gh_close (its waiter
 * must get -EBADF), serves a pipe of its own through its hub, sleeps on a
 * timer, and exits. With a shared epoll set or io_uring ring, the child's
 * gh_close would take the parent's registration away and the parent's
 * reader would never wake; the parent checks that it does, and that a
 * handoff from another thread still wakes its hub.
 *
 * The same runs with the fork made from a task instead of the root. Then
 * the process-wide helpers: thread pools and the signal router start over
 * in the child.
 *
 * The child reports through its exit status: cmocka must not run there.
 * Not under TSan (tag no-tsan): it cannot follow a multi-threaded fork
 * whose child starts threads, and kills such a child.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

typedef struct reader {
    int fd;
    ssize_t got;
    char buf[16];
} reader;

static void read_task(void *arg)
{
    reader *r = arg;
    r->got = gh_read(r->fd, r->buf, sizeof r->buf, 10 * GH_SEC);
}

/* Everything the child checks; returns its exit status (0 = all good). */
static int child_checks(reader *parent_reader)
{
    /* The inherited waiter gets -EBADF from the child's gh_close. */
    if (gh_close(parent_reader->fd) != 0)
        return 10;
    if (gh_sleep(GH_MSEC) != 0)
        return 11;
    if (parent_reader->got != -EBADF)
        return 12;

    /* The child's own pipe, served by the child's hub. */
    int p[2];
    if (pipe(p) != 0)
        return 13;
    reader mine = {.fd = p[0], .got = -1};
    gh_task *t = gh_spawn(read_task, &mine);
    if (!t || gh_sleep(GH_MSEC) != 0)
        return 14;
    if (gh_write_all(p[1], "kid", 3, GH_SEC) != 3)
        return 15;
    if (gh_join(t, 2 * GH_SEC) != 0 || mine.got != 3 || memcmp(mine.buf, "kid", 3) != 0)
        return 16;
    gh_task_release(t);
    gh_close(p[0]);
    gh_close(p[1]);

    /* Timers and a handoff from a thread of the child's. */
    int64_t t0 = gh_now();
    if (gh_sleep(20 * GH_MSEC) != 0 || gh_now() - t0 < 20 * GH_MSEC)
        return 17;
    return 0;
}

static void *post_later(void *arg)
{
    gh_hub *h = arg;
    usleep(50 * 1000); /* the hub is asleep by now */
    return (void *)(intptr_t)gh_spawn_on(h, (void (*)(void *))(void *)gh_yield, NULL);
}

static void parent_checks(pid_t pid, reader *r, int pipe_w)
{
    int status = 0;
    /* waitpid blocks the thread, not only a task: fine, the child needs nothing from us. */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* Our reader is still watched: the child's gh_close did not touch our backend. */
    assert_int_equal(write(pipe_w, "parent", 6), 6);
    for (int i = 0; i < 200 && r->got == -1; i++)
        assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_int_equal(r->got, 6);
    assert_memory_equal(r->buf, "parent", 6);

    /* And the wakeup fd is still ours: a handoff from a thread wakes the hub. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_later, gh_get_hub()), 0);
    gh_hub_stats before, after;
    gh_hub_get_stats(gh_get_hub(), &before);
    assert_int_equal(gh_sleep(300 * GH_MSEC), 0);
    void *rc;
    pthread_join(th, &rc);
    assert_int_equal((intptr_t)rc, 0);
    assert_int_equal(gh_hub_run(), 0); /* runs the handoff if the sleep ended first */
    gh_hub_get_stats(gh_get_hub(), &after);
    assert_int_equal(after.handoffs_in - before.handoffs_in, 1);
}

typedef struct forker {
    reader *r;
    pid_t pid;
} forker;

static void fork_task(void *arg)
{
    forker *f = arg;
    f->pid = fork();
    if (f->pid == 0)
        _exit(child_checks(f->r)); /* the child carries on in this task */
}

/* A parent task waits to read a pipe; fork from the root or from a task; check both sides. */
static void fork_and_check(bool from_task)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    reader r = {.fd = p[0], .got = -1};
    gh_task *t = gh_spawn(read_task, &r);
    assert_non_null(t);
    assert_int_equal(gh_sleep(GH_MSEC), 0); /* the reader now waits: its fd is watched */
    assert_int_equal(r.got, -1);

    forker f = {.r = &r, .pid = -1};
    if (from_task) {
        gh_task *ft = gh_spawn(fork_task, &f);
        assert_non_null(ft);
        assert_int_equal(gh_join(ft, GH_SEC), 0);
        gh_task_release(ft);
    } else {
        f.pid = fork();
        if (f.pid == 0)
            _exit(child_checks(&r));
    }
    assert_true(f.pid > 0);

    parent_checks(f.pid, &r, p[1]);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    gh_close(p[0]);
    close(p[1]);
    assert_int_equal(gh_hub_close(), 0);
}

static void test_fork_from_root(void **state)
{
    (void)state;
    fork_and_check(false);
}

static void test_fork_from_task(void **state)
{
    (void)state;
    fork_and_check(true);
}

/* ------------------------------------------------ thread pools and signals */

static void *plus_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

/*
 * In a forked child the pools' threads are gone; a job there still runs
 * (a new thread starts), from a task and from the root, on the default pool
 * and a private one. The child reports through its exit status.
 */
static int tpool_child(gh_tpool *mine)
{
    void *r = NULL;
    if (gh_tpool_run(plus_one, (void *)41, &r, 5 * GH_SEC) != 0 || r != (void *)42)
        return 1;
    r = NULL;
    if (gh_tpool_run_on(mine, plus_one, (void *)1, &r, 5 * GH_SEC) != 0 || r != (void *)2)
        return 2;
    gh_tpool_free(mine);
    return 0;
}

static void test_tpool_after_fork(void **state)
{
    (void)state;
    gh_tpool *mine = gh_tpool_new(2);
    assert_non_null(mine);
    void *r = NULL;
    /* Both pools have threads in the parent before the fork. */
    assert_int_equal(gh_tpool_run(plus_one, (void *)1, &r, 5 * GH_SEC), 0);
    assert_int_equal(gh_tpool_run_on(mine, plus_one, (void *)1, &r, 5 * GH_SEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(tpool_child(mine));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The parent's pools are as they were. */
    assert_int_equal(gh_tpool_run_on(mine, plus_one, (void *)7, &r, 5 * GH_SEC), 0);
    assert_ptr_equal(r, (void *)8);
    gh_tpool_free(mine);
    assert_int_equal(gh_hub_close(), 0);
}

typedef struct sig_waiter {
    int signo;
    int64_t timeout;
    atomic_int result;
    atomic_int *done;
} sig_waiter;

static void sig_waiter_task(void *arg)
{
    sig_waiter *w = arg;
    atomic_store(&w->result, gh_signal_wait(w->signo, w->timeout));
    atomic_fetch_add(w->done, 1);
}

/*
 * fork(): a task of the forking thread waits for SIGUSR1 in both processes.
 * A SIGUSR1 the child sends itself must wake the child's copy (through a
 * router and a self-pipe of the child's own) and not the parent's, which
 * the inherited pipe would have carried it to.
 */
static void test_signal_after_fork(void **state)
{
    (void)state;
    atomic_int done = 0;
    sig_waiter w = {.signo = SIGUSR1, .timeout = 10 * GH_SEC, .done = &done};
    atomic_store(&w.result, 99);
    gh_task *t = gh_spawn(sig_waiter_task, &w);
    assert_non_null(t);
    for (int i = 0; i < 1000 && gh_signal_waiting(SIGUSR1) < 1; i++)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_signal_waiting(SIGUSR1), 1);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (kill(getpid(), SIGUSR1) != 0)
            _exit(1);
        if (gh_join(t, 5 * GH_SEC) != 0)
            _exit(2);
        _exit(atomic_load(&w.result) == 0 ? 0 : 3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The child's signal did not reach the parent's waiter. */
    assert_int_equal(gh_sleep(50 * GH_MSEC), 0);
    assert_int_equal(atomic_load(&done), 0);
    assert_int_equal(kill(getpid(), SIGUSR1), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&w.result), 0);
    gh_task_release(t);
    assert_int_equal(gh_hub_close(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_from_root),
        cmocka_unit_test(test_fork_from_task),
        cmocka_unit_test(test_tpool_after_fork),
        cmocka_unit_test(test_signal_after_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
