/*
 * custom_backend.c — a third-party backend plugged into a hub.
 *
 * "tiny-epoll" below is a complete backend in ~130 lines: a private state
 * struct and the five functions of gh_backend_ops, ABI 3 (a readiness
 * backend: no submit or cancel)
 * (include/greenhub_backend.h; docs/backends.md is the guide). It is
 * level-triggered epoll, as the hub expects, and keeps the contract's finer
 * points:
 *
 *  - errors and full hang-ups (EPOLLERR, EPOLLHUP) are every watched
 *    direction; the peer's half-close (EPOLLRDHUP) is GH_READ only;
 *  - an event is reported only for directions the fd is watched for at the
 *    moment of the report: the ready callback may call watch(), so each fd
 *    carries a generation in epoll's data, and an event buffered for an fd
 *    that a callback forgot (and maybe re-watched) is dropped;
 *  - poll waits once and returns: the hub owns the clock and the deadlines,
 *    so a wait that ends early (EINTR, only stale events, the 1000 s cap
 *    below) simply returns 0 and the hub polls again with the time left. The
 *    timeout is rounded up to epoll_wait's milliseconds, never down;
 *  - caps is 0: epoll refuses regular files (watch returns -EPERM, and the
 *    hub then answers for them itself), and a wait costs no re-arm;
 *  - nothing aborts: failures are negative errnos.
 *
 * The program switches its hub to it with gh_use_hub_backend(), serves an
 * echo workload on loopback TCP (4 clients x 100 lines) with a repeating
 * timer and a pipe woken by a timer callback beside it, swaps the busy hub
 * to the built-in poll backend and back in the middle (waiters and timers
 * carried over), and prints what it did. Exit status 0 when every byte came
 * back right.
 *
 *   ./custom_backend
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"
#include "greenhub_backend.h"

/* ============================================================ tiny-epoll */

typedef struct tiny_fd {
    uint8_t interest; /* GH_READ|GH_WRITE as the hub watches it; 0 = not watched */
    uint32_t gen;     /* bumped each time the fd starts being watched */
} tiny_fd;

typedef struct tiny_state {
    int epfd;
    tiny_fd *fds; /* indexed by fd */
    int nfds;
    unsigned long polls; /* for the demo's report */
} tiny_state;

static unsigned long tiny_polls_total;

static int tiny_init(void **state)
{
    tiny_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = -errno;
        free(s);
        return err;
    }
    *state = s;
    return 0;
}

static void tiny_destroy(void *state)
{
    tiny_state *s = state;
    close(s->epfd); /* the watched fds are the hub's: not closed here */
    free(s->fds);
    free(s);
}

static int tiny_watch(void *state, int fd, int old_events, int new_events)
{
    tiny_state *s = state;
    (void)old_events; /* our own table knows; a stricter backend could check it */
    if (fd < 0)
        return -EBADF;
    if (new_events & ~(GH_READ | GH_WRITE))
        return -EINVAL;
    if (fd >= s->nfds) {
        if (!new_events)
            return 0;
        int n = s->nfds ? s->nfds : 64;
        while (n <= fd)
            n *= 2;
        tiny_fd *fds = realloc(s->fds, (size_t)n * sizeof *fds);
        if (!fds)
            return -ENOMEM;
        memset(fds + s->nfds, 0, (size_t)(n - s->nfds) * sizeof *fds);
        s->fds = fds;
        s->nfds = n;
    }
    tiny_fd *e = &s->fds[fd];
    if (!new_events) { /* forget: the hub closes the fd right after */
        if (e->interest && epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT &&
            errno != EBADF)
            return -errno;
        e->interest = 0;
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events = ((new_events & GH_READ) ? EPOLLIN | EPOLLRDHUP : 0) |
                ((new_events & GH_WRITE) ? EPOLLOUT : 0);
    uint32_t gen = e->interest ? e->gen : e->gen + 1;
    ev.data.u64 = (uint64_t)gen << 32 | (uint32_t)fd;
    int op = e->interest ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(s->epfd, op, fd, &ev) < 0) {
        /* The kernel drops a closed file by itself: MOD may find nothing, ADD a leftover. */
        if (errno != ENOENT && errno != EEXIST)
            return -errno;
        op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(s->epfd, op, fd, &ev) < 0)
            return -errno;
    }
    e->interest = (uint8_t)new_events;
    e->gen = gen;
    return 0;
}

static int tiny_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    tiny_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    int ms = -1;
    /* Round up: rounded down, the hub's re-poll for the rest would spin. A
     * very long timeout is capped: returning 0 early is always allowed. */
    if (timeout_ns >= 0)
        ms = timeout_ns > (int64_t)1000 * GH_SEC ? 1000000 : (int)((timeout_ns + 999999) / 1000000);
    struct epoll_event evs[64];
    s->polls++;
    tiny_polls_total++;
    int n = epoll_wait(s->epfd, evs, 64, ms); /* once: never loop for the rest */
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    int reported = 0;
    for (int i = 0; i < n; i++) {
        int fd = (int)(uint32_t)evs[i].data.u64;
        /* Re-read the table each time: a callback may have changed it. */
        if (fd >= s->nfds || s->fds[fd].gen != (uint32_t)(evs[i].data.u64 >> 32))
            continue;
        int interest = s->fds[fd].interest;
        uint32_t what = evs[i].events;
        int events;
        if (what & (EPOLLERR | EPOLLHUP))
            events = interest;
        else
            events = (((what & (EPOLLIN | EPOLLRDHUP)) ? GH_READ : 0) |
                      ((what & EPOLLOUT) ? GH_WRITE : 0)) &
                     interest;
        if (events) {
            ready(ctx, fd, events);
            reported++;
        }
    }
    return reported;
}

static const gh_backend_ops tiny_epoll = {
    .abi = GH_BACKEND_ABI, /* 3 */
    .name = "tiny-epoll",
    .caps = 0, /* no GH_BACKEND_FILES_READY (epoll: -EPERM), no GH_BACKEND_READ_FIRST */
    .init = tiny_init,
    .destroy = tiny_destroy,
    .watch = tiny_watch,
    .poll = tiny_poll,
};

/* ============================================================== workload */

enum { CLIENTS = 4, LINES = 100 };

static int failures;
static int ticks;
static int lines_ok;
static int pipe_fds[2];
static int64_t pipe_written;

static void check(int ok, const char *what)
{
    if (!ok) {
        failures++;
        fprintf(stderr, "FAILED: %s (backend %s)\n", what, gh_hub_backend(gh_get_hub()));
    }
}

static void serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = gh_read(fd, buf, sizeof buf, 10 * GH_SEC)) > 0)
        if (gh_write_all(fd, buf, (size_t)n, 10 * GH_SEC) < 0)
            break;
    gh_close(fd);
}

static void acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (int i = 0; i < CLIENTS; i++) {
        int fd = gh_accept(lfd, 10 * GH_SEC);
        check(fd >= 0, "accept");
        if (fd >= 0)
            gh_spawn_n(serve, (void *)(intptr_t)fd);
    }
}

static void client(void *arg)
{
    int port = (int)(intptr_t)arg;
    int fd = gh_connect("127.0.0.1", port, 10 * GH_SEC);
    check(fd >= 0, "connect");
    if (fd < 0)
        return;
    for (int i = 0; i < LINES; i++) {
        char line[64], back[64];
        int len = snprintf(line, sizeof line, "line %d from fd %d\n", i, fd);
        check(gh_write_all(fd, line, (size_t)len, 10 * GH_SEC) == len, "write");
        size_t got = 0;
        while (got < (size_t)len) {
            ssize_t n = gh_read(fd, back + got, (size_t)len - got, 10 * GH_SEC);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        check(got == (size_t)len && memcmp(line, back, (size_t)len) == 0, "echo");
        lines_ok += got == (size_t)len && memcmp(line, back, (size_t)len) == 0;
        if (i % 10 == 9)
            gh_sleep(GH_MSEC); /* let the timers and the swapper in */
    }
    gh_close(fd);
}

static void tick(void *arg)
{
    (void)arg;
    ticks++;
}

static void poke_pipe(void *arg)
{
    (void)arg;
    pipe_written = gh_now();
    ssize_t w = write(pipe_fds[1], "!", 1); /* a callback must not block: one byte */
    (void)w;
}

static void pipe_reader(void *arg)
{
    (void)arg;
    char c = 0;
    ssize_t n = gh_read(pipe_fds[0], &c, 1, 10 * GH_SEC);
    check(n == 1 && c == '!', "pipe read");
    check(gh_now() >= pipe_written, "pipe woke before its byte");
    printf("pipe reader woke on %s, %.1f ms after the timer wrote\n", gh_hub_backend(gh_get_hub()),
           (double)(gh_now() - pipe_written) / GH_MSEC);
}

/* Swap the busy hub to the built-in poll backend and back, from a task. */
static void swapper(void *arg)
{
    (void)arg;
    gh_sleep(5 * GH_MSEC);
    int err = gh_use_hub("poll");
    check(err == 0, "swap to poll");
    printf("swapped live to %s (%s)\n", gh_hub_backend(gh_get_hub()), gh_strerror(err));
    gh_sleep(5 * GH_MSEC);
    err = gh_use_hub_backend(&tiny_epoll);
    check(err == 0, "swap back");
    printf("swapped live back to %s (%s)\n", gh_hub_backend(gh_get_hub()), gh_strerror(err));
}

int main(int argc, char **argv)
{
    int rc = ex_args_parse(
        argc, argv,
        "An echo server on a third-party backend (tiny-epoll) plugged in with gh_use_hub_backend.",
        NULL, 0);
    if (rc >= 0)
        return rc; /* no options: --help, or a mistake */
    int err = gh_use_hub_backend(&tiny_epoll);
    if (err) {
        fprintf(stderr, "gh_use_hub_backend: %s\n", gh_strerror(err));
        return 1;
    }
    printf("backend: %s\n", gh_hub_backend(gh_get_hub()));

    int lfd = gh_listen("127.0.0.1", 0, 16);
    if (lfd < 0) {
        fprintf(stderr, "gh_listen: %s\n", gh_strerror(lfd));
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    int port = ntohs(sin.sin_port);
    if (pipe(pipe_fds) < 0)
        return perror("pipe"), 1;

    gh_timer *ticker = gh_call_repeatedly(2 * GH_MSEC, tick, NULL);
    gh_timer_release(gh_call_after(20 * GH_MSEC, poke_pipe, NULL));
    gh_spawn_n(pipe_reader, NULL);
    gh_spawn_n(acceptor, (void *)(intptr_t)lfd);
    for (int i = 0; i < CLIENTS; i++)
        gh_spawn_n(client, (void *)(intptr_t)port);
    gh_spawn_n(swapper, NULL);

    /* The root waits for the clients to finish; the ticker keeps the hub busy, so stop it. */
    while (lines_ok + failures < CLIENTS * LINES && failures == 0)
        gh_sleep(5 * GH_MSEC);
    gh_timer_cancel(ticker);
    check(gh_hub_run() == 0, "hub run");
    gh_close(lfd);
    gh_close(pipe_fds[0]);
    gh_close(pipe_fds[1]);

    printf("echo: %d clients x %d lines, %d came back whole\n", CLIENTS, LINES, lines_ok);
    printf("repeating timer: %d ticks; %lu polls through %s\n", ticks, tiny_polls_total,
           tiny_epoll.name);
    check(lines_ok == CLIENTS * LINES, "every line");
    check(ticks > 0, "the timer ticked");
    check(strcmp(gh_hub_backend(gh_get_hub()), "tiny-epoll") == 0, "ends on tiny-epoll");
    err = gh_hub_close();
    check(err == 0, "hub closes clean");
    printf("done (%s)\n", failures ? "FAILED" : "success");
    return failures ? 1 : 0;
}
