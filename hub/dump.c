/*
 * dump.c — gh_hub_walk and gh_hub_dump: every task of a hub, what it waits
 * on and for how long, for a person at 3 a.m. or a program.
 *
 * The snapshot is taken on the hub's own thread, from its run queue and
 * live-task list (a control message when asked from another thread), and
 * handed back as plain copies: no other thread ever reads a task. A hub
 * that does not come back to its loop within a second (a task that never
 * yields, or a plain thread's hub whose thread is outside greenhub) gets
 * -ETIMEDOUT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"

#define DUMP_WAIT (1 * GH_SEC)

typedef struct dump_snap {
    atomic_int refs; /* the asker's and the hub's */
    gh_task_info *tasks;
    size_t n;
    int err;
    gh_xevent done;
} dump_snap;

static void dump_snap_put(dump_snap *d)
{
    if (atomic_fetch_sub(&d->refs, 1) == 1) {
        gh_xevent_destroy(&d->done);
        free(d->tasks);
        free(d);
    }
}

static void dump_fill(gh_hub *h, const gh_task *t, gh_task_info *in, int64_t now)
{
    const gh__sched *s = &h->sched;
    memset(in, 0, sizeof *in);
    in->id = t->id;
    snprintf(in->name, sizeof in->name, "%s", t->name ? t->name : "");
    in->fd = -1;
    in->deadline_ns = -1;
    if (t == s->current)
        in->state = "running";
    else if (t->state == GH__TASK_NEW)
        in->state = t->in_runq ? "new" : "new (delayed start)";
    else if (t->state == GH__TASK_READY || t->in_runq)
        in->state = "ready";
    else
        in->state = "waiting";
    in->waits_on = "";
    if (t->state == GH__TASK_BLOCKED && t->wait_what) {
        in->waits_on = t->wait_what;
        in->waiting_ns = now - t->parked_at;
        if (strcmp(t->wait_what, "fd") == 0) {
            int fd = (int)(intptr_t)t->wait_obj;
            in->fd = fd;
            if (fd >= 0 && fd < h->nfds) {
                in->events |= h->fds[fd].reader == t ? GH_READ : 0;
                in->events |= h->fds[fd].writer == t ? GH_WRITE : 0;
            }
        }
    }
    if (t->timeout.heap_idx != GH__NOT_IN_HEAP)
        in->deadline_ns = t->timeout.when;
    if (t->stack) {
        in->stack_size = t->stack->size;
        in->stack_in_use = t == s->current ? 0 : gh__task_stack_in_use(t);
    }
}

/* On @h's thread: copy out every task (the root first). */
static int dump_take(gh_hub *h, gh_task_info **out, size_t *nout)
{
    size_t n = 1;
    for (gh_task *t = h->sched.all; t; t = t->all_next)
        n++;
    gh_task_info *v = calloc(n, sizeof *v);
    if (!v)
        return -ENOMEM;
    int64_t now = gh_now();
    size_t i = 0;
    dump_fill(h, &h->sched.root, &v[i++], now);
    snprintf(v[0].name, sizeof v[0].name, "%s", h->sched.root.name ? h->sched.root.name : "root");
    for (gh_task *t = h->sched.all; t && i < n; t = t->all_next)
        dump_fill(h, t, &v[i++], now);
    *out = v;
    *nout = i;
    return 0;
}

static void dump_call(gh_hub *h, void *arg)
{
    dump_snap *d = arg;
    d->err = dump_take(h, &d->tasks, &d->n);
    gh_xevent_set(&d->done, NULL);
    dump_snap_put(d);
}

/* Every task of @hub, from any thread: *out (free it) and *n. */
static int dump_snapshot(gh_hub *hub, gh_task_info **out, size_t *n)
{
    if (hub == gh__tls_hub)
        return dump_take(hub, out, n);
    dump_snap *d = calloc(1, sizeof *d);
    if (!d)
        return -ENOMEM;
    int err = gh_xevent_init(&d->done);
    if (err) {
        free(d);
        return err;
    }
    atomic_init(&d->refs, 2);
    gh__msg *m = gh__msg_alloc();
    if (!m) {
        atomic_store(&d->refs, 1);
        dump_snap_put(d);
        return -ENOMEM;
    }
    if (gh__post_call_msg(hub, m, dump_call, d) != 0) {
        gh__msg_free(m);
        atomic_store(&d->refs, 1);
        dump_snap_put(d);
        *out = NULL;
        *n = 0;
        return 0; /* a hub that is gone has no tasks */
    }
    err = gh__xevent_wait(&d->done, NULL, DUMP_WAIT, "hub dump");
    if (err == 0 && (err = d->err) == 0) {
        *out = d->tasks;
        *n = d->n;
        d->tasks = NULL;
    }
    dump_snap_put(d);
    return err;
}

int gh_hub_walk(gh_hub *hub, int (*fn)(const gh_task_info *info, void *arg), void *arg)
{
    if (!hub || !fn)
        return -EINVAL;
    gh_task_info *v;
    size_t n;
    int err = dump_snapshot(hub, &v, &n);
    if (err)
        return err;
    int stop = 0;
    for (size_t i = 0; i < n && !stop; i++)
        stop = fn(&v[i], arg);
    free(v);
    return stop;
}

static void dump_duration(char *buf, size_t len, int64_t ns)
{
    if (ns < GH_MSEC)
        snprintf(buf, len, "%lld us", (long long)(ns / GH_USEC));
    else if (ns < GH_SEC)
        snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(buf, len, "%.3f s", (double)ns / 1e9);
}

static int dump_line(const gh_task_info *in, void *arg)
{
    FILE *out = arg;
    char what[96] = "", dur[32] = "", stack[48] = "";
    if (*in->waits_on) {
        dump_duration(dur, sizeof dur, in->waiting_ns);
        if (in->fd >= 0)
            snprintf(what, sizeof what, " on fd %d (%s%s%s) for %s", in->fd,
                     in->events & GH_READ ? "read" : "",
                     in->events == (GH_READ | GH_WRITE) ? "+" : "",
                     in->events & GH_WRITE ? "write" : "", dur);
        else
            snprintf(what, sizeof what, " on %s for %s", in->waits_on, dur);
    }
    if (in->deadline_ns >= 0) {
        char left[32];
        dump_duration(left, sizeof left, in->deadline_ns - gh_now());
        size_t l = strlen(what);
        snprintf(what + l, sizeof what - l, ", times out in %s", left);
    }
    if (in->stack_size)
        snprintf(stack, sizeof stack, ", stack %zu/%zu KiB", (in->stack_in_use + 1023) / 1024,
                 in->stack_size / 1024);
    fprintf(out, "  task %-6llu %-28s %s%s%s\n", (unsigned long long)in->id,
            *in->name ? in->name : "-", in->state, what, stack);
    return 0;
}

int gh_hub_dump(gh_hub *hub, FILE *out)
{
    if (!hub || !out)
        return -EINVAL;
    gh_task_info *v;
    size_t n;
    int err = dump_snapshot(hub, &v, &n);
    if (err)
        return err;
    gh_hub_stats st;
    gh_hub_get_stats(hub, &st);
    fprintf(out, "hub %p (%s): %zu tasks, %llu ready, %llu waiting on fds, busy %.1f%%\n",
            (void *)hub, st.backend ? st.backend : "?", n, (unsigned long long)st.tasks_ready,
            (unsigned long long)st.fd_waiters,
            st.busy_ns + st.idle_ns ? 100.0 * (double)st.busy_ns / (double)(st.busy_ns + st.idle_ns)
                                    : 0.0);
    for (size_t i = 0; i < n; i++)
        dump_line(&v[i], out);
    fflush(out);
    free(v);
    return 0;
}
