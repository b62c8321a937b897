/*
 * runtime.c — N OS threads, one hub each, and the lossless stop.
 *
 * Stop: every hub's inbox closes (new handoffs get -ESHUTDOWN), each hub
 * keeps looping until no producer is between its check and its push, its queue is empty and
 * it holds no task, callback timer or waiter; repeating timers are cancelled
 * at once. Past the drain timeout the stopper sets kill_all: every task, and
 * every handoff still to start, runs already cancelled. A stopped hub frees
 * everything but its struct, which stays a refusing tombstone until destroy.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hub/hub.h"
#include "sched/log.h"

struct gh_runtime {
    int n;
    gh_hub **hubs;
    pthread_t *threads;
    const gh_backend_ops **ops;
    size_t stack_size;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started;  /* threads that made their hub (or failed) */
    int drained;  /* threads whose hub drained: no task left (the stop's timeout is for this) */
    int finished; /* ... and whose hub was then retired (freeing its stacks, backend, ...) */
    int start_err;
    bool stopped;   /* gh_runtime_stop called */
    bool stop_over; /* ... and every thread joined: stop_result is final */
    int stop_result;
    bool *emptied; /* per hub: drained */
    bool *done;    /* per hub: drained and retired */
    bool *joined;  /* per thread: pthread_join done */
    bool stuck;    /* a stop gave up on a hub whose task never blocks */
};

/*
 * How long a stop waits, after its drain timeout killed every task, for the
 * killed tasks to notice. A task that never blocks never sees its kill: past
 * this the stop returns, names it, and leaves its thread running.
 */
#define RT_KILL_GRACE (1 * GH_SEC)

typedef struct rt_start {
    gh_runtime *rt;
    int index;
} rt_start;

/* How long a killed hub may stay undrained before it says why (its thread, once). */
#define RT_STUCK_REPORT (300 * GH_MSEC)

void gh__runtime_hub_tick(gh_hub *h)
{
    if (!atomic_load_explicit(&h->stop_requested, memory_order_acquire))
        return;
    if (!h->killed_all && atomic_load(&h->sched.kill_all)) {
        h->killed_all = true;
        gh__task_kill_all(&h->sched);
    }
    /* Repeating timers go at once; past the drain timeout one-shots too, or a far one
     * would keep the hub (and gh_runtime_stop) waiting after every task was killed. */
    if (h->cb_timers)
        gh__timers_drop(h, !h->killed_all);
    if (h->killed_all && !h->stuck_reported && !gh__runtime_hub_drained(h)) {
        /* Past the drain timeout and the kill: say once what the hub still waits for. */
        gh__inbox *in = &h->inbox;
        if (h->stuck_since == 0) {
            h->stuck_since = gh_now();
        } else if (gh_now() - h->stuck_since > RT_STUCK_REPORT) {
            h->stuck_reported = true;
            gh__log(GH_LOG_WARN,
                    "runtime stop: hub %u not drained: %u tasks live, %u callback timers, "
                    "%u fd waiters, %u cross-thread waiters, %u watchers, inbox %s, %s, "
                    "producers %s, run queue %s",
                    h->id, h->sched.live_tasks, h->cb_timers, h->fd_waiters,
                    atomic_load(&h->xwaiters), h->watchers,
                    atomic_load(&in->head) == in->tail ? "empty" : "not empty",
                    gh__inbox_closed(in) ? "closed" : "open",
                    gh__inbox_no_producers(in) ? "none" : "mid-post",
                    h->sched.rq_head ? "not empty" : "empty");
        }
    }
}

bool gh__runtime_hub_drained(gh_hub *h)
{
    return atomic_load_explicit(&h->stop_requested, memory_order_acquire) &&
           gh__inbox_quiet(&h->inbox) && gh__hub_idle(h) && !h->sched.rq_head;
}

static void *rt_thread(void *arg)
{
    rt_start *st = arg;
    gh_runtime *rt = st->rt;
    int i = st->index;
    free(st);

    char name[16];
    snprintf(name, sizeof name, "greenhub-%d", i);
    pthread_setname_np(pthread_self(), name);

    int err = 0;
    gh_hub *h = gh__hub_new(rt->ops[i], rt->stack_size, &err);
    if (h) {
        h->runtime = rt;
        h->runtime_index = i;
        gh__hub_adopt(h);
    }
    pthread_mutex_lock(&rt->lock);
    rt->hubs[i] = h;
    if (!h && !rt->start_err)
        rt->start_err = err;
    rt->started++;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    if (!h)
        return NULL;

    /* The root sleeps while tasks run; MAINLOOP wakes it once the stop has drained. */
    while (!gh__runtime_hub_drained(h))
        gh__task_park_uncapped(&h->sched, -1, NULL, NULL, "runtime stop");
    pthread_mutex_lock(&rt->lock);
    rt->emptied[i] = true;
    rt->drained++;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    /* Not counted in the drain timeout: it runs no task code and always ends (under TSan,
     * freeing a big stack cache's fibers can take seconds). */
    gh__hub_retire(h);

    pthread_mutex_lock(&rt->lock);
    rt->done[i] = true;
    rt->finished++;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    return NULL;
}

static void rt_free(gh_runtime *rt)
{
    if (rt->hubs)
        for (int i = 0; i < rt->n; i++)
            if (rt->hubs[i])
                gh__hub_bury(rt->hubs[i]);
    free(rt->hubs);
    free(rt->threads);
    free(rt->ops);
    free(rt->emptied);
    free(rt->done);
    free(rt->joined);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
    free(rt);
}

static void rt_request_stop(gh_runtime *rt, int i)
{
    gh_hub *h = rt->hubs[i];
    gh__inbox_close(&h->inbox);
    atomic_store_explicit(&h->stop_requested, true, memory_order_release);
    gh__inbox_kick(h, &h->inbox);
}

/* Wait until every hub drained or @deadline (-1: forever). True if all did. */
/* Wait until every hub has drained (false at @deadline, -1: none). */
static bool rt_wait_drained(gh_runtime *rt, int64_t deadline)
{
    struct timespec ts = {0};
    if (deadline >= 0) {
        ts.tv_sec = deadline / GH_SEC;
        ts.tv_nsec = deadline % GH_SEC;
    }
    pthread_mutex_lock(&rt->lock);
    while (rt->drained < rt->n) {
        int r = deadline < 0 ? pthread_cond_wait(&rt->cond, &rt->lock)
                             : pthread_cond_timedwait(&rt->cond, &rt->lock, &ts);
        if (r == ETIMEDOUT)
            break;
    }
    bool all = rt->drained == rt->n;
    pthread_mutex_unlock(&rt->lock);
    return all;
}

/* Wait until every hub that drained has been retired too. */
static void rt_wait_retired(gh_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    while (rt->finished < rt->drained)
        pthread_cond_wait(&rt->cond, &rt->lock);
    pthread_mutex_unlock(&rt->lock);
}

int gh_runtime_start(gh_runtime **out, const gh_runtime_config *cfg)
{
    if (!out || !cfg || cfg->threads < 1 || cfg->threads > 4096)
        return -EINVAL;
    if (cfg->stack_size && cfg->stack_size < GH__STACK_MIN)
        return -EINVAL;
    gh_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    int n = cfg->threads;
    rt->n = n;
    rt->stack_size = cfg->stack_size;
    rt->hubs = calloc((size_t)n, sizeof *rt->hubs);
    rt->threads = calloc((size_t)n, sizeof *rt->threads);
    rt->ops = calloc((size_t)n, sizeof *rt->ops);
    rt->emptied = calloc((size_t)n, sizeof *rt->emptied);
    rt->done = calloc((size_t)n, sizeof *rt->done);
    rt->joined = calloc((size_t)n, sizeof *rt->joined);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (!rt->hubs || !rt->threads || !rt->ops || !rt->emptied || !rt->done || !rt->joined) {
        rt_free(rt);
        return -ENOMEM;
    }
    /* Resolve every backend name before any thread starts: bad config starts nothing. */
    for (int i = 0; i < n; i++) {
        const char *name = cfg->backends ? cfg->backends[i] : NULL;
        rt->ops[i] = name ? gh_backend_find(name) : gh__backend_default();
        if (!rt->ops[i]) {
            rt_free(rt);
            return -ENOENT;
        }
    }
    int started = 0, err = 0;
    for (; started < n; started++) {
        rt_start *st = malloc(sizeof *st);
        if (!st) {
            err = -ENOMEM;
            break;
        }
        st->rt = rt;
        st->index = started;
        int r = pthread_create(&rt->threads[started], NULL, rt_thread, st);
        if (r) {
            free(st);
            err = -r;
            break;
        }
    }
    pthread_mutex_lock(&rt->lock);
    while (rt->started < started)
        pthread_cond_wait(&rt->cond, &rt->lock);
    if (!err)
        err = rt->start_err;
    pthread_mutex_unlock(&rt->lock);
    if (err) {
        /* Some hub failed (a refused backend): stop the ones that came up. */
        for (int i = 0; i < started; i++)
            if (rt->hubs[i])
                rt_request_stop(rt, i);
            else {
                rt->emptied[i] = true;
                rt->done[i] = true;
            }
        for (int i = 0; i < started; i++)
            pthread_join(rt->threads[i], NULL);
        rt_free(rt);
        return err;
    }
    *out = rt;
    return 0;
}

gh_hub *gh_runtime_hub(gh_runtime *rt, int index)
{
    if (!rt || index < 0 || index >= rt->n) {
        errno = EINVAL;
        return NULL;
    }
    return rt->hubs[index];
}

int gh_runtime_threads(const gh_runtime *rt)
{
    return rt ? rt->n : -EINVAL;
}

/* Join every thread whose hub has drained (all of them, unless a stop gave up on some). */
static void rt_join_done(gh_runtime *rt)
{
    for (int i = 0; i < rt->n; i++) {
        pthread_mutex_lock(&rt->lock);
        bool join = rt->done[i] && !rt->joined[i];
        rt->joined[i] |= join;
        pthread_mutex_unlock(&rt->lock);
        if (join)
            pthread_join(rt->threads[i], NULL);
    }
}

/* Past the kill's grace: name each hub whose task never blocks, and leave its thread be. */
static void rt_report_stuck(gh_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    rt->stuck = true;
    for (int i = 0; i < rt->n; i++) {
        if (rt->emptied[i])
            continue;
        gh__sched_stats *ss = &rt->hubs[i]->sched.stats;
        gh__log(GH_LOG_ERROR,
                "runtime stop: hub greenhub-%d is still running task %llu %.1f s after the kill: "
                "it never blocks, so it cannot see it; its thread is left running "
                "(gh_runtime_destroy waits for it)",
                i, (unsigned long long)atomic_load_explicit(&ss->running, memory_order_relaxed),
                (double)RT_KILL_GRACE / 1e9);
    }
    pthread_mutex_unlock(&rt->lock);
}

int gh_runtime_stop(gh_runtime *rt, int64_t drain_timeout_ns)
{
    if (!rt || drain_timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *self = gh__tls_hub;
    for (int i = 0; i < rt->n; i++)
        if (rt->hubs[i] == self)
            return -EDEADLK; /* a hub cannot wait for its own thread to end */
    pthread_mutex_lock(&rt->lock);
    bool already = rt->stopped;
    rt->stopped = true;
    pthread_mutex_unlock(&rt->lock);
    if (already) {
        /* A second or concurrent stop waits for the first and says what it got. */
        pthread_mutex_lock(&rt->lock);
        while (!rt->stop_over)
            pthread_cond_wait(&rt->cond, &rt->lock);
        int result = rt->stop_result;
        pthread_mutex_unlock(&rt->lock);
        return result;
    }
    for (int i = 0; i < rt->n; i++)
        rt_request_stop(rt, i);
    int result = 0;
    if (!rt_wait_drained(rt, gh__deadline(drain_timeout_ns))) {
        result = -ETIMEDOUT;
        pthread_mutex_lock(&rt->lock);
        for (int i = 0; i < rt->n; i++) {
            if (rt->emptied[i])
                continue;
            gh_hub_stats st;
            gh_hub_get_stats(rt->hubs[i], &st);
            gh__log(GH_LOG_WARN,
                    "runtime stop: hub greenhub-%d still busy after the drain "
                    "timeout (%llu tasks live); killing them",
                    i, (unsigned long long)st.tasks_live);
            atomic_store(&rt->hubs[i]->sched.kill_all, true);
            gh__inbox_kick(rt->hubs[i], &rt->hubs[i]->inbox);
        }
        pthread_mutex_unlock(&rt->lock);
        if (!rt_wait_drained(rt, drain_timeout_ns == GH_FOREVER ? -1 : gh__deadline(RT_KILL_GRACE)))
            rt_report_stuck(rt);
    }
    rt_wait_retired(rt);
    rt_join_done(rt);
    pthread_mutex_lock(&rt->lock);
    rt->stop_result = result;
    rt->stop_over = true;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    return result;
}

void gh_runtime_destroy(gh_runtime *rt)
{
    if (!rt)
        return;
    if (gh_runtime_stop(rt, GH_FOREVER) == -EDEADLK) {
        /* From one of its own threads: freeing would pull the hub from under us. */
        gh__log(GH_LOG_ERROR, "gh_runtime_destroy called from the runtime's own "
                              "thread; ignored (call it from a thread outside the runtime)");
        return;
    }
    if (rt->stuck) {
        /* A stop gave up on a task that never blocks: its hub is in use until it does. */
        rt_wait_drained(rt, -1);
        rt_wait_retired(rt);
        rt_join_done(rt);
    }
    rt_free(rt);
}

/* ---------------------------------------------------------------- handoff */

int gh_spawn_on(gh_hub *target, void (*fn)(void *), void *arg)
{
    if (!target || !fn)
        return -EINVAL;
    if (target == gh__tls_hub) {
        if (gh__inbox_closed(&target->inbox))
            return -ESHUTDOWN;
        return gh__task_spawn(&target->sched, fn, arg, false, 0) ? 0 : -ENOMEM;
    }
    gh__msg *m = gh__msg_alloc();
    if (!m)
        return -ENOMEM;
    m->kind = GH__MSG_SPAWN;
    m->fn = fn;
    m->arg = arg;
    int err = gh__inbox_post(target, &target->inbox, m);
    if (err)
        gh__msg_free(m);
    return err;
}

static void call_run(void *arg)
{
    gh__call_run(arg);
}

int gh_call_on(gh_hub *target, void *(*fn)(void *), void *arg, void **result, int64_t timeout_ns)
{
    if (!target)
        return -EINVAL;
    gh__call *c;
    int err = gh__call_new(&c, fn, arg, timeout_ns);
    if (err)
        return err;
    err = gh_spawn_on(target, call_run, c);
    if (err) {
        gh__call_abandon(c);
        return err;
    }
    return gh__call_wait(c, result, timeout_ns);
}
