/*
 * libevent.c — readiness through a private libevent 2.x event_base.
 *
 * Quirks:
 *  - Debian's libev.so.4 exports libevent's names too (event_add,
 *    event_base_new, ...). init makes sure they are libevent's: the symbol
 *    event_get_version_number (libevent only) must resolve through
 *    dlsym(RTLD_DEFAULT), report 2.x, and live in the same object as the
 *    event_base_new and event_add we call. Otherwise -ENOSYS. (So a greenhub
 *    dlopen'ed with RTLD_LOCAL, or linked statically, reports -ENOSYS too.)
 *  - The base is made with EVENT_BASE_FLAG_NOLOCK (one thread uses it),
 *    IGNORE_ENV (EVENT_NO* variables cannot switch the method under the hub)
 *    and PRECISE_TIMER (CLOCK_MONOTONIC, not the coarse clock that could end a
 *    timeout up to a tick early; on epoll it also gives a timerfd, so
 *    sub-millisecond timeouts).
 *  - One persistent event (EV_PERSIST) per fd; a change of interest is
 *    event_del + event_assign + event_add. Forgetting is event_del, which
 *    also takes the event off the active queue, so an fd forgotten by a ready
 *    callback is not reported later in the same poll.
 *  - EV_CLOSED (EPOLLRDHUP, the peer's half-close) is asked for with GH_READ
 *    where the method has EV_FEATURE_EARLY_CLOSE and is reported as GH_READ
 *    only; EPOLLERR/EPOLLHUP, which libevent maps to EV_READ|EV_WRITE (for
 *    the directions the event was added with), are every watched direction.
 *  - event_add on a closed fd fails (-EBADF), on a regular file or a
 *    directory with epoll -EPERM; libevent also prints a warning to stderr
 *    for those (we do not replace the process-global log callback). So caps
 *    has no GH_BACKEND_FILES_READY: the hub answers for such fds itself.
 *  - libevent restarts its wait after EINTR: a signal does NOT end poll
 *    early; poll returns at an event or at the timeout. Wake a hub through its
 *    wakeup fd, which works on every backend.
 *  - The timeout is a timer event, rounded up to microseconds; poll(-1) arms
 *    a day-long one (event_base_loop returns at once with nothing pending).
 *    Timeout 0 is EVLOOP_NONBLOCK|EVLOOP_ONCE (NONBLOCK alone keeps looping
 *    while a level-triggered fd stays active). poll is one
 *    event_base_loop(EVLOOP_ONCE), which itself keeps waiting until some
 *    event (an fd's, or the timer) is active; if the active fd events all
 *    had nothing to report, poll returns 0 early and the hub polls again
 *    with its own re-computed timeout.
 *  - libevent calls exit/abort on its own fatal internal errors (event_errx);
 *    that cannot be turned off, only observed (event_set_fatal_callback).
 */
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "greenhub_backend.h"

#define LIBEVENT_FOREVER_S 86400

/** Per-fd bookkeeping, indexed by fd. */
typedef struct libevent_fd {
    struct event *ev; /* allocated on first watch, reused; NULL = never watched */
    int interest;     /* GH_READ|GH_WRITE as the hub watches it, 0 = not added */
} libevent_fd;

typedef struct libevent_state {
    struct event_base *base;
    int early_close;  /* the method supports EV_CLOSED */
    libevent_fd *fds; /* indexed by fd, nfds long */
    int nfds;
    struct event *timer;       /* the poll timeout */
    gh_backend_ready_fn ready; /* set for the duration of poll */
    void *ctx;
    int reported; /* fds reported in the current poll */
} libevent_state;

/* Are event_* really libevent 2.x, and not libev's look-alikes? */
static int libevent_is_real(void)
{
    void *ver_sym = dlsym(RTLD_DEFAULT, "event_get_version_number");
    if (!ver_sym)
        return 0;
    ev_uint32_t (*ver)(void);
    memcpy(&ver, &ver_sym, sizeof(ver));
    if ((ver() >> 24) != 2)
        return 0;
    const char *names[] = {"event_base_new", "event_add"};
    Dl_info lib;
    if (!dladdr(ver_sym, &lib))
        return 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        Dl_info other;
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        if (!sym || !dladdr(sym, &other) || other.dli_fbase != lib.dli_fbase)
            return 0;
    }
    return 1;
}

static void libevent_io_cb(evutil_socket_t fd, short what, void *arg)
{
    libevent_state *s = arg;
    if (fd < 0 || fd >= s->nfds)
        return;
    int interest = s->fds[fd].interest;
    int events =
        (((what & (EV_READ | EV_CLOSED)) ? GH_READ : 0) | ((what & EV_WRITE) ? GH_WRITE : 0)) &
        interest;
    if (events && s->ready) {
        s->reported++;
        s->ready(s->ctx, (int)fd, events);
    }
}

static void libevent_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    /* Nothing to do: its firing ends event_base_loop(EVLOOP_ONCE). */
}

static int libevent_backend_init(void **state)
{
    if (!libevent_is_real())
        return -ENOSYS;
    libevent_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    struct event_config *cfg = event_config_new();
    if (!cfg) {
        free(s);
        return -ENOMEM;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_IGNORE_ENV |
                                   EVENT_BASE_FLAG_PRECISE_TIMER);
    errno = 0;
    s->base = event_base_new_with_config(cfg);
    int err = errno > 0 ? -errno : -ENOMEM;
    event_config_free(cfg);
    if (!s->base) {
        free(s);
        return err;
    }
    s->early_close = (event_base_get_features(s->base) & EV_FEATURE_EARLY_CLOSE) != 0;
    s->timer = evtimer_new(s->base, libevent_timer_cb, s);
    if (!s->timer) {
        event_base_free(s->base);
        free(s);
        return -ENOMEM;
    }
    *state = s;
    return 0;
}

static void libevent_backend_destroy(void *state)
{
    libevent_state *s = state;
    if (!s)
        return;
    for (int fd = 0; fd < s->nfds; fd++)
        if (s->fds[fd].ev)
            event_free(s->fds[fd].ev); /* deletes it first if added */
    event_free(s->timer);
    event_base_free(s->base);
    free(s->fds);
    free(s);
}

static int libevent_grow_fds(libevent_state *s, int fd)
{
    if (fd < s->nfds)
        return 0;
    int n = s->nfds ? s->nfds : 64;
    while (n <= fd)
        n = n > INT_MAX / 2 ? INT_MAX : n * 2;
    libevent_fd *fds = realloc(s->fds, (size_t)n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    for (int i = s->nfds; i < n; i++)
        fds[i] = (libevent_fd){NULL, 0};
    s->fds = fds;
    s->nfds = n;
    return 0;
}

static int libevent_backend_watch(void *state, int fd, int old_events, int new_events)
{
    libevent_state *s = state;
    if (fd < 0)
        return -EBADF;
    if ((old_events | new_events) & ~(GH_READ | GH_WRITE))
        return -EINVAL;

    if (new_events == 0) {
        if (fd < s->nfds && s->fds[fd].interest) {
            event_del(s->fds[fd].ev);
            s->fds[fd].interest = 0;
        }
        return 0;
    }

    int err = libevent_grow_fds(s, fd);
    if (err)
        return err;
    libevent_fd *e = &s->fds[fd];
    if (old_events != 0 && e->interest == new_events)
        return 0;

    short what = EV_PERSIST;
    if (new_events & GH_READ)
        what |= EV_READ | (s->early_close ? EV_CLOSED : 0);
    if (new_events & GH_WRITE)
        what |= EV_WRITE;
    if (!e->ev) {
        e->ev = event_new(s->base, fd, what, libevent_io_cb, s);
        if (!e->ev)
            return -ENOMEM;
    } else {
        if (e->interest) {
            event_del(e->ev);
            e->interest = 0;
        }
        if (event_assign(e->ev, s->base, fd, what, libevent_io_cb, s) < 0)
            return -EINVAL;
    }
    errno = 0;
    if (event_add(e->ev, NULL) < 0)
        return errno > 0 ? -errno : -EIO;
    e->interest = new_events;
    return 0;
}

static int libevent_backend_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready,
                                 void *ctx)
{
    libevent_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    /* NONBLOCK alone loops while an fd stays active (level-triggered:
     * forever); with ONCE it stops after one round of callbacks. */
    int flags = EVLOOP_NONBLOCK | EVLOOP_ONCE;
    if (timeout_ns != 0) {
        struct timeval tv = {.tv_sec = LIBEVENT_FOREVER_S, .tv_usec = 0};
        if (timeout_ns > 0 && timeout_ns < (int64_t)LIBEVENT_FOREVER_S * 1000000000) {
            int64_t us = (timeout_ns + 999) / 1000; /* round up: never early */
            tv.tv_sec = (time_t)(us / 1000000);
            tv.tv_usec = (suseconds_t)(us % 1000000);
        }
        if (evtimer_add(s->timer, &tv) < 0)
            return -ENOMEM;
        flags = EVLOOP_ONCE;
    }
    s->ready = ready;
    s->ctx = ctx;
    s->reported = 0;
    errno = 0;
    int r = event_base_loop(s->base, flags);
    int loop_errno = errno;
    evtimer_del(s->timer);
    s->ready = NULL;
    s->ctx = NULL;
    if (s->reported)
        return s->reported;
    return r < 0 ? (loop_errno > 0 ? -loop_errno : -EIO) : 0;
}

const gh_backend_ops gh_backend_libevent = {
    .abi = GH_BACKEND_ABI,
    .name = "libevent",
    .caps = 0,
    .init = libevent_backend_init,
    .destroy = libevent_backend_destroy,
    .watch = libevent_backend_watch,
    .poll = libevent_backend_poll,
};
