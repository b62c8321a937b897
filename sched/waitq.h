/*
 * waitq.h — a FIFO of tasks waiting on one object (a join, an event, a
 * semaphore, a queue, a pool): the list of list.h, linked through the task's
 * wq, typed on gh_task so no caller repeats the GH__CONTAINER_OF.
 */
#ifndef GH_SCHED_WAITQ_H
#define GH_SCHED_WAITQ_H

#include "sched/list.h"
#include "sched/task.h"

static inline void gh__waitq_init(gh__waitq *q)
{
    gh__list_init(q);
}

static inline bool gh__waitq_empty(const gh__waitq *q)
{
    return gh__list_empty(q);
}

/* The first waiter of @q, or NULL. */
static inline gh_task *gh__waitq_first(const gh__waitq *q)
{
    gh__link *n = gh__list_first(q);
    return n ? GH__CONTAINER_OF(n, gh_task, wq) : NULL;
}

static inline void gh__waitq_push(gh__waitq *q, gh_task *t)
{
    gh__list_push_back(q, &t->wq);
}

static inline void gh__waitq_remove(gh__waitq *q, gh_task *t)
{
    gh__list_remove(q, &t->wq);
}

/* Take the first waiter off @q, or NULL. */
static inline gh_task *gh__waitq_pop(gh__waitq *q)
{
    gh__link *n = gh__list_pop_front(q);
    return n ? GH__CONTAINER_OF(n, gh_task, wq) : NULL;
}

#endif /* GH_SCHED_WAITQ_H */
