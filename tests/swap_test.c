/*
 * swap_test.c — live backend swaps on a busy hub (issue 6).
 *
 * Tasks blocked on pipes and on loopback TCP sockets (readers, and writers on
 * full buffers), sleeping tasks, one-shot and repeating callback timers; then
 * a task swaps the hub epoll -> io_uring -> libev -> poll -> libevent ->
 * select while all of them wait, and bytes arrive at known times. Every task
 * must wake exactly when it should: not before its data (a wake-up that
 * finds nothing to read is counted and must not happen), not missed; sleepers
 * and timers never early, one-shots once, repeating timers on their phase.
 *
 * Then the refusals: a swap to select with a watched fd >= FD_SETSIZE is
 * -EINVAL and changes nothing; an unknown name is -ENOENT; a swap from a
 * timer callback is -EPERM. And what the swap must get right inside: the
 * wakeup fd (cross-thread wake-ups on every backend), back-to-back swaps
 * (io_uring's watches are deferred to its first poll), interest left behind
 * by a served waiter (not carried: it must not refuse the swap), and a
 * waiter whose fd was closed behind the hub's back (woken with -EBADF).
 *
 * io_uring may be skipped only when the kernel refuses it (-ENOSYS/-EPERM),
 * and the test says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

#define HUB_CLOSES_CLEAN() assert_int_equal(gh_hub_close(), 0)
#define IO_TIMEOUT         (20 * GH_SEC) /* fail rather than hang */
#define LATE               (2 * GH_SEC)  /* upper bounds: sanitizers on a loaded 2-core box */

static const char *const chain[] = {"epoll", "io_uring", "libev", "poll", "libevent", "select"};
enum { NCHAIN = sizeof chain / sizeof chain[0] };

static const char *backend_now(void)
{
    return gh_hub_backend(gh_get_hub());
}

static gh_hub_stats stats_now(void)
{
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    return st;
}

/* Swap to @name. 0 only when the kernel refuses io_uring (said on stdout). */
static int swap_to(const char *name)
{
    gh_hub_stats before = stats_now();
    int r = gh_use_hub(name);
    if ((r == -ENOSYS || r == -EPERM) && strcmp(name, "io_uring") == 0) {
        print_message("[ SKIP ] io_uring refused by the kernel (%s): not in the chain\n",
                      gh_strerror(r));
        return 0;
    }
    assert_int_equal(r, 0);
    assert_string_equal(backend_now(), name);
    /* Nothing lost on the way. */
    gh_hub_stats after = stats_now();
    assert_string_equal(after.backend, name);
    assert_int_equal(after.fd_waiters, before.fd_waiters);
    assert_int_equal(after.tasks_live, before.tasks_live);
    assert_int_equal(after.timers_pending, before.timers_pending);
    return 1;
}

static void make_pipe(int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

/* Fill @fd (non-blocking) until the kernel refuses more. Returns the bytes written. */
static size_t fill_fd(int fd)
{
    static char junk[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = write(fd, junk, sizeof junk)) > 0)
        total += (size_t)n;
    while ((n = write(fd, junk, 1)) > 0)
        total += (size_t)n;
    return total;
}

/* Fill and let it settle: TCP acks free room for a little while. */
static void fill_settled(int fd)
{
    fill_fd(fd);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
        if (fill_fd(fd) == 0)
            return;
    }
    fail_msg("fd %d never stayed full", fd);
}

static void drain_fd(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

/* Sleep in small steps until *flag is non-zero; fail after 10 s. */
static void wait_flag(const volatile int *flag, const char *what)
{
    int64_t end = gh_now() + 10 * GH_SEC;
    while (!*flag) {
        if (gh_now() > end)
            fail_msg("%s never happened (backend %s)", what, backend_now());
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    }
}

/* --------------------------------------------------------------- waiters */

/* One byte expected on an fd: waits with gh_trampoline, so that every wake-up is seen. */
typedef struct rd {
    int fd;
    char want;
    int64_t written;     /* set just before the byte is written; 0 = not yet */
    int64_t woke;        /* when the byte was read */
    int wakeups;         /* gh_trampoline returned 0 */
    int early;           /* ... before the byte was written */
    int spurious;        /* ... and the read said EAGAIN */
    volatile int result; /* 1: got @want; 0: waiting; < 0: errno */
    char got;
} rd;

static void rd_task(void *arg)
{
    rd *r = arg;
    for (;;) {
        int e = gh_trampoline(r->fd, GH_READ, IO_TIMEOUT);
        if (e < 0) {
            r->result = e;
            return;
        }
        r->wakeups++;
        if (!r->written)
            r->early++;
        char c;
        ssize_t n = read(r->fd, &c, 1);
        if (n == 1) {
            r->got = c;
            r->woke = gh_now();
            r->result = c == r->want ? 1 : -EILSEQ;
            return;
        }
        if (n == 0) {
            r->result = -EPIPE;
            return;
        }
        if (errno != EAGAIN) {
            r->result = -errno;
            return;
        }
        r->spurious++;
    }
}

/* A reader through gh_read (the usual path). */
static void rd_gh_read_task(void *arg)
{
    rd *r = arg;
    char c;
    ssize_t n = gh_read(r->fd, &c, 1, IO_TIMEOUT);
    r->woke = gh_now();
    if (n == 1) {
        r->got = c;
        r->result = c == r->want ? 1 : -EILSEQ;
    } else {
        r->result = n == 0 ? -EPIPE : (int)n;
    }
}

/* One byte to write on a full fd. */
typedef struct wr {
    int fd;
    int64_t released; /* set just before the reader side starts draining */
    int64_t woke;
    int wakeups, early, spurious;
    volatile int result;
} wr;

static void wr_task(void *arg)
{
    wr *w = arg;
    for (;;) {
        int e = gh_trampoline(w->fd, GH_WRITE, IO_TIMEOUT);
        if (e < 0) {
            w->result = e;
            return;
        }
        w->wakeups++;
        if (!w->released)
            w->early++;
        ssize_t n = send(w->fd, "w", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(w->fd, "w", 1);
        if (n == 1) {
            w->woke = gh_now();
            w->result = 1;
            return;
        }
        if (n < 0 && errno != EAGAIN) {
            w->result = -errno;
            return;
        }
        w->spurious++;
    }
}

typedef struct sleeper {
    int64_t ns, due, woke;
    int result;
} sleeper;

static void sleeper_task(void *arg)
{
    sleeper *s = arg;
    s->result = gh_sleep(s->ns);
    s->woke = gh_now();
}

/* ---------------------------------------------------------------- timers */

typedef struct oneshot {
    int64_t due, woke;
    int fired;
} oneshot;

static void oneshot_cb(void *arg)
{
    oneshot *o = arg;
    o->fired++;
    o->woke = gh_now();
}

enum { MAXTICKS = 4096 };

typedef struct repeater {
    int64_t start, interval;
    int64_t at[MAXTICKS];
    const char *on[MAXTICKS]; /* the backend each tick ran on */
    volatile int n;
} repeater;

static void repeater_cb(void *arg)
{
    repeater *r = arg;
    if (r->n < MAXTICKS) {
        r->at[r->n] = gh_now();
        r->on[r->n] = backend_now();
    }
    r->n++;
}

/* Tick j is never before its slot: start + (j+1) * interval (skipped ticks only push it later). */
static void check_repeater(const repeater *r)
{
    assert_true(r->n > 0 && r->n < MAXTICKS);
    for (int j = 0; j < r->n; j++)
        if (r->at[j] < r->start + (j + 1) * r->interval)
            fail_msg("repeating timer (%lld ns): tick %d at +%lld ns, before its slot",
                     (long long)r->interval, j, (long long)(r->at[j] - r->start));
}

/* A timer callback writes a socket at a known time (never blocks). */
typedef struct sock_trigger {
    int fd;
    rd *r;
} sock_trigger;

static void sock_trigger_cb(void *arg)
{
    sock_trigger *t = arg;
    t->r->written = gh_now();
    ssize_t n = send(t->fd, &t->r->want, 1, MSG_NOSIGNAL);
    assert_int_equal(n, 1);
}

/* --------------------------------------------------------- loopback TCP */

typedef struct acceptor {
    int lfd, fd;
} acceptor;

static void accept_task(void *arg)
{
    acceptor *a = arg;
    a->fd = gh_accept(a->lfd, IO_TIMEOUT);
}

/* A connected loopback pair: *c the client end, *s the server end. */
static void tcp_pair(int lfd, int port, int *c, int *s)
{
    acceptor a = {lfd, -1};
    gh_task *t = gh_spawn(accept_task, &a);
    *c = gh_connect("127.0.0.1", port, IO_TIMEOUT);
    assert_true(*c >= 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    gh_task_release(t);
    assert_true(a.fd >= 0);
    *s = a.fd;
}

static int listen_port(int lfd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

/* ======================================================= the busy chain */

enum { NPIPE = NCHAIN, NSOCK = 3, NSLEEP = 6, NONESHOT = 6 };

typedef struct chain_ctx {
    int pipes[NPIPE][2];
    rd pipe_rd[NPIPE];
    int sock_c[NSOCK], sock_s[NSOCK];
    rd sock_rd[NSOCK];
    sock_trigger sock_trig[NSOCK];
    int full_pipe[2], full_c, full_s; /* a pipe and a TCP socket kept full */
    wr pipe_wr, sock_wr;
    sleeper sleepers[NSLEEP];
    oneshot oneshots[NONESHOT];
    repeater fast, slow;
    int swapped[NCHAIN]; /* 1 if the chain reached this backend */
    volatile int swapper_done;
} chain_ctx;

static chain_ctx *cc;

/* The task that swaps, while every other task waits. */
static void swapper_task(void *arg)
{
    (void)arg;
    chain_ctx *c = cc;
    for (int k = 0; k < NCHAIN; k++) {
        if (k == 0) {
            assert_string_equal(backend_now(), chain[0]);
            c->swapped[0] = 1;
        } else {
            c->swapped[k] = swap_to(chain[k]);
        }
        /* Pipe k's byte arrives now, on this backend; readers of later pipes sleep on. */
        rd *r = &c->pipe_rd[k];
        assert_int_equal(r->result, 0);
        r->written = gh_now();
        assert_int_equal(write(c->pipes[k][1], &r->want, 1), 1);
        wait_flag(&r->result, "a pipe reader's wake-up");
        for (int j = k + 1; j < NPIPE; j++) {
            assert_int_equal(c->pipe_rd[j].result, 0);
            assert_int_equal(c->pipe_rd[j].wakeups, 0);
        }
        /* The repeating timer ticks on this backend too, then a few ms more. */
        int base = c->fast.n;
        int64_t end = gh_now() + 10 * GH_SEC;
        while (c->fast.n < base + 2) {
            assert_true(gh_now() < end);
            assert_int_equal(gh_sleep(GH_MSEC), 0);
        }
        assert_int_equal(gh_sleep(3 * GH_MSEC), 0);
    }
    c->swapper_done = 1;
}

static void test_swap_chain_busy_hub(void **state)
{
    (void)state;
    static chain_ctx c;
    memset(&c, 0, sizeof c);
    cc = &c;
    assert_int_equal(gh_use_hub(chain[0]), 0);

    int lfd = gh_listen("127.0.0.1", 0, 16);
    assert_true(lfd >= 0);
    int port = listen_port(lfd);
    for (int i = 0; i < NSOCK; i++)
        tcp_pair(lfd, port, &c.sock_c[i], &c.sock_s[i]);
    tcp_pair(lfd, port, &c.full_c, &c.full_s);
    make_pipe(c.full_pipe);
    fill_fd(c.full_pipe[1]);
    fill_settled(c.full_s);

    gh_task *tasks[64];
    int nt = 0;
    for (int i = 0; i < NPIPE; i++) {
        make_pipe(c.pipes[i]);
        c.pipe_rd[i] = (rd){.fd = c.pipes[i][0], .want = (char)('A' + i)};
        tasks[nt++] = gh_spawn(rd_task, &c.pipe_rd[i]);
    }
    for (int i = 0; i < NSOCK; i++) {
        c.sock_rd[i] = (rd){.fd = c.sock_s[i], .want = (char)('a' + i)};
        tasks[nt++] = gh_spawn(i == 0 ? rd_gh_read_task : rd_task, &c.sock_rd[i]);
    }
    c.pipe_wr = (wr){.fd = c.full_pipe[1]};
    c.sock_wr = (wr){.fd = c.full_s};
    tasks[nt++] = gh_spawn(wr_task, &c.pipe_wr);
    tasks[nt++] = gh_spawn(wr_task, &c.sock_wr);

    /* Everyone blocks; then the swapper runs the chain. */
    assert_int_equal(gh_yield(), 0);
    gh_hub_stats st = stats_now();
    assert_int_equal(st.fd_waiters, NPIPE + NSOCK + 2);

    /*
     * Due across the chain and after it. Armed only now, with no switch
     * before they are counted: a yield may let the hub fire due timers
     * before it returns (sched/task.c asks it every few direct switches),
     * and under TSan the yield above takes ~150 ms (a fresh stack's TSan
     * fiber costs ~8 ms to make), past the first of them.
     */
    int64_t t0 = gh_now();
    static const int sleep_ms[NSLEEP] = {5, 20, 40, 60, 90, 130};
    static const int oneshot_ms[NONESHOT] = {3, 15, 35, 55, 80, 120};
    static const int sock_ms[NSOCK] = {25, 50, 75};
    for (int i = 0; i < NSLEEP; i++) {
        c.sleepers[i] = (sleeper){.ns = sleep_ms[i] * GH_MSEC, .result = 1};
        c.sleepers[i].due = gh_now() + c.sleepers[i].ns; /* at least; spawn is after */
        tasks[nt++] = gh_spawn(sleeper_task, &c.sleepers[i]);
    }
    for (int i = 0; i < NONESHOT; i++) {
        c.oneshots[i].due = t0 + oneshot_ms[i] * GH_MSEC;
        gh_timer_release(gh_call_at(c.oneshots[i].due, oneshot_cb, &c.oneshots[i]));
    }
    for (int i = 0; i < NSOCK; i++) {
        c.sock_trig[i] = (sock_trigger){c.sock_c[i], &c.sock_rd[i]};
        gh_timer_release(gh_call_at(t0 + sock_ms[i] * GH_MSEC, sock_trigger_cb, &c.sock_trig[i]));
    }
    c.fast.interval = 4 * GH_MSEC;
    c.fast.start = gh_now();
    gh_timer *fast = gh_call_repeatedly(c.fast.interval, repeater_cb, &c.fast);
    c.slow.interval = 11 * GH_MSEC;
    c.slow.start = gh_now();
    gh_timer *slow = gh_call_repeatedly(c.slow.interval, repeater_cb, &c.slow);
    assert_non_null(fast);
    assert_non_null(slow);
    st = stats_now();
    assert_int_equal(st.timers_pending, NONESHOT + NSOCK + 2);
    gh_task *sw = gh_spawn(swapper_task, NULL);
    assert_int_equal(gh_join(sw, 60 * GH_SEC), 0);
    gh_task_release(sw);
    assert_int_equal(c.swapper_done, 1);
    assert_string_equal(backend_now(), chain[NCHAIN - 1]);

    /* On the last backend: the full pipe and socket get room now. */
    assert_int_equal(c.pipe_wr.result, 0);
    assert_int_equal(c.sock_wr.result, 0);
    c.pipe_wr.released = gh_now();
    drain_fd(c.full_pipe[0]);
    wait_flag(&c.pipe_wr.result, "the pipe writer's wake-up");
    c.sock_wr.released = gh_now();
    int64_t end = gh_now() + 10 * GH_SEC;
    while (!c.sock_wr.result && gh_now() < end) {
        drain_fd(c.full_c);
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    }
    for (int i = 0; i < nt; i++) {
        assert_int_equal(gh_join(tasks[i], 10 * GH_SEC), 0);
        gh_task_release(tasks[i]);
    }
    /* Past every one-shot: none may fire twice. */
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_int_equal(gh_timer_cancel(fast), 0);
    assert_int_equal(gh_timer_cancel(slow), 0);
    assert_int_equal(gh_hub_run(), 0);

    /* Every reader woke once, for its own byte, after it was written. */
    rd *all_rd[NPIPE + NSOCK];
    for (int i = 0; i < NPIPE; i++)
        all_rd[i] = &c.pipe_rd[i];
    for (int i = 0; i < NSOCK; i++)
        all_rd[NPIPE + i] = &c.sock_rd[i];
    for (int i = 0; i < NPIPE + NSOCK; i++) {
        rd *r = all_rd[i];
        if (r->result != 1)
            fail_msg("reader %d: result %d (%s)", i, r->result, gh_strerror(r->result));
        assert_int_equal(r->got, r->want);
        assert_true(r->written > 0);
        assert_true(r->woke >= r->written);
        assert_true(r->woke < r->written + LATE);
        assert_int_equal(r->early, 0);
        assert_int_equal(r->spurious, 0);
        if (r != &c.sock_rd[0])
            assert_int_equal(r->wakeups, 1);
    }
    wr *all_wr[] = {&c.pipe_wr, &c.sock_wr};
    for (int i = 0; i < 2; i++) {
        wr *w = all_wr[i];
        assert_int_equal(w->result, 1);
        assert_int_equal(w->early, 0);
        assert_int_equal(w->spurious, 0);
        assert_int_equal(w->wakeups, 1);
        assert_true(w->woke >= w->released);
    }
    for (int i = 0; i < NSLEEP; i++) {
        assert_int_equal(c.sleepers[i].result, 0);
        assert_true(c.sleepers[i].woke >= c.sleepers[i].due);
        assert_true(c.sleepers[i].woke < c.sleepers[i].due + LATE);
    }
    for (int i = 0; i < NONESHOT; i++) {
        assert_int_equal(c.oneshots[i].fired, 1);
        assert_true(c.oneshots[i].woke >= c.oneshots[i].due);
        assert_true(c.oneshots[i].woke < c.oneshots[i].due + LATE);
    }
    check_repeater(&c.fast);
    check_repeater(&c.slow);
    /* The fast timer ticked on every backend the chain reached. */
    for (int k = 0; k < NCHAIN; k++) {
        if (!c.swapped[k])
            continue;
        int on = 0;
        for (int j = 0; j < c.fast.n; j++)
            on += strcmp(c.fast.on[j], chain[k]) == 0;
        if (on < 2)
            fail_msg("the repeating timer ticked %d times on %s", on, chain[k]);
    }
    st = stats_now();
    assert_int_equal(st.fd_waiters, 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.timers_pending, 0);

    for (int i = 0; i < NPIPE; i++) {
        assert_int_equal(gh_close(c.pipes[i][0]), 0);
        assert_int_equal(gh_close(c.pipes[i][1]), 0);
    }
    for (int i = 0; i < NSOCK; i++) {
        assert_int_equal(gh_close(c.sock_c[i]), 0);
        assert_int_equal(gh_close(c.sock_s[i]), 0);
    }
    assert_int_equal(gh_close(c.full_pipe[0]), 0);
    assert_int_equal(gh_close(c.full_pipe[1]), 0);
    assert_int_equal(gh_close(c.full_c), 0);
    assert_int_equal(gh_close(c.full_s), 0);
    assert_int_equal(gh_close(lfd), 0);
    HUB_CLOSES_CLEAN();
}

/* ============================================================ refusals */

/* A small hub load: a reader on @fd, a sleeper, a one-shot and a repeating timer. */
typedef struct load {
    rd r;
    sleeper s;
    oneshot o;
    repeater rep;
    gh_timer *rep_t;
    gh_task *rt, *st;
} load;

static void load_start(load *l, int fd)
{
    memset(l, 0, sizeof *l);
    l->r = (rd){.fd = fd, .want = 'L'};
    l->rt = gh_spawn(rd_task, &l->r);
    l->s = (sleeper){.ns = 60 * GH_MSEC, .result = 1};
    l->s.due = gh_now() + l->s.ns;
    l->st = gh_spawn(sleeper_task, &l->s);
    l->o.due = gh_now() + 40 * GH_MSEC;
    gh_timer_release(gh_call_at(l->o.due, oneshot_cb, &l->o));
    l->rep.interval = 10 * GH_MSEC;
    l->rep.start = gh_now();
    l->rep_t = gh_call_repeatedly(l->rep.interval, repeater_cb, &l->rep);
    assert_non_null(l->rep_t);
    assert_int_equal(gh_yield(), 0);
}

/* Everything in the load still works: the reader wakes for its byte, on time. */
static void load_finish(load *l, int wfd)
{
    assert_int_equal(l->r.result, 0);
    assert_int_equal(l->r.wakeups, 0);
    l->r.written = gh_now();
    assert_int_equal(write(wfd, "L", 1), 1);
    assert_int_equal(gh_join(l->rt, 10 * GH_SEC), 0);
    assert_int_equal(gh_join(l->st, 10 * GH_SEC), 0);
    gh_task_release(l->rt);
    gh_task_release(l->st);
    assert_int_equal(l->r.result, 1);
    assert_int_equal(l->r.wakeups, 1);
    assert_true(l->r.woke >= l->r.written);
    assert_int_equal(l->s.result, 0);
    assert_true(l->s.woke >= l->s.due);
    while (gh_now() < l->o.due + 20 * GH_MSEC)
        assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(l->o.fired, 1);
    assert_true(l->o.woke >= l->o.due);
    int64_t end = gh_now() + 10 * GH_SEC;
    while (l->rep.n < 3 && gh_now() < end)
        assert_int_equal(gh_sleep(GH_MSEC), 0);
    assert_int_equal(gh_timer_cancel(l->rep_t), 0);
    check_repeater(&l->rep);
}

static void test_swap_to_select_refused_for_fd_above_setsize(void **state)
{
    (void)state;
    assert_int_equal(gh_use_hub("epoll"), 0);
    int p[2], q[2];
    make_pipe(p);
    make_pipe(q);
    int big = 5000;
    assert_true(big >= FD_SETSIZE);
    assert_int_equal(dup2(p[0], big), big);
    assert_int_equal(fcntl(big, F_SETFL, O_NONBLOCK), 0);

    rd br = {.fd = big, .want = 'B'};
    gh_task *bt = gh_spawn(rd_task, &br);
    load l;
    load_start(&l, q[0]);
    gh_hub_stats before = stats_now();
    assert_int_equal(before.fd_waiters, 2);

    /* select cannot hold fd 5000: refused, and nothing changed. */
    assert_int_equal(gh_use_hub("select"), -EINVAL);
    assert_string_equal(backend_now(), "epoll");
    gh_hub_stats after = stats_now();
    assert_string_equal(after.backend, "epoll");
    assert_int_equal(after.fd_waiters, before.fd_waiters);
    assert_int_equal(after.tasks_live, before.tasks_live);
    assert_int_equal(after.timers_pending, before.timers_pending);
    /* And again through another backend first: refused from there too. */
    assert_int_equal(gh_use_hub("poll"), 0);
    assert_int_equal(gh_use_hub("select"), -EINVAL);
    assert_string_equal(backend_now(), "poll");

    /* Every waiter intact. */
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(br.result, 0);
    br.written = gh_now();
    assert_int_equal(write(p[1], "B", 1), 1);
    assert_int_equal(gh_join(bt, 10 * GH_SEC), 0);
    gh_task_release(bt);
    assert_int_equal(br.result, 1);
    assert_int_equal(br.wakeups, 1);
    assert_true(br.woke >= br.written);
    load_finish(&l, q[1]);

    /* fd 5000 was served and nobody waits on it any more: the interest the
     * hub kept for it is not carried, so select takes the hub now... */
    assert_int_equal(gh_use_hub("select"), 0);
    assert_string_equal(backend_now(), "select");
    /* ...and still refuses a new wait on it. */
    assert_int_equal(gh_trampoline(big, GH_READ, 10 * GH_MSEC), -EINVAL);
    assert_int_equal(gh_use_hub("epoll"), 0);
    assert_int_equal(write(p[1], "C", 1), 1);
    assert_int_equal(gh_trampoline(big, GH_READ, IO_TIMEOUT), 0);

    assert_int_equal(gh_close(big), 0);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    assert_int_equal(gh_close(q[0]), 0);
    assert_int_equal(gh_close(q[1]), 0);
    assert_int_equal(gh_hub_run(), 0);
    HUB_CLOSES_CLEAN();
}

static void test_swap_unknown_name_changes_nothing(void **state)
{
    (void)state;
    assert_int_equal(gh_use_hub("libev"), 0);
    int q[2];
    make_pipe(q);
    load l;
    load_start(&l, q[0]);
    gh_hub_stats before = stats_now();
    assert_int_equal(gh_use_hub("nope"), -ENOENT);
    assert_int_equal(gh_use_hub(""), -ENOENT);
    assert_int_equal(gh_use_hub("EPOLL"), -ENOENT);
    gh_hub_stats after = stats_now();
    assert_string_equal(after.backend, "libev");
    assert_int_equal(after.fd_waiters, before.fd_waiters);
    assert_int_equal(after.tasks_live, before.tasks_live);
    assert_int_equal(after.timers_pending, before.timers_pending);
    load_finish(&l, q[1]);
    assert_string_equal(backend_now(), "libev");
    assert_int_equal(gh_close(q[0]), 0);
    assert_int_equal(gh_close(q[1]), 0);
    assert_int_equal(gh_hub_run(), 0);
    HUB_CLOSES_CLEAN();
}

static int cb_results[3];
static const char *cb_backend;

static void swap_from_callback(void *arg)
{
    (void)arg;
    cb_results[0] = gh_use_hub("poll");
    cb_results[1] = gh_use_hub_backend(&gh_backend_select);
    cb_results[2] = gh_use_hub(NULL);
    cb_backend = backend_now();
}

static void test_swap_from_timer_callback_eperm(void **state)
{
    (void)state;
    assert_int_equal(gh_use_hub("libevent"), 0);
    int q[2];
    make_pipe(q);
    load l;
    load_start(&l, q[0]);
    memset(cb_results, 0, sizeof cb_results);
    cb_backend = NULL;
    gh_timer_release(gh_call_after(5 * GH_MSEC, swap_from_callback, NULL));
    gh_hub_stats before = stats_now();
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_non_null(cb_backend);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cb_results[i], -EPERM);
    assert_string_equal(cb_backend, "libevent");
    assert_string_equal(backend_now(), "libevent");
    gh_hub_stats after = stats_now();
    assert_int_equal(after.fd_waiters, before.fd_waiters);
    assert_int_equal(after.tasks_live, before.tasks_live);
    load_finish(&l, q[1]);
    assert_int_equal(gh_close(q[0]), 0);
    assert_int_equal(gh_close(q[1]), 0);
    assert_int_equal(gh_hub_run(), 0);
    HUB_CLOSES_CLEAN();
}

/* ====================================================== swap internals */

/* The wakeup fd is carried over: handoffs and cross-thread wakes from a plain
 * thread end a hub's indefinite wait on every backend of the chain. */
typedef struct xctx {
    gh_hub *hub;
    gh_xevent ev;
    int64_t sent;
    int64_t ran;
    const char *ran_on;
    int spawn_result;
} xctx;

static void x_spawned(void *arg)
{
    xctx *x = arg;
    x->ran = gh_now();
    x->ran_on = backend_now();
    gh_xevent_set(&x->ev, x);
}

static void *x_thread(void *arg)
{
    xctx *x = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    x->sent = gh_now();
    x->spawn_result = gh_spawn_on(x->hub, x_spawned, x);
    return NULL;
}

static void test_swap_wakeup_fd_carried(void **state)
{
    (void)state;
    xctx x;
    memset(&x, 0, sizeof x);
    x.hub = gh_get_hub();
    assert_int_equal(gh_xevent_init(&x.ev), 0);
    for (int k = 0; k < NCHAIN; k++) {
        if (!swap_to(chain[k]))
            continue;
        pthread_t th;
        x.ran = 0;
        x.ran_on = NULL;
        assert_int_equal(pthread_create(&th, NULL, x_thread, &x), 0);
        /* Nothing else on the hub: it sleeps until the other thread's handoff. */
        void *v = NULL;
        assert_int_equal(gh_xevent_wait(&x.ev, &v, 10 * GH_SEC), 0);
        assert_ptr_equal(v, &x);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(x.spawn_result, 0);
        assert_true(x.ran >= x.sent);
        assert_string_equal(x.ran_on, chain[k]);
        assert_int_equal(gh_xevent_reset(&x.ev), 0);
    }
    gh_xevent_destroy(&x.ev);
    assert_int_equal(gh_hub_run(), 0);
    HUB_CLOSES_CLEAN();
}

/* Swaps with no poll in between (io_uring's watches wait for its first poll,
 * and its forget must cope with a poll never armed), twice round the chain;
 * then the waiters still wake for their data. */
static void test_swap_back_to_back(void **state)
{
    (void)state;
    enum { N = 4 };
    int p[N][2];
    rd r[N];
    gh_task *t[N];
    assert_int_equal(gh_use_hub("epoll"), 0);
    for (int i = 0; i < N; i++) {
        make_pipe(p[i]);
        r[i] = (rd){.fd = p[i][0], .want = (char)('0' + i)};
        t[i] = gh_spawn(rd_task, &r[i]);
    }
    assert_int_equal(gh_yield(), 0);
    for (int round = 0; round < 2; round++)
        for (int k = 0; k < NCHAIN; k++)
            if (strcmp(backend_now(), chain[k]) != 0)
                swap_to(chain[k]);
    assert_int_equal(stats_now().fd_waiters, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r[i].result, 0);
        r[i].written = gh_now();
        assert_int_equal(write(p[i][1], &r[i].want, 1), 1);
        /* Swap again before the byte is seen (a no-op if already there). */
        swap_to(i % 2 ? "select" : "io_uring");
        assert_int_equal(gh_join(t[i], 10 * GH_SEC), 0);
        gh_task_release(t[i]);
        assert_int_equal(r[i].result, 1);
        assert_int_equal(r[i].wakeups, 1);
        assert_true(r[i].woke >= r[i].written);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(gh_close(p[i][0]), 0);
        assert_int_equal(gh_close(p[i][1]), 0);
    }
    HUB_CLOSES_CLEAN();
}

/* A waiter whose fd the user closed with close() (not gh_close) is woken with
 * -EBADF by a swap to a backend that refuses the closed fd (epoll, libevent),
 * instead of the swap being refused; interest left on a served, then closed
 * fd does not refuse it either. High fd numbers, so the new backend's own fds
 * cannot take the closed numbers. */
static void test_swap_with_fd_closed_behind_hub(void **state)
{
    (void)state;
    static const char *const to[] = {"epoll", "libevent"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(gh_use_hub("poll"), 0);
        int a[2], b[2];
        make_pipe(a);
        make_pipe(b);
        int fa = 900, fb = 901;
        assert_int_equal(dup2(a[0], fa), fa);
        assert_int_equal(dup2(b[0], fb), fb);
        assert_int_equal(close(a[0]), 0);
        assert_int_equal(close(b[0]), 0);

        /* fb: served once, its interest left behind. */
        rd served = {.fd = fb, .want = 's'};
        gh_task *ts = gh_spawn(rd_task, &served);
        assert_int_equal(gh_yield(), 0);
        served.written = gh_now();
        assert_int_equal(write(b[1], "s", 1), 1);
        assert_int_equal(gh_join(ts, 10 * GH_SEC), 0);
        gh_task_release(ts);
        assert_int_equal(served.result, 1);

        /* fa: a task waits on it. */
        rd waiting = {.fd = fa, .want = 'w'};
        gh_task *tw = gh_spawn(rd_task, &waiting);
        assert_int_equal(gh_yield(), 0);
        assert_int_equal(stats_now().fd_waiters, 1);

        /* Both closed behind the hub's back; then the swap. */
        assert_int_equal(close(fa), 0);
        assert_int_equal(close(fb), 0);
        assert_int_equal(gh_use_hub(to[k]), 0);
        assert_string_equal(backend_now(), to[k]);
        assert_int_equal(gh_join(tw, 10 * GH_SEC), 0);
        gh_task_release(tw);
        assert_int_equal(waiting.result, -EBADF);
        assert_int_equal(waiting.wakeups, 0);
        assert_int_equal(stats_now().fd_waiters, 0);

        /* The hub works on: a new pipe's reader wakes for its byte. */
        int c[2];
        make_pipe(c);
        rd fresh = {.fd = c[0], .want = 'f'};
        gh_task *tf = gh_spawn(rd_task, &fresh);
        assert_int_equal(gh_yield(), 0);
        fresh.written = gh_now();
        assert_int_equal(write(c[1], "f", 1), 1);
        assert_int_equal(gh_join(tf, 10 * GH_SEC), 0);
        gh_task_release(tf);
        assert_int_equal(fresh.result, 1);
        assert_int_equal(fresh.spurious, 0);
        assert_int_equal(gh_close(c[0]), 0);
        assert_int_equal(gh_close(c[1]), 0);
        assert_int_equal(gh_close(a[1]), 0);
        assert_int_equal(gh_close(b[1]), 0);
        HUB_CLOSES_CLEAN();
    }
}

int main(void)
{
    /* fd 5000 must exist: raise the soft fd limit to the hard one. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_chain_busy_hub),
        cmocka_unit_test(test_swap_to_select_refused_for_fd_above_setsize),
        cmocka_unit_test(test_swap_unknown_name_changes_nothing),
        cmocka_unit_test(test_swap_from_timer_callback_eperm),
        cmocka_unit_test(test_swap_wakeup_fd_carried),
        cmocka_unit_test(test_swap_back_to_back),
        cmocka_unit_test(test_swap_with_fd_closed_behind_hub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
