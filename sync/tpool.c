/*
 * tpool.c — gh_tpool: native threads for blocking calls (eventlet's tpool,
 * gevent's threadpool).
 *
 * A job carries a gh_xevent. The caller queues the job and waits on the
 * event: a task waits green and is woken through its hub's handoff queue (the
 * xevent posts a WAKE message), a plain thread blocks on the event's condition
 * variable. The job is reference-counted (caller + worker) like gh_call_on's
 * record, so a caller that gives up (timeout, kill) leaves the job to finish
 * and the last of the two frees it: the result is dropped, nothing is freed
 * under the worker's feet.
 *
 * Threads are made on demand, up to the pool's size, when queued jobs
 * outnumber idle threads. A shrunk pool's extra threads leave when they next
 * look for work; the threads that left are joined by the next submitter (or
 * by gh_tpool_free), never while holding the lock they need to leave.
 * Workers run with every signal blocked, so a process signal handler never
 * runs in the middle of a blocking job.
 *
 * In a forked child every pool starts over with no threads and an empty
 * queue: the jobs queued at the fork are the parent's, which runs them
 * (gevent's threadpool does the same). The child's first job starts a thread.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "hub/hub.h"

#define TPOOL_DEFAULT_SIZE 4

typedef gh__call tp_job; /* queued through its next link */

typedef struct tp_worker {
    struct tp_worker *next;
    gh_tpool *pool;
    pthread_t tid;
    bool exited; /* left the loop; to be joined */
} tp_worker;

struct gh_tpool {
    pthread_mutex_t lock;
    pthread_cond_t cond; /* work queued, or stopping, or shrunk */
    tp_job *head, *tail;
    size_t queued;
    int size;     /* most threads */
    int nthreads; /* threads in the loop */
    int idle;     /* threads waiting for work */
    bool stopping;
    tp_worker *workers; /* every thread not yet joined */
    gh_tpool *all_next; /* every pool, for the fork handler */
};

static pthread_mutex_t tpool_default_lock = PTHREAD_MUTEX_INITIALIZER;
static gh_tpool *tpool_default;
static int tpool_default_size = TPOOL_DEFAULT_SIZE;

static pthread_mutex_t tpool_all_lock = PTHREAD_MUTEX_INITIALIZER;
static gh_tpool *tpool_all;
static pthread_once_t tpool_fork_once = PTHREAD_ONCE_INIT;

/* Only the forking thread is left: no lock is held, no worker exists. */
static void tpool_atfork_child(void)
{
    pthread_mutex_init(&tpool_default_lock, NULL);
    pthread_mutex_init(&tpool_all_lock, NULL);
    for (gh_tpool *p = tpool_all; p; p = p->all_next) {
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        p->head = p->tail = NULL;
        p->queued = 0;
        p->nthreads = p->idle = 0;
        p->workers = NULL; /* records of the parent's threads: nothing to join here */
    }
}

static void tpool_fork_setup(void)
{
    gh__fork_child_add(tpool_atfork_child);
}

static void *tp_worker_main(void *arg)
{
    tp_worker *w = arg;
    gh_tpool *p = w->pool;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stopping && p->nthreads <= p->size) {
            p->idle++;
            pthread_cond_wait(&p->cond, &p->lock);
            p->idle--;
        }
        if (p->nthreads > p->size || !p->head)
            break; /* shrunk, or stopping with the queue empty */
        tp_job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);

        gh__call_run(j);

        pthread_mutex_lock(&p->lock);
    }
    p->nthreads--;
    w->exited = true;
    /* Queued work this thread leaves behind goes to one that stays. */
    if (p->head)
        pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Start a worker. Lock held. */
static int tp_spawn_thread(gh_tpool *p)
{
    tp_worker *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->pool = p;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&w->tid, NULL, tp_worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r) {
        free(w);
        return -r;
    }
    w->next = p->workers;
    p->workers = w;
    p->nthreads++;
    return 0;
}

/* Take the workers that left off the list (lock held); join them after unlocking. */
static tp_worker *tp_take_exited(gh_tpool *p)
{
    tp_worker *gone = NULL, **pp = &p->workers;
    while (*pp) {
        tp_worker *w = *pp;
        if (w->exited) {
            *pp = w->next;
            w->next = gone;
            gone = w;
        } else {
            pp = &w->next;
        }
    }
    return gone;
}

static void tp_join_all(tp_worker *w)
{
    while (w) {
        tp_worker *next = w->next;
        pthread_join(w->tid, NULL);
        free(w);
        w = next;
    }
}

static int tp_submit(gh_tpool *p, tp_job *j)
{
    pthread_mutex_lock(&p->lock);
    tp_worker *gone = tp_take_exited(p);
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->queued++;
    int err = 0;
    if (p->queued > (size_t)p->idle && p->nthreads < p->size) {
        err = tp_spawn_thread(p);
        if (err && p->nthreads > 0)
            err = 0; /* the threads there are will get to it */
    }
    if (err) {
        /* No thread at all to run it: take it back. j is the tail. */
        tp_job **pp = &p->head;
        while (*pp != j)
            pp = &(*pp)->next;
        *pp = NULL;
        p->tail = NULL;
        for (tp_job *q = p->head; q; q = q->next)
            p->tail = q;
        p->queued--;
    } else {
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    tp_join_all(gone);
    return err;
}

/* ------------------------------------------------------------ public API */

gh_tpool *gh_tpool_new(int threads)
{
    if (threads < 1) {
        errno = EINVAL;
        return NULL;
    }
    gh_tpool *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->size = threads;
    pthread_once(&tpool_fork_once, tpool_fork_setup);
    pthread_mutex_lock(&tpool_all_lock);
    p->all_next = tpool_all;
    tpool_all = p;
    pthread_mutex_unlock(&tpool_all_lock);
    return p;
}

void gh_tpool_free(gh_tpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&tpool_all_lock);
    gh_tpool **pp = &tpool_all;
    while (*pp != p)
        pp = &(*pp)->all_next;
    *pp = p->all_next;
    pthread_mutex_unlock(&tpool_all_lock);
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    /* Jobs queued by callers that gave up must still run: make sure someone runs them. */
    if (p->head && p->nthreads == 0)
        tp_spawn_thread(p);
    pthread_cond_broadcast(&p->cond);
    tp_worker *all = p->workers;
    p->workers = NULL;
    pthread_mutex_unlock(&p->lock);
    tp_join_all(all);
    /* A job still queued here had no thread at all: run it on this one. */
    while (p->head) {
        tp_job *j = p->head;
        p->head = j->next;
        gh__call_run(j);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

int gh_tpool_resize(gh_tpool *p, int threads)
{
    if (!p || threads < 1)
        return -EINVAL;
    pthread_mutex_lock(&p->lock);
    tp_worker *gone = tp_take_exited(p);
    p->size = threads;
    /* Growing: queued jobs waiting for a thread get one now. */
    int grown = 0;
    while (p->queued > (size_t)(p->idle + grown) && p->nthreads < p->size &&
           tp_spawn_thread(p) == 0)
        grown++;
    /* Shrinking: idle threads above the size leave now. */
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    tp_join_all(gone);
    return 0;
}

int gh_tpool_set_size(int threads)
{
    if (threads < 1)
        return -EINVAL;
    pthread_mutex_lock(&tpool_default_lock);
    tpool_default_size = threads;
    if (tpool_default)
        gh_tpool_resize(tpool_default, threads);
    pthread_mutex_unlock(&tpool_default_lock);
    return 0;
}

int gh_tpool_run_on(gh_tpool *p, void *(*fn)(void *), void *arg, void **result, int64_t timeout_ns)
{
    if (!p)
        return -EINVAL;
    tp_job *j;
    int err = gh__call_new(&j, fn, arg, timeout_ns);
    if (err)
        return err;
    err = tp_submit(p, j);
    if (err) {
        gh__call_abandon(j);
        return err;
    }
    return gh__call_wait(j, result, timeout_ns);
}

int gh_tpool_run(void *(*fn)(void *), void *arg, void **result, int64_t timeout_ns)
{
    pthread_mutex_lock(&tpool_default_lock);
    if (!tpool_default)
        tpool_default = gh_tpool_new(tpool_default_size);
    gh_tpool *p = tpool_default;
    pthread_mutex_unlock(&tpool_default_lock);
    if (!p)
        return -ENOMEM;
    return gh_tpool_run_on(p, fn, arg, result, timeout_ns);
}
