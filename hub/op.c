/*
 * op.c — socket syscalls the backend makes itself (GH_BACKEND_COMPLETION).
 *
 * On a readiness backend a green recv waits until the fd is readable, then
 * makes the syscall. A completion backend (io_uring) takes the recv itself:
 * the task hands it over and parks, MAINLOOP's next poll submits every new
 * op and reaps every finished one in one io_uring_enter, and the task wakes
 * with the syscall's result. No readiness wait, no re-arm, no syscall of
 * the task's own.
 *
 * The one rule that shapes the rest: the kernel may write into the op's
 * buffer until the op is done, so no call returns before that. A deadline,
 * a kill or a gh_close (on any hub: fd_forget wakes the waiter here) asks
 * the backend to cancel, and the task then waits, unkillable, for the op's
 * end. If the op finished first, its result stands: bytes read are never
 * dropped for a timeout that lost the race.
 *
 * An op belongs to the hub that submitted it. A task waiting on one is not
 * carried off by gh_task_move as an fd waiter is: the move cancels the op,
 * the task leaves once it is done and makes the call again on its new hub
 * (GH__OP_RETRY), by that hub's path. A backend swap and a forked child do
 * the same with every op in flight.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"
#include "sched/log.h"

bool gh__op_backend_ok(const gh_hub *h)
{
    const gh_backend_ops *o = h->ops;
    if (o->abi < 3 || !(o->caps & GH_BACKEND_COMPLETION) || !o->submit || !o->cancel)
        return false;
    const char *env = getenv("GREENHUB_COMPLETION"); /* "0": readiness only (tests, A/B) */
    return !(env && strcmp(env, "0") == 0);
}

bool gh__op_usable(gh_hub *h, int fd, int64_t timeout_ns, int64_t deadline)
{
    if (!h->complete || timeout_ns == 0 || gh__fd_slot_reserve(h, fd) != 0)
        return false;
    uint8_t kind = gh__fd_kind(h, fd);
    if (kind != GH__FD_STREAM && kind != GH__FD_DGRAM)
        return false;
    /* Past its deadline a call only tries the syscall once: the readiness path does that. */
    return deadline < 0 || deadline > gh_now();
}

static void op_list_remove(gh_hub *h, gh__op *op)
{
    if (op->prev)
        op->prev->next = op->next;
    else
        h->ops_list = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
    h->ops_inflight--;
}

static void op_cancel(gh_hub *h, gh__op *op)
{
    op->state = GH__OP_CANCELLING;
    int err = h->ops->cancel(h->bstate, &op->bop);
    if (err)
        gh__log(GH_LOG_WARN, "%s could not cancel an op on fd %d (%s): it ends on its own",
                h->ops->name, op->bop.fd, gh_strerror(err));
}

/* The backend's done callback, from poll on MAINLOOP. */
static void op_done(gh_backend_op *bop, int result)
{
    gh__op *op = (gh__op *)bop;
    gh_hub *h = op->hub;
    op_list_remove(h, op);
    op->result = result;
    op->state = GH__OP_DONE;
    gh_task *t = op->task;
    /* Parked on it, first wait (unlink gives the fd slot back) or the cancellation's. */
    if (t->state == GH__TASK_BLOCKED && t->wait_obj == op)
        gh__task_wake_detach(t, 0);
}

/* The first wait ends early (deadline, kill, close): give the slot back, cancel. */
static void op_unlink(gh_task *t)
{
    gh__op *op = t->wait_obj;
    gh__fd_op_release(op->hub, op->bop.fd, t);
    if (op->state == GH__OP_INFLIGHT)
        op_cancel(op->hub, op);
}

int gh__op_run(gh__op *op, int dir, int64_t deadline)
{
    gh_hub *h = gh__tls_hub; /* afresh: a moved task makes its ops on its new hub */
    gh__sched *s = &h->sched;
    gh_task *t = s->current;
    int fd = op->bop.fd;
    int err = gh__can_block(s); /* a loop's next op (gh_write_all) of a killed task */
    if (err)
        return err;
    if (fd == h->inbox.wake_rfd) /* the slot: reserved by gh__op_usable, just before */
        return -EINVAL;
    if ((err = gh__fd_op_hold(h, fd, dir, t)) != 0)
        return err;
    op->task = t;
    op->hub = h;
    op->reissue = false;
    op->bop.done = op_done;
    err = h->ops->submit(h->bstate, &op->bop);
    if (err) {
        gh__fd_op_release(h, fd, t);
        if (err != -ENOSYS)
            return err;
        h->complete = false; /* an older kernel: this hub waits for readiness from now on */
        return GH__OP_RETRY;
    }
    op->state = GH__OP_INFLIGHT;
    op->prev = NULL;
    op->next = h->ops_list;
    if (h->ops_list)
        h->ops_list->prev = op;
    h->ops_list = op;
    h->ops_inflight++;

    deadline = gh__scope_cap(t, deadline);
    int woke = gh__task_park_uncapped(s, deadline, op_unlink, op, "io");
    /* Cancelled: the kernel may still write the buffer until the op is done. */
    while (op->state != GH__OP_DONE)
        gh__task_park_uncapped(s, -1, NULL, op, "io cancel");

    int res = op->result;
    bool again = res == -EAGAIN || res == -EWOULDBLOCK; /* MSG_DONTWAIT: readiness, then again */
    if (res == -ECANCELED)
        res = woke ? woke : op->reissue ? GH__OP_RETRY : -ECANCELED;
    else if (again)
        res = woke ? woke : GH__OP_RETRY;

    gh__task_leave_if_moved(t); /* now that the op is done */
    if (res == GH__OP_RETRY && again) {
        err = gh__fd_wait(fd, dir, deadline);
        if (err)
            return err;
    }
    return res;
}

void gh__op_cancel_for_move(gh_task *t)
{
    gh__op *op = t->wait_obj;
    if (t->state != GH__TASK_BLOCKED || !op || op->state != GH__OP_INFLIGHT)
        return;
    op->reissue = true;
    op_cancel(op->hub, op);
}

/* Readiness is level-triggered: what a drain's polls report, the next backend reports again. */
static void ops_drain_ready(void *ctx, int fd, int events)
{
    (void)ctx;
    (void)fd;
    (void)events;
}

int gh__ops_drain(gh_hub *h)
{
    for (gh__op *op = h->ops_list; op; op = op->next) {
        if (op->state == GH__OP_INFLIGHT) {
            op->reissue = true;
            op_cancel(h, op);
        }
    }
    int64_t until = gh_now() + GH_SEC;
    while (h->ops_inflight > 0) {
        int64_t left = until - gh_now();
        if (left <= 0)
            return -EBUSY;
        int n = h->ops->poll(h->bstate, left, ops_drain_ready, h);
        if (n < 0 && n != -EINTR)
            return n;
    }
    return 0;
}

void gh__ops_after_fork(gh_hub *h)
{
    while (h->ops_list) {
        gh__op *op = h->ops_list;
        if (op->state == GH__OP_INFLIGHT)
            op->reissue = true;
        op_done(&op->bop, -ECANCELED);
    }
}
