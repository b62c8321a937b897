/*
 * poll.c — the poll(2) backend (ppoll, nanosecond timeouts).
 *
 * Quirks:
 *  - A dense pollfd array plus an fd -> index map; forgetting an fd moves the
 *    last pollfd into its slot, so watch is O(1) and poll is O(watched fds).
 *  - The ready callback may call watch() and so reorder the array. poll first
 *    copies (fd, revents, generation) of every ready slot into a side list,
 *    then dispatches from the list, re-checking each fd's current interest and
 *    generation: a forgotten fd, or a new fd that took a forgotten one's number
 *    inside a callback, is not reported from the stale revents.
 *  - POLLERR, POLLHUP and POLLNVAL (an fd closed behind our back) are
 *    reported as every watched direction, so the task's retry sees the real
 *    error; a closed fd stays "ready" until it is forgotten. POLLRDHUP (asked
 *    for with GH_READ: the peer's half-close) is GH_READ only.
 *  - Regular files and directories are always ready, as poll(2) says: caps
 *    GH_BACKEND_FILES_READY.
 *  - poll is one ppoll: a wait that saw only stale revents, or EINTR, returns
 *    0 early and the hub polls again with its own re-computed timeout.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "greenhub_backend.h"

/** Per-fd bookkeeping, indexed by fd. */
typedef struct poll_fd {
    int index;    /* slot in pfds, -1 when not watched */
    uint32_t gen; /* bumped each time the fd starts being watched */
} poll_fd;

/** A ready slot copied out before dispatch. */
typedef struct poll_ready {
    int fd;
    short revents;
    uint32_t gen;
} poll_ready;

typedef struct poll_state {
    struct pollfd *pfds; /* dense array of watched fds, npfds used */
    int npfds;
    int cappfds;       /* capacity of pfds and of ready */
    poll_ready *ready; /* side list for dispatch */
    poll_fd *fds;      /* fd -> slot map, nfds long */
    int nfds;
} poll_state;

static int poll_backend_init(void **state)
{
    poll_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *state = s;
    return 0;
}

static void poll_backend_destroy(void *state)
{
    poll_state *s = state;
    if (!s)
        return;
    free(s->pfds);
    free(s->ready);
    free(s->fds);
    free(s);
}

static int poll_grow_map(poll_state *s, int fd)
{
    if (fd < s->nfds)
        return 0;
    int n = s->nfds ? s->nfds : 64;
    while (n <= fd)
        n = n > INT_MAX / 2 ? INT_MAX : n * 2;
    poll_fd *fds = realloc(s->fds, (size_t)n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    for (int i = s->nfds; i < n; i++)
        fds[i] = (poll_fd){-1, 0};
    s->fds = fds;
    s->nfds = n;
    return 0;
}

static int poll_grow_slots(poll_state *s)
{
    if (s->npfds < s->cappfds)
        return 0;
    int n = s->cappfds ? s->cappfds * 2 : 64;
    struct pollfd *pfds = realloc(s->pfds, (size_t)n * sizeof(*pfds));
    if (!pfds)
        return -ENOMEM;
    s->pfds = pfds;
    poll_ready *ready = realloc(s->ready, (size_t)n * sizeof(*ready));
    if (!ready)
        return -ENOMEM; /* pfds is merely larger than needed: still consistent */
    s->ready = ready;
    s->cappfds = n;
    return 0;
}

static short poll_mask(int events)
{
    return (short)(((events & GH_READ) ? POLLIN | POLLRDHUP : 0) |
                   ((events & GH_WRITE) ? POLLOUT : 0));
}

static int poll_backend_watch(void *state, int fd, int old_events, int new_events)
{
    poll_state *s = state;
    if (fd < 0)
        return -EBADF;
    if ((old_events | new_events) & ~(GH_READ | GH_WRITE))
        return -EINVAL;

    if (new_events == 0) {
        if (fd >= s->nfds || s->fds[fd].index < 0)
            return 0;
        int i = s->fds[fd].index;
        int last = --s->npfds;
        if (i != last) {
            s->pfds[i] = s->pfds[last];
            s->fds[s->pfds[i].fd].index = i;
        }
        s->fds[fd].index = -1;
        return 0;
    }

    int err = poll_grow_map(s, fd);
    if (err)
        return err;
    if (s->fds[fd].index < 0) {
        if ((err = poll_grow_slots(s)))
            return err;
        int i = s->npfds++;
        s->pfds[i] = (struct pollfd){.fd = fd, .events = 0, .revents = 0};
        s->fds[fd].index = i;
        s->fds[fd].gen++;
    }
    s->pfds[s->fds[fd].index].events = poll_mask(new_events);
    return 0;
}

static int poll_backend_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    poll_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    int n = ppoll(s->pfds, (nfds_t)s->npfds, tsp, NULL);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;

    /* Copy out first: callbacks may reorder pfds through watch(). */
    int nready = 0;
    for (int i = 0; i < s->npfds && nready < n; i++) {
        if (s->pfds[i].revents) {
            int fd = s->pfds[i].fd;
            s->ready[nready++] = (poll_ready){fd, s->pfds[i].revents, s->fds[fd].gen};
        }
    }

    int reported = 0;
    for (int k = 0; k < nready; k++) {
        /* Index afresh each time: a callback's watch() may realloc ready and fds. */
        poll_ready r = s->ready[k];
        poll_fd *f = &s->fds[r.fd];
        if (f->index < 0 || f->gen != r.gen)
            continue;
        short want = s->pfds[f->index].events;
        int interest = ((want & POLLIN) ? GH_READ : 0) | ((want & POLLOUT) ? GH_WRITE : 0);
        int events;
        if (r.revents & (POLLERR | POLLHUP | POLLNVAL))
            events = interest;
        else
            events = (((r.revents & (POLLIN | POLLRDHUP)) ? GH_READ : 0) |
                      ((r.revents & POLLOUT) ? GH_WRITE : 0)) &
                     interest;
        if (events) {
            ready(ctx, r.fd, events);
            reported++;
        }
    }
    return reported;
}

const gh_backend_ops gh_backend_poll = {
    .abi = GH_BACKEND_ABI,
    .name = "poll",
    .caps = GH_BACKEND_FILES_READY,
    .init = poll_backend_init,
    .destroy = poll_backend_destroy,
    .watch = poll_backend_watch,
    .poll = poll_backend_poll,
};
