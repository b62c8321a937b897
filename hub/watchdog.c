/*
 * watchdog.c — the blocking detector (gh_set_block_threshold,
 * GREENHUB_BLOCK_MS), after eventlet's hub_blocking_detection and gevent's
 * monitor thread.
 *
 * One thread per process, started the first time the detector is turned
 * on. Every quarter threshold it looks at every hub's loop and switch
 * counters: a hub whose MAINLOOP has not come back, and whose tasks have
 * not switched, for longer than the threshold, that is
 * not asleep in its backend's poll, and that has work waiting (tasks, fd
 * waiters, timers), is stalled by the task on its CPU. The watchdog then
 * signals that hub's thread (SIGURG, ignored by default, as Go's preemption
 * uses it); the handler, on the stalled thread itself, takes the backtrace
 * and the task's id and name into one static slot, async-signal-safely.
 * One warning per stall goes through the log handler, and one more when
 * the loop comes back, with the stall's length. The hubs pay nothing: the
 * counters and the asleep mark are kept for the metrics anyway.
 */
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hub/hub.h"
#include "sched/log.h"

#define WD_FRAMES 24
#define WD_SIGNAL SIGURG

static _Atomic int64_t wd_threshold; /* ns; 0 = off */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static bool wd_started;
static struct sigaction wd_prev;

/* The one capture in flight: armed for a thread, filled by its signal handler. */
static struct {
    _Atomic int armed; /* 1 while the watchdog waits for target's handler */
    pthread_t target;
    _Atomic int done;
    int nframes;
    void *frames[WD_FRAMES];
    uint64_t task_id;
    char name[48];
} wd_cap;

static void wd_on_signal(int sig, siginfo_t *info, void *uctx)
{
    if (!atomic_load(&wd_cap.armed) || !pthread_equal(wd_cap.target, pthread_self())) {
        /* Not ours: whoever had the signal before us gets it. */
        if ((wd_prev.sa_flags & SA_SIGINFO) && wd_prev.sa_sigaction)
            wd_prev.sa_sigaction(sig, info, uctx);
        else if (!(wd_prev.sa_flags & SA_SIGINFO) && wd_prev.sa_handler != SIG_DFL &&
                 wd_prev.sa_handler != SIG_IGN)
            wd_prev.sa_handler(sig);
        return;
    }
    int saved = errno;
    wd_cap.nframes = backtrace(wd_cap.frames, WD_FRAMES); /* libgcc is loaded: see wd_main */
    gh_hub *h = gh__tls_hub;
    const gh_task *t = h ? h->sched.current : NULL;
    wd_cap.task_id = t ? t->id : 0;
    wd_cap.name[0] = '\0';
    if (t && t->name) {
        size_t n = strlen(t->name);
        if (n >= sizeof wd_cap.name)
            n = sizeof wd_cap.name - 1;
        memcpy(wd_cap.name, t->name, n);
        wd_cap.name[n] = '\0';
    }
    atomic_store(&wd_cap.done, 1);
    errno = saved;
}

/* What the watchdog remembers of one hub between looks. */
typedef struct wd_hub {
    gh_hub *hub;
    uint64_t iterations;
    int64_t since;      /* when iterations last changed (or the hub was first seen) */
    int64_t stalled_at; /* 0, or when the reported stall began */
} wd_hub;

#define WD_ENDED_MAX 16

typedef struct wd_scan {
    wd_hub *hubs;
    uint32_t cap;
    int64_t now, threshold;
    /* Found under the registry lock, logged after it (a handler may call greenhub). */
    bool stalled;
    int64_t stalled_for;
    uint64_t stalled_task; /* the id the hub published at its last switch */
    char stalled_desc[96];
    int nended;
    struct {
        char desc[96];
        int64_t ms_x10;
    } ended[WD_ENDED_MAX];
} wd_scan;

static void wd_hub_name(const gh_hub *h, char *buf, size_t len)
{
    if (h->runtime)
        snprintf(buf, len, "hub greenhub-%d (%s)", h->runtime_index, gh_hub_backend(h));
    else
        snprintf(buf, len, "hub %p (%s)", (void *)h, gh_hub_backend(h));
}

/* Under the registry lock (the hub cannot be freed meanwhile): one hub. */
static void wd_look(gh_hub *h, void *arg)
{
    wd_scan *sc = arg;
    if (h->id >= sc->cap) {
        uint32_t cap = h->id + 64;
        wd_hub *v = realloc(sc->hubs, cap * sizeof *v);
        if (!v)
            return;
        memset(v + sc->cap, 0, (cap - sc->cap) * sizeof *v);
        sc->hubs = v;
        sc->cap = cap;
    }
    wd_hub *w = &sc->hubs[h->id];
    /*
     * Progress is a loop iteration or a switch: tasks that yield switch
     * straight to each other for a batch (sched/task.c), without MAINLOOP.
     */
    uint64_t it = atomic_load_explicit(&h->stats.loop_iterations, memory_order_relaxed) +
                  atomic_load_explicit(&h->sched.stats.switches, memory_order_relaxed);
    if (w->hub != h) { /* a new hub, or a new one with a freed hub's id */
        *w = (wd_hub){h, it, sc->now, 0};
        return;
    }
    gh__hub_stats_atomic *st = &h->stats;
    int64_t asleep_at = atomic_load_explicit(&st->asleep_since, memory_order_relaxed);
    if (it != w->iterations || asleep_at) {
        /* The loop came back: it iterated, or it is asleep in its poll (since asleep_at). */
        if (w->stalled_at && sc->nended < WD_ENDED_MAX) {
            int64_t back = asleep_at && asleep_at < sc->now ? asleep_at : sc->now;
            wd_hub_name(h, sc->ended[sc->nended].desc, sizeof sc->ended[0].desc);
            sc->ended[sc->nended++].ms_x10 = (back - w->stalled_at) / (GH_MSEC / 10);
        }
        w->iterations = it;
        w->since = sc->now;
        w->stalled_at = 0;
        return;
    }
    bool work = atomic_load_explicit(&h->sched.stats.tasks_live, memory_order_relaxed) ||
                atomic_load_explicit(&st->fd_waiters, memory_order_relaxed) ||
                atomic_load_explicit(&st->timers_pending, memory_order_relaxed);
    if (!work || !atomic_load_explicit(&h->has_thread, memory_order_acquire)) {
        w->since = sc->now;
        return;
    }
    if (w->stalled_at || sc->now - w->since < sc->threshold || sc->stalled)
        return;
    /* Stalled: ask its thread for a backtrace while it surely exists (we hold the lock). */
    w->stalled_at = w->since;
    sc->stalled = true;
    sc->stalled_for = sc->now - w->since;
    sc->stalled_task = atomic_load_explicit(&h->sched.stats.running, memory_order_relaxed);
    wd_hub_name(h, sc->stalled_desc, sizeof sc->stalled_desc);
    wd_cap.target = h->thread;
    atomic_store(&wd_cap.done, 0);
    atomic_store(&wd_cap.armed, 1);
    if (pthread_kill(h->thread, WD_SIGNAL) != 0)
        atomic_store(&wd_cap.armed, 0);
}

static void wd_report(wd_scan *sc)
{
    /* The handler runs when the stalled thread takes the signal: give it 100 ms. */
    int64_t end = gh_now() + 100 * GH_MSEC;
    while (atomic_load(&wd_cap.armed) && !atomic_load(&wd_cap.done) && gh_now() < end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    bool got = atomic_load(&wd_cap.done);
    atomic_store(&wd_cap.armed, 0);

    char msg[1536];
    if (got) {
        int n = snprintf(msg, sizeof msg, "task %llu%s%s%s has not yielded for %.1f ms; backtrace:",
                         (unsigned long long)wd_cap.task_id, *wd_cap.name ? " \"" : "", wd_cap.name,
                         *wd_cap.name ? "\"" : "", (double)sc->stalled_for / 1e6);
        char **syms = backtrace_symbols(wd_cap.frames, wd_cap.nframes);
        /* Frame 0 is the handler, 1 the signal trampoline: the task's own frames follow. */
        for (int i = 2; i < wd_cap.nframes && n > 0 && (size_t)n < sizeof msg; i++)
            n += snprintf(msg + n, sizeof msg - (size_t)n, " %s%s", i > 2 ? "< " : "",
                          syms ? syms[i] : "?");
        free(syms);
    } else {
        snprintf(msg, sizeof msg,
                 "task %llu has not yielded for %.1f ms (no backtrace: its thread did not take "
                 "the signal in time)",
                 (unsigned long long)sc->stalled_task, (double)sc->stalled_for / 1e6);
    }
    gh__log(GH_LOG_WARN, "blocked %s: %s", sc->stalled_desc, msg);
}

static void *wd_main(void *arg)
{
    (void)arg;
    void *warm[2];
    backtrace(warm, 2); /* loads libgcc here, so the signal handler never has to */
    wd_scan sc = {0};
    pthread_mutex_lock(&wd_lock);
    for (;;) {
        int64_t th = atomic_load(&wd_threshold);
        if (th <= 0) {
            pthread_cond_wait(&wd_cond, &wd_lock);
            continue;
        }
        pthread_mutex_unlock(&wd_lock);
        int64_t period = th / 4;
        if (period < 5 * GH_MSEC)
            period = 5 * GH_MSEC; /* at most 200 looks a second, whatever the threshold */
        if (period > 100 * GH_MSEC)
            period = 100 * GH_MSEC;
        struct timespec ts = {(time_t)(period / GH_SEC), (long)(period % GH_SEC)};
        nanosleep(&ts, NULL);
        sc.now = gh_now();
        sc.threshold = th;
        sc.stalled = false;
        sc.nended = 0;
        gh__hubs_each(wd_look, &sc);
        for (int i = 0; i < sc.nended; i++)
            gh__log(GH_LOG_WARN, "%s: its loop came back after a stall of %.1f ms",
                    sc.ended[i].desc, (double)sc.ended[i].ms_x10 / 10);
        if (sc.stalled)
            wd_report(&sc);
        pthread_mutex_lock(&wd_lock);
    }
    return NULL;
}

/* Start the watchdog (and install the handler) once; wd_lock held. */
static int wd_start(void)
{
    if (wd_started)
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = wd_on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(WD_SIGNAL, &sa, &wd_prev) != 0)
        return -errno;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t th;
    int err = pthread_create(&th, &attr, wd_main, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return -err;
    pthread_setname_np(th, "greenhub-watch");
    wd_started = true;
    return 0;
}

int gh_set_block_threshold(int64_t ns)
{
    if (ns < 0)
        return -EINVAL;
    pthread_mutex_lock(&wd_lock);
    int err = ns > 0 ? wd_start() : 0;
    if (!err) {
        atomic_store(&wd_threshold, ns);
        pthread_cond_broadcast(&wd_cond);
    }
    pthread_mutex_unlock(&wd_lock);
    return err;
}

void gh__watchdog_env(void)
{
    const char *env = getenv("GREENHUB_BLOCK_MS");
    if (!env || !*env)
        return;
    char *end;
    long ms = strtol(env, &end, 10);
    if (*end || ms < 0 || ms > 3600 * 1000) {
        gh__log(GH_LOG_WARN, "GREENHUB_BLOCK_MS=%s is not a number of milliseconds; ignored", env);
        return;
    }
    int err = gh_set_block_threshold((int64_t)ms * GH_MSEC);
    if (err)
        gh__log(GH_LOG_WARN, "GREENHUB_BLOCK_MS: the watchdog cannot start: %s", gh_strerror(err));
}

void gh__watchdog_after_fork(void)
{
    /* The watchdog thread is the parent's: start one of our own if the detector is on. */
    pthread_mutex_init(&wd_lock, NULL);
    pthread_cond_init(&wd_cond, NULL);
    atomic_store(&wd_cap.armed, 0);
    wd_started = false;
    if (atomic_load(&wd_threshold) > 0) {
        pthread_mutex_lock(&wd_lock);
        wd_start();
        pthread_mutex_unlock(&wd_lock);
    }
}
