/*
 * hub.c — the thread-local hub and its MAINLOOP.
 *
 * One MAINLOOP iteration (DESIGN.md, "The flow of control"):
 *   1. drain the inbox (handoffs from other threads) into the run queue;
 *   2. fire due timers;
 *   3. run a bounded batch of ready tasks, FIFO;
 *   4. poll the backend: 0 when tasks are ready, else until the next timer,
 *      else forever (the wakeup fd ends that wait);
 *   5. ready the tasks whose fds fired (from the backend's callback).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hub/hub.h"
#include "sched/log.h"

static void hub_mainloop(void *arg);
static bool hub_loop_due(gh__sched *s);

void gh__hub_thread_exit(gh_hub *h)
{
    /* A runtime's hub outlives its thread as a tombstone; the runtime frees it. */
    if (!h->runtime) {
        gh__timers_drop(h, false);
        gh__timers_free_kept(h); /* handles only this thread could have used */
        gh__hub_free(h);
    }
}

/* --------------------------------------------------------------- backend */

const gh_backend_ops *gh__backend_default(void)
{
    const char *env = getenv("GREENHUB_HUB");
    if (env && *env) {
        const gh_backend_ops *ops = gh_backend_find(env);
        if (ops)
            return ops;
        static atomic_bool warned;
        if (!atomic_exchange(&warned, true))
            gh__log(GH_LOG_WARN, "GREENHUB_HUB=%s is not a backend; using the default", env);
    }
    return gh_backend_list()[0];
}

static int hub_backend_open(const gh_backend_ops *ops, void **state)
{
    /* Version 2 tables lack submit and cancel, and with them the completion path. */
    if (!ops || (ops->abi != GH_BACKEND_ABI && ops->abi != 2) || !ops->name || !ops->init ||
        !ops->destroy || !ops->watch || !ops->poll)
        return -EINVAL;
    int err = ops->init(state);
    /* io_uring under a sysctl or seccomp: say so plainly; the caller keeps its backend. */
    if (err == -ENOSYS || err == -EPERM)
        gh__log(GH_LOG_WARN, "the kernel refuses the %s backend: %s", ops->name, gh_strerror(err));
    return err;
}

/* Whether a read after a short read waits first on @ops (see io/io.c): unless it says not to. */
static bool hub_read_prewait(const gh_backend_ops *ops)
{
    return !(ops->caps & GH_BACKEND_READ_FIRST);
}

int gh__hub_swap_backend(gh_hub *h, const gh_backend_ops *ops)
{
    void *state = NULL;
    int err = hub_backend_open(ops, &state);
    if (err)
        return err;
    /* The old backend's ops in flight end first; their tasks make them again on the new one. */
    if (h->ops_inflight && (err = gh__ops_drain(h)) != 0) {
        ops->destroy(state);
        return err;
    }
    /* Carry every waited-on fd over; on failure undo, and the hub keeps its backend. */
    int fd;
    for (fd = 0; fd < h->nfds; fd++) {
        int carry = gh__fd_carry(h, fd);
        if (!carry)
            continue;
        err = ops->watch(state, fd, 0, carry);
        if (err == -EBADF && fd != h->inbox.wake_rfd && fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            /* Closed behind the hub's back: its waiters get what gh_close gives them. */
            gh__fdslot *s = &h->fds[fd];
            if (s->reader)
                gh__task_wake_detach(s->reader, -EBADF);
            if (s->writer)
                gh__task_wake_detach(s->writer, -EBADF);
            err = 0;
            continue;
        }
        if (err)
            break;
    }
    if (err) {
        for (int undo = 0; undo < fd; undo++) {
            int carry = gh__fd_carry(h, undo);
            if (carry)
                ops->watch(state, undo, carry, 0);
        }
        ops->destroy(state);
        return err;
    }
    for (fd = 0; fd < h->nfds; fd++) {
        gh__fdslot *s = &h->fds[fd];
        if (!s->interest)
            continue;
        h->ops->watch(h->bstate, fd, s->interest, 0);
        s->interest = (uint8_t)gh__fd_carry(h, fd);
    }
    h->ops->destroy(h->bstate);
    h->ops = ops;
    h->read_prewait = hub_read_prewait(ops);
    h->bstate = state;
    h->complete = gh__op_backend_ok(h) && !h->embed;
    atomic_store_explicit(&h->backend_name, ops->name, memory_order_relaxed);
    return 0;
}

/* ---------------------------------------------------------- life cycle */

/* Mark the wakeup fds as the hub's own (gh_close refuses them), or give them back. */
static int hub_wake_fds_internal(gh_hub *h, bool internal)
{
    int fds[2] = {h->inbox.wake_rfd, h->inbox.wake_wfd};
    for (int i = 0; i < 2; i++) {
        gh__fdent *e = internal ? gh__fdent_make(fds[i]) : gh__fdent_find(fds[i]);
        if (!e) {
            if (internal)
                return -ENOMEM;
            continue;
        }
        atomic_store(&e->internal, internal);
    }
    return 0;
}

/*
 * Take @h out of the process: no close or other control message can reach
 * it any more; the ones already posted run now, and its fds leave the
 * process-wide table.
 */
static void hub_leave_process(gh_hub *h)
{
    gh__hub_unregister(h);
    gh__inbox_close(&h->inbox);
    atomic_store(&h->gone, true);
    /*
     * A producer that saw the inbox open (or the hub registered) may still
     * be pushing: let it finish (a few instructions, unless the scheduler
     * took its CPU). Posting after the free is the caller's use of a dead
     * pointer (see gh_spawn_on).
     */
    while (!gh__inbox_no_producers(&h->inbox))
        sched_yield();
    gh__inbox_flush(h);
    uint64_t bit = gh__hub_bit(h);
    for (int fd = 0; fd < h->nfds; fd++) {
        if (!h->fds[fd].interest)
            continue;
        h->ops->watch(h->bstate, fd, h->fds[fd].interest, 0);
        h->fds[fd].interest = 0;
        gh__fdent *e = gh__fdent_find(fd);
        if (e && bit != (uint64_t)1 << 63) /* bit 63 is shared with other hubs */
            atomic_fetch_and(&e->hubs, ~bit);
    }
}

gh_hub *gh__hub_new(const gh_backend_ops *ops, size_t stack_size, int *errp)
{
    int err;
    gh_hub *h = calloc(1, sizeof *h);
    if (!h) {
        *errp = -ENOMEM;
        return NULL;
    }
    static pthread_once_t env_once = PTHREAD_ONCE_INIT;
    pthread_once(&env_once, gh__watchdog_env);
    gh__sched_init(&h->sched, stack_size);
    h->sched.depart = gh__task_depart_to;
    h->sched.depart_arg = h;
    h->sched.move_now = gh__task_move_now;
    h->sched.loop_due = hub_loop_due;
    h->born = gh_now();
    h->sched.now = h->born;
    err = gh__hub_register(h);
    if (err)
        goto fail_register;
    err = gh__inbox_init(&h->inbox);
    if (err)
        goto fail_inbox;
    err = hub_wake_fds_internal(h, true);
    if (err)
        goto fail_backend;
    err = hub_backend_open(ops, &h->bstate);
    if (err)
        goto fail_backend;
    h->ops = ops;
    h->read_prewait = hub_read_prewait(ops);
    h->complete = gh__op_backend_ok(h);
    atomic_store_explicit(&h->backend_name, ops->name, memory_order_relaxed);
    err = gh__fd_slot_reserve(h, h->inbox.wake_rfd);
    if (err)
        goto fail_watch;
    err = gh__fd_interest(h, h->inbox.wake_rfd, GH_READ);
    if (err)
        goto fail_watch;
    err = gh__sched_start_main(&h->sched, hub_mainloop, h);
    if (err)
        goto fail_main;
    err = gh__stack_thread_init();
    if (err)
        goto fail_main;
    return h;

fail_main:
    gh__fd_interest(h, h->inbox.wake_rfd, 0);
fail_watch:
    free(h->fds);
    ops->destroy(h->bstate);
fail_backend:
    hub_wake_fds_internal(h, false);
    gh__inbox_term(&h->inbox);
fail_inbox:
    gh__hub_unregister(h);
fail_register:
    gh__sched_term(&h->sched, true);
    free(h);
    *errp = err;
    return NULL;
}

/* Release everything the hub owns but its struct (and, for a tombstone, its wakeup fd). */
static void hub_release(gh_hub *h, bool tombstone)
{
    hub_leave_process(h);
    gh__embed_term(h);
    gh__watch_term(h);
    gh__timers_drop(h, false);
    h->ops->destroy(h->bstate);
    h->bstate = NULL;
    gh__sched_term(&h->sched, !tombstone); /* a tombstone keeps its tasks' handles pointing at it */
    if (!tombstone) {
        hub_wake_fds_internal(h, false);
        gh__inbox_term(&h->inbox);
    }
    gh__timers_term(h);
    free(h->fds);
    h->fds = NULL;
    h->nfds = 0;
    if (gh__tls_hub == h) {
        gh__tls_hub = NULL;
        gh__stack_thread_term();
        gh__stack_set_running(0, NULL);
    }
}

void gh__hub_free(gh_hub *h)
{
    hub_release(h, false);
    free(h);
}

void gh__hub_retire(gh_hub *h)
{
    /* Its thread is gone: nobody can cancel or release a handle of its timers. */
    gh__timers_drop(h, false);
    gh__timers_free_kept(h);
    /* A stopper may still write the wakeup fd; it is closed by gh__hub_bury. */
    hub_release(h, true);
    h->retired = true;
    atomic_store_explicit(&h->stats.ended, gh_now(), memory_order_relaxed);
}

void gh__hub_bury(gh_hub *h)
{
    if (h->retired) {
        hub_wake_fds_internal(h, false);
        gh__inbox_term(&h->inbox);
    }
    free(h);
}

/* Make @h this thread's hub. */
void gh__hub_adopt(gh_hub *h)
{
    gh__thread_arm();
    gh__tls_hub = h;
    h->thread = pthread_self();
    atomic_store_explicit(&h->has_thread, true, memory_order_release);
}

gh_hub *gh__hub(void)
{
    gh_hub *h = gh__tls_hub;
    if (__builtin_expect(h != NULL, 1))
        return h;
    /* The chosen backend first; if the kernel refuses it, the default order. */
    const gh_backend_ops *first = gh__backend_default();
    int err = 0;
    h = gh__hub_new(first, 0, &err);
    static const char *const fallback[] = {"epoll", "poll", "select"};
    for (size_t i = 0; !h && i < sizeof fallback / sizeof fallback[0]; i++) {
        const gh_backend_ops *o = gh_backend_find(fallback[i]);
        if (!o || o == first)
            continue;
        gh__log(GH_LOG_WARN, "backend %s failed (%s); trying %s", first->name, gh_strerror(err),
                o->name);
        h = gh__hub_new(o, 0, &err);
    }
    if (!h) {
        errno = -err;
        return NULL;
    }
    gh__hub_adopt(h);
    return h;
}

bool gh__hub_idle(const gh_hub *h)
{
    gh__inbox *in = (gh__inbox *)&h->inbox;
    return h->sched.live_tasks == 0 && h->cb_timers == 0 && h->fd_waiters == 0 &&
           h->xwaiters == 0 && h->watchers == 0 && atomic_load(&in->head) == in->tail &&
           gh__inbox_no_producers(in);
}

/* ------------------------------------------------------------- MAINLOOP */

/* The root blocks and nothing can ever wake it: no task ready, timer, fd or other thread. */
static bool hub_deadlocked(const gh_hub *h)
{
    return h->sched.root.state == GH__TASK_BLOCKED && !h->in_run && !h->once_active &&
           !h->runtime && !h->sched.rq_head && h->sched.timers.len == 0 && h->fd_waiters == 0 &&
           h->xwaiters == 0 && h->watchers == 0;
}

/* gh_hub_run_once (embed.c): wake the root once something ran, or at its deadline. */
static bool hub_once_done(gh_hub *h)
{
    if (h->sched.ran + h->ran != h->once_base)
        return true;
    /* Nothing ran: the deadline ends it, once the backend was asked at least once. */
    return h->once_polled && h->once_deadline >= 0 && gh_now() >= h->once_deadline;
}

static int64_t hub_poll_timeout(gh_hub *h)
{
    if (h->once_active && h->sched.root.state == GH__TASK_BLOCKED) {
        if (atomic_load_explicit(&h->break_requested, memory_order_relaxed) &&
            atomic_exchange(&h->break_requested, false)) {
            gh__task_wake_detach(&h->sched.root, -EINTR);
            return 0;
        }
        if (hub_once_done(h)) {
            gh__task_wake_detach(&h->sched.root, 0);
            return 0;
        }
    }
    if (h->in_run && h->sched.root.state == GH__TASK_BLOCKED &&
        atomic_load_explicit(&h->break_requested, memory_order_relaxed) &&
        atomic_exchange(&h->break_requested, false)) {
        gh__task_wake_detach(&h->sched.root, -EINTR); /* gh_hub_break */
        return 0;
    }
    if (h->sched.rq_head)
        return 0;
    if (h->sched.root.state == GH__TASK_BLOCKED &&
        (h->runtime ? gh__runtime_hub_drained(h) : (h->in_run && gh__hub_idle(h)))) {
        gh__task_wake_detach(&h->sched.root, 0);
        return 0;
    }
    if (hub_deadlocked(h)) {
        gh__task_wake_detach(&h->sched.root, -EDEADLK);
        return 0;
    }
    /* Stopping, not drained yet: a producer may still be mid-post; look again soon. */
    int64_t cap =
        h->runtime && atomic_load_explicit(&h->stop_requested, memory_order_relaxed) ? GH_MSEC : -1;
    if (h->once_active && h->once_deadline >= 0) {
        /* Poll (at least once: hub_once_done), but not beyond it. */
        int64_t left = h->once_deadline - gh_now();
        if (left < 0)
            left = 0;
        if (cap < 0 || left < cap)
            cap = left;
    }
    gh_timer *t = gh__timer_peek(&h->sched.timers);
    if (!t)
        return cap;
    int64_t d = t->when - gh_now();
    if (d < 0)
        d = 0;
    return cap >= 0 && cap < d ? cap : d;
}

/*
 * While tasks stay ready (they yield, or keep readying each other), the
 * zero-timeout poll of step 4 is made at most once per this interval: it is
 * a syscall (~1 us here), and paying it every iteration made a task-to-task
 * gh_yield cost ~700 ns instead of ~30. An fd that fires meanwhile is seen
 * at most this much later; a hub that would sleep always polls.
 */
#define HUB_BUSY_POLL_NS (20 * GH_USEC)

/*
 * The longest sleep while a producer is between its two stores (inbox.c):
 * its wake-up check may have come before our SLEEPING, so it may not write.
 */
#define HUB_PUSHING_NS (50 * GH_USEC)

/*
 * Whether a busy hub has anything to poll for: a task waiting on an fd or a
 * watcher. Handoffs need no poll (the inbox is read every iteration, and
 * producers write the wakeup fd only to a hub that says it sleeps), so a
 * hub of tasks that only compute and yield makes no syscall at all.
 */
static bool hub_polls_fds(const gh_hub *h)
{
    /* ops_inflight: an op being cancelled has given its fd slot back, and still needs the poll. */
    return h->fd_waiters != 0 || h->watchers != 0 || h->ops_inflight != 0;
}

/*
 * Asked every few task-to-task switches made without MAINLOOP (sched/task.c
 * task_switch_next): whether it must iterate now, for a handoff in the
 * inbox or a due timer. Not for a poll: the batch's budget bounds how long
 * fds wait, as one batch did before. A poll in the middle of a batch finds
 * the fds of tasks that are still running (read, then reply) ready with
 * nobody waiting on them, drops their interest and makes each wait again
 * re-register it: on an echo server, four syscalls a round trip instead of
 * two (//bench:echo_peers, perf stat -e raw_syscalls:sys_enter).
 */
static bool hub_loop_due(gh__sched *s)
{
    gh_hub *h = (gh_hub *)s;
    if (atomic_load_explicit(&h->inbox.head, memory_order_relaxed) != h->inbox.tail)
        return true;
    gh_timer *t = gh__timer_peek(&s->timers);
    return t && t->when <= gh_now(); /* no clock read without a timer */
}

static void hub_mainloop(void *arg)
{
    gh_hub *h = arg;

    for (;;) {
        GH__STAT_ADD(&h->stats, loop_iterations, 1);
        bool more = gh__inbox_run(h);
        if (h->runtime)
            gh__runtime_hub_tick(h);
        int64_t now = gh_now();
        h->sched.now = now;
        gh__timers_fire(h, now);
        gh__run_ready(&h->sched);

        /*
         * The wakeup fd is read here, after the handed-off tasks ran, not as
         * soon as it fires: that read is a syscall, and it was on the path
         * of every cross-thread wake-up. It must be read before the hub
         * announces its next sleep (a producer writes only after seeing
         * SLEEPING, so no write meant for that sleep is lost), and the stop
         * check runs again, since the write just read may be a stop's kick.
         */
        if (h->wake_pending) {
            h->wake_pending = false;
            gh__inbox_drain_fd(&h->inbox);
            if (h->runtime)
                gh__runtime_hub_tick(h);
        }

        if (h->ticks)
            gh__ticks_run(h); /* they may ready tasks: before the timeout is chosen */

        /* Handoffs left behind by the batch bound: poll, but do not sleep on them. */
        int64_t timeout = more ? 0 : hub_poll_timeout(h);
        if (timeout != 0) {
            /* Announce the sleep, then look once more (see inbox.c). */
            atomic_store(&h->inbox.sleep_state, GH__INBOX_SLEEPING);
            if (gh__inbox_run(h) || h->sched.rq_head)
                timeout = 0;
            else if (gh__inbox_pushing(&h->inbox) && (timeout < 0 || timeout > HUB_PUSHING_NS))
                timeout = HUB_PUSHING_NS;
        } else if (h->sched.rq_head &&
                   (now - h->last_poll < HUB_BUSY_POLL_NS || !hub_polls_fds(h))) {
            atomic_store_explicit(&h->stats.tasks_ready, h->sched.rq_len, memory_order_relaxed);
            continue;
        }
        h->last_poll = now;
        atomic_store_explicit(&h->stats.tasks_ready, h->sched.rq_len, memory_order_relaxed);
        int64_t sleep_from = 0; /* only a wait is idle time */
        if (timeout != 0) {
            sleep_from = gh_now();
            atomic_store_explicit(&h->stats.asleep_since, sleep_from, memory_order_relaxed);
        }
        int n = h->ops->poll(h->bstate, timeout, gh__fd_ready, h);
        h->once_polled = true;
        if (h->fired_head)
            gh__watch_dispatch(h);
        if (sleep_from) {
            GH__STAT_ADD(&h->stats, idle_ns, gh_now() - sleep_from);
            atomic_store_explicit(&h->stats.asleep_since, 0, memory_order_relaxed);
        }
        /* Only write when it changed: producers read this line on every handoff. */
        if (atomic_load_explicit(&h->inbox.sleep_state, memory_order_relaxed) != GH__INBOX_AWAKE)
            atomic_store_explicit(&h->inbox.sleep_state, GH__INBOX_AWAKE, memory_order_relaxed);
        if (n < 0 && n != -EINTR) {
            if (!h->poll_failed++)
                gh__log(GH_LOG_ERROR, "%s backend poll failed: %s", h->ops->name, gh_strerror(n));
            /* Do not spin on a broken backend. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* ------------------------------------------------------------ public API */

gh_hub *gh_get_hub(void)
{
    return gh__hub();
}

int gh_use_hub(const char *backend)
{
    const gh_backend_ops *ops = backend ? gh_backend_find(backend) : gh__backend_default();
    if (!ops)
        return -ENOENT;
    return gh_use_hub_backend(ops);
}

int gh_use_hub_backend(const gh_backend_ops *ops)
{
    if (!ops)
        return -EINVAL;
    gh_hub *h = gh__tls_hub;
    if (!h) {
        int err = 0;
        h = gh__hub_new(ops, 0, &err);
        if (!h)
            return err;
        gh__hub_adopt(h);
        return 0;
    }
    if (h->sched.current == &h->sched.main)
        return -EPERM;
    if (h->ops == ops)
        return 0;
    return gh__hub_swap_backend(h, ops);
}

const char *gh_hub_backend(const gh_hub *hub)
{
    if (!hub)
        return NULL;
    return atomic_load_explicit(&((gh_hub *)hub)->backend_name, memory_order_relaxed);
}

int gh_hub_run(void)
{
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (h->sched.current != &h->sched.root)
        return -EPERM;
    if (h->sched.root.killed)
        return -ECANCELED;
    if (atomic_exchange(&h->break_requested, false))
        return -EINTR; /* a gh_hub_break came before this run */
    if (gh__hub_idle(h))
        return 0;
    h->in_run = true;
    int err = gh__task_park(&h->sched, -1, NULL, NULL, "gh_hub_run");
    h->in_run = false;
    return err;
}

int gh_hub_break(gh_hub *hub)
{
    if (!hub)
        return -EINVAL;
    atomic_store(&hub->break_requested, true);
    if (hub != gh__tls_hub)
        gh__inbox_kick(hub, &hub->inbox); /* it may be asleep in its poll */
    return 0;
}

int gh_hub_close(void)
{
    gh_hub *h = gh__tls_hub;
    if (!h)
        return 0;
    if (h->sched.current != &h->sched.root)
        return -EPERM;
    if (h->runtime)
        return -EBUSY;
    if (!gh__hub_idle(h) || h->sched.rq_head)
        return -EBUSY;
    gh__hub_free(h);
    return 0;
}

int gh_hub_get_stats(const gh_hub *hub, gh_hub_stats *out)
{
    if (!hub || !out)
        return -EINVAL;
    gh__hub_stats_atomic *s = (gh__hub_stats_atomic *)&hub->stats;
    out->backend = gh_hub_backend(hub);
    gh__sched_stats *ss = (gh__sched_stats *)&hub->sched.stats;
    out->tasks_spawned = atomic_load_explicit(&ss->tasks_spawned, memory_order_relaxed);
    out->tasks_live = atomic_load_explicit(&ss->tasks_live, memory_order_relaxed);
    out->switches = atomic_load_explicit(&ss->switches, memory_order_relaxed);
    out->loop_iterations = atomic_load_explicit(&s->loop_iterations, memory_order_relaxed);
    out->handoffs_in = atomic_load_explicit(&s->handoffs_in, memory_order_relaxed);
    out->wakeups_written = atomic_load_explicit(&s->wakeups_written, memory_order_relaxed);
    out->timers_pending = atomic_load_explicit(&s->timers_pending, memory_order_relaxed);
    out->fd_waiters = atomic_load_explicit(&s->fd_waiters, memory_order_relaxed);
    out->idle_ns = atomic_load_explicit(&s->idle_ns, memory_order_relaxed);
    int64_t now = gh_now();
    int64_t since = atomic_load_explicit(&s->asleep_since, memory_order_relaxed);
    if (since > 0 && now > since)
        out->idle_ns += (uint64_t)(now - since); /* asleep right now */
    int64_t ended = atomic_load_explicit(&s->ended, memory_order_relaxed);
    if (ended > 0)
        now = ended; /* a tombstone: its life is over */
    int64_t life = now - hub->born;
    out->busy_ns = life > (int64_t)out->idle_ns ? (uint64_t)life - out->idle_ns : 0;
    out->tasks_ready = atomic_load_explicit(&s->tasks_ready, memory_order_relaxed);
    out->inbox_depth = atomic_load_explicit(&s->inbox_depth, memory_order_relaxed);
    out->tasks_blocked =
        out->tasks_live > out->tasks_ready ? out->tasks_live - out->tasks_ready : 0;
    out->timer_lag_ns = (uint64_t)atomic_load_explicit(&s->lag_ns, memory_order_relaxed);
    out->timer_lag_max_ns = (uint64_t)atomic_load_explicit(&s->lag_max_ns, memory_order_relaxed);
    return 0;
}
