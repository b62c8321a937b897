/*
 * task.c — the public task calls: each finds the calling thread's hub and
 * asks its scheduler (sched/task.c) to do the work.
 */
#include <errno.h>

#include "hub/hub.h"

gh_task *gh_spawn(void (*fn)(void *), void *arg)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    gh_hub *h = gh__hub();
    if (!h)
        return NULL;
    return gh__task_spawn(&h->sched, fn, arg, true, 0);
}

int gh_spawn_n(void (*fn)(void *), void *arg)
{
    if (!fn)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    return gh__task_spawn(&h->sched, fn, arg, false, 0) ? 0 : -ENOMEM;
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
    return gh__task_spawn(&h->sched, fn, arg, true, delay_ns);
}

int gh_join(gh_task *t, int64_t timeout_ns)
{
    gh_hub *h = gh__tls_hub;

    if (!t || !h || gh__task_hub(t) != h || timeout_ns < GH_FOREVER)
        return -EINVAL;
    return gh__task_join(&h->sched, t, timeout_ns);
}

int gh_kill(gh_task *t)
{
    gh_hub *h = gh__tls_hub;

    if (!t || !h || gh__task_hub(t) != h)
        return -EINVAL;
    gh__task_kill(&h->sched, t);
    return 0;
}

void gh_task_release(gh_task *t)
{
    gh_hub *h = gh__tls_hub;

    /* A handle of another thread's hub is not ours to touch. */
    if (!t || !h || gh__task_hub(t) != h || !t->has_handle)
        return;
    t->has_handle = false;
    gh__task_maybe_free(&h->sched, t);
}

uint64_t gh_task_id(const gh_task *t)
{
    return t ? t->id : 0;
}

gh_task *gh_current(void)
{
    gh_hub *h = gh__tls_hub;
    if (!h || h->sched.current == &h->sched.main)
        return NULL;
    return h->sched.current;
}

int gh_sleep(int64_t ns)
{
    if (ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    if (ns == 0)
        return gh__task_yield(&h->sched);
    err = gh__task_park(&h->sched, gh__deadline(ns), NULL, NULL);
    return err == -ETIMEDOUT ? 0 : err;
}

int gh_yield(void)
{
    return gh_sleep(0);
}

int gh__caller_can_block(gh_hub **hp)
{
    gh_hub *h = gh__tls_hub;
    *hp = h;
    return h ? gh__can_block(&h->sched) : 0;
}
