/*
 * xevent.c — a one-shot event that crosses threads: set from any thread,
 * waited on by tasks of any hub (green) or by plain threads (blocking).
 *
 * A waiting task links a node on its own stack under the event's lock, with a
 * WAKE message it allocated itself, so set() never allocates and cannot fail.
 * The setter unlinks every node and posts each message to the waiter's hub;
 * the hub readies the task only if it is still parked in that same wait
 * (park_seq), so a wake that crosses a timeout is harmless. The task struct
 * cannot be freed while such a message is in flight (xwakes_inflight).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "hub/hub.h"

typedef struct xev_node {
    struct xev_node *prev, *next;
    struct xev_impl *ev;
    gh_hub *hub;
    gh_task *task;
    gh__msg *msg;
    uint32_t seq;
    bool linked;
} xev_node;

typedef struct xev_impl {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool set;
    void *value;
    xev_node *head;
} xev_impl;

int gh_xevent_init(gh_xevent *ev)
{
    if (!ev)
        return -EINVAL;
    xev_impl *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, &ca);
    pthread_condattr_destroy(&ca);
    ev->impl = x;
    return 0;
}

void gh_xevent_destroy(gh_xevent *ev)
{
    if (!ev || !ev->impl)
        return;
    xev_impl *x = ev->impl;
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
    free(x);
    ev->impl = NULL;
}

int gh_xevent_set(gh_xevent *ev, void *value)
{
    if (!ev || !ev->impl)
        return -EINVAL;
    xev_impl *x = ev->impl;
    pthread_mutex_lock(&x->lock);
    if (x->set) {
        pthread_mutex_unlock(&x->lock);
        return -EALREADY;
    }
    x->set = true;
    x->value = value;
    while (x->head) {
        xev_node *n = x->head;
        x->head = n->next;
        n->linked = false;
        /* Read everything before posting: the node lives on the waiter's stack. */
        gh_hub *h = n->hub;
        gh_task *t = n->task;
        gh__msg *m = n->msg;
        uint32_t seq = n->seq;
        gh__post_wake_msg(h, m, t, seq, 0);
    }
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
    return 0;
}

int gh_xevent_reset(gh_xevent *ev)
{
    if (!ev || !ev->impl)
        return -EINVAL;
    xev_impl *x = ev->impl;
    pthread_mutex_lock(&x->lock);
    x->set = false;
    x->value = NULL;
    pthread_mutex_unlock(&x->lock);
    return 0;
}

static void xev_unlink(gh_task *t)
{
    xev_node *n = t->wait_obj;
    xev_impl *x = n->ev;
    pthread_mutex_lock(&x->lock);
    if (n->linked) {
        if (n->prev)
            n->prev->next = n->next;
        else
            x->head = n->next;
        if (n->next)
            n->next->prev = n->prev;
        n->linked = false;
        t->xwakes_inflight--; /* no message will come: give it back */
        gh__msg_free(n->msg);
    }
    pthread_mutex_unlock(&x->lock);
}

static int xev_wait_thread(xev_impl *x, void **value, int64_t timeout_ns)
{
    struct timespec ts;
    int64_t deadline = gh__deadline(timeout_ns);
    if (deadline >= 0) {
        ts.tv_sec = deadline / GH_SEC;
        ts.tv_nsec = deadline % GH_SEC;
    }
    int err = 0;
    pthread_mutex_lock(&x->lock);
    while (!x->set && err == 0) {
        if (timeout_ns == 0)
            err = ETIMEDOUT;
        else if (deadline < 0)
            err = pthread_cond_wait(&x->cond, &x->lock);
        else
            err = pthread_cond_timedwait(&x->cond, &x->lock, &ts);
    }
    if (x->set) {
        err = 0;
        if (value)
            *value = x->value;
    }
    pthread_mutex_unlock(&x->lock);
    return -err;
}

int gh_xevent_wait(gh_xevent *ev, void **value, int64_t timeout_ns)
{
    return gh__xevent_wait(ev, value, timeout_ns, "xevent");
}

int gh__xevent_wait(gh_xevent *ev, void **value, int64_t timeout_ns, const char *what)
{
    if (!ev || !ev->impl || timeout_ns < GH_FOREVER)
        return -EINVAL;
    xev_impl *x = ev->impl;
    gh_hub *h = gh__tls_hub;
    if (!h)
        return xev_wait_thread(x, value, timeout_ns);

    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    gh_task *t = h->sched.current;
    xev_node n = {.ev = x, .hub = h, .task = t};

    pthread_mutex_lock(&x->lock);
    if (x->set || timeout_ns == 0) {
        err = x->set ? 0 : -ETIMEDOUT;
        if (x->set && value)
            *value = x->value;
        pthread_mutex_unlock(&x->lock);
        return err;
    }
    n.msg = gh__msg_alloc();
    if (!n.msg) {
        pthread_mutex_unlock(&x->lock);
        return -ENOMEM;
    }
    n.seq = t->park_seq + 1; /* the park below counts this wait */
    n.next = x->head;
    if (x->head)
        x->head->prev = &n;
    x->head = &n;
    n.linked = true;
    t->xwakes_inflight++;
    pthread_mutex_unlock(&x->lock);

    h->xwaiters++;
    err = gh__task_park(&h->sched, gh__deadline(timeout_ns), xev_unlink, &n, what);
    h->xwaiters--;
    if (err == 0 || err == -ETIMEDOUT) {
        /* Set just as the timeout fired still counts as set. */
        pthread_mutex_lock(&x->lock);
        if (x->set) {
            err = 0;
            if (value)
                *value = x->value;
        }
        pthread_mutex_unlock(&x->lock);
    }
    return err;
}
