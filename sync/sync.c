/*
 * sync.c — hub-local synchronisation: gh_event, gh_sem, gh_queue.
 *
 * Each object belongs to the hub of the tasks that use it, so its state is
 * plain memory: no lock, no atomic operation. A waiting task sits in the
 * object's FIFO list (linked through the task's wq_prev/wq_next) with a small
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
#include <stdlib.h>

#include "hub/hub.h"

/* What a waiting task left on its stack for its waker. */
typedef struct sync_wait {
    gh_waiters *list; /* the list the task waits in */
    void *item;       /* event value / queue item, in either direction */
} sync_wait;

static void sync_list_push(gh_waiters *l, gh_task *t)
{
    t->wq_next = NULL;
    t->wq_prev = l->tail;
    if (l->tail)
        l->tail->wq_next = t;
    else
        l->head = t;
    l->tail = t;
}

static void sync_list_remove(gh_waiters *l, gh_task *t)
{
    if (t->wq_prev)
        t->wq_prev->wq_next = t->wq_next;
    else
        l->head = t->wq_next;
    if (t->wq_next)
        t->wq_next->wq_prev = t->wq_prev;
    else
        l->tail = t->wq_prev;
    t->wq_prev = t->wq_next = NULL;
}

/* Take the first waiter off @l; its sync_wait is t->wait_obj. */
static gh_task *sync_list_pop(gh_waiters *l)
{
    gh_task *t = l->head;
    if (t)
        sync_list_remove(l, t);
    return t;
}

/* Timeout or kill: the hub detaches the task from the list it waits in. */
static void sync_unlink(gh_task *t)
{
    sync_wait *w = t->wait_obj;
    sync_list_remove(w->list, t);
}

/*
 * Waiters of @l belong to one hub; a task of another hub (another thread)
 * touching it would be a data race, which is reported where it can be seen.
 */
static bool sync_same_hub(const gh_waiters *l, const gh_hub *h)
{
    return !l->head || gh__task_hub(l->head) == h;
}

/* The calling thread's hub for a wait, with the checks every wait makes. */
static int sync_wait_prepare(const gh_waiters *l, gh_hub **hp)
{
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (!sync_same_hub(l, h))
        return -EINVAL;
    *hp = h;
    return gh__can_block(&h->sched);
}

static int sync_park(gh_hub *h, gh_waiters *l, sync_wait *w, int64_t timeout_ns)
{
    w->list = l;
    sync_list_push(l, h->sched.current);
    return gh__task_park(&h->sched, gh__deadline(timeout_ns), sync_unlink, w);
}

/* A waker may only be on the waiters' thread. */
static bool sync_waker_ok(const gh_waiters *l)
{
    return !l->head || gh__task_hub(l->head) == gh__tls_hub;
}

/* ------------------------------------------------------------- gh_event */

int gh_event_init(gh_event *ev)
{
    if (!ev)
        return -EINVAL;
    ev->waiters.head = ev->waiters.tail = NULL;
    ev->value = NULL;
    ev->is_set = 0;
    return 0;
}

int gh_event_destroy(gh_event *ev)
{
    if (!ev)
        return -EINVAL;
    if (ev->waiters.head)
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
    while ((t = sync_list_pop(&ev->waiters))) {
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
    err = sync_park(h, &ev->waiters, &w, timeout_ns);
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
    sem->waiters.head = sem->waiters.tail = NULL;
    sem->count = count;
    sem->bound = bound;
    return 0;
}

int gh_sem_destroy(gh_sem *sem)
{
    if (!sem)
        return -EINVAL;
    if (sem->waiters.head)
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
    return sync_park(h, &sem->waiters, &w, timeout_ns);
}

int gh_sem_release(gh_sem *sem)
{
    if (!sem || !sync_waker_ok(&sem->waiters))
        return -EINVAL;
    gh_task *t = sync_list_pop(&sem->waiters);
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
    if (!q || capacity == 0 || capacity > SIZE_MAX / sizeof(void *))
        return -EINVAL;
    q->ring = malloc(capacity * sizeof *q->ring);
    if (!q->ring)
        return -ENOMEM;
    q->cap = capacity;
    q->head = q->len = 0;
    q->getters.head = q->getters.tail = NULL;
    q->putters.head = q->putters.tail = NULL;
    return 0;
}

int gh_queue_destroy(gh_queue *q)
{
    if (!q)
        return -EINVAL;
    if (q->getters.head || q->putters.head)
        return -EBUSY;
    free(q->ring);
    q->ring = NULL;
    q->cap = q->len = q->head = 0;
    return 0;
}

static void queue_push(gh_queue *q, void *item)
{
    size_t tail = q->head + q->len;
    if (tail >= q->cap)
        tail -= q->cap;
    q->ring[tail] = item;
    q->len++;
}

static void *queue_pop(gh_queue *q)
{
    void *item = q->ring[q->head];
    if (++q->head == q->cap)
        q->head = 0;
    q->len--;
    return item;
}

int gh_queue_put(gh_queue *q, void *item, int64_t timeout_ns)
{
    if (!q || !q->ring || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (q->getters.head) {
        /* Getters wait only on an empty queue: hand the item straight over. */
        if (!sync_waker_ok(&q->getters))
            return -EINVAL;
        gh_task *t = sync_list_pop(&q->getters);
        sync_wait *w = t->wait_obj;
        w->item = item;
        gh__task_wake(t, 0);
        return 0;
    }
    if (q->len < q->cap) {
        queue_push(q, item);
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
    return sync_park(h, &q->putters, &w, timeout_ns);
}

int gh_queue_get(gh_queue *q, void **item, int64_t timeout_ns)
{
    if (!q || !q->ring || !item || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (q->len) {
        if (!sync_waker_ok(&q->putters))
            return -EINVAL;
        *item = queue_pop(q);
        /* The slot just freed goes to the first waiting putter, in order. */
        gh_task *t = sync_list_pop(&q->putters);
        if (t) {
            sync_wait *w = t->wait_obj;
            queue_push(q, w->item);
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
    err = sync_park(h, &q->getters, &w, timeout_ns);
    if (err == 0)
        *item = w.item;
    return err;
}

size_t gh_queue_len(const gh_queue *q)
{
    return q ? q->len : 0;
}
