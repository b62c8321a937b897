/*
 * libev.c — readiness through a private libev loop (never the default loop).
 *
 * Quirks:
 *  - The loop is ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV | EVFLAG_NOSIGMASK |
 *    EVFLAG_NOTIMERFD): libev picks its recommended backend (epoll on Linux),
 *    LIBEV_FLAGS in the environment cannot change it under the hub, and libev
 *    never touches the thread's signal mask nor opens a timerfd we do not need.
 *  - One ev_io per fd, each allocated on its own (libev keeps pointers to
 *    active watchers, so they must never move); the fd -> watcher table grows.
 *    A forgotten fd's watcher is ev_io_stop'ped and kept for reuse.
 *  - libev's default for a failed syscall is perror + abort(). ev_set_syserr_cb
 *    is process-global: we install ours once (pthread_once) — it replaces any
 *    the application set — and it records -errno in a thread-local that poll
 *    returns. libev still aborts on out-of-memory (ev_realloc) and on its own
 *    assertions (Debian builds libev with them: watch() refuses fd < 0).
 *  - Debian's libev asserts (abort) when epoll_ctl says EBADF, i.e. when it
 *    registers a watcher whose fd was closed without being forgotten. So
 *    every fd whose watcher was started since the last ev_run is checked
 *    (fcntl F_GETFD, one syscall per changed fd) right before ev_run; a closed
 *    one is stopped and reported as every watched direction, and checked
 *    again at each later poll (level-triggered) until forgotten or reused.
 *    What this cannot cover: libev re-registers every fd after an epoll_ctl
 *    failure on an event (its "postfork" path); a watched fd closed behind
 *    our back at that moment still trips the assertion. Forget before close.
 *  - Any other fd error makes libev stop the watcher and feed EV_ERROR; it is
 *    reported the same way.
 *  - libev's epoll backend maps EPOLLERR/EPOLLHUP to EV_READ|EV_WRITE, so
 *    those are reported as every watched direction; it never asks for
 *    EPOLLRDHUP, so a peer's half-close is reported as readable only.
 *    Regular files and directories are always ready (libev's epoll backend
 *    falls back to reporting them itself when epoll_ctl says EPERM): caps
 *    GH_BACKEND_FILES_READY.
 *  - poll is one ev_run(EVRUN_ONCE): one wait, then the callbacks, then
 *    back. libev removes a stopped fd from its epoll set lazily, at the fd's
 *    next event, so a wait may end with nothing to report; EINTR too (libev
 *    swallows it and ends the iteration). Both return 0 early, and the hub
 *    polls again with its own re-computed timeout.
 *  - The timeout is an ev_timer armed after ev_now_update, so libev's cached
 *    time neither shortens nor stretches it, and libev rounds its epoll wait
 *    up to milliseconds; poll(-1) arms a day-long timer, because ev_run with
 *    no active watcher would not block. Timeout 0 is EVRUN_NOWAIT.
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "greenhub_backend.h"

#define LIBEV_FOREVER_S 86400.0

/** One fd's watcher; io first, so the ev_io callback can cast back. */
typedef struct libev_fd {
    ev_io io;
    int interest; /* GH_READ|GH_WRITE as the hub watches it, 0 = not watched */
    int killed;   /* stopped after an fd error; on the killed list */
    int changed;  /* started since the last ev_run; on the changed list */
} libev_fd;

typedef struct libev_state {
    struct ev_loop *loop;
    libev_fd **fds; /* indexed by fd, nfds long; NULL = never watched */
    int nfds;
    int *killed; /* fds whose watcher was stopped after an fd error */
    int nkilled;
    int capkilled;
    int *changed; /* fds whose watcher was started since the last ev_run */
    int nchanged;
    int capchanged;
    ev_timer timer;            /* the poll timeout */
    gh_backend_ready_fn ready; /* set for the duration of poll */
    void *ctx;
    int reported; /* fds reported in the current poll */
} libev_state;

static pthread_once_t libev_once = PTHREAD_ONCE_INIT;
static _Thread_local int libev_syserr; /* -errno from libev's syserr callback, or 0 */

static void libev_syserr_cb(const char *msg)
{
    (void)msg;
    int err = errno;
    libev_syserr = err > 0 ? -err : -EIO;
}

static void libev_global_setup(void)
{
    ev_set_syserr_cb(libev_syserr_cb);
}

/* Append fd to a list; 0, or -ENOMEM with the list unchanged. */
static int libev_push(int **list, int *n, int *cap, int fd)
{
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 16;
        int *l = realloc(*list, (size_t)c * sizeof(*l));
        if (!l)
            return -ENOMEM;
        *list = l;
        *cap = c;
    }
    (*list)[(*n)++] = fd;
    return 0;
}

static void libev_report(libev_state *s, int fd, int events)
{
    if (events && s->ready) {
        s->reported++;
        s->ready(s->ctx, fd, events);
    }
}

static void libev_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    libev_fd *e = (libev_fd *)w;
    libev_state *s = w->data;
    int events;
    if (revents & EV_ERROR) {
        /* Without room it is reported now but not re-checked: OOM only. */
        if (!ev_is_active(w) && e->interest && !e->killed &&
            libev_push(&s->killed, &s->nkilled, &s->capkilled, w->fd) == 0)
            e->killed = 1;
        events = e->interest;
    } else {
        events = (((revents & EV_READ) ? GH_READ : 0) | ((revents & EV_WRITE) ? GH_WRITE : 0)) &
                 e->interest;
    }
    libev_report(s, w->fd, events);
}

static void libev_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    /* Nothing to do: its firing ends ev_run(EVRUN_ONCE). */
}

static int libev_backend_init(void **state)
{
    pthread_once(&libev_once, libev_global_setup);
    libev_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    errno = 0;
    s->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOENV | EVFLAG_NOSIGMASK | EVFLAG_NOTIMERFD);
    if (!s->loop) {
        int err = errno > 0 ? -errno : -ENOSYS;
        free(s);
        return err;
    }
    ev_timer_init(&s->timer, libev_timer_cb, 0., 0.);
    s->timer.data = s;
    *state = s;
    return 0;
}

static void libev_backend_destroy(void *state)
{
    libev_state *s = state;
    if (!s)
        return;
    for (int fd = 0; fd < s->nfds; fd++) {
        if (s->fds[fd]) {
            ev_io_stop(s->loop, &s->fds[fd]->io);
            free(s->fds[fd]);
        }
    }
    ev_timer_stop(s->loop, &s->timer);
    ev_loop_destroy(s->loop);
    free(s->fds);
    free(s->killed);
    free(s->changed);
    free(s);
}

static int libev_grow_fds(libev_state *s, int fd)
{
    if (fd < s->nfds)
        return 0;
    int n = s->nfds ? s->nfds : 64;
    while (n <= fd)
        n = n > INT_MAX / 2 ? INT_MAX : n * 2;
    libev_fd **fds = realloc(s->fds, (size_t)n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    for (int i = s->nfds; i < n; i++)
        fds[i] = NULL;
    s->fds = fds;
    s->nfds = n;
    return 0;
}

static int libev_mask(int events)
{
    return ((events & GH_READ) ? EV_READ : 0) | ((events & GH_WRITE) ? EV_WRITE : 0);
}

static int libev_backend_watch(void *state, int fd, int old_events, int new_events)
{
    libev_state *s = state;
    if (fd < 0)
        return -EBADF; /* libev asserts on a negative fd */
    if ((old_events | new_events) & ~(GH_READ | GH_WRITE))
        return -EINVAL;

    if (new_events == 0) {
        if (fd >= s->nfds || !s->fds[fd])
            return 0;
        libev_fd *e = s->fds[fd];
        ev_io_stop(s->loop, &e->io); /* also drops a pending event */
        e->interest = 0;
        e->killed = 0;
        return 0;
    }

    int err = libev_grow_fds(s, fd);
    if (err)
        return err;
    libev_fd *e = s->fds[fd];
    if (!e) {
        if (!(e = calloc(1, sizeof(*e))))
            return -ENOMEM;
        ev_init(&e->io, libev_io_cb);
        e->io.data = s;
        s->fds[fd] = e;
    }
    if (ev_is_active(&e->io)) {
        if (old_events != 0 && e->interest == new_events)
            return 0;
        ev_io_stop(s->loop, &e->io);
    }
    if (old_events != 0 && e->interest != 0 && !e->killed)
        ev_io_modify(&e->io, libev_mask(new_events)); /* same file, new mask */
    else
        ev_io_set(&e->io, fd, libev_mask(new_events)); /* (maybe) a new file: libev re-checks */
    if (!e->changed) {
        if (libev_push(&s->changed, &s->nchanged, &s->capchanged, fd) < 0)
            return -ENOMEM;
        e->changed = 1;
    }
    ev_io_start(s->loop, &e->io);
    e->interest = new_events;
    e->killed = 0;
    return 0;
}

/* Before ev_run registers them, stop the started watchers whose fd is closed
 * (libev would assert on the EBADF) and put them on the killed list, for
 * libev_revive to report. Runs no callback. */
static void libev_check_changed(libev_state *s)
{
    for (int i = 0; i < s->nchanged; i++) {
        int fd = s->changed[i];
        libev_fd *e = s->fds[fd];
        e->changed = 0;
        if (!ev_is_active(&e->io) || fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        ev_io_stop(s->loop, &e->io);
        if (!e->killed && libev_push(&s->killed, &s->nkilled, &s->capkilled, fd) == 0)
            e->killed = 1;
    }
    s->nchanged = 0;
}

/* Stopped watchers of closed fds: report the still-closed fds, restart the
 * others (checked just now, so libev may register them). Callbacks may call
 * watch(), which never adds to the killed list, only takes fds off it. */
static void libev_revive(libev_state *s)
{
    int n = s->nkilled;
    s->nkilled = 0;
    for (int i = 0; i < n; i++) {
        int fd = s->killed[i];
        libev_fd *e = s->fds[fd];
        if (!e->killed)
            continue;
        e->killed = 0;
        if (!e->interest || ev_is_active(&e->io))
            continue;
        if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            e->killed = 1; /* stays on the list (slot nkilled <= i is done) */
            s->killed[s->nkilled++] = fd;
            libev_report(s, fd, e->interest);
        } else {
            ev_io_set(&e->io, fd, libev_mask(e->interest));
            ev_io_start(s->loop, &e->io);
        }
    }
}

static int libev_backend_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    libev_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    s->ready = ready;
    s->ctx = ctx;
    s->reported = 0;
    libev_syserr = 0;
    libev_check_changed(s);
    libev_revive(s);

    /* Closed fds already reported: look at the others, but do not sleep. */
    int flags = EVRUN_NOWAIT;
    if (timeout_ns != 0 && !s->reported) {
        ev_now_update(s->loop);
        double after = timeout_ns < 0 ? LIBEV_FOREVER_S : (double)timeout_ns / 1e9;
        ev_timer_set(&s->timer, after, 0.);
        ev_timer_start(s->loop, &s->timer);
        flags = EVRUN_ONCE;
    }
    ev_run(s->loop, flags);
    ev_timer_stop(s->loop, &s->timer);

    int ret = libev_syserr;
    libev_syserr = 0;
    s->ready = NULL;
    s->ctx = NULL;
    return s->reported ? s->reported : ret;
}

const gh_backend_ops gh_backend_libev = {
    .abi = GH_BACKEND_ABI,
    .name = "libev",
    .caps = GH_BACKEND_FILES_READY,
    .init = libev_backend_init,
    .destroy = libev_backend_destroy,
    .watch = libev_backend_watch,
    .poll = libev_backend_poll,
};
