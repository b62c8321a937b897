/*
 * fork.c — in a forked child, the forking thread's hub gets kernel objects
 * of its own.
 *
 * fork() copies the hub's memory, not what the kernel holds for it: in the
 * child the epoll set (io_uring ring, libev or libevent loop) and the
 * wakeup eventfd are still the parent's objects. Left shared, the child's
 * gh_close would take the parent's fds out of the parent's epoll set, its
 * io_uring submissions would land in the parent's ring, and its reads of
 * the wakeup fd would steal the parent's wake-ups. So the child handler
 * gives the hub a new instance of the same backend, watches there every fd
 * a task waits on, takes a wakeup fd of its own and drops the handoffs
 * queued for the parent, which runs them (gevent does the same through
 * libev's ev_loop_fork). Tasks, timers and stacks carry on in the child.
 *
 * The parent's instance is abandoned, not destroyed: a destroy may take
 * fds out of the shared set (libevent's event_base_free does), so the
 * child keeps that instance's memory and its fd or two.
 *
 * Only the forking thread exists in the child: other threads' hubs, a
 * runtime's threads and thread pools are gone, and a task there that waits
 * on another thread (gh_call_on, gh_xevent, gh_chan) is not woken.
 */
#include <stdio.h>

#include "hub/hub.h"
#include "sched/log.h"

/* Give every waiter on @fd @err: its fd could not be watched in the child. */
static void fork_fail_waiters(gh__fdslot *s, int err)
{
    if (s->reader)
        gh__task_wake_detach(s->reader, err);
    if (s->writer)
        gh__task_wake_detach(s->writer, err);
}

void gh__hub_after_fork(gh_hub *h)
{
    /* The hub fd's epoll set is the parent's too: the child asks gh_hub_fd anew. */
    gh__embed_term(h);
    int err = gh__inbox_after_fork(&h->inbox);
    if (err)
        gh__log(GH_LOG_WARN, "forked child keeps its parent's wakeup fd: %s", gh_strerror(err));
    void *state = NULL;
    err = h->ops->init(&state);
    if (err) {
        gh__log(GH_LOG_WARN, "forked child keeps its parent's %s instance: %s", h->ops->name,
                gh_strerror(err));
        return;
    }
    /* The parent's instance is abandoned, never told (see the top). */
    h->bstate = state;
    gh__ops_after_fork(h); /* the parent's ring runs them: each task makes its call again */
    for (int fd = 0; fd < h->nfds; fd++) {
        gh__fdslot *s = &h->fds[fd];
        /* Only what a task waits on; lazy leftovers and the old wakeup fd start empty. */
        int carry = fd == h->inbox.wake_rfd ? 0 : gh__fd_carry(h, fd);
        s->interest = 0;
        if (carry && (err = gh__fd_interest(h, fd, carry)) != 0)
            fork_fail_waiters(s, err);
    }
    if (gh__fd_slot_reserve(h, h->inbox.wake_rfd) == 0)
        gh__fd_interest(h, h->inbox.wake_rfd, GH_READ);
}
