/*
 * thread.c — the per-thread state, its teardown at thread exit, and the one
 * fork handler (see thread.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "hub/hub.h"
#include "sched/log.h"

_Thread_local gh__thread gh__self;

static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *p)
{
    gh__thread *self = &gh__self;
    (void)p;
    self->armed = false;
    if (self->hub)
        gh__hub_thread_exit(self->hub);
    self->hub = NULL;
    /* After the hub: tearing it down may still hand message nodes back. */
    if (self->pool)
        gh__msg_pool_thread_exit();
}

/* ----------------------------------------------------------------- fork */

#define FORK_CHILD_MAX 8

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*fork_children[FORK_CHILD_MAX])(void);
static _Atomic int fork_nchildren;

/* Only the forking thread exists in the child: the hub layer first, then the layers above. */
static void thread_fork_child(void)
{
    pthread_mutex_init(&fork_lock, NULL);
    gh__log_after_fork();
    gh__watchdog_after_fork();
    gh__msg_pools_after_fork();
    gh_hub *h = gh__self.hub;
    gh__fdtable_after_fork(h && !h->retired ? h : NULL);
    if (h && !h->retired)
        gh__hub_after_fork(h);
    int n = atomic_load(&fork_nchildren);
    for (int i = 0; i < n; i++)
        fork_children[i]();
}

static void thread_init_once(void)
{
    pthread_key_create(&thread_key, thread_exit);
    pthread_atfork(NULL, NULL, thread_fork_child);
}

void gh__thread_arm(void)
{
    if (__builtin_expect(gh__self.armed, 1))
        return;
    pthread_once(&thread_once, thread_init_once);
    gh__self.armed = true;
    pthread_setspecific(thread_key, &gh__self);
}

void gh__fork_child_add(void (*fn)(void))
{
    pthread_once(&thread_once, thread_init_once);
    pthread_mutex_lock(&fork_lock);
    int n = atomic_load(&fork_nchildren);
    bool known = false;
    for (int i = 0; i < n; i++)
        known |= fork_children[i] == fn;
    GH_ASSERT(known || n < FORK_CHILD_MAX);
    if (!known) {
        fork_children[n] = fn;
        atomic_store(&fork_nchildren, n + 1);
    }
    pthread_mutex_unlock(&fork_lock);
}
