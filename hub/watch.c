/*
 * watch.c — callbacks on MAINLOOP: fd watchers (kombu's add_reader and
 * add_writer) and per-iteration hooks (kombu's on_tick, libuv's prepare).
 *
 * A watcher hangs off its fd's slot beside the task waiters; the slot's
 * `watched` is the union of its watchers' directions, and keeps the backend's
 * interest (which is level-triggered as the hub sees it) from being dropped
 * as idle. The backend's ready callback only marks a watcher fired and
 * queues it; the callbacks run after the poll has returned, so a callback
 * may watch, unwatch or close any fd without re-entering the backend in the
 * middle of its own poll. A watcher unwatched while queued is freed when the
 * queue reaches it.
 *
 * Hooks run once per MAINLOOP iteration, before the poll decision, in the
 * order they were added; one added by a hook first runs at the next
 * iteration, one removed by a hook does not run again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "hub/hub.h"

struct gh_watcher {
    gh_hub *hub;
    gh_watcher *next;                /* in the fd slot's list, while active */
    gh_watcher *all_prev, *all_next; /* every watcher of the hub, closed ones too */
    gh_watcher *fired_next;          /* in the hub's fired queue, while fired != 0 */
    void (*cb)(int fd, int events, void *arg);
    void *arg;
    int fd;
    uint8_t events; /* GH_READ | GH_WRITE */
    uint8_t fired;  /* what the backend reported since the last callback */
    bool active;    /* in its fd's slot: not unwatched, the fd not closed */
    bool freed;     /* unwatched while queued: the queue frees it */
};

struct gh_tick {
    gh_hub *hub;
    gh_tick *next;
    void (*cb)(void *arg);
    void *arg;
    bool removed; /* removed while the hooks run: freed once they are done */
};

/* ------------------------------------------------------------ watchers */

static uint8_t watch_union(const gh__fdslot *s)
{
    uint8_t ev = 0;
    for (const gh_watcher *w = s->watchers; w; w = w->next)
        ev |= w->events;
    return ev;
}

/* Take @w out of its slot: no more callbacks, and the hub no longer counts it. */
static void watch_deactivate(gh_hub *h, gh_watcher *w)
{
    if (!w->active)
        return;
    gh__fdslot *s = &h->fds[w->fd];
    for (gh_watcher **p = &s->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    w->next = NULL;
    s->watched = watch_union(s);
    w->active = false;
    h->watchers--;
}

static void watch_unlink_all(gh_hub *h, gh_watcher *w)
{
    if (w->all_prev)
        w->all_prev->all_next = w->all_next;
    else
        h->watch_all = w->all_next;
    if (w->all_next)
        w->all_next->all_prev = w->all_prev;
}

gh_watcher *gh_watch(int fd, int events, void (*cb)(int fd, int events, void *arg), void *arg)
{
    if (fd < 0) {
        errno = EBADF;
        return NULL;
    }
    if (!cb || !events || (events & ~(GH_READ | GH_WRITE))) {
        errno = EINVAL;
        return NULL;
    }
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    /* Not every backend checks the fd when it is watched (poll, select, io_uring). */
    if (fcntl(fd, F_GETFD) < 0) {
        errno = EBADF;
        return NULL;
    }
    int err = gh__fd_slot_reserve(h, fd);
    if (!err && fd == h->inbox.wake_rfd)
        err = -EINVAL;
    gh_watcher *w = NULL;
    if (!err) {
        w = calloc(1, sizeof *w);
        if (!w)
            err = -ENOMEM;
    }
    if (!err) {
        gh__fdslot *s = &h->fds[fd];
        err = gh__fd_interest(h, fd, s->interest | events);
        /* A regular file on epoll: "always ready" would spin the loop; refuse it. */
    }
    if (err) {
        free(w);
        errno = -err;
        return NULL;
    }
    gh__fdslot *s = &h->fds[fd];
    w->hub = h;
    w->cb = cb;
    w->arg = arg;
    w->fd = fd;
    w->events = (uint8_t)events;
    w->active = true;
    w->next = s->watchers;
    s->watchers = w;
    s->watched |= (uint8_t)events;
    w->all_next = h->watch_all;
    if (h->watch_all)
        h->watch_all->all_prev = w;
    h->watch_all = w;
    h->watchers++;
    return w;
}

static void watch_free(gh_hub *h, gh_watcher *w)
{
    watch_deactivate(h, w);
    watch_unlink_all(h, w);
    if (w->fired)
        w->freed = true; /* queued: the dispatch frees it */
    else
        free(w);
}

static void *watch_free_call(void *arg)
{
    gh_watcher *w = arg;
    watch_free(w->hub, w);
    return NULL;
}

int gh_unwatch(gh_watcher *w)
{
    if (!w)
        return -EINVAL;
    gh_hub *h = w->hub;
    if (h == gh__tls_hub) {
        watch_free(h, w);
        return 0;
    }
    /* Another hub's watcher: its hub frees it, on its thread; we wait for that. */
    return gh_call_on(h, watch_free_call, w, NULL, GH_FOREVER);
}

void gh__watch_fired(gh_hub *h, gh__fdslot *s, int events)
{
    for (gh_watcher *w = s->watchers; w; w = w->next) {
        int ev = events & w->events;
        if (!ev)
            continue;
        if (!w->fired) {
            w->fired_next = NULL;
            if (h->fired_tail)
                h->fired_tail->fired_next = w;
            else
                h->fired_head = w;
            h->fired_tail = w;
        }
        w->fired |= (uint8_t)ev;
    }
}

void gh__watch_dispatch(gh_hub *h)
{
    gh_watcher *w;
    while ((w = h->fired_head)) {
        h->fired_head = w->fired_next;
        if (!h->fired_head)
            h->fired_tail = NULL;
        int ev = w->fired;
        w->fired = 0;
        if (w->freed) {
            free(w);
            continue;
        }
        if (!w->active)
            continue; /* its fd was closed after it fired */
        h->ran++;
        w->cb(w->fd, ev, w->arg);
    }
}

void gh__watch_fd_closed(gh_hub *h, int fd)
{
    gh__fdslot *s = &h->fds[fd];
    while (s->watchers)
        watch_deactivate(h, s->watchers);
}

/* ----------------------------------------------------------------- hooks */

gh_tick *gh_tick_add(void (*cb)(void *arg), void *arg)
{
    if (!cb) {
        errno = EINVAL;
        return NULL;
    }
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    gh_tick *k = calloc(1, sizeof *k);
    if (!k) {
        errno = ENOMEM;
        return NULL;
    }
    k->hub = h;
    k->cb = cb;
    k->arg = arg;
    gh_tick **p = &h->ticks;
    while (*p)
        p = &(*p)->next;
    *p = k;
    return k;
}

static void tick_remove(gh_hub *h, gh_tick *k)
{
    if (h->ticks_running) {
        k->removed = true; /* gh__ticks_run unlinks and frees it */
        return;
    }
    for (gh_tick **p = &h->ticks; *p; p = &(*p)->next) {
        if (*p == k) {
            *p = k->next;
            break;
        }
    }
    free(k);
}

static void *tick_remove_call(void *arg)
{
    gh_tick *k = arg;
    tick_remove(k->hub, k);
    return NULL;
}

int gh_tick_remove(gh_tick *k)
{
    if (!k)
        return -EINVAL;
    if (k->hub == gh__tls_hub) {
        tick_remove(k->hub, k);
        return 0;
    }
    return gh_call_on(k->hub, tick_remove_call, k, NULL, GH_FOREVER);
}

void gh__ticks_run(gh_hub *h)
{
    h->ticks_running = true;
    gh_tick *last = h->ticks;
    while (last->next)
        last = last->next; /* hooks added from now on wait for the next iteration */
    for (gh_tick *k = h->ticks;; k = k->next) {
        if (!k->removed)
            k->cb(k->arg);
        if (k == last)
            break;
    }
    h->ticks_running = false;
    for (gh_tick **p = &h->ticks; *p;) {
        gh_tick *k = *p;
        if (k->removed) {
            *p = k->next;
            free(k);
        } else {
            p = &k->next;
        }
    }
}

/* ------------------------------------------------------------- teardown */

void gh__watch_term(gh_hub *h)
{
    /* The fired queue is empty: it only fills between a poll and its dispatch. */
    GH_ASSERT(!h->fired_head);
    while (h->watch_all) {
        gh_watcher *w = h->watch_all;
        watch_deactivate(h, w);
        watch_unlink_all(h, w);
        free(w);
    }
    while (h->ticks) {
        gh_tick *k = h->ticks;
        h->ticks = k->next;
        free(k);
    }
}
