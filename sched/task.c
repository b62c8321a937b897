/*
 * task.c — green tasks: spawn, run, park, wake, join, kill, release.
 *
 * Every switch goes through MAINLOOP (hub->main): a task that blocks switches
 * to it, and MAINLOOP switches to the next ready task. The root task is the
 * thread's own stack and is scheduled like any other task. A task's stack is
 * taken when it first runs and goes back to the hub's cache when it returns,
 * reclaimed by MAINLOOP, since no code may free the stack it runs on. The
 * one shortcut: a task that returns hands its stack to the next task of the
 * batch if that one has never run, and runs it in place (task_chain_next).
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "hub/hub.h"
#include "sched/sanitizer.h"

#define TASK_FREE_MAX 4096

static void task_entry(void *arg);

void gh__runq_push(gh_hub *h, gh_task *t)
{
    t->rq_next = NULL;
    t->in_runq = true;
    if (h->rq_tail)
        h->rq_tail->rq_next = t;
    else
        h->rq_head = t;
    h->rq_tail = t;
    h->rq_len++;
}

static gh_task *runq_pop(gh_hub *h)
{
    gh_task *t = h->rq_head;
    if (!t)
        return NULL;
    h->rq_head = t->rq_next;
    if (!h->rq_head)
        h->rq_tail = NULL;
    h->rq_len--;
    t->in_runq = false;
    t->rq_next = NULL;
    return t;
}

void gh__switch(gh_hub *h, gh_task *to)
{
    gh_task *from = h->current;

    /* An unguarded stack's overflow is caught here, at the first switch after it. */
    if (from->stack && !gh__stack_canary_ok(from->stack))
        gh__stack_overflow(from->id, from->stack);
    h->current = to;
    GH__STAT_ADD(h, switches, 1);
    gh__stack_set_running(to->id, to->stack);
#if GH_ASAN
    __sanitizer_start_switch_fiber(from->state == GH__TASK_DONE ? NULL : &from->asan_fake,
                                   to->san_bottom, to->san_size);
#endif
#if GH_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    gh__ctx_switch(&from->ctx, &to->ctx);
#if GH_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
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
    gh__runq_push(t->hub, t);
}

static void task_link_all(gh_hub *h, gh_task *t)
{
    t->all_prev = NULL;
    t->all_next = h->all;
    if (h->all)
        h->all->all_prev = t;
    h->all = t;
}

static void task_unlink_all(gh_hub *h, gh_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        h->all = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    t->all_prev = t->all_next = NULL;
}

/*
 * Field by field, not memset: for a struct this size gcc emits rep stos,
 * whose start-up cost was a fifth of a handoff's time on the hub. The
 * assert below makes whoever adds a field come here.
 */
static void task_init_fields(gh_hub *h, gh_task *t)
{
    _Static_assert(sizeof(gh_task) == sizeof(gh__ctx) + 224,
                   "a field was added to gh_task: initialise it here");
    t->hub = h;
    t->rq_next = NULL;
    t->all_prev = t->all_next = NULL;
    t->id = 0;
    t->fn = NULL;
    t->arg = NULL;
    t->stack = NULL;
    t->state = 0;
    t->killed = t->has_handle = t->is_root = t->in_runq = t->xwait = false;
    t->wake_result = 0;
    t->park_seq = 0;
    t->xwakes_inflight = 0;
    t->timeout.when = 0;
    t->timeout.seq = 0;
    t->timeout.interval = 0;
    t->timeout.heap_idx = GH__NOT_IN_HEAP;
    t->timeout.flags = GH__TIMER_EMBEDDED;
    t->timeout.cb = task_timeout_fire;
    t->timeout.arg = t;
    t->timeout.hub = h;
    t->unlink = NULL;
    t->wait_obj = NULL;
    t->wq_prev = t->wq_next = NULL;
    t->joiners.head = t->joiners.tail = NULL;
    t->asan_fake = NULL;
    t->san_bottom = NULL;
    t->san_size = 0;
    t->tsan_fiber = NULL;
}

gh_task *gh__task_spawn(gh_hub *h, void (*fn)(void *), void *arg, bool handle, int64_t delay)
{
    gh_task *t = h->free_tasks;

    if (t) {
        h->free_tasks = t->rq_next;
        h->free_tasks_len--;
    } else {
        t = malloc(sizeof *t);
        if (!t) {
            errno = ENOMEM;
            return NULL;
        }
    }
    task_init_fields(h, t);
    t->id = ++h->next_task_id;
    t->fn = fn;
    t->arg = arg;
    t->has_handle = handle;
    t->state = GH__TASK_NEW;
    t->killed = atomic_load_explicit(&h->kill_all, memory_order_relaxed);
    if (delay > 0) {
        t->timeout.cb = task_start_fire;
        t->timeout.when = gh__deadline(delay);
        if (t->timeout.when < 0)
            t->timeout.when = INT64_MAX;
        if (gh__timer_add(&h->timers, &t->timeout) != 0) {
            gh__task_free(h, t);
            errno = ENOMEM;
            return NULL;
        }
    } else {
        gh__runq_push(h, t);
    }
    task_link_all(h, t);
    h->live_tasks++;
    GH__STAT_ADD(h, tasks_spawned, 1);
    GH__STAT_ADD(h, tasks_live, 1);
    return t;
}

void gh__task_free(gh_hub *h, gh_task *t)
{
    if (h->free_tasks_len < TASK_FREE_MAX) {
        t->rq_next = h->free_tasks;
        h->free_tasks = t;
        h->free_tasks_len++;
    } else {
        free(t);
    }
}

void gh__task_maybe_free(gh_hub *h, gh_task *t)
{
    if (t->state == GH__TASK_DONE && !t->has_handle && !t->xwakes_inflight && !t->stack)
        gh__task_free(h, t);
}

/* @t returned: wake its joiners and take it off the hub's live list. */
static void task_finish(gh_hub *h, gh_task *t)
{
    t->state = GH__TASK_DONE;
    while (t->joiners.head) {
        gh_task *j = t->joiners.head;
        gh__task_wake_detach(j, 0);
    }
    task_unlink_all(h, t);
    h->live_tasks--;
    GH__STAT_ADD(h, tasks_live, -1);
}

/*
 * The next task of this batch, if it has never run: it takes over the stack
 * of @done, which has returned, and runs right here, without the two
 * switches through MAINLOOP and the stack's trip to the cache and back.
 * A storm of handoffs runs as one loop on one stack.
 */
static gh_task *task_chain_next(gh_hub *h, gh_task *done)
{
    gh_task *next = h->rq_head;
    if (!h->rq_batch || !next || next->state != GH__TASK_NEW ||
        !gh__stack_canary_ok(done->stack))
        return NULL;
    h->rq_batch--;
    runq_pop(h);
    next->stack = done->stack;
    next->san_bottom = done->san_bottom;
    next->san_size = done->san_size;
    next->tsan_fiber = done->tsan_fiber;
    done->stack = NULL;
    done->tsan_fiber = NULL;
    gh__task_maybe_free(h, done);
    next->state = GH__TASK_RUNNING;
    h->current = next;
    gh__stack_set_running(next->id, next->stack);
    return next;
}

/* First code on a task's stack. */
static void task_entry(void *arg)
{
    gh_task *t = arg;
    gh_hub *h = t->hub;

#if GH_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    for (;;) {
        t->fn(t->arg);
        task_finish(h, t);
        gh_task *next = task_chain_next(h, t);
        if (!next)
            break;
        t = next;
    }

    /* Leave for good. MAINLOOP reclaims the stack. */
    h->finished = t;
    gh__switch(h, &h->main);
    GH_ASSERT(!"a finished task was resumed");
}

/* Give a task its stack at first run. */
static int task_prepare(gh_hub *h, gh_task *t)
{
    gh__stack *s = gh__stack_get(&h->stacks);
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

static void task_reclaim(gh_hub *h, gh_task *t)
{
    t->tsan_fiber = NULL; /* it belongs to the stack */
    gh__stack_put(&h->stacks, t->stack);
    t->stack = NULL;
    gh__task_maybe_free(h, t);
}

void gh__run_ready(gh_hub *h)
{
    /*
     * Only the tasks ready now: one that yields goes to the back for the
     * next batch. A returning task may start the next ones itself
     * (task_chain_next), so the count lives in the hub.
     */
    h->rq_batch = h->rq_len;
    while (h->rq_batch > 0) {
        h->rq_batch--;
        gh_task *t = runq_pop(h);
        if (!t)
            break;
        if (t->state == GH__TASK_NEW && task_prepare(h, t) != 0) {
            /* Out of memory for a stack: keep it queued, never drop it. */
            gh__runq_push(h, t);
            break;
        }
        t->state = GH__TASK_RUNNING;
        gh__switch(h, t);
        /* t may have returned, and so may tasks it started: the last one is here. */
        if (h->finished) {
            task_reclaim(h, h->finished);
            h->finished = NULL;
        }
    }
    h->rq_batch = 0;
}

int gh__can_block(gh_hub *h)
{
    gh_task *t = h->current;
    if (t == &h->main)
        return -EPERM;
    if (t->killed)
        return -ECANCELED;
    return 0;
}

int gh__caller_can_block(gh_hub **hp)
{
    gh_hub *h = gh__tls_hub;
    *hp = h;
    return h ? gh__can_block(h) : 0;
}

int gh__task_park(gh_hub *h, int64_t deadline, void (*unlink)(gh_task *), void *obj)
{
    gh_task *t = h->current;

    t->unlink = unlink;
    t->wait_obj = obj;
    t->park_seq++;
    if (deadline >= 0) {
        t->timeout.cb = task_timeout_fire;
        t->timeout.when = deadline;
        if (gh__timer_add(&h->timers, &t->timeout) != 0) {
            if (unlink)
                unlink(t);
            t->unlink = NULL;
            return -ENOMEM;
        }
    }
    t->state = GH__TASK_BLOCKED;
    gh__switch(h, &h->main);
    t->unlink = NULL;
    t->wait_obj = NULL;
    return t->wake_result;
}

void gh__task_wake(gh_task *t, int result)
{
    gh_hub *h = t->hub;

    GH_ASSERT(t->state == GH__TASK_BLOCKED);
    if (t->timeout.heap_idx != GH__NOT_IN_HEAP)
        gh__timer_remove(&h->timers, &t->timeout);
    t->wake_result = result;
    t->state = GH__TASK_READY;
    gh__runq_push(h, t);
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
 * Kill one task of @h. A delayed task (gh_spawn_after) that has not started
 * starts now, already cancelled, rather than keep its hub busy until its start
 * time.
 */
static void task_kill(gh_hub *h, gh_task *t)
{
    t->killed = true;
    if (t->state == GH__TASK_BLOCKED)
        gh__task_wake_detach(t, -ECANCELED);
    else if (t->state == GH__TASK_NEW && !t->in_runq &&
             t->timeout.heap_idx != GH__NOT_IN_HEAP) {
        gh__timer_remove(&h->timers, &t->timeout);
        gh__runq_push(h, t);
    }
}

void gh__task_kill_all(gh_hub *h)
{
    for (gh_task *t = h->all; t; t = t->all_next)
        task_kill(h, t);
}

/* ------------------------------------------------------------ public API */

gh_task *gh_spawn(void (*fn)(void *), void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    return gh__task_spawn(h, fn, arg, true, 0);
}

int gh_spawn_n(void (*fn)(void *), void *arg)
{
    if (!fn)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    return gh__task_spawn(h, fn, arg, false, 0) ? 0 : -ENOMEM;
}

gh_task *gh_spawn_after(int64_t delay_ns, void (*fn)(void *), void *arg)
{
    if (!fn || delay_ns < 0) {
        errno = EINVAL;
        return NULL;
    }
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    return gh__task_spawn(h, fn, arg, true, delay_ns);
}

static void join_unlink(gh_task *self)
{
    gh_task *target = self->wait_obj;
    gh__waitq_remove(&target->joiners, self);
}

int gh_join(gh_task *t, int64_t timeout_ns)
{
    gh_hub *h = gh__tls_hub;

    if (!t || !h || t->hub != h || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (t == h->current)
        return -EDEADLK;
    if (t->state == GH__TASK_DONE)
        return 0;
    int err = gh__can_block(h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    gh__waitq_push(&t->joiners, h->current);
    return gh__task_park(h, gh__deadline(timeout_ns), join_unlink, t);
}

int gh_kill(gh_task *t)
{
    gh_hub *h = gh__tls_hub;

    if (!t || !h || t->hub != h)
        return -EINVAL;
    if (t->state != GH__TASK_DONE)
        task_kill(h, t);
    return 0;
}

void gh_task_release(gh_task *t)
{
    gh_hub *h = gh__tls_hub;

    /* A handle of another thread's hub is not ours to touch. */
    if (!t || !h || t->hub != h || !t->has_handle)
        return;
    t->has_handle = false;
    gh__task_maybe_free(h, t);
}

uint64_t gh_task_id(const gh_task *t)
{
    return t ? t->id : 0;
}

gh_task *gh_current(void)
{
    gh_hub *h = gh__tls_hub;
    if (!h || h->current == &h->main)
        return NULL;
    return h->current;
}

int gh_sleep(int64_t ns)
{
    if (ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    int err = gh__can_block(h);
    if (err)
        return err;
    gh_task *t = h->current;
    if (ns == 0) {
        /* Behind every task ready now; the next MAINLOOP batch resumes us. */
        t->state = GH__TASK_READY;
        gh__runq_push(h, t);
        t->wake_result = 0;
        gh__switch(h, &h->main);
        return t->killed ? -ECANCELED : 0;
    }
    err = gh__task_park(h, gh__deadline(ns), NULL, NULL);
    return err == -ETIMEDOUT ? 0 : err;
}

int gh_yield(void)
{
    return gh_sleep(0);
}

/* --------------------------------------------------------- hub plumbing */

static void mainloop_entry(void *arg);
void gh__mainloop(gh_hub *h);

static void mainloop_entry(void *arg)
{
#if GH_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    gh__mainloop(arg);
    GH_ASSERT(!"MAINLOOP returned");
}

void gh__sched_init(gh_hub *h)
{
    task_init_fields(h, &h->root);
    task_init_fields(h, &h->main);
    h->root.is_root = true;
    h->root.state = GH__TASK_RUNNING;
    h->root.id = 0;
    h->main.id = UINT64_MAX;
    h->main.state = GH__TASK_RUNNING;
    h->current = &h->root;
#if GH_ASAN
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            h->root.san_bottom = addr;
            h->root.san_size = size;
        }
        pthread_attr_destroy(&attr);
    }
#endif
#if GH_TSAN
    h->root.tsan_fiber = __tsan_get_current_fiber();
#endif
}

int gh__sched_start_main(gh_hub *h)
{
    gh__stack *s = gh__stack_get(&h->stacks);
    if (!s)
        return -ENOMEM;
    h->main.san_bottom = s->lo;
    h->main.san_size = s->size;
    h->main.stack = s; /* so an overflow of MAINLOOP's stack is reported like a task's */
#if GH_TSAN
    h->main.tsan_fiber = __tsan_create_fiber(0);
#endif
    gh__ctx_make(&h->main.ctx, (char *)s->lo + 64, s->size - 64, mainloop_entry, h);
    return 0;
}

void gh__sched_term(gh_hub *h)
{
    /* Empty the run queue first: it links tasks that the loop below frees. */
    while (h->rq_head)
        runq_pop(h);
    /* Tasks that never finished: drop them and their stacks (thread exit, hub close). */
    while (h->all) {
        gh_task *t = h->all;
        task_unlink_all(h, t);
        if (t->stack) {
            gh__stack_put(&h->stacks, t->stack);
        }
        free(t);
    }
    while (h->free_tasks) {
        gh_task *t = h->free_tasks;
        h->free_tasks = t->rq_next;
        free(t);
    }
    h->free_tasks_len = 0;
    if (h->main.stack) {
#if GH_TSAN
        __tsan_destroy_fiber(h->main.tsan_fiber);
#endif
        gh__stack_put(&h->stacks, h->main.stack);
        h->main.stack = NULL;
    }
    gh__stack_cache_term(&h->stacks);
}
