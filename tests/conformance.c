/*
 * conformance.c — the backend conformance suite: compiled once, run as one
 * cc_test per backend (GREENHUB_HUB=<backend>, see greenhub_backend_test).
 *
 * Tasks, sleeps and timers over the backend; the trampoline on pipes and
 * sockets (ready, full, -EBUSY, timeouts, timeout 0); gh_close waking every
 * waiter with -EBADF; kill of a waiting task freeing its fd slot; loopback
 * sockets moving 4 MiB each way at once; a peer's half-close waking the
 * reader but not a writer on a full send buffer; fd reuse after gh_close; select's
 * FD_SETSIZE limit; gh_use_hub errors; a third-party backend defined here;
 * and live backend swaps on a busy hub, through every backend in turn.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

#define HUB_CLOSES_CLEAN() assert_int_equal(gh_hub_close(), 0)
#define IO_TIMEOUT         (20 * GH_SEC) /* fail rather than hang */

static const char *backend_now(void)
{
    return gh_hub_backend(gh_get_hub());
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
    for (;;) {
        ssize_t n = write(fd, junk, sizeof junk);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    /* Small writes too, down to the last byte a pipe or socket takes. */
    for (;;) {
        ssize_t n = write(fd, junk, 1);
        if (n == 1) {
            total++;
            continue;
        }
        break;
    }
    return total;
}

static void drain_fd(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

/* ---------------------------------------------------------------- env */

static void test_conf_backend_from_env(void **state)
{
    (void)state;
    const char *want = getenv("GREENHUB_HUB");
    assert_non_null(want);
    assert_string_equal(backend_now(), want);
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_string_equal(st.backend, want);
    assert_int_equal(gh_hub_get_stats(NULL, &st), -EINVAL);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------- tasks, sleeps, timers */

typedef struct sleeper {
    int64_t ms;
    int64_t due;
    int64_t woke;
    int result;
} sleeper;

static void sleeper_task(void *arg)
{
    sleeper *s = arg;
    s->result = gh_sleep(s->ms * GH_MSEC);
    s->woke = gh_now();
}

static void stamp_cb(void *arg)
{
    *(int64_t *)arg = gh_now();
}

static void test_conf_tasks_sleeps_timers(void **state)
{
    (void)state;
    enum { N = 50 };
    sleeper s[N];
    int64_t fired[5] = {0};
    int64_t t0 = gh_now();
    for (int i = 0; i < N; i++) {
        s[i] = (sleeper){.ms = (i * 7) % 40, .result = 1};
        s[i].due = t0 + s[i].ms * GH_MSEC;
        assert_int_equal(gh_spawn_n(sleeper_task, &s[i]), 0);
    }
    for (int i = 0; i < 5; i++)
        gh_timer_release(gh_call_after(i * 9 * GH_MSEC, stamp_cb, &fired[i]));
    assert_int_equal(gh_hub_run(), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].result, 0);
        assert_true(s[i].woke >= s[i].due);
        assert_true(s[i].woke < s[i].due + 2 * GH_SEC);
    }
    for (int i = 0; i < 5; i++)
        assert_true(fired[i] >= t0 + i * 9 * GH_MSEC);
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_true(st.tasks_spawned >= N);
    assert_int_equal(st.tasks_live, 0);
    assert_true(st.switches >= 2 * N);
    assert_true(st.loop_iterations >= 1);
    assert_int_equal(st.timers_pending, 0);
    assert_int_equal(st.fd_waiters, 0);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------------ trampoline */

typedef struct waiter {
    int fd;
    int events;
    int64_t timeout;
    int result;
    int64_t woke;
    char buf[64];
    ssize_t nread;
} waiter;

static void tramp_task(void *arg)
{
    waiter *w = arg;
    w->result = gh_trampoline(w->fd, w->events, w->timeout);
    w->woke = gh_now();
}

static void read_task(void *arg)
{
    waiter *w = arg;
    w->nread = gh_read(w->fd, w->buf, sizeof w->buf, w->timeout);
    w->result = w->nread < 0 ? (int)w->nread : 0;
    w->woke = gh_now();
}

static void test_conf_pipe_read(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    waiter w = {.fd = p[0], .timeout = IO_TIMEOUT, .result = 1};
    gh_task *t = gh_spawn(read_task, &w);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(w.result, 1); /* still waiting: nothing to read */
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.fd_waiters, 1);
    assert_int_equal(st.tasks_live, 1);

    int64_t wrote = gh_now();
    assert_int_equal(write(p[1], "hello", 5), 5);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(w.result, 0);
    assert_int_equal(w.nread, 5);
    assert_memory_equal(w.buf, "hello", 5);
    assert_true(w.woke >= wrote);
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.fd_waiters, 0);
    gh_task_release(t);

    /* Data already there: no wait at all. */
    assert_int_equal(write(p[1], "ab", 2), 2);
    char buf[4];
    assert_int_equal(gh_read(p[0], buf, sizeof buf, 0), 2);
    assert_int_equal(gh_read(p[0], buf, sizeof buf, 0), -ETIMEDOUT);
    /* EOF reads as 0. */
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(gh_read(p[0], buf, sizeof buf, IO_TIMEOUT), 0);
    assert_int_equal(gh_close(p[0]), 0);
    HUB_CLOSES_CLEAN();
}

typedef struct big_writer {
    int fd;
    const char *data;
    size_t n;
    ssize_t result;
} big_writer;

static void big_write_task(void *arg)
{
    big_writer *b = arg;
    b->result = gh_write_all(b->fd, b->data, b->n, IO_TIMEOUT);
}

static void test_conf_pipe_write_full(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    size_t prefill = fill_fd(p[1]);
    assert_true(prefill > 0);

    enum { N = 300000 };
    char *data = malloc(N);
    assert_non_null(data);
    for (size_t i = 0; i < N; i++)
        data[i] = (char)(i * 31 + 7);
    big_writer b = {p[1], data, N, 1};
    gh_task *t = gh_spawn(big_write_task, &b);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_int_equal(b.result, 1); /* blocked on the full pipe */
    /* Write readiness with timeout 0 on a full pipe: not ready. */
    assert_int_equal(gh_trampoline(p[1], GH_WRITE, 0), -ETIMEDOUT);

    /* Drain the prefill, then read the payload as it comes, checking every byte. */
    char *buf = malloc(65536);
    assert_non_null(buf);
    size_t skip = prefill, got = 0;
    while (got < N) {
        ssize_t n = gh_read(p[0], buf, 65536, IO_TIMEOUT);
        assert_true(n > 0);
        size_t off = 0;
        if (skip) {
            size_t s = (size_t)n < skip ? (size_t)n : skip;
            skip -= s;
            off = s;
        }
        for (size_t i = off; i < (size_t)n; i++, got++)
            assert_int_equal((unsigned char)buf[i], (unsigned char)data[got]);
    }
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(b.result, N);
    gh_task_release(t);
    assert_int_equal(gh_trampoline(p[1], GH_WRITE, 0), 0);
    free(buf);
    free(data);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    HUB_CLOSES_CLEAN();
}

static void test_conf_timeouts_not_early(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    int64_t t0 = gh_now();
    assert_int_equal(gh_trampoline(p[0], GH_READ, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    t0 = gh_now();
    char c;
    assert_int_equal(gh_read(p[0], &c, 1, 25 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 25 * GH_MSEC);

    /* From a task, while another task sleeps past it. */
    waiter w = {.fd = p[0], .events = GH_READ, .timeout = 40 * GH_MSEC, .result = 1};
    sleeper s = {.ms = 60, .result = 1};
    t0 = gh_now();
    gh_task *a = gh_spawn(tramp_task, &w);
    gh_task *b = gh_spawn(sleeper_task, &s);
    assert_int_equal(gh_join(a, GH_FOREVER), 0);
    assert_int_equal(w.result, -ETIMEDOUT);
    assert_true(w.woke - t0 >= 40 * GH_MSEC);
    assert_int_equal(gh_join(b, GH_FOREVER), 0);
    assert_true(s.woke - t0 >= 60 * GH_MSEC);
    gh_task_release(a);
    gh_task_release(b);

    /* Timeout 0 polls: not ready, then ready. */
    assert_int_equal(gh_trampoline(p[0], GH_READ, 0), -ETIMEDOUT);
    assert_int_equal(gh_trampoline(p[1], GH_WRITE, 0), 0);
    assert_int_equal(write(p[1], "z", 1), 1);
    assert_int_equal(gh_trampoline(p[0], GH_READ, 0), 0);
    assert_int_equal(gh_trampoline(p[0], GH_READ, GH_SEC), 0);
    assert_int_equal(gh_trampoline(p[0], GH_READ | GH_WRITE, 0), 0);

    /* Argument errors. */
    assert_int_equal(gh_trampoline(-1, GH_READ, 0), -EBADF);
    assert_int_equal(gh_trampoline(p[0], 0, 0), -EINVAL);
    assert_int_equal(gh_trampoline(p[0], 4, 0), -EINVAL);
    assert_int_equal(gh_trampoline(p[0], GH_READ, -7), -EINVAL);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    HUB_CLOSES_CLEAN();
}

static void test_conf_ebusy_and_close_wakes_all(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fill_fd(sv[0]);
    waiter r = {.fd = sv[0], .events = GH_READ, .timeout = GH_FOREVER, .result = 1};
    waiter w = {.fd = sv[0], .events = GH_WRITE, .timeout = GH_FOREVER, .result = 1};
    gh_task *tr = gh_spawn(tramp_task, &r);
    gh_task *tw = gh_spawn(tramp_task, &w);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(r.result, 1);
    assert_int_equal(w.result, 1);

    /* A second waiter on either direction is refused; from a task too. */
    assert_int_equal(gh_trampoline(sv[0], GH_READ, GH_SEC), -EBUSY);
    assert_int_equal(gh_trampoline(sv[0], GH_WRITE, GH_SEC), -EBUSY);
    assert_int_equal(gh_trampoline(sv[0], GH_READ | GH_WRITE, GH_SEC), -EBUSY);
    waiter second = {.fd = sv[0], .events = GH_READ, .timeout = GH_SEC, .result = 1};
    gh_task *t2 = gh_spawn(tramp_task, &second);
    assert_int_equal(gh_join(t2, GH_FOREVER), 0);
    assert_int_equal(second.result, -EBUSY);
    gh_task_release(t2);
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.fd_waiters, 2);

    /* gh_close wakes both with -EBADF. */
    int64_t t0 = gh_now();
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_join(tr, GH_FOREVER), 0);
    assert_int_equal(gh_join(tw, GH_FOREVER), 0);
    assert_int_equal(r.result, -EBADF);
    assert_int_equal(w.result, -EBADF);
    assert_true(gh_now() - t0 < 5 * GH_SEC);
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.fd_waiters, 0);
    gh_task_release(tr);
    gh_task_release(tw);
    assert_int_equal(gh_close(sv[1]), 0);
    HUB_CLOSES_CLEAN();
}

static void test_conf_kill_waiter_frees_slot(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    waiter a = {.fd = p[0], .events = GH_READ, .timeout = GH_FOREVER, .result = 1};
    gh_task *ta = gh_spawn(tramp_task, &a);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_kill(ta), 0);
    assert_int_equal(gh_join(ta, GH_FOREVER), 0);
    assert_int_equal(a.result, -ECANCELED);
    gh_task_release(ta);

    /* The slot is free: another task waits there and is woken by data. */
    waiter b = {.fd = p[0], .timeout = IO_TIMEOUT, .result = 1};
    gh_task *tb = gh_spawn(read_task, &b);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(b.result, 1);
    assert_int_equal(write(p[1], "k", 1), 1);
    assert_int_equal(gh_join(tb, GH_FOREVER), 0);
    assert_int_equal(b.result, 0);
    assert_int_equal(b.nread, 1);
    assert_int_equal(b.buf[0], 'k');
    gh_task_release(tb);

    /* Timed out waiters free the slot too. */
    assert_int_equal(gh_trampoline(p[0], GH_READ, 5 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_trampoline(p[0], GH_READ, 5 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    HUB_CLOSES_CLEAN();
}

/* --------------------------------------------------------------- sockets */

#define BIG (4 * 1024 * 1024)

static unsigned char pattern(size_t i, unsigned seed)
{
    uint32_t x = (uint32_t)i * 2654435761u + seed;
    return (unsigned char)(x >> 24 ^ x);
}

typedef struct stream {
    int fd;
    unsigned seed;
    ssize_t result; /* writer: gh_write_all's result; reader: bytes checked, or errno */
    int mismatch;
    int eof_after; /* reader: the read after BIG bytes returned 0 */
} stream;

static void stream_writer(void *arg)
{
    stream *s = arg;
    unsigned char *buf = malloc(BIG);
    if (!buf) {
        s->result = -ENOMEM;
        return;
    }
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pattern(i, s->seed);
    s->result = gh_write_all(s->fd, buf, BIG, IO_TIMEOUT);
    free(buf);
}

static void stream_reader(void *arg)
{
    stream *s = arg;
    unsigned char *buf = malloc(65536);
    size_t got = 0;
    if (!buf) {
        s->result = -ENOMEM;
        return;
    }
    while (got < BIG) {
        ssize_t n = gh_read(s->fd, buf, 65536, IO_TIMEOUT);
        if (n <= 0) {
            s->result = n == 0 ? -EPIPE : n;
            free(buf);
            return;
        }
        for (ssize_t i = 0; i < n; i++, got++)
            if (buf[i] != pattern(got, s->seed))
                s->mismatch++;
    }
    s->result = (ssize_t)got;
    free(buf);
}

typedef struct acceptor {
    int lfd;
    int fd;
} acceptor;

static void accept_task(void *arg)
{
    acceptor *a = arg;
    a->fd = gh_accept(a->lfd, IO_TIMEOUT);
}

static int listen_port(int lfd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

static void test_conf_sockets_loopback(void **state)
{
    (void)state;
    int lfd = gh_listen("127.0.0.1", 0, 16);
    assert_true(lfd >= 0);
    int port = listen_port(lfd);
    assert_true(port > 0);

    acceptor a = {lfd, -1};
    gh_task *ta = gh_spawn(accept_task, &a);
    int cfd = gh_connect("127.0.0.1", port, IO_TIMEOUT);
    assert_true(cfd >= 0);
    assert_int_equal(gh_join(ta, GH_FOREVER), 0);
    gh_task_release(ta);
    int sfd = a.fd;
    assert_true(sfd >= 0);

    /* 4 MiB each way at once; one reader and one writer per fd. */
    stream cw = {cfd, 1, 1, 0, 0}, cr = {cfd, 2, 1, 0, 0};
    stream sw = {sfd, 2, 1, 0, 0}, sr = {sfd, 1, 1, 0, 0};
    gh_task *t[4] = {gh_spawn(stream_writer, &cw), gh_spawn(stream_reader, &cr),
                     gh_spawn(stream_writer, &sw), gh_spawn(stream_reader, &sr)};
    for (int i = 0; i < 4; i++) {
        assert_non_null(t[i]);
        assert_int_equal(gh_join(t[i], GH_FOREVER), 0);
        gh_task_release(t[i]);
    }
    assert_int_equal(cw.result, BIG);
    assert_int_equal(sw.result, BIG);
    assert_int_equal(cr.result, BIG);
    assert_int_equal(sr.result, BIG);
    assert_int_equal(cr.mismatch, 0);
    assert_int_equal(sr.mismatch, 0);

    /* Peer close: the blocked reader sees EOF (0). */
    waiter w = {.fd = sfd, .timeout = IO_TIMEOUT, .result = 1};
    gh_task *tw = gh_spawn(read_task, &w);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(w.result, 1);
    assert_int_equal(gh_close(cfd), 0);
    assert_int_equal(gh_join(tw, GH_FOREVER), 0);
    assert_int_equal(w.result, 0);
    assert_int_equal(w.nread, 0);
    gh_task_release(tw);
    /* Writing to the closed peer fails with an error, not SIGPIPE. */
    char junk[65536] = {0};
    ssize_t wr = 0;
    for (int i = 0; i < 64 && wr >= 0; i++)
        wr = gh_write_all(sfd, junk, sizeof junk, IO_TIMEOUT);
    assert_true(wr == -EPIPE || wr == -ECONNRESET);
    assert_int_equal(gh_close(sfd), 0);

    /* Accept with a timeout, nothing coming. */
    int64_t t0 = gh_now();
    assert_int_equal(gh_accept(lfd, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_close(lfd), 0);

    /* The port is closed now: connect is refused. */
    assert_int_equal(gh_connect("127.0.0.1", port, IO_TIMEOUT), -ECONNREFUSED);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------------ half-close */

typedef struct hc_writer {
    int fd;
    int wakeups;  /* gh_trampoline(GH_WRITE) returned 0 */
    int spurious; /* ... and send still said EAGAIN */
    int result;   /* 1 once a send got through, a negative errno, 0 while waiting */
} hc_writer;

static void hc_writer_task(void *arg)
{
    hc_writer *w = arg;
    static const char junk[4096];
    for (;;) {
        int r = gh_trampoline(w->fd, GH_WRITE, IO_TIMEOUT);
        if (r < 0) {
            w->result = r;
            return;
        }
        w->wakeups++;
        ssize_t n = send(w->fd, junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
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

/* Fill @fd's send buffer and let it settle (TCP acks free room for a while). */
static void fill_send_settled(int fd)
{
    fill_fd(fd);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
        if (fill_fd(fd) == 0)
            return;
    }
    fail_msg("the send buffer never stayed full");
}

static void half_close_case(int fd, int peer)
{
    fill_send_settled(fd);
    waiter r = {.fd = fd, .timeout = IO_TIMEOUT, .result = 1};
    hc_writer w = {.fd = fd};
    gh_task *tr = gh_spawn(read_task, &r);
    gh_task *tw = gh_spawn(hc_writer_task, &w);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(r.result, 1);
    assert_int_equal(w.result, 0);
    gh_hub_stats st0, st1;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st0), 0);
    assert_int_equal(st0.fd_waiters, 2);

    /* The peer half-closes: the reader gets EOF, the writer stays asleep. */
    int64_t shut = gh_now();
    assert_int_equal(shutdown(peer, SHUT_WR), 0);
    assert_int_equal(gh_join(tr, 5 * GH_SEC), 0);
    gh_task_release(tr);
    assert_int_equal(r.result, 0);
    assert_int_equal(r.nread, 0);
    assert_true(r.woke >= shut);
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    assert_int_equal(gh_sleep(200 * GH_MSEC), 0);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st1), 0);
    assert_int_equal(w.result, 0);
    assert_int_equal(w.wakeups, 0);
    assert_int_equal(w.spurious, 0);
    assert_int_equal(st1.fd_waiters, 1);
    /* A busy loop would be thousands of iterations in 200 ms, or, inside
     * the backend's poll, 200 ms of CPU. */
    int64_t cpu = (c1.tv_sec - c0.tv_sec) * GH_SEC + (c1.tv_nsec - c0.tv_nsec);
    if (cpu > 50 * GH_MSEC)
        fail_msg("%s: the hub used %lld ms of CPU in 200 ms with a writer on a full buffer",
                 backend_now(), (long long)(cpu / GH_MSEC));
    if (st1.loop_iterations - st0.loop_iterations > 50)
        fail_msg("%s: %llu loop iterations in 200 ms with a writer on a full buffer", backend_now(),
                 (unsigned long long)(st1.loop_iterations - st0.loop_iterations));

    /* The peer reads: room, and the writer gets through. */
    int64_t end = gh_now() + 10 * GH_SEC;
    while (w.result == 0 && gh_now() < end) {
        drain_fd(peer);
        assert_int_equal(gh_sleep(2 * GH_MSEC), 0);
    }
    assert_int_equal(gh_join(tw, GH_SEC), 0);
    gh_task_release(tw);
    assert_int_equal(w.result, 1);
    assert_int_equal(w.spurious, 0);
}

static void test_conf_half_close_wakes_reader_only(void **state)
{
    (void)state;
    /* A socketpair... */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    half_close_case(sv[0], sv[1]);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);

    /* ...and TCP on loopback. */
    int lfd = gh_listen("127.0.0.1", 0, 4);
    assert_true(lfd >= 0);
    acceptor a = {lfd, -1};
    gh_task *ta = gh_spawn(accept_task, &a);
    int cfd = gh_connect("127.0.0.1", listen_port(lfd), IO_TIMEOUT);
    assert_true(cfd >= 0);
    assert_int_equal(gh_join(ta, GH_FOREVER), 0);
    gh_task_release(ta);
    assert_true(a.fd >= 0);
    half_close_case(a.fd, cfd);
    assert_int_equal(gh_close(a.fd), 0);
    assert_int_equal(gh_close(cfd), 0);
    assert_int_equal(gh_close(lfd), 0);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------- fd reuse, FD_SETSIZE */

static void test_conf_fd_reused_after_close(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        int p[2];
        make_pipe(p);
        /* Leave interest registered with the backend (a reader that was served). */
        waiter w = {.fd = p[0], .timeout = IO_TIMEOUT, .result = 1};
        gh_task *t = gh_spawn(read_task, &w);
        assert_int_equal(gh_yield(), 0);
        assert_int_equal(write(p[1], "1", 1), 1);
        assert_int_equal(gh_join(t, GH_FOREVER), 0);
        assert_int_equal(w.nread, 1);
        gh_task_release(t);
        int old = p[0];
        assert_int_equal(gh_close(p[0]), 0);

        /* The lowest free number is reused at once (POSIX). */
        int q[2];
        make_pipe(q);
        assert_int_equal(q[0], old);
        waiter w2 = {.fd = q[0], .timeout = IO_TIMEOUT, .result = 1};
        t = gh_spawn(read_task, &w2);
        assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
        assert_int_equal(w2.result, 1); /* no stale readiness from the old pipe */
        assert_int_equal(write(q[1], "2", 1), 1);
        assert_int_equal(gh_join(t, GH_FOREVER), 0);
        assert_int_equal(w2.nread, 1);
        assert_int_equal(w2.buf[0], '2');
        gh_task_release(t);
        assert_int_equal(gh_close(q[0]), 0);
        assert_int_equal(gh_close(q[1]), 0);
        assert_int_equal(gh_close(p[1]), 0);
    }
    HUB_CLOSES_CLEAN();
}

/*
 * Regular files and directories are always ready, as poll(2) has it, on
 * every backend: epoll refuses them (EPERM), the others report them ready.
 */
static void test_conf_regular_file_always_ready(void **state)
{
    (void)state;
    char path[] = "/tmp/greenhub-conf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, "abc", 3), 3);
    assert_int_equal(gh_trampoline(fd, GH_READ, GH_SEC), 0);
    assert_int_equal(gh_trampoline(fd, GH_WRITE, GH_SEC), 0);
    assert_int_equal(gh_trampoline(fd, GH_READ | GH_WRITE, GH_FOREVER), 0);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    char buf[8];
    assert_int_equal(gh_read(fd, buf, sizeof buf, GH_SEC), 3);
    assert_int_equal(gh_close(fd), 0);

    int dfd = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    assert_int_equal(gh_trampoline(dfd, GH_READ, GH_SEC), 0);
    assert_int_equal(gh_close(dfd), 0);
    HUB_CLOSES_CLEAN();
}

static void test_conf_select_fd_setsize(void **state)
{
    (void)state;
    int p[2];
    make_pipe(p);
    int big = 5000;
    assert_true(big >= FD_SETSIZE);
    assert_int_equal(dup2(p[0], big), big);
    int is_select = strcmp(backend_now(), "select") == 0;
    int r = gh_trampoline(big, GH_READ, 10 * GH_MSEC);
    if (is_select) {
        assert_int_equal(r, -EINVAL);
        /* The hub is intact: a small fd still works. */
        assert_int_equal(write(p[1], "s", 1), 1);
        assert_int_equal(gh_trampoline(p[0], GH_READ, IO_TIMEOUT), 0);
    } else {
        assert_int_equal(r, -ETIMEDOUT);
        assert_int_equal(write(p[1], "s", 1), 1);
        assert_int_equal(gh_trampoline(big, GH_READ, IO_TIMEOUT), 0);
    }
    assert_int_equal(gh_close(big), 0);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------- a third-party backend */

/*
 * "test-poll": the smallest backend that keeps the contract, on poll(2).
 * A flat array of (fd, interest); poll copies what fired before reporting,
 * and re-checks the interest at report time (the callback may call watch).
 */
typedef struct tp_state {
    struct pollfd *pfds;
    int n, cap;
    int polls; /* how many times the hub polled through us */
} tp_state;

static int tp_polls_total;

static int tp_init(void **state)
{
    tp_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    *state = s;
    return 0;
}

static void tp_destroy(void *state)
{
    tp_state *s = state;
    free(s->pfds);
    free(s);
}

static int tp_find(tp_state *s, int fd)
{
    for (int i = 0; i < s->n; i++)
        if (s->pfds[i].fd == fd)
            return i;
    return -1;
}

static int tp_watch(void *state, int fd, int old_events, int new_events)
{
    tp_state *s = state;
    (void)old_events;
    if (fd < 0)
        return -EBADF;
    int i = tp_find(s, fd);
    if (new_events == 0) {
        if (i >= 0)
            s->pfds[i] = s->pfds[--s->n];
        return 0;
    }
    if (i < 0) {
        if (s->n == s->cap) {
            int cap = s->cap ? s->cap * 2 : 16;
            struct pollfd *p = realloc(s->pfds, (size_t)cap * sizeof *p);
            if (!p)
                return -ENOMEM;
            s->pfds = p;
            s->cap = cap;
        }
        i = s->n++;
        s->pfds[i].fd = fd;
    }
    s->pfds[i].events =
        (short)(((new_events & GH_READ) ? POLLIN : 0) | ((new_events & GH_WRITE) ? POLLOUT : 0));
    s->pfds[i].revents = 0;
    return 0;
}

static int tp_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    tp_state *s = state;
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / GH_SEC);
        ts.tv_nsec = (long)(timeout_ns % GH_SEC);
        tsp = &ts;
    }
    s->polls++;
    tp_polls_total++;
    int n = ppoll(s->pfds, (nfds_t)s->n, tsp, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return 0;
    struct pollfd fired[n];
    int nf = 0;
    for (int i = 0; i < s->n && nf < n; i++)
        if (s->pfds[i].revents)
            fired[nf++] = s->pfds[i];
    int reported = 0;
    for (int k = 0; k < nf; k++) {
        int i = tp_find(s, fired[k].fd);
        if (i < 0)
            continue; /* forgotten by an earlier callback */
        int interest = ((s->pfds[i].events & POLLIN) ? GH_READ : 0) |
                       ((s->pfds[i].events & POLLOUT) ? GH_WRITE : 0);
        int ev;
        if (fired[k].revents & (POLLERR | POLLHUP | POLLNVAL))
            ev = interest;
        else
            ev = (((fired[k].revents & POLLIN) ? GH_READ : 0) |
                  ((fired[k].revents & POLLOUT) ? GH_WRITE : 0)) &
                 interest;
        if (ev) {
            ready(ctx, fired[k].fd, ev);
            reported++;
        }
    }
    return reported;
}

static const gh_backend_ops test_poll_backend = {
    .abi = GH_BACKEND_ABI,
    .name = "test-poll",
    .init = tp_init,
    .destroy = tp_destroy,
    .watch = tp_watch,
    .poll = tp_poll,
};

static int refuse_init(void **state)
{
    (void)state;
    return -ENOSYS;
}

static const gh_backend_ops refusing_backend = {
    .abi = GH_BACKEND_ABI,
    .name = "refusing",
    .init = refuse_init,
    .destroy = tp_destroy,
    .watch = tp_watch,
    .poll = tp_poll,
};

static const gh_backend_ops wrong_abi_backend = {
    .abi = GH_BACKEND_ABI + 100,
    .name = "wrong-abi",
    .init = tp_init,
    .destroy = tp_destroy,
    .watch = tp_watch,
    .poll = tp_poll,
};

static void test_conf_use_hub_errors(void **state)
{
    (void)state;
    const char *was = backend_now();
    int p[2];
    make_pipe(p);
    waiter w = {.fd = p[0], .timeout = IO_TIMEOUT, .result = 1};
    gh_task *t = gh_spawn(read_task, &w);
    assert_int_equal(gh_yield(), 0);

    assert_int_equal(gh_use_hub("no-such-backend"), -ENOENT);
    assert_string_equal(backend_now(), was);
    assert_int_equal(gh_use_hub_backend(NULL), -EINVAL);
    assert_int_equal(gh_use_hub_backend(&wrong_abi_backend), -EINVAL);
    assert_string_equal(backend_now(), was);
    assert_int_equal(gh_use_hub_backend(&refusing_backend), -ENOSYS);
    assert_string_equal(backend_now(), was);
    /* The same backend again: nothing to do. */
    assert_int_equal(gh_use_hub(was), 0);
    assert_string_equal(backend_now(), was);

    /* The waiter survived all of it. */
    assert_int_equal(w.result, 1);
    assert_int_equal(write(p[1], "u", 1), 1);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(w.nread, 1);
    gh_task_release(t);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    HUB_CLOSES_CLEAN();
}

static void test_conf_third_party_backend(void **state)
{
    (void)state;
    const char *was = backend_now();
    enum { NP = 4 };
    int p[NP][2];
    waiter w[NP];
    gh_task *t[NP];
    for (int i = 0; i < NP; i++) {
        make_pipe(p[i]);
        w[i] = (waiter){.fd = p[i][0], .timeout = IO_TIMEOUT, .result = 1};
        t[i] = gh_spawn(read_task, &w[i]);
    }
    sleeper s = {.ms = 40, .result = 1};
    gh_task *ts = gh_spawn(sleeper_task, &s);
    int64_t fired = 0;
    int64_t t0 = gh_now();
    s.due = t0 + 40 * GH_MSEC;
    gh_timer_release(gh_call_after(30 * GH_MSEC, stamp_cb, &fired));
    assert_int_equal(gh_yield(), 0);

    /* Switch to it: every waiter and timer carried over. */
    int polls_before = tp_polls_total;
    assert_int_equal(gh_use_hub_backend(&test_poll_backend), 0);
    assert_string_equal(backend_now(), "test-poll");
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_string_equal(st.backend, "test-poll");
    assert_int_equal(st.fd_waiters, NP);

    assert_int_equal(write(p[0][1], "a", 1), 1);
    assert_int_equal(write(p[1][1], "b", 1), 1);
    assert_int_equal(gh_join(t[0], GH_FOREVER), 0);
    assert_int_equal(gh_join(t[1], GH_FOREVER), 0);
    assert_int_equal(w[0].buf[0], 'a');
    assert_int_equal(w[1].buf[0], 'b');
    assert_int_equal(w[2].result, 1);
    assert_int_equal(gh_join(ts, GH_FOREVER), 0);
    assert_true(s.woke >= s.due);
    assert_true(fired >= t0 + 30 * GH_MSEC);
    assert_true(tp_polls_total > polls_before);

    /* And back, with the other two still waiting. */
    assert_int_equal(gh_use_hub(was), 0);
    assert_string_equal(backend_now(), was);
    polls_before = tp_polls_total;
    assert_int_equal(write(p[2][1], "c", 1), 1);
    assert_int_equal(write(p[3][1], "d", 1), 1);
    assert_int_equal(gh_join(t[2], GH_FOREVER), 0);
    assert_int_equal(gh_join(t[3], GH_FOREVER), 0);
    assert_int_equal(w[2].buf[0], 'c');
    assert_int_equal(w[3].buf[0], 'd');
    assert_int_equal(tp_polls_total, polls_before); /* test-poll is gone */
    for (int i = 0; i < NP; i++) {
        assert_int_equal(w[i].nread, 1);
        gh_task_release(t[i]);
        assert_int_equal(gh_close(p[i][0]), 0);
        assert_int_equal(gh_close(p[i][1]), 0);
    }
    gh_task_release(ts);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------ live swap on a busy hub */

enum { SW_PIPES = 3, SW_SLEEPERS = 4, SW_TIMERS = 3 };
#define SW_STEP (25 * GH_MSEC)

typedef struct swap_event {
    int64_t due;  /* when its trigger is due */
    int64_t woke; /* when the task (or timer) saw it; 0 = not yet */
    int result;
} swap_event;

typedef struct swap_ctx {
    int pipes[SW_PIPES][2];
    int full[2]; /* a pipe kept full; a writer waits on it */
    int sock_c, sock_s;
    swap_event pipe_ev[SW_PIPES], sock_ev, full_ev, sleep_ev[SW_SLEEPERS], timer_ev[SW_TIMERS];
    int64_t sleep_ms[SW_SLEEPERS];
    char got[SW_PIPES + 1];
} swap_ctx;

static swap_ctx *swc;

typedef struct swap_arg {
    int kind; /* 0 pipe, 1 socket, 2 full-pipe writer, 3 sleeper */
    int i;
} swap_arg;

static void swap_task(void *arg)
{
    swap_arg *a = arg;
    swap_ctx *c = swc;
    char b = 0;
    switch (a->kind) {
    case 0: {
        ssize_t n = gh_read(c->pipes[a->i][0], &b, 1, IO_TIMEOUT);
        c->pipe_ev[a->i].result = (int)n;
        c->got[a->i] = b;
        c->pipe_ev[a->i].woke = gh_now();
        break;
    }
    case 1: {
        ssize_t n = gh_read(c->sock_s, &b, 1, IO_TIMEOUT);
        c->sock_ev.result = n == 1 && b == 'S' ? 1 : (int)n - 1000;
        c->sock_ev.woke = gh_now();
        break;
    }
    case 2: {
        static const char more[4096];
        c->full_ev.result = (int)gh_write_all(c->full[1], more, sizeof more, IO_TIMEOUT);
        c->full_ev.woke = gh_now();
        break;
    }
    case 3:
        c->sleep_ev[a->i].result = gh_sleep(c->sleep_ms[a->i] * GH_MSEC);
        c->sleep_ev[a->i].woke = gh_now();
        break;
    }
}

/* Timer callbacks trigger the fd events at known times (raw syscalls, never blocking). */
static void trig_pipe(void *arg)
{
    int i = (int)(intptr_t)arg;
    ssize_t w = write(swc->pipes[i][1], "0123" + i, 1);
    (void)w;
}

static void trig_sock(void *arg)
{
    (void)arg;
    ssize_t w = send(swc->sock_c, "S", 1, MSG_NOSIGNAL);
    (void)w;
}

static void trig_full(void *arg)
{
    (void)arg;
    drain_fd(swc->full[0]);
}

static void trig_timer(void *arg)
{
    swap_event *e = arg;
    e->woke = gh_now();
    e->result = 1;
}

static int swap_to(const char *name)
{
    int r = gh_use_hub(name);
    if ((r == -ENOSYS || r == -EPERM) && strcmp(name, "io_uring") == 0) {
        print_message("skipping the swap to io_uring: %s\n", gh_strerror(r));
        return 0;
    }
    assert_int_equal(r, 0);
    assert_string_equal(backend_now(), name);
    return 1;
}

static void test_conf_live_swap_busy_hub(void **state)
{
    (void)state;
    static swap_ctx c;
    memset(&c, 0, sizeof c);
    swc = &c;
    const char *home = backend_now();

    /* Everything blocked at once: pipes, a socket, a full pipe, sleepers, timers. */
    for (int i = 0; i < SW_PIPES; i++)
        make_pipe(c.pipes[i]);
    make_pipe(c.full);
    fill_fd(c.full[1]);
    int lfd = gh_listen("127.0.0.1", 0, 4);
    assert_true(lfd >= 0);
    acceptor a = {lfd, -1};
    gh_task *ta = gh_spawn(accept_task, &a);
    c.sock_c = gh_connect("127.0.0.1", listen_port(lfd), IO_TIMEOUT);
    assert_true(c.sock_c >= 0);
    assert_int_equal(gh_join(ta, GH_FOREVER), 0);
    gh_task_release(ta);
    c.sock_s = a.fd;
    assert_true(c.sock_s >= 0);

    int64_t t0 = gh_now();
    /* Events due one step apart, interleaved with the swaps below. */
    int step = 1;
    static swap_arg args[SW_PIPES + 2 + SW_SLEEPERS];
    gh_task *tasks[SW_PIPES + 2 + SW_SLEEPERS];
    int nt = 0;
    for (int i = 0; i < SW_PIPES; i++) {
        c.pipe_ev[i] = (swap_event){t0 + step++ * SW_STEP, 0, -1000};
        gh_timer_release(gh_call_at(c.pipe_ev[i].due, trig_pipe, (void *)(intptr_t)i));
        args[nt] = (swap_arg){0, i};
        tasks[nt] = gh_spawn(swap_task, &args[nt]);
        nt++;
    }
    c.sock_ev = (swap_event){t0 + step++ * SW_STEP, 0, -1000};
    gh_timer_release(gh_call_at(c.sock_ev.due, trig_sock, NULL));
    args[nt] = (swap_arg){1, 0};
    tasks[nt] = gh_spawn(swap_task, &args[nt]);
    nt++;
    c.full_ev = (swap_event){t0 + step++ * SW_STEP, 0, -1000};
    gh_timer_release(gh_call_at(c.full_ev.due, trig_full, NULL));
    args[nt] = (swap_arg){2, 0};
    tasks[nt] = gh_spawn(swap_task, &args[nt]);
    nt++;
    for (int i = 0; i < SW_SLEEPERS; i++) {
        int64_t at = step++ * SW_STEP;
        c.sleep_ms[i] = at / GH_MSEC;
        c.sleep_ev[i] = (swap_event){t0 + at, 0, -1000};
        args[nt] = (swap_arg){3, i};
        tasks[nt] = gh_spawn(swap_task, &args[nt]);
        nt++;
    }
    for (int i = 0; i < SW_TIMERS; i++) {
        c.timer_ev[i] = (swap_event){t0 + step++ * SW_STEP, 0, 0};
        gh_timer_release(gh_call_at(c.timer_ev[i].due, trig_timer, &c.timer_ev[i]));
    }
    int last_step = step - 1;
    assert_int_equal(gh_yield(), 0);

    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.fd_waiters, SW_PIPES + 2);
    assert_int_equal(st.tasks_live, (uint64_t)nt);
    assert_int_equal(st.timers_pending, SW_PIPES + 2 + SW_TIMERS);

    /* Swap through every backend, again and again, half a step apart, until all is done. */
    const gh_backend_ops *const *list = gh_backend_list();
    int nb = 0;
    while (list[nb])
        nb++;
    int swaps = 0;
    int64_t end = t0 + (last_step + 1) * SW_STEP;
    for (int k = 0; gh_now() < end || k < 2 * nb; k++) {
        const char *name = list[k % nb]->name;
        if (strcmp(name, backend_now()) == 0)
            continue;
        swaps += swap_to(name);
        /* Nothing woke before its time, whatever backend it went to sleep on. */
        for (int i = 0; i < SW_PIPES; i++)
            assert_true(c.pipe_ev[i].woke == 0 || c.pipe_ev[i].woke >= c.pipe_ev[i].due);
        assert_int_equal(gh_sleep(SW_STEP / 2), 0);
    }
    assert_true(swaps >= nb - 1);
    if (strcmp(backend_now(), home) != 0)
        swap_to(home);
    assert_string_equal(backend_now(), home);
    for (int i = 0; i < nt; i++) {
        assert_int_equal(gh_join(tasks[i], 10 * GH_SEC), 0);
        gh_task_release(tasks[i]);
    }
    assert_int_equal(gh_hub_run(), 0);

    /* Every one woke once, with the right result, not early, not absurdly late. */
    for (int i = 0; i < SW_PIPES; i++) {
        assert_int_equal(c.pipe_ev[i].result, 1);
        assert_int_equal(c.got[i], "0123"[i]);
        assert_true(c.pipe_ev[i].woke >= c.pipe_ev[i].due);
        assert_true(c.pipe_ev[i].woke < c.pipe_ev[i].due + 2 * GH_SEC);
    }
    swap_event *single[] = {&c.sock_ev, &c.full_ev};
    assert_int_equal(c.sock_ev.result, 1);
    assert_int_equal(c.full_ev.result, 4096);
    for (int i = 0; i < 2; i++) {
        assert_true(single[i]->woke >= single[i]->due);
        assert_true(single[i]->woke < single[i]->due + 2 * GH_SEC);
    }
    for (int i = 0; i < SW_SLEEPERS; i++) {
        assert_int_equal(c.sleep_ev[i].result, 0);
        assert_true(c.sleep_ev[i].woke >= c.sleep_ev[i].due);
        assert_true(c.sleep_ev[i].woke < c.sleep_ev[i].due + 2 * GH_SEC);
    }
    for (int i = 0; i < SW_TIMERS; i++) {
        assert_int_equal(c.timer_ev[i].result, 1);
        assert_true(c.timer_ev[i].woke >= c.timer_ev[i].due);
        assert_true(c.timer_ev[i].woke < c.timer_ev[i].due + 2 * GH_SEC);
    }
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.fd_waiters, 0);
    assert_int_equal(st.tasks_live, 0);
    assert_int_equal(st.timers_pending, 0);

    for (int i = 0; i < SW_PIPES; i++) {
        assert_int_equal(gh_close(c.pipes[i][0]), 0);
        assert_int_equal(gh_close(c.pipes[i][1]), 0);
    }
    assert_int_equal(gh_close(c.full[0]), 0);
    assert_int_equal(gh_close(c.full[1]), 0);
    assert_int_equal(gh_close(c.sock_c), 0);
    assert_int_equal(gh_close(c.sock_s), 0);
    assert_int_equal(gh_close(lfd), 0);
    HUB_CLOSES_CLEAN();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_backend_from_env),
        cmocka_unit_test(test_conf_tasks_sleeps_timers),
        cmocka_unit_test(test_conf_pipe_read),
        cmocka_unit_test(test_conf_pipe_write_full),
        cmocka_unit_test(test_conf_timeouts_not_early),
        cmocka_unit_test(test_conf_ebusy_and_close_wakes_all),
        cmocka_unit_test(test_conf_kill_waiter_frees_slot),
        cmocka_unit_test(test_conf_sockets_loopback),
        cmocka_unit_test(test_conf_half_close_wakes_reader_only),
        cmocka_unit_test(test_conf_fd_reused_after_close),
        cmocka_unit_test(test_conf_regular_file_always_ready),
        cmocka_unit_test(test_conf_select_fd_setsize),
        cmocka_unit_test(test_conf_use_hub_errors),
        cmocka_unit_test(test_conf_third_party_backend),
        cmocka_unit_test(test_conf_live_swap_busy_hub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
