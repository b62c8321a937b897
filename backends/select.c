/*
 * select.c — the select(2) backend (pselect, nanosecond timeouts).
 *
 * Quirks:
 *  - Only fds 0 .. FD_SETSIZE-1 (1024 on glibc) fit in an fd_set: watch
 *    returns -EINVAL for any other fd instead of writing past the set (glibc's
 *    FD_SET on such an fd is undefined behaviour, or an abort when fortified).
 *  - poll costs O(highest watched fd), whatever the number of watched fds.
 *  - select has no hang-up bit: the kernel marks a hung-up fd readable, an
 *    errored one readable and writable. So a pipe's read end whose writer
 *    closed is reported as GH_READ only even if it is also watched for
 *    GH_WRITE (poll and epoll report both directions there). A peer's
 *    half-close makes the fd readable only, which is what the contract asks.
 *  - An fd closed behind our back makes the whole pselect fail with EBADF.
 *    poll then finds the closed fds (fcntl F_GETFD) and reports each as every
 *    watched direction, so its task retries and sees EBADF (it stays "ready"
 *    until it is forgotten), plus whatever else a zero-timeout pselect
 *    without them finds ready.
 *  - Callbacks may call watch(): dispatch iterates over the result sets (our
 *    own copies) and re-checks the master sets for each fd; an fd (re)added
 *    after pselect returned is skipped, so a forgotten fd's number taken by a
 *    new fd inside a callback is not reported from the old result.
 *  - Regular files and directories are always ready (select says so, as
 *    poll(2) does): caps GH_BACKEND_FILES_READY.
 *  - poll is one pselect: a wait that saw only stale results, or EINTR,
 *    returns 0 early and the hub polls again with its own re-computed
 *    timeout. So does an EBADF for which no closed fd is found any more (its
 *    number was reused meanwhile).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>

#include "greenhub_backend.h"

typedef struct select_state {
    fd_set rfds;                   /* master read interest */
    fd_set wfds;                   /* master write interest */
    int maxfd;                     /* highest watched fd, -1 when none */
    uint64_t seq;                  /* bumped when pselect returns */
    uint64_t added_at[FD_SETSIZE]; /* seq at which each fd started being watched */
} select_state;

static int select_backend_init(void **state)
{
    select_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    FD_ZERO(&s->rfds);
    FD_ZERO(&s->wfds);
    s->maxfd = -1;
    s->seq = 1;
    *state = s;
    return 0;
}

static void select_backend_destroy(void *state)
{
    free(state);
}

static int select_interest(const select_state *s, int fd)
{
    return (FD_ISSET(fd, &s->rfds) ? GH_READ : 0) | (FD_ISSET(fd, &s->wfds) ? GH_WRITE : 0);
}

static int select_backend_watch(void *state, int fd, int old_events, int new_events)
{
    select_state *s = state;
    if (fd < 0 || fd >= FD_SETSIZE)
        return -EINVAL;
    if ((old_events | new_events) & ~(GH_READ | GH_WRITE))
        return -EINVAL;

    if (new_events && !select_interest(s, fd))
        s->added_at[fd] = s->seq;
    if (new_events & GH_READ)
        FD_SET(fd, &s->rfds);
    else
        FD_CLR(fd, &s->rfds);
    if (new_events & GH_WRITE)
        FD_SET(fd, &s->wfds);
    else
        FD_CLR(fd, &s->wfds);

    if (new_events && fd > s->maxfd)
        s->maxfd = fd;
    else if (!new_events && fd == s->maxfd)
        while (s->maxfd >= 0 && !select_interest(s, s->maxfd))
            s->maxfd--;
    return 0;
}

/* Report what r/w say, re-checking the master sets before each fd; fds in
 * bad (closed behind our back) are reported as every watched direction. */
static int select_dispatch(select_state *s, int top, const fd_set *r, const fd_set *w,
                           const fd_set *bad, gh_backend_ready_fn ready, void *ctx)
{
    int reported = 0;
    for (int fd = 0; fd <= top; fd++) {
        int is_bad = bad && FD_ISSET(fd, bad);
        int got = (FD_ISSET(fd, r) ? GH_READ : 0) | (FD_ISSET(fd, w) ? GH_WRITE : 0);
        if ((!got && !is_bad) || s->added_at[fd] == s->seq)
            continue;
        int interest = select_interest(s, fd);
        int events = is_bad ? interest : got & interest;
        if (events) {
            ready(ctx, fd, events);
            reported++;
        }
    }
    return reported;
}

/* pselect failed with EBADF: find the watched fds that are closed, report
 * them, and report the others that are ready now (a zero-timeout pselect
 * without the closed ones). */
static int select_report_closed(select_state *s, gh_backend_ready_fn ready, void *ctx)
{
    fd_set bad, r, w;
    FD_ZERO(&bad);
    r = s->rfds;
    w = s->wfds;
    int top = s->maxfd, nbad = 0;
    for (int fd = 0; fd <= top; fd++) {
        if (select_interest(s, fd) && fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
            FD_SET(fd, &bad);
            FD_CLR(fd, &r);
            FD_CLR(fd, &w);
            nbad++;
        }
    }
    if (!nbad)
        return 0; /* reopened meanwhile: an early return, the hub polls again */
    struct timespec zero = {0, 0};
    if (pselect(top + 1, &r, &w, NULL, &zero, NULL) <= 0) {
        FD_ZERO(&r);
        FD_ZERO(&w);
    }
    s->seq++;
    return select_dispatch(s, top, &r, &w, &bad, ready, ctx);
}

static int select_backend_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready,
                               void *ctx)
{
    select_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    fd_set r = s->rfds, w = s->wfds;
    int top = s->maxfd;
    int n = pselect(top + 1, &r, &w, NULL, tsp, NULL);
    if (n < 0) {
        if (errno == EINTR)
            return 0;
        if (errno == EBADF)
            return select_report_closed(s, ready, ctx);
        return -errno;
    }
    s->seq++;
    return n ? select_dispatch(s, top, &r, &w, NULL, ready, ctx) : 0;
}

const gh_backend_ops gh_backend_select = {
    .abi = GH_BACKEND_ABI,
    .name = "select",
    .caps = GH_BACKEND_FILES_READY,
    .init = select_backend_init,
    .destroy = select_backend_destroy,
    .watch = select_backend_watch,
    .poll = select_backend_poll,
};
