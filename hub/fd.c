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
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub/hub.h"

/* Drop what the hub cached about an older file of @fd's number (a gh_close elsewhere). */
static void fd_slot_reset(gh_hub *h, int fd, uint32_t gen)
{
    gh__fdslot *s = &h->fds[fd];
    if (s->watchers)
        gh__watch_fd_closed(h, fd);
    if (s->interest)
        gh__fd_interest(h, fd, 0); /* a backend that keys by number must not keep it */
    s->interest = 0;
    s->nonblock_known = false;
    s->kind = GH__FD_UNKNOWN;
    s->drained = false;
    s->gen = gen;
}

/* Grow the slot array to hold @fd: only for an fd the kernel knows, never overflowing. */
static int fd_slots_grow(gh_hub *h, int fd)
{
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
        return -EBADF; /* before any allocation: fd 1 << 30 costs nothing */
    size_t n = h->nfds ? (size_t)h->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2; /* size_t: fd <= INT_MAX, so n <= 2^31 */
    if (n > (size_t)INT_MAX)
        n = (size_t)INT_MAX; /* slots 0 .. INT_MAX - 1; fd INT_MAX cannot be open */
    if ((size_t)fd >= n)
        return -EBADF;
    gh__fdslot *fds = realloc(h->fds, n * sizeof *fds);
    if (!fds)
        return -ENOMEM;
    memset(fds + h->nfds, 0, (n - (size_t)h->nfds) * sizeof *fds);
    h->fds = fds;
    h->nfds = (int)n;
    return 0;
}

int gh__fd_slot_reserve(gh_hub *h, int fd)
{
    if (__builtin_expect(fd >= h->nfds, 0)) {
        int err = fd_slots_grow(h, fd);
        if (err)
            return err;
        if (!gh__fdent_make(fd))
            return -ENOMEM;
    }
    uint32_t gen = gh__fd_gen(fd);
    if (__builtin_expect(h->fds[fd].gen != gen, 0))
        fd_slot_reset(h, fd, gen);
    return 0;
}

int gh__fd_interest(gh_hub *h, int fd, int events)
{
    gh__fdslot *s = &h->fds[fd];
    if (s->interest == events)
        return 0;
    int err = h->ops->watch(h->bstate, fd, s->interest, events);
    if (err)
        return err;
    if (__builtin_expect(h->embed != NULL, 0))
        gh__embed_mirror(h, fd, s->interest, events);
    /* The process-wide table knows which hubs a gh_close must reach (fdtable.c). */
    gh__fdent *e = gh__fdent_find(fd);
    uint64_t bit = gh__hub_bit(h);
    if (e && !s->interest)
        atomic_fetch_or(&e->hubs, bit);
    else if (e && !events && !s->op_dirs && bit != (uint64_t)1 << 63) /* bit 63 is shared */
        atomic_fetch_and(&e->hubs, ~bit);
    s->interest = (uint8_t)events;
    return 0;
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
    int waited = ((s->reader ? GH_READ : 0) | (s->writer ? GH_WRITE : 0)) & ~s->op_dirs;
    return s->interest & (waited | s->watched);
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
    if (__builtin_expect(s->watchers != NULL, 0)) {
        gh__watch_fired(h, s, events);
        events &= ~s->watched; /* what a watcher wants is not idle */
    }
    int idle = 0;
    if (__builtin_expect(s->op_dirs != 0, 0))
        idle = events & s->op_dirs; /* an op's waiter waits for the op, not for readiness */
    events &= ~s->op_dirs;
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

uint8_t gh__fd_kind(gh_hub *h, int fd)
{
    gh__fdslot *s = &h->fds[fd];
    if (__builtin_expect(s->kind != GH__FD_UNKNOWN, 1))
        return s->kind;
    int type = 0;
    socklen_t len = sizeof type;
    struct stat st;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0)
        s->kind = type == SOCK_STREAM ? GH__FD_STREAM : GH__FD_DGRAM;
    else if (errno == ENOTSOCK && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
        s->kind = GH__FD_PIPE;
    else
        s->kind = GH__FD_OTHER;
    return s->kind;
}

int gh__fd_op_hold(gh_hub *h, int fd, int dir, gh_task *t)
{
    gh__fdslot *s = &h->fds[fd];
    gh_task **slot = dir == GH_READ ? &s->reader : &s->writer;
    if (*slot)
        return -EBUSY;
    *slot = t;
    s->op_dirs |= (uint8_t)dir;
    fd_stat_waiters(h, 1);
    /* A gh_close on another hub must reach this one, interest or not (fdtable.c). */
    gh__fdent *e = gh__fdent_find(fd);
    uint64_t bit = gh__hub_bit(h);
    if (e && !(atomic_load_explicit(&e->hubs, memory_order_relaxed) & bit))
        atomic_fetch_or(&e->hubs, bit);
    return 0;
}

void gh__fd_op_release(gh_hub *h, int fd, gh_task *t)
{
    gh__fdslot *s = &h->fds[fd];
    int dirs = (s->reader == t ? GH_READ : 0) | (s->writer == t ? GH_WRITE : 0);
    dirs &= s->op_dirs;
    if (!dirs)
        return; /* a close reset the slot already */
    if (dirs & GH_READ)
        s->reader = NULL;
    if (dirs & GH_WRITE)
        s->writer = NULL;
    s->op_dirs &= (uint8_t)~dirs;
    fd_stat_waiters(h, -1);
    /*
     * The hub's bit in the fd's entry stays: the next op (a reply, the next
     * read) would set it again at once, an atomic write per op. Stale, it
     * costs only a message to this hub at a close from another.
     */
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
int gh__fd_wait(int fd, int events, int64_t deadline)
{
    gh_hub *h = gh__tls_hub; /* read afresh: a moved task waits on its new hub */
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
    return gh__task_park(&h->sched, deadline, fd_unlink, (void *)(intptr_t)fd, "fd");
}

int gh__fd_adopt_waiter(gh_hub *h, gh_task *t, int fd, int events)
{
    int err = gh__fd_slot_reserve(h, fd);
    if (err)
        return err;
    gh__fdslot *s = &h->fds[fd];
    if (fd == h->inbox.wake_rfd)
        return -EINVAL;
    if (((events & GH_READ) && s->reader) || ((events & GH_WRITE) && s->writer))
        return -EBUSY;
    err = gh__fd_interest(h, fd, s->interest | events);
    if (err == -EPERM && !(h->ops->caps & GH_BACKEND_FILES_READY))
        err = fd_poll_now(fd, events) == 0 ? 1 : -EPERM; /* a regular file: ready now */
    if (err)
        return err;
    if (events & GH_READ) {
        s->reader = t;
        fd_stat_waiters(h, 1);
    }
    if (events & GH_WRITE) {
        s->writer = t;
        fd_stat_waiters(h, 1);
    }
    t->unlink = fd_unlink;
    t->wait_obj = (void *)(intptr_t)fd;
    return 0;
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
    return gh__fd_wait(fd, events, gh__deadline(timeout_ns));
}

/* ------------------------------------------------------------ gh_close */

/* Wake @h's waiters on @fd with -EBADF and make its backend forget @fd. */
static void fd_forget(gh_hub *h, int fd)
{
    if (fd >= h->nfds)
        return;
    gh__fdslot *s = &h->fds[fd];
    if (s->reader)
        gh__task_wake_detach(s->reader, -EBADF);
    if (s->writer)
        gh__task_wake_detach(s->writer, -EBADF);
    fd_slot_reset(h, fd, gh__fd_gen(fd));
}

/*
 * A close that other hubs' backends must hear of first. Each such hub runs
 * fd_close_call on its own thread; the last one wakes the closer, which
 * then closes the fd. A closer that cannot wait (a timer or watcher
 * callback on MAINLOOP) leaves the close itself to the last hub.
 */
typedef struct fd_close {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* a plain thread closing waits here */
    int fd;
    int pending;      /* hubs still to forget the fd */
    bool closer_left; /* the last hub closes the fd and frees this */
    /* A task closing waits green: the last hub posts @wake to it. */
    gh_hub *hub;
    gh_task *task;
    gh__msg *wake;
    uint32_t seq;
} fd_close;

static void fd_close_free(fd_close *c)
{
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->cond);
    free(c);
}

static int fd_close_count(void *arg, int n)
{
    fd_close *c = arg;
    pthread_mutex_lock(&c->lock);
    c->pending = n;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* On each other hub that watched the fd: forget it, and the last one tells the closer. */
static void fd_close_call(gh_hub *h, void *arg)
{
    fd_close *c = arg;
    fd_forget(h, c->fd);
    pthread_mutex_lock(&c->lock);
    if (--c->pending > 0) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (c->closer_left) {
        pthread_mutex_unlock(&c->lock);
        close(c->fd);
        fd_close_free(c);
        return;
    }
    if (c->wake) {
        gh__post_wake_msg(c->hub, c->wake, c->task, c->seq, 0);
        c->wake = NULL;
    }
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/*
 * The closer waits for every other hub, whatever happens: a kill cannot cut
 * it short, or the fd would close while a backend still watches it. A task
 * waits green (killed, it parks again); a plain thread blocks. Returns false
 * when the caller cannot wait at all (MAINLOOP): the last hub closes.
 */
static bool fd_close_wait(fd_close *c, gh_hub *h)
{
    pthread_mutex_lock(&c->lock);
    if (!h) {
        while (c->pending > 0)
            pthread_cond_wait(&c->cond, &c->lock);
        pthread_mutex_unlock(&c->lock);
        return true;
    }
    gh_task *t = h->sched.current;
    if (t == &h->sched.main && c->pending > 0) {
        c->closer_left = true;
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    while (c->pending > 0) {
        if (!c->wake) {
            pthread_mutex_unlock(&c->lock);
            gh__msg *m = gh__msg_alloc_retry();
            pthread_mutex_lock(&c->lock);
            if (c->pending == 0) {
                gh__msg_free(m);
                break;
            }
            c->wake = m;
            c->hub = h;
            c->task = t;
            t->xwakes_inflight++; /* until the message is run, or taken back below */
        }
        c->seq = t->park_seq + 1; /* the park below counts this wait */
        pthread_mutex_unlock(&c->lock);
        h->xwaiters++;
        gh__task_park_uncapped(&h->sched, -1, NULL, NULL, "gh_close of another hub's fd");
        h->xwaiters--;
        pthread_mutex_lock(&c->lock);
    }
    if (c->wake) { /* never posted */
        gh__msg_free(c->wake);
        c->wake = NULL;
        t->xwakes_inflight--;
    }
    pthread_mutex_unlock(&c->lock);
    return true;
}

int gh_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    gh__fdent *e = gh__fdent_find(fd);
    if (e && atomic_load(&e->internal))
        return -EBADF; /* a hub's wakeup fd */
    gh_hub *h = gh__tls_hub;
    if (e) {
        /* New generation first: a hub that cached the old file's flags drops them. */
        atomic_fetch_add(&e->gen, 1);
        uint64_t others = atomic_exchange(&e->hubs, 0);
        if (h)
            fd_forget(h, fd);
        if (h && h->id < 63)
            others &= ~gh__hub_bit(h);
        if (others) {
            fd_close *c = calloc(1, sizeof *c);
            if (!c)
                return -ENOMEM;
            pthread_mutex_init(&c->lock, NULL);
            pthread_cond_init(&c->cond, NULL);
            c->fd = fd;
            if (gh__hubs_call(others, h, fd_close_call, c, fd_close_count) > 0 &&
                !fd_close_wait(c, h))
                return 0; /* the last hub to forget the fd closes it */
            fd_close_free(c);
        }
    } else if (h) {
        fd_forget(h, fd);
    }
    return close(fd) == 0 ? 0 : -errno;
}
