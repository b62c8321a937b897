/*
 * inbox.h — a hub's cross-thread inbox: an intrusive MPSC queue (Vyukov) of
 * messages and a wakeup fd, written only when the hub may be asleep.
 *
 * Producers never block and never spin; the hub never spins on a producer
 * caught between its two stores either: it sleeps, briefly (inbox.c), and
 * that producer's own wake-up check (after its second store) may end it.
 */
#ifndef GH_HUB_INBOX_H
#define GH_HUB_INBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct gh_hub gh_hub;
typedef struct gh_task gh_task;
typedef struct gh__msg_pool gh__msg_pool;

typedef enum gh__msg_kind {
    GH__MSG_STUB,  /* the queue's own placeholder */
    GH__MSG_SPAWN, /* run fn(arg) as a new task */
    GH__MSG_WAKE,  /* ready a task of this hub parked with park_seq */
    GH__MSG_CALL,  /* run call(hub, arg) on the hub's thread, even while it stops */
    GH__MSG_START, /* start a task made on another thread (gh_spawn_task_on) */
} gh__msg_kind;

typedef struct gh__msg {
    _Atomic(struct gh__msg *) next;
    gh__msg_pool *pool; /* where the node goes back to */
    uint8_t kind;
    int result;
    uint32_t park_seq;
    union {
        void (*fn)(void *);             /* SPAWN */
        void (*call)(gh_hub *, void *); /* CALL */
    };
    void *arg; /* SPAWN: fn's argument; WAKE: the task; CALL: call's argument */
} gh__msg;

/* Hub state bits for the sleeping hand-shake. */
enum { GH__INBOX_AWAKE = 0, GH__INBOX_SLEEPING = 1, GH__INBOX_NOTIFIED = 2 };

typedef struct gh__inbox {
    _Atomic(gh__msg *) head; /* producers exchange here */
    char pad0[64 - sizeof(void *)];
    gh__msg *tail; /* the hub pops here */
    gh__msg stub;
    char pad1[64];
    /*
     * Read by every producer, written once: a line of its own, away from
     * sleep_state, which the hub writes when it goes to sleep and wakes.
     */
    atomic_bool closed;        /* refusing new handoffs, for good */
    _Atomic int wakes_posting; /* WAKE posts between their push and their wake-up check */
    char pad2[64 - sizeof(atomic_bool) - sizeof(int)];
    _Atomic int sleep_state; /* GH__INBOX_* */
    int wake_rfd, wake_wfd;  /* eventfd: both the same fd; pipe: read and write ends */
    char pad3[64 - 3 * sizeof(int)];
} gh__inbox;

int gh__inbox_init(gh__inbox *in);
void gh__inbox_term(gh__inbox *in);
/* Producer side, any thread. Returns 0, -ESHUTDOWN (refusing) or -ENOMEM. */
int gh__inbox_post(gh_hub *h, gh__inbox *in, gh__msg *m);
/* A message node from the calling thread's pool; NULL on ENOMEM. */
gh__msg *gh__msg_alloc(void);
/*
 * The same, waiting out a transient ENOMEM: for control messages that must
 * not be dropped (a close, a release, a join's cancel, a move).
 */
gh__msg *gh__msg_alloc_retry(void);
/* Hand a consumed node back to its pool (any thread). */
void gh__msg_free(gh__msg *m);
/* Consumer side: next message, or NULL (empty, or a producer mid-push). */
gh__msg *gh__inbox_pop(gh__inbox *in);
/*
 * Consumer side, after a pop found nothing: a producer has exchanged the
 * head but not linked its node yet (seq_cst: read after the SLEEPING store).
 */
static inline bool gh__inbox_pushing(gh__inbox *in)
{
    return atomic_load(&in->head) != in->tail;
}
/* Read the wakeup fd empty. */
void gh__inbox_drain_fd(gh__inbox *in);
/* Write the wakeup fd unconditionally (stop requests). */
void gh__inbox_kick(gh_hub *h, gh__inbox *in);
/* Refuse new posts from now on. */
void gh__inbox_close(gh__inbox *in);
/* Closed, and no producer is between its check of closed and its push. */
bool gh__inbox_quiet(gh__inbox *in);
/* No producer is pushing into @in right now (scans every thread's pool). */
bool gh__inbox_no_producers(gh__inbox *in);
bool gh__inbox_closed(gh__inbox *in);
/*
 * In a forked child: a wakeup fd of the child's own, and an empty queue
 * (what was queued is the parent's). 0, or -errno with nothing changed.
 */
int gh__inbox_after_fork(gh__inbox *in);
/* In a forked child: the pools' lock and posting marks, as if no other thread ever ran. */
void gh__msg_pools_after_fork(void);
/* Thread exit: orphan the calling thread's message pool for the next thread (nodes in flight keep
 * it alive). */
void gh__msg_pool_thread_exit(void);

#endif /* GH_HUB_INBOX_H */
