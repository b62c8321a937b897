/*
 * timer.c — the hub's timers: a 4-ary min-heap on (deadline, sequence).
 *
 * Each timer records its heap index, so cancel is O(log n) without a search.
 * The sequence number makes equal deadlines fire in creation order (FIFO),
 * as libuv's timer heap does. A 4-ary heap is shallower than a binary one and
 * its four children share a cache line or two, which is what makes sift-down
 * cheap with a million timers. Task timeouts are timers embedded in the task
 * (no allocation per wait); callback timers are gh_timer handles.
 */
#include <errno.h>
#include <stdlib.h>

#include "hub/hub.h"

#define HEAP_ARITY 4

static inline bool timer_before(gh__timer_slot a, gh__timer_slot b)
{
    return a.when < b.when || (a.when == b.when && a.t->seq < b.t->seq);
}

static inline void timer_place(gh__timer_heap *th, uint32_t i, gh__timer_slot s)
{
    th->items[i] = s;
    s.t->heap_idx = i;
}

static void timer_sift_up(gh__timer_heap *th, uint32_t i, gh__timer_slot s)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / HEAP_ARITY;
        gh__timer_slot p = th->items[parent];
        if (!timer_before(s, p))
            break;
        timer_place(th, i, p);
        i = parent;
    }
    timer_place(th, i, s);
}

static void timer_sift_down(gh__timer_heap *th, uint32_t i, gh__timer_slot s)
{
    for (;;) {
        uint32_t first = i * HEAP_ARITY + 1;
        if (first >= th->len)
            break;
        uint32_t last = first + HEAP_ARITY < th->len ? first + HEAP_ARITY : th->len;
        uint32_t best = first;
        for (uint32_t c = first + 1; c < last; c++)
            if (timer_before(th->items[c], th->items[best]))
                best = c;
        if (!timer_before(th->items[best], s))
            break;
        timer_place(th, i, th->items[best]);
        i = best;
    }
    timer_place(th, i, s);
}

void gh__timer_heap_init(gh__timer_heap *th)
{
    th->items = NULL;
    th->len = th->cap = 0;
    th->next_seq = 0;
    th->kept = NULL;
    th->nkept = th->capkept = 0;
}

void gh__timer_heap_term(gh__timer_heap *th)
{
    free(th->items);
    th->items = NULL;
    th->len = th->cap = 0;
    free(th->kept); /* the timers themselves: gh__timers_free_kept, or their handles */
    th->kept = NULL;
    th->nkept = th->capkept = 0;
}

/* @t left the heap for good but its handle is held: remember it (seq = index). */
static void timer_keep(gh__timer_heap *th, gh_timer *t)
{
    t->seq = UINT64_MAX;
    if (th->nkept == th->capkept) {
        uint32_t cap = th->capkept ? th->capkept * 2 : 16;
        gh_timer **kept = realloc(th->kept, (size_t)cap * sizeof *kept);
        if (!kept)
            return; /* not remembered: only its thread's exit will not free it */
        th->kept = kept;
        th->capkept = cap;
    }
    t->seq = th->nkept;
    th->kept[th->nkept++] = t;
}

static void timer_unkeep(gh__timer_heap *th, gh_timer *t)
{
    uint64_t i = t->seq;
    if (i >= th->nkept || th->kept[i] != t)
        return;
    gh_timer *last = th->kept[--th->nkept];
    th->kept[i] = last;
    last->seq = i;
}

void gh__timers_free_kept(gh_hub *h)
{
    for (uint32_t i = 0; i < h->timers.nkept; i++)
        free(h->timers.kept[i]);
    h->timers.nkept = 0;
}

int gh__timer_add(gh__timer_heap *th, gh_timer *t)
{
    if (th->len == th->cap) {
        uint32_t cap = th->cap ? th->cap * 2 : 64;
        gh__timer_slot *items = realloc(th->items, (size_t)cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        th->items = items;
        th->cap = cap;
    }
    t->seq = th->next_seq++;
    timer_sift_up(th, th->len++, (gh__timer_slot){t->when, t});
    return 0;
}

void gh__timer_remove(gh__timer_heap *th, gh_timer *t)
{
    uint32_t i = t->heap_idx;
    if (i == GH__NOT_IN_HEAP)
        return;
    GH_ASSERT(i < th->len && th->items[i].t == t);
    t->heap_idx = GH__NOT_IN_HEAP;
    gh__timer_slot last = th->items[--th->len];
    if (last.t == t)
        return;
    if (i > 0 && timer_before(last, th->items[(i - 1) / HEAP_ARITY]))
        timer_sift_up(th, i, last);
    else
        timer_sift_down(th, i, last);
}

/* Take the earliest timer off the heap. */
static void timer_pop_min(gh__timer_heap *th)
{
    gh_timer *t = th->items[0].t;
    t->heap_idx = GH__NOT_IN_HEAP;
    gh__timer_slot last = th->items[--th->len];
    if (th->len > 0 && last.t != t)
        timer_sift_down(th, 0, last);
}

static void timer_account(gh_hub *h, int delta)
{
    h->cb_timers += delta;
    GH__STAT_ADD(h, timers_pending, delta);
}

void gh__timers_fire(gh_hub *h, int64_t now)
{
    gh_timer *t;

    /* Timers added by the callbacks run in a later iteration unless already due. */
    while ((t = gh__timer_peek(&h->timers)) && t->when <= now) {
        timer_pop_min(&h->timers);
        if (t->flags & GH__TIMER_EMBEDDED) {
            t->cb(t->arg);
            continue;
        }
        if (t->interval > 0) {
            /* Keep the phase; skip ticks a busy hub missed instead of bursting. */
            int64_t missed = (now - t->when) / t->interval;
            t->when += (missed + 1) * t->interval;
            t->flags |= GH__TIMER_IN_CB;
            t->cb(t->arg);
            t->flags &= ~GH__TIMER_IN_CB;
            if (t->flags & GH__TIMER_DEAD) {
                timer_account(h, -1);
                free(t);
            } else if (gh__timer_add(&h->timers, t) != 0) {
                /* No memory to re-arm: stop repeating rather than lose the heap. */
                timer_account(h, -1);
                if (t->flags & GH__TIMER_HANDLE) {
                    t->flags |= GH__TIMER_FIRED;
                    timer_keep(&h->timers, t);
                } else {
                    free(t);
                }
            }
            continue;
        }
        timer_account(h, -1);
        t->flags |= GH__TIMER_IN_CB | GH__TIMER_FIRED;
        t->cb(t->arg);
        t->flags &= ~GH__TIMER_IN_CB;
        if ((t->flags & GH__TIMER_DEAD) || !(t->flags & GH__TIMER_HANDLE))
            free(t);
        else
            timer_keep(&h->timers, t);
    }
}

void gh__timers_drop(gh_hub *h, bool repeating_only)
{
    for (uint32_t i = 0; i < h->timers.len;) {
        gh_timer *t = h->timers.items[i].t;
        if ((t->flags & GH__TIMER_EMBEDDED) || (repeating_only && t->interval <= 0)) {
            i++;
            continue;
        }
        gh__timer_remove(&h->timers, t);
        timer_account(h, -1);
        if (t->flags & GH__TIMER_HANDLE) {
            t->flags |= GH__TIMER_FIRED; /* the handle stays valid until cancel/release */
            timer_keep(&h->timers, t);
        } else {
            free(t);
        }
        /* removal moved another timer into slot i: look at it again */
    }
}

/* ------------------------------------------------------------ public API */

static gh_timer *timer_new(int64_t when, int64_t interval, void (*cb)(void *), void *arg)
{
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    gh_timer *t = calloc(1, sizeof *t);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->when = when;
    t->interval = interval;
    t->cb = cb;
    t->arg = arg;
    t->hub = h;
    t->flags = GH__TIMER_HANDLE;
    t->heap_idx = GH__NOT_IN_HEAP;
    if (gh__timer_add(&h->timers, t) != 0) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    timer_account(h, 1);
    return t;
}

gh_timer *gh_call_at(int64_t when_ns, void (*cb)(void *), void *arg)
{
    if (!cb || when_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    return timer_new(when_ns, 0, cb, arg);
}

gh_timer *gh_call_after(int64_t delay_ns, void (*cb)(void *), void *arg)
{
    if (!cb || delay_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    int64_t when = gh__deadline(delay_ns);
    return timer_new(when < 0 ? INT64_MAX : when, 0, cb, arg);
}

gh_timer *gh_call_repeatedly(int64_t interval_ns, void (*cb)(void *), void *arg)
{
    if (!cb || interval_ns <= 0) {
        errno = EINVAL;
        return NULL;
    }
    int64_t when = gh__deadline(interval_ns);
    return timer_new(when < 0 ? INT64_MAX : when, interval_ns, cb, arg);
}

int gh_timer_cancel(gh_timer *t)
{
    if (!t || !(t->flags & GH__TIMER_HANDLE) || (t->flags & GH__TIMER_DEAD) ||
        t->hub != gh__tls_hub)
        return -EINVAL;
    gh_hub *h = t->hub;
    int pending = !(t->flags & GH__TIMER_FIRED);

    if (t->flags & GH__TIMER_IN_CB) {
        /* Its own callback: freed when the callback returns. */
        t->flags |= GH__TIMER_DEAD;
        t->flags &= ~GH__TIMER_HANDLE;
        if (t->interval > 0 && pending)
            return 0;
        return -ENOENT;
    }
    if (t->heap_idx != GH__NOT_IN_HEAP) {
        gh__timer_remove(&h->timers, t);
        timer_account(h, -1);
    } else {
        timer_unkeep(&h->timers, t);
    }
    free(t);
    return pending ? 0 : -ENOENT;
}

void gh_timer_release(gh_timer *t)
{
    if (!t || !(t->flags & GH__TIMER_HANDLE) || t->hub != gh__tls_hub)
        return;
    t->flags &= ~GH__TIMER_HANDLE;
    if ((t->flags & GH__TIMER_FIRED) && !(t->flags & GH__TIMER_IN_CB)) {
        timer_unkeep(&t->hub->timers, t);
        free(t);
    }
}
