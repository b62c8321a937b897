/*
 * task.h — green tasks and the scheduler of one thread (gh__sched).
 *
 * sched/ knows no hub: a gh__sched is the run queue, the live tasks, the
 * stack cache and the timer heap of one thread, and every function here
 * takes it explicitly. The hub embeds one and runs it; the one call up, the
 * loop that runs when every task is blocked (MAINLOOP), is a function the
 * hub hands down to gh__sched_start_main.
 */
#ifndef GH_SCHED_TASK_H
#define GH_SCHED_TASK_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "greenhub.h"
#include "sched/assert.h"
#include "sched/clock.h"
#include "sched/context.h"
#include "sched/list.h"
#include "sched/stack.h"
#include "sched/timer_heap.h"

/* Counters written by the owning thread, read relaxed from any thread. */
#define GH__STAT_ADD(st, field, n)                                                                 \
    atomic_store_explicit(&(st)->field,                                                            \
                          atomic_load_explicit(&(st)->field, memory_order_relaxed) + (n),          \
                          memory_order_relaxed)

typedef enum gh__task_state {
    GH__TASK_NEW,     /* spawned, never run, no stack yet */
    GH__TASK_READY,   /* in the run queue */
    GH__TASK_RUNNING, /* on the CPU */
    GH__TASK_BLOCKED, /* parked; a waker will ready it */
    GH__TASK_MOVING,  /* between two schedulers (gh__task_depart .. gh__task_adopt) */
    GH__TASK_DONE     /* returned; stack gone */
} gh__task_state;

/* A FIFO of tasks waiting on something, linked through their wq (waitq.h). */
typedef gh__list gh__waitq;

/*
 * Told when a task finishes (or its scheduler drops it unfinished): how a
 * joiner that is not a task of the same scheduler learns of it. Linked in
 * the task until it fires or is removed; fn may free the hook.
 */
typedef struct gh__task_hook {
    struct gh__task_hook *prev, *next;
    void (*fn)(gh_task *t, void *arg);
    void *arg;
} gh__task_hook;

struct gh_task {
    gh__ctx ctx; /* saved context; first so the switch finds it cheaply */
    /*
     * The scheduler it runs on. Another thread reads it to address a message
     * to the task's hub, and a move changes it: hence atomic (a plain load on
     * x86-64); only the owning scheduler's thread writes it.
     */
    _Atomic(struct gh__sched *) sched;
    gh_task *rq_next;             /* run queue / free list link */
    gh_task *all_prev, *all_next; /* every live task of the scheduler */
    uint64_t id;
    void (*fn)(void *);
    void *arg;
    gh__stack *stack; /* NULL until first run, and for root and MAINLOOP's own */
    uint8_t state;    /* gh__task_state */
    bool killed;      /* sticky: every blocking call returns -ECANCELED */
    bool has_handle;  /* a gh_task * is out there */
    bool is_root;
    bool in_runq;
    atomic_bool finished;       /* DONE, readable from any thread (a join from another hub) */
    int wake_result;            /* what the blocking call returns */
    uint32_t park_seq;          /* counts parks, so a late cross-thread wake is recognised */
    uint32_t xwakes_inflight;   /* cross-thread wakes posted for this task, not yet run */
    gh_timer timeout;           /* embedded: the deadline of the current wait */
    void (*unlink)(gh_task *t); /* detaches t from what it waits on (timeout, kill) */
    void *wait_obj;
    gh__link wq; /* link in a gh__waitq */
    gh__waitq joiners;
    gh__task_hook *hooks;   /* fired when it finishes (gh__task_hook_add) */
    char *name;             /* gh_task_set_name's copy, or NULL */
    const char *wait_what;  /* what it is parked on ("fd", "sleep", "join", ...), for dumps */
    int64_t parked_at;      /* the hub's clock when it parked (gh__sched.now) */
    void *asan_fake;        /* ASan's fake stack of the suspended task */
    const void *san_bottom; /* stack bounds for the sanitizers */
    size_t san_size;
    void *tsan_fiber;
    struct gh__scopes *scopes; /* its deadline scopes (gh_deadline_push), or NULL: never had one */
    void *move_to;             /* a gh_task_move accepted while it waited: where it goes (hub) */
    uint32_t pinned;           /* > 0: its caller keeps hub state across a wait; it cannot move */
};

/*
 * A task's deadline scopes, a stack: each level keeps its own deadline and
 * the effective one it replaced; `deadline` is the earliest of them all
 * (-1: none), and caps every park of the task.
 */
typedef struct gh__scope {
    int64_t own, saved;
} gh__scope;

typedef struct gh__scopes {
    int64_t deadline;
    uint32_t depth, cap;
    gh__scope level[];
} gh__scopes;

/* The running task's scope deadline, or -1. */
static inline int64_t gh__scope_deadline(const gh_task *t)
{
    return __builtin_expect(t->scopes != NULL, 0) ? t->scopes->deadline : -1;
}

/* @deadline (absolute, -1 none) capped by the task's scope deadline. */
static inline int64_t gh__scope_cap(const gh_task *t, int64_t deadline)
{
    int64_t scope = gh__scope_deadline(t);
    return scope >= 0 && (deadline < 0 || scope < deadline) ? scope : deadline;
}

typedef struct gh__sched_stats {
    _Atomic uint64_t tasks_spawned, tasks_live, switches;
    _Atomic uint64_t running; /* the id of the task on the CPU (a stuck stop names it) */
} gh__sched_stats;

/* The scheduler of one thread. */
typedef struct gh__sched {
    gh_task *current; /* running task (MAINLOOP while timers fire) */
    gh_task root;     /* the thread's own stack */
    gh_task main;     /* MAINLOOP, on a stack of its own */
    gh_task *rq_head, *rq_tail;
    uint32_t rq_len;
    /*
     * Task starts left before MAINLOOP must iterate again: set by
     * gh__run_ready, spent by its own starts and by every direct switch of
     * a task that yields or parks (task_switch_next), 0 outside the batch.
     */
    uint32_t rq_batch;
    gh_task *finished;   /* the task that just returned, its stack not yet reclaimed */
    gh_task *all;        /* every spawned, unfinished task */
    gh_task *held;       /* finished tasks whose handle is still out (all_prev/all_next) */
    gh_task *free_tasks; /* recycled task structs */
    uint32_t free_tasks_len;
    uint64_t next_task_id;
    uint32_t live_tasks; /* spawned and not finished, root and MAINLOOP excluded */
    uint64_t ran;        /* times a task other than the root was run (gh_hub_run_once counts) */
    /* Told when the root readies a task (NULL unless the hub is embedded: hub/embed.c). */
    void (*root_ready)(struct gh__sched *s);
    int64_t now; /* the clock at the top of the loop's iteration (set by the hub) */
    gh__stack_cache stacks;
    gh__timer_heap timers;
    atomic_bool kill_all; /* new tasks start cancelled (a runtime stop past its drain timeout) */
    gh_task *departing;   /* a task leaving for another scheduler (gh__task_depart) */
    void (*depart)(gh_task *t, void *arg); /* MAINLOOP hands it over (the hub's) */
    /* A woken task with t->move_to set leaves, before its wait returns (the hub's). */
    void (*move_now)(struct gh__sched *s, gh_task *t);
    void *depart_arg;
    /*
     * Asked every few direct task-to-task switches: must MAINLOOP iterate
     * now (a timer or the poll is due, a handoff waits)? The hub's; NULL: no.
     */
    bool (*loop_due)(struct gh__sched *s);
    void (*main_loop)(void *); /* what MAINLOOP runs: the hub's loop */
    void *main_arg;
    gh__sched_stats stats;
} gh__sched;

/*
 * After a wait that ended on this hub: a move accepted meanwhile
 * (gh_task_move of a task waiting on its hub's things) is made now, before
 * the wait returns (hub/task.c).
 */
static inline void gh__task_leave_if_moved(gh_task *t)
{
    if (__builtin_expect(t->move_to != NULL, 0)) {
        gh__sched *now_on = atomic_load_explicit(&t->sched, memory_order_relaxed);
        now_on->move_now(now_on, t);
    }
}

void gh__sched_init(gh__sched *s, size_t stack_size);
/* Give MAINLOOP its stack: the first switch to s->main calls loop(arg), which never returns. */
int gh__sched_start_main(gh__sched *s, void (*loop)(void *), void *arg);
/*
 * Drop every unfinished task and every stack (thread exit, hub close). A
 * task whose handle is still out is left to its handle: finished, and with
 * @orphan its sched pointer is cleared, so gh__task_orphaned says so.
 */
void gh__sched_term(gh__sched *s, bool orphan);

/*
 * A task for @s made on any thread, not yet known to @s (no id, not
 * queued); gh__task_start makes it run, on @s's thread. NULL + ENOMEM.
 */
gh_task *gh__task_new_detached(gh__sched *s, void (*fn)(void *), void *arg, bool handle);
void gh__task_start(gh__sched *s, gh_task *t);
/* Spawn on @s, ready (or delayed); a handle if @handle. NULL + errno on failure. */
gh_task *gh__task_spawn(gh__sched *s, void (*fn)(void *), void *arg, bool handle, int64_t delay);
/*
 * Block the running task until gh__task_wake. @deadline absolute or -1.
 * @what names what it waits on, for dumps (a static string).
 */
int gh__task_park(gh__sched *s, int64_t deadline, void (*unlink)(gh_task *), void *obj,
                  const char *what);
/*
 * gh__task_park for the library's own waits that a deadline scope must not
 * cut short (a cross-hub close waiting for every hub's answer, a stop).
 */
int gh__task_park_uncapped(gh__sched *s, int64_t deadline, void (*unlink)(gh_task *), void *obj,
                           const char *what);
/* Open a deadline scope on the running task of @s: -ENOMEM. */
int gh__scope_push(gh__sched *s, int64_t deadline);
/* Close the innermost: 0, -ETIMEDOUT if its own deadline passed, -ENOENT if none is open. */
int gh__scope_pop(gh__sched *s);
/* Ready a blocked task with @result (its unlink is not called). */
void gh__task_wake(gh_task *t, int result);
/* Ready a blocked task after detaching it from what it waits on (timeouts, kill). */
void gh__task_wake_detach(gh_task *t, int result);
/* Put a ready task at the back of the run queue. */
void gh__runq_push(gh__sched *s, gh_task *t);
/* Switch from the running task to @to; returns when the caller is resumed. */
void gh__switch(gh__sched *s, gh_task *to);
/*
 * The least number of task starts in one MAINLOOP batch (more when more are
 * ready): MAINLOOP's iteration is then paid once per that many task-to-task
 * switches, as Go polls its global queue every 61st schedule.
 */
#define GH__SCHED_BUDGET 61
/*
 * Run a bounded batch of ready tasks (MAINLOOP step 3): the tasks ready
 * now, and at least GH__SCHED_BUDGET starts, direct switches included.
 */
void gh__run_ready(gh__sched *s);
/*
 * Check at a blocking call's entry: -EPERM from MAINLOOP, -ECANCELED if
 * killed, -ETIMEDOUT past a deadline scope, else 0. Inline: it is on the
 * path of every gh_yield.
 */
static inline int gh__can_block(gh__sched *s)
{
    gh_task *t = s->current;
    if (__builtin_expect(t == &s->main, 0))
        return -EPERM;
    if (__builtin_expect(t->killed, 0))
        return -ECANCELED;
    if (__builtin_expect(t->scopes != NULL, 0) && t->scopes->deadline >= 0 &&
        gh_now() >= t->scopes->deadline)
        return -ETIMEDOUT;
    return 0;
}
/* Requeue the running task behind every task ready now and run them (gh_sleep(0)). */
int gh__task_yield(gh__sched *s);
/* Wait for @t (of @s) to finish: 0, -ETIMEDOUT, -ECANCELED, -EDEADLK for the caller itself. */
int gh__task_join(gh__sched *s, gh_task *t, int64_t timeout_ns);
/* Kill @t: sticky cancel; a delayed task that has not started starts now. */
void gh__task_kill(gh__sched *s, gh_task *t);
/* Kill every live task (runtime stop after its drain timeout). */
void gh__task_kill_all(gh__sched *s);
/*
 * The running task leaves @s: its local joiners are woken with -EXDEV (they
 * join again from afar), it leaves the live list, and once its context is
 * saved MAINLOOP calls s->depart(t), which must hand it to another scheduler
 * (gh__task_adopt there) or back to @s. Returns what the adopter set in
 * t->wake_result, running on the new scheduler's thread.
 */
int gh__task_depart(gh__sched *s);
/* On @s's thread: take in a task another scheduler let go of; it runs next in line. */
void gh__task_adopt(gh__sched *s, gh_task *t, int result);
/* What a task moved by another thread was doing, to carry to its new scheduler. */
typedef struct gh__move_state {
    uint8_t state; /* NEW, READY or BLOCKED */
    int64_t when;  /* its timer's deadline (a sleep, a delayed start), or -1 */
} gh__move_state;

/*
 * On @s's thread: take @t (not running) out of @s to move it elsewhere.
 * Only a task whose next step cannot touch this scheduler may go: one that
 * never ran, or one in (or just woken from) gh_sleep, gh_yield or an fd
 * wait, whose callers read their hub afresh. A parked task is taken off what
 * it waits on here (its unlink); the caller re-registers it on arrival.
 * 0 and *ms; -ENOENT if it finished; -EBUSY if it waits on something else
 * (an event, a join, a channel...), or a wake-up posted here is on its way.
 */
int gh__task_detach(gh__sched *s, gh_task *t, gh__move_state *ms);
/* On @s's thread: take in a task detached elsewhere, in the state it had (same deadline). */
void gh__task_attach(gh__sched *s, gh_task *t, const gh__move_state *ms);
/* Run hook(t) when @t finishes; @t is not finished yet. */
void gh__task_hook_add(gh_task *t, gh__task_hook *k);
/* Take back a hook that has not fired. */
void gh__task_hook_remove(gh_task *t, gh__task_hook *k);
/* The handle of @t is given back: free it once nothing else refers to it. */
void gh__task_release(gh__sched *s, gh_task *t);
/* Bytes of a suspended task's stack in use (x86-64: from its saved stack pointer), else 0. */
size_t gh__task_stack_in_use(const gh_task *t);
/* Free a task struct for good, its name with it (not back to a free list). */
void gh__task_destroy(gh_task *t);
/* Free a task struct (DONE, no handle, no wake in flight). */
void gh__task_free(gh__sched *s, gh_task *t);
void gh__task_maybe_free(gh__sched *s, gh_task *t);

#endif /* GH_SCHED_TASK_H */
