/*
 * waitq.h — a FIFO of tasks waiting on one object (a join, an event, a
 * semaphore, a queue), intrusive through the task's wq_prev/wq_next, so
 * push, pop and removal (timeout, kill) are O(1) with no allocation.
 */
#ifndef GH_SCHED_WAITQ_H
#define GH_SCHED_WAITQ_H

#include "sched/task.h"

static inline void gh__waitq_init(gh__waitq *q)
{
    q->head = q->tail = NULL;
}

static inline void gh__waitq_push(gh__waitq *q, gh_task *t)
{
    t->wq_next = NULL;
    t->wq_prev = q->tail;
    if (q->tail)
        q->tail->wq_next = t;
    else
        q->head = t;
    q->tail = t;
}

static inline void gh__waitq_remove(gh__waitq *q, gh_task *t)
{
    if (t->wq_prev)
        t->wq_prev->wq_next = t->wq_next;
    else
        q->head = t->wq_next;
    if (t->wq_next)
        t->wq_next->wq_prev = t->wq_prev;
    else
        q->tail = t->wq_prev;
    t->wq_prev = t->wq_next = NULL;
}

/* Take the first waiter off @q, or NULL. */
static inline gh_task *gh__waitq_pop(gh__waitq *q)
{
    gh_task *t = q->head;
    if (t)
        gh__waitq_remove(q, t);
    return t;
}

#endif /* GH_SCHED_WAITQ_H */
