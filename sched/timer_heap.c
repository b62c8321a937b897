/*
 * timer_heap.c — the 4-ary timer heap (see timer_heap.h).
 *
 * A 4-ary heap is shallower than a binary one and its four children share a
 * cache line or two, which is what makes sift-down cheap with a million timers.
 */
#include <errno.h>
#include <stdlib.h>

#include "sched/assert.h"
#include "sched/timer_heap.h"

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
}

void gh__timer_heap_term(gh__timer_heap *th)
{
    free(th->items);
    th->items = NULL;
    th->len = th->cap = 0;
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
void gh__timer_pop_min(gh__timer_heap *th)
{
    gh_timer *t = th->items[0].t;
    t->heap_idx = GH__NOT_IN_HEAP;
    gh__timer_slot last = th->items[--th->len];
    if (th->len > 0 && last.t != t)
        timer_sift_down(th, 0, last);
}
