/*
 * call.c — a call run by one thread and waited for by another: the record
 * gh_call_on and gh_tpool_run share.
 *
 * Two references, the waiter's and the runner's; whoever drops the last one
 * frees it, so a waiter that timed out leaves the late result to be dropped
 * safely by the runner.
 */
#include <errno.h>

#include "hub/hub.h"

static void call_unref(gh__call *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        gh_xevent_destroy(&c->done);
        free(c);
    }
}

int gh__call_new(gh__call **out, void *(*fn)(void *), void *arg, int64_t timeout_ns)
{
    if (!fn || timeout_ns < GH_FOREVER)
        return -EINVAL;
    /* Refuse before anything runs: a call made from MAINLOOP or a killed task could not wait. */
    gh_hub *h;
    int err = gh__caller_can_block(&h);
    if (err)
        return err;
    gh__call *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    err = gh_xevent_init(&c->done);
    if (err) {
        free(c);
        return err;
    }
    c->next = NULL;
    atomic_init(&c->refs, 2);
    c->fn = fn;
    c->arg = arg;
    *out = c;
    return 0;
}

void gh__call_run(gh__call *c)
{
    gh_xevent_set(&c->done, c->fn(c->arg));
    call_unref(c);
}

int gh__call_wait(gh__call *c, void **result, int64_t timeout_ns)
{
    void *value = NULL;
    int err = gh__xevent_wait(&c->done, &value, timeout_ns, "call");
    if (err == 0 && result)
        *result = value;
    call_unref(c);
    return err;
}

void gh__call_abandon(gh__call *c)
{
    gh_xevent_destroy(&c->done);
    free(c);
}
