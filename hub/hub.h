/*
 * hub.h — greenhub's internal structures, shared by hub/ and sched/.
 * Nothing here is public; names shared across files carry the gh__ prefix.
 */
#ifndef GH_HUB_HUB_H
#define GH_HUB_HUB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "greenhub.h"
#include "hub/inbox.h"
#include "sched/context.h"
#include "sched/stack.h"

/* A broken invariant is a bug in greenhub: stop loudly, always (not only in debug). */
#define GH_ASSERT(cond)                                                                      \
    do {                                                                                     \
        if (__builtin_expect(!(cond), 0))                                                    \
            gh__assert_fail(#cond, __FILE__, __LINE__);                                      \
    } while (0)
_Noreturn void gh__assert_fail(const char *what, const char *file, int line);

/* Counters written by the hub's own thread, read relaxed from any thread. */
#define GH__STAT_ADD(h, field, n)                                                            \
    atomic_store_explicit(&(h)->stats.field,                                                 \
                          atomic_load_explicit(&(h)->stats.field, memory_order_relaxed) + (n), \
                          memory_order_relaxed)

/* --------------------------------------------------------------- timers */

enum {
    GH__TIMER_HANDLE = 1 << 0,  /* the caller still holds the gh_timer * */
    GH__TIMER_FIRED = 1 << 1,   /* a one-shot that has run */
    GH__TIMER_IN_CB = 1 << 2,   /* its callback is running now */
    GH__TIMER_DEAD = 1 << 3,    /* cancelled from inside its own callback */
    GH__TIMER_EMBEDDED = 1 << 4 /* part of a task (its timeout), never freed alone */
};

struct gh_timer {
    int64_t when;       /* deadline on gh_now's clock */
    uint64_t seq;       /* creation order: equal deadlines fire FIFO */
    int64_t interval;   /* > 0 for a repeating timer */
    uint32_t heap_idx;  /* position in the hub's heap, GH__NOT_IN_HEAP when out */
    uint32_t flags;
    void (*cb)(void *);
    void *arg;
    gh_hub *hub;
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
    /*
     * Timers out of the heap whose handle the caller still holds (fired
     * one-shots, repeating timers a stop dropped); each one's seq is its
     * index here. Freed with the hub when its thread is gone.
     */
    gh_timer **kept;
    uint32_t nkept, capkept;
} gh__timer_heap;

void gh__timer_heap_init(gh__timer_heap *th);
void gh__timer_heap_term(gh__timer_heap *th);
/* Insert @t (not in the heap). Returns 0 or -ENOMEM. */
int gh__timer_add(gh__timer_heap *th, gh_timer *t);
/* Remove @t if it is in the heap (O(log n)). */
void gh__timer_remove(gh__timer_heap *th, gh_timer *t);
static inline gh_timer *gh__timer_peek(const gh__timer_heap *th)
{
    return th->len ? th->items[0].t : NULL;
}
/* Run every timer due at @now. */
void gh__timers_fire(gh_hub *h, int64_t now);
/* Drop every callback timer (hub teardown); with @repeating_only, just the repeating ones. */
void gh__timers_drop(gh_hub *h, bool repeating_only);
/* The hub's thread is gone: free the timers whose handles nobody can use any more. */
void gh__timers_free_kept(gh_hub *h);

/* ---------------------------------------------------------------- tasks */

typedef enum gh__task_state {
    GH__TASK_NEW,     /* spawned, never run, no stack yet */
    GH__TASK_READY,   /* in the run queue */
    GH__TASK_RUNNING, /* on the CPU */
    GH__TASK_BLOCKED, /* parked; a waker will ready it */
    GH__TASK_DONE     /* returned; stack gone */
} gh__task_state;

typedef struct gh__waitq {
    gh_task *head, *tail;
} gh__waitq;

struct gh_task {
    gh__ctx ctx;              /* saved context; first so the switch finds it cheaply */
    gh_hub *hub;
    gh_task *rq_next;         /* run queue / free list link */
    gh_task *all_prev, *all_next; /* every live task of the hub */
    uint64_t id;
    void (*fn)(void *);
    void *arg;
    gh__stack *stack;         /* NULL until first run, and for root and MAINLOOP's own */
    uint8_t state;            /* gh__task_state */
    bool killed;              /* sticky: every blocking call returns -ECANCELED */
    bool has_handle;          /* a gh_task * is out there */
    bool is_root;
    bool in_runq;
    bool xwait;               /* blocked on something another thread will end */
    int wake_result;          /* what the blocking call returns */
    uint32_t park_seq;        /* counts parks, so a late cross-thread wake is recognised */
    uint32_t xwakes_inflight; /* cross-thread wakes posted for this task, not yet run */
    gh_timer timeout;         /* embedded: the deadline of the current wait */
    void (*unlink)(gh_task *t); /* detaches t from what it waits on (timeout, kill) */
    void *wait_obj;
    gh_task *wq_prev, *wq_next; /* link in a gh__waitq */
    gh__waitq joiners;
    void *asan_fake;          /* ASan's fake stack of the suspended task */
    const void *san_bottom;   /* stack bounds for the sanitizers */
    size_t san_size;
    void *tsan_fiber;
};

/* ----------------------------------------------------------------- fds */

typedef struct gh__fdslot {
    gh_task *reader, *writer; /* at most one waiter per direction */
    uint8_t interest;         /* what the backend watches now (GH_READ|GH_WRITE) */
    bool nonblock_known;      /* gh_read/gh_write_all put it into O_NONBLOCK already */
    uint8_t kind;             /* GH__FD_*: what a short read says (io.c) */
    bool drained;             /* a short read emptied it: the next read waits first */
} gh__fdslot;

enum { GH__FD_UNKNOWN, GH__FD_STREAM, GH__FD_OTHER };

/* ------------------------------------------------------------------ hub */

typedef struct gh__hub_stats_atomic {
    _Atomic uint64_t tasks_spawned, tasks_live, switches, loop_iterations;
    _Atomic uint64_t handoffs_in, wakeups_written, timers_pending, fd_waiters;
} gh__hub_stats_atomic;

struct gh_hub {
    /* scheduling */
    gh_task *current;         /* running task (MAINLOOP while timers fire) */
    gh_task root;             /* the thread's own stack */
    gh_task main;             /* MAINLOOP, on a stack of its own */
    gh_task *rq_head, *rq_tail;
    uint32_t rq_len;
    uint32_t rq_batch;        /* tasks gh__run_ready may still start in this batch */
    gh_task *finished;        /* the task that just returned, its stack not yet reclaimed */
    gh_task *all;             /* every spawned, unfinished task */
    gh_task *free_tasks;      /* recycled task structs */
    uint32_t free_tasks_len;
    uint64_t next_task_id;
    uint32_t live_tasks;      /* spawned and not finished, root and MAINLOOP excluded */
    uint32_t xwaiters;        /* tasks blocked on other threads */
    gh__stack_cache stacks;
    bool main_started;
    bool in_run;              /* the root is inside gh_hub_run */

    /* timers */
    gh__timer_heap timers;
    uint32_t cb_timers;       /* callback timers in the heap (task timeouts excluded) */
    int64_t now;              /* clock read at the top of the iteration */

    /* I/O */
    const gh_backend_ops *ops;
    void *bstate;
    _Atomic(const char *) backend_name; /* ops->name, readable from any thread */
    gh__fdslot *fds;
    int nfds;
    uint32_t fd_waiters;
    bool read_prewait;        /* a read after a short read waits first (io.c) */

    /* cross-thread */
    gh__inbox inbox;
    bool wake_pending;        /* the wakeup fd fired; MAINLOOP reads it after the batch runs */
    gh_runtime *runtime;      /* non-NULL for a runtime's hub */
    int runtime_index;
    atomic_bool stop_requested;
    atomic_bool kill_all;     /* stop's drain timeout passed: new and old tasks start cancelled */
    bool killed_all;          /* kill_all acted on */
    bool retired;             /* only the tombstone is left */

    gh__hub_stats_atomic stats;
};

/* Install the fork handler that gives a child's hub kernel objects of its own (fork.c). */
void gh__fork_init(void);

/* The calling thread's hub, or NULL; gh__hub() creates it. */
extern _Thread_local gh_hub *gh__tls_hub;
gh_hub *gh__hub(void);
gh_hub *gh__hub_new(const gh_backend_ops *ops, size_t stack_size, int *err);
void gh__hub_free(gh_hub *h);
/* MAINLOOP until the root is readied; used by park when the root blocks. */
void gh__hub_wake_fd(gh_hub *h, int fd, int events);
/* Watch/unwatch @fd's direction in the backend (lazy: keeps interest until it fires idle). */
int gh__fd_interest(gh_hub *h, int fd, int events);
/*
 * What a new backend instance must watch for @fd (a swap, a forked child):
 * the directions a task waits on, and the wakeup fd's interest.
 */
int gh__fd_carry(const gh_hub *h, int fd);
/* Make sure fds[fd] exists. */
int gh__fd_slot_reserve(gh_hub *h, int fd);
/* Backend to use for a new hub: GREENHUB_HUB, else the default order. */
const gh_backend_ops *gh__backend_default(void);
int gh__hub_swap_backend(gh_hub *h, const gh_backend_ops *ops);
/* The hub holds nothing but its root: no task, callback timer, fd waiter or handoff. */
bool gh__hub_idle(const gh_hub *h);

/* ------------------------------------------------------------------ io */

struct sockaddr_storage;
/*
 * The prologue of a green fd call: checks @fd and @timeout_ns, gets the hub,
 * refuses from MAINLOOP or a killed task, and puts @fd into O_NONBLOCK once.
 */
int gh__io_enter(int fd, int64_t timeout_ns, gh_hub **hp);
/*
 * After a syscall failed with errno: 0 to retry now (EINTR, or the fd became
 * ready for @events before @deadline), else the negative errno to return.
 */
int gh__io_retry(gh_hub *h, int fd, int events, int64_t timeout_ns, int64_t deadline);
/*
 * Before a read: when the last read of @fd was short (a stream drained),
 * wait for readability first instead of paying a syscall for EAGAIN.
 * 0 to go on and read, else the negative errno to return.
 */
int gh__io_read_prewait(gh_hub *h, int fd, int64_t timeout_ns, int64_t deadline);
/* After a read of @asked bytes returned @got >= 0: remember whether it drained @fd. */
void gh__io_read_done(gh_hub *h, int fd, ssize_t got, size_t asked);
/* Parse an IP literal or "localhost" into @ss (never blocks); -EINVAL otherwise. */
int gh__sock_addr(const char *host, int port, bool passive, struct sockaddr_storage *ss,
                  unsigned int *len);

/* --------------------------------------------------------------- sched */

/* Spawn on @h, ready (or delayed); refs: handle if @handle. NULL + errno on failure. */
gh_task *gh__task_spawn(gh_hub *h, void (*fn)(void *), void *arg, bool handle, int64_t delay);
/* Block the running task until gh__task_wake. @deadline absolute or -1. */
int gh__task_park(gh_hub *h, int64_t deadline, void (*unlink)(gh_task *), void *obj);
/* Ready a blocked task with @result (its unlink is not called). */
void gh__task_wake(gh_task *t, int result);
/* Ready a blocked task after detaching it from what it waits on (timeouts, kill). */
void gh__task_wake_detach(gh_task *t, int result);
/* Put a ready task at the back of the run queue. */
void gh__runq_push(gh_hub *h, gh_task *t);
/* Switch from the running task to @to; returns when the caller is resumed. */
void gh__switch(gh_hub *h, gh_task *to);
/* Run a bounded batch of ready tasks (MAINLOOP step 3). */
void gh__run_ready(gh_hub *h);
/* Check at a blocking call's entry: -EPERM from MAINLOOP, -ECANCELED if killed, else 0. */
int gh__can_block(gh_hub *h);
/*
 * The same for a call any thread may make: *hp = the caller's hub, or NULL
 * for a plain thread (which may always block: it blocks itself), and 0 or
 * what gh__can_block says.
 */
int gh__caller_can_block(gh_hub **hp);
/* Free a task struct (DONE, no handle, no wake in flight). */
void gh__task_free(gh_hub *h, gh_task *t);
void gh__task_maybe_free(gh_hub *h, gh_task *t);
/* Kill every live task (runtime stop after its drain timeout). */
void gh__task_kill_all(gh_hub *h);
void gh__sched_init(gh_hub *h);
void gh__sched_term(gh_hub *h);
/* Deadline from a timeout: -1 forever, -EINVAL for a bad timeout. */
static inline int64_t gh__deadline(int64_t timeout_ns)
{
    if (timeout_ns == GH_FOREVER)
        return -1;
    int64_t now = gh_now();
    if (timeout_ns > INT64_MAX - now)
        return -1;
    return now + timeout_ns;
}

/* wait queues (intrusive, O(1) removal) */
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

/* --------------------------------------------------------------- inbox */

/*
 * Move handed-off work into the run queue (MAINLOOP step 1), at most a bounded
 * batch: producers that never pause must not keep the hub in this loop.
 * Returns true when messages may be left (the hub must not sleep on them).
 */
bool gh__inbox_run(gh_hub *h);
/*
 * Wake task @t of hub @h from any thread with a message node @m the task
 * allocated (so this cannot fail); @t must have counted it in xwakes_inflight.
 */
void gh__post_wake_msg(gh_hub *h, gh__msg *m, gh_task *t, uint32_t park_seq, int result);

/* ----------------------------------------------------------------- call */

/* A call one thread runs and another waits for (gh_call_on, gh_tpool_run). */
typedef struct gh__call {
    struct gh__call *next; /* free for the runner's own queue */
    atomic_int refs;       /* the waiter's and the runner's: the last one frees */
    void *(*fn)(void *);
    void *arg;
    gh_xevent done;
} gh__call;

/* A record for fn(arg); -EINVAL, -EPERM/-ECANCELED (the caller cannot wait), -ENOMEM. */
int gh__call_new(gh__call **out, void *(*fn)(void *), void *arg, int64_t timeout_ns);
/* Runner: call fn(arg), deliver the result, drop the runner's reference. */
void gh__call_run(gh__call *c);
/* Waiter: wait green (a task) or blocking (a plain thread), then drop its reference. */
int gh__call_wait(gh__call *c, void **result, int64_t timeout_ns);
/* The record was never handed to a runner: free it. */
void gh__call_abandon(gh__call *c);

/* -------------------------------------------------------------- runtime */
/* Stop handling at the top of a runtime hub's iteration. */
void gh__runtime_hub_tick(gh_hub *h);
/* A stopping runtime hub has nothing left: every accepted handoff ran. */
bool gh__runtime_hub_drained(gh_hub *h);
void gh__hub_adopt(gh_hub *h);
/* Free all but the struct: a stopped runtime hub stays as a refusing tombstone. */
void gh__hub_retire(gh_hub *h);
/* Free a retired hub's last remains (gh_runtime_destroy). */
void gh__hub_bury(gh_hub *h);

#endif /* GH_HUB_HUB_H */
