/*
 * task.c — the public task calls: each finds the calling thread's hub and
 * asks its scheduler (sched/task.c) to do the work.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

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

/* ------------------------------------------------------- across hubs */

/*
 * A task's handle works from any thread. On the task's own hub a call acts
 * at once; from anywhere else it is a control message through that hub's
 * inbox (gh__post_call_msg), so no other thread touches the hub's tasks.
 * A task whose hub is gone has finished: it belongs to its handle alone.
 */

/* Post call(hub, arg) to @t's hub: 0, or -ESHUTDOWN when the hub is gone (t finished). */
static int task_post(gh_task *t, void (*call)(gh_hub *, void *), void *arg)
{
    gh__msg *m = gh__msg_alloc_retry();
    int err = gh__post_call_msg(gh__task_hub(t), m, call, arg);
    if (err)
        gh__msg_free(m);
    return err;
}

gh_task *gh_spawn_task_on(gh_hub *target, void (*fn)(void *), void *arg)
{
    if (!target || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (target == gh__tls_hub) {
        if (gh__inbox_closed(&target->inbox)) {
            errno = ESHUTDOWN;
            return NULL;
        }
        return gh__task_spawn(&target->sched, fn, arg, true, 0);
    }
    gh_task *t = gh__task_new_detached(&target->sched, fn, arg, true);
    if (!t)
        return NULL;
    gh__msg *m = gh__msg_alloc();
    if (!m) {
        free(t);
        errno = ENOMEM;
        return NULL;
    }
    m->kind = GH__MSG_START;
    m->arg = t;
    int err = gh__inbox_post(target, &target->inbox, m);
    if (err) {
        gh__msg_free(m);
        free(t);
        errno = -err;
        return NULL;
    }
    return t;
}

gh_hub *gh_task_hub(const gh_task *t)
{
    return t && t->sched ? gh__task_hub(t) : NULL;
}

/*
 * A join from another hub or a plain thread: the task's hub hooks a record
 * onto the task (gh__task_hook) that sets an event when it finishes; the
 * joiner waits on the event, green or blocking. A joiner that stops waiting
 * (timeout, kill) sends a cancel that unhooks it. Two references: the
 * joiner's, and the task's hub's (dropped when the hook fires or is
 * unhooked, or at once if the task had finished).
 */
typedef struct task_join {
    atomic_int refs;
    gh_task *t;
    gh__task_hook hook;
    bool hooked; /* on the task's hub only */
    gh_xevent done;
} task_join;

static void task_join_put(task_join *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) {
        gh_xevent_destroy(&j->done);
        free(j);
    }
}

static void task_join_fire(gh_task *t, void *arg)
{
    task_join *j = arg;
    j->hooked = false;
    gh_xevent_set(&j->done, NULL);
    task_join_put(j);
}

/*
 * A message for @t that reached a hub @t has left (gh_migrate): send it on
 * to where @t is now. Returns true if it did (or @t's new hub is gone: it
 * finished there, and so the message has nothing left to do).
 */
static bool task_forward(gh_hub *h, gh_task *t, void (*call)(gh_hub *, void *), void *arg)
{
    if (gh__task_hub(t) == h)
        return false;
    task_post(t, call, arg);
    return true;
}

static void task_join_call(gh_hub *h, void *arg)
{
    task_join *j = arg;
    if (task_forward(h, j->t, task_join_call, j))
        return;
    if (j->t->state == GH__TASK_DONE) {
        gh_xevent_set(&j->done, NULL);
        task_join_put(j);
        return;
    }
    j->hook.fn = task_join_fire;
    j->hook.arg = j;
    j->hooked = true;
    gh__task_hook_add(j->t, &j->hook);
}

static void task_join_cancel(gh_hub *h, void *arg)
{
    task_join *j = arg;
    if (gh__task_hub(j->t) != h) {
        /* It moved on: follow it; if its hub is gone, the teardown fired the hook. */
        if (task_post(j->t, task_join_cancel, j) != 0)
            task_join_put(j);
        return;
    }
    if (j->hooked) {
        j->hooked = false;
        gh__task_hook_remove(j->t, &j->hook);
        task_join_put(j);
    }
    task_join_put(j); /* the joiner's: it handed its reference to this message */
}

static int task_join_remote(gh_task *t, int64_t timeout_ns)
{
    if (atomic_load_explicit(&t->finished, memory_order_acquire))
        return 0;
    gh_hub *h;
    int err = gh__caller_can_block(&h);
    if (err)
        return err;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    task_join *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    err = gh_xevent_init(&j->done);
    if (err) {
        free(j);
        return err;
    }
    atomic_init(&j->refs, 2);
    j->t = t;
    if (task_post(t, task_join_call, j) != 0) {
        task_join_put(j); /* the hub is gone: t finished */
        task_join_put(j);
        return 0;
    }
    err = gh__xevent_wait(&j->done, NULL, timeout_ns, "join (another hub)");
    /*
     * Gave up waiting: the cancel unhooks the record, and takes over our
     * reference (the hook may fire meanwhile and drop the hub's, so the
     * record must outlive the message). If the hub went meanwhile, its
     * teardown fired the hook (t finished).
     */
    if (err && task_post(t, task_join_cancel, j) == 0)
        return err;
    task_join_put(j);
    return err;
}

int gh_join(gh_task *t, int64_t timeout_ns)
{
    if (!t || timeout_ns < GH_FOREVER)
        return -EINVAL;
    if (!t->sched)
        return 0; /* its hub is gone: it finished */
    gh_hub *h = gh__tls_hub;
    if (h && gh__task_hub(t) == h) {
        int64_t deadline = gh__deadline(timeout_ns);
        int err = gh__task_join(&h->sched, t, timeout_ns);
        if (err != -EXDEV)
            return err;
        /* It moved to another hub while we waited: go on waiting for it there. */
        if (deadline >= 0)
            timeout_ns = deadline > gh_now() ? deadline - gh_now() : 0;
    }
    return task_join_remote(t, timeout_ns);
}

/* ------------------------------------------------------------- moving */

static void task_adopt_call(gh_hub *h, void *arg)
{
    gh__task_adopt(&h->sched, arg, 0);
}

void gh__task_depart_to(gh_task *t, void *hub)
{
    gh_hub *h = hub, *to = h->migrate_to;
    h->migrate_to = NULL;
    /* From here on, messages for t go to its new hub; this hub no longer touches it. */
    atomic_store_explicit(&t->sched, &to->sched, memory_order_release);
    if (gh__hub_post_if_alive(to, task_adopt_call, t) != 0) {
        /* The target went away meanwhile (perhaps freed): stay here. */
        atomic_store_explicit(&t->sched, &h->sched, memory_order_release);
        gh__task_adopt(&h->sched, t, -ESHUTDOWN);
    }
}

/*
 * gh_task_move: the task's hub detaches it (only from a wait that cannot
 * touch the hub again: not yet started, gh_sleep, gh_yield), points it at
 * the target and posts it there; the target attaches it in the same state,
 * with the same deadline, and tells the mover. Two references: the
 * mover's, and the one that travels with the request.
 */
typedef struct task_move {
    atomic_int refs;
    gh_task *t;
    gh_hub *to;
    gh__move_state ms;
    int fd, events; /* the fd wait it carries, or -1 */
    int result;
    gh_xevent done;
} task_move;

static void task_move_put(task_move *mv)
{
    if (atomic_fetch_sub(&mv->refs, 1) == 1) {
        gh_xevent_destroy(&mv->done);
        free(mv);
    }
}

static void task_move_answer(task_move *mv, int result)
{
    mv->result = result;
    gh_xevent_set(&mv->done, NULL);
    task_move_put(mv);
}

/* Put the moved task back on its fd wait, now on @h; it wakes with the error if it cannot be. */
static void task_attach_fd(gh_hub *h, task_move *mv)
{
    gh_task *t = mv->t;
    if (mv->fd < 0 || t->state != GH__TASK_BLOCKED)
        return;
    int err = gh__fd_adopt_waiter(h, t, mv->fd, mv->events);
    if (err)
        gh__task_wake_detach(t, err > 0 ? 0 : err);
}

static void task_attach_call(gh_hub *h, void *arg)
{
    task_move *mv = arg;
    gh__task_attach(&h->sched, mv->t, &mv->ms);
    task_attach_fd(h, mv);
    task_move_answer(mv, 0);
}

static void task_move_call(gh_hub *h, void *arg)
{
    task_move *mv = arg;
    gh_task *t = mv->t;
    if (task_forward(h, t, task_move_call, mv))
        return;
    if (t->state == GH__TASK_MOVING && task_post(t, task_move_call, mv) == 0)
        return; /* on its way here (its adoption is being posted): after it */
    if (mv->to == h) {
        task_move_answer(mv, 0);
        return;
    }
    mv->fd = -1;
    if (t->state == GH__TASK_BLOCKED && t->wait_what && strcmp(t->wait_what, "fd") == 0) {
        int fd = (int)(intptr_t)t->wait_obj;
        mv->fd = fd;
        mv->events =
            (h->fds[fd].reader == t ? GH_READ : 0) | (h->fds[fd].writer == t ? GH_WRITE : 0);
    }
    int err = gh__task_detach(&h->sched, t, &mv->ms);
    if (err == -EBUSY && !t->is_root && t != h->sched.current &&
        (t->state == GH__TASK_BLOCKED || t->state == GH__TASK_READY)) {
        /*
         * It waits on something of this hub's (an event, a channel, a join...),
         * or was just woken from it: it stays on it here, where its waker is
         * and its deadline stays, and leaves once woken, before its wait
         * returns (gh__task_move_now): never early, never lost. A pinned
         * one (gh_pool_spawn's wait) goes after a later wait.
         */
        t->move_to = mv->to;
        /* On a backend op: cancelled, it leaves once the op is done and makes it there. */
        if (t->state == GH__TASK_BLOCKED && t->wait_what && strcmp(t->wait_what, "io") == 0)
            gh__op_cancel_for_move(t);
        task_move_answer(mv, 0);
        return;
    }
    if (err) {
        task_move_answer(mv, err);
        return;
    }
    t->move_to = NULL; /* this move supersedes one still pending */
    atomic_store_explicit(&t->sched, &mv->to->sched, memory_order_release);
    if (gh__hub_post_if_alive(mv->to, task_attach_call, mv) != 0) {
        /* The target went away meanwhile (perhaps freed): it stays here. */
        atomic_store_explicit(&t->sched, &h->sched, memory_order_release);
        gh__task_attach(&h->sched, t, &mv->ms);
        task_attach_fd(h, mv);
        task_move_answer(mv, -ESHUTDOWN);
    }
}

int gh_task_move(gh_task *t, gh_hub *target)
{
    if (!t || !target)
        return -EINVAL;
    if (!t->sched || atomic_load_explicit(&t->finished, memory_order_acquire))
        return -ENOENT;
    gh_hub *h = gh__tls_hub;
    if (h && t == h->sched.current)
        return gh_migrate(target); /* the caller itself */
    if (!gh__hub_alive(target))    /* freed, gone or stopping: looked up without touching it */
        return -ESHUTDOWN;
    gh_hub *dummy;
    int err = gh__caller_can_block(&dummy);
    if (err)
        return err;
    task_move *mv = calloc(1, sizeof *mv);
    if (!mv)
        return -ENOMEM;
    if ((err = gh_xevent_init(&mv->done)) != 0) {
        free(mv);
        return err;
    }
    atomic_init(&mv->refs, 2);
    mv->t = t;
    mv->to = target;
    mv->result = -EINPROGRESS;
    if (task_post(t, task_move_call, mv) != 0) {
        task_move_put(mv);
        task_move_put(mv);
        return -ENOENT; /* its hub is gone: it finished */
    }
    err = gh__xevent_wait(&mv->done, NULL, GH_FOREVER, "task move");
    if (err == 0)
        err = mv->result;
    task_move_put(mv);
    return err;
}

void gh__task_move_now(gh__sched *s, gh_task *t)
{
    (void)s; /* where it parked; it may have been moved since (a yield below): ask the task */
    for (;;) {
        gh_hub *h = gh__task_hub(t), *to = t->move_to;
        if (!to || t->pinned)
            return; /* a pinned task's caller still needs this hub: it goes after a later wait */
        if (to == h) {
            t->move_to = NULL;
            return;
        }
        if (t->xwakes_inflight) {
            /* A wake-up already posted to this hub for t must find it here. */
            gh__task_yield(&h->sched);
            continue;
        }
        t->move_to = NULL;
        h->migrate_to = to;
        gh__task_depart(&h->sched); /* -ESHUTDOWN when `to` went meanwhile: it stays here */
        return;
    }
}

int gh_migrate(gh_hub *target)
{
    gh_hub *h = gh__tls_hub;
    if (!target)
        return -EINVAL;
    if (!h)
        return -EPERM; /* a plain thread is not a task */
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    if (h->sched.current == &h->sched.root)
        return -EPERM; /* the root is the thread's own stack: it cannot leave */
    if (target == h)
        return 0;
    if (!gh__hub_alive(target)) /* freed, gone or stopping: looked up without touching it */
        return -ESHUTDOWN;
    gh_task *t = h->sched.current;
    /*
     * A wake-up already posted to this hub for t must find it here. A yield
     * can be moved by gh_task_move meanwhile: ask again where t runs.
     */
    while (t->xwakes_inflight) {
        if ((err = gh__task_yield(&h->sched)) != 0)
            return err;
        h = gh__task_hub(t);
    }
    t->move_to = NULL; /* this move supersedes one still pending */
    if (target == h)
        return 0;
    h->migrate_to = target;
    return gh__task_depart(&h->sched);
}

static void task_kill_call(gh_hub *h, void *arg)
{
    if (task_forward(h, arg, task_kill_call, arg))
        return;
    gh__task_kill(&h->sched, arg);
}

int gh_kill(gh_task *t)
{
    if (!t)
        return -EINVAL;
    if (!t->sched)
        return 0;
    gh_hub *h = gh__tls_hub;
    if (h && gh__task_hub(t) == h) {
        gh__task_kill(&h->sched, t);
        return 0;
    }
    if (atomic_load_explicit(&t->finished, memory_order_acquire))
        return 0;
    task_post(t, task_kill_call, t); /* -ESHUTDOWN: its hub is gone, so it finished */
    return 0;
}

static void task_release_call(gh_hub *h, void *arg)
{
    if (task_forward(h, arg, task_release_call, arg))
        return;
    gh__task_release(&h->sched, arg);
}

void gh_task_release(gh_task *t)
{
    if (!t)
        return;
    if (!t->sched) {
        gh__task_destroy(t); /* its hub is gone; it was kept for this handle */
        return;
    }
    gh_hub *h = gh__tls_hub;
    if (h && gh__task_hub(t) == h) {
        gh__task_release(&h->sched, t);
        return;
    }
    if (task_post(t, task_release_call, t) != 0)
        gh__task_destroy(t); /* a runtime's tombstone: finished, kept for this handle */
}

int gh_task_set_name(gh_task *t, const char *name)
{
    gh_hub *h = gh__tls_hub;
    if (!t)
        t = gh_current();
    if (!t || !h || !t->sched || gh__task_hub(t) != h)
        return -EINVAL;
    char *copy = NULL;
    if (name && *name && !(copy = strdup(name)))
        return -ENOMEM;
    free(t->name);
    t->name = copy;
    return 0;
}

const char *gh_task_name(const gh_task *t)
{
    return t && t->name ? t->name : "";
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
    int64_t end = gh__deadline(ns);
    gh_task *self = h->sched.current; /* after the park h may be another thread's (a move) */
    err = gh__task_park(&h->sched, end, NULL, NULL, "sleep");
    if (err != -ETIMEDOUT)
        return err;
    /* Its own end is a sleep's success; a deadline scope's that comes first is not. */
    int64_t scope = gh__scope_deadline(self);
    return scope >= 0 && (end < 0 || scope < end) ? -ETIMEDOUT : 0;
}

int gh_deadline_push(int64_t timeout_ns)
{
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    if (h->sched.current == &h->sched.main)
        return -EPERM;
    return gh__scope_push(&h->sched, gh__deadline(timeout_ns));
}

int gh_deadline_pop(void)
{
    gh_hub *h = gh__tls_hub;
    if (!h)
        return -ENOENT;
    if (h->sched.current == &h->sched.main)
        return -EPERM;
    return gh__scope_pop(&h->sched);
}

int gh_yield(void)
{
    /* gh_sleep(0), without the calls around it: this is a task-to-task switch's whole cost. */
    gh_hub *h = gh__tls_hub;
    if (__builtin_expect(h == NULL, 0))
        return gh_sleep(0);
    int err = gh__can_block(&h->sched);
    return err ? err : gh__task_yield(&h->sched);
}

int gh__caller_can_block(gh_hub **hp)
{
    gh_hub *h = gh__tls_hub;
    *hp = h;
    return h ? gh__can_block(&h->sched) : 0;
}
