/*
 * timer.c — the hub's callback timers (kombu's call_at / call_later /
 * call_repeatedly) and MAINLOOP's step 2, firing what is due.
 *
 * They live in the scheduler's timer heap (sched/timer_heap.c) beside the
 * task timeouts, which fire their own callback. Callbacks run on MAINLOOP
 * and must not block.
 */
#include <errno.h>
#include <stdlib.h>

#include "hub/hub.h"

/* @t left the heap for good but its handle is held: remember it (seq = index). */
static void timer_keep(gh_hub *h, gh_timer *t)
{
    t->seq = UINT64_MAX;
    if (h->nkept == h->capkept) {
        uint32_t cap = h->capkept ? h->capkept * 2 : 16;
        gh_timer **kept = realloc(h->kept, (size_t)cap * sizeof *kept);
        if (!kept)
            return; /* not remembered: only its thread's exit will not free it */
        h->kept = kept;
        h->capkept = cap;
    }
    t->seq = h->nkept;
    h->kept[h->nkept++] = t;
}

static void timer_unkeep(gh_hub *h, gh_timer *t)
{
    uint64_t i = t->seq;
    if (i >= h->nkept || h->kept[i] != t)
        return;
    gh_timer *last = h->kept[--h->nkept];
    h->kept[i] = last;
    last->seq = i;
}

void gh__timers_free_kept(gh_hub *h)
{
    for (uint32_t i = 0; i < h->nkept; i++)
        free(h->kept[i]);
    h->nkept = 0;
}

void gh__timers_term(gh_hub *h)
{
    /* Handles still out belong to their holders now: cancel or release frees them. */
    for (uint32_t i = 0; i < h->nkept; i++)
        h->kept[i]->sched = NULL;
    free(h->kept);
    h->kept = NULL;
    h->nkept = h->capkept = 0;
}

/* A callback timer enters (+1) or leaves (-1) the heap; an unref'd one keeps no hub running. */
static void timer_account(gh_hub *h, const gh_timer *t, int delta)
{
    if (!(t->flags & GH__TIMER_UNREF))
        h->cb_timers += delta;
    GH__STAT_ADD(&h->stats, timers_pending, delta);
    if (__builtin_expect(h->embed != NULL, 0) && delta > 0)
        gh__embed_timer_added(h, t->when); /* the hub fd must be readable by then */
}

void gh__timers_fire(gh_hub *h, int64_t now)
{
    gh_timer *t = gh__timer_peek(&h->sched.timers);
    if (!t || t->when > now)
        return;
    /* How late this batch fires (loop lag): its earliest timer is the latest one. */
    int64_t lag = now - t->when;
    atomic_store_explicit(&h->stats.lag_ns, lag, memory_order_relaxed);
    if (lag > atomic_load_explicit(&h->stats.lag_max_ns, memory_order_relaxed))
        atomic_store_explicit(&h->stats.lag_max_ns, lag, memory_order_relaxed);

    /* Timers added by the callbacks run in a later iteration unless already due. */
    while ((t = gh__timer_peek(&h->sched.timers)) && t->when <= now) {
        gh__timer_pop_min(&h->sched.timers);
        if (t->flags & GH__TIMER_EMBEDDED) {
            t->cb(t->arg);
            continue;
        }
        if (t->interval > 0) {
            /* Keep the phase; skip ticks a busy hub missed instead of bursting. */
            int64_t missed = (now - t->when) / t->interval;
            t->when += (missed + 1) * t->interval;
            t->flags |= GH__TIMER_IN_CB;
            h->ran++;
            t->cb(t->arg);
            t->flags &= ~GH__TIMER_IN_CB;
            if (t->flags & GH__TIMER_DEAD) {
                timer_account(h, t, -1);
                free(t);
            } else if (gh__timer_add(&h->sched.timers, t) != 0) {
                /* No memory to re-arm: stop repeating rather than lose the heap. */
                timer_account(h, t, -1);
                if (t->flags & GH__TIMER_HANDLE) {
                    t->flags |= GH__TIMER_FIRED;
                    timer_keep(h, t);
                } else {
                    free(t);
                }
            }
            continue;
        }
        timer_account(h, t, -1);
        t->flags |= GH__TIMER_IN_CB | GH__TIMER_FIRED;
        h->ran++;
        t->cb(t->arg);
        t->flags &= ~GH__TIMER_IN_CB;
        if ((t->flags & GH__TIMER_DEAD) || !(t->flags & GH__TIMER_HANDLE))
            free(t);
        else
            timer_keep(h, t);
    }
}

void gh__timers_drop(gh_hub *h, bool repeating_only)
{
    for (uint32_t i = 0; i < h->sched.timers.len;) {
        gh_timer *t = h->sched.timers.items[i].t;
        if ((t->flags & GH__TIMER_EMBEDDED) || (repeating_only && t->interval <= 0)) {
            i++;
            continue;
        }
        gh__timer_remove(&h->sched.timers, t);
        timer_account(h, t, -1);
        if (t->flags & GH__TIMER_HANDLE) {
            t->flags |= GH__TIMER_FIRED; /* the handle stays valid until cancel/release */
            timer_keep(h, t);
        } else {
            free(t);
        }
        /* removal moved another timer into slot i: look at it again */
    }
}

/* ------------------------------------------------------------ public API */

static gh_timer *timer_new(int64_t when, int64_t interval, int64_t delay, void (*cb)(void *),
                           void *arg)
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
    t->delay = delay;
    t->cb = cb;
    t->arg = arg;
    t->sched = &h->sched;
    t->flags = GH__TIMER_HANDLE;
    t->heap_idx = GH__NOT_IN_HEAP;
    if (gh__timer_add(&h->sched.timers, t) != 0) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    timer_account(h, t, 1);
    return t;
}

gh_timer *gh_call_at(int64_t when_ns, void (*cb)(void *), void *arg)
{
    if (!cb || when_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    int64_t now = gh_now();
    return timer_new(when_ns, 0, when_ns > now ? when_ns - now : 0, cb, arg);
}

gh_timer *gh_call_after(int64_t delay_ns, void (*cb)(void *), void *arg)
{
    if (!cb || delay_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    int64_t when = gh__deadline(delay_ns);
    return timer_new(when < 0 ? INT64_MAX : when, 0, delay_ns, cb, arg);
}

gh_timer *gh_call_repeatedly(int64_t interval_ns, void (*cb)(void *), void *arg)
{
    if (!cb || interval_ns <= 0) {
        errno = EINVAL;
        return NULL;
    }
    int64_t when = gh__deadline(interval_ns);
    return timer_new(when < 0 ? INT64_MAX : when, interval_ns, interval_ns, cb, arg);
}

int gh_timer_cancel(gh_timer *t)
{
    if (t && !t->sched && (t->flags & GH__TIMER_HANDLE)) {
        free(t); /* its hub was closed: it never fires again */
        return -ENOENT;
    }
    if (!t || !(t->flags & GH__TIMER_HANDLE) || (t->flags & GH__TIMER_DEAD) || !gh__tls_hub ||
        t->sched != &gh__tls_hub->sched)
        return -EINVAL;
    gh_hub *h = gh__tls_hub;
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
        gh__timer_remove(&h->sched.timers, t);
        timer_account(h, t, -1);
    } else {
        timer_unkeep(h, t);
    }
    free(t);
    return pending ? 0 : -ENOENT;
}

void gh_timer_unref(gh_timer *t)
{
    gh_hub *h = gh__tls_hub;
    if (!t || !(t->flags & GH__TIMER_HANDLE) || (t->flags & (GH__TIMER_UNREF | GH__TIMER_DEAD)) ||
        !h || t->sched != &h->sched)
        return;
    if (t->heap_idx != GH__NOT_IN_HEAP)
        h->cb_timers--; /* it is pending: it stops counting now */
    t->flags |= GH__TIMER_UNREF;
}

int gh_timer_again(gh_timer *t)
{
    gh_hub *h = gh__tls_hub;
    if (!t || !(t->flags & GH__TIMER_HANDLE) || (t->flags & GH__TIMER_DEAD) || !h ||
        t->sched != &h->sched)
        return -EINVAL;
    if (t->flags & GH__TIMER_IN_CB)
        return -EBUSY; /* from its own callback: the firing loop owns it now */
    int64_t period = t->interval > 0 ? t->interval : t->delay;
    int64_t when = gh__deadline(period);
    if (t->heap_idx != GH__NOT_IN_HEAP) {
        gh__timer_remove(&h->sched.timers, t);
        timer_account(h, t, -1);
    } else {
        timer_unkeep(h, t); /* a one-shot that fired: armed again */
    }
    t->flags &= ~GH__TIMER_FIRED;
    t->when = when < 0 ? INT64_MAX : when;
    if (gh__timer_add(&h->sched.timers, t) != 0) {
        t->flags |= GH__TIMER_FIRED;
        timer_keep(h, t);
        return -ENOMEM;
    }
    timer_account(h, t, 1);
    return 0;
}

void gh_timer_release(gh_timer *t)
{
    if (t && !t->sched && (t->flags & GH__TIMER_HANDLE)) {
        free(t); /* its hub was closed */
        return;
    }
    gh_hub *h = gh__tls_hub;
    if (!t || !(t->flags & GH__TIMER_HANDLE) || !h || t->sched != &h->sched)
        return;
    t->flags &= ~GH__TIMER_HANDLE;
    if ((t->flags & GH__TIMER_FIRED) && !(t->flags & GH__TIMER_IN_CB)) {
        timer_unkeep(h, t);
        free(t);
    }
}
