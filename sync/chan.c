/*
 * chan.c — gh_chan: a bounded channel of pointers between tasks of any hub
 * and plain threads, Go style.
 *
 * One mutex guards a ring buffer and two FIFO lists of waiters (receivers
 * waiting on an empty channel, senders waiting on a full one). A waiter links
 * a node on its own stack; the other side completes the operation for it
 * under the lock (a sender writes its item into a waiting receiver's node; a
 * receiver moves a waiting sender's item into the ring, or takes it directly
 * when the channel is unbuffered), marks the node DONE and unlinks it, then
 * wakes the waiter. Because the waker completes the operation, a waiter that
 * is woken and then times out or is killed before it runs still sees DONE
 * and reports success: every item goes to exactly one receiver, and a send
 * that failed (-ETIMEDOUT, -ECANCELED, -EPIPE) left its item with the caller.
 *
 * Task waiters are woken as hub/xevent.c does: the waiter preallocates a WAKE
 * message, counts it in xwakes_inflight and records park_seq + 1; a waker on
 * another thread posts it to the waiter's hub, which readies the task only if
 * it is still parked in that same wait. A waker on the waiter's own thread
 * readies it directly (a linked node there means the task is parked in this
 * wait: nothing on that thread ran between the link and the park). Parked
 * tasks count in h->xwaiters, so their hub neither reports a deadlock nor
 * looks idle while they wait. A plain thread (no hub) waits on a condition
 * variable of its own node.
 *
 * A stopping runtime hub keeps running its tasks until the drain timeout, then
 * kills them: a killed waiter either finds its node DONE (the item was
 * delivered) or unlinks it (the item stays where it was). Nothing in flight is
 * lost.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "hub/hub.h"
#include "sched/list.h"
#include "sched/ring.h"
#include "sync/sync.h"

enum { CN_WAITING, CN_DONE, CN_CLOSED, CN_LEFT };

typedef struct chan_node {
    gh__link link;
    gh__list *list; /* the list it is linked in (state CN_WAITING) */
    gh_chan *chan;
    void *item;  /* sender: what to send; receiver: what it got */
    int state;   /* CN_*, under the channel's lock */
    gh_hub *hub; /* NULL for a plain thread */
    gh_task *task;
    gh__msg *msg;        /* preallocated wake message (task waiters) */
    uint32_t seq;        /* park_seq of the wait */
    pthread_cond_t cond; /* plain-thread waiters */
} chan_node;

struct gh_chan {
    pthread_mutex_t lock;
    gh_ring ring;
    bool closed;
    gh__list recvq;  /* chan_nodes of receivers waiting: the ring is empty */
    gh__list sendq;  /* chan_nodes of senders waiting: the ring is full */
    gh__list readyq; /* chan_nodes of gh_wait_any: told when a receive could succeed */
};

static pthread_condattr_t chan_condattr;
static pthread_once_t chan_condattr_once = PTHREAD_ONCE_INIT;

static void chan_condattr_init(void)
{
    pthread_condattr_init(&chan_condattr);
    pthread_condattr_setclock(&chan_condattr, CLOCK_MONOTONIC);
}

static void chan_list_push(gh__list *l, chan_node *n)
{
    gh__list_push_back(l, &n->link);
    n->list = l;
}

static void chan_list_remove(chan_node *n)
{
    gh__list_remove(n->list, &n->link);
    n->list = NULL;
}

/* The first waiter of @l, or NULL. */
static chan_node *chan_list_first(const gh__list *l)
{
    gh__link *n = gh__list_first(l);
    return n ? GH__CONTAINER_OF(n, chan_node, link) : NULL;
}

/* Complete @n with @state and wake its waiter. Under the lock; n is linked. */
static void chan_finish(chan_node *n, int state)
{
    chan_list_remove(n);
    n->state = state;
    if (!n->hub) {
        pthread_cond_signal(&n->cond);
        return;
    }
    if (n->hub == gh__tls_hub) {
        n->task->xwakes_inflight--;
        gh__msg_free(n->msg);
        gh__task_wake(n->task, 0);
        return;
    }
    /* Read before posting: once posted, the node's stack may be gone. */
    gh_hub *h = n->hub;
    gh_task *t = n->task;
    gh__msg *m = n->msg;
    uint32_t seq = n->seq;
    gh__post_wake_msg(h, m, t, seq, 0);
}

/* A receive could succeed now (an item, a waiting sender, the close): tell gh_wait_any. */
static void chan_tell_ready(gh_chan *c)
{
    chan_node *n;
    while ((n = chan_list_first(&c->readyq)))
        chan_finish(n, CN_DONE);
}

/* Timeout or kill of a task waiter: detach its node unless a waker got there first. */
static void chan_unlink(gh_task *t)
{
    chan_node *n = t->wait_obj;
    gh_chan *c = n->chan;
    pthread_mutex_lock(&c->lock);
    if (n->state == CN_WAITING) {
        chan_list_remove(n);
        n->state = CN_LEFT;
        t->xwakes_inflight--; /* no message will come: give it back */
        gh__msg_free(n->msg);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Park task @h->sched.current in @l until a waker completes @n. Lock held on entry and exit. */
static int chan_wait_task(gh_chan *c, gh_hub *h, gh__list *l, chan_node *n, int64_t timeout_ns)
{
    gh_task *t = h->sched.current;
    n->msg = gh__msg_alloc();
    if (!n->msg)
        return -ENOMEM;
    n->hub = h;
    n->task = t;
    n->seq = t->park_seq + 1; /* the park below counts this wait */
    n->state = CN_WAITING;
    chan_list_push(l, n);
    t->xwakes_inflight++;
    pthread_mutex_unlock(&c->lock);

    h->xwaiters++;
    int err = gh__task_park(&h->sched, gh__deadline(timeout_ns), chan_unlink, n, "channel");
    h->xwaiters--;

    pthread_mutex_lock(&c->lock);
    GH_ASSERT(n->state != CN_WAITING);
    return err;
}

/* Block the calling plain thread in @l until a waker completes @n. Lock held. */
static int chan_wait_thread(gh_chan *c, gh__list *l, chan_node *n, int64_t timeout_ns)
{
    pthread_once(&chan_condattr_once, chan_condattr_init);
    int64_t deadline = gh__deadline(timeout_ns);
    struct timespec ts = {0};
    if (deadline >= 0) {
        ts.tv_sec = deadline / GH_SEC;
        ts.tv_nsec = deadline % GH_SEC;
    }
    pthread_cond_init(&n->cond, &chan_condattr);
    n->hub = NULL;
    n->state = CN_WAITING;
    chan_list_push(l, n);
    int err = 0;
    while (n->state == CN_WAITING) {
        int r = deadline < 0 ? pthread_cond_wait(&n->cond, &c->lock)
                             : pthread_cond_timedwait(&n->cond, &c->lock, &ts);
        if (r == ETIMEDOUT && n->state == CN_WAITING) {
            chan_list_remove(n);
            n->state = CN_LEFT;
            err = -ETIMEDOUT;
        }
    }
    pthread_cond_destroy(&n->cond);
    return err;
}

static int chan_wait(gh_chan *c, gh_hub *h, gh__list *l, chan_node *n, int64_t timeout_ns)
{
    n->chan = c;
    int err = h ? chan_wait_task(c, h, l, n, timeout_ns) : chan_wait_thread(c, l, n, timeout_ns);
    /* Completed by a waker: that decides, whatever woke us first. */
    if (n->state == CN_DONE)
        return 0;
    if (n->state == CN_CLOSED)
        return -EPIPE;
    return err;
}

/* ------------------------------------------------------------ public API */

gh_chan *gh_chan_new(size_t capacity)
{
    if (capacity > SIZE_MAX / sizeof(void *) / 2) {
        errno = EINVAL;
        return NULL;
    }
    gh_chan *c = calloc(1, sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    int err = gh__ring_init(&c->ring, capacity);
    if (err) {
        free(c);
        errno = -err;
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

int gh_chan_free(gh_chan *c)
{
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    bool busy =
        !gh__list_empty(&c->recvq) || !gh__list_empty(&c->sendq) || !gh__list_empty(&c->readyq);
    pthread_mutex_unlock(&c->lock);
    if (busy)
        return -EBUSY;
    pthread_mutex_destroy(&c->lock);
    gh__ring_term(&c->ring);
    free(c);
    return 0;
}

int gh_chan_send(gh_chan *c, void *item, int64_t timeout_ns)
{
    if (!c || timeout_ns < GH_FOREVER)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return -EPIPE;
    }
    chan_node *r = chan_list_first(&c->recvq);
    if (r) {
        /* Receivers wait only on an empty ring: the item goes straight to the first. */
        r->item = item;
        chan_finish(r, CN_DONE);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    if (!gh__ring_full(&c->ring)) {
        gh__ring_push(&c->ring, item);
        if (__builtin_expect(!gh__list_empty(&c->readyq), 0))
            chan_tell_ready(c);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    gh_hub *h;
    int err = gh__caller_can_block(&h);
    if (!err && timeout_ns == 0)
        err = -EAGAIN;
    if (!err) {
        chan_node n = {.item = item};
        if (__builtin_expect(!gh__list_empty(&c->readyq), 0))
            chan_tell_ready(c); /* unbuffered: a waiting sender is a receive ready to happen */
        err = chan_wait(c, h, &c->sendq, &n, timeout_ns);
    }
    pthread_mutex_unlock(&c->lock);
    return err;
}

int gh_chan_recv(gh_chan *c, void **item, int64_t timeout_ns)
{
    if (!c || !item || timeout_ns < GH_FOREVER)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    chan_node *s = chan_list_first(&c->sendq);
    if (!gh__ring_empty(&c->ring)) {
        *item = gh__ring_pop(&c->ring);
        /* The slot just freed goes to the first waiting sender, in order. */
        if (s) {
            gh__ring_push(&c->ring, s->item);
            chan_finish(s, CN_DONE);
        }
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    if (s) {
        /* Unbuffered: take the item from the sender itself. */
        *item = s->item;
        chan_finish(s, CN_DONE);
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return -EPIPE;
    }
    gh_hub *h;
    int err = gh__caller_can_block(&h);
    if (!err && timeout_ns == 0)
        err = -EAGAIN;
    if (!err) {
        chan_node n = {0};
        err = chan_wait(c, h, &c->recvq, &n, timeout_ns);
        if (err == 0)
            *item = n.item;
    }
    pthread_mutex_unlock(&c->lock);
    return err;
}

int gh_chan_close(gh_chan *c)
{
    if (!c)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    if (c->closed) {
        pthread_mutex_unlock(&c->lock);
        return -EALREADY;
    }
    c->closed = true;
    /* Receivers wait only on an empty ring, so they have nothing left to drain. */
    chan_node *n;
    while ((n = chan_list_first(&c->recvq)))
        chan_finish(n, CN_CLOSED);
    /* Senders keep their items: their send fails with -EPIPE. */
    while ((n = chan_list_first(&c->sendq)))
        chan_finish(n, CN_CLOSED);
    chan_tell_ready(c); /* a receive returns at once now (-EPIPE) */
    pthread_mutex_unlock(&c->lock);
    return 0;
}

size_t gh_chan_len(gh_chan *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    size_t n = gh__ring_len(&c->ring);
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* --------------------------------------------------------- gh_wait_any */

bool gh__chan_ready(gh_chan *c)
{
    pthread_mutex_lock(&c->lock);
    bool ready = !gh__ring_empty(&c->ring) || !gh__list_empty(&c->sendq) || c->closed;
    pthread_mutex_unlock(&c->lock);
    return ready;
}

int gh__chan_wait_ready(gh_chan *c, int64_t timeout_ns)
{
    pthread_mutex_lock(&c->lock);
    int err = 0;
    if (gh__ring_empty(&c->ring) && gh__list_empty(&c->sendq) && !c->closed) {
        gh_hub *h;
        err = gh__caller_can_block(&h);
        if (!err) {
            chan_node n = {0};
            err = chan_wait(c, h, &c->readyq, &n, timeout_ns);
            if (err == -EPIPE)
                err = 0; /* closed: a receive would return at once */
        }
    }
    pthread_mutex_unlock(&c->lock);
    return err;
}
