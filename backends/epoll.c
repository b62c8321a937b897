/*
 * epoll.c — the epoll(7) backend, level-triggered.
 *
 * Quirks (in the manner of libev's ev_epoll.c):
 *  - epoll registers a file description, keyed by (file, fd number). When the
 *    last reference to a file closes, the kernel drops the registration by
 *    itself, so our interest table and the kernel can disagree after an fd was
 *    closed behind our back: MOD failing with ENOENT is retried as ADD, ADD
 *    failing with EEXIST as MOD, and DEL's ENOENT/EBADF are ignored.
 *  - If such an fd had been dup'd (or inherited by a child), its registration
 *    lives on and may report for the old file under the fd number. Nothing can
 *    fix that from here: forget an fd (watch(fd, old, 0)) before closing it.
 *  - Regular files and directories cannot be registered: watch returns -EPERM.
 *  - epoll_pwait2 (Linux 5.11) takes a nanosecond timespec; where it is
 *    missing (ENOSYS) we fall back to epoll_wait with milliseconds rounded up.
 *  - EPOLLERR and EPOLLHUP are always reported; EPOLLRDHUP is asked for only
 *    with GH_READ. EPOLLERR and EPOLLHUP are reported as every direction the
 *    fd is watched for at the time of the report; EPOLLRDHUP (the peer's
 *    half-close) as GH_READ only, so a writer waiting on a full send buffer
 *    is not woken by it.
 *  - The event buffer doubles (up to EPOLL_MAX_EVENTS) when a poll fills it.
 *  - data.u64 carries fd and a per-fd generation, so an event buffered for an
 *    fd that a ready callback forgot (and maybe re-watched) is not reported.
 *  - poll waits once (one epoll_pwait2/epoll_wait) and returns: a wait that
 *    saw only such stale events, or EINTR, returns 0 early and the hub polls
 *    again with its own re-computed timeout.
 *  - caps: none. Regular files are refused (above), and the hub answers for
 *    them; a wait costs nothing to re-arm, so no READ_FIRST.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "greenhub_backend.h"

#define EPOLL_INITIAL_EVENTS 64
#define EPOLL_MAX_EVENTS     65536

/** Per-fd bookkeeping, indexed by fd. */
typedef struct epoll_fd {
    uint32_t interest; /* GH_READ|GH_WRITE as the hub watches it, 0 = not watched */
    uint32_t gen;      /* generation put into data.u64 when the fd was added */
} epoll_fd;

typedef struct epoll_state {
    int epfd;                   /* the epoll instance */
    int use_pwait2;             /* 1 until epoll_pwait2 fails with ENOSYS */
    struct epoll_event *events; /* buffer filled by epoll_wait */
    int nevents;                /* its capacity */
    epoll_fd *fds;              /* interest table, indexed by fd */
    int nfds;                   /* its capacity */
} epoll_state;

static int epoll_backend_init(void **state)
{
    epoll_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->events = malloc(EPOLL_INITIAL_EVENTS * sizeof(*s->events));
    if (!s->events) {
        free(s);
        return -ENOMEM;
    }
    s->nevents = EPOLL_INITIAL_EVENTS;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        int err = -errno;
        free(s->events);
        free(s);
        return err;
    }
    s->use_pwait2 = 1;
    *state = s;
    return 0;
}

static void epoll_backend_destroy(void *state)
{
    epoll_state *s = state;
    if (!s)
        return;
    close(s->epfd);
    free(s->events);
    free(s->fds);
    free(s);
}

static int epoll_grow_fds(epoll_state *s, int fd)
{
    if (fd < s->nfds)
        return 0;
    int n = s->nfds ? s->nfds : 64;
    while (n <= fd)
        n = n > INT_MAX / 2 ? INT_MAX : n * 2;
    epoll_fd *fds = realloc(s->fds, (size_t)n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    for (int i = s->nfds; i < n; i++)
        fds[i] = (epoll_fd){0, 0};
    s->fds = fds;
    s->nfds = n;
    return 0;
}

static int epoll_ctl_retry(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (epoll_ctl(epfd, op, fd, ev) == 0)
        return 0;
    /* The kernel forgot a closed fd, or remembers one we were told is new. */
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        op = EPOLL_CTL_ADD;
    else if (op == EPOLL_CTL_ADD && errno == EEXIST)
        op = EPOLL_CTL_MOD;
    else
        return -errno;
    return epoll_ctl(epfd, op, fd, ev) == 0 ? 0 : -errno;
}

static int epoll_backend_watch(void *state, int fd, int old_events, int new_events)
{
    epoll_state *s = state;
    if (fd < 0)
        return -EBADF;
    if ((old_events | new_events) & ~(GH_READ | GH_WRITE))
        return -EINVAL;

    if (new_events == 0) {
        if (fd >= s->nfds || s->fds[fd].interest == 0)
            return 0;
        s->fds[fd].interest = 0;
        if (epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT && errno != EBADF)
            return -errno;
        return 0;
    }

    int err = epoll_grow_fds(s, fd);
    if (err)
        return err;
    epoll_fd *e = &s->fds[fd];
    /* old 0 from the hub means a fresh fd even if we think we know the number. */
    int fresh = e->interest == 0 || old_events == 0;
    if (!fresh && e->interest == (uint32_t)new_events)
        return 0;

    uint32_t gen = fresh ? e->gen + 1 : e->gen;
    struct epoll_event ev = {0};
    if (new_events & GH_READ)
        ev.events |= EPOLLIN | EPOLLRDHUP;
    if (new_events & GH_WRITE)
        ev.events |= EPOLLOUT;
    ev.data.u64 = (uint64_t)gen << 32 | (uint32_t)fd;

    err = epoll_ctl_retry(s->epfd, fresh ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
    if (err)
        return err;
    e->interest = (uint32_t)new_events;
    e->gen = gen;
    return 0;
}

/* One wait. Returns the number of events, or -errno. */
static int epoll_wait_once(epoll_state *s, int64_t timeout_ns)
{
    if (s->use_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        int n = epoll_pwait2(s->epfd, s->events, s->nevents, tsp, NULL);
        if (n >= 0)
            return n;
        if (errno != ENOSYS)
            return -errno;
        s->use_pwait2 = 0;
    }
    int ms;
    if (timeout_ns < 0)
        ms = -1;
    else if (timeout_ns > (int64_t)INT_MAX * 1000000 - 999999)
        ms = INT_MAX;
    else
        ms = (int)((timeout_ns + 999999) / 1000000); /* round up: never early */
    int n = epoll_wait(s->epfd, s->events, s->nevents, ms);
    return n >= 0 ? n : -errno;
}

static int epoll_backend_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    epoll_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    int n = epoll_wait_once(s, timeout_ns);
    if (n < 0)
        return n == -EINTR ? 0 : n;

    int reported = 0;
    for (int i = 0; i < n; i++) {
        uint64_t data = s->events[i].data.u64;
        uint32_t what = s->events[i].events;
        int fd = (int)(uint32_t)data;
        /* Re-read every time: a callback may have grown or changed the table. */
        if (fd >= s->nfds)
            continue;
        epoll_fd *e = &s->fds[fd];
        if (e->interest == 0 || e->gen != (uint32_t)(data >> 32))
            continue;
        int events;
        if (what & (EPOLLERR | EPOLLHUP)) {
            events = (int)e->interest;
        } else {
            events = ((what & (EPOLLIN | EPOLLRDHUP)) ? GH_READ : 0) |
                     ((what & EPOLLOUT) ? GH_WRITE : 0);
            events &= (int)e->interest;
        }
        if (events) {
            ready(ctx, fd, events);
            reported++;
        }
    }

    if (n == s->nevents && s->nevents < EPOLL_MAX_EVENTS) {
        struct epoll_event *bigger = realloc(s->events, (size_t)s->nevents * 2 * sizeof(*bigger));
        if (bigger) { /* on failure keep the old buffer: still correct */
            s->events = bigger;
            s->nevents *= 2;
        }
    }
    return reported;
}

const gh_backend_ops gh_backend_epoll = {
    .abi = GH_BACKEND_ABI,
    .name = "epoll",
    .caps = 0,
    .init = epoll_backend_init,
    .destroy = epoll_backend_destroy,
    .watch = epoll_backend_watch,
    .poll = epoll_backend_poll,
};
