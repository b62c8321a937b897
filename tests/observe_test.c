/*
 * observe_test.c — what a server team reads: the log handler, task names
 * and gh_strerror.
 *
 * Messages go to stderr ("greenhub: " + one line) until a handler is set,
 * then to the handler only, with a level and without the prefix; NULL
 * restores stderr. Task names are copies, cleared by NULL or "", never
 * left on a recycled task, and set only from the task's own hub.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

/* ------------------------------------------------------------- logging */

/* A runtime stop past its drain timeout logs a warning naming the busy hub. */
static void busy_forever(void *arg)
{
    (void)arg;
    while (gh_sleep(GH_MSEC) == 0) {
    }
}

static void log_a_warning(void)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), busy_forever, NULL), 0);
    sleep_ns(5 * GH_MSEC);
    assert_int_equal(gh_runtime_stop(rt, 10 * GH_MSEC), -ETIMEDOUT);
    gh_runtime_destroy(rt);
}

/* Run log_a_warning with stderr redirected into a buffer. */
static void capture_stderr(char *buf, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    log_a_warning();
    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    ssize_t n = read(p[0], buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(p[0]);
}

typedef struct log_seen {
    pthread_mutex_t lock;
    int count, level;
    char msg[256];
} log_seen;

static void log_into(int level, const char *msg, void *arg)
{
    log_seen *s = arg;
    pthread_mutex_lock(&s->lock);
    s->count++;
    s->level = level;
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    pthread_mutex_unlock(&s->lock);
}

static void test_observe_log_default_then_handler_then_default(void **state)
{
    char out[1024];
    capture_stderr(out, sizeof out);
    assert_non_null(strstr(out, "greenhub: runtime stop: hub greenhub-0 still busy"));
    assert_non_null(strstr(out, "killing them\n"));

    log_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    gh_set_log_handler(log_into, &seen);
    capture_stderr(out, sizeof out);
    gh_set_log_handler(NULL, NULL);
    assert_string_equal(out, ""); /* nothing on stderr while a handler is set */
    assert_int_equal(seen.count, 1);
    assert_int_equal(seen.level, GH_LOG_WARN);
    assert_non_null(strstr(seen.msg, "runtime stop: hub greenhub-0 still busy"));
    assert_null(strstr(seen.msg, "greenhub: runtime")); /* no prefix */
    assert_null(strchr(seen.msg, '\n'));

    capture_stderr(out, sizeof out);
    assert_non_null(strstr(out, "greenhub: runtime stop"));
    assert_int_equal(seen.count, 1); /* the old handler hears nothing more */
}

/* Handlers swapped on one thread while another logs: each message reaches one of them. */
typedef struct swapper {
    log_seen *a, *b;
    atomic_int stop;
} swapper;

static void *swap_handlers(void *arg)
{
    swapper *s = arg;
    for (int i = 0; !atomic_load(&s->stop); i++)
        gh_set_log_handler(log_into, i % 2 ? s->a : s->b);
    return NULL;
}

static void test_observe_log_handler_swapped_concurrently(void **state)
{
    log_seen a = {.lock = PTHREAD_MUTEX_INITIALIZER}, b = {.lock = PTHREAD_MUTEX_INITIALIZER};
    swapper s = {.a = &a, .b = &b};
    gh_set_log_handler(log_into, &a);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, swap_handlers, &s), 0);
    for (int i = 0; i < 3; i++)
        log_a_warning();
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    gh_set_log_handler(NULL, NULL);
    assert_int_equal(a.count + b.count, 3);
}

/* ---------------------------------------------------------- task names */

typedef struct named {
    char self_name[64];
    int self_result;
} named;

static void names_itself(void *arg)
{
    named *n = arg;
    n->self_result = gh_task_set_name(NULL, "worker 7");
    snprintf(n->self_name, sizeof n->self_name, "%s", gh_task_name(gh_current()));
}

static void noop(void *arg)
{
    (void)arg;
}

static void name_from_callback(void *arg)
{
    *(int *)arg = gh_task_set_name(NULL, "callback");
}

static void test_observe_task_names(void **state)
{
    named n = {.self_result = 1};
    gh_task *t = gh_spawn(names_itself, &n);
    assert_non_null(t);
    assert_string_equal(gh_task_name(t), "");
    char buf[32] = "conn 127.0.0.1:51234";
    assert_int_equal(gh_task_set_name(t, buf), 0);
    buf[0] = 'X'; /* a copy was taken */
    assert_string_equal(gh_task_name(t), "conn 127.0.0.1:51234");
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(n.self_result, 0);
    assert_string_equal(n.self_name, "worker 7");
    assert_string_equal(gh_task_name(t), "worker 7"); /* still readable through the handle */
    assert_int_equal(gh_task_set_name(t, ""), 0);
    assert_string_equal(gh_task_name(t), "");
    assert_int_equal(gh_task_set_name(t, "again"), 0);
    assert_int_equal(gh_task_set_name(t, NULL), 0);
    assert_string_equal(gh_task_name(t), "");
    assert_int_equal(gh_task_set_name(t, "released with a name"), 0);
    gh_task_release(t); /* LeakSanitizer: the name goes with it */

    /* A recycled task struct carries no old name. */
    for (int i = 0; i < 4; i++) {
        gh_task *u = gh_spawn(noop, NULL);
        assert_non_null(u);
        assert_string_equal(gh_task_name(u), "");
        assert_int_equal(gh_task_set_name(u, "short-lived"), 0);
        assert_int_equal(gh_join(u, GH_FOREVER), 0);
        gh_task_release(u);
    }

    /* The root names itself; a timer callback has no running task. */
    assert_int_equal(gh_task_set_name(NULL, "main"), 0);
    assert_string_equal(gh_task_name(gh_current()), "main");
    assert_int_equal(gh_task_set_name(NULL, NULL), 0);
    int cb_result = 1;
    gh_timer_release(gh_call_after(0, name_from_callback, &cb_result));
    assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(cb_result, -EINVAL);
    assert_string_equal(gh_task_name(NULL), "");
    end_clean();
}

/* Another hub's task cannot be renamed from here (its hub's thread owns it). */
static void test_observe_task_name_other_hub(void **state)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    gh_task *t = gh_spawn_task_on(gh_runtime_hub(rt, 0), noop, NULL);
    assert_non_null(t);
    assert_int_equal(gh_task_set_name(t, "nope"), -EINVAL);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* ------------------------------------------------------------ metrics */

static void spin_ms(void *arg)
{
    int64_t end = gh_now() + (int64_t)(intptr_t)arg * GH_MSEC;
    while (gh_now() < end) {
    }
}

static void spin_150_flagged(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    spin_ms((void *)(intptr_t)150);
}

static void spin_20us(void *arg)
{
    (void)arg;
    int64_t end = gh_now() + 20 * GH_USEC;
    while (gh_now() < end) {
    }
}

static void sleep_forever(void *arg)
{
    (void)arg;
    gh_sleep(GH_FOREVER);
}

static void late_timer_cb(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
}

/* Arm a timer for 5 ms, then hog the thread for 60 ms: the timer fires >= 55 ms late. */
static void make_lag(void *arg)
{
    gh_timer_release(gh_call_after(5 * GH_MSEC, late_timer_cb, arg));
    spin_ms((void *)(intptr_t)60);
}

static void test_observe_hub_metrics(void **state)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 2};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    gh_hub *busy = gh_runtime_hub(rt, 0), *idle = gh_runtime_hub(rt, 1);
    gh_hub_stats b0, i0, b1, i1;
    assert_int_equal(gh_hub_get_stats(busy, &b0), 0);
    assert_int_equal(gh_hub_get_stats(idle, &i0), 0);
    static atomic_int spinning;
    atomic_store(&spinning, 0);
    assert_int_equal(gh_spawn_on(busy, spin_150_flagged, &spinning), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(gh_spawn_on(idle, sleep_forever, NULL), 0);
    /*
     * While hub 0 spins, 5,000 handoffs (20 us of work each) queue in its
     * inbox; it then drains them 1,024 an iteration, counting what it
     * leaves behind: the depth is seen in the thousands, then back at 0.
     */
    assert_true(wait_at_least(&spinning, 1, 5 * GH_SEC));
    for (int i = 0; i < 5000; i++)
        assert_int_equal(gh_spawn_on(busy, spin_20us, NULL), 0);
    uint64_t deepest = 0;
    gh_hub_stats mid;
    int64_t until = gh_now() + 10 * GH_SEC;
    do {
        assert_int_equal(gh_hub_get_stats(busy, &mid), 0);
        if (mid.inbox_depth > deepest)
            deepest = mid.inbox_depth;
    } while (mid.handoffs_in < b0.handoffs_in + 5001 && gh_now() < until);
    assert_true(deepest >= 1000);
    atomic_int fired = 0;
    assert_int_equal(gh_spawn_on(idle, make_lag, &fired), 0);
    sleep_ns(300 * GH_MSEC);
    assert_true(wait_at_least(&fired, 1, 2 * GH_SEC));
    assert_int_equal(gh_hub_get_stats(busy, &b1), 0);
    assert_int_equal(gh_hub_get_stats(idle, &i1), 0);
    /* hub 0 spun 150 ms of the 300; hub 1 slept most of it (60 ms of spinning aside) */
    assert_true(b1.busy_ns - b0.busy_ns >= 120 * GH_MSEC);
    assert_true(i1.idle_ns - i0.idle_ns >= 150 * GH_MSEC);
    assert_true(b1.idle_ns - b0.idle_ns >= 60 * GH_MSEC);
    assert_int_equal(i1.tasks_blocked, 3);
    assert_int_equal(i1.tasks_ready, 0);
    assert_true(i1.timer_lag_max_ns >= 50 * GH_MSEC);
    assert_int_equal(b1.inbox_depth, 0); /* drained once the spin ended */

    static char text[16384];
    int n = gh_runtime_metrics(rt, text, sizeof text);
    assert_true(n > 0);
    assert_int_equal((size_t)n, strlen(text));
    assert_non_null(strstr(text, "# TYPE greenhub_busy_seconds_total counter\n"));
    assert_non_null(strstr(text, "# HELP greenhub_tasks_blocked "));
    char want[128];
    snprintf(want, sizeof want, "greenhub_tasks_blocked{hub=\"1\",backend=\"%s\"} 3\n",
             gh_hub_backend(idle));
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "greenhub_timer_lag_max_seconds{hub=\"0\","));
    char small[64];
    assert_int_equal(gh_runtime_metrics(rt, small, sizeof small), -ENOSPC);
    assert_int_equal(gh_runtime_metrics(NULL, text, sizeof text), -EINVAL);
    assert_int_equal(gh_runtime_stop(rt, 50 * GH_MSEC), -ETIMEDOUT); /* the sleepers are killed */
    gh_runtime_destroy(rt);
}

/* ------------------------------------------------- a stop that never hangs */

typedef struct hog {
    atomic_int started, release;
} hog;

/* Never blocks: a kill cannot reach it until it returns. */
static void hog_task(void *arg)
{
    hog *h = arg;
    atomic_store(&h->started, 1);
    while (!atomic_load(&h->release)) {
    }
}

static void *release_later(void *arg)
{
    hog *h = arg;
    sleep_ns(300 * GH_MSEC);
    atomic_store(&h->release, 1);
    return NULL;
}

static void test_observe_stop_with_a_task_that_never_blocks(void **state)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    hog h = {0};
    gh_task *t = gh_spawn_task_on(gh_runtime_hub(rt, 0), hog_task, &h);
    assert_non_null(t);
    assert_true(wait_at_least(&h.started, 1, 5 * GH_SEC));
    uint64_t id = gh_task_id(t);
    assert_true(id > 0);

    log_seen seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    gh_set_log_handler(log_into, &seen);
    int64_t t0 = gh_now();
    assert_int_equal(gh_runtime_stop(rt, 20 * GH_MSEC), -ETIMEDOUT);
    int64_t took = gh_now() - t0;
    gh_set_log_handler(NULL, NULL);
    assert_true(took < 3 * GH_SEC);  /* bounded: drain + the kill's grace */
    assert_int_equal(seen.count, 2); /* the kill (WARN), then the task named (ERROR) */
    assert_int_equal(seen.level, GH_LOG_ERROR);
    char want[64];
    snprintf(want, sizeof want, "still running task %llu ", (unsigned long long)id);
    assert_non_null(strstr(seen.msg, want));
    assert_int_equal(gh_runtime_stop(rt, 0), -ETIMEDOUT); /* a second stop says the same */

    /* destroy waits for the hog, which a thread lets go after 300 ms */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, release_later, &h), 0);
    gh_task_release(t);
    gh_runtime_destroy(rt);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&h.release), 1);
}

/* --------------------------------------------------- blocking detector */

typedef struct log_all {
    pthread_mutex_t lock;
    int n;
    int level[16];
    char msg[16][1600];
} log_all;

static void log_append(int level, const char *msg, void *arg)
{
    log_all *l = arg;
    pthread_mutex_lock(&l->lock);
    if (l->n < 16) {
        l->level[l->n] = level;
        snprintf(l->msg[l->n], sizeof l->msg[0], "%s", msg);
        l->n++;
    }
    pthread_mutex_unlock(&l->lock);
}

typedef struct crunch {
    gh_task *self;
    atomic_int done;
} crunch;

/* Computes for 300 ms without yielding: every other task of its hub waits. */
static void cruncher(void *arg)
{
    crunch *c = arg;
    gh_task_set_name(NULL, "cruncher");
    spin_ms((void *)(intptr_t)300);
    atomic_store(&c->done, 1);
}

/* Busy for 200 ms, but yielding all the time: load, not a stall. */
static void yielder(void *arg)
{
    int64_t end = gh_now() + 200 * GH_MSEC;
    while (gh_now() < end)
        gh_yield();
    atomic_store((atomic_int *)arg, 1);
}

static void test_observe_blocking_detector(void **state)
{
    static log_all l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    gh_set_log_handler(log_append, &l);
    assert_int_equal(gh_set_block_threshold(-1), -EINVAL);
    assert_int_equal(gh_set_block_threshold(50 * GH_MSEC), 0);
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    gh_hub *hub = gh_runtime_hub(rt, 0);
    assert_int_equal(gh_spawn_on(hub, sleep_forever, NULL), 0); /* work waits on the hub */

    /* Asleep with waiters, then busy but yielding: neither is a stall. */
    sleep_ns(200 * GH_MSEC);
    atomic_int yielded = 0;
    assert_int_equal(gh_spawn_on(hub, yielder, &yielded), 0);
    assert_true(wait_at_least(&yielded, 1, 5 * GH_SEC));
    sleep_ns(50 * GH_MSEC);
    pthread_mutex_lock(&l.lock);
    assert_int_equal(l.n, 0);
    pthread_mutex_unlock(&l.lock);

    crunch c = {0};
    gh_task *t = gh_spawn_task_on(hub, cruncher, &c);
    assert_non_null(t);
    assert_true(wait_at_least(&c.done, 1, 5 * GH_SEC));
    sleep_ns(200 * GH_MSEC);
    assert_int_equal(gh_set_block_threshold(0), 0);
    uint64_t id = gh_task_id(t);
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 50 * GH_MSEC), -ETIMEDOUT); /* the sleeper is killed */
    gh_runtime_destroy(rt);
    gh_set_log_handler(NULL, NULL);

    int blocked = 0, came_back = 0;
    char want_task[64];
    snprintf(want_task, sizeof want_task, "task %llu", (unsigned long long)id);
    for (int i = 0; i < l.n; i++) {
        const char *m = l.msg[i];
        if (strstr(m, "blocked hub greenhub-0 (")) {
            blocked++;
            assert_int_equal(l.level[i], GH_LOG_WARN);
            assert_non_null(strstr(m, want_task));
            assert_non_null(strstr(m, "has not yielded for "));
#ifndef __SANITIZE_THREAD__
            /* TSan may hold a signal back until the thread makes a call it watches. */
            assert_non_null(strstr(m, "\"cruncher\""));
            assert_non_null(strstr(m, "backtrace: "));
#endif
        } else if (strstr(m, "hub greenhub-0 (") &&
                   strstr(m, "its loop came back after a stall of ")) {
            came_back++;
            double ms = atof(strstr(m, "stall of ") + strlen("stall of "));
            assert_true(ms >= 200.0 && ms < 450.0); /* about the 300 ms spin */
        }
    }
    assert_int_equal(blocked, 1);
    assert_int_equal(came_back, 1);
}

/* --------------------------------------------------------------- dumps */

typedef struct dumped {
    int fd;
    gh_task *sleeper;
    atomic_int ready;
} dumped;

static void dump_reader(void *arg)
{
    dumped *d = arg;
    char c;
    gh_task_set_name(NULL, "reader");
    gh_read(d->fd, &c, 1, GH_FOREVER);
}

static void dump_sleeper(void *arg)
{
    (void)arg;
    gh_task_set_name(NULL, "sleeper");
    gh_sleep(10 * GH_SEC);
}

static void dump_joiner(void *arg)
{
    dumped *d = arg;
    gh_task_set_name(NULL, "joiner");
    d->sleeper = gh_spawn(dump_sleeper, NULL);
    gh_spawn_n(dump_reader, d);
    atomic_store(&d->ready, 1);
    gh_join(d->sleeper, GH_FOREVER);
    gh_task_release(d->sleeper);
}

static int count_tasks(const gh_task_info *in, void *arg)
{
    int *n = arg;
    return ++*n == 3 ? 7 : 0; /* stop at the third */
}

static char *dump_to_string(gh_hub *hub, int *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    *err = gh_hub_dump(hub, f);
    fclose(f);
    return text;
}

static void test_observe_hub_dump(void **state)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 1};
    assert_int_equal(gh_runtime_start(&rt, &cfg), 0);
    gh_hub *hub = gh_runtime_hub(rt, 0);
    int p[2];
    assert_int_equal(pipe(p), 0);
    dumped d = {.fd = p[0]};
    assert_int_equal(gh_spawn_on(hub, dump_joiner, &d), 0);
    assert_true(wait_at_least(&d.ready, 1, 5 * GH_SEC));
    sleep_ns(20 * GH_MSEC);

    int err;
    char *text = dump_to_string(hub, &err);
    assert_int_equal(err, 0);
    char want[64];
    snprintf(want, sizeof want, "on fd %d (read) for ", p[0]);
    assert_non_null(strstr(text, "reader"));
    assert_non_null(strstr(text, want));
    assert_non_null(strstr(text, "sleeper"));
    assert_non_null(strstr(text, "on sleep for "));
    assert_non_null(strstr(text, "times out in "));
    assert_non_null(strstr(text, "joiner"));
    assert_non_null(strstr(text, "on join for "));
    assert_non_null(strstr(text, " KiB"));
    free(text);

    int n = 0;
    assert_int_equal(gh_hub_walk(hub, count_tasks, &n), 7);
    assert_int_equal(n, 3);

    /* A hub that never comes back to its loop: -ETIMEDOUT, and the late answer is harmless. */
    assert_int_equal(gh_spawn_on(hub, spin_ms, (void *)(intptr_t)1300), 0);
    sleep_ns(20 * GH_MSEC);
    int64_t t0 = gh_now();
    text = dump_to_string(hub, &err);
    free(text);
    assert_int_equal(err, -ETIMEDOUT);
    assert_true(gh_now() - t0 < 1200 * GH_MSEC);
    sleep_ns(400 * GH_MSEC); /* the spin ends; the hub runs the dump nobody waits for */

    close(p[1]);
    assert_int_equal(gh_runtime_stop(rt, 50 * GH_MSEC), -ETIMEDOUT);
    gh_runtime_destroy(rt);
    gh_close(p[0]);

    /* The caller's own hub: the root is the running task. */
    text = dump_to_string(gh_get_hub(), &err);
    assert_int_equal(err, 0);
    assert_non_null(strstr(text, "root"));
    assert_non_null(strstr(text, "running"));
    free(text);
    assert_int_equal(gh_hub_dump(NULL, stderr), -EINVAL);
    end_clean();
}

/* ----------------------------------------------------------- strerror */

static void test_observe_version(void **state)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", GH_VERSION_MAJOR, GH_VERSION_MINOR, GH_VERSION_PATCH);
    assert_string_equal(gh_version(), want);
}

static void test_observe_strerror_means_the_errno(void **state)
{
    assert_non_null(strstr(gh_strerror(-ENOENT), "no such entry"));
    assert_null(strstr(gh_strerror(-ENOENT), "backend"));
    assert_non_null(strstr(gh_strerror(-EAGAIN), "temporarily unavailable"));
    assert_non_null(strstr(gh_strerror(-EBADF), "bad file descriptor"));
    assert_non_null(strstr(gh_strerror(-ETIMEDOUT), "timed out"));
    assert_non_null(strstr(gh_strerror(-ENOSPC), "ENOSPC"));
    assert_string_equal(gh_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
    assert_string_equal(gh_strerror(0), "success");
    assert_string_equal(gh_strerror(5), "not an error code");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observe_log_default_then_handler_then_default),
        cmocka_unit_test(test_observe_log_handler_swapped_concurrently),
        cmocka_unit_test(test_observe_task_names),
        cmocka_unit_test(test_observe_task_name_other_hub),
        cmocka_unit_test(test_observe_hub_metrics),
        cmocka_unit_test(test_observe_blocking_detector),
        cmocka_unit_test(test_observe_hub_dump),
        cmocka_unit_test(test_observe_stop_with_a_task_that_never_blocks),
        cmocka_unit_test(test_observe_strerror_means_the_errno),
        cmocka_unit_test(test_observe_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
