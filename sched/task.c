/*
 * task.c — green tasks: spawn, run, park, wake, join, kill, release.
 *
 * MAINLOOP (s->main) starts a batch of ready tasks each iteration; within
 * the batch, a task that yields or parks switches straight to the next ready
 * task (task_switch_next), and to MAINLOOP only when none is ready, the
 * batch's budget is spent or the hub says MAINLOOP is due. The root task is
 * the thread's own stack and is scheduled like any other task. A task's
 * stack is taken when it first runs and goes back to the thread's cache
 * when it returns, reclaimed by MAINLOOP, since no code may free the stack
 * it runs on. The one shortcut there: a task that returns hands its stack
 * to the next task of the batch if that one has never run, and runs it in
 * place (task_chain_next).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sched/task.h"

#include "sched/sanitizer.h"
#include "sched/waitq.h"

#define TASK_FREE_MAX 4096

static void task_entry(void *arg);

void gh__runq_push(gh__sched *s, gh_task *t)
{
    if (__builtin_expect(s->root_ready != NULL, 0) && s->current == &s->root)
        s->root_ready(s);
    t->rq_next = NULL;
    t->in_runq = true;
    if (s->rq_tail)
        s->rq_tail->rq_next = t;
    else
        s->rq_head = t;
    s->rq_tail = t;
    s->rq_len++;
}

static gh_task *runq_pop(gh__sched *s)
{
    gh_task *t = s->rq_head;
    if (!t)
        return NULL;
    s->rq_head = t->rq_next;
    if (!s->rq_head)
        s->rq_tail = NULL;
    s->rq_len--;
    t->in_runq = false;
    t->rq_next = NULL;
    return t;
}

/*
 * gh__switch, inlined into the scheduler's own paths. @ret: resume @to with
 * a return (gh__ctx_switch_ret), for a task-to-task switch where both are
 * suspended at the same call site most of the time.
 */
static inline __attribute__((always_inline)) void task_switch(gh__sched *s, gh_task *to, bool ret)
{
    gh_task *from = s->current;

    /* An unguarded stack's overflow is caught here, at the first switch after it. */
    if (from->stack && !gh__stack_canary_ok(from->stack))
        gh__stack_overflow(from->id, from->stack);
    s->current = to;
    GH__STAT_ADD(&s->stats, switches, 1);
    atomic_store_explicit(&s->stats.running, to->id, memory_order_relaxed);
    gh__stack_set_running(to->id, to->stack);
#if GH_ASAN
    __sanitizer_start_switch_fiber(from->state == GH__TASK_DONE ? NULL : &from->asan_fake,
                                   to->san_bottom, to->san_size);
#endif
#if GH_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    if (ret)
        gh__ctx_switch_ret(&from->ctx, &to->ctx);
    else
        gh__ctx_switch(&from->ctx, &to->ctx);
#if GH_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

void gh__switch(gh__sched *s, gh_task *to)
{
    task_switch(s, to, false);
}

static void task_timeout_fire(void *arg)
{
    gh_task *t = arg;
    gh__task_wake_detach(t, -ETIMEDOUT);
}

static void task_start_fire(void *arg)
{
    gh_task *t = arg;
    /* Stays NEW: gh__run_ready gives a NEW task its stack and context at first run. */
    gh__runq_push(t->sched, t);
}

static void task_link_all(gh__sched *s, gh_task *t)
{
    t->all_prev = NULL;
    t->all_next = s->all;
    if (s->all)
        s->all->all_prev = t;
    s->all = t;
}

static void task_unlink_all(gh__sched *s, gh_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        s->all = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    t->all_prev = t->all_next = NULL;
}

/*
 * Field by field, not memset: for a struct this size gcc emits rep stos,
 * whose start-up cost was a fifth of a handoff's time on the hub. The
 * assert below makes whoever adds a field come here.
 */
static void task_init_fields(gh__sched *s, gh_task *t)
{
    _Static_assert(sizeof(gh_task) == sizeof(gh__ctx) + 288,
                   "a field was added to gh_task: initialise it here");
    atomic_store_explicit(&t->sched, s, memory_order_relaxed);
    t->rq_next = NULL;
    t->all_prev = t->all_next = NULL;
    t->id = 0;
    t->fn = NULL;
    t->arg = NULL;
    t->stack = NULL;
    t->state = 0;
    t->killed = t->has_handle = t->is_root = t->in_runq = false;
    atomic_store_explicit(&t->finished, false, memory_order_relaxed);
    t->wake_result = 0;
    t->park_seq = 0;
    t->xwakes_inflight = 0;
    t->timeout.when = 0;
    t->timeout.seq = 0;
    t->timeout.interval = 0;
    t->timeout.delay = 0;
    t->timeout.heap_idx = GH__NOT_IN_HEAP;
    t->timeout.flags = GH__TIMER_EMBEDDED;
    t->timeout.cb = task_timeout_fire;
    t->timeout.arg = t;
    t->timeout.sched = s;
    t->unlink = NULL;
    t->wait_obj = NULL;
    t->wq.prev = t->wq.next = NULL;
    gh__waitq_init(&t->joiners);
    t->hooks = NULL;
    t->name = NULL;
    t->wait_what = NULL;
    t->parked_at = 0;
    t->asan_fake = NULL;
    t->san_bottom = NULL;
    t->san_size = 0;
    t->tsan_fiber = NULL;
    t->scopes = NULL;
    t->move_to = NULL;
    t->pinned = 0;
}

gh_task *gh__task_new_detached(gh__sched *s, void (*fn)(void *), void *arg, bool handle)
{
    gh_task *t = malloc(sizeof *t);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    task_init_fields(s, t);
    t->fn = fn;
    t->arg = arg;
    t->has_handle = handle;
    t->state = GH__TASK_NEW;
    return t;
}

void gh__task_start(gh__sched *s, gh_task *t)
{
    t->id = ++s->next_task_id;
    /* Killed before it got here (a kill travels behind it), or a stop is past its drain. */
    t->killed |= atomic_load_explicit(&s->kill_all, memory_order_relaxed);
    gh__runq_push(s, t);
    task_link_all(s, t);
    s->live_tasks++;
    GH__STAT_ADD(&s->stats, tasks_spawned, 1);
    GH__STAT_ADD(&s->stats, tasks_live, 1);
}

gh_task *gh__task_spawn(gh__sched *s, void (*fn)(void *), void *arg, bool handle, int64_t delay)
{
    gh_task *t = s->free_tasks;

    if (t) {
        s->free_tasks = t->rq_next;
        s->free_tasks_len--;
    } else {
        t = malloc(sizeof *t);
        if (!t) {
            errno = ENOMEM;
            return NULL;
        }
    }
    task_init_fields(s, t);
    t->id = ++s->next_task_id;
    t->fn = fn;
    t->arg = arg;
    t->has_handle = handle;
    t->state = GH__TASK_NEW;
    t->killed = atomic_load_explicit(&s->kill_all, memory_order_relaxed);
    if (delay > 0) {
        t->timeout.cb = task_start_fire;
        t->timeout.when = gh__deadline(delay);
        if (t->timeout.when < 0)
            t->timeout.when = INT64_MAX;
        if (gh__timer_add(&s->timers, &t->timeout) != 0) {
            gh__task_free(s, t);
            errno = ENOMEM;
            return NULL;
        }
    } else {
        gh__runq_push(s, t);
    }
    task_link_all(s, t);
    s->live_tasks++;
    GH__STAT_ADD(&s->stats, tasks_spawned, 1);
    GH__STAT_ADD(&s->stats, tasks_live, 1);
    return t;
}

size_t gh__task_stack_in_use(const gh_task *t)
{
#ifdef GH_CONTEXT_UCONTEXT
    (void)t;
    return 0;
#else
    if (!t->stack || !t->ctx.sp)
        return 0;
    const char *hi = (const char *)t->stack->lo + t->stack->size;
    const char *sp = t->ctx.sp;
    return sp >= (const char *)t->stack->lo && sp <= hi ? (size_t)(hi - sp) : 0;
#endif
}

void gh__task_destroy(gh_task *t)
{
    free(t->name);
    free(t);
}

void gh__task_free(gh__sched *s, gh_task *t)
{
    if (__builtin_expect(t->name != NULL, 0)) {
        free(t->name);
        t->name = NULL;
    }
    if (s->free_tasks_len < TASK_FREE_MAX) {
        t->rq_next = s->free_tasks;
        s->free_tasks = t;
        s->free_tasks_len++;
    } else {
        free(t);
    }
}

void gh__task_maybe_free(gh__sched *s, gh_task *t)
{
    if (t->state == GH__TASK_DONE && !t->has_handle && !t->xwakes_inflight && !t->stack)
        gh__task_free(s, t);
}

void gh__task_hook_add(gh_task *t, gh__task_hook *k)
{
    k->prev = NULL;
    k->next = t->hooks;
    if (t->hooks)
        t->hooks->prev = k;
    t->hooks = k;
}

void gh__task_hook_remove(gh_task *t, gh__task_hook *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else if (t->hooks == k)
        t->hooks = k->next;
    else
        return; /* fired already */
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
}

static void task_fire_hooks(gh_task *t)
{
    gh__task_hook *k;
    while ((k = t->hooks)) {
        t->hooks = k->next;
        if (t->hooks)
            t->hooks->prev = NULL;
        k->prev = k->next = NULL;
        k->fn(t, k->arg);
    }
}

/* A finished task whose handle is out: kept on s->held until released or orphaned. */
static void task_hold(gh__sched *s, gh_task *t)
{
    t->all_prev = NULL;
    t->all_next = s->held;
    if (s->held)
        s->held->all_prev = t;
    s->held = t;
}

static void task_unhold(gh__sched *s, gh_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        s->held = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    t->all_prev = t->all_next = NULL;
}

void gh__task_release(gh__sched *s, gh_task *t)
{
    if (!t->has_handle)
        return;
    t->has_handle = false;
    if (t->state == GH__TASK_DONE)
        task_unhold(s, t);
    gh__task_maybe_free(s, t);
}

/* @t returned: wake its joiners and take it off the live list. */
static void task_finish(gh__sched *s, gh_task *t)
{
    t->state = GH__TASK_DONE;
    if (__builtin_expect(t->scopes != NULL, 0)) { /* returned inside a scope it never closed */
        free(t->scopes);
        t->scopes = NULL;
    }
    atomic_store_explicit(&t->finished, true, memory_order_release);
    gh_task *j;
    while ((j = gh__waitq_first(&t->joiners)))
        gh__task_wake_detach(j, 0);
    if (__builtin_expect(t->hooks != NULL, 0))
        task_fire_hooks(t);
    task_unlink_all(s, t);
    if (t->has_handle)
        task_hold(s, t);
    s->live_tasks--;
    GH__STAT_ADD(&s->stats, tasks_live, -1);
}

/*
 * The next task of this batch, if it has never run: it takes over the stack
 * of @done, which has returned, and runs right here, without the two
 * switches through MAINLOOP and the stack's trip to the cache and back.
 * A storm of handoffs runs as one loop on one stack.
 */
static gh_task *task_chain_next(gh__sched *s, gh_task *done)
{
    gh_task *next = s->rq_head;
    if (!s->rq_batch || !next || next->state != GH__TASK_NEW || !gh__stack_canary_ok(done->stack))
        return NULL;
    s->rq_batch--;
    runq_pop(s);
    s->ran++;
    next->stack = done->stack;
    next->san_bottom = done->san_bottom;
    next->san_size = done->san_size;
    next->tsan_fiber = done->tsan_fiber;
    done->stack = NULL;
    done->tsan_fiber = NULL;
    gh__task_maybe_free(s, done);
    next->state = GH__TASK_RUNNING;
    s->current = next;
    atomic_store_explicit(&s->stats.running, next->id, memory_order_relaxed);
    gh__stack_set_running(next->id, next->stack);
    return next;
}

/* First code on a task's stack. */
static void task_entry(void *arg)
{
    gh_task *t = arg;
    gh__sched *s;

#if GH_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    for (;;) {
        t->fn(t->arg);
        s = t->sched; /* read after fn: the task may have moved to another scheduler */
        task_finish(s, t);
        gh_task *next = task_chain_next(s, t);
        if (!next)
            break;
        t = next;
    }

    /* Leave for good. MAINLOOP reclaims the stack. */
    s->finished = t;
    gh__switch(s, &s->main);
    GH_ASSERT(!"a finished task was resumed");
}

/* Give a task its stack at first run. */
static int task_prepare(gh__sched *sc, gh_task *t)
{
    gh__stack *s = gh__stack_get(&sc->stacks);
    if (!s)
        return -ENOMEM;
    t->stack = s;
    t->san_bottom = s->lo;
    t->san_size = s->size;
#if GH_TSAN
    /*
     * A TSan fiber costs ~800 KB of memset to make: one per task made a
     * handoff storm of 100k tasks take a minute. It stays with the stack and
     * serves the tasks that run there (switches synchronise, so no ordering
     * is lost), but only 4096 of them: a task leaves for good without
     * returning, so each one leaves its two bottom frames on the fiber's
     * shadow stack, which holds 64k (reports print the top 255 frames, so
     * a report shows the real frames first).
     */
    if (s->tsan_fiber && ++s->tsan_uses >= 4096) {
        __tsan_destroy_fiber(s->tsan_fiber);
        s->tsan_fiber = NULL;
    }
    if (!s->tsan_fiber) {
        s->tsan_fiber = __tsan_create_fiber(0);
        s->tsan_uses = 0;
    }
    t->tsan_fiber = s->tsan_fiber;
#endif
    /* Keep the canary word (unguarded stacks) out of the frame area. */
    gh__ctx_make(&t->ctx, (char *)s->lo + 64, s->size - 64, task_entry, t);
    return 0;
}

static void task_reclaim(gh__sched *s, gh_task *t)
{
    t->tsan_fiber = NULL; /* it belongs to the stack */
    gh__stack_put(&s->stacks, t->stack);
    t->stack = NULL;
    gh__task_maybe_free(s, t);
}

/* Direct switches between two questions to the hub (s->loop_due): a power of 2. */
#define TASK_LOOK_EVERY 16

/*
 * task_switch_next's less common cases: the task to switch to, taken off
 * the run queue and given its stack, or NULL for MAINLOOP (see there).
 */
static __attribute__((noinline)) gh_task *task_next_slow(gh__sched *s)
{
    gh_task *next = s->rq_head;
    if (!next || next == s->current || s->rq_batch == 0)
        return NULL;
    if ((s->rq_batch & (TASK_LOOK_EVERY - 1)) == 0 && s->loop_due && s->loop_due(s))
        return NULL;
    if (next->state == GH__TASK_NEW && task_prepare(s, next) != 0)
        return NULL; /* out of memory for a stack: MAINLOOP keeps it queued */
    runq_pop(s);
    s->rq_batch--;
    next->state = GH__TASK_RUNNING;
    s->ran += next != &s->root;
    return next;
}

/*
 * The running task has yielded or parked: switch straight to the next ready
 * task while the batch's budget lasts, one context switch where going
 * through MAINLOOP cost two and a loop iteration. FIFO keeps it fair: a
 * yielder is behind every task ready before it. MAINLOOP runs, and ends its
 * batch, when no other task is ready, the budget is spent, a task's stack
 * cannot be had, or the hub says it is due (asked every TASK_LOOK_EVERY
 * switches: a clock read per switch would cost more than the switch).
 * rq_batch > 0 only while MAINLOOP is switched out in gh__run_ready's loop,
 * the one place it switches out, so it always resumes there. One switch
 * site per caller (yield, park), so two tasks doing the same thing are
 * suspended at the same place and resume each other with a return.
 */
static inline __attribute__((always_inline)) void task_switch_next(gh__sched *s)
{
    gh_task *next = s->rq_head;
    uint32_t budget = s->rq_batch;
    if (__builtin_expect(!next || next == s->current || (budget & (TASK_LOOK_EVERY - 1)) == 0 ||
                             next->state == GH__TASK_NEW,
                         0)) {
        next = task_next_slow(s);
        if (!next) {
            s->rq_batch = 0;
            task_switch(s, &s->main, false);
            return;
        }
    } else {
        runq_pop(s);
        s->rq_batch = budget - 1;
        next->state = GH__TASK_RUNNING;
        s->ran += next != &s->root;
    }
    task_switch(s, next, true);
}

void gh__run_ready(gh__sched *s)
{
    /*
     * The tasks ready now, and at least GH__SCHED_BUDGET starts: a task
     * that yields or parks spends one when it switches straight to the
     * next (task_switch_next), and so may a returning one that starts the
     * next itself (task_chain_next), so the count lives in the scheduler.
     */
    s->rq_batch = s->rq_len > GH__SCHED_BUDGET ? s->rq_len : GH__SCHED_BUDGET;
    while (s->rq_batch > 0) {
        s->rq_batch--;
        gh_task *t = runq_pop(s);
        if (!t)
            break;
        if (t->state == GH__TASK_NEW && task_prepare(s, t) != 0) {
            /* Out of memory for a stack: keep it queued, never drop it. */
            gh__runq_push(s, t);
            break;
        }
        t->state = GH__TASK_RUNNING;
        s->ran += t != &s->root;
        task_switch(s, t, false);
        /* t may have returned, and so may tasks it started: the last one is here. */
        if (s->finished) {
            task_reclaim(s, s->finished);
            s->finished = NULL;
        }
        /* Or it is leaving: its context is saved now, so it may run elsewhere. */
        if (__builtin_expect(s->departing != NULL, 0)) {
            gh_task *d = s->departing;
            s->departing = NULL;
            s->depart(d, s->depart_arg);
        }
    }
    s->rq_batch = 0;
}

int gh__task_park(gh__sched *s, int64_t deadline, void (*unlink)(gh_task *), void *obj,
                  const char *what)
{
    gh_task *t = s->current;
    int result = gh__task_park_uncapped(s, gh__scope_cap(t, deadline), unlink, obj, what);
    gh__task_leave_if_moved(t);
    return result;
}

int gh__task_park_uncapped(gh__sched *s, int64_t deadline, void (*unlink)(gh_task *), void *obj,
                           const char *what)
{
    gh_task *t = s->current;

    t->wait_what = what;
    t->parked_at = s->now;

    t->unlink = unlink;
    t->wait_obj = obj;
    t->park_seq++;
    if (deadline >= 0) {
        t->timeout.cb = task_timeout_fire;
        t->timeout.when = deadline;
        if (gh__timer_add(&s->timers, &t->timeout) != 0) {
            if (unlink)
                unlink(t);
            t->unlink = NULL;
            return -ENOMEM;
        }
    }
    t->state = GH__TASK_BLOCKED;
    task_switch_next(s);
    t->unlink = NULL;
    t->wait_obj = NULL;
    t->wait_what = NULL;
    return t->wake_result;
}

int gh__scope_push(gh__sched *s, int64_t deadline)
{
    gh_task *t = s->current;
    gh__scopes *sc = t->scopes;
    if (!sc || sc->depth == sc->cap) {
        uint32_t cap = sc ? sc->cap * 2 : 4;
        gh__scopes *n = realloc(sc, sizeof *sc + cap * sizeof sc->level[0]);
        if (!n)
            return -ENOMEM;
        if (!sc) {
            n->deadline = -1;
            n->depth = 0;
        }
        n->cap = cap;
        t->scopes = sc = n;
    }
    sc->level[sc->depth++] = (gh__scope){.own = deadline, .saved = sc->deadline};
    if (deadline >= 0 && (sc->deadline < 0 || deadline < sc->deadline))
        sc->deadline = deadline;
    return 0;
}

int gh__scope_pop(gh__sched *s)
{
    gh_task *t = s->current;
    gh__scopes *sc = t->scopes;
    if (!sc || sc->depth == 0)
        return -ENOENT;
    gh__scope l = sc->level[--sc->depth];
    sc->deadline = l.saved;
    if (sc->depth == 0) {
        free(sc); /* the common case is one scope at a time: no cost for tasks without */
        t->scopes = NULL;
    }
    return l.own >= 0 && gh_now() >= l.own ? -ETIMEDOUT : 0;
}

void gh__task_wake(gh_task *t, int result)
{
    gh__sched *s = t->sched;

    GH_ASSERT(t->state == GH__TASK_BLOCKED);
    if (t->timeout.heap_idx != GH__NOT_IN_HEAP)
        gh__timer_remove(&s->timers, &t->timeout);
    t->wake_result = result;
    t->state = GH__TASK_READY;
    gh__runq_push(s, t);
}

void gh__task_wake_detach(gh_task *t, int result)
{
    void (*unlink)(gh_task *) = t->unlink;
    t->unlink = NULL;
    if (unlink)
        unlink(t);
    gh__task_wake(t, result);
}

/*
 * Kill one task of @s. A delayed task (gh_spawn_after) that has not started
 * starts now, already cancelled, rather than keep its hub busy until its start
 * time. Killing a finished task does nothing.
 */
void gh__task_kill(gh__sched *s, gh_task *t)
{
    if (t->state == GH__TASK_DONE)
        return;
    t->killed = true;
    if (t->state == GH__TASK_BLOCKED)
        gh__task_wake_detach(t, -ECANCELED);
    else if (t->state == GH__TASK_NEW && !t->in_runq && t->timeout.heap_idx != GH__NOT_IN_HEAP) {
        gh__timer_remove(&s->timers, &t->timeout);
        gh__runq_push(s, t);
    }
}

void gh__task_kill_all(gh__sched *s)
{
    for (gh_task *t = s->all; t; t = t->all_next)
        gh__task_kill(s, t);
}

static void join_unlink(gh_task *self)
{
    gh_task *target = self->wait_obj;
    gh__waitq_remove(&target->joiners, self);
}

int gh__task_join(gh__sched *s, gh_task *t, int64_t timeout_ns)
{
    if (t == s->current)
        return -EDEADLK;
    if (t->state == GH__TASK_DONE)
        return 0;
    int err = gh__can_block(s);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    gh__waitq_push(&t->joiners, s->current);
    return gh__task_park(s, gh__deadline(timeout_ns), join_unlink, t, "join");
}

int gh__task_depart(gh__sched *s)
{
    gh_task *t = s->current;
    gh_task *j;
    while ((j = gh__waitq_first(&t->joiners)))
        gh__task_wake_detach(j, -EXDEV);
    t->state = GH__TASK_MOVING;
    task_unlink_all(s, t);
    s->live_tasks--;
    GH__STAT_ADD(&s->stats, tasks_live, -1);
    s->departing = t;
    gh__switch(s, &s->main);
    return t->wake_result;
}

void gh__task_adopt(gh__sched *s, gh_task *t, int result)
{
    GH_ASSERT(t->state == GH__TASK_MOVING);
    t->timeout.sched = s;
    t->killed |= atomic_load_explicit(&s->kill_all, memory_order_relaxed);
    t->wake_result = result;
    t->state = GH__TASK_READY;
    task_link_all(s, t);
    s->live_tasks++;
    GH__STAT_ADD(&s->stats, tasks_live, 1);
    gh__runq_push(s, t);
}

int gh__task_yield(gh__sched *s)
{
    gh_task *t = s->current;
    /* Behind every task ready now: they all run before it does. */
    t->state = GH__TASK_READY;
    t->wait_what = "yield";
    gh__runq_push(s, t);
    t->wake_result = 0;
    task_switch_next(s);
    t->wait_what = NULL;
    return t->killed ? -ECANCELED : 0;
}

/* Take @t out of the (singly linked) run queue: O(length), for the rare move. */
static void runq_remove(gh__sched *s, gh_task *t)
{
    gh_task **pp = &s->rq_head, *prev = NULL;
    while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->rq_next;
    }
    GH_ASSERT(*pp == t);
    *pp = t->rq_next;
    if (s->rq_tail == t)
        s->rq_tail = prev;
    s->rq_len--;
    t->in_runq = false;
    t->rq_next = NULL;
}

int gh__task_detach(gh__sched *s, gh_task *t, gh__move_state *ms)
{
    if (t->state == GH__TASK_DONE)
        return -ENOENT;
    /* The waits whose callers read their hub afresh after the park (io/io.h). */
    bool sleeping =
        t->wait_what && (strcmp(t->wait_what, "sleep") == 0 || strcmp(t->wait_what, "yield") == 0 ||
                         strcmp(t->wait_what, "fd") == 0);
    bool movable = t->state == GH__TASK_NEW ||
                   ((t->state == GH__TASK_READY || t->state == GH__TASK_BLOCKED) && sleeping);
    if (!movable || t == s->current || t->is_root || t->xwakes_inflight)
        return -EBUSY;
    ms->state = t->state;
    ms->when = -1;
    if (t->state == GH__TASK_BLOCKED && t->unlink) {
        /* Off what it waits on here (an fd slot); the new hub puts it back on its own. */
        void (*unlink)(gh_task *) = t->unlink;
        t->unlink = NULL;
        unlink(t);
    }
    if (t->in_runq)
        runq_remove(s, t);
    if (t->timeout.heap_idx != GH__NOT_IN_HEAP) {
        ms->when = t->timeout.when;
        gh__timer_remove(&s->timers, &t->timeout);
    }
    gh_task *j;
    while ((j = gh__waitq_first(&t->joiners)))
        gh__task_wake_detach(j, -EXDEV);
    t->state = GH__TASK_MOVING;
    task_unlink_all(s, t);
    s->live_tasks--;
    GH__STAT_ADD(&s->stats, tasks_live, -1);
    return 0;
}

void gh__task_attach(gh__sched *s, gh_task *t, const gh__move_state *ms)
{
    GH_ASSERT(t->state == GH__TASK_MOVING);
    t->timeout.sched = s;
    t->killed |= atomic_load_explicit(&s->kill_all, memory_order_relaxed);
    task_link_all(s, t);
    s->live_tasks++;
    GH__STAT_ADD(&s->stats, tasks_live, 1);
    t->state = ms->state;
    if (ms->when >= 0) {
        /* The same deadline, now in this scheduler's heap: never early, never lost. */
        t->timeout.when = ms->when;
        if (gh__timer_add(&s->timers, &t->timeout) == 0) {
            if (t->killed && t->state == GH__TASK_BLOCKED)
                gh__task_wake_detach(t, -ECANCELED);
            else if (t->killed && t->state == GH__TASK_NEW) {
                gh__timer_remove(&s->timers, &t->timeout);
                gh__runq_push(s, t);
            }
            return;
        }
        /* No memory for the timer: wake it now rather than never. */
        if (t->state == GH__TASK_BLOCKED) {
            t->state = GH__TASK_READY;
            t->wake_result = -ENOMEM;
        }
        gh__runq_push(s, t);
        return;
    }
    if (t->state == GH__TASK_BLOCKED) {
        if (t->killed) /* a kill that reached it on the way */
            gh__task_wake_detach(t, -ECANCELED);
        return; /* a sleep with no deadline: only a kill ends it */
    }
    gh__runq_push(s, t);
}

/* --------------------------------------------------------- hub plumbing */

/* MAINLOOP's first frame: the loop the hub handed to gh__sched_start_main. */
static void mainloop_entry(void *arg)
{
    gh__sched *s = arg;
#if GH_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    s->main_loop(s->main_arg);
    GH_ASSERT(!"MAINLOOP returned");
}

void gh__sched_init(gh__sched *s, size_t stack_size)
{
    gh__stack_cache_init(&s->stacks, stack_size);
    gh__timer_heap_init(&s->timers);
    task_init_fields(s, &s->root);
    task_init_fields(s, &s->main);
    s->root.is_root = true;
    s->root.state = GH__TASK_RUNNING;
    s->root.id = 0;
    s->main.id = UINT64_MAX;
    s->main.state = GH__TASK_RUNNING;
    s->current = &s->root;
#if GH_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            s->root.san_bottom = addr;
            s->root.san_size = size;
        }
        pthread_attr_destroy(&attr);
    }
#endif
#if GH_TSAN
    s->root.tsan_fiber = __tsan_get_current_fiber();
#endif
}

int gh__sched_start_main(gh__sched *s, void (*loop)(void *), void *arg)
{
    gh__stack *st = gh__stack_get(&s->stacks);
    if (!st)
        return -ENOMEM;
    s->main_loop = loop;
    s->main_arg = arg;
    s->main.san_bottom = st->lo;
    s->main.san_size = st->size;
    s->main.stack = st; /* so an overflow of MAINLOOP's stack is reported like a task's */
#if GH_TSAN
    s->main.tsan_fiber = __tsan_create_fiber(0);
#endif
    gh__ctx_make(&s->main.ctx, (char *)st->lo + 64, st->size - 64, mainloop_entry, s);
    return 0;
}

void gh__sched_term(gh__sched *s, bool orphan)
{
    /* Empty the run queue first: it links tasks that the loop below frees. */
    while (s->rq_head)
        runq_pop(s);
    /*
     * Tasks that never finished: drop them and their stacks (thread exit,
     * hub close). One whose handle is out stays, as finished, for it.
     */
    while (s->all) {
        gh_task *t = s->all;
        task_unlink_all(s, t);
        if (t->stack) {
            gh__stack_put(&s->stacks, t->stack);
            t->stack = NULL;
            t->tsan_fiber = NULL;
        }
        t->timeout.heap_idx = GH__NOT_IN_HEAP; /* the heap goes below */
        t->state = GH__TASK_DONE;
        atomic_store_explicit(&t->finished, true, memory_order_release);
        free(t->scopes);
        t->scopes = NULL;
        task_fire_hooks(t);
        if (t->has_handle)
            task_hold(s, t);
        else
            gh__task_destroy(t);
    }
    free(s->root.name);
    s->root.name = NULL;
    free(s->root.scopes);
    s->root.scopes = NULL;
    /* From now on each belongs to its handle alone (gh_task_hub says NULL). */
    for (gh_task *t = s->held; t && orphan; t = t->all_next)
        atomic_store_explicit(&t->sched, NULL, memory_order_relaxed);
    s->held = NULL;
    while (s->free_tasks) {
        gh_task *t = s->free_tasks;
        s->free_tasks = t->rq_next;
        free(t);
    }
    s->free_tasks_len = 0;
    if (s->main.stack) {
#if GH_TSAN
        __tsan_destroy_fiber(s->main.tsan_fiber);
#endif
        gh__stack_put(&s->stacks, s->main.stack);
        s->main.stack = NULL;
    }
    gh__stack_cache_term(&s->stacks);
    gh__timer_heap_term(&s->timers);
}
