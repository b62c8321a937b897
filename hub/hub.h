/*
 * hub.h — the hub: a thread's scheduler (sched/), its backend (backends/),
 * its fd table, timers and inbox. The internal interface of the hub layer,
 * for hub/ and the layers above it (sync/, io/); nothing here is public.
 */
#ifndef GH_HUB_HUB_H
#define GH_HUB_HUB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "greenhub.h"
#include "greenhub_backend.h"
#include "hub/inbox.h"
#include "hub/thread.h"
#include "sched/task.h"
#include "sched/waitq.h"

/* ----------------------------------------------------------------- fds */

typedef struct gh__fdslot {
    gh_task *reader, *writer; /* at most one waiter per direction */
    uint32_t gen;             /* the fd's generation the flags below were cached under */
    uint8_t interest;         /* what the backend watches now (GH_READ|GH_WRITE) */
    bool nonblock_known;      /* gh_read/gh_write_all put it into O_NONBLOCK already */
    uint8_t kind;             /* GH__FD_*: what a short read says (io.c) */
    bool drained;             /* a short read emptied it: the next read waits first */
    uint8_t watched;          /* the directions its watchers want (watch.c) */
    uint8_t op_dirs;          /* directions whose waiter waits for a backend op (op.c) */
    gh_watcher *watchers;     /* gh_watch callbacks on it, on this hub */
} gh__fdslot;

/* GH__FD_STREAM and GH__FD_PIPE drain with a short read; sockets may take backend ops. */
enum { GH__FD_UNKNOWN, GH__FD_STREAM, GH__FD_PIPE, GH__FD_DGRAM, GH__FD_OTHER };

/* What the whole process knows about one fd number (fdtable.c). */
typedef struct gh__fdent {
    _Atomic uint64_t hubs;     /* bit per hub id whose backend watches it (bit 63: ids >= 63) */
    _Atomic uint32_t gen;      /* bumped by every gh_close of this number */
    _Atomic uint32_t internal; /* a hub's wakeup fd: gh_close refuses it */
} gh__fdent;

/* The entry for @fd, or NULL if none was ever made. Any thread. */
gh__fdent *gh__fdent_find(int fd);
/* The entry for @fd, made if needed; NULL + ENOMEM. Any thread. */
gh__fdent *gh__fdent_make(int fd);
/* @fd's generation: 0 until its first gh_close. Any thread. */
uint32_t gh__fd_gen(int fd);

/* ------------------------------------------------------------------ hub */

/* The hub's own counters; the scheduler keeps its own (gh__sched_stats). */
typedef struct gh__hub_stats_atomic {
    _Atomic uint64_t loop_iterations;
    _Atomic uint64_t handoffs_in, wakeups_written, timers_pending, fd_waiters;
    _Atomic uint64_t idle_ns;     /* asleep in the backend's poll, past waits */
    _Atomic int64_t asleep_since; /* the current wait's start, or 0 */
    _Atomic int64_t ended;        /* when a runtime hub retired (its life ends there), or 0 */
    _Atomic uint64_t tasks_ready; /* the run queue's length at the last poll */
    _Atomic uint64_t inbox_depth; /* left behind the last drain's batch bound (inbox.c) */
    _Atomic int64_t lag_ns,
        lag_max_ns; /* how late due timers fired: the last batch's worst, ever */
} gh__hub_stats_atomic;

struct gh_hub {
    gh__sched sched; /* first: a task's sched pointer is its hub's address */
    uint32_t id;     /* process-wide, reused after the hub is freed (fdtable.c) */
    /* Tasks blocked on other threads; atomic: one that moved while it waited ends its count here
     * from its new thread. */
    _Atomic uint32_t xwaiters;
    gh_hub *migrate_to;          /* where the departing task goes (gh_migrate, task.c) */
    bool in_run;                 /* the root is inside gh_hub_run */
    atomic_bool break_requested; /* gh_hub_break: the current or next gh_hub_run returns -EINTR */

    /* timers */
    uint32_t cb_timers; /* callback timers in the heap (task timeouts excluded) */
    /*
     * Callback timers out of the heap whose handle the caller still holds
     * (fired one-shots, repeating timers a stop dropped); each one's seq is
     * its index here. Freed with the hub when its thread is gone.
     */
    gh_timer **kept;
    uint32_t nkept, capkept;

    /* I/O */
    const gh_backend_ops *ops;
    void *bstate;
    _Atomic(const char *) backend_name; /* ops->name, readable from any thread */
    gh__fdslot *fds;
    int nfds;
    uint32_t fd_waiters;
    bool read_prewait;        /* a read after a short read waits first (io.c) */
    bool complete;            /* socket calls hand their syscall to the backend (op.c) */
    uint32_t ops_inflight;    /* backend ops submitted and not yet done */
    struct gh__op *ops_list;  /* those ops, a list (op.c) */
    uint32_t poll_failed;     /* backend poll failures; the first one is reported */
    int64_t born;             /* gh_now() when made: busy time is the rest of its life */
    int64_t inbox_counted_at; /* when the inbox's backlog was last counted */
    pthread_t thread;         /* the thread that runs it (has_thread), for the blocking detector */
    atomic_bool has_thread;   /* set (release) once thread is */

    /* callbacks on MAINLOOP (watch.c) */
    uint32_t watchers;                   /* active fd watchers: they keep gh_hub_run going */
    gh_watcher *watch_all;               /* every watcher not yet unwatched */
    gh_watcher *fired_head, *fired_tail; /* reported by this poll, callbacks not yet run */
    gh_tick *ticks;                      /* per-iteration hooks, in order */
    bool ticks_running;
    uint64_t ran; /* timer and watcher callbacks run: gh_hub_run_once's count (+ sched.ran) */

    /* driven from another loop (embed.c) */
    bool once_active;        /* the root is in gh_hub_run_once */
    bool once_polled;        /* the backend was polled since it started */
    int64_t once_deadline;   /* when it returns with nothing run (-1 never) */
    uint64_t once_base;      /* sched.ran + ran when it started */
    struct gh__embed *embed; /* gh_hub_fd's state, or NULL */

    /* cross-thread */
    gh__inbox inbox;
    bool wake_pending;   /* the wakeup fd fired; MAINLOOP reads it after the batch runs */
    int64_t last_poll;   /* when MAINLOOP last polled its backend */
    gh_runtime *runtime; /* non-NULL for a runtime's hub */
    int runtime_index;
    atomic_bool stop_requested;
    bool killed_all;     /* kill_all acted on */
    bool stuck_reported; /* a stop that cannot drain said why (runtime.c) */
    int64_t stuck_since; /* when the hub first was killed and not drained, 0: not yet */
    bool retired;        /* only the tombstone is left */
    atomic_bool gone;    /* left the process: no message reaches it (hub.c hub_leave_process) */

    gh__hub_stats_atomic stats;
};

/* A task's hub: the scheduler it runs on is the hub's first member. */
static inline gh_hub *gh__task_hub(const gh_task *t)
{
    return (gh_hub *)t->sched;
}

/* MAINLOOP's half of gh_migrate: hand the departed task @t to h->migrate_to (task.c). */
void gh__task_depart_to(gh_task *t, void *hub);
/* A task woken from a wait it was moved in leaves for t->move_to (task.c). */
void gh__task_move_now(gh__sched *s, gh_task *t);

/* The calling thread's hub, or NULL; gh__hub() creates it (NULL + errno on failure). */
#define gh__tls_hub (gh__self.hub)
gh_hub *gh__hub(void);
gh_hub *gh__hub_new(const gh_backend_ops *ops, size_t stack_size, int *err);
void gh__hub_free(gh_hub *h);
/* Backend to use for a new hub: GREENHUB_HUB, else the default order. */
const gh_backend_ops *gh__backend_default(void);
int gh__hub_swap_backend(gh_hub *h, const gh_backend_ops *ops);
/* The hub holds nothing but its root: no task, callback timer, fd waiter or handoff. */
bool gh__hub_idle(const gh_hub *h);
/* The hub's thread is gone (not a runtime's): free what only it could have used. */
void gh__hub_thread_exit(gh_hub *h);
/* A forked child: the forking thread's hub gets kernel objects of its own (fork.c). */
void gh__hub_after_fork(gh_hub *h);
/*
 * At a blocking call any thread may make: *hp = the caller's hub, or NULL
 * for a plain thread (which may always block: it blocks itself), and 0 or
 * what gh__can_block says.
 */
int gh__caller_can_block(gh_hub **hp);

/* -------------------------------------------------------- hubs by id */

/* Call fn(hub, arg) for every registered hub, under the registry's lock (none is freed meanwhile).
 */
void gh__hubs_each(void (*fn)(gh_hub *h, void *arg), void *arg);
/* The blocking detector (watchdog.c): GREENHUB_BLOCK_MS, read once; a forked child's restart. */
void gh__watchdog_env(void);
void gh__watchdog_after_fork(void);

/* In a forked child: only @keep (the forking thread's hub, or NULL) is left. */
void gh__fdtable_after_fork(gh_hub *keep);

/*
 * Post call(h, arg) to @h as a control message if @h is a registered hub
 * (looked up by address: @h may be a dangling pointer to a freed one).
 * 0, or -ESHUTDOWN when it is gone, freed or a tombstone. Any thread.
 */
int gh__hub_post_if_alive(gh_hub *h, void (*call)(gh_hub *, void *), void *arg);
/* @h is a registered hub (by address, as above) that still takes handoffs: not stopping. */
bool gh__hub_alive(const gh_hub *h);
/* Give @h the lowest free id; -ENOMEM. */
int gh__hub_register(gh_hub *h);
/* No message reaches @h through the registry from now on. */
void gh__hub_unregister(gh_hub *h);
/* @h's bit in a gh__fdent's hubs mask. */
static inline uint64_t gh__hub_bit(const gh_hub *h)
{
    return h->id < 63 ? (uint64_t)1 << h->id : (uint64_t)1 << 63;
}
/*
 * Post call(hub, arg) to every registered hub in @mask but @self; count(arg, n)
 * is told how many first (before any of them can run). Returns n.
 */
int gh__hubs_call(uint64_t mask, const gh_hub *self, void (*call)(gh_hub *, void *), void *arg,
                  int (*count)(void *arg, int n));

/* ------------------------------------------------------------ fd table */

/*
 * Make sure fds[fd] exists and holds nothing from an older file of that
 * number (a gh_close on any thread bumped its generation). -EBADF for an fd
 * the kernel does not know, checked before the table grows; -ENOMEM.
 */
int gh__fd_slot_reserve(gh_hub *h, int fd);
/* Watch/unwatch @fd's directions in the backend (lazy: keeps interest until it fires idle). */
int gh__fd_interest(gh_hub *h, int fd, int events);
/*
 * What a new backend instance must watch for @fd (a swap, a forked child):
 * the directions a task waits on, and the wakeup fd's interest.
 */
int gh__fd_carry(const gh_hub *h, int fd);
/* The backend's ready callback: wake the waiters of @fd (MAINLOOP step 5). */
void gh__fd_ready(void *hub, int fd, int events);
/*
 * Park the running task of the calling thread's hub until @fd is ready for
 * @events or the absolute
 * @deadline (-1 forever) passes: 0, -ETIMEDOUT, -ECANCELED, -EBADF (closed),
 * -EBUSY (another task of this hub waits in that direction), -EPERM.
 */
int gh__fd_wait(int fd, int events, int64_t deadline);
/*
 * A task moved here while it waited on @fd for @events (gh_task_move): put
 * it in @h's slot and backend. 0; 1 when the fd is ready now (a regular
 * file); -EBUSY if a task of @h already waits in that direction; -errno.
 */
int gh__fd_adopt_waiter(gh_hub *h, gh_task *t, int fd, int events);

/* ------------------------------------------------------- backend ops */

/*
 * A socket syscall the backend makes for the running task (op.c), on a hub
 * whose backend declares GH_BACKEND_COMPLETION. Lives on the caller's stack.
 */
typedef struct gh__op {
    gh_backend_op bop; /* first: the backend's view */
    gh_task *task;
    gh_hub *hub;                /* where it was submitted: its backend holds it */
    struct gh__op *prev, *next; /* in the hub's list of ops in flight */
    int dir;                    /* GH_READ or GH_WRITE: the fd slot direction it holds */
    uint8_t state;              /* GH__OP_* */
    bool reissue;               /* cancelled to be made again elsewhere (a move, swap, fork) */
    int result;
} gh__op;

enum { GH__OP_IDLE, GH__OP_INFLIGHT, GH__OP_CANCELLING, GH__OP_DONE };

/* gh__op_run's answer: make the call again from the top, by whichever path the hub has now. */
#define GH__OP_RETRY (-4096 - 1)

/*
 * The calling hub runs socket @fd's syscalls through its backend: it has a
 * completion path, @fd is a socket, and the call may wait (@timeout_ns != 0).
 */
bool gh__op_usable(gh_hub *h, int fd, int64_t timeout_ns, int64_t deadline);
/*
 * Right after gh__op_usable said yes (it reserved the fd's slot), hand @op
 * (bop filled: code, fd, flags, hints, buf, len) to the calling thread's
 * hub and park until it is done, its fd slot direction @dir held. A
 * deadline, kill or close cancels it, and this waits for the cancellation,
 * so the kernel never touches the buffer after the return. Returns the
 * syscall's result (kept even when it beat a cancellation), -ETIMEDOUT,
 * -ECANCELED, -EBADF, -EBUSY (another waiter in @dir), or GH__OP_RETRY.
 */
int gh__op_run(gh__op *op, int dir, int64_t deadline);
/* A move was accepted for @t, which waits on an op: cancel it, to be made again there. */
void gh__op_cancel_for_move(gh_task *t);
/*
 * Before @h leaves its backend (a swap): cancel every op, to be made again,
 * and poll until all are done. 0, or -EBUSY if some would not end.
 */
int gh__ops_drain(gh_hub *h);
/* In a forked child: the parent's kernel runs the ops; each is made again. */
void gh__ops_after_fork(gh_hub *h);
/* Whether @h may use its backend's completion path (caps, GREENHUB_COMPLETION). */
bool gh__op_backend_ok(const gh_hub *h);

/* What @fd is (GH__FD_*), asked once per file and cached in its slot (reserved). */
uint8_t gh__fd_kind(gh_hub *h, int fd);
/* @t's op holds @fd's @dir (as a waiter, so a close reaches it): -EBUSY if taken. */
int gh__fd_op_hold(gh_hub *h, int fd, int dir, gh_task *t);
/* ... and gives it back. */
void gh__fd_op_release(gh_hub *h, int fd, gh_task *t);

/* gh_xevent_wait, with what a dump says the task waits on ("call", "join"). */
int gh__xevent_wait(gh_xevent *ev, void **value, int64_t timeout_ns, const char *what);

/* --------------------------------------------------------------- timers */

/* Run every timer due at @now (MAINLOOP step 2). */
void gh__timers_fire(gh_hub *h, int64_t now);
/* Drop every callback timer (hub teardown); with @repeating_only, just the repeating ones. */
void gh__timers_drop(gh_hub *h, bool repeating_only);
/* The hub's thread is gone: free the timers whose handles nobody can use any more. */
void gh__timers_free_kept(gh_hub *h);
/* Free the kept list itself (hub teardown). */
void gh__timers_term(gh_hub *h);

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
/*
 * Run call(h, arg) on hub @h's thread, from any thread, with a node @m the
 * caller allocated: a control message (a close, a kill), so it is delivered
 * even to a hub that refuses handoffs, and run by a hub that is being freed.
 * 0, or -ESHUTDOWN once the hub is gone (freed, or a runtime's tombstone):
 * then nothing of it runs any more, and the caller keeps @m.
 */
int gh__post_call_msg(gh_hub *h, gh__msg *m, void (*call)(gh_hub *, void *), void *arg);
/*
 * Hub teardown, once no producer can post any more: run the control
 * messages left in the inbox and drop the rest (counted on stderr).
 */
void gh__inbox_flush(gh_hub *h);

/* ------------------------------------------------------------ embedding */

typedef struct gh__embed gh__embed;
/* The hub's interest in @fd changed from @old_events to @events: the hub fd's mirror follows. */
void gh__embed_mirror(gh_hub *h, int fd, int old_events, int events);
/* A callback timer was added for @when: the hub fd must be readable by then. */
void gh__embed_timer_added(gh_hub *h, int64_t when);
/* Close the hub fd (hub teardown, a forked child's hub). */
void gh__embed_term(gh_hub *h);

/* --------------------------------------------------------- callbacks */

/* The backend reported @events on a slot with watchers: queue their callbacks. */
void gh__watch_fired(gh_hub *h, gh__fdslot *s, int events);
/* Run the queued watcher callbacks (MAINLOOP, after the poll). */
void gh__watch_dispatch(gh_hub *h);
/* The slot's fd was closed (gh_close on any hub): its watchers stop, unwatched or not. */
void gh__watch_fd_closed(gh_hub *h, int fd);
/* Run the per-iteration hooks (MAINLOOP, before the poll). */
void gh__ticks_run(gh_hub *h);
/* Hub teardown: free every watcher and hook. */
void gh__watch_term(gh_hub *h);

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
