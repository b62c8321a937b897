/*
 * runtime_test.c — many threads: gh_runtime_*, gh_spawn_on, gh_call_on,
 * gh_xevent, the lossless stop and cross-thread stats.
 *
 * Runs under the plain build, ASan and TSan. Every wait on another thread has
 * a generous deadline and no timing check asserts an upper bound tighter than
 * several seconds.
 */

#include <dirent.h>
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
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "tests/test_util.h"

/* ------------------------------------------------------------- helpers */

/* Threads named @name exactly, or starting with it when @prefix. */
static int count_threads_matching(const char *name, bool prefix)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* the thread just exited */
        if (fgets(comm, sizeof comm, f)) {
            comm[strcspn(comm, "\n")] = 0;
            if (prefix ? strncmp(comm, name, strlen(name)) == 0 : strcmp(comm, name) == 0)
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/*
 * The runtimes' threads alive now: those named "greenhub-N". Not every
 * thread of the process: an emulator (qemu-user, .ci/aarch64.sh) or a
 * sanitizer has threads of its own that come and go.
 */
static int count_threads(void)
{
    return count_threads_matching("greenhub-", true);
}

/* How many threads are named exactly @name. */
static int count_threads_named(const char *name)
{
    return count_threads_matching(name, false);
}

/*
 * A joined thread can linger in /proc/self/task for a moment (the kernel
 * reaps it after waking the joiner): poll for the count, 10 s at most.
 */
static int threads_settle(int want)
{
    int64_t end = gh_now() + 10 * GH_SEC;
    int n;
    while ((n = count_threads()) != want && gh_now() < end)
        sleep_ns(GH_MSEC);
    return n;
}

static int threads_named_settle(const char *name, int want)
{
    int64_t end = gh_now() + 10 * GH_SEC;
    int n;
    while ((n = count_threads_named(name)) != want && gh_now() < end)
        sleep_ns(GH_MSEC);
    return n;
}

static gh_runtime *start_rt(int threads, const char *const *backends)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = threads, .backends = backends};
    int err = gh_runtime_start(&rt, &cfg);
    if (err)
        fail_msg("gh_runtime_start: %s", gh_strerror(err));
    assert_non_null(rt);
    return rt;
}

static void stop_destroy(gh_runtime *rt)
{
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* Returns the backend of the hub that runs it. */
static void *backend_of_runner(void *arg)
{
    (void)arg;
    return (void *)gh_hub_backend(gh_get_hub());
}

static void *hub_of_runner(void *arg)
{
    (void)arg;
    return gh_get_hub();
}

/* fds open now: /proc/self/fd link text per fd (empty when closed). */
#define MAX_FDS 4096
static void fd_links(char (*links)[64])
{
    for (int fd = 0; fd < MAX_FDS; fd++)
        links[fd][0] = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == self || fd < 0 || fd >= MAX_FDS)
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, links[fd], 63);
        links[fd][n > 0 ? n : 0] = 0;
    }
    closedir(d);
}

/* ----------------------------------------------------------- lifecycle */

static atomic_ulong simple_ran;
static void simple_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&simple_ran, 1);
}

static void test_runtime_start_stop_destroy(void **state)
{
    (void)state;
    int before = count_threads();
    gh_runtime *rt = start_rt(2, NULL);
    assert_int_equal(gh_runtime_threads(rt), 2);
    assert_int_equal(count_threads(), before + 2);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);
    assert_non_null(h0);
    assert_non_null(h1);
    assert_ptr_not_equal(h0, h1);

    atomic_store(&simple_ran, 0);
    assert_int_equal(gh_spawn_on(h0, simple_task, NULL), 0);
    assert_int_equal(gh_spawn_on(h1, simple_task, NULL), 0);
    assert_true(wait_at_least(&simple_ran, 2, 20 * GH_SEC));

    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    assert_int_equal(threads_settle(before), before);
    /* A second stop is harmless. */
    assert_int_equal(gh_runtime_stop(rt, 0), 0);
    gh_runtime_destroy(rt);

    /* Destroy alone stops a running runtime. */
    rt = start_rt(1, NULL);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), simple_task, NULL), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(atomic_load(&simple_ran), 3);
    assert_int_equal(threads_settle(before), before);
    end_clean();
}

/* The default build wakes hubs through an eventfd (wakeup_pipe_test covers the pipe). */
static void test_runtime_wakeup_is_eventfd(void **state)
{
    (void)state;
    static char before[MAX_FDS][64], after[MAX_FDS][64];
    static const char *const names[] = {"poll"}; /* poll opens no fd of its own */
    fd_links(before);
    gh_runtime *rt = start_rt(1, names);
    fd_links(after);
    int eventfds = 0, pipes = 0, other = 0;
    for (int fd = 0; fd < MAX_FDS; fd++) {
        if (!after[fd][0] || strcmp(before[fd], after[fd]) == 0)
            continue;
        if (strcmp(after[fd], "anon_inode:[eventfd]") == 0)
            eventfds++;
        else if (strncmp(after[fd], "pipe:[", 6) == 0)
            pipes++;
        else
            other++;
    }
    assert_int_equal(eventfds, 1);
    assert_int_equal(pipes, 0);
    assert_int_equal(other, 0);
    stop_destroy(rt);
    fd_links(after);
    for (int fd = 0; fd < MAX_FDS; fd++)
        assert_string_equal(before[fd], after[fd]); /* destroy closed it */
    end_clean();
}

static void test_runtime_bad_config(void **state)
{
    (void)state;
    int before = count_threads();
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 0};
    assert_int_equal(gh_runtime_start(&rt, &cfg), -EINVAL);
    assert_null(rt);
    cfg.threads = -3;
    assert_int_equal(gh_runtime_start(&rt, &cfg), -EINVAL);
    assert_int_equal(gh_runtime_start(&rt, NULL), -EINVAL);
    cfg.threads = 1;
    assert_int_equal(gh_runtime_start(NULL, &cfg), -EINVAL);

    const char *const bad[] = {"epoll", "no-such-backend", "poll"};
    cfg.threads = 3;
    cfg.backends = bad;
    assert_int_equal(gh_runtime_start(&rt, &cfg), -ENOENT);
    assert_null(rt);
    /* The bad name is the first one: still nothing starts. */
    const char *const bad0[] = {"nope"};
    cfg.threads = 1;
    cfg.backends = bad0;
    assert_int_equal(gh_runtime_start(&rt, &cfg), -ENOENT);
    assert_null(rt);
    assert_int_equal(threads_settle(before), before);
    assert_int_equal(threads_named_settle("greenhub-0", 0), 0);
    end_clean();
}

static void test_runtime_thread_names(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(3, NULL);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "greenhub-%d", i);
        assert_int_equal(count_threads_named(name), 1);
    }
    assert_int_equal(count_threads_named("greenhub-3"), 0);
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "greenhub-%d", i);
        assert_int_equal(threads_named_settle(name, 0), 0);
    }
    gh_runtime_destroy(rt);
    end_clean();
}

static void test_runtime_mixed_backends(void **state)
{
    (void)state;
    static const char *const all[] = {"epoll", "poll", "select", "io_uring", "libev", "libevent"};
    const char *names[7];
    /*
     * A kernel (or seccomp filter) may refuse io_uring, and a build may leave
     * the optional backends out (-DGH_WITH_LIBEV=0 ..., .ci/aarch64.sh): then
     * that thread runs poll.
     */
    for (int i = 0; i < 6; i++) {
        int err = gh_use_hub(all[i]);
        names[i] = all[i];
        if (err) {
            bool optional = i >= 3;
            assert_true(err == -ENOSYS || err == -EPERM || (optional && err == -ENOENT));
            print_message("backend %s refused here (%s); using poll\n", all[i], gh_strerror(err));
            names[i] = "poll";
        }
        assert_int_equal(gh_hub_close(), 0);
    }
    /* A NULL entry takes the default, as a new hub of this thread would. */
    names[6] = NULL;
    assert_int_equal(gh_use_hub(NULL), 0);
    const char *dflt = gh_hub_backend(gh_get_hub());
    assert_int_equal(gh_hub_close(), 0);

    gh_runtime *rt = start_rt(7, names);
    for (int i = 0; i < 7; i++) {
        gh_hub *h = gh_runtime_hub(rt, i);
        assert_non_null(h);
        assert_string_equal(gh_hub_backend(h), names[i] ? names[i] : dflt);
        gh_hub_stats st;
        assert_int_equal(gh_hub_get_stats(h, &st), 0);
        assert_string_equal(st.backend, gh_hub_backend(h));
        /* A task run there sees the same backend and the same hub. */
        void *res = NULL;
        assert_int_equal(gh_call_on(h, backend_of_runner, NULL, &res, 20 * GH_SEC), 0);
        assert_string_equal((const char *)res, gh_hub_backend(h));
        assert_int_equal(gh_call_on(h, hub_of_runner, NULL, &res, 20 * GH_SEC), 0);
        assert_ptr_equal(res, h);
    }
    stop_destroy(rt);
    end_clean();
}

static void test_runtime_hub_bad_index(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    errno = 0;
    assert_null(gh_runtime_hub(rt, -1));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_runtime_hub(rt, 2));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_runtime_hub(NULL, 0));
    assert_int_equal(errno, EINVAL);
    assert_non_null(gh_runtime_hub(rt, 1));
    assert_int_equal(gh_runtime_threads(NULL), -EINVAL);
    assert_int_equal(gh_spawn_on(NULL, simple_task, NULL), -EINVAL);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), NULL, NULL), -EINVAL);
    stop_destroy(rt);
    end_clean();
}

/* ------------------------------------------------------- handoff storm */

#define STORM_PRODUCERS 4
#ifndef STORM_PER_PRODUCER
#define STORM_PER_PRODUCER 250000
#endif
#define STORM_TOTAL (STORM_PRODUCERS * STORM_PER_PRODUCER)

static _Atomic uint64_t storm_bits[(STORM_TOTAL + 63) / 64];
static atomic_ulong storm_ran, storm_doubles, storm_wrong_hub;
static gh_hub *storm_hubs[2];
static atomic_bool storm_done;

static void storm_task(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t bit = UINT64_C(1) << (id & 63);
    if (atomic_fetch_or(&storm_bits[id >> 6], bit) & bit)
        atomic_fetch_add(&storm_doubles, 1);
    if (gh_get_hub() != storm_hubs[id & 1])
        atomic_fetch_add(&storm_wrong_hub, 1);
    atomic_fetch_add(&storm_ran, 1);
}

typedef struct storm_producer {
    pthread_t th;
    int index;
    unsigned long failed;
} storm_producer;

static void *storm_produce(void *arg)
{
    storm_producer *p = arg;
    uintptr_t base = (uintptr_t)p->index * STORM_PER_PRODUCER;
    for (uintptr_t i = 0; i < STORM_PER_PRODUCER; i++) {
        uintptr_t id = base + i;
        int r = gh_spawn_on(storm_hubs[id & 1], storm_task, (void *)id);
        if (r != 0)
            p->failed++;
    }
    return NULL;
}

/* Reads both hubs' counters from a third thread while the storm runs (TSan). */
static atomic_ulong stats_reads, stats_regressions;
static void *stats_reader(void *arg)
{
    (void)arg;
    uint64_t last_in[2] = {0, 0}, last_iter[2] = {0, 0};
    while (!atomic_load(&storm_done)) {
        for (int i = 0; i < 2; i++) {
            gh_hub_stats st;
            if (gh_hub_get_stats(storm_hubs[i], &st) != 0 || !st.backend)
                atomic_fetch_add(&stats_regressions, 1);
            if (st.handoffs_in < last_in[i] || st.loop_iterations < last_iter[i])
                atomic_fetch_add(&stats_regressions, 1);
            last_in[i] = st.handoffs_in;
            last_iter[i] = st.loop_iterations;
            atomic_fetch_add(&stats_reads, 1);
        }
        sleep_ns(200 * GH_USEC);
    }
    return NULL;
}

static void test_runtime_handoff_storm(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    storm_hubs[0] = gh_runtime_hub(rt, 0);
    storm_hubs[1] = gh_runtime_hub(rt, 1);
    memset(storm_bits, 0, sizeof storm_bits);
    atomic_store(&storm_ran, 0);
    atomic_store(&storm_doubles, 0);
    atomic_store(&storm_wrong_hub, 0);
    atomic_store(&storm_done, false);
    atomic_store(&stats_reads, 0);
    atomic_store(&stats_regressions, 0);

    pthread_t reader;
    assert_int_equal(pthread_create(&reader, NULL, stats_reader, NULL), 0);
    storm_producer prod[STORM_PRODUCERS];
    for (int i = 0; i < STORM_PRODUCERS; i++) {
        prod[i] = (storm_producer){.index = i};
        assert_int_equal(pthread_create(&prod[i].th, NULL, storm_produce, &prod[i]), 0);
    }
    for (int i = 0; i < STORM_PRODUCERS; i++) {
        pthread_join(prod[i].th, NULL);
        assert_int_equal(prod[i].failed, 0);
    }
    /* Every handoff runs without any stop forcing it. */
    bool all = wait_at_least(&storm_ran, STORM_TOTAL, 50 * GH_SEC);
    atomic_store(&storm_done, true);
    pthread_join(reader, NULL);
    assert_true(all);

    gh_hub_stats s0, s1;
    assert_int_equal(gh_hub_get_stats(storm_hubs[0], &s0), 0);
    assert_int_equal(gh_hub_get_stats(storm_hubs[1], &s1), 0);
    assert_int_equal(s0.handoffs_in, STORM_TOTAL / 2);
    assert_int_equal(s1.handoffs_in, STORM_TOTAL / 2);
    assert_true(s0.tasks_spawned >= STORM_TOTAL / 2);
    /* Coalesced: a burst costs one wakeup, so far fewer writes than handoffs. */
    assert_true(s0.wakeups_written + s1.wakeups_written < STORM_TOTAL);
    assert_true(atomic_load(&stats_reads) > 0);
    assert_int_equal(atomic_load(&stats_regressions), 0);

    stop_destroy(rt);
    assert_int_equal(atomic_load(&storm_ran), STORM_TOTAL);
    assert_int_equal(atomic_load(&storm_doubles), 0);
    assert_int_equal(atomic_load(&storm_wrong_hub), 0);
    for (size_t w = 0; w < STORM_TOTAL / 64; w++)
        assert_true(atomic_load(&storm_bits[w]) == UINT64_MAX);
    end_clean();
}

/* -------------------------------------------------- spawn_on from where */

typedef struct where_rec {
    gh_hub *ran_on;
    gh_hub *target;
    atomic_ulong done;
    int spawn_result;
    bool ran_before_caller_blocked;
    atomic_bool ran;
} where_rec;

static void where_task(void *arg)
{
    where_rec *w = arg;
    w->ran_on = gh_get_hub();
    atomic_store(&w->ran, true);
    atomic_fetch_add(&w->done, 1);
}

/* On a hub thread: hand where_task to w->target. */
static void spawn_from_hub(void *arg)
{
    where_rec *w = arg;
    w->spawn_result = gh_spawn_on(w->target, where_task, w);
    if (w->target == gh_get_hub()) {
        /* Its own hub: a plain spawn, which first runs when we block. */
        w->ran_before_caller_blocked = atomic_load(&w->ran);
        gh_sleep(GH_MSEC);
    }
}

static void test_runtime_spawn_on_sources(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);

    /* From a plain thread (this one): no hub is made for it. */
    where_rec a = {.target = h1};
    assert_int_equal(gh_spawn_on(h1, where_task, &a), 0);
    assert_true(wait_at_least(&a.done, 1, 20 * GH_SEC));
    assert_ptr_equal(a.ran_on, h1);
    assert_null(gh_current());

    /* From hub 0's thread to hub 1. */
    where_rec b = {.target = h1, .spawn_result = 1};
    assert_int_equal(gh_spawn_on(h0, spawn_from_hub, &b), 0);
    assert_true(wait_at_least(&b.done, 1, 20 * GH_SEC));

    /* From hub 0's thread to hub 0 itself. */
    where_rec c = {.target = h0, .spawn_result = 1};
    assert_int_equal(gh_spawn_on(h0, spawn_from_hub, &c), 0);
    assert_true(wait_at_least(&c.done, 1, 20 * GH_SEC));
    stop_destroy(rt); /* orders b's and c's plain fields before our reads */
    assert_int_equal(b.spawn_result, 0);
    assert_ptr_equal(b.ran_on, h1);
    assert_int_equal(c.spawn_result, 0);
    assert_ptr_equal(c.ran_on, h0);
    assert_false(c.ran_before_caller_blocked);
    assert_null(gh_current());
    end_clean();
}

/* --------------------------------------------------------- gh_call_on */

typedef struct green_ctx {
    gh_hub *other;
    atomic_ulong ticks;
    atomic_bool stop_ticking;
    unsigned long ticks_during_call;
    int call_result;
    void *call_value;
} green_ctx;

static void ticker(void *arg)
{
    green_ctx *g = arg;
    while (!atomic_load(&g->stop_ticking)) {
        atomic_fetch_add(&g->ticks, 1);
        if (gh_sleep(GH_MSEC) != 0)
            break;
    }
}

/*
 * On the other hub: wait until the caller's hub has ticked 5 more times. If
 * the caller's hub were blocked in gh_call_on, that never happens and this
 * gives up after 20 s with NULL.
 */
static void *wait_for_ticks(void *arg)
{
    green_ctx *g = arg;
    unsigned long want = atomic_load(&g->ticks) + 5;
    int64_t end = gh_now() + 20 * GH_SEC;
    while (atomic_load(&g->ticks) < want)
        if (gh_now() > end || gh_sleep(GH_MSEC) != 0)
            return NULL;
    return (void *)"ticked";
}

static void *call_from_hub(void *arg)
{
    green_ctx *g = arg;
    gh_task *t = gh_spawn(ticker, g);
    if (!t)
        return NULL;
    unsigned long before = atomic_load(&g->ticks);
    g->call_result = gh_call_on(g->other, wait_for_ticks, g, &g->call_value, 30 * GH_SEC);
    g->ticks_during_call = atomic_load(&g->ticks) - before;
    atomic_store(&g->stop_ticking, true);
    gh_join(t, GH_FOREVER);
    gh_task_release(t);
    return g;
}

static void *slow_answer(void *arg)
{
    gh_sleep(100 * GH_MSEC);
    return (void *)((uintptr_t)arg + 1);
}

/* On a hub: gh_call_on to the same hub (fn runs as a sibling task while we wait green). */
static void *call_own_hub(void *arg)
{
    void *v = NULL;
    int err = gh_call_on(gh_get_hub(), slow_answer, arg, &v, 30 * GH_SEC);
    return err ? (void *)(intptr_t)err : v;
}

/* From a timer callback (MAINLOOP), gh_call_on would block the loop: -EPERM, fn never runs. */
static atomic_int call_from_cb_result = 1;
static atomic_ulong call_from_cb_done;
static void call_from_timer_cb(void *arg)
{
    atomic_store(&call_from_cb_result, gh_call_on(arg, slow_answer, NULL, NULL, GH_SEC));
    atomic_fetch_add(&call_from_cb_done, 1);
}
static void arm_call_from_timer(void *arg)
{
    gh_timer *t = gh_call_after(GH_MSEC, call_from_timer_cb, arg);
    if (t)
        gh_timer_release(t);
}

static void test_runtime_call_on_hub_to_hub(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);

    /* Plain thread to hub: this thread blocks until the answer is there. */
    void *res = NULL;
    int64_t t0 = gh_now();
    assert_int_equal(gh_call_on(h0, slow_answer, (void *)41, &res, 30 * GH_SEC), 0);
    assert_true(gh_now() - t0 >= 100 * GH_MSEC);
    assert_ptr_equal(res, (void *)42);
    assert_null(gh_current()); /* still no hub on this thread */

    /* Hub 0 to hub 1: hub 0 keeps running its ticker during the call. */
    green_ctx g = {.other = h1};
    assert_int_equal(gh_call_on(h0, call_from_hub, &g, &res, 60 * GH_SEC), 0);
    assert_ptr_equal(res, &g);
    assert_int_equal(g.call_result, 0);
    assert_non_null(g.call_value);
    assert_string_equal((const char *)g.call_value, "ticked");
    assert_true(g.ticks_during_call >= 5);

    /* A hub to itself. */
    res = NULL;
    assert_int_equal(gh_call_on(h0, call_own_hub, (void *)9, &res, 60 * GH_SEC), 0);
    assert_ptr_equal(res, (void *)10);

    /* From a timer callback: -EPERM. */
    atomic_store(&call_from_cb_done, 0);
    assert_int_equal(gh_spawn_on(h0, arm_call_from_timer, h1), 0);
    assert_true(wait_at_least(&call_from_cb_done, 1, 20 * GH_SEC));
    assert_int_equal(atomic_load(&call_from_cb_result), -EPERM);

    /* This thread's own (non-runtime) hub to hub 1: its root waits green too. */
    green_ctx m = {.other = h1};
    gh_task *t = gh_spawn(ticker, &m);
    assert_non_null(t);
    res = NULL;
    assert_int_equal(gh_call_on(h1, wait_for_ticks, &m, &res, 30 * GH_SEC), 0);
    assert_string_equal((const char *)res, "ticked");
    atomic_store(&m.stop_ticking, true);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);

    stop_destroy(rt);
    end_clean();
}

/* Timeout: fn outlives the caller's wait; its late result is dropped. */
typedef struct late_rec {
    int64_t sleep_ns;
    atomic_ulong finished;
} late_rec;

static void *late_fn(void *arg)
{
    late_rec *l = arg;
    gh_sleep(l->sleep_ns);
    atomic_fetch_add(&l->finished, 1);
    return (void *)l;
}

typedef struct timeout_ctx {
    gh_hub *other;
    late_rec *late;
    int result;
    void *value;
    int64_t elapsed;
    unsigned long ok, timedout, bad;
} timeout_ctx;

static void *call_with_timeout_from_hub(void *arg)
{
    timeout_ctx *c = arg;
    int64_t t0 = gh_now();
    c->value = (void *)"untouched";
    c->result = gh_call_on(c->other, late_fn, c->late, &c->value, 50 * GH_MSEC);
    c->elapsed = gh_now() - t0;
    return NULL;
}

/* Many calls whose fn finishes right around the timeout: set and timeout race. */
static void *racing_calls_from_hub(void *arg)
{
    timeout_ctx *c = arg;
    for (int i = 0; i < 200; i++) {
        late_rec *l = &c->late[i];
        l->sleep_ns = (i % 3) * 500 * GH_USEC;
        void *v = NULL;
        int r = gh_call_on(c->other, late_fn, l, &v, GH_MSEC);
        if (r == 0 && v == l)
            c->ok++;
        else if (r == -ETIMEDOUT)
            c->timedout++;
        else
            c->bad++;
    }
    return NULL;
}

static void test_runtime_call_on_timeout(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);

    /* From a plain thread. */
    late_rec *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->sleep_ns = 300 * GH_MSEC;
    void *res = (void *)"untouched";
    int64_t t0 = gh_now();
    assert_int_equal(gh_call_on(h1, late_fn, l, &res, 50 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 50 * GH_MSEC);
    assert_string_equal((const char *)res, "untouched");
    assert_int_equal(atomic_load(&l->finished), 0);
    assert_true(wait_at_least(&l->finished, 1, 20 * GH_SEC)); /* fn still ran, alone */

    /* From a task on hub 0 (green wait). */
    late_rec *l2 = calloc(1, sizeof *l2);
    assert_non_null(l2);
    l2->sleep_ns = 300 * GH_MSEC;
    timeout_ctx c = {.other = h1, .late = l2};
    assert_int_equal(gh_call_on(h0, call_with_timeout_from_hub, &c, &res, 30 * GH_SEC), 0);
    assert_int_equal(c.result, -ETIMEDOUT);
    assert_true(c.elapsed >= 50 * GH_MSEC);
    assert_string_equal((const char *)c.value, "untouched");
    assert_true(wait_at_least(&l2->finished, 1, 20 * GH_SEC));

    /* Results that arrive just as the timeout fires: either outcome, never a bad one. */
    late_rec *many = calloc(200, sizeof *many);
    assert_non_null(many);
    timeout_ctx r = {.other = h1, .late = many};
    assert_int_equal(gh_call_on(h0, racing_calls_from_hub, &r, &res, 60 * GH_SEC), 0);
    assert_int_equal(r.bad, 0);
    assert_int_equal(r.ok + r.timedout, 200);

    /* Stop drains every late fn before the records go. */
    stop_destroy(rt);
    for (int i = 0; i < 200; i++)
        assert_int_equal(atomic_load(&many[i].finished), 1);
    free(many);
    free(l);
    free(l2);
    end_clean();
}

static atomic_ulong never_ran;
static void *must_not_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&never_ran, 1);
    return NULL;
}
static void must_not_run_task(void *arg)
{
    must_not_run(arg);
}

static void test_runtime_call_on_stopped_hub(void **state)
{
    (void)state;
    static const char *const names[] = {"poll", "select"};
    gh_runtime *rt = start_rt(2, names);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);
    atomic_store(&never_ran, 0);
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);

    /* Tombstones: refusing, but valid to read until destroy. */
    void *res = (void *)"untouched";
    assert_int_equal(gh_call_on(h0, must_not_run, NULL, &res, GH_SEC), -ESHUTDOWN);
    assert_string_equal((const char *)res, "untouched");
    assert_int_equal(gh_call_on(h1, must_not_run, NULL, NULL, GH_FOREVER), -ESHUTDOWN);
    assert_int_equal(gh_spawn_on(h0, must_not_run_task, NULL), -ESHUTDOWN);
    assert_int_equal(gh_spawn_on(h1, must_not_run_task, NULL), -ESHUTDOWN);
    assert_ptr_equal(gh_runtime_hub(rt, 0), h0);
    assert_string_equal(gh_hub_backend(h0), "poll");
    assert_string_equal(gh_hub_backend(h1), "select");
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(h0, &st), 0);
    assert_string_equal(st.backend, "poll");
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(gh_hub_get_stats(h1, &st), 0);
    assert_int_equal(st.tasks_live, 0);

    /* From this thread's own hub (its root task) too. */
    assert_non_null(gh_get_hub());
    assert_int_equal(gh_call_on(h1, must_not_run, NULL, NULL, GH_SEC), -ESHUTDOWN);
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(atomic_load(&never_ran), 0);
    gh_runtime_destroy(rt);
    end_clean();
}

/* ----------------------------------------------------------- ping-pong */

#define PINGPONG_N 2000

static void *pong(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

typedef struct pingpong {
    gh_hub *other;
    unsigned long rounds, errors;
} pingpong;

static void *ping(void *arg)
{
    pingpong *p = arg;
    for (uintptr_t i = 0; i < PINGPONG_N; i++) {
        void *v = NULL;
        if (gh_call_on(p->other, pong, (void *)i, &v, 30 * GH_SEC) != 0 || v != (void *)(i + 1))
            p->errors++;
        else
            p->rounds++;
    }
    return NULL;
}

/* Ping-pong over xevents: two tasks on two hubs hand a counter back and forth. */
#define XPP_N 1000
typedef struct xpp {
    gh_xevent ev[2][XPP_N]; /* [side][round]: one-shot per round */
    unsigned long got[2];
    unsigned long errors;
    atomic_ulong done;
} xpp;

static void xpp_side(xpp *x, int side)
{
    for (int i = 0; i < XPP_N; i++) {
        if (side == 0 && gh_xevent_set(&x->ev[1][i], (void *)(uintptr_t)(2 * i)) != 0)
            x->errors++;
        void *v = NULL;
        if (gh_xevent_wait(&x->ev[side][i], &v, 30 * GH_SEC) != 0) {
            x->errors++;
            break;
        }
        if ((uintptr_t)v != (uintptr_t)(2 * i + (side == 0 ? 1 : 0)))
            x->errors++;
        x->got[side]++;
        if (side == 1 && gh_xevent_set(&x->ev[0][i], (void *)(uintptr_t)(2 * i + 1)) != 0)
            x->errors++;
    }
    atomic_fetch_add(&x->done, 1);
}
static void xpp_side0(void *arg)
{
    xpp_side(arg, 0);
}
static void xpp_side1(void *arg)
{
    xpp_side(arg, 1);
}

static void test_runtime_ping_pong(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);

    pingpong p = {.other = h1};
    void *res;
    assert_int_equal(gh_call_on(h0, ping, &p, &res, 120 * GH_SEC), 0);
    assert_int_equal(p.errors, 0);
    assert_int_equal(p.rounds, PINGPONG_N);

    xpp *x = calloc(1, sizeof *x);
    assert_non_null(x);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < XPP_N; i++)
            assert_int_equal(gh_xevent_init(&x->ev[s][i]), 0);
    assert_int_equal(gh_spawn_on(h1, xpp_side1, x), 0);
    assert_int_equal(gh_spawn_on(h0, xpp_side0, x), 0);
    assert_true(wait_at_least(&x->done, 2, 60 * GH_SEC));
    stop_destroy(rt);
    assert_int_equal(x->errors, 0);
    assert_int_equal(x->got[0], XPP_N);
    assert_int_equal(x->got[1], XPP_N);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < XPP_N; i++)
            gh_xevent_destroy(&x->ev[s][i]);
    free(x);
    end_clean();
}

/* --------------------------------------------------- stop mid-storm */

static atomic_ulong mid_ran, mid_accepted;
static atomic_bool mid_stop_returned;
static gh_hub *mid_hubs[2];

static void mid_task(void *arg)
{
    /* Some tasks block a little: stop lets tasks finish, not only start. */
    if (((uintptr_t)arg % 64) == 0)
        gh_sleep(GH_MSEC);
    atomic_fetch_add(&mid_ran, 1);
}

typedef struct mid_producer {
    pthread_t th;
    unsigned long accepted, refused, other, after_stop, after_stop_ok;
} mid_producer;

static void *mid_produce(void *arg)
{
    mid_producer *p = arg;
    for (uintptr_t i = 0; !atomic_load(&mid_stop_returned); i++) {
        /* Keep the backlog bounded (sanitizers slow the hubs far more than us). */
        if (atomic_load(&mid_accepted) - atomic_load(&mid_ran) > 4096)
            sleep_ns(50 * GH_USEC);
        int r = gh_spawn_on(mid_hubs[i & 1], mid_task, (void *)i);
        if (r == 0) {
            p->accepted++;
            atomic_fetch_add(&mid_accepted, 1);
        } else if (r == -ESHUTDOWN) {
            p->refused++;
            sleep_ns(20 * GH_USEC); /* keep calling, but leave the 2 cores to the drain */
        } else {
            p->other++;
        }
    }
    /* Stop has returned: every further call is refused. */
    for (uintptr_t i = 0; i < 1000; i++) {
        int r = gh_spawn_on(mid_hubs[i & 1], mid_task, (void *)i);
        p->after_stop++;
        if (r == 0)
            p->after_stop_ok++;
        else if (r != -ESHUTDOWN)
            p->other++;
    }
    return NULL;
}

static void test_runtime_stop_mid_storm(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        gh_runtime *rt = start_rt(2, NULL);
        mid_hubs[0] = gh_runtime_hub(rt, 0);
        mid_hubs[1] = gh_runtime_hub(rt, 1);
        atomic_store(&mid_ran, 0);
        atomic_store(&mid_accepted, 0);
        atomic_store(&mid_stop_returned, false);
        mid_producer prod[4];
        for (int i = 0; i < 4; i++) {
            prod[i] = (mid_producer){0};
            assert_int_equal(pthread_create(&prod[i].th, NULL, mid_produce, &prod[i]), 0);
        }
        /* Stop in the middle: tasks are running and producers are still pushing. */
        assert_true(wait_at_least(&mid_ran, 5000 + 5000 * (unsigned long)round, 30 * GH_SEC));
        int err = gh_runtime_stop(rt, 20 * GH_SEC);
        unsigned long ran_at_stop = atomic_load(&mid_ran);
        atomic_store(&mid_stop_returned, true);
        unsigned long accepted = 0, refused = 0;
        for (int i = 0; i < 4; i++) {
            pthread_join(prod[i].th, NULL);
            accepted += prod[i].accepted;
            refused += prod[i].refused;
            assert_int_equal(prod[i].other, 0);
            assert_int_equal(prod[i].after_stop, 1000);
            assert_int_equal(prod[i].after_stop_ok, 0);
        }
        assert_int_equal(err, 0);
        /* Accepted = run, and all of it had run when stop returned. */
        assert_int_equal(atomic_load(&mid_ran), accepted);
        assert_int_equal(ran_at_stop, accepted);
        (void)refused;
        gh_runtime_destroy(rt);
    }
    end_clean();
}

/* ------------------------------------------------- stop's drain timeout */

static atomic_int forever_result = 1;
static atomic_ulong forever_started;
static void sleep_forever(void *arg)
{
    (void)arg;
    atomic_fetch_add(&forever_started, 1);
    atomic_store(&forever_result, gh_sleep(GH_FOREVER));
}

typedef struct second_stop {
    gh_runtime *rt;
    atomic_int result;
} second_stop;

static void *second_stop_main(void *arg)
{
    second_stop *s = arg;
    atomic_store(&s->result, gh_runtime_stop(s->rt, 200 * GH_MSEC));
    return NULL;
}

static void test_runtime_stop_drain_timeout(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    atomic_store(&forever_started, 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), sleep_forever, NULL), 0);
    assert_true(wait_at_least(&forever_started, 1, 20 * GH_SEC));
    /* Two concurrent stops: whichever comes second waits and gets the first one's answer. */
    second_stop second = {.rt = rt, .result = 1};
    pthread_t th;
    int64_t t0 = gh_now();
    assert_int_equal(pthread_create(&th, NULL, second_stop_main, &second), 0);
    assert_int_equal(gh_runtime_stop(rt, 200 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 200 * GH_MSEC);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&second.result), -ETIMEDOUT);
    assert_int_equal(gh_runtime_stop(rt, GH_FOREVER), -ETIMEDOUT); /* and a later one */
    assert_int_equal(atomic_load(&forever_result), -ECANCELED);
    /* The tombstones stay. */
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_runtime_hub(rt, 1), &st), 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), simple_task, NULL), -ESHUTDOWN);
    gh_runtime_destroy(rt);
    end_clean();
}

/*
 * Timer handles nobody released (the pointers are dropped on purpose): a
 * fired one-shot, and a repeating timer the stop cancels. Once the hub's
 * thread is gone nobody can release them, so the hub frees them; under
 * ASan, LeakSanitizer fails this test if it does not.
 */
static atomic_int kept_fired;
static void kept_cb(void *arg)
{
    (void)arg;
    atomic_fetch_add(&kept_fired, 1);
}

/* Run by gh_call_on on a runtime hub, and as a plain thread (whose hub is freed at its exit). */
static void *leave_timer_handles(void *arg)
{
    (void)arg;
    if (gh_call_after(0, kept_cb, NULL) && gh_call_repeatedly(GH_MSEC, kept_cb, NULL))
        gh_sleep(5 * GH_MSEC);
    return NULL;
}

static void test_runtime_unreleased_timer_handles_freed(void **state)
{
    (void)state;
    atomic_store(&kept_fired, 0);
    gh_runtime *rt = start_rt(1, NULL);
    void *res;
    assert_int_equal(gh_call_on(gh_runtime_hub(rt, 0), leave_timer_handles, NULL, &res, 5 * GH_SEC),
                     0);
    assert_true(atomic_load(&kept_fired) >= 2);
    assert_int_equal(gh_runtime_stop(rt, GH_SEC), 0);
    gh_runtime_destroy(rt);

    atomic_store(&kept_fired, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, leave_timer_handles, NULL), 0);
    pthread_join(th, NULL);
    assert_true(atomic_load(&kept_fired) >= 2);
    end_clean();
}

/* Far timers and a far delayed start must not outlive the drain timeout. */
static atomic_ulong far_cb_ran, far_setup_done;
static atomic_int far_task_sleep = 1;
static void far_cb(void *arg)
{
    (void)arg;
    atomic_fetch_add(&far_cb_ran, 1);
}
static void far_started(void *arg)
{
    (void)arg;
    atomic_store(&far_task_sleep, gh_sleep(GH_MSEC));
}
static void far_setup(void *arg)
{
    (void)arg;
    gh_timer *t = gh_call_after(3600 * GH_SEC, far_cb, NULL);
    gh_task *late = gh_spawn_after(3600 * GH_SEC, far_started, NULL);
    if (t && late) {
        gh_timer_release(t);
        gh_task_release(late);
        atomic_fetch_add(&far_setup_done, 1);
    }
}

static void test_runtime_stop_kills_far_timers(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(1, NULL);
    atomic_store(&far_setup_done, 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), far_setup, NULL), 0);
    assert_true(wait_at_least(&far_setup_done, 1, 20 * GH_SEC));
    int64_t t0 = gh_now();
    assert_int_equal(gh_runtime_stop(rt, 100 * GH_MSEC), -ETIMEDOUT);
    /* Ends soon after the drain timeout, not in an hour. */
    assert_true(gh_now() - t0 < 30 * GH_SEC);
    /* The delayed task started at once, already cancelled; the one-shot was dropped. */
    assert_int_equal(atomic_load(&far_task_sleep), -ECANCELED);
    assert_int_equal(atomic_load(&far_cb_ran), 0);
    gh_runtime_destroy(rt);
    end_clean();
}

/* ------------------------------------------------- repeating timers */

static atomic_ulong rep_ticks, rep_setup_done;
static void rep_cb(void *arg)
{
    (void)arg;
    atomic_fetch_add(&rep_ticks, 1);
}
static void rep_setup(void *arg)
{
    (void)arg;
    /* One released, one whose handle the task keeps and cancels itself after stop. */
    gh_timer *t = gh_call_repeatedly(2 * GH_MSEC, rep_cb, NULL);
    if (!t)
        return;
    gh_timer_release(t);
    atomic_fetch_add(&rep_setup_done, 1);
}

static void test_runtime_stop_cancels_repeating_timers(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    atomic_store(&rep_ticks, 0);
    atomic_store(&rep_setup_done, 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), rep_setup, NULL), 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), rep_setup, NULL), 0);
    assert_true(wait_at_least(&rep_setup_done, 2, 20 * GH_SEC));
    assert_true(wait_at_least(&rep_ticks, 6, 20 * GH_SEC));
    /* Repeating timers alone never drain: stop cancels them and returns 0. */
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    unsigned long ticks = atomic_load(&rep_ticks);
    sleep_ns(30 * GH_MSEC);
    assert_int_equal(atomic_load(&rep_ticks), ticks);
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_runtime_hub(rt, 0), &st), 0);
    assert_int_equal(st.timers_pending, 0);
    gh_runtime_destroy(rt);
    end_clean();
}

/* ------------------------------------------------------------ xevent */

typedef struct xw {
    gh_xevent *ev;
    atomic_ulong waiting, woke;
    atomic_int results[3];
    void *values[3];
} xw;

static void xw_wait(xw *w, int slot)
{
    void *v = NULL;
    atomic_fetch_add(&w->waiting, 1);
    int r = gh_xevent_wait(w->ev, &v, 30 * GH_SEC);
    w->values[slot] = v;
    atomic_store(&w->results[slot], r);
    atomic_fetch_add(&w->woke, 1);
}
static void xw_task0(void *arg)
{
    xw_wait(arg, 0);
}
static void xw_task1(void *arg)
{
    xw_wait(arg, 1);
}
static void *xw_thread(void *arg)
{
    xw_wait(arg, 2);
    return NULL;
}

static void test_xevent_set_wakes_everyone(void **state)
{
    (void)state;
    gh_runtime *rt = start_rt(2, NULL);
    gh_xevent ev;
    assert_int_equal(gh_xevent_init(&ev), 0);
    xw w = {.ev = &ev};
    for (int i = 0; i < 3; i++)
        atomic_store(&w.results[i], 1);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), xw_task0, &w), 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), xw_task1, &w), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, xw_thread, &w), 0);
    assert_true(wait_at_least(&w.waiting, 3, 20 * GH_SEC));
    sleep_ns(50 * GH_MSEC); /* let them get into the wait */
    assert_int_equal(atomic_load(&w.woke), 0);
    assert_int_equal(gh_xevent_set(&ev, (void *)&w), 0);
    assert_int_equal(gh_xevent_set(&ev, NULL), -EALREADY);
    assert_true(wait_at_least(&w.woke, 3, 20 * GH_SEC));
    pthread_join(th, NULL);
    stop_destroy(rt); /* orders the tasks' writes before our reads */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&w.results[i]), 0);
        assert_ptr_equal(w.values[i], &w);
    }
    gh_xevent_destroy(&ev);
    end_clean();
}

typedef struct xto {
    gh_xevent *ev;
    int result;
    int64_t elapsed;
    atomic_ulong done;
} xto;
static void xto_task(void *arg)
{
    xto *x = arg;
    int64_t t0 = gh_now();
    void *v = (void *)"untouched";
    x->result = gh_xevent_wait(x->ev, &v, 50 * GH_MSEC);
    x->elapsed = gh_now() - t0;
    if (v != (void *)"untouched")
        x->result = 12345;
    atomic_fetch_add(&x->done, 1);
}

static void test_xevent_wait_timeout_and_reset(void **state)
{
    (void)state;
    gh_xevent ev;
    assert_int_equal(gh_xevent_init(&ev), 0);

    /* Plain thread. */
    void *v = NULL;
    assert_int_equal(gh_xevent_wait(&ev, &v, 0), -ETIMEDOUT);
    int64_t t0 = gh_now();
    assert_int_equal(gh_xevent_wait(&ev, &v, 50 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 50 * GH_MSEC);
    assert_int_equal(gh_xevent_wait(&ev, &v, -2), -EINVAL);

    /* A task on a runtime hub. */
    gh_runtime *rt = start_rt(1, NULL);
    xto x = {.ev = &ev};
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), xto_task, &x), 0);
    assert_true(wait_at_least(&x.done, 1, 20 * GH_SEC));
    stop_destroy(rt);
    assert_int_equal(x.result, -ETIMEDOUT);
    assert_true(x.elapsed >= 50 * GH_MSEC);

    /* Set, wait, reset, wait again, set again. */
    assert_int_equal(gh_xevent_set(&ev, (void *)&x), 0);
    assert_int_equal(gh_xevent_wait(&ev, &v, 0), 0);
    assert_ptr_equal(v, &x);
    assert_int_equal(gh_xevent_wait(&ev, &v, GH_FOREVER), 0);
    assert_int_equal(gh_xevent_reset(&ev), 0);
    assert_int_equal(gh_xevent_wait(&ev, &v, 0), -ETIMEDOUT);
    assert_int_equal(gh_xevent_wait(&ev, &v, 10 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_xevent_set(&ev, NULL), 0);
    v = (void *)&x;
    assert_int_equal(gh_xevent_wait(&ev, &v, 0), 0);
    assert_null(v);

    /* This thread's own hub: a green wait that times out, then a set one. */
    assert_int_equal(gh_xevent_reset(&ev), 0);
    assert_non_null(gh_get_hub());
    assert_int_equal(gh_xevent_wait(&ev, &v, 1), -ETIMEDOUT); /* not -EDEADLK: it ends */
    xto y = {.ev = &ev};
    gh_task *t = gh_spawn(xto_task, &y);
    assert_non_null(t);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(y.result, -ETIMEDOUT);
    assert_true(y.elapsed >= 50 * GH_MSEC);
    gh_xevent_destroy(&ev);
    end_clean();
}

static void *noop_thread(void *arg)
{
    return arg;
}

/* Sanitizers start helper threads on first use: start them before any thread count. */
static int group_setup(void **state)
{
    (void)state;
    pthread_t th;
    if (pthread_create(&th, NULL, noop_thread, NULL) != 0)
        return -1;
    pthread_join(th, NULL);
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1};
    if (gh_runtime_start(&rt, &cfg) != 0)
        return -1;
    gh_runtime_destroy(rt);
    /* Its joined thread can stay listed a while (long under qemu-user): not in the first count. */
    return threads_settle(0) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_start_stop_destroy),
        cmocka_unit_test(test_runtime_wakeup_is_eventfd),
        cmocka_unit_test(test_runtime_bad_config),
        cmocka_unit_test(test_runtime_thread_names),
        cmocka_unit_test(test_runtime_mixed_backends),
        cmocka_unit_test(test_runtime_hub_bad_index),
        cmocka_unit_test(test_runtime_handoff_storm),
        cmocka_unit_test(test_runtime_spawn_on_sources),
        cmocka_unit_test(test_runtime_call_on_hub_to_hub),
        cmocka_unit_test(test_runtime_call_on_timeout),
        cmocka_unit_test(test_runtime_call_on_stopped_hub),
        cmocka_unit_test(test_runtime_ping_pong),
        cmocka_unit_test(test_runtime_stop_mid_storm),
        cmocka_unit_test(test_runtime_stop_drain_timeout),
        cmocka_unit_test(test_runtime_unreleased_timer_handles_freed),
        cmocka_unit_test(test_runtime_stop_kills_far_timers),
        cmocka_unit_test(test_runtime_stop_cancels_repeating_timers),
        cmocka_unit_test(test_xevent_set_wakes_everyone),
        cmocka_unit_test(test_xevent_wait_timeout_and_reset),
    };
    /* GH_TEST_FILTER=test_runtime_handoff_storm runs one case (a glob). */
    if (getenv("GH_TEST_FILTER"))
        cmocka_set_test_filter(getenv("GH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
