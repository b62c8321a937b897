/*
 * signal.c — gh_signal_wait: tasks of any hub, and plain threads, wait for a
 * process signal.
 *
 * The first wait for a signal installs one sigaction handler for it, which
 * only writes the signal number (one byte) to a process-wide self-pipe. A
 * router thread, made on first use, reads the pipe and wakes every waiter of
 * that signal: a task through a WAKE message to its hub's handoff queue (the
 * pattern of hub/xevent.c: the waiter preallocates the message, counts it in
 * xwakes_inflight and records park_seq + 1, so a wake that crosses a timeout
 * is recognised and dropped), a plain thread through its condition variable.
 *
 * Why not signalfd: a signalfd only sees a signal that is blocked in every
 * thread of the process; otherwise the kernel delivers it to some thread that
 * has it unblocked, through its disposition. greenhub does not own every
 * thread (the application's, a library's, ...), so it cannot block the signal
 * everywhere, and the mask of threads made earlier cannot be changed from
 * outside. A handler works whichever thread the kernel picks.
 *
 * The handler stays installed after the last waiter leaves: a delivery with no
 * waiter is then dropped (it neither kills the process nor runs the old
 * handler). gh_signal_restore(signo) puts the previous disposition back once
 * nobody waits; the router thread lives until the process exits.
 *
 * A forked child gets a self-pipe and a router of its own (the inherited
 * pipe would carry the child's signals to the parent's router), made at
 * once if a task of the forking thread waits, else by the child's first wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hub/hub.h"
#include "sched/log.h"

typedef struct sig_node {
    struct sig_node *prev, *next;
    int signo;
    bool linked; /* in sig_waiters[signo] */
    bool fired;  /* woken by a delivery */
    gh_hub *hub; /* NULL for a plain thread */
    gh_task *task;
    gh__msg *msg;
    uint32_t seq;
    pthread_cond_t cond; /* plain-thread waiters */
} sig_node;

static pthread_mutex_t sig_lock = PTHREAD_MUTEX_INITIALIZER;
static sig_node *sig_waiters[NSIG];
static int sig_nwaiting[NSIG];
static bool sig_installed[NSIG];
static struct sigaction sig_prev[NSIG];
static bool sig_router_started;
static int sig_rfd = -1;
static _Atomic int sig_wfd = -1; /* read by the handler */

static pthread_condattr_t sig_condattr;
static pthread_once_t sig_condattr_once = PTHREAD_ONCE_INIT;

static void sig_condattr_init(void)
{
    pthread_condattr_init(&sig_condattr);
    pthread_condattr_setclock(&sig_condattr, CLOCK_MONOTONIC);
}

static void sig_handler(int signo)
{
    int saved = errno;
    unsigned char b = (unsigned char)signo;
    /* Non-blocking: if the pipe is full, wakes for this signal are pending anyway. */
    ssize_t r = write(atomic_load_explicit(&sig_wfd, memory_order_relaxed), &b, 1);
    (void)r;
    errno = saved;
}

static bool sig_valid(int signo)
{
    return signo > 0 && signo < NSIG && signo != SIGKILL && signo != SIGSTOP && signo != SIGSEGV &&
           signo != SIGBUS && signo != SIGFPE && signo != SIGILL;
}

static void sig_unlink_node(sig_node *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        sig_waiters[n->signo] = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = NULL;
    n->linked = false;
    sig_nwaiting[n->signo]--;
}

/* Wake every waiter of @signo. sig_lock held. */
static void sig_route(int signo)
{
    while (sig_waiters[signo]) {
        sig_node *n = sig_waiters[signo];
        sig_unlink_node(n);
        n->fired = true;
        if (!n->hub) {
            pthread_cond_signal(&n->cond);
            continue;
        }
        /* Read before posting: the node lives on the waiter's stack. */
        gh_hub *h = n->hub;
        gh_task *t = n->task;
        gh__msg *m = n->msg;
        uint32_t seq = n->seq;
        gh__post_wake_msg(h, m, t, seq, 0);
    }
}

static void *sig_router_main(void *arg)
{
    (void)arg;
    unsigned char buf[64];
    for (;;) {
        ssize_t n = read(sig_rfd, buf, sizeof buf);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            GH_ASSERT(!"signal self-pipe failed");
        }
        pthread_mutex_lock(&sig_lock);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] < NSIG)
                sig_route(buf[i]);
        pthread_mutex_unlock(&sig_lock);
    }
    return NULL;
}

static int sig_router_start(void);

/* Only the forking thread is left: the router is gone and the pipe is the parent's. */
static void sig_atfork_child(void)
{
    pthread_mutex_init(&sig_lock, NULL);
    if (!sig_router_started)
        return;
    int wfd = atomic_exchange(&sig_wfd, -1); /* the handler stops writing first */
    close(wfd);
    close(sig_rfd);
    sig_rfd = -1;
    sig_router_started = false;
    for (int signo = 1; signo < NSIG; signo++)
        if (sig_nwaiting[signo] > 0) {
            if (sig_router_start() != 0)
                gh__log(GH_LOG_ERROR, "no signal router in the forked child");
            break;
        }
}

static void sig_atfork_setup(void)
{
    gh__fork_child_add(sig_atfork_child);
}

/* Make the self-pipe and the router thread once. sig_lock held. */
static int sig_router_start(void)
{
    static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
    pthread_once(&fork_once, sig_atfork_setup);
    if (sig_router_started)
        return 0;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    /* The handler must never block; the router may. */
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    sig_rfd = fds[0];
    atomic_store(&sig_wfd, fds[1]);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the router never runs a handler */
    pthread_t tid;
    int r = pthread_create(&tid, &attr, sig_router_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (r) {
        close(fds[0]);
        close(fds[1]);
        sig_rfd = -1;
        atomic_store(&sig_wfd, -1);
        return -r;
    }
    sig_router_started = true;
    return 0;
}

static int sig_install(int signo)
{
    if (sig_installed[signo])
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = sig_handler;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(signo, &sa, &sig_prev[signo]) != 0)
        return -errno;
    sig_installed[signo] = true;
    return 0;
}

static void sig_unlink(gh_task *t)
{
    sig_node *n = t->wait_obj;
    pthread_mutex_lock(&sig_lock);
    if (n->linked) {
        sig_unlink_node(n);
        t->xwakes_inflight--; /* no message will come: give it back */
        gh__msg_free(n->msg);
    }
    pthread_mutex_unlock(&sig_lock);
}

static void sig_link(sig_node *n)
{
    n->next = sig_waiters[n->signo];
    if (n->next)
        n->next->prev = n;
    sig_waiters[n->signo] = n;
    n->linked = true;
    sig_nwaiting[n->signo]++;
}

int gh_signal_wait(int signo, int64_t timeout_ns)
{
    if (!sig_valid(signo) || timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h;
    int err = gh__caller_can_block(&h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT; /* only a delivery after the call counts */

    sig_node n = {.signo = signo, .hub = h};
    pthread_mutex_lock(&sig_lock);
    err = sig_router_start();
    if (!err)
        err = sig_install(signo);
    if (err) {
        pthread_mutex_unlock(&sig_lock);
        return err;
    }
    if (!h) {
        pthread_once(&sig_condattr_once, sig_condattr_init);
        int64_t deadline = gh__deadline(timeout_ns);
        struct timespec ts = {0};
        if (deadline >= 0) {
            ts.tv_sec = deadline / GH_SEC;
            ts.tv_nsec = deadline % GH_SEC;
        }
        pthread_cond_init(&n.cond, &sig_condattr);
        sig_link(&n);
        while (!n.fired) {
            int r = deadline < 0 ? pthread_cond_wait(&n.cond, &sig_lock)
                                 : pthread_cond_timedwait(&n.cond, &sig_lock, &ts);
            if (r == ETIMEDOUT && !n.fired) {
                sig_unlink_node(&n);
                err = -ETIMEDOUT;
                break;
            }
        }
        pthread_mutex_unlock(&sig_lock);
        pthread_cond_destroy(&n.cond);
        return err;
    }

    gh_task *t = h->sched.current;
    n.task = t;
    n.msg = gh__msg_alloc();
    if (!n.msg) {
        pthread_mutex_unlock(&sig_lock);
        return -ENOMEM;
    }
    n.seq = t->park_seq + 1; /* the park below counts this wait */
    sig_link(&n);
    t->xwakes_inflight++;
    pthread_mutex_unlock(&sig_lock);

    h->xwaiters++;
    err = gh__task_park(&h->sched, gh__deadline(timeout_ns), sig_unlink, &n, "signal");
    h->xwaiters--;
    /* Delivered just as the timeout fired (or the kill came) still counts as delivered. */
    pthread_mutex_lock(&sig_lock);
    if (n.fired)
        err = 0;
    pthread_mutex_unlock(&sig_lock);
    return err;
}

int gh_signal_waiting(int signo)
{
    if (signo <= 0 || signo >= NSIG)
        return -EINVAL;
    pthread_mutex_lock(&sig_lock);
    int n = sig_nwaiting[signo];
    pthread_mutex_unlock(&sig_lock);
    return n;
}

int gh_signal_restore(int signo)
{
    if (!sig_valid(signo))
        return -EINVAL;
    int err = 0;
    pthread_mutex_lock(&sig_lock);
    if (sig_nwaiting[signo]) {
        err = -EBUSY;
    } else if (sig_installed[signo]) {
        if (sigaction(signo, &sig_prev[signo], NULL) != 0)
            err = -errno;
        else
            sig_installed[signo] = false;
    }
    pthread_mutex_unlock(&sig_lock);
    return err;
}
