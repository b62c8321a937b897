/*
 * inbox.c — cross-thread handoff into a hub: Vyukov's intrusive MPSC queue,
 * a wakeup fd, and pooled message nodes.
 *
 * Wake-ups are coalesced: before it sleeps the hub marks itself SLEEPING and
 * looks at the queue once more; a producer, after linking its node, writes
 * the wakeup fd only if it is the first to see SLEEPING. Either the hub sees
 * the head moved or the producer sees SLEEPING (the producer's exchange of
 * the head and the hub's SLEEPING store each come before the other side's
 * load, all seq_cst), so no handoff sleeps unnoticed and a burst costs one
 * write. The link itself is a plain release store: making it the seq_cst
 * half cost a third locked instruction per handoff. So a producer caught
 * between its exchange and its link (the hub cannot pop past it) may have
 * looked at sleep_state before SLEEPING was stored: the hub then sleeps,
 * rather than spin, but at most HUB_PUSHING_NS (hub.c); if the producer
 * looks after, its own check wakes it at once.
 *
 * Nodes come from the producing thread's pool and go back to it through a
 * lock-free return stack (push by anyone, take-all by the owner: no ABA);
 * the hub's drain returns each run of nodes of one pool with one CAS.
 * A pool outlives its thread on a global orphan list and is adopted by the
 * next thread that needs one, so nodes still in flight stay valid.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#ifndef GH_WAKEUP_PIPE
#include <sys/eventfd.h>
#endif

#include "hub/hub.h"
#include "sched/log.h"

/* Nodes per slab: a cold producer pays one calloc per 256 handoffs, not per 64. */
#define POOL_SLAB 256

struct gh__msg_pool {
    gh__msg *local;              /* owner-only free list (linked through next) */
    _Atomic(gh__msg *) returned; /* nodes given back by consumers */
    void **slabs;                /* every slab, so the pool can be reached (and found by LSan) */
    size_t nslabs, capslabs;
    gh__msg_pool *orphan_next;
    gh__msg_pool *all_next; /* every pool ever made, for gh__inbox_no_producers */
    /*
     * The inbox the owner is posting a SPAWN into, between its check of
     * closed and its push (else NULL). It replaces a shared producer count:
     * each producer writes only its own line, and a stopping hub scans them.
     */
    _Alignas(64) _Atomic(gh__inbox *) posting;
    char pad[64 - sizeof(void *)];
};

static pthread_mutex_t pool_orphans_lock = PTHREAD_MUTEX_INITIALIZER;
static gh__msg_pool *pool_orphans;
static gh__msg_pool *pool_all; /* under pool_orphans_lock */

static void pool_orphan(void *p)
{
    gh__msg_pool *pool = p;
    pthread_mutex_lock(&pool_orphans_lock);
    pool->orphan_next = pool_orphans;
    pool_orphans = pool;
    pthread_mutex_unlock(&pool_orphans_lock);
    gh__self.pool = NULL;
}

static gh__msg_pool *pool_get(void)
{
    gh__msg_pool *pool = gh__self.pool;
    if (pool)
        return pool;
    gh__thread_arm();
    pthread_mutex_lock(&pool_orphans_lock);
    pool = pool_orphans;
    if (pool)
        pool_orphans = pool->orphan_next;
    pthread_mutex_unlock(&pool_orphans_lock);
    if (!pool) {
        pool = aligned_alloc(64, sizeof *pool);
        if (!pool)
            return NULL;
        memset(pool, 0, sizeof *pool);
        pthread_mutex_lock(&pool_orphans_lock);
        pool->all_next = pool_all;
        pool_all = pool;
        pthread_mutex_unlock(&pool_orphans_lock);
    }
    pool->orphan_next = NULL;
    gh__self.pool = pool;
    return pool;
}

void gh__msg_pools_after_fork(void)
{
    /* Only the forking thread is left: nobody else holds the lock or is mid-post. */
    pthread_mutex_init(&pool_orphans_lock, NULL);
    for (gh__msg_pool *p = pool_all; p; p = p->all_next)
        atomic_store_explicit(&p->posting, NULL, memory_order_relaxed);
}

void gh__msg_pool_thread_exit(void)
{
    if (gh__self.pool)
        pool_orphan(gh__self.pool);
}

static int pool_grow(gh__msg_pool *pool)
{
    if (pool->nslabs == pool->capslabs) {
        size_t cap = pool->capslabs ? pool->capslabs * 2 : 8;
        void **slabs = realloc(pool->slabs, cap * sizeof *slabs);
        if (!slabs)
            return -ENOMEM;
        pool->slabs = slabs;
        pool->capslabs = cap;
    }
    gh__msg *slab = calloc(POOL_SLAB, sizeof *slab);
    if (!slab)
        return -ENOMEM;
    pool->slabs[pool->nslabs++] = slab;
    for (int i = 0; i < POOL_SLAB; i++) {
        slab[i].pool = pool;
        atomic_store_explicit(&slab[i].next, pool->local, memory_order_relaxed);
        pool->local = &slab[i];
    }
    return 0;
}

gh__msg *gh__msg_alloc(void)
{
    gh__msg_pool *pool = pool_get();
    if (!pool)
        return NULL;
    if (!pool->local) {
        pool->local = atomic_exchange_explicit(&pool->returned, NULL, memory_order_acquire);
        if (!pool->local && pool_grow(pool) != 0)
            return NULL;
    }
    gh__msg *m = pool->local;
    pool->local = atomic_load_explicit(&m->next, memory_order_relaxed);
    return m;
}

/* Give the chain @first..@last (linked through next) back to @pool: one CAS. */
static void pool_return(gh__msg_pool *pool, gh__msg *first, gh__msg *last)
{
    gh__msg *head = atomic_load_explicit(&pool->returned, memory_order_relaxed);
    do {
        atomic_store_explicit(&last->next, head, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&pool->returned, &head, first,
                                                    memory_order_release, memory_order_relaxed));
}

gh__msg *gh__msg_alloc_retry(void)
{
    gh__msg *m;
    while (!(m = gh__msg_alloc()))
        sched_yield();
    return m;
}

void gh__msg_free(gh__msg *m)
{
    pool_return(m->pool, m, m);
}

/*
 * The hub's drain gives nodes back a run at a time: a CAS per node on the
 * producer's line was 90% of the drain's own time in a 1 -> 1 storm.
 */
typedef struct msg_returns {
    gh__msg_pool *pool;
    gh__msg *first, *last;
} msg_returns;

static void returns_flush(msg_returns *r)
{
    if (r->first)
        pool_return(r->pool, r->first, r->last);
    r->first = r->last = NULL;
}

static void returns_add(msg_returns *r, gh__msg *m)
{
    if (r->first && r->pool != m->pool)
        returns_flush(r);
    r->pool = m->pool;
    atomic_store_explicit(&m->next, r->first, memory_order_relaxed);
    if (!r->first)
        r->last = m;
    r->first = m;
}

/* ------------------------------------------------------------ the queue */

/* A wakeup fd: an eventfd (one fd for both ends), or a pipe with GH_WAKEUP_PIPE. */
static int wake_fds_open(int *rfd, int *wfd)
{
#ifdef GH_WAKEUP_PIPE
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -errno;
    *rfd = fds[0];
    *wfd = fds[1];
#else
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    *rfd = *wfd = fd;
#endif
    return 0;
}

static void inbox_queue_reset(gh__inbox *in)
{
    atomic_store_explicit(&in->stub.next, NULL, memory_order_relaxed);
    atomic_store(&in->head, &in->stub);
    in->tail = &in->stub;
}

int gh__inbox_init(gh__inbox *in)
{
    memset(in, 0, sizeof *in);
    in->stub.kind = GH__MSG_STUB;
    inbox_queue_reset(in);
    return wake_fds_open(&in->wake_rfd, &in->wake_wfd);
}

int gh__inbox_after_fork(gh__inbox *in)
{
    int rfd = -1, wfd = -1;
    int err = wake_fds_open(&rfd, &wfd);
    if (err)
        return err;
    close(in->wake_rfd); /* the child's copies: the parent's fd stays open */
    if (in->wake_wfd != in->wake_rfd)
        close(in->wake_wfd);
    in->wake_rfd = rfd;
    in->wake_wfd = wfd;
    /* What is queued was handed to the parent's hub, which runs it. */
    inbox_queue_reset(in);
    atomic_store(&in->sleep_state, GH__INBOX_AWAKE);
    atomic_store(&in->wakes_posting, 0);
    return 0;
}

void gh__inbox_term(gh__inbox *in)
{
    gh__msg *m;
    size_t dropped = 0;

    while ((m = gh__inbox_pop(in))) {
        gh__msg_free(m);
        dropped++;
    }
    if (dropped)
        gh__log(GH_LOG_ERROR, "hub freed with %zu handoffs it never ran", dropped);
    close(in->wake_rfd);
    if (in->wake_wfd != in->wake_rfd)
        close(in->wake_wfd);
}

static void inbox_write_fd(gh_hub *h, gh__inbox *in)
{
#ifdef GH_WAKEUP_PIPE
    char c = 1;
    ssize_t r = write(in->wake_wfd, &c, 1); /* EAGAIN: the pipe is full, a wake is pending */
#else
    uint64_t one = 1;
    ssize_t r = write(in->wake_wfd, &one, sizeof one);
#endif
    (void)r;
    atomic_fetch_add_explicit(&h->stats.wakeups_written, 1, memory_order_relaxed);
}

void gh__inbox_kick(gh_hub *h, gh__inbox *in)
{
    atomic_store(&in->sleep_state, GH__INBOX_NOTIFIED);
    inbox_write_fd(h, in);
}

/* Link @m at the head and wake the hub if it may be asleep. */
static void inbox_push(gh_hub *h, gh__inbox *in, gh__msg *m)
{
    atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
    /* seq_cst: this exchange is our side of the hand-shake with the hub's SLEEPING store. */
    gh__msg *prev = atomic_exchange(&in->head, m);
    atomic_store_explicit(&prev->next, m, memory_order_release);
    if (atomic_load(&in->sleep_state) == GH__INBOX_SLEEPING) {
        int expect = GH__INBOX_SLEEPING;
        if (atomic_compare_exchange_strong(&in->sleep_state, &expect, GH__INBOX_NOTIFIED))
            inbox_write_fd(h, in);
    }
}

int gh__inbox_post(gh_hub *h, gh__inbox *in, gh__msg *m)
{
    gh__msg_pool *pool = m->pool; /* the calling thread's own */

    /* Closed is for good: most refusals need no store at all. */
    if (atomic_load_explicit(&in->closed, memory_order_acquire))
        return -ESHUTDOWN;
    /*
     * Dekker with gh__inbox_close + gh__inbox_quiet: we store posting, then
     * load closed; the stopper stores closed, then loads posting (all
     * seq_cst). Either we see closed and refuse, or the stopping hub sees us
     * posting and waits (it polls every millisecond while stopping).
     */
    atomic_store(&pool->posting, in);
    if (atomic_load(&in->closed)) {
        atomic_store_explicit(&pool->posting, NULL, memory_order_release);
        return -ESHUTDOWN;
    }
    inbox_push(h, in, m);
    atomic_store_explicit(&pool->posting, NULL, memory_order_release);
    return 0;
}

gh__msg *gh__inbox_pop(gh__inbox *in)
{
    gh__msg *tail = in->tail;
    gh__msg *next = atomic_load(&tail->next);

    if (tail == &in->stub) {
        if (!next)
            return NULL;
        in->tail = next;
        tail = next;
        next = atomic_load(&next->next);
    }
    if (next) {
        in->tail = next;
        return tail;
    }
    if (tail != atomic_load(&in->head))
        return NULL; /* a producer is between its two stores (see the top of this file) */
    atomic_store_explicit(&in->stub.next, NULL, memory_order_relaxed);
    gh__msg *prev = atomic_exchange(&in->head, &in->stub);
    atomic_store(&prev->next, &in->stub);
    next = atomic_load(&tail->next);
    if (next) {
        in->tail = next;
        return tail;
    }
    return NULL;
}

void gh__inbox_drain_fd(gh__inbox *in)
{
    char buf[64];
    while (read(in->wake_rfd, buf, sizeof buf) > 0) {
#ifndef GH_WAKEUP_PIPE
        break; /* an eventfd read takes the whole count */
#endif
    }
}

void gh__inbox_close(gh__inbox *in)
{
    atomic_store(&in->closed, true);
}

bool gh__inbox_closed(gh__inbox *in)
{
    return atomic_load_explicit(&in->closed, memory_order_acquire);
}

bool gh__inbox_no_producers(gh__inbox *in)
{
    if (atomic_load(&in->wakes_posting))
        return false;
    bool none = true;
    pthread_mutex_lock(&pool_orphans_lock);
    for (gh__msg_pool *p = pool_all; p && none; p = p->all_next)
        none = atomic_load(&p->posting) != in;
    pthread_mutex_unlock(&pool_orphans_lock);
    return none;
}

bool gh__inbox_quiet(gh__inbox *in)
{
    return atomic_load(&in->closed) && gh__inbox_no_producers(in);
}

/* ----------------------------------------------------- the hub's side */

int gh__post_call_msg(gh_hub *h, gh__msg *m, void (*call)(gh_hub *, void *), void *arg)
{
    m->kind = GH__MSG_CALL;
    m->call = call;
    m->arg = arg;
    /*
     * Dekker with hub_leave_process: we count ourselves, then look at gone;
     * it sets gone, then waits for the count. Either we see gone and refuse,
     * or the hub sees us and runs the message before it goes.
     */
    atomic_fetch_add(&h->inbox.wakes_posting, 1);
    int err = 0;
    if (atomic_load(&h->gone))
        err = -ESHUTDOWN;
    else
        inbox_push(h, &h->inbox, m);
    atomic_fetch_sub_explicit(&h->inbox.wakes_posting, 1, memory_order_release);
    return err;
}

void gh__inbox_flush(gh_hub *h)
{
    gh__msg *m;
    size_t dropped = 0;

    while ((m = gh__inbox_pop(&h->inbox))) {
        if (m->kind == GH__MSG_CALL)
            m->call(h, m->arg);
        else if (m->kind == GH__MSG_SPAWN || m->kind == GH__MSG_START)
            dropped++;
        gh__msg_free(m);
    }
    if (dropped)
        gh__log(GH_LOG_ERROR, "hub freed with %zu handoffs it never ran", dropped);
}

void gh__post_wake_msg(gh_hub *h, gh__msg *m, gh_task *t, uint32_t park_seq, int result)
{
    m->kind = GH__MSG_WAKE;
    m->arg = t;
    m->park_seq = park_seq;
    m->result = result;
    /*
     * A wake is delivered even to a stopping hub: its task is already inside.
     * Counted while it pushes, so the hub is not freed under its wake-up check.
     */
    atomic_fetch_add(&h->inbox.wakes_posting, 1);
    inbox_push(h, &h->inbox, m);
    atomic_fetch_sub_explicit(&h->inbox.wakes_posting, 1, memory_order_release);
}

#define INBOX_BATCH 1024

/*
 * Inbox depth, for gh_hub_stats: what the drain left behind its batch
 * bound. Only the hub can walk its queue (tail towards head), so it counts
 * here, and only when it is behind (more), at most every 10 ms and up to
 * INBOX_COUNT_MAX nodes (a deeper inbox reads as that many): producers pay
 * nothing, an idle hub nothing either (nothing left means depth 0), and a
 * hub in a handoff storm a few microseconds in ten milliseconds.
 */
#define INBOX_COUNT_MAX 4096

static void inbox_count_backlog(gh_hub *h, bool more)
{
    uint64_t depth = 0;
    if (more) {
        if (h->sched.now - h->inbox_counted_at < 10 * GH_MSEC)
            return;
        h->inbox_counted_at = h->sched.now;
        gh__msg *m = h->inbox.tail;
        while (m && depth < INBOX_COUNT_MAX) {
            if (m != &h->inbox.stub)
                depth++;
            m = atomic_load_explicit(&m->next, memory_order_acquire);
        }
    }
    if (depth || atomic_load_explicit(&h->stats.inbox_depth, memory_order_relaxed))
        atomic_store_explicit(&h->stats.inbox_depth, depth, memory_order_relaxed);
}

bool gh__inbox_run(gh_hub *h)
{
    gh__msg *m;
    uint64_t spawned = 0;
    bool more = false;
    msg_returns ret = {0};

    for (int budget = INBOX_BATCH; (m = gh__inbox_pop(&h->inbox));) {
        if (m->kind == GH__MSG_SPAWN) {
            /* A task struct cannot be had: keep the message for the next iteration. */
            if (!gh__task_spawn(&h->sched, m->fn, m->arg, false, 0)) {
                gh__log(GH_LOG_WARN, "out of memory spawning a handoff; retrying");
                /* Re-queue at the back; nothing handed to greenhub is dropped. */
                inbox_push(h, &h->inbox, m);
                more = true;
                break;
            }
            spawned++;
        } else if (m->kind == GH__MSG_START) {
            gh__task_start(&h->sched, m->arg);
            spawned++;
        } else if (m->kind == GH__MSG_CALL) {
            m->call(h, m->arg);
        } else if (m->kind == GH__MSG_WAKE) {
            gh_task *t = m->arg;
            GH_ASSERT(t->xwakes_inflight > 0);
            t->xwakes_inflight--;
            if (t->state == GH__TASK_BLOCKED && t->park_seq == m->park_seq)
                gh__task_wake_detach(t, m->result);
            else
                gh__task_maybe_free(&h->sched, t);
        }
        returns_add(&ret, m);
        if (--budget == 0) {
            more = true;
            break;
        }
    }
    returns_flush(&ret);
    inbox_count_backlog(h, more);
    if (spawned)
        GH__STAT_ADD(&h->stats, handoffs_in, spawned);
    return more;
}
