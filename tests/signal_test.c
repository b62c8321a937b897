/*
 * signal_test.c — gh_signal_wait: tasks on two runtime hubs, the test's own
 * hub and a plain thread wait for a signal sent with raise() or
 * kill(getpid()); timeouts, kill, the error paths, the drop of a delivery
 * nobody waits for, and gh_signal_restore putting the old handler back.
 * Runs under the plain build, ASan and TSan.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "tests/test_util.h"

/* Poll until @want waiters of @signo are registered. */
static bool wait_waiting(int signo, int want, int64_t timeout_ns)
{
    int64_t end = gh_now() + timeout_ns;
    while (gh_signal_waiting(signo) < want) {
        if (gh_now() > end)
            return false;
        sleep_ns(GH_MSEC);
    }
    return true;
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

static void *sig_waiter_thread(void *arg)
{
    sig_waiter_task(arg);
    return NULL;
}

static void test_signal_two_hubs_raise_and_kill(void **state)
{
    (void)state;
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 2};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);

    for (int round = 0; round < 2; round++) {
        atomic_int done = 0;
        sig_waiter w[2];
        for (int i = 0; i < 2; i++) {
            w[i] = (sig_waiter){.signo = SIGUSR1, .timeout = 30 * GH_SEC, .done = &done};
            atomic_store(&w[i].result, 99);
            assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, i), sig_waiter_task, &w[i]), 0);
        }
        assert_true(wait_waiting(SIGUSR1, 2, 20 * GH_SEC));
        assert_int_equal(atomic_load(&done), 0);
        /* One delivery wakes every waiter, on every hub. */
        if (round == 0)
            assert_int_equal(raise(SIGUSR1), 0);
        else
            assert_int_equal(kill(getpid(), SIGUSR1), 0);
        assert_true(wait_at_least(&done, 2, 20 * GH_SEC));
        for (int i = 0; i < 2; i++)
            assert_int_equal(atomic_load(&w[i].result), 0);
        assert_int_equal(gh_signal_waiting(SIGUSR1), 0);
    }
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    end_clean();
}

static void *send_sigusr2_later(void *arg)
{
    (void)arg;
    /* Not to this thread, which exits at once: the kernel picks a thread that waits. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Wait until the main thread's task and the plain thread are both waiting. */
    if (wait_waiting(SIGUSR2, 2, 20 * GH_SEC))
        kill(getpid(), SIGUSR2);
    return NULL;
}

static void test_signal_own_hub_and_plain_thread(void **state)
{
    (void)state;
    atomic_int done = 0;
    sig_waiter tw = {.signo = SIGUSR2, .timeout = 30 * GH_SEC, .done = &done};
    atomic_store(&tw.result, 99);
    pthread_t waiter, sender;
    assert_non_null(gh_get_hub());
    assert_int_equal(pthread_create(&waiter, NULL, sig_waiter_thread, &tw), 0);
    assert_int_equal(pthread_create(&sender, NULL, send_sigusr2_later, NULL), 0);
    /* The root of this thread's hub waits green; the router wakes it across threads. */
    assert_int_equal(gh_signal_wait(SIGUSR2, 30 * GH_SEC), 0);
    pthread_join(waiter, NULL);
    pthread_join(sender, NULL);
    assert_int_equal(atomic_load(&tw.result), 0);
    end_clean();
}

static void test_signal_timeout_kill_errors(void **state)
{
    (void)state;
    int64_t t0 = gh_now();
    assert_int_equal(gh_signal_wait(SIGUSR1, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_signal_waiting(SIGUSR1), 0);
    assert_int_equal(gh_signal_wait(SIGUSR1, 0), -ETIMEDOUT);

    assert_int_equal(gh_signal_wait(SIGKILL, GH_FOREVER), -EINVAL);
    assert_int_equal(gh_signal_wait(SIGSTOP, GH_FOREVER), -EINVAL);
    assert_int_equal(gh_signal_wait(SIGSEGV, GH_FOREVER), -EINVAL);
    assert_int_equal(gh_signal_wait(0, GH_FOREVER), -EINVAL);
    assert_int_equal(gh_signal_wait(100000, GH_FOREVER), -EINVAL);
    assert_int_equal(gh_signal_wait(SIGUSR1, -2), -EINVAL);
    assert_int_equal(gh_signal_waiting(0), -EINVAL);
    assert_int_equal(gh_signal_restore(SIGKILL), -EINVAL);

    /* A killed waiter leaves: nobody waits any more. */
    atomic_int done = 0;
    sig_waiter w = {.signo = SIGUSR1, .timeout = GH_FOREVER, .done = &done};
    atomic_store(&w.result, 99);
    gh_task *t = gh_spawn(sig_waiter_task, &w);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_signal_waiting(SIGUSR1), 1);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(atomic_load(&w.result), -ECANCELED);
    assert_int_equal(gh_signal_waiting(SIGUSR1), 0);
    end_clean();
}

static int cb_err;
static void cb_signal(void *arg)
{
    (void)arg;
    cb_err = gh_signal_wait(SIGUSR1, GH_FOREVER);
}

static void test_signal_timer_callback(void **state)
{
    (void)state;
    gh_timer *tm = gh_call_after(GH_MSEC, cb_signal, NULL);
    gh_timer_release(tm);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(cb_err, -EPERM);
    end_clean();
}

static atomic_int own_handler_calls;
static void own_handler(int signo)
{
    (void)signo;
    atomic_fetch_add(&own_handler_calls, 1);
}

static void test_signal_drop_and_restore(void **state)
{
    (void)state;
    struct sigaction sa, cur;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = own_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGHUP, &sa, NULL), 0);
    atomic_store(&own_handler_calls, 0);

    /* Waiting installs greenhub's handler in place of ours. */
    assert_int_equal(gh_signal_wait(SIGHUP, GH_MSEC), -ETIMEDOUT);
    assert_int_equal(sigaction(SIGHUP, NULL, &cur), 0);
    assert_ptr_not_equal((void *)cur.sa_handler, (void *)own_handler);
    /* A delivery nobody waits for is dropped: not ours, not the default (which would kill us). */
    assert_int_equal(raise(SIGHUP), 0);
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(atomic_load(&own_handler_calls), 0);

    /* Restore is refused while someone waits. */
    atomic_int done = 0;
    sig_waiter w = {.signo = SIGHUP, .timeout = 30 * GH_SEC, .done = &done};
    atomic_store(&w.result, 99);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sig_waiter_thread, &w), 0);
    assert_true(wait_waiting(SIGHUP, 1, 20 * GH_SEC));
    assert_int_equal(gh_signal_restore(SIGHUP), -EBUSY);
    assert_int_equal(raise(SIGHUP), 0);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&w.result), 0);
    assert_int_equal(atomic_load(&own_handler_calls), 0);

    assert_int_equal(gh_signal_restore(SIGHUP), 0);
    assert_int_equal(gh_signal_restore(SIGHUP), 0); /* nothing left to restore */
    assert_int_equal(sigaction(SIGHUP, NULL, &cur), 0);
    assert_ptr_equal((void *)cur.sa_handler, (void *)own_handler);
    assert_int_equal(raise(SIGHUP), 0);
    assert_true(wait_at_least(&own_handler_calls, 1, 20 * GH_SEC));
    signal(SIGHUP, SIG_DFL);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_two_hubs_raise_and_kill),
        cmocka_unit_test(test_signal_own_hub_and_plain_thread),
        cmocka_unit_test(test_signal_timeout_kill_errors),
        cmocka_unit_test(test_signal_timer_callback),
        cmocka_unit_test(test_signal_drop_and_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
