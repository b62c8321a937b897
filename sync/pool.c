/*
 * pool.c — gh_pool, eventlet's GreenPool: at most `size` tasks of the pool
 * run at once; gh_pool_spawn waits for a free slot.
 *
 * The pool is hub-local (plain counters, no atomics). A slot is counted in
 * `running` from the moment a spawner takes it until the task's function
 * returns. When a task finishes, its slot goes straight to the first waiting
 * spawner (FIFO, no barging): the spawner is woken with the slot already
 * counted, so a woken spawner that is killed before it runs still owns it and
 * uses it. When `running` drops to 0 every gh_pool_waitall returns.
 */
#include <errno.h>
#include <stdlib.h>

#include "hub/hub.h"

struct gh_pool {
    gh_hub *hub;        /* the hub whose tasks the pool runs */
    size_t size;        /* slots */
    size_t running;     /* slots taken (tasks running or about to be spawned) */
    size_t waiting;     /* tasks in gh_pool_spawn waiting for a slot */
    gh__waitq spawners; /* FIFO of those tasks */
    gh__waitq waitall;  /* tasks in gh_pool_waitall */
};

typedef struct pool_job {
    gh_pool *pool;
    void (*fn)(void *);
    void *arg;
} pool_job;

static void pool_unlink_spawner(gh_task *t)
{
    gh_pool *p = t->wait_obj;
    gh__waitq_remove(&p->spawners, t);
}

static void pool_unlink_waitall(gh_task *t)
{
    gh_pool *p = t->wait_obj;
    gh__waitq_remove(&p->waitall, t);
}

/* Hand free slots to waiting spawners, in order. */
static void pool_hand_slots(gh_pool *p)
{
    while (p->running < p->size && !gh__waitq_empty(&p->spawners)) {
        gh_task *t = gh__waitq_pop(&p->spawners);
        p->running++;
        gh__task_wake(t, 0);
    }
}

static void pool_slot_release(gh_pool *p)
{
    GH_ASSERT(p->running > 0);
    p->running--;
    pool_hand_slots(p);
    if (p->running == 0) {
        gh_task *t;
        while ((t = gh__waitq_pop(&p->waitall)))
            gh__task_wake(t, 0);
    }
}

static void pool_entry(void *arg)
{
    pool_job *j = arg;
    gh_pool *p = j->pool;

    /* The job stays until fn returns: gh_pool_waitall finds its pool through it. */
    j->fn(j->arg);
    free(j);
    /* gh_pool_free is -EBUSY while running > 0, so p is still there. */
    pool_slot_release(p);
}

/* The running task is one of @p's own (its waitall could never return). */
static bool pool_is_member(gh_pool *p, gh_task *t)
{
    return t->fn == pool_entry && ((pool_job *)t->arg)->pool == p;
}

gh_pool *gh_pool_new(size_t size)
{
    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    gh_pool *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    p->hub = h;
    p->size = size;
    return p;
}

int gh_pool_free(gh_pool *p)
{
    if (!p || p->hub != gh__tls_hub)
        return -EINVAL;
    if (p->running || p->waiting || !gh__waitq_empty(&p->waitall))
        return -EBUSY;
    free(p);
    return 0;
}

int gh_pool_spawn(gh_pool *p, void (*fn)(void *), void *arg, gh_task **out, int64_t timeout_ns)
{
    gh_hub *h = gh__tls_hub;
    if (!p || !fn || timeout_ns < GH_FOREVER || p->hub != h)
        return -EINVAL;
    pool_job *j = malloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    j->pool = p;
    j->fn = fn;
    j->arg = arg;

    if (p->running < p->size && gh__waitq_empty(&p->spawners)) {
        p->running++;
    } else {
        int err = gh__can_block(&h->sched);
        if (!err && timeout_ns == 0)
            err = -ETIMEDOUT;
        if (!err) {
            gh_task *self = h->sched.current;
            gh__waitq_push(&p->spawners, self);
            p->waiting++;
            self->pinned++; /* the pool is this hub's: it spawns here after the wait */
            err = gh__task_park(&h->sched, gh__deadline(timeout_ns), pool_unlink_spawner, p,
                                "pool slot");
            self->pinned--;
            p->waiting--;
        }
        if (err) {
            free(j);
            return err;
        }
        /* Woken with 0: pool_hand_slots counted our slot. */
    }
    gh_task *t = gh__task_spawn(&h->sched, pool_entry, j, out != NULL, 0);
    if (!t) {
        free(j);
        pool_slot_release(p);
        return -ENOMEM;
    }
    if (out)
        *out = t;
    return 0;
}

int gh_pool_waitall(gh_pool *p, int64_t timeout_ns)
{
    gh_hub *h = gh__tls_hub;
    if (!p || timeout_ns < GH_FOREVER || p->hub != h)
        return -EINVAL;
    if (p->running == 0)
        return 0;
    if (pool_is_member(p, h->sched.current))
        return -EDEADLK;
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    gh__waitq_push(&p->waitall, h->sched.current);
    return gh__task_park(&h->sched, gh__deadline(timeout_ns), pool_unlink_waitall, p,
                         "pool waitall");
}

int gh_pool_resize(gh_pool *p, size_t size)
{
    if (!p || size == 0 || p->hub != gh__tls_hub)
        return -EINVAL;
    p->size = size;
    pool_hand_slots(p);
    return 0;
}

size_t gh_pool_running(const gh_pool *p)
{
    return p ? p->running : 0;
}

size_t gh_pool_free_slots(const gh_pool *p)
{
    return p && p->running < p->size ? p->size - p->running : 0;
}

size_t gh_pool_waiting(const gh_pool *p)
{
    return p ? p->waiting : 0;
}
