/*
 * timer_heap.h — the timer heap: a 4-ary min-heap on (deadline, sequence).
 *
 * Each timer records its heap index, so removal is O(log n) without a
 * search. The sequence number makes equal deadlines fire in creation order
 * (FIFO), as libuv's heap-inl.h does. Task timeouts are timers embedded in
 * the task (no allocation per wait); the hub's callback timers (gh_call_at)
 * are the same struct behind a gh_timer handle.
 */
#ifndef GH_SCHED_TIMER_HEAP_H
#define GH_SCHED_TIMER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

#include "greenhub.h"

struct gh__sched;

enum {
    GH__TIMER_HANDLE = 1 << 0,   /* the caller still holds the gh_timer * */
    GH__TIMER_FIRED = 1 << 1,    /* a one-shot that has run */
    GH__TIMER_IN_CB = 1 << 2,    /* its callback is running now */
    GH__TIMER_DEAD = 1 << 3,     /* cancelled from inside its own callback */
    GH__TIMER_EMBEDDED = 1 << 4, /* part of a task (its timeout), never freed alone */
    GH__TIMER_UNREF = 1 << 5     /* does not keep gh_hub_run going (gh_timer_unref) */
};

struct gh_timer {
    int64_t when;      /* deadline on gh_now's clock */
    uint64_t seq;      /* creation order: equal deadlines fire FIFO */
    int64_t interval;  /* > 0 for a repeating timer */
    int64_t delay;     /* a one-shot's delay from when it was armed (gh_timer_again) */
    uint32_t heap_idx; /* position in the heap, GH__NOT_IN_HEAP when out */
    uint32_t flags;
    void (*cb)(void *);
    void *arg;
    struct gh__sched *sched; /* whose heap it belongs to */
};
#define GH__NOT_IN_HEAP UINT32_MAX

/*
 * A heap slot keeps its timer's deadline beside the pointer, as libev's ANHE
 * does: sifting compares slots without touching the timers (only equal
 * deadlines look at seq), which is most of the cost with a million timers.
 */
typedef struct gh__timer_slot {
    int64_t when; /* == t->when while t is in the heap */
    gh_timer *t;
} gh__timer_slot;

typedef struct gh__timer_heap {
    gh__timer_slot *items; /* 4-ary min-heap on (when, seq) */
    uint32_t len, cap;
    uint64_t next_seq;
} gh__timer_heap;

void gh__timer_heap_init(gh__timer_heap *th);
void gh__timer_heap_term(gh__timer_heap *th);
/* Insert @t (not in the heap). Returns 0 or -ENOMEM. */
int gh__timer_add(gh__timer_heap *th, gh_timer *t);
/* Remove @t if it is in the heap (O(log n)). */
void gh__timer_remove(gh__timer_heap *th, gh_timer *t);
/* Take the earliest timer off the heap (the heap is not empty). */
void gh__timer_pop_min(gh__timer_heap *th);
static inline gh_timer *gh__timer_peek(const gh__timer_heap *th)
{
    return th->len ? th->items[0].t : NULL;
}

#endif /* GH_SCHED_TIMER_HEAP_H */
