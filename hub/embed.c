/*
 * embed.c — driving a hub from another loop: gh_hub_run_once and gh_hub_fd.
 *
 * gh_hub_run_once parks the root like gh_hub_run, with the hub in "once"
 * mode: MAINLOOP runs its iteration, and hub_poll_timeout (hub.c) wakes the
 * root as soon as something ran, or once the timeout has passed and the
 * backend was polled at least once (so a zero timeout still collects the fd
 * events ready now). The count is the scheduler's task runs plus the hub's
 * callback runs (timers, watchers).
 *
 * gh_hub_fd is one epoll fd, the same on every backend, readable whenever
 * the hub has work:
 *   - a mirror of every fd the hub's backend watches (gh__fd_interest keeps
 *     it in step; the hub's interest is level-triggered, so the mirror is);
 *   - the hub's wakeup fd, which producers write once the hub says it
 *     sleeps: between two run_once calls it does (the root is out of the
 *     loop), so a handoff from another thread makes the fd readable;
 *   - a timerfd on gh_now's clock, armed at the next timer when run_once
 *     returns, at once when work is ready then, and again when the root
 *     readies a task or adds an earlier timer in between.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "hub/hub.h"
#include "sched/log.h"

struct gh__embed {
    int epfd;           /* what gh_hub_fd returns */
    int tfd;            /* the timerfd inside it */
    int64_t armed_when; /* the timerfd's deadline, 0 = fires now, -1 = disarmed */
};

static uint32_t embed_mask(int events)
{
    return (events & GH_READ ? EPOLLIN : 0) | (events & GH_WRITE ? EPOLLOUT : 0);
}

static void embed_arm(gh_hub *h, int64_t when)
{
    gh__embed *e = h->embed;
    if (e->armed_when == when)
        return;
    struct itimerspec its = {0};
    if (when == 0) {
        its.it_value.tv_nsec = 1; /* relative: at once */
    } else if (when > 0) {
        its.it_value.tv_sec = when / GH_SEC;
        its.it_value.tv_nsec = when % GH_SEC;
    }
    int flags = when > 0 ? TFD_TIMER_ABSTIME : 0;
    if (timerfd_settime(e->tfd, flags, &its, NULL) == 0)
        e->armed_when = when;
}

/* When the hub next has work, as embed_arm wants it: 0 now, -1 never, else a deadline. */
static int64_t embed_next(gh_hub *h)
{
    gh__inbox *in = &h->inbox;
    if (h->sched.rq_head || atomic_load(&in->head) != in->tail ||
        atomic_load_explicit(&h->break_requested, memory_order_relaxed))
        return 0;
    gh_timer *t = gh__timer_peek(&h->sched.timers);
    if (!t)
        return -1;
    return t->when > 0 ? t->when : 0;
}

/* The root leaves the loop: producers must write the wakeup fd from now on. */
static void embed_leave(gh_hub *h)
{
    atomic_store(&h->inbox.sleep_state, GH__INBOX_SLEEPING);
    h->embed->armed_when = -2; /* unknown: whatever embed_next says is (re)armed */
    embed_arm(h, embed_next(h));
}

static void embed_root_ready(gh__sched *s)
{
    gh_hub *h = (gh_hub *)s;
    if (h->embed->armed_when != 0)
        embed_arm(h, 0);
}

void gh__embed_timer_added(gh_hub *h, int64_t when)
{
    gh__embed *e = h->embed;
    if (h->sched.current != &h->sched.root || h->once_active)
        return; /* inside the loop: run_once re-arms on the way out */
    if (e->armed_when < 0 || when < e->armed_when)
        embed_arm(h, when > 0 ? when : 0);
}

void gh__embed_mirror(gh_hub *h, int fd, int old_events, int events)
{
    if (fd == h->inbox.wake_rfd)
        return; /* in the set on its own, for good */
    struct epoll_event ev = {.events = embed_mask(events), .data.fd = fd};
    int op = !old_events ? EPOLL_CTL_ADD : !events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(h->embed->epfd, op, fd, &ev) < 0 && op == EPOLL_CTL_MOD && errno == ENOENT)
        epoll_ctl(h->embed->epfd, EPOLL_CTL_ADD, fd, &ev); /* closed and reopened behind us */
}

static void embed_internal(int fd, bool internal)
{
    gh__fdent *e = internal ? gh__fdent_make(fd) : gh__fdent_find(fd);
    if (e)
        atomic_store(&e->internal, internal);
}

void gh__embed_term(gh_hub *h)
{
    gh__embed *e = h->embed;
    if (!e)
        return;
    h->embed = NULL;
    h->sched.root_ready = NULL;
    embed_internal(e->epfd, false);
    embed_internal(e->tfd, false);
    close(e->epfd);
    close(e->tfd);
    free(e);
}

int gh_hub_fd(void)
{
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (h->embed)
        return h->embed->epfd;
    gh__embed *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int err = e->epfd < 0 || e->tfd < 0 ? -errno : 0;
    struct epoll_event ev = {.events = EPOLLIN};
    if (!err) {
        ev.data.fd = e->tfd;
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->tfd, &ev) < 0)
            err = -errno;
    }
    if (!err) {
        ev.data.fd = h->inbox.wake_rfd;
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, h->inbox.wake_rfd, &ev) < 0)
            err = -errno;
    }
    if (!err && (!gh__fdent_make(e->epfd) || !gh__fdent_make(e->tfd)))
        err = -ENOMEM;
    if (err) {
        if (e->epfd >= 0)
            close(e->epfd);
        if (e->tfd >= 0)
            close(e->tfd);
        free(e);
        return err;
    }
    embed_internal(e->epfd, true); /* gh_close refuses them, as the wakeup fd */
    embed_internal(e->tfd, true);
    e->armed_when = -1;
    h->embed = e;
    /*
     * The hub fd mirrors readiness: a backend op's completion would not make
     * it readable. Ops in flight are cancelled and made again by readiness.
     */
    h->complete = false;
    if (h->ops_inflight && gh__ops_drain(h) != 0)
        gh__log(GH_LOG_WARN, "gh_hub_fd: %u backend ops would not end; they finish at a later poll",
                h->ops_inflight);
    for (int fd = 0; fd < h->nfds; fd++)
        if (h->fds[fd].interest && fd != h->inbox.wake_rfd)
            gh__embed_mirror(h, fd, 0, h->fds[fd].interest);
    h->sched.root_ready = embed_root_ready;
    if (h->sched.current == &h->sched.root)
        embed_leave(h); /* the outer loop is about to wait on it */
    return e->epfd;
}

/* ------------------------------------------------------------- run once */

int gh_hub_run_once(int64_t timeout_ns)
{
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (h->sched.current != &h->sched.root)
        return -EPERM;
    if (h->sched.root.killed)
        return -ECANCELED;
    if (atomic_exchange(&h->break_requested, false))
        return -EINTR;
    if (h->embed)
        atomic_store(&h->inbox.sleep_state, GH__INBOX_AWAKE);
    h->once_active = true;
    h->once_polled = false;
    h->once_deadline = gh__deadline(timeout_ns);
    h->once_base = h->sched.ran + h->ran;
    int err = gh__task_park_uncapped(&h->sched, -1, NULL, NULL, "gh_hub_run_once");
    h->once_active = false;
    uint64_t ran = h->sched.ran + h->ran - h->once_base;
    if (h->embed)
        embed_leave(h);
    if (err)
        return err;
    return ran > INT_MAX ? INT_MAX : (int)ran;
}
