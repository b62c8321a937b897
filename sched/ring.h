/*
 * ring.h — the one ring buffer of greenhub: a FIFO of void * items with a
 * capacity fixed at init, pushed at the tail and popped at the head.
 *
 * The struct is the public header's gh_ring, because gh_queue embeds one by
 * value. A capacity of 0 is allowed (gh_chan unbuffered): the ring is then
 * both empty and full and holds no memory. Callers check full/empty first;
 * pushing into a full ring or popping an empty one is a bug.
 */
#ifndef GH_SCHED_RING_H
#define GH_SCHED_RING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "greenhub.h"
#include "sched/assert.h"

/* Give @r @cap slots. @return 0; -EINVAL if too large; -ENOMEM. */
static inline int gh__ring_init(gh_ring *r, size_t cap)
{
    if (cap > SIZE_MAX / sizeof(void *))
        return -EINVAL;
    r->slots = NULL;
    if (cap) {
        r->slots = malloc(cap * sizeof *r->slots);
        if (!r->slots)
            return -ENOMEM;
    }
    r->cap = cap;
    r->head = r->len = 0;
    return 0;
}

/* Free @r's slots (items still in it are dropped); it reads as empty with capacity 0. */
static inline void gh__ring_term(gh_ring *r)
{
    free(r->slots);
    r->slots = NULL;
    r->cap = r->head = r->len = 0;
}

static inline size_t gh__ring_len(const gh_ring *r)
{
    return r->len;
}

static inline bool gh__ring_empty(const gh_ring *r)
{
    return r->len == 0;
}

static inline bool gh__ring_full(const gh_ring *r)
{
    return r->len == r->cap;
}

static inline void gh__ring_push(gh_ring *r, void *item)
{
    GH_ASSERT(r->len < r->cap);
    size_t tail = r->head + r->len;
    if (tail >= r->cap)
        tail -= r->cap;
    r->slots[tail] = item;
    r->len++;
}

static inline void *gh__ring_pop(gh_ring *r)
{
    GH_ASSERT(r->len > 0);
    void *item = r->slots[r->head];
    if (++r->head == r->cap)
        r->head = 0;
    r->len--;
    return item;
}

#endif /* GH_SCHED_RING_H */
