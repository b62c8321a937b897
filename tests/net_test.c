/*
 * net_test.c — green sockets on loopback, run once per backend: gh_recv,
 * gh_send, gh_readv, gh_writev, gh_sendfile, gh_listen (IPv4, IPv6, reuse),
 * gh_connect (literals and host names through gh_getaddrinfo's helper
 * threads), each call's success and error paths, and a peer that resets the
 * connection in the middle of a write (-ECONNRESET or -EPIPE, never SIGPIPE).
 *
 * cmocka's assertions longjmp, which must not happen on a task's stack:
 * tasks record the first failed check (TCHECK) and the test asserts on it
 * from the root. Every test ends by closing the hub and asserting it closes
 * clean.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
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
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

/* Internal (hub/resolve.h): the function the resolver threads call. */
typedef int (*gh__getaddrinfo_fn)(const char *host, const char *service,
                                  const struct addrinfo *hints, struct addrinfo **res);
extern gh__getaddrinfo_fn gh__resolve_getaddrinfo;

#define HUB_CLOSES_CLEAN() assert_int_equal(gh_hub_close(), 0)

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

/* ------------------------------------------------------------ helpers */

static int task_fail_line;
static char task_fail_what[200];

/* A check on a task's stack: remember the first failure for the root. */
#define TCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond) && !task_fail_line) {                                                          \
            task_fail_line = __LINE__;                                                             \
            snprintf(task_fail_what, sizeof task_fail_what, "%s", #cond);                          \
        }                                                                                          \
    } while (0)

#define TASKS_OK()                                                                                 \
    do {                                                                                           \
        if (task_fail_line)                                                                        \
            fail_msg("check in a task failed at line %d: %s", task_fail_line, task_fail_what);     \
    } while (0)

static int setup(void **state)
{
    (void)state;
    task_fail_line = 0;
    task_fail_what[0] = 0;
    /* A SIGPIPE anywhere in these tests would kill the process: the default. */
    signal(SIGPIPE, SIG_DFL);
    return 0;
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A connected loopback TCP pair: *a from gh_connect, *b from gh_accept. */
static void tcp_pair(int *a, int *b)
{
    int lfd = gh_listen("127.0.0.1", 0, 16);
    assert_true(lfd >= 0);
    int port = local_port(lfd);
    assert_true(port > 0);
    *a = gh_connect("127.0.0.1", port, 5 * GH_SEC);
    assert_true(*a >= 0);
    *b = gh_accept(lfd, 5 * GH_SEC);
    assert_true(*b >= 0);
    assert_int_equal(gh_close(lfd), 0);
}

/* Small kernel buffers, so that a writer fills them quickly. */
static void small_buffers(int fd)
{
    int sz = 16 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

/*
 * Send until the kernel refuses more, and still refuses after a pause (late
 * ACKs can free send-buffer space for a moment). @return bytes queued.
 */
static size_t fill_socket(int fd)
{
    static char junk[64 * 1024];
    size_t total = 0;
    for (;;) {
        ssize_t r = gh_send(fd, junk, sizeof junk, 0, 0);
        if (r > 0) {
            total += (size_t)r;
            continue;
        }
        assert_int_equal(r, -ETIMEDOUT);
        assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
        r = gh_send(fd, junk, sizeof junk, 0, 0);
        if (r == -ETIMEDOUT)
            return total;
        assert_true(r > 0);
        total += (size_t)r;
    }
}

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void fill_pattern(uint8_t *p, size_t n, size_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_byte(offset + i);
}

/* A task that reads @n pattern bytes from @fd and checks every one. */
typedef struct drain_arg {
    int fd;
    size_t n; /* expected bytes; SIZE_MAX: until EOF */
    size_t got;
    bool check;    /* compare with the pattern */
    int64_t delay; /* sleep first */
    ssize_t last;  /* the last gh_read result */
} drain_arg;

static void drain_task(void *arg)
{
    drain_arg *d = arg;
    uint8_t buf[32 * 1024];
    if (d->delay)
        gh_sleep(d->delay);
    while (d->got < d->n) {
        size_t want = sizeof buf;
        if (d->n != SIZE_MAX && d->n - d->got < want)
            want = d->n - d->got;
        ssize_t r = gh_read(d->fd, buf, want, 10 * GH_SEC);
        d->last = r;
        if (r <= 0)
            return;
        if (d->check)
            for (ssize_t i = 0; i < r; i++)
                if (buf[i] != pattern_byte(d->got + (size_t)i)) {
                    TCHECK(!"byte mismatch");
                    return;
                }
        d->got += (size_t)r;
    }
}

/* ------------------------------------------------------- recv / send */

static void test_net_recv_send_basics(void **state)
{
    (void)state;
    int a, b;
    tcp_pair(&a, &b);
    char buf[64];

    assert_int_equal(gh_send(a, "hello", 5, 0, GH_SEC), 5);
    assert_int_equal(gh_send(a, "", 0, 0, GH_SEC), 0);
    /* MSG_PEEK leaves the bytes for the next recv. */
    assert_int_equal(gh_recv(b, buf, 2, MSG_PEEK, GH_SEC), 2);
    assert_memory_equal(buf, "he", 2);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 5);
    assert_memory_equal(buf, "hello", 5);

    /* Nothing there: timeout 0 polls, a timeout waits at least that long. */
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 0), -ETIMEDOUT);
    int64_t t0 = gh_now();
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 50 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 50 * GH_MSEC);

    /* Argument errors. */
    assert_int_equal(gh_recv(-1, buf, sizeof buf, 0, GH_SEC), -EBADF);
    assert_int_equal(gh_send(-1, buf, 1, 0, GH_SEC), -EBADF);
    assert_int_equal(gh_recv(b, NULL, 4, 0, GH_SEC), -EINVAL);
    assert_int_equal(gh_send(a, NULL, 4, 0, GH_SEC), -EINVAL);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, -2), -EINVAL);
    assert_int_equal(gh_send(a, buf, 1, 0, -5), -EINVAL);

    /* A pipe is not a socket. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_int_equal(gh_recv(p[0], buf, sizeof buf, 0, GH_SEC), -ENOTSOCK);
    assert_int_equal(gh_send(p[1], "x", 1, 0, GH_SEC), -ENOTSOCK);
    gh_close(p[0]);
    gh_close(p[1]);

    /* EOF after the peer's shutdown. */
    assert_int_equal(shutdown(a, SHUT_WR), 0);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 0);

    assert_int_equal(gh_close(a), 0);
    assert_int_equal(gh_close(b), 0);
    HUB_CLOSES_CLEAN();
}

typedef struct later_send {
    int fd;
    int64_t delay;
    const char *msg;
} later_send;

static void later_send_task(void *arg)
{
    later_send *l = arg;
    gh_sleep(l->delay);
    TCHECK(gh_send(l->fd, l->msg, strlen(l->msg), 0, GH_SEC) == (ssize_t)strlen(l->msg));
}

static void test_net_recv_waits_green(void **state)
{
    (void)state;
    int a, b;
    tcp_pair(&a, &b);
    later_send l = {a, 30 * GH_MSEC, "late"};
    gh_task *t = gh_spawn(later_send_task, &l);
    assert_non_null(t);
    char buf[16];
    int64_t t0 = gh_now();
    /* The root waits; the task runs meanwhile and sends. */
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 5 * GH_SEC), 4);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    assert_memory_equal(buf, "late", 4);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    TASKS_OK();
    gh_close(a);
    gh_close(b);
    HUB_CLOSES_CLEAN();
}

typedef struct blocked_call {
    int fd;
    int which; /* 0 recv, 1 send, 2 readv, 3 writev, 4 sendfile, 5 accept, 6 connect-name */
    int in_fd;
    ssize_t result;
    bool done;
} blocked_call;

static void blocked_call_task(void *arg)
{
    blocked_call *c = arg;
    static char big[256 * 1024];
    char small[16];
    struct iovec iov[2] = {{small, 8}, {small + 8, 8}};
    struct iovec wiov[2] = {{big, sizeof big / 2}, {big + sizeof big / 2, sizeof big / 2}};
    off_t off = 0;
    switch (c->which) {
    case 0:
        c->result = gh_recv(c->fd, small, sizeof small, 0, 10 * GH_SEC);
        break;
    case 1:
        c->result = gh_send(c->fd, big, sizeof big, 0, 10 * GH_SEC);
        break;
    case 2:
        c->result = gh_readv(c->fd, iov, 2, 10 * GH_SEC);
        break;
    case 3:
        c->result = gh_writev(c->fd, wiov, 2, 10 * GH_SEC);
        break;
    case 4:
        c->result = gh_sendfile(c->fd, c->in_fd, &off, 1 << 20, 10 * GH_SEC);
        break;
    }
    c->done = true;
}

/* A temporary file of @n pattern bytes, already unlinked. */
static int pattern_file(size_t n)
{
    const char *dir = getenv("TEST_TMPDIR");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/net_test.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    uint8_t *p = malloc(n);
    assert_non_null(p);
    fill_pattern(p, n, 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    free(p);
    return fd;
}

/* Kill and gh_close wake a task blocked in each call, with -ECANCELED / -EBADF. */
static void test_net_kill_and_close_wake_waiters(void **state)
{
    (void)state;
    int file = pattern_file(1 << 20);
    for (int which = 0; which <= 4; which++) {
        for (int how = 0; how < 2; how++) {
            int a, b;
            tcp_pair(&a, &b);
            small_buffers(a);
            small_buffers(b);
            bool writes = which == 1 || which == 3 || which == 4;
            if (writes)
                fill_socket(a);
            blocked_call c = {.fd = writes ? a : b, .which = which, .in_fd = file};
            gh_task *t = gh_spawn(blocked_call_task, &c);
            assert_non_null(t);
            assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
            assert_false(c.done);
            if (how == 0) {
                assert_int_equal(gh_kill(t), 0);
                assert_int_equal(gh_join(t, GH_SEC), 0);
                assert_int_equal(c.result, -ECANCELED);
                gh_close(c.fd);
            } else {
                assert_int_equal(gh_close(c.fd), 0);
                assert_int_equal(gh_join(t, GH_SEC), 0);
                assert_int_equal(c.result, -EBADF);
            }
            gh_task_release(t);
            gh_close(c.fd == a ? b : a);
        }
    }
    close(file);
    HUB_CLOSES_CLEAN();
}

/*
 * A short read from a stream drains it, so the next read waits before it
 * reads (io.c). That must never change what a read returns: data already
 * there comes at once, a timeout still times out, timeout 0 still polls,
 * kill and close still wake, and datagrams (where a short read says
 * nothing) keep coming one per call.
 */
typedef struct prewait_call {
    int fd;
    ssize_t result;
    bool done;
} prewait_call;

static void prewait_recv_task(void *arg)
{
    prewait_call *c = arg;
    char buf[64];
    c->result = gh_recv(c->fd, buf, sizeof buf, 0, 10 * GH_SEC);
    c->done = true;
}

static void test_net_short_read_then_more(void **state)
{
    (void)state;
    int a, b;
    tcp_pair(&a, &b);
    char buf[64];

    assert_int_equal(gh_send(a, "abc", 3, 0, GH_SEC), 3);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 3); /* short: drained */
    /* Already there when the next read starts: returned at once. */
    assert_int_equal(gh_send(a, "defg", 4, 0, GH_SEC), 4);
    int64_t t0 = gh_now();
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 5 * GH_SEC), 4);
    assert_memory_equal(buf, "defg", 4);
    assert_true(gh_now() - t0 < GH_SEC / 2);
    /*
     * Drained, then data comes while nobody waits and a poll sees it: the
     * next read goes first, without a wait (no switch at all).
     */
    assert_int_equal(gh_send(a, "x", 1, 0, GH_SEC), 1);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 1); /* short: drained */
    assert_int_equal(gh_send(a, "yz", 2, 0, GH_SEC), 2);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0); /* the hub polls: b readable, no reader */
    gh_hub_stats before, after;
    gh_hub_get_stats(gh_get_hub(), &before);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 2);
    gh_hub_get_stats(gh_get_hub(), &after);
    /* Handed to the kernel, the recv costs one park (there and back) and no more. */
    assert_int_equal(after.switches - before.switches, hub_uses_ops() ? 2 : 0);
    /* Drained and nothing comes: the timeout holds, and timeout 0 only polls. */
    t0 = gh_now();
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    assert_int_equal(gh_send(a, "h", 1, 0, GH_SEC), 1);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 0), 1);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 0), -ETIMEDOUT);
    /* Comes later, from a task: the waiting read gets it. */
    later_send l = {a, 20 * GH_MSEC, "late"};
    gh_task *t = gh_spawn(later_send_task, &l);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, 5 * GH_SEC), 4);
    assert_memory_equal(buf, "late", 4);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    /* A drained fd's waiter is still woken by kill (-ECANCELED) and gh_close (-EBADF). */
    assert_int_equal(gh_send(a, "i", 1, 0, GH_SEC), 1);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 1);
    prewait_call c = {.fd = b};
    t = gh_spawn(prewait_recv_task, &c);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_false(c.done);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    assert_int_equal(c.result, -ECANCELED);
    gh_task_release(t);
    assert_int_equal(gh_send(a, "j", 1, 0, GH_SEC), 1);
    assert_int_equal(gh_recv(b, buf, sizeof buf, 0, GH_SEC), 1);
    c = (prewait_call){.fd = b};
    t = gh_spawn(prewait_recv_task, &c);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_int_equal(gh_close(b), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    assert_int_equal(c.result, -EBADF);
    gh_task_release(t);
    assert_int_equal(gh_close(a), 0);

    /* Datagrams: two queued, each recv (short every time) returns one at once. */
    int u[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, u), 0);
    assert_int_equal(send(u[0], "one", 3, 0), 3);
    assert_int_equal(send(u[0], "two!", 4, 0), 4);
    t0 = gh_now();
    assert_int_equal(gh_recv(u[1], buf, sizeof buf, 0, 5 * GH_SEC), 3);
    assert_int_equal(gh_recv(u[1], buf, sizeof buf, 0, 5 * GH_SEC), 4);
    assert_memory_equal(buf, "two!", 4);
    assert_true(gh_now() - t0 < GH_SEC / 2);
    gh_close(u[0]);
    gh_close(u[1]);

    /* A pipe through gh_read: short, then more already written, then EOF. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "xy", 2), 2);
    assert_int_equal(gh_read(p[0], buf, sizeof buf, GH_SEC), 2);
    assert_int_equal(write(p[1], "z", 1), 1);
    assert_int_equal(gh_read(p[0], buf, sizeof buf, GH_SEC), 1);
    assert_int_equal(buf[0], 'z');
    close(p[1]);
    assert_int_equal(gh_read(p[0], buf, sizeof buf, GH_SEC), 0);
    gh_close(p[0]);
    HUB_CLOSES_CLEAN();
}

static void test_net_send_full_then_drained(void **state)
{
    (void)state;
    int a, b;
    tcp_pair(&a, &b);
    small_buffers(a);
    small_buffers(b);
    size_t queued = fill_socket(a);
    assert_true(queued > 0);
    char x[4096];
    memset(x, 'x', sizeof x);
    int64_t t0 = gh_now();
    assert_int_equal(gh_send(a, x, sizeof x, 0, 40 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 40 * GH_MSEC);
    assert_int_equal(gh_send(a, x, sizeof x, 0, 0), -ETIMEDOUT);

    /* Once a reader drains the socket, the same send goes through. */
    drain_arg d = {.fd = b, .n = queued + sizeof x, .delay = 10 * GH_MSEC};
    gh_task *t = gh_spawn(drain_task, &d);
    ssize_t r = gh_send(a, x, sizeof x, 0, 5 * GH_SEC);
    assert_true(r > 0);
    if ((size_t)r < sizeof x)
        assert_int_equal(gh_write_all(a, x + r, sizeof x - (size_t)r, 5 * GH_SEC),
                         (ssize_t)(sizeof x - (size_t)r));
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(d.got, queued + sizeof x);
    TASKS_OK();
    gh_close(a);
    gh_close(b);
    HUB_CLOSES_CLEAN();
}

/* --------------------------------------------------- readv / writev */

static void test_net_readv_writev_roundtrip(void **state)
{
    (void)state;
    int a, b;
    tcp_pair(&a, &b);
    small_buffers(a);
    small_buffers(b);

    /* 300 pieces of varied sizes, ~1.5 MB: many partial writes to advance through. */
    enum { NV = 300 };
    size_t total = 0;
    struct iovec iov[NV];
    uint8_t *data = malloc(NV * 10000);
    assert_non_null(data);
    for (int i = 0; i < NV; i++) {
        size_t len = (size_t)(i * 7919) % 10000;
        if (i % 50 == 0)
            len = 0; /* empty pieces are skipped */
        iov[i].iov_base = data + total;
        iov[i].iov_len = len;
        total += len;
    }
    fill_pattern(data, total, 0);
    struct iovec saved[NV];
    memcpy(saved, iov, sizeof iov);

    drain_arg d = {.fd = b, .n = total, .check = true};
    gh_task *t = gh_spawn(drain_task, &d);
    assert_int_equal(gh_writev(a, iov, NV, 10 * GH_SEC), (ssize_t)total);
    /* The caller's iovec array is left as it was. */
    assert_memory_equal(iov, saved, sizeof iov);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(d.got, total);
    TASKS_OK();

    /* readv scatters one message over three buffers. */
    assert_int_equal(gh_write_all(a, "abcdefghij", 10, GH_SEC), 10);
    char x[3], y[4], z[8];
    struct iovec riov[3] = {{x, sizeof x}, {y, sizeof y}, {z, sizeof z}};
    ssize_t got = 0;
    while (got < 10) {
        ssize_t r = gh_readv(b, riov, 3, GH_SEC);
        assert_true(r > 0);
        got += r;
        if (got < 10) {
            /* Not all at once (rare on loopback): read the rest plainly. */
            char rest[10];
            assert_int_equal(gh_read(b, rest, (size_t)(10 - got), GH_SEC), 10 - got);
            got = 10;
            break;
        }
    }
    assert_memory_equal(x, "abc", 3);
    assert_memory_equal(y, "defg", 4);
    assert_memory_equal(z, "hij", 3);

    /* Errors: bad counts, timeouts, EOF. */
    assert_int_equal(gh_readv(b, riov, -1, GH_SEC), -EINVAL);
    assert_int_equal(gh_writev(a, iov, IOV_MAX + 1, GH_SEC), -EINVAL);
    assert_int_equal(gh_readv(-1, riov, 3, GH_SEC), -EBADF);
    assert_int_equal(gh_writev(-1, iov, 3, GH_SEC), -EBADF);
    struct iovec bad = {NULL, 5};
    assert_int_equal(gh_writev(a, &bad, 1, GH_SEC), -EINVAL);
    assert_int_equal(gh_writev(a, iov, 0, GH_SEC), 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_readv(b, riov, 3, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    fill_socket(a);
    t0 = gh_now();
    assert_int_equal(gh_writev(a, iov, NV, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    assert_int_equal(gh_close(a), 0);
    drain_arg rest = {.fd = b, .n = SIZE_MAX};
    drain_task(&rest); /* to EOF, from the root */
    assert_int_equal(rest.last, 0);
    assert_int_equal(gh_readv(b, riov, 3, GH_SEC), 0);
    gh_close(b);

    /* A pipe takes the writev path. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct iovec piov[2] = {{"pi", 2}, {"pe", 2}};
    assert_int_equal(gh_writev(p[1], piov, 2, GH_SEC), 4);
    char pb[4];
    struct iovec prd = {pb, 4};
    assert_int_equal(gh_readv(p[0], &prd, 1, GH_SEC), 4);
    assert_memory_equal(pb, "pipe", 4);
    gh_close(p[0]);
    gh_close(p[1]);
    free(data);
    HUB_CLOSES_CLEAN();
}

/* ----------------------------------------------------------- sendfile */

static void test_net_sendfile(void **state)
{
    (void)state;
    const size_t size = 3 * 1024 * 1024 + 123;
    int file = pattern_file(size);
    int a, b;
    tcp_pair(&a, &b);
    small_buffers(a);

    /* Whole file with an explicit offset (advanced by the call). */
    drain_arg d = {.fd = b, .n = size, .check = true};
    gh_task *t = gh_spawn(drain_task, &d);
    off_t off = 0;
    assert_int_equal(gh_sendfile(a, file, &off, size, 10 * GH_SEC), (ssize_t)size);
    assert_int_equal(off, (off_t)size);
    assert_int_equal(gh_join(t, 10 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(d.got, size);
    TASKS_OK();

    /* From the middle, asking for more than there is: stops at EOF. */
    off = (off_t)(size - 1000);
    assert_int_equal(gh_sendfile(a, file, &off, 5000, GH_SEC), 1000);
    uint8_t tail[1000];
    size_t got = 0;
    while (got < sizeof tail) {
        ssize_t r = gh_read(b, tail + got, sizeof tail - got, GH_SEC);
        assert_true(r > 0);
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof tail; i++)
        assert_int_equal(tail[i], pattern_byte(size - 1000 + i));

    /* NULL offset: the file's own position is used and advanced. */
    assert_int_equal(lseek(file, 10, SEEK_SET), 10);
    assert_int_equal(gh_sendfile(a, file, NULL, 20, GH_SEC), 20);
    assert_int_equal(lseek(file, 0, SEEK_CUR), 30);
    uint8_t mid[20];
    got = 0;
    while (got < sizeof mid) {
        ssize_t r = gh_read(b, mid + got, sizeof mid - got, GH_SEC);
        assert_true(r > 0);
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof mid; i++)
        assert_int_equal(mid[i], pattern_byte(10 + i));

    /* Errors. */
    assert_int_equal(gh_sendfile(a, -1, NULL, 10, GH_SEC), -EBADF);
    assert_int_equal(gh_sendfile(-1, file, NULL, 10, GH_SEC), -EBADF);
    off = -1;
    assert_int_equal(gh_sendfile(a, file, &off, 10, GH_SEC), -EINVAL);
    assert_int_equal(gh_sendfile(a, file, NULL, 10, -3), -EINVAL);
    /* Nobody reads: the call times out, having sent part of it. */
    off = 0;
    int64_t t0 = gh_now();
    assert_int_equal(gh_sendfile(a, file, &off, size, 50 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 50 * GH_MSEC);
    assert_true(off > 0 && off < (off_t)size);

    gh_close(a);
    gh_close(b);
    close(file);
    HUB_CLOSES_CLEAN();
}

/* --------------------------------------------- a peer that goes away */

typedef struct resetter {
    int fd;
    bool graceful; /* plain close (with unread data: the kernel resets too) */
} resetter;

/* Read a little (the writer is mid-write by now), then abort the connection. */
static void resetter_task(void *arg)
{
    resetter *r = arg;
    char buf[4096];
    TCHECK(gh_read(r->fd, buf, sizeof buf, 5 * GH_SEC) > 0);
    if (!r->graceful) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        TCHECK(setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    }
    TCHECK(gh_close(r->fd) == 0);
}

/* Write @big bytes with one of the four writing calls. */
static ssize_t do_big_write(int call, int fd, const uint8_t *data, size_t big, int file)
{
    struct iovec iov[2] = {{(void *)data, big / 2}, {(void *)(data + big / 2), big / 2}};
    off_t off = 0;
    ssize_t r;
    switch (call) {
    case 0:
        return gh_write_all(fd, data, big, 10 * GH_SEC);
    case 1:
        return gh_writev(fd, iov, 2, 10 * GH_SEC);
    case 2:
        return gh_sendfile(fd, file, &off, big, 10 * GH_SEC);
    default:
        /* gh_send returns a short count before the reset: keep sending. */
        do
            r = gh_send(fd, data, big, 0, 10 * GH_SEC);
        while (r > 0);
        return r;
    }
}

/*
 * The peer aborts (SO_LINGER 0), or closes with our data unread (which
 * resets too), while we are blocked in the middle of a big write. Every
 * writing call returns -ECONNRESET or -EPIPE, then -EPIPE on a repeat, and
 * no SIGPIPE reaches the process (its action is the default: death).
 */
static void test_net_peer_reset_mid_write(void **state)
{
    (void)state;
    const size_t big = 16 * 1024 * 1024;
    uint8_t *data = calloc(1, big);
    assert_non_null(data);
    int file = pattern_file(big);
    for (int call = 0; call < 4; call++) {
        for (int graceful = 0; graceful < 2; graceful++) {
            int a, b;
            tcp_pair(&a, &b);
            small_buffers(a);
            small_buffers(b);
            resetter rs = {b, graceful};
            gh_task *t = gh_spawn(resetter_task, &rs);
            /* The first call meets the reset; the repeat meets a dead socket (EPIPE). */
            for (int rep = 0; rep < 2; rep++) {
                ssize_t r = do_big_write(call, a, data, big, file);
                if (r != -ECONNRESET && r != -EPIPE)
                    fail_msg("call %d graceful %d rep %d: %zd (%s)", call, graceful, rep, r,
                             gh_strerror((int)r));
            }
            ssize_t r = gh_send(a, "x", 1, 0, GH_SEC);
            assert_true(r == -EPIPE || r == -ECONNRESET);
            assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
            gh_task_release(t);
            TASKS_OK();
            gh_close(a);
        }
    }
    close(file);
    free(data);
    HUB_CLOSES_CLEAN();
}

/* ---------------------------------------------------- listen / accept */

static void check_roundtrip(int c, int s)
{
    char buf[8];
    assert_int_equal(gh_write_all(c, "ping", 4, GH_SEC), 4);
    assert_int_equal(gh_read(s, buf, sizeof buf, GH_SEC), 4);
    assert_memory_equal(buf, "ping", 4);
}

static void test_net_listen_ipv4_ipv6_reuse(void **state)
{
    (void)state;
    /* IPv6 loopback, by plain and bracketed literal. */
    int l6 = gh_listen("::1", 0, 8);
    assert_true(l6 >= 0);
    int port = local_port(l6);
    const char *names[] = {"::1", "[::1]"};
    for (int i = 0; i < 2; i++) {
        int c = gh_connect(names[i], port, GH_SEC);
        assert_true(c >= 0);
        int s = gh_accept(l6, GH_SEC);
        assert_true(s >= 0);
        check_roundtrip(c, s);
        gh_close(c);
        gh_close(s);
    }
    gh_close(l6);

    /* "::" is dual-stack: IPv4 clients get in too. */
    int lany = gh_listen("::", 0, 8);
    assert_true(lany >= 0);
    port = local_port(lany);
    int c = gh_connect("127.0.0.1", port, GH_SEC);
    assert_true(c >= 0);
    int s = gh_accept(lany, GH_SEC);
    assert_true(s >= 0);
    check_roundtrip(c, s);
    gh_close(c);
    gh_close(s);

    /* Same port again: in use without SO_REUSEPORT... */
    assert_int_equal(gh_listen("::", port, 8), -EADDRINUSE);
    gh_close(lany);

    /* ...but two SO_REUSEPORT listeners share one. */
    int r1 = gh_listen_ex("127.0.0.1", 0, 8, 1);
    assert_true(r1 >= 0);
    port = local_port(r1);
    int r2 = gh_listen_ex("127.0.0.1", port, 8, 1);
    assert_true(r2 >= 0);
    assert_int_equal(local_port(r2), port);
    assert_int_equal(gh_listen_ex("127.0.0.1", port, 8, 0), -EADDRINUSE);
    gh_close(r1);
    gh_close(r2);

    /* SO_REUSEADDR: a port with a connection in TIME_WAIT can be listened on again. */
    int l = gh_listen("127.0.0.1", 0, 8);
    port = local_port(l);
    c = gh_connect("127.0.0.1", port, GH_SEC);
    s = gh_accept(l, GH_SEC);
    gh_close(s); /* the server closes first: TIME_WAIT is on the listening port */
    char buf[4];
    assert_int_equal(gh_read(c, buf, sizeof buf, GH_SEC), 0);
    gh_close(c);
    gh_close(l);
    l = gh_listen("127.0.0.1", port, 8);
    assert_true(l >= 0);
    gh_close(l);

    /* Bad arguments. */
    assert_int_equal(gh_listen("not an address", 0, 8), -EINVAL);
    assert_int_equal(gh_listen("127.0.0.1", 70000, 8), -EINVAL);
    assert_int_equal(gh_listen("127.0.0.1", -1, 8), -EINVAL);
    assert_int_equal(gh_listen("[::1", 0, 8), -EINVAL);
    /* Scoped literals: an interface by name or number; an unknown one is -EINVAL. */
    l = gh_listen("::1%lo", 0, 8);
    assert_true(l >= 0);
    gh_close(l);
    l = gh_listen("::1%1", 0, 8);
    assert_true(l >= 0);
    gh_close(l);
    assert_int_equal(gh_listen("fe80::1%no-such-if0", 0, 8), -EINVAL);
    assert_int_equal(gh_listen("::1%", 0, 8), -EINVAL);
    assert_int_equal(gh_listen("127.0.0.1%lo", 0, 8), -EINVAL);

    /* gh_accept: timeouts and a bad fd. */
    l = gh_listen(NULL, 0, 8);
    assert_true(l >= 0);
    assert_int_equal(gh_accept(l, 0), -ETIMEDOUT);
    int64_t t0 = gh_now();
    assert_int_equal(gh_accept(l, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    assert_int_equal(gh_accept(-1, GH_SEC), -EBADF);
    gh_close(l);
    HUB_CLOSES_CLEAN();
}

/* A task that connects (by name or literal) and records the result. */
typedef struct resolve_call {
    const char *host;
    int port;
    int result;
} resolve_call;

static void connect_task(void *arg)
{
    resolve_call *c = arg;
    int fd = gh_connect(c->host, c->port, 10 * GH_SEC);
    c->result = fd < 0 ? fd : 0;
    if (fd >= 0)
        gh_close(fd);
}

static void test_net_connect_errors(void **state)
{
    (void)state;
    /* A port nobody listens on (bound, never listening, so nobody takes it meanwhile). */
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(hold, (struct sockaddr *)&sin, sizeof sin), 0);
    int port = local_port(hold);
    assert_int_equal(gh_connect("127.0.0.1", port, GH_SEC), -ECONNREFUSED);
    assert_int_equal(gh_connect("localhost", port, GH_SEC), -ECONNREFUSED);
    close(hold);

    assert_int_equal(gh_connect("127.0.0.1", 0, GH_SEC), -EINVAL);
    assert_int_equal(gh_connect("127.0.0.1", 65536, GH_SEC), -EINVAL);
    assert_int_equal(gh_connect("127.0.0.1", 80, -7), -EINVAL);

    /*
     * A listener whose accept queue is full drops new SYNs: connect hangs
     * until its timeout, or until the task is killed.
     */
    int l = gh_listen("127.0.0.1", 0, 1);
    assert_true(l >= 0);
    port = local_port(l);
    int held[8], nheld = 0, err = 0;
    while (nheld < 8) {
        int64_t t0 = gh_now();
        err = gh_connect("127.0.0.1", port, 200 * GH_MSEC);
        if (err < 0) {
            assert_int_equal(err, -ETIMEDOUT);
            assert_true(gh_now() - t0 >= 200 * GH_MSEC);
            break;
        }
        held[nheld++] = err;
    }
    assert_int_equal(err, -ETIMEDOUT);
    resolve_call kc = {"127.0.0.1", port, 1};
    gh_task *t = gh_spawn(connect_task, &kc);
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_int_equal(kc.result, 1); /* still waiting */
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(kc.result, -ECANCELED);
    while (nheld > 0)
        gh_close(held[--nheld]);
    gh_close(l);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------- host names */

static atomic_int fake_lookups_done;
static atomic_int fake_in_flight;

static int fake_numeric(const char *addr, const char *service, const struct addrinfo *hints,
                        struct addrinfo **res)
{
    struct addrinfo h = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                         .ai_socktype = hints ? hints->ai_socktype : 0};
    return getaddrinfo(addr, service, &h, res);
}

/*
 * The resolver the helper threads use in these tests (installed once, in
 * main): names under ".test" are made up here, anything else is real.
 */
static int fake_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                            struct addrinfo **res)
{
    size_t hl = host ? strlen(host) : 0;
    if (hl < 5 || strcmp(host + hl - 5, ".test") != 0)
        return getaddrinfo(host, service, hints, res);
    atomic_fetch_add(&fake_in_flight, 1);
    int rc;
    if (strcmp(host, "slower.test") == 0) {
        usleep(2000 * 1000);
        rc = fake_numeric("127.0.0.1", service, hints, res);
    } else if (strcmp(host, "slow.test") == 0) {
        usleep(300 * 1000);
        rc = fake_numeric("127.0.0.1", service, hints, res);
    } else if (strcmp(host, "fast.test") == 0) {
        rc = fake_numeric("127.0.0.1", service, hints, res);
    } else if (strcmp(host, "two.test") == 0) {
        /* ::1 first (nobody listens there), then 127.0.0.1. */
        struct addrinfo *v6 = NULL, *v4 = NULL;
        rc = fake_numeric("::1", service, hints, &v6);
        if (rc == 0) {
            rc = fake_numeric("127.0.0.1", service, hints, &v4);
            if (rc == 0) {
                struct addrinfo *last = v6;
                while (last->ai_next)
                    last = last->ai_next;
                last->ai_next = v4;
                *res = v6;
            } else {
                freeaddrinfo(v6);
            }
        }
    } else {
        rc = EAI_NONAME;
    }
    atomic_fetch_add(&fake_lookups_done, 1);
    atomic_fetch_sub(&fake_in_flight, 1);
    return rc;
}

typedef struct ticker {
    volatile bool stop;
    int ticks;
} ticker;

static void ticker_task(void *arg)
{
    ticker *k = arg;
    while (!k->stop && gh_sleep(5 * GH_MSEC) == 0)
        k->ticks++;
}

static void lookup_from_callback(void *arg)
{
    struct addrinfo *res = NULL;
    *(int *)arg = gh_getaddrinfo("fast.test", "80", NULL, &res, GH_SEC);
}

static void *plain_thread_lookup(void *arg)
{
    struct addrinfo *res = NULL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int rc = gh_getaddrinfo("fast.test", "8080", &hints, &res, 5 * GH_SEC);
    if (rc == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
        if (res->ai_family != AF_INET || ntohs(sin->sin_port) != 8080)
            rc = -EPROTO;
        freeaddrinfo(res);
    }
    *(int *)arg = rc;
    return NULL;
}

/* Wait until the helper threads have finished @n fake lookups and run none. */
static void wait_lookups(int n)
{
    int64_t until = gh_now() + 10 * GH_SEC;
    while ((atomic_load(&fake_lookups_done) < n || atomic_load(&fake_in_flight) > 0) &&
           gh_now() < until)
        gh_sleep(5 * GH_MSEC);
    assert_true(atomic_load(&fake_lookups_done) >= n);
    assert_int_equal(atomic_load(&fake_in_flight), 0);
}

static void test_net_connect_host_names(void **state)
{
    (void)state;
    int done0 = atomic_load(&fake_lookups_done);
    int l = gh_listen("127.0.0.1", 0, 64);
    assert_true(l >= 0);
    int port = local_port(l);

    /* A name resolves on a helper thread; the connection is real. */
    int c = gh_connect("fast.test", port, 5 * GH_SEC);
    assert_true(c >= 0);
    int s = gh_accept(l, GH_SEC);
    assert_true(s >= 0);
    check_roundtrip(c, s);
    gh_close(c);
    gh_close(s);

    /* Every address is tried in turn: ::1 is refused, 127.0.0.1 takes it. */
    c = gh_connect("two.test", port, 5 * GH_SEC);
    assert_true(c >= 0);
    s = gh_accept(l, GH_SEC);
    assert_true(s >= 0);
    gh_close(c);
    gh_close(s);

    /* No such host. */
    assert_int_equal(gh_connect("nowhere.test", port, 5 * GH_SEC), -ENOENT);
    struct addrinfo *res = (struct addrinfo *)&res;
    assert_int_equal(gh_getaddrinfo("nowhere.test", "80", NULL, &res, 5 * GH_SEC), -ENOENT);
    assert_null(res);

    /* A slow lookup: the hub keeps running tasks meanwhile. */
    ticker k = {0};
    gh_task *kt = gh_spawn(ticker_task, &k);
    c = gh_connect("slow.test", port, 5 * GH_SEC);
    assert_true(c >= 0);
    k.stop = true;
    assert_int_equal(gh_join(kt, GH_SEC), 0);
    gh_task_release(kt);
    assert_true(k.ticks >= 3); /* ~60 expected in 300 ms; lenient on a busy machine */
    s = gh_accept(l, GH_SEC);
    gh_close(c);
    gh_close(s);

    /*
     * Timing out before a 2 s lookup ends: the call returns at its timeout, and
     * the helper thread frees the result when it finishes (LeakSanitizer and
     * ASan check that it is freed exactly once). A timeout of 0 never waits.
     */
    int64_t t0 = gh_now();
    assert_int_equal(gh_connect("slower.test", port, 50 * GH_MSEC), -ETIMEDOUT);
    int64_t took = gh_now() - t0;
    assert_true(took >= 50 * GH_MSEC);
    assert_true(took < 1500 * GH_MSEC);
    res = NULL;
    assert_int_equal(gh_getaddrinfo("fast.test", "80", NULL, &res, 0), -ETIMEDOUT);
    assert_null(res);

    /* Killed while waiting for the resolver. */
    resolve_call kc = {"slow.test", port, 1};
    gh_task *t = gh_spawn(connect_task, &kc);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(kc.result, -ECANCELED);

    /* Eight lookups at once, four helper threads: all connect. */
    resolve_call many[8];
    gh_task *mt[8];
    for (int i = 0; i < 8; i++) {
        many[i] = (resolve_call){i % 2 ? "slow.test" : "fast.test", port, 1};
        mt[i] = gh_spawn(connect_task, &many[i]);
    }
    for (int i = 0; i < 8; i++) {
        assert_int_equal(gh_join(mt[i], 10 * GH_SEC), 0);
        gh_task_release(mt[i]);
        assert_int_equal(many[i].result, 0);
    }
    for (int i = 0; i < 8; i++) {
        s = gh_accept(l, GH_SEC);
        assert_true(s >= 0);
        gh_close(s);
    }

    /* From a plain thread (no hub): it blocks that thread. */
    int prc = 1;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, plain_thread_lookup, &prc), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(prc, 0);

#if !UNDER_TSAN
    /*
     * A forked child (helpers exist and sit idle in the parent now) can
     * resolve too: its pool starts empty. From a new thread of the child,
     * since the child's copy of this thread's hub shares the parent's fds.
     * (Not under TSan: it kills a child of a multi-threaded process that
     * starts a thread, die_after_fork.)
     */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int crc = 1;
        pthread_t cth;
        if (pthread_create(&cth, NULL, plain_thread_lookup, &crc) != 0)
            _exit(3);
        pthread_join(cth, NULL);
        _exit(crc == 0 ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
#endif

    /* From a timer callback: -EPERM, as every blocking call. */
    int cbrc = 1;
    gh_timer *tm = gh_call_after(0, lookup_from_callback, &cbrc);
    assert_non_null(tm);
    gh_timer_release(tm);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_int_equal(cbrc, -EPERM);

    /* Argument errors. */
    assert_int_equal(gh_getaddrinfo(NULL, NULL, NULL, &res, GH_SEC), -EINVAL);
    assert_int_equal(gh_getaddrinfo("fast.test", "80", NULL, NULL, GH_SEC), -EINVAL);
    assert_int_equal(gh_getaddrinfo("fast.test", "80", NULL, &res, -9), -EINVAL);

    /* Wait out the lookups still running (the 2 s one), so none outlives the test. */
    /* Certain to have run here: fast, two, nowhere x2, slow, 8 at once, the plain thread's. */
    wait_lookups(done0 + 14);
    gh_close(l);
    HUB_CLOSES_CLEAN();
}

/* The real resolver, through /etc/hosts: "localhost" is there on any system. */
static void test_net_getaddrinfo_real(void **state)
{
    (void)state;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    assert_int_equal(gh_getaddrinfo("localhost", "4242", &hints, &res, 10 * GH_SEC), 0);
    assert_non_null(res);
    bool loopback = false;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ai->ai_addr;
        assert_int_equal(ai->ai_family, AF_INET);
        assert_int_equal(ntohs(sin->sin_port), 4242);
        if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
            loopback = true;
    }
    assert_true(loopback);
    freeaddrinfo(res);
    hints.ai_family = 12345;
    assert_int_equal(gh_getaddrinfo("localhost", "80", &hints, &res, 10 * GH_SEC), -EINVAL);
    HUB_CLOSES_CLEAN();
}

int main(void)
{
    /* Before any lookup, so the helper threads only ever read it. */
    gh__resolve_getaddrinfo = fake_getaddrinfo;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_net_recv_send_basics, setup),
        cmocka_unit_test_setup(test_net_recv_waits_green, setup),
        cmocka_unit_test_setup(test_net_kill_and_close_wake_waiters, setup),
        cmocka_unit_test_setup(test_net_short_read_then_more, setup),
        cmocka_unit_test_setup(test_net_send_full_then_drained, setup),
        cmocka_unit_test_setup(test_net_readv_writev_roundtrip, setup),
        cmocka_unit_test_setup(test_net_sendfile, setup),
        cmocka_unit_test_setup(test_net_peer_reset_mid_write, setup),
        cmocka_unit_test_setup(test_net_listen_ipv4_ipv6_reuse, setup),
        cmocka_unit_test_setup(test_net_connect_errors, setup),
        cmocka_unit_test_setup(test_net_connect_host_names, setup),
        cmocka_unit_test_setup(test_net_getaddrinfo_real, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
