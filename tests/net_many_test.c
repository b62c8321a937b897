/*
 * net_many_test.c — 10,000 concurrent connections, each served by its own
 * task, every byte checked in both directions. Run once per backend.
 *
 * The client side runs in a forked child process (a process may hold 20,000
 * fds here; each side holds one per connection plus a few). The child
 * connects all N sockets first, then one task per connection sends a
 * payload derived from its id and waits for the answer. The server accepts
 * N connections, one task each; a task reads and checks the whole payload,
 * then waits on a gate that opens only when all N payloads are in: so all N
 * connections and all N server tasks are alive at once (checked: the peak
 * of live connection tasks is N). Each task then answers with the payload
 * transformed (so an echo of the wrong bytes cannot pass), the client
 * checks every byte, closes, and the server task sees EOF.
 *
 * Sizes: select can only watch fds below FD_SETSIZE (1024), so with select
 * each process must stay under it: 900 connections (each side holds 900
 * sockets plus stdio, the listener or wakeup fd and what the test runner
 * left open). Under TSan every concurrently live task is a TSan fiber
 * whose first creation costs ~10 ms here (TSan's CreateThreadContext
 * faulting in its per-thread state; measured), and each connection needs
 * two (client and server): 250 connections there keep it near 6 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

#define FULL_CONNS   10000
#define TSAN_CONNS   250
#define SELECT_CONNS 900

/* Budget for the whole exchange; generous for a loaded 2-core CI machine. */
#define DEADLINE_NS (120 * GH_SEC)

static int conns_for_backend(const char *backend)
{
    if (UNDER_TSAN)
        return TSAN_CONNS; /* below SELECT_CONNS too */
    if (backend && strcmp(backend, "select") == 0)
        return SELECT_CONNS;
    return FULL_CONNS;
}

/* ------------------------------------------------------------ payloads */

static size_t payload_len(uint32_t id)
{
    return 200 + (id * 7919u) % 1800; /* 200 .. 1999 bytes */
}

static uint8_t payload_byte(uint32_t id, size_t i)
{
    uint32_t x = id * 2654435761u + (uint32_t)i * 40503u;
    return (uint8_t)(x ^ (x >> 11) ^ (x >> 19));
}

/* The server's answer: every byte changed, in a way that depends on id and place. */
static uint8_t answer_byte(uint32_t id, size_t i)
{
    return (uint8_t)(~payload_byte(id, i) + (uint8_t)id + (uint8_t)i);
}

static int read_full(int fd, void *buf, size_t n, int64_t timeout)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = gh_read(fd, (char *)buf + got, n - got, timeout);
        if (r <= 0)
            return r == 0 ? -EPIPE : (int)r;
        got += (size_t)r;
    }
    return 0;
}

/* --------------------------------------------------------------- client */

typedef struct client {
    int n;
    int *fds;
    int ok, failed;
    int first_err;
} client;

typedef struct client_conn {
    client *c;
    uint32_t id;
} client_conn;

static void client_fail(client *c, int err)
{
    c->failed++;
    if (!c->first_err)
        c->first_err = err ? err : -EPROTO;
}

static void client_task(void *arg)
{
    client_conn *cc = arg;
    client *c = cc->c;
    int fd = c->fds[cc->id];
    size_t len = payload_len(cc->id);
    uint8_t *buf = malloc(8 + len);
    if (!buf) {
        client_fail(c, -ENOMEM);
        return;
    }
    uint32_t hdr[2] = {htonl(cc->id), htonl((uint32_t)len)};
    memcpy(buf, hdr, 8);
    for (size_t i = 0; i < len; i++)
        buf[8 + i] = payload_byte(cc->id, i);
    ssize_t w = gh_write_all(fd, buf, 8 + len, DEADLINE_NS);
    if (w != (ssize_t)(8 + len)) {
        client_fail(c, (int)w);
        goto out;
    }
    int err = read_full(fd, buf, len, DEADLINE_NS);
    if (err) {
        client_fail(c, err);
        goto out;
    }
    for (size_t i = 0; i < len; i++)
        if (buf[i] != answer_byte(cc->id, i)) {
            client_fail(c, -EBADMSG);
            goto out;
        }
    /* Nothing more may come: the server closes after we do. */
    c->ok++;
out:
    gh_close(fd);
    free(buf);
}

/* The child: connect all N, then exchange on every one concurrently. Never returns. */
static void run_client(int port, int n)
{
    client c = {.n = n};
    c.fds = calloc((size_t)n, sizeof *c.fds);
    client_conn *cc = calloc((size_t)n, sizeof *cc);
    if (!c.fds || !cc)
        _exit(10);
    int64_t t0 = gh_now();
    for (int i = 0; i < n; i++) {
        c.fds[i] = gh_connect("127.0.0.1", port, 30 * GH_SEC);
        if (c.fds[i] < 0) {
            fprintf(stderr, "client: connect %d: %s\n", i, gh_strerror(c.fds[i]));
            _exit(11);
        }
    }
    int64_t t1 = gh_now();
    for (int i = 0; i < n; i++) {
        cc[i] = (client_conn){&c, (uint32_t)i};
        if (gh_spawn_n(client_task, &cc[i]) != 0)
            _exit(12);
    }
    int err = gh_hub_run();
    printf("# client: connected %d in %.2f s, exchanged in %.2f s\n", n, (double)(t1 - t0) / GH_SEC,
           (double)(gh_now() - t1) / GH_SEC);
    fflush(stdout);
    if (err || c.ok != n || c.failed) {
        fprintf(stderr, "client: run %s, %d ok, %d failed, first error %s\n", gh_strerror(err),
                c.ok, c.failed, gh_strerror(c.first_err));
        _exit(13);
    }
    if (gh_hub_close() != 0)
        _exit(14);
    free(cc);
    free(c.fds);
    _exit(0);
}

/* --------------------------------------------------------------- server */

typedef struct server {
    int n;
    int lfd;
    int accepted;
    int payloads_in; /* full payloads received and checked */
    int live, peak;  /* connection tasks alive now / at most */
    int done_ok;     /* connections answered and closed by the client */
    int failed;
    int first_err;
    gh_event all_in; /* the gate: every payload is in */
} server;

typedef struct server_conn {
    server *s;
    int fd;
} server_conn;

static void server_fail(server *s, int err)
{
    s->failed++;
    if (!s->first_err)
        s->first_err = err ? err : -EPROTO;
}

static void server_conn_task(void *arg)
{
    server_conn *sc = arg;
    server *s = sc->s;
    int fd = sc->fd;
    free(sc);
    uint8_t *buf = NULL;
    if (++s->live > s->peak)
        s->peak = s->live;

    uint32_t hdr[2];
    int err = read_full(fd, hdr, sizeof hdr, DEADLINE_NS);
    if (err)
        goto fail;
    uint32_t id = ntohl(hdr[0]);
    size_t len = ntohl(hdr[1]);
    if (id >= (uint32_t)s->n || len != payload_len(id)) {
        err = -EBADMSG;
        goto fail;
    }
    buf = malloc(len);
    if (!buf) {
        err = -ENOMEM;
        goto fail;
    }
    err = read_full(fd, buf, len, DEADLINE_NS);
    if (err)
        goto fail;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != payload_byte(id, i)) {
            err = -EBADMSG;
            goto fail;
        }
    if (++s->payloads_in == s->n)
        gh_event_set(&s->all_in, NULL);
    /* Hold the connection until all N are in. */
    err = gh_event_wait(&s->all_in, NULL, DEADLINE_NS);
    if (err)
        goto fail;
    for (size_t i = 0; i < len; i++)
        buf[i] = answer_byte(id, i);
    ssize_t w = gh_write_all(fd, buf, len, DEADLINE_NS);
    if (w != (ssize_t)len) {
        err = (int)w;
        goto fail;
    }
    /* The client checks and closes: EOF, nothing else. */
    ssize_t r = gh_read(fd, buf, 1, DEADLINE_NS);
    if (r != 0) {
        err = r < 0 ? (int)r : -EBADMSG;
        goto fail;
    }
    s->done_ok++;
    goto out;
fail:
    server_fail(s, err);
out:
    s->live--;
    free(buf);
    gh_close(fd);
}

static void acceptor_task(void *arg)
{
    server *s = arg;
    while (s->accepted < s->n) {
        int fd = gh_accept(s->lfd, DEADLINE_NS);
        if (fd < 0) {
            server_fail(s, fd);
            return;
        }
        server_conn *sc = malloc(sizeof *sc);
        if (!sc) {
            gh_close(fd);
            server_fail(s, -ENOMEM);
            return;
        }
        sc->s = s;
        sc->fd = fd;
        s->accepted++;
        if (gh_spawn_n(server_conn_task, sc) != 0) {
            free(sc);
            gh_close(fd);
            server_fail(s, -ENOMEM);
            return;
        }
    }
}

static void test_net_many_connections(void **state)
{
    (void)state;
    const char *backend = getenv("GREENHUB_HUB");
    int n = conns_for_backend(backend);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < (rlim_t)n + 64 && rl.rlim_max >= (rlim_t)n + 64) {
        rl.rlim_cur = (rlim_t)n + 64;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    if (rl.rlim_cur < (rlim_t)n + 64)
        fail_msg("RLIMIT_NOFILE %llu is too small for %d connections",
                 (unsigned long long)rl.rlim_cur, n);

    /* Listen before forking (so the child can connect at once), hub after. */
    int lfd = gh_listen("127.0.0.1", 0, 4096);
    assert_true(lfd >= 0);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    int port = ntohs(sin.sin_port);

    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(lfd);
        run_client(port, n);
    }

    server s = {.n = n, .lfd = lfd};
    assert_int_equal(gh_event_init(&s.all_in), 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_spawn_n(acceptor_task, &s), 0);
    assert_int_equal(gh_hub_run(), 0);
    int64_t took = gh_now() - t0;

    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    printf("# %s: %d connections, peak %d live tasks, %.2f s\n", backend ? backend : "default", n,
           s.peak, (double)took / GH_SEC);
    if (s.failed)
        fail_msg("server: %d failed, first error %s", s.failed, gh_strerror(s.first_err));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(s.accepted, n);
    assert_int_equal(s.payloads_in, n);
    assert_int_equal(s.done_ok, n);
    assert_int_equal(s.peak, n); /* all N served at once, each by its own task */
    assert_int_equal(s.live, 0);
    assert_int_equal(gh_event_destroy(&s.all_in), 0);
    assert_int_equal(gh_close(lfd), 0);
    assert_int_equal(gh_hub_close(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_net_many_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
