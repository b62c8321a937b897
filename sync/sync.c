/*
 * sync.c — hub-local synchronisation: gh_event, gh_sem, gh_queue.
 *
 * Each object belongs to the hub of the tasks that use it, so its state is
 * plain memory: no lock, no atomic operation. A waiting task sits in the
 * object's FIFO (a gh__waitq, linked through the task's wq) with a small
 * record on its own stack (sync_wait, reached through t->wait_obj) through
 * which a waker hands it a value or an item directly. A hand-off is decided
 * by the waker, so a woken waiter owns what it was given even if it is killed
 * or its timeout fires before it runs again: nothing is lost or handed twice,
 * and nobody barges past a waiter that was woken but has not run yet.
 *
 * Waits follow gh_join's order: succeed at once if possible, then
 * gh__can_block (-EPERM from a timer callback, -ECANCELED if killed), then a
 * zero timeout fails, then park. -EDEADLK comes from the hub when the root
 * waits and nothing can ever wake it.
 */
#include <errno.h>
#include <limits.h>

#include "hub/hub.h"
#include "sched/ring.h"
#include "sched/waitq.h"

/* What a waiting task left on its stack for its waker. */
typedef struct sync_wait {
    gh__waitq *list; /* the list the task waits in */
    void *item;      /* event value / queue item, in either direction */
} sync_wait;

/* Timeout or kill: the hub detaches the task from the list it waits in. */
static void sync_unlink(gh_task *t)
{
    sync_wait *w = t->wait_obj;
    gh__waitq_remove(w->list, t);
}

/*
 * Waiters of @l belong to one hub; a task of another hub (another thread)
 * touching it would be a data race, which is reported where it can be seen.
 */
static bool sync_same_hub(const gh__waitq *l, const gh_hub *h)
{
    gh_task *t = gh__waitq_first(l);
    return !t || gh__task_hub(t) == h;
}

/* The calling thread's hub for a wait, with the checks every wait makes. */
static int sync_wait_prepare(const gh__waitq *l, gh_hub **hp)
{
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (!sync_same_hub(l, h))
        return -EINVAL;
    *hp = h;
    return gh__can_block(&h->sched);
}

static int sync_park(gh_hub *h, gh__waitq *l, sync_wait *w, int64_t timeout_ns, const char *what)
{
    w->list = l;
    gh__waitq_push(l, h->sched.current);
    return gh__task_park(&h->sched, gh__deadline(timeout_ns), sync_unlink, w, what);
}

/* A waker may only be on the waiters' thread. */
static bool sync_waker_ok(const gh__waitq *l)
{
    return sync_same_hub(l, gh__tls_hub);
}

/* ------------------------------------------------------------- gh_event */

int gh_event_init(gh_event *ev)
{
    if (!ev)
        return -EINVAL;
    gh__waitq_init(&ev->waiters);
    ev->value = NULL;
    ev->is_set = 0;
    return 0;
}

int gh_event_destroy(gh_event *ev)
{
    if (!ev)
        return -EINVAL;
    if (!gh__waitq_empty(&ev->waiters))
        return -EBUSY;
    return 0;
}

int gh_event_set(gh_event *ev, void *value)
{
    if (!ev || !sync_waker_ok(&ev->waiters))
        return -EINVAL;
    if (ev->is_set)
        return -EALREADY;
    ev->is_set = 1;
    ev->value = value;
    gh_task *t;
    while ((t = gh__waitq_pop(&ev->waiters))) {
        /* Each waiter keeps the value it was woken with, whatever reset does next. */
        sync_wait *w = t->wait_obj;
        w->item = value;
        gh__task_wake(t, 0);
    }
    return 0;
}

int gh_event_wait(gh_event *ev, void **value, int64_t timeout_ns)
{
    if (!ev || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (ev->is_set) {
        if (value)
            *value = ev->value;
        return 0;
    }
    gh_hub *h;
    int err = sync_wait_prepare(&ev->waiters, &h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    sync_wait w = {0};
    err = sync_park(h, &ev->waiters, &w, timeout_ns, "event");
    if (err == 0 && value)
        *value = w.item;
    return err;
}

int gh_event_reset(gh_event *ev)
{
    if (!ev)
        return -EINVAL;
    ev->is_set = 0;
    ev->value = NULL;
    return 0;
}

int gh_event_is_set(const gh_event *ev)
{
    return ev && ev->is_set ? 1 : 0;
}

/* --------------------------------------------------------------- gh_sem */

int gh_sem_init(gh_sem *sem, unsigned count, unsigned bound)
{
    if (!sem || (bound && count > bound))
        return -EINVAL;
    gh__waitq_init(&sem->waiters);
    sem->count = count;
    sem->bound = bound;
    return 0;
}

int gh_sem_destroy(gh_sem *sem)
{
    if (!sem)
        return -EINVAL;
    if (!gh__waitq_empty(&sem->waiters))
        return -EBUSY;
    return 0;
}

int gh_sem_acquire(gh_sem *sem, int64_t timeout_ns)
{
    if (!sem || timeout_ns < GH_FOREVER)
        return -EINVAL;
    /* count > 0 implies nobody waits: release hands units to waiters first. */
    if (sem->count > 0) {
        sem->count--;
        return 0;
    }
    gh_hub *h;
    int err = sync_wait_prepare(&sem->waiters, &h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    sync_wait w = {0};
    /* Woken with 0: the releaser gave this task its unit (count untouched). */
    return sync_park(h, &sem->waiters, &w, timeout_ns, "semaphore");
}

int gh_sem_release(gh_sem *sem)
{
    if (!sem || !sync_waker_ok(&sem->waiters))
        return -EINVAL;
    gh_task *t = gh__waitq_pop(&sem->waiters);
    if (t) {
        gh__task_wake(t, 0);
        return 0;
    }
    if (sem->bound ? sem->count >= sem->bound : sem->count == UINT_MAX)
        return -EOVERFLOW;
    sem->count++;
    return 0;
}

unsigned gh_sem_count(const gh_sem *sem)
{
    return sem ? sem->count : 0;
}

/* ------------------------------------------------------------- gh_queue */

int gh_queue_init(gh_queue *q, size_t capacity)
{
    if (!q || capacity == 0)
        return -EINVAL;
    int err = gh__ring_init(&q->ring, capacity);
    if (err)
        return err;
    gh__waitq_init(&q->getters);
    gh__waitq_init(&q->putters);
    return 0;
}

int gh_queue_destroy(gh_queue *q)
{
    if (!q)
        return -EINVAL;
    if (!gh__waitq_empty(&q->getters) || !gh__waitq_empty(&q->putters))
        return -EBUSY;
    gh__ring_term(&q->ring);
    return 0;
}

int gh_queue_put(gh_queue *q, void *item, int64_t timeout_ns)
{
    if (!q || !q->ring.slots || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (!gh__waitq_empty(&q->getters)) {
        /* Getters wait only on an empty queue: hand the item straight over. */
        if (!sync_waker_ok(&q->getters))
            return -EINVAL;
        gh_task *t = gh__waitq_pop(&q->getters);
        sync_wait *w = t->wait_obj;
        w->item = item;
        gh__task_wake(t, 0);
        return 0;
    }
    if (!gh__ring_full(&q->ring)) {
        gh__ring_push(&q->ring, item);
        return 0;
    }
    gh_hub *h;
    int err = sync_wait_prepare(&q->putters, &h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -EAGAIN;
    sync_wait w = {.item = item};
    /* Woken with 0: a getter moved the item into the queue. */
    return sync_park(h, &q->putters, &w, timeout_ns, "queue put");
}

int gh_queue_get(gh_queue *q, void **item, int64_t timeout_ns)
{
    if (!q || !q->ring.slots || !item || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (!gh__ring_empty(&q->ring)) {
        if (!sync_waker_ok(&q->putters))
            return -EINVAL;
        *item = gh__ring_pop(&q->ring);
        /* The slot just freed goes to the first waiting putter, in order. */
        gh_task *t = gh__waitq_pop(&q->putters);
        if (t) {
            sync_wait *w = t->wait_obj;
            gh__ring_push(&q->ring, w->item);
            gh__task_wake(t, 0);
        }
        return 0;
    }
    gh_hub *h;
    int err = sync_wait_prepare(&q->getters, &h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -EAGAIN;
    sync_wait w = {0};
    err = sync_park(h, &q->getters, &w, timeout_ns, "queue get");
    if (err == 0)
        *item = w.item;
    return err;
}

size_t gh_queue_len(const gh_queue *q)
{
    return q ? gh__ring_len(&q->ring) : 0;
}
