/*
 * wait_any.c — gh_wait_any: wait for the first of several tasks, events,
 * cross-thread events and channels (gevent's wait, Go's select on receives).
 *
 * Nothing is consumed: the caller learns which one is ready and then joins,
 * waits or receives with timeout 0 itself. Each item is watched by a small
 * helper task on the caller's hub that makes the item's own wait (gh_join,
 * gh_event_wait, gh_xevent_wait, a channel's ready-to-receive wait), so every
 * kind keeps exactly its own rules across hubs and threads; the first helper
 * that returns sets a hub-local event the caller waits on. Then the caller
 * kills the helpers and waits, uncancellably, until each has returned: they
 * point into its stack. After the wake the items are looked at again in
 * order, so of several ready at once the lowest index wins.
 */
#include <errno.h>

#include "hub/hub.h"
#include "sync/sync.h"

#define WAIT_ANY_MAX 64

typedef struct wait_any {
    const gh_waitable *items;
    gh_event done;
    int alive; /* helpers not yet returned */
    int err;   /* an item's wait failed (not by our kill): the call fails with it */
} wait_any;

typedef struct wait_helper {
    wait_any *w;
    size_t index;
    gh_task *task;
} wait_helper;

/* Is item @it ready now? */
static bool wait_ready(const gh_waitable *it)
{
    switch (it->kind) {
    case GH_WAIT_TASK:
        return atomic_load_explicit(&((gh_task *)it->obj)->finished, memory_order_acquire);
    case GH_WAIT_EVENT:
        return gh_event_is_set(it->obj) > 0;
    case GH_WAIT_XEVENT:
        return gh_xevent_wait(it->obj, NULL, 0) == 0;
    case GH_WAIT_CHAN:
        return gh__chan_ready(it->obj);
    }
    return false;
}

static int wait_first_ready(const gh_waitable *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (wait_ready(&items[i]))
            return (int)i;
    return -1;
}

static void wait_helper_task(void *arg)
{
    wait_helper *hp = arg;
    wait_any *w = hp->w;
    const gh_waitable *it = &w->items[hp->index];
    int err = -EINVAL;
    switch (it->kind) {
    case GH_WAIT_TASK:
        err = gh_join(it->obj, GH_FOREVER);
        break;
    case GH_WAIT_EVENT:
        err = gh_event_wait(it->obj, NULL, GH_FOREVER);
        break;
    case GH_WAIT_XEVENT:
        err = gh_xevent_wait(it->obj, NULL, GH_FOREVER);
        break;
    case GH_WAIT_CHAN:
        err = gh__chan_wait_ready(it->obj, GH_FOREVER);
        break;
    }
    if (err != -ECANCELED && !gh_event_is_set(&w->done)) {
        w->err = err;
        gh_event_set(&w->done, NULL);
    }
    w->alive--;
}

static int wait_check(const gh_waitable *items, size_t n)
{
    if (!items || n == 0 || n > WAIT_ANY_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].obj)
            return -EINVAL;
        if (items[i].kind < GH_WAIT_TASK || items[i].kind > GH_WAIT_CHAN)
            return -EINVAL;
    }
    return 0;
}

/*
 * One round: helpers watch every item until one is ready, the timeout
 * passes or the caller is killed. 0 when an item said it is ready.
 */
static int wait_round(gh_hub *h, const gh_waitable *items, size_t n, int64_t deadline)
{
    wait_any w = {.items = items};
    gh_event_init(&w.done);
    wait_helper helpers[WAIT_ANY_MAX];
    size_t started = 0;
    int err = 0;
    for (; started < n; started++) {
        helpers[started] = (wait_helper){.w = &w, .index = started};
        helpers[started].task = gh_spawn(wait_helper_task, &helpers[started]);
        if (!helpers[started].task) {
            err = -ENOMEM;
            break;
        }
        w.alive++;
    }
    if (!err) {
        int64_t left = deadline < 0 ? GH_FOREVER : deadline - gh_now();
        err = left == GH_FOREVER || left > 0 ? gh_event_wait(&w.done, NULL, left) : -ETIMEDOUT;
    }
    /* Whatever happened, no helper may outlive this frame. */
    for (size_t i = 0; i < started; i++)
        gh_kill(helpers[i].task);
    while (w.alive > 0)
        gh__task_yield(&h->sched); /* not gh_yield: a killed caller must still wait here */
    for (size_t i = 0; i < started; i++)
        gh_task_release(helpers[i].task);
    gh_event_destroy(&w.done);
    return err ? err : w.err;
}

int gh_wait_any(const gh_waitable *items, size_t n, int64_t timeout_ns)
{
    int err = wait_check(items, n);
    if (err)
        return err;
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    err = gh__can_block(&h->sched);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    for (;;) {
        int first = wait_first_ready(items, n);
        if (first >= 0)
            return first;
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        /* Helpers run on this hub: the caller stays here until they are gone (a move waits). */
        gh_task *self = h->sched.current;
        self->pinned++;
        err = wait_round(h, items, n, deadline);
        self->pinned--;
        if (self->move_to && !self->pinned) {
            gh__task_move_now(&h->sched, self); /* a move accepted meanwhile: now it can go */
            h = gh__tls_hub;                    /* and it may run elsewhere from here on */
        }
        if (err)
            return err;
        /* Ready, but another task may have taken it meanwhile (a channel's item): look again. */
    }
}
