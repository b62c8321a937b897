/*
 * fd.c — the hub's fd table and the one way a task waits for an fd.
 *
 * Per fd number, a slot holds the task waiting to read and the one waiting
 * to write (at most one each per hub) and what the backend watches now.
 * Interest is lazy: it stays registered after a wake (a reader usually waits
 * again soon, and re-arming costs a syscall) and is dropped the first time
 * the fd fires with nobody waiting. Everything in io/ waits through
 * gh__fd_wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/hub.h"

int gh__fd_slot_reserve(gh_hub *h, int fd)
{
    if (fd < h->nfds)
        return 0;
    int n = h->nfds ? h->nfds : 64;
    while (n <= fd)
        n *= 2;
    gh__fdslot *fds = realloc(h->fds, (size_t)n * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    memset(fds + h->nfds, 0, (size_t)(n - h->nfds) * sizeof *fds);
    h->fds = fds;
    h->nfds = n;
    return 0;
}

int gh__fd_interest(gh_hub *h, int fd, int events)
{
    gh__fdslot *s = &h->fds[fd];
    if (s->interest == events)
        return 0;
    int err = h->ops->watch(h->bstate, fd, s->interest, events);
    if (err == 0)
        s->interest = (uint8_t)events;
    return err;
}

/*
 * What a swap carries over for @fd: the directions somebody waits on (and the
 * wakeup fd). Interest nobody waits on is only the lazy cache gh__fd_ready keeps;
 * carrying it would let a stale slot refuse the swap: an fd served earlier and
 * then closed with close() (-EBADF from epoll), or above select's FD_SETSIZE.
 */
int gh__fd_carry(const gh_hub *h, int fd)
{
    const gh__fdslot *s = &h->fds[fd];
    if (fd == h->inbox.wake_rfd)
        return s->interest;
    return s->interest & ((s->reader ? GH_READ : 0) | (s->writer ? GH_WRITE : 0));
}

void gh__fd_ready(void *ctx, int fd, int events)
{
    gh_hub *h = ctx;

    if (fd == h->inbox.wake_rfd) {
        h->wake_pending = true; /* read later: see hub_mainloop in hub.c */
        return;
    }
    if (fd < 0 || fd >= h->nfds)
        return;
    gh__fdslot *s = &h->fds[fd];
    int idle = 0;
    if (events & GH_READ) {
        if (s->reader) {
            gh__task_wake_detach(s->reader, 0);
        } else {
            idle |= GH_READ;
            s->drained = false; /* data came while nobody waited: the next read goes first */
        }
    }
    if (events & GH_WRITE) {
        if (s->writer)
            gh__task_wake_detach(s->writer, 0);
        else
            idle |= GH_WRITE;
    }
    /*
     * Interest stays registered after a wake (a reader usually waits again
     * soon, and re-arming costs a syscall); it is dropped here, the first
     * time it fires with nobody waiting.
     */
    if (idle & s->interest)
        gh__fd_interest(h, fd, s->interest & ~idle);
}

static void fd_stat_waiters(gh_hub *h, int delta)
{
    h->fd_waiters += delta;
    GH__STAT_ADD(&h->stats, fd_waiters, delta);
}

/* Detach a waiting task from its fd slot (wake, timeout, kill, close). */
static void fd_unlink(gh_task *t)
{
    gh_hub *h = gh__task_hub(t);
    int fd = (int)(intptr_t)t->wait_obj;
    gh__fdslot *s = &h->fds[fd];
    if (s->reader == t) {
        s->reader = NULL;
        fd_stat_waiters(h, -1);
    }
    if (s->writer == t) {
        s->writer = NULL;
        fd_stat_waiters(h, -1);
    }
}

static int fd_poll_now(int fd, int events)
{
    struct pollfd p = {.fd = fd, .events = 0};
    if (events & GH_READ)
        p.events |= POLLIN;
    if (events & GH_WRITE)
        p.events |= POLLOUT;
    int n = poll(&p, 1, 0);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    if (p.revents & POLLNVAL)
        return -EBADF;
    return 0;
}

/* Wait for @fd given an absolute @deadline (-1 forever). */
int gh__fd_wait(gh_hub *h, int fd, int events, int64_t deadline)
{
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    if (deadline >= 0 && deadline <= gh_now())
        return fd_poll_now(fd, events);
    err = gh__fd_slot_reserve(h, fd);
    if (err)
        return err;
    gh__fdslot *s = &h->fds[fd];
    if (fd == h->inbox.wake_rfd)
        return -EINVAL;
    if (((events & GH_READ) && s->reader) || ((events & GH_WRITE) && s->writer))
        return -EBUSY;
    err = gh__fd_interest(h, fd, s->interest | events);
    if (err == -EPERM && !(h->ops->caps & GH_BACKEND_FILES_READY)) {
        /*
         * A backend without GH_BACKEND_FILES_READY (epoll, libevent on it)
         * refuses regular files and directories, which poll(2) reports always
         * ready: the hub answers for them, so they are ready on every backend.
         */
        err = fd_poll_now(fd, events);
        return err == -ETIMEDOUT ? -EPERM : err;
    }
    if (err)
        return err;
    gh_task *t = h->sched.current;
    if (events & GH_READ) {
        s->reader = t;
        fd_stat_waiters(h, 1);
    }
    if (events & GH_WRITE) {
        s->writer = t;
        fd_stat_waiters(h, 1);
    }
    return gh__task_park(&h->sched, deadline, fd_unlink, (void *)(intptr_t)fd);
}

int gh_trampoline(int fd, int events, int64_t timeout_ns)
{
    if (fd < 0)
        return -EBADF;
    if (!events || (events & ~(GH_READ | GH_WRITE)) || timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (timeout_ns == 0) {
        int err = gh__can_block(&h->sched);
        return err ? err : fd_poll_now(fd, events);
    }
    return gh__fd_wait(h, fd, events, gh__deadline(timeout_ns));
}

int gh_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    gh_hub *h = gh__tls_hub;
    if (h && fd < h->nfds && fd != h->inbox.wake_rfd && fd != h->inbox.wake_wfd) {
        gh__fdslot *s = &h->fds[fd];
        if (s->reader)
            gh__task_wake_detach(s->reader, -EBADF);
        if (s->writer)
            gh__task_wake_detach(s->writer, -EBADF);
        /* The backend must forget the fd before the number can be reused. */
        gh__fd_interest(h, fd, 0);
        s->interest = 0;
        s->nonblock_known = false;
        s->kind = GH__FD_UNKNOWN;
        s->drained = false;
    } else if (h && (fd == h->inbox.wake_rfd || fd == h->inbox.wake_wfd)) {
        return -EBADF;
    }
    return close(fd) == 0 ? 0 : -errno;
}
