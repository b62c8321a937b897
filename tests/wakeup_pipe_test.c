/*
 * wakeup_pipe_test.c — the handoff paths on the pipe wakeup fallback.
 *
 * Linked against //:greenhub_pipe_wakeup (built with GH_WAKEUP_PIPE, as on
 * systems without eventfd). The first test proves the pipe is really what a
 * hub wakes on, by looking at the fds a new hub opens (/proc/self/fd links
 * "pipe:[...]" rather than "anon_inode:[eventfd]"); the others run a handoff
 * storm, gh_call_on and stop through it.
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

#define MAX_FDS 4096

/* open[fd] = 1 for every fd open now. */
static void snapshot_fds(char open_fds[MAX_FDS])
{
    memset(open_fds, 0, MAX_FDS);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != self && fd >= 0 && fd < MAX_FDS)
            open_fds[fd] = 1;
    }
    closedir(d);
}

/* Of the fds open now and not in @before: how many pipes and eventfds. */
static void count_new_fds(const char before[MAX_FDS], int *pipes, int *eventfds, int *total)
{
    char now[MAX_FDS];
    snapshot_fds(now);
    *pipes = *eventfds = *total = 0;
    for (int fd = 0; fd < MAX_FDS; fd++) {
        if (!now[fd] || before[fd])
            continue;
        char path[64], link[256] = {0};
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        (*total)++;
        if (strncmp(link, "pipe:[", 6) == 0)
            (*pipes)++;
        else if (strcmp(link, "anon_inode:[eventfd]") == 0)
            (*eventfds)++;
    }
}

static atomic_ulong ran;
static void count_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

static void test_wakeup_pipe_is_used(void **state)
{
    (void)state;
    char before[MAX_FDS];
    int pipes, eventfds, total;

    /* This thread's hub on poll (which opens no fd of its own): its only fds are the pipe. */
    snapshot_fds(before);
    assert_int_equal(gh_use_hub("poll"), 0);
    count_new_fds(before, &pipes, &eventfds, &total);
    assert_int_equal(pipes, 2);
    assert_int_equal(eventfds, 0);
    assert_int_equal(total, 2);
    assert_int_equal(gh_hub_close(), 0);
    count_new_fds(before, &pipes, &eventfds, &total);
    assert_int_equal(total, 0);

    /* A runtime hub: same. Then a handoff wakes it through the pipe. */
    snapshot_fds(before);
    static const char *const names[] = {"poll"};
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1, .backends = names};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    count_new_fds(before, &pipes, &eventfds, &total);
    assert_int_equal(pipes, 2);
    assert_int_equal(eventfds, 0);

    gh_hub *h = gh_runtime_hub(rt, 0);
    atomic_store(&ran, 0);
    for (unsigned long i = 1; i <= 20; i++) {
        sleep_ns(2 * GH_MSEC); /* let the hub fall asleep in poll */
        gh_hub_stats st0, st1;
        assert_int_equal(gh_hub_get_stats(h, &st0), 0);
        assert_int_equal(gh_spawn_on(h, count_task, NULL), 0);
        assert_true(wait_at_least(&ran, i, 20 * GH_SEC));
        assert_int_equal(gh_hub_get_stats(h, &st1), 0);
        assert_true(st1.handoffs_in == st0.handoffs_in + 1);
    }
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(h, &st), 0);
    /* A sleeping hub needs the pipe write to wake at all: some of the 20 surely slept. */
    assert_true(st.wakeups_written >= 1);
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    count_new_fds(before, &pipes, &eventfds, &total);
    assert_int_equal(total, 0); /* destroy closed both ends */
    end_clean();
}

/* ------------------------------------------------------------ storm */

#define PRODUCERS    4
#define PER_PRODUCER 25000
#define TOTAL        (PRODUCERS * PER_PRODUCER)

static _Atomic uint64_t bits[(TOTAL + 63) / 64];
static atomic_ulong storm_ran, doubles;
static gh_hub *hubs[2];

static void storm_task(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t bit = UINT64_C(1) << (id & 63);
    if (atomic_fetch_or(&bits[id >> 6], bit) & bit)
        atomic_fetch_add(&doubles, 1);
    /* Every 100th task sleeps a moment, so the hub keeps going to sleep and waking. */
    if (id % 100 == 0)
        gh_sleep(100 * GH_USEC);
    atomic_fetch_add(&storm_ran, 1);
}

typedef struct producer {
    pthread_t th;
    int index;
    unsigned long failed;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (uintptr_t i = 0; i < PER_PRODUCER; i++) {
        uintptr_t id = (uintptr_t)p->index * PER_PRODUCER + i;
        if (gh_spawn_on(hubs[id & 1], storm_task, (void *)id) != 0)
            p->failed++;
        if (i % 1000 == 0)
            sleep_ns(100 * GH_USEC); /* pauses: the hubs sleep and need the pipe */
    }
    return NULL;
}

static void test_wakeup_pipe_storm(void **state)
{
    (void)state;
    static const char *const names[] = {"epoll", "select"};
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 2, .backends = names};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    hubs[0] = gh_runtime_hub(rt, 0);
    hubs[1] = gh_runtime_hub(rt, 1);
    memset(bits, 0, sizeof bits);
    atomic_store(&storm_ran, 0);
    atomic_store(&doubles, 0);

    producer prod[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        prod[i] = (producer){.index = i};
        assert_int_equal(pthread_create(&prod[i].th, NULL, produce, &prod[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(prod[i].th, NULL);
        assert_int_equal(prod[i].failed, 0);
    }
    assert_true(wait_at_least(&storm_ran, TOTAL, 50 * GH_SEC));
    gh_hub_stats s0, s1;
    assert_int_equal(gh_hub_get_stats(hubs[0], &s0), 0);
    assert_int_equal(gh_hub_get_stats(hubs[1], &s1), 0);
    assert_int_equal(s0.handoffs_in + s1.handoffs_in, TOTAL);
    assert_true(s0.wakeups_written + s1.wakeups_written >= 1);
    assert_true(s0.wakeups_written + s1.wakeups_written < TOTAL);
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(atomic_load(&storm_ran), TOTAL);
    assert_int_equal(atomic_load(&doubles), 0);
    for (size_t w = 0; w < TOTAL / 64; w++)
        assert_true(atomic_load(&bits[w]) == UINT64_MAX);
    end_clean();
}

/* ---------------------------------------------------------- call_on */

static void *add_one(void *arg)
{
    gh_sleep(GH_MSEC);
    return (void *)((uintptr_t)arg + 1);
}

typedef struct pinger {
    gh_hub *other;
    unsigned long ok, bad;
} pinger;

static void *ping(void *arg)
{
    pinger *p = arg;
    for (uintptr_t i = 0; i < 300; i++) {
        void *v = NULL;
        if (gh_call_on(p->other, add_one, (void *)i, &v, 30 * GH_SEC) == 0 && v == (void *)(i + 1))
            p->ok++;
        else
            p->bad++;
    }
    return p;
}

static void *slow(void *arg)
{
    gh_sleep(200 * GH_MSEC);
    atomic_fetch_add(&ran, 1);
    return arg;
}

static void test_wakeup_pipe_call_on(void **state)
{
    (void)state;
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 2};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    gh_hub *h0 = gh_runtime_hub(rt, 0), *h1 = gh_runtime_hub(rt, 1);

    /* Plain thread to hub. */
    void *v = NULL;
    assert_int_equal(gh_call_on(h0, add_one, (void *)41, &v, 30 * GH_SEC), 0);
    assert_ptr_equal(v, (void *)42);

    /* Hub to hub, both waking through their pipes on every round trip. */
    pinger p = {.other = h1};
    assert_int_equal(gh_call_on(h0, ping, &p, &v, 60 * GH_SEC), 0);
    assert_ptr_equal(v, &p);
    assert_int_equal(p.ok, 300);
    assert_int_equal(p.bad, 0);

    /* This thread's own hub (root waits green, woken through its pipe). */
    assert_int_equal(gh_use_hub("poll"), 0);
    v = NULL;
    assert_int_equal(gh_call_on(h1, add_one, (void *)7, &v, 30 * GH_SEC), 0);
    assert_ptr_equal(v, (void *)8);

    /* Timeout: the late result is dropped. */
    atomic_store(&ran, 0);
    v = (void *)"untouched";
    assert_int_equal(gh_call_on(h1, slow, (void *)1, &v, 20 * GH_MSEC), -ETIMEDOUT);
    assert_string_equal((const char *)v, "untouched");

    assert_int_equal(gh_runtime_stop(rt, 20 * GH_SEC), 0);
    assert_int_equal(atomic_load(&ran), 1); /* the accepted call still ran */
    assert_int_equal(gh_call_on(h0, add_one, NULL, &v, GH_SEC), -ESHUTDOWN);
    gh_runtime_destroy(rt);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wakeup_pipe_is_used),
        cmocka_unit_test(test_wakeup_pipe_storm),
        cmocka_unit_test(test_wakeup_pipe_call_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
