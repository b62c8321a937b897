/*
 * xhub_test.c — task handles work from any thread: gh_spawn_task_on, and
 * gh_join, gh_kill, gh_task_release and gh_task_hub on a task of another
 * hub, from tasks (green) and from plain threads (blocking), on every
 * backend; and handles outlive their hub without leaking.
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

typedef struct probe {
    int64_t sleep_ns;
    atomic_int runs;
    atomic_int sleep_result;
    atomic_llong ended_at;
} probe;

static void probe_task(void *arg)
{
    probe *p = arg;
    atomic_fetch_add(&p->runs, 1);
    atomic_store(&p->sleep_result, gh_sleep(p->sleep_ns));
    atomic_store(&p->ended_at, (long long)gh_now());
}

/* A plain thread starts a task on a runtime hub, joins it (blocking) and releases it. */
static void test_xhub_plain_thread_spawn_join_release(void **state)
{
    gh_runtime *rt = rt_start(1);
    gh_hub *hub = gh_runtime_hub(rt, 0);
    probe p = {.sleep_ns = 20 * GH_MSEC};
    int64_t t0 = gh_now();
    gh_task *t = gh_spawn_task_on(hub, probe_task, &p);
    assert_non_null(t);
    assert_ptr_equal(gh_task_hub(t), hub);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(atomic_load(&p.runs), 1);
    assert_int_equal(atomic_load(&p.sleep_result), 0);
    assert_int_equal(gh_join(t, 0), 0); /* repeatable */
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A task of hub 0 starts a task on hub 1 and joins it green, while hub 0 goes on. */
typedef struct green_join {
    gh_hub *other;
    probe p;
    atomic_int join_result, ticks, done;
} green_join;

static void ticker(void *arg)
{
    green_join *g = arg;
    while (!atomic_load(&g->done)) {
        gh_sleep(GH_MSEC);
        atomic_fetch_add(&g->ticks, 1);
    }
}

static void green_joiner(void *arg)
{
    green_join *g = arg;
    gh_spawn_n(ticker, g);
    gh_task *t = gh_spawn_task_on(g->other, probe_task, &g->p);
    if (!t) {
        atomic_store(&g->join_result, -errno);
    } else {
        atomic_store(&g->join_result, gh_join(t, 5 * GH_SEC));
        gh_task_release(t);
    }
    atomic_store(&g->done, 1);
}

static void test_xhub_task_joins_other_hub_green(void **state)
{
    gh_runtime *rt = rt_start(2);
    green_join g = {.other = gh_runtime_hub(rt, 1), .p = {.sleep_ns = 50 * GH_MSEC}};
    atomic_store(&g.join_result, 1);
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), green_joiner, &g), 0);
    assert_true(wait_at_least(&g.done, 1, 5 * GH_SEC));
    assert_int_equal(atomic_load(&g.join_result), 0);
    assert_int_equal(atomic_load(&g.p.runs), 1);
    assert_true(atomic_load(&g.ticks) >= 5); /* hub 0 ran its other task meanwhile */
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A kill from a plain thread reaches a task parked forever on another hub. */
static void test_xhub_kill_from_plain_thread(void **state)
{
    gh_runtime *rt = rt_start(1);
    probe p = {.sleep_ns = GH_FOREVER};
    atomic_store(&p.sleep_result, 1);
    gh_task *t = gh_spawn_task_on(gh_runtime_hub(rt, 0), probe_task, &p);
    assert_non_null(t);
    assert_true(wait_at_least(&p.runs, 1, 5 * GH_SEC));
    assert_int_equal(gh_join(t, 20 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&p.sleep_result), -ECANCELED);
    assert_int_equal(gh_kill(t), 0); /* finished: a no-op */
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A joiner killed while it waits on another hub's task returns -ECANCELED; the task lives on. */
typedef struct killed_joiner {
    gh_task *target;
    gh_task *self;
    atomic_int result, done;
} killed_joiner;

static void killed_joiner_task(void *arg)
{
    killed_joiner *k = arg;
    atomic_store(&k->result, gh_join(k->target, 10 * GH_SEC));
    atomic_store(&k->done, 1);
}

static void test_xhub_killed_joiner(void **state)
{
    gh_runtime *rt = rt_start(2);
    probe p = {.sleep_ns = 300 * GH_MSEC};
    gh_task *target = gh_spawn_task_on(gh_runtime_hub(rt, 1), probe_task, &p);
    assert_non_null(target);
    killed_joiner k = {.target = target};
    atomic_store(&k.result, 1);
    gh_task *joiner = gh_spawn_task_on(gh_runtime_hub(rt, 0), killed_joiner_task, &k);
    assert_non_null(joiner);
    sleep_ns(30 * GH_MSEC);
    assert_int_equal(gh_kill(joiner), 0);
    assert_int_equal(gh_join(joiner, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&k.result), -ECANCELED);
    assert_int_equal(atomic_load(&p.ended_at), 0); /* the target still sleeps */
    assert_int_equal(gh_join(target, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&p.sleep_result), 0);
    gh_task_release(joiner);
    gh_task_release(target);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* Released before it ran, from another thread: it still runs, exactly once. */
static void test_xhub_release_before_start(void **state)
{
    gh_runtime *rt = rt_start(1);
    probe p = {.sleep_ns = 0};
    for (int i = 0; i < 100; i++) {
        gh_task *t = gh_spawn_task_on(gh_runtime_hub(rt, 0), probe_task, &p);
        assert_non_null(t);
        gh_task_release(t);
    }
    assert_true(wait_at_least(&p.runs, 100, 5 * GH_SEC));
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&p.runs), 100);
    gh_runtime_destroy(rt);
}

/*
 * Many tasks started from a plain thread on hub 0, each joined and
 * released by a task of hub 1: every one runs once, every join sees it end.
 */
#define MANY 2000

typedef struct many {
    gh_task *tasks[MANY];
    probe p;
    atomic_int joined, bad;
} many;

static void many_joiner(void *arg)
{
    many *m = arg;
    for (int i = 0; i < MANY; i++) {
        /* Generous: under TSan on a loaded 2-core box, 2000 first fiber starts take seconds. */
        int err = gh_join(m->tasks[i], 60 * GH_SEC);
        if (err != 0 && atomic_fetch_add(&m->bad, 1) == 0)
            fprintf(stderr, "join %d: %s\n", i, gh_strerror(err));
        gh_task_release(m->tasks[i]);
        atomic_fetch_add(&m->joined, 1);
    }
}

static void test_xhub_many_joined_from_other_hub(void **state)
{
    gh_runtime *rt = rt_start(2);
    static many m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < MANY; i++) {
        m.tasks[i] = gh_spawn_task_on(gh_runtime_hub(rt, 0), probe_task, &m.p);
        assert_non_null(m.tasks[i]);
    }
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 1), many_joiner, &m), 0);
    assert_true(wait_at_least(&m.joined, MANY, 120 * GH_SEC));
    assert_int_equal(atomic_load(&m.bad), 0);
    assert_int_equal(atomic_load(&m.p.runs), MANY);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* A stopping hub refuses; handles of a stopped runtime's tasks still join and release. */
static void test_xhub_stopped_runtime(void **state)
{
    gh_runtime *rt = rt_start(1);
    gh_hub *hub = gh_runtime_hub(rt, 0);
    probe p = {.sleep_ns = GH_MSEC};
    gh_task *t = gh_spawn_task_on(hub, probe_task, &p);
    assert_non_null(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    errno = 0;
    assert_null(gh_spawn_task_on(hub, probe_task, &p));
    assert_int_equal(errno, ESHUTDOWN);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(atomic_load(&p.runs), 1);
    gh_task_release(t); /* the hub is a tombstone: freed here, no leak */
    gh_runtime_destroy(rt);

    errno = 0;
    assert_null(gh_spawn_task_on(NULL, probe_task, &p));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(gh_join(NULL, 0), -EINVAL);
    assert_int_equal(gh_kill(NULL), -EINVAL);
    assert_null(gh_task_hub(NULL));
    gh_task_release(NULL);
}

/* A handle released after its hub was closed is freed then (LeakSanitizer checks). */
static void test_xhub_release_after_hub_close(void **state)
{
    probe p = {.sleep_ns = 0};
    gh_task *t = gh_spawn(probe_task, &p);
    assert_non_null(t);
    gh_hub *hub = gh_get_hub();
    assert_ptr_equal(gh_task_hub(t), hub);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(gh_hub_close(), 0);
    assert_null(gh_task_hub(t));
    assert_int_equal(gh_join(t, 0), 0);
    gh_task_release(t);
    end_clean();
}

/* ------------------------------------------------------------ gh_migrate */

typedef struct mover {
    gh_hub *hubs[2];
    int rounds;
    atomic_int wrong_hub, errors, done;
} mover;

static void mover_task(void *arg)
{
    mover *m = arg;
    for (int i = 0; i < m->rounds; i++) {
        gh_hub *to = m->hubs[(i + 1) % 2];
        int err = gh_migrate(to);
        if (err)
            atomic_fetch_add(&m->errors, 1);
        if (gh_get_hub() != to || gh_task_hub(gh_current()) != to)
            atomic_fetch_add(&m->wrong_hub, 1);
        if (i % 7 == 0 && gh_sleep(i % 14 ? 0 : 10 * GH_USEC) != 0) /* it waits there, too */
            atomic_fetch_add(&m->errors, 1);
    }
    atomic_store(&m->done, 1);
}

/* A task moves back and forth 1,000 times; each time it runs on the hub it moved to. */
static void test_xhub_migrate_back_and_forth(void **state)
{
    gh_runtime *rt = rt_start(2);
    mover m = {.hubs = {gh_runtime_hub(rt, 0), gh_runtime_hub(rt, 1)}, .rounds = 1000};
    gh_task *t = gh_spawn_task_on(m.hubs[0], mover_task, &m);
    assert_non_null(t);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    assert_int_equal(atomic_load(&m.done), 1);
    assert_int_equal(atomic_load(&m.errors), 0);
    assert_int_equal(atomic_load(&m.wrong_hub), 0);
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/*
 * A reader moves to the other hub after every read while a plain thread
 * streams 1 MiB through a socket: every byte arrives, in order.
 */
#define STREAM_BYTES (1 << 20)

typedef struct stream {
    int rfd, wfd;
    bool pace;
    gh_hub *hubs[2];
    atomic_int bad, moves, done;
    atomic_long got;
} stream;

static void *stream_writer(void *arg)
{
    stream *s = arg;
    unsigned char buf[4096];
    long off = 0;
    while (off < STREAM_BYTES) {
        for (int i = 0; i < (int)sizeof buf; i++)
            buf[i] = (unsigned char)((off + i) * 131 % 251);
        ssize_t n = write(s->wfd, buf, sizeof buf);
        if (n <= 0)
            break;
        off += n;
        if (s->pace && off % (16 * 1024) == 0)
            sleep_ns(GH_MSEC); /* so that readers wait, and moves catch them waiting */
    }
    return NULL;
}

static void stream_reader(void *arg)
{
    stream *s = arg;
    unsigned char buf[3000];
    long off = 0;
    int side = 0;
    while (off < STREAM_BYTES) {
        ssize_t n = gh_read(s->rfd, buf, sizeof buf, 10 * GH_SEC);
        if (n <= 0) {
            atomic_fetch_add(&s->bad, 1);
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != (unsigned char)((off + i) * 131 % 251))
                atomic_fetch_add(&s->bad, 1);
        off += n;
        side ^= 1;
        if (gh_migrate(s->hubs[side]) == 0)
            atomic_fetch_add(&s->moves, 1);
    }
    atomic_store(&s->got, off);
    atomic_store(&s->done, 1);
}

static void test_xhub_migrate_reader_while_streaming(void **state)
{
    gh_runtime *rt = rt_start(2);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    stream s = {.rfd = sv[0], .wfd = sv[1], .hubs = {gh_runtime_hub(rt, 0), gh_runtime_hub(rt, 1)}};
    assert_int_equal(gh_spawn_on(s.hubs[0], stream_reader, &s), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stream_writer, &s), 0);
    assert_true(wait_at_least(&s.done, 1, 30 * GH_SEC));
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&s.bad), 0);
    assert_int_equal(atomic_load(&s.got), STREAM_BYTES);
    assert_true(atomic_load(&s.moves) >= 100);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    gh_close(sv[0]);
    close(sv[1]);
}

/*
 * The same stream, but the reader never moves itself: a plain thread moves
 * it back and forth with gh_task_move, mostly while it waits on the fd.
 */
static void stream_reader_still(void *arg)
{
    stream *s = arg;
    unsigned char buf[3000];
    long off = 0;
    while (off < STREAM_BYTES) {
        ssize_t n = gh_read(s->rfd, buf, sizeof buf, 10 * GH_SEC);
        if (n <= 0) {
            atomic_fetch_add(&s->bad, 1);
            break;
        }
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != (unsigned char)((off + i) * 131 % 251))
                atomic_fetch_add(&s->bad, 1);
        off += n;
    }
    atomic_store(&s->got, off);
    atomic_store(&s->done, 1);
}

static void test_xhub_move_reader_while_streaming(void **state)
{
    gh_runtime *rt = rt_start(2);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    stream s = {.rfd = sv[0],
                .wfd = sv[1],
                .pace = true,
                .hubs = {gh_runtime_hub(rt, 0), gh_runtime_hub(rt, 1)}};
    gh_task *t = gh_spawn_task_on(s.hubs[0], stream_reader_still, &s);
    assert_non_null(t);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stream_writer, &s), 0);
    int moved = 0, busy = 0;
    for (int i = 0; !atomic_load(&s.done) && i < 100000; i++) {
        int err = gh_task_move(t, s.hubs[i % 2]);
        if (err == 0)
            moved++;
        else if (err == -EBUSY)
            busy++; /* caught between waits (a wake-up on its way): fine, try again */
        else if (err != -ENOENT)
            fail_msg("gh_task_move: %s", gh_strerror(err));
    }
    assert_true(wait_at_least(&s.done, 1, 30 * GH_SEC));
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&s.bad), 0);
    assert_int_equal(atomic_load(&s.got), STREAM_BYTES);
    assert_true(moved >= 20); /* about 64 ms of stream: hundreds plain, tens under TSan */
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    gh_close(sv[0]);
    close(sv[1]);
}

/*
 * A task that keeps moving is joined by a task of the hub it started on
 * (that join follows it), timed out and then killed from a plain thread;
 * the kill finds it wherever it is.
 */
typedef struct roamer {
    gh_hub *hubs[2];
    gh_task *target;
    atomic_int moves, sleep_result, local_join, joined;
} roamer;

static void roamer_task(void *arg)
{
    roamer *r = arg;
    int err = 0;
    for (int i = 0; err == 0; i++) {
        if (gh_migrate(r->hubs[i % 2]) == 0)
            atomic_fetch_add(&r->moves, 1);
        err = gh_sleep(50 * GH_USEC);
    }
    atomic_store(&r->sleep_result, err);
}

static void local_joiner(void *arg)
{
    roamer *r = arg;
    atomic_store(&r->local_join, gh_join(r->target, 10 * GH_SEC));
    atomic_store(&r->joined, 1);
}

static void test_xhub_migrating_task_joined_and_killed(void **state)
{
    gh_runtime *rt = rt_start(2);
    roamer r = {.hubs = {gh_runtime_hub(rt, 0), gh_runtime_hub(rt, 1)}};
    atomic_store(&r.sleep_result, 1);
    atomic_store(&r.local_join, 1);
    r.target = gh_spawn_task_on(r.hubs[0], roamer_task, &r);
    assert_non_null(r.target);
    assert_int_equal(gh_spawn_on(r.hubs[0], local_joiner, &r), 0);
    assert_true(wait_at_least(&r.moves, 200, 10 * GH_SEC));
    assert_int_equal(gh_join(r.target, 20 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_kill(r.target), 0);
    assert_int_equal(gh_join(r.target, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&r.sleep_result), -ECANCELED);
    assert_true(wait_at_least(&r.joined, 1, 5 * GH_SEC));
    assert_int_equal(atomic_load(&r.local_join), 0);
    gh_task_release(r.target);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

static void migrate_from_cb(void *arg)
{
    *(int *)arg = gh_migrate(gh_get_hub());
}

typedef struct migrate_errs {
    gh_hub *stopped;
    atomic_int to_stopped, to_self, killed, done;
} migrate_errs;

static void migrate_err_task(void *arg)
{
    migrate_errs *e = arg;
    atomic_store(&e->to_self, gh_migrate(gh_get_hub()));
    atomic_store(&e->to_stopped, gh_migrate(e->stopped));
    gh_kill(gh_current());
    atomic_store(&e->killed, gh_migrate(e->stopped));
    atomic_store(&e->done, 1);
}

static void test_xhub_migrate_errors(void **state)
{
    gh_runtime *dead = rt_start(1);
    assert_int_equal(gh_runtime_stop(dead, 5 * GH_SEC), 0);
    gh_runtime *rt = rt_start(1);
    migrate_errs e = {.stopped = gh_runtime_hub(dead, 0)};
    assert_int_equal(gh_spawn_on(gh_runtime_hub(rt, 0), migrate_err_task, &e), 0);
    assert_true(wait_at_least(&e.done, 1, 5 * GH_SEC));
    assert_int_equal(atomic_load(&e.to_self), 0);
    assert_int_equal(atomic_load(&e.to_stopped), -ESHUTDOWN);
    assert_int_equal(atomic_load(&e.killed), -ECANCELED);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);

    assert_int_equal(gh_migrate(NULL), -EINVAL);
    assert_int_equal(gh_migrate(gh_runtime_hub(rt, 0)), -EPERM); /* the root cannot leave */
    int from_cb = 1;
    gh_timer_release(gh_call_after(0, migrate_from_cb, &from_cb));
    assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(from_cb, -EPERM);
    gh_runtime_destroy(rt);
    gh_runtime_destroy(dead);
    end_clean();
}

/* ---------------------------------------------------------- gh_task_move */

typedef struct sleeper {
    int64_t sleep_ns;
    int64_t started, ended;
    gh_hub *woke_on;
    atomic_int running, done, result;
} sleeper;

static void sleeper_task(void *arg)
{
    sleeper *s = arg;
    s->started = gh_now();
    atomic_store(&s->running, 1);
    int err = gh_sleep(s->sleep_ns);
    s->ended = gh_now();
    s->woke_on = gh_get_hub();
    atomic_store(&s->result, err);
    atomic_store(&s->done, 1);
}

/* A sleeper moved to another hub keeps its deadline: it wakes there, never early. */
static void test_xhub_move_sleeper_keeps_deadline(void **state)
{
    gh_runtime *rt = rt_start(2);
    gh_hub *a = gh_runtime_hub(rt, 0), *b = gh_runtime_hub(rt, 1);
    sleeper s = {.sleep_ns = 300 * GH_MSEC};
    gh_task *t = gh_spawn_task_on(a, sleeper_task, &s);
    assert_non_null(t);
    assert_true(wait_at_least(&s.running, 1, 5 * GH_SEC));
    sleep_ns(50 * GH_MSEC);
    assert_int_equal(gh_task_move(t, b), 0);
    assert_ptr_equal(gh_task_hub(t), b);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&s.result), 0);
    assert_ptr_equal(s.woke_on, b);
    assert_true(s.ended - s.started >= 300 * GH_MSEC); /* never early */
    assert_true(s.ended - s.started < 1500 * GH_MSEC);
    assert_int_equal(gh_task_move(t, a), -ENOENT); /* finished */
    gh_task_release(t);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/* Moved while asleep for ever, then killed there; a reader on an fd cannot move yet. */
typedef struct fd_waiter {
    int fd;
    atomic_int running, result;
    gh_hub *woke_on;
} fd_waiter;

static void fd_waiter_task(void *arg)
{
    fd_waiter *w = arg;
    char c;
    atomic_store(&w->running, 1);
    ssize_t n = gh_read(w->fd, &c, 1, 10 * GH_SEC);
    w->woke_on = gh_get_hub();
    atomic_store(&w->result, (int)n);
}

static void event_waiter_task(void *arg)
{
    (void)arg;
    gh_event ev;
    gh_event_init(&ev);
    gh_event_wait(&ev, NULL, GH_FOREVER);
    gh_event_destroy(&ev);
}

static void test_xhub_move_forever_sleeper_then_kill(void **state)
{
    gh_runtime *rt = rt_start(2);
    gh_hub *a = gh_runtime_hub(rt, 0), *b = gh_runtime_hub(rt, 1);
    sleeper s = {.sleep_ns = GH_FOREVER};
    gh_task *t = gh_spawn_task_on(a, sleeper_task, &s);
    assert_non_null(t);
    assert_true(wait_at_least(&s.running, 1, 5 * GH_SEC));
    sleep_ns(10 * GH_MSEC);
    for (int i = 0; i < 50; i++) /* back and forth while it sleeps */
        assert_int_equal(gh_task_move(t, i % 2 ? a : b), 0);
    assert_ptr_equal(gh_task_hub(t), a);
    assert_int_equal(gh_task_move(t, b), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&s.result), -ECANCELED);
    assert_ptr_equal(s.woke_on, b);
    gh_task_release(t);

    /* A reader parked on a pipe moves with its fd wait, and wakes on the new hub. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    fd_waiter w = {.fd = p[0]};
    gh_task *r = gh_spawn_task_on(a, fd_waiter_task, &w);
    assert_non_null(r);
    assert_true(wait_at_least(&w.running, 1, 5 * GH_SEC));
    sleep_ns(10 * GH_MSEC);
    assert_int_equal(gh_task_move(r, b), 0);
    assert_ptr_equal(gh_task_hub(r), b);
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(atomic_load(&w.result), 0); /* still waiting: nothing was written */
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(gh_join(r, 5 * GH_SEC), 0);
    assert_int_equal(atomic_load(&w.result), 1);
    assert_ptr_equal(w.woke_on, b);
    gh_task_release(r);

    /* A task waiting on an event (hub-local): accepted, it moves once the kill wakes it. */
    gh_task *e = gh_spawn_task_on(a, event_waiter_task, NULL);
    assert_non_null(e);
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(gh_task_move(e, b), 0);
    assert_ptr_equal(gh_task_hub(e), a); /* still waiting there */
    assert_int_equal(gh_kill(e), 0);
    assert_int_equal(gh_join(e, 5 * GH_SEC), 0);
    assert_ptr_equal(gh_task_hub(e), b);
    gh_task_release(e);
    gh_close(p[0]);
    close(p[1]);
    assert_int_equal(gh_task_move(NULL, a), -EINVAL);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
}

/*
 * A stop while moves are in flight: 64 tasks sleep in a loop while a plain
 * thread moves them back and forth and the runtime is stopped: every task
 * runs its loop to the end exactly once, nothing is lost or run twice.
 */
#define MOVERS 64

typedef struct stop_moves {
    gh_hub *hubs[2];
    gh_task *tasks[MOVERS];
    atomic_int finished, started;
    atomic_int stop_moving;
} stop_moves;

static void napper(void *arg)
{
    stop_moves *sm = arg;
    atomic_fetch_add(&sm->started, 1);
    for (int i = 0; i < 20; i++)
        if (gh_sleep(2 * GH_MSEC) != 0)
            break;
    atomic_fetch_add(&sm->finished, 1);
}

static void *keep_moving(void *arg)
{
    stop_moves *sm = arg;
    for (int round = 0; !atomic_load(&sm->stop_moving); round++)
        for (int i = 0; i < MOVERS; i++)
            gh_task_move(sm->tasks[i], sm->hubs[(round + i) % 2]); /* any result: racing the stop */
    return NULL;
}

static void test_xhub_stop_while_moving(void **state)
{
    gh_runtime *rt = rt_start(2);
    static stop_moves sm;
    memset(&sm, 0, sizeof sm);
    sm.hubs[0] = gh_runtime_hub(rt, 0);
    sm.hubs[1] = gh_runtime_hub(rt, 1);
    for (int i = 0; i < MOVERS; i++) {
        sm.tasks[i] = gh_spawn_task_on(sm.hubs[i % 2], napper, &sm);
        assert_non_null(sm.tasks[i]);
    }
    assert_true(wait_at_least(&sm.started, MOVERS, 5 * GH_SEC));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, keep_moving, &sm), 0);
    sleep_ns(10 * GH_MSEC);
    assert_int_equal(gh_runtime_stop(rt, 10 * GH_SEC), 0);
    atomic_store(&sm.stop_moving, 1);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&sm.finished), MOVERS);
    for (int i = 0; i < MOVERS; i++) {
        assert_int_equal(gh_join(sm.tasks[i], 0), 0);
        gh_task_release(sm.tasks[i]);
    }
    gh_runtime_destroy(rt);
}

/* A hub whose thread ended (and freed it): moving to it is -ESHUTDOWN, never a use after free. */
static void *short_lived_hub(void *arg)
{
    *(gh_hub **)arg = gh_get_hub();
    return NULL;
}

static int migrate_result;
static void migrate_to_dead(void *arg)
{
    migrate_result = gh_migrate(arg);
}

static void sleep_long(void *arg)
{
    (void)arg;
    gh_sleep(10 * GH_SEC);
}

static void test_xhub_move_to_freed_hub(void **state)
{
    gh_hub *dead = NULL;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, short_lived_hub, &dead), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_non_null(dead); /* freed now: only its address is left */
    gh_task *t = gh_spawn(sleep_long, NULL);
    assert_non_null(t);
    assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_task_move(t, dead), -ESHUTDOWN);
    assert_ptr_equal(gh_task_hub(t), gh_get_hub());
    migrate_result = 1;
    gh_task *m = gh_spawn(migrate_to_dead, dead);
    assert_int_equal(gh_join(m, GH_SEC), 0);
    assert_int_equal(migrate_result, -ESHUTDOWN);
    gh_task_release(m);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(gh_hub_close(), 0);
}

/*
 * Moving a task that waits on something of its hub's (an event, a channel):
 * gh_task_move accepts at once; the task stays on the wait where its waker
 * is, and once woken it leaves and its wait returns on the target. A timeout
 * keeps its deadline, a kill still ends it.
 */
typedef struct local_waiter {
    gh_event *ev;
    gh_chan *ch;
    int64_t timeout;
    int result;
    int64_t waited;
    gh_hub *ran_on;  /* the hub its wait returned on */
    int after_sleep; /* a further wait there works */
} local_waiter;

static void local_wait_task(void *arg)
{
    local_waiter *w = arg;
    int64_t t0 = gh_now();
    if (w->ev) {
        w->result = gh_event_wait(w->ev, NULL, w->timeout);
    } else {
        void *item;
        w->result = gh_chan_recv(w->ch, &item, w->timeout);
    }
    w->waited = gh_now() - t0;
    w->ran_on = gh_get_hub();
    w->after_sleep = gh_sleep(GH_MSEC);
}

static void test_xhub_move_local_waiters(void **state)
{
    gh_runtime *rt = rt_start(1);
    gh_hub *target = gh_runtime_hub(rt, 0), *here = gh_get_hub();
    gh_event ev;
    assert_int_equal(gh_event_init(&ev), 0);
    gh_chan *ch = gh_chan_new(1);

    /* An event waiter: moved, then woken by the set here. */
    local_waiter a = {.ev = &ev, .timeout = GH_FOREVER};
    gh_task *ta = gh_spawn_task_on(here, local_wait_task, &a);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_task_move(ta, target), 0);
    assert_ptr_equal(gh_task_hub(ta), here); /* still waiting here */
    assert_int_equal(gh_event_set(&ev, NULL), 0);
    assert_int_equal(gh_join(ta, 5 * GH_SEC), 0);
    assert_int_equal(a.result, 0);
    assert_ptr_equal(a.ran_on, target);
    assert_int_equal(a.after_sleep, 0);
    gh_task_release(ta);
    assert_int_equal(gh_event_reset(&ev), 0);

    /* A channel receiver: moved, then fed from here. */
    local_waiter b = {.ch = ch, .timeout = GH_FOREVER};
    gh_task *tb = gh_spawn(local_wait_task, &b);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_task_move(tb, target), 0);
    assert_int_equal(gh_chan_send(ch, &b, GH_SEC), 0);
    assert_int_equal(gh_join(tb, 5 * GH_SEC), 0);
    assert_int_equal(b.result, 0);
    assert_ptr_equal(b.ran_on, target);
    gh_task_release(tb);

    /* A timed wait keeps its deadline: never early. */
    local_waiter c = {.ev = &ev, .timeout = 60 * GH_MSEC};
    gh_task *tc = gh_spawn(local_wait_task, &c);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_task_move(tc, target), 0);
    assert_int_equal(gh_join(tc, 5 * GH_SEC), 0);
    assert_int_equal(c.result, -ETIMEDOUT);
    assert_true(c.waited >= 60 * GH_MSEC);
    assert_ptr_equal(c.ran_on, target);
    gh_task_release(tc);

    /* A kill during the pending move still ends the wait; the task ends on the target. */
    local_waiter d = {.ev = &ev, .timeout = GH_FOREVER};
    gh_task *td = gh_spawn(local_wait_task, &d);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_task_move(td, target), 0);
    assert_int_equal(gh_kill(td), 0);
    assert_int_equal(gh_join(td, 5 * GH_SEC), 0);
    assert_int_equal(d.result, -ECANCELED);
    assert_ptr_equal(d.ran_on, target);
    gh_task_release(td);

    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(gh_chan_free(ch), 0);
    assert_int_equal(gh_event_destroy(&ev), 0);
    assert_int_equal(gh_hub_close(), 0);
}

/*
 * Pending moves under load: 8 tasks receive from one channel with short
 * timeouts while a plain thread sends 20,000 numbered items and another
 * moves the receivers between two hubs as fast as it can. Every item is
 * received exactly once, and every move is accepted or refused cleanly.
 */
#define CHAN_RECEIVERS 8
#define CHAN_ITEMS     20000

typedef struct chan_moves {
    gh_chan *ch;
    gh_hub *hubs[2];
    gh_task *tasks[CHAN_RECEIVERS];
    atomic_uchar seen[CHAN_ITEMS];
    atomic_int received, dup, stop, hops, bad;
} chan_moves;

static void chan_mover_receiver(void *arg)
{
    chan_moves *cm = arg;
    gh_hub *last = gh_get_hub();
    for (;;) {
        void *item;
        int err = gh_chan_recv(cm->ch, &item, 2 * GH_MSEC);
        if (gh_get_hub() != last) {
            last = gh_get_hub();
            atomic_fetch_add(&cm->hops, 1);
        }
        if (err == -EPIPE)
            return;
        if (err == -ETIMEDOUT)
            continue;
        if (err != 0) {
            fprintf(stderr, "receiver: %s\n", gh_strerror(err));
            atomic_fetch_add(&cm->bad, 1);
            return;
        }
        uintptr_t i = (uintptr_t)item - 1;
        if (atomic_fetch_add(&cm->seen[i], 1) != 0)
            atomic_fetch_add(&cm->dup, 1);
        atomic_fetch_add(&cm->received, 1);
    }
}

static void *chan_mover_thread(void *arg)
{
    chan_moves *cm = arg;
    unsigned n = 0;
    while (!atomic_load(&cm->stop)) {
        gh_task *t = cm->tasks[n % CHAN_RECEIVERS];
        int err = gh_task_move(t, cm->hubs[(n / CHAN_RECEIVERS) % 2]);
        if (err != 0 && err != -ENOENT) {
            fprintf(stderr, "move: %s\n", gh_strerror(err));
            atomic_fetch_add(&cm->bad, 1);
        }
        n++;
    }
    return NULL;
}

static void test_xhub_move_channel_receivers_under_load(void **state)
{
    gh_runtime *rt = rt_start(2);
    chan_moves *cm = calloc(1, sizeof(*cm));
    assert_non_null(cm);
    cm->ch = gh_chan_new(16);
    assert_non_null(cm->ch);
    cm->hubs[0] = gh_runtime_hub(rt, 0);
    cm->hubs[1] = gh_runtime_hub(rt, 1);
    for (int i = 0; i < CHAN_RECEIVERS; i++) {
        cm->tasks[i] = gh_spawn_task_on(cm->hubs[i % 2], chan_mover_receiver, cm);
        assert_non_null(cm->tasks[i]);
    }
    pthread_t mover;
    assert_int_equal(pthread_create(&mover, NULL, chan_mover_thread, cm), 0);
    for (uintptr_t i = 0; i < CHAN_ITEMS; i++) {
        if (i % 500 == 0)
            sleep_ns(GH_MSEC); /* the receivers sit in their waits while moves come */
        assert_int_equal(gh_chan_send(cm->ch, (void *)(i + 1), 10 * GH_SEC), 0);
    }
    assert_int_equal(gh_chan_close(cm->ch), 0);
    for (int i = 0; i < CHAN_RECEIVERS; i++)
        assert_int_equal(gh_join(cm->tasks[i], 10 * GH_SEC), 0);
    atomic_store(&cm->stop, 1);
    assert_int_equal(pthread_join(mover, NULL), 0);
    assert_int_equal(atomic_load(&cm->received), CHAN_ITEMS);
    assert_int_equal(atomic_load(&cm->dup), 0);
    assert_int_equal(atomic_load(&cm->bad), 0);
    assert_true(atomic_load(&cm->hops) > 0); /* receivers did change hubs inside their waits */
    print_message("%d hub changes inside channel waits\n", atomic_load(&cm->hops));
    for (int i = 0; i < CHAN_RECEIVERS; i++)
        gh_task_release(cm->tasks[i]);
    assert_int_equal(gh_runtime_stop(rt, 5 * GH_SEC), 0);
    gh_runtime_destroy(rt);
    assert_int_equal(gh_chan_free(cm->ch), 0);
    free(cm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xhub_plain_thread_spawn_join_release),
        cmocka_unit_test(test_xhub_task_joins_other_hub_green),
        cmocka_unit_test(test_xhub_kill_from_plain_thread),
        cmocka_unit_test(test_xhub_killed_joiner),
        cmocka_unit_test(test_xhub_release_before_start),
        cmocka_unit_test(test_xhub_many_joined_from_other_hub),
        cmocka_unit_test(test_xhub_stopped_runtime),
        cmocka_unit_test(test_xhub_release_after_hub_close),
        cmocka_unit_test(test_xhub_migrate_back_and_forth),
        cmocka_unit_test(test_xhub_migrate_reader_while_streaming),
        cmocka_unit_test(test_xhub_migrating_task_joined_and_killed),
        cmocka_unit_test(test_xhub_migrate_errors),
        cmocka_unit_test(test_xhub_move_sleeper_keeps_deadline),
        cmocka_unit_test(test_xhub_move_forever_sleeper_then_kill),
        cmocka_unit_test(test_xhub_stop_while_moving),
        cmocka_unit_test(test_xhub_move_reader_while_streaming),
        cmocka_unit_test(test_xhub_move_to_freed_hub),
        cmocka_unit_test(test_xhub_move_local_waiters),
        cmocka_unit_test(test_xhub_move_channel_receivers_under_load),
    };
    if (getenv("GH_TEST_FILTER"))
        cmocka_set_test_filter(getenv("GH_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
