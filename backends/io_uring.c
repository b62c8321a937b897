/*
 * io_uring.c — io_uring (liburing): socket ops run by the kernel
 * (GH_BACKEND_COMPLETION), readiness through IORING_OP_POLL_ADD for the rest.
 *
 * Quirks of the completion path:
 *  - submit only queues the op's SQE (user_data: the op's address under the
 *    URING_UD_OP tag); the next poll submits it with everything else in the
 *    io_uring_enter that waits. A full SQ is submitted on the spot.
 *  - An op's CQE is queued and reported at the end of poll, after the fds,
 *    in CQ order; a CQE harvested outside poll (a full SQ) waits for the
 *    next one, so done callbacks only ever run inside poll.
 *  - cancel submits its ASYNC_CANCEL at once, as forgetting an fd does its
 *    POLL_REMOVE: the hub may close the fd next, and the op holds the file.
 *    The op's own CQE (-ECANCELED, or its result if it won) follows.
 *  - The opcodes are probed at init (5.6+ has the probe; RECV, SEND,
 *    ACCEPT, CONNECT are 5.5+, RECVMSG/SENDMSG 5.3+); where one is missing,
 *    submit answers -ENOSYS and the hub waits for readiness instead.
 *  - GH_OP_POLL_FIRST (the hub's last read of the socket was short) becomes
 *    IORING_RECVSEND_POLL_FIRST on a recv, where the kernel has it: the op
 *    arms its poll at once instead of first failing a recv with EAGAIN, as
 *    the readiness path waits before reading a drained stream (io/io.c).
 *  - The sockets stay O_NONBLOCK (the readiness path needs it): io_uring
 *    still arms its internal poll for a socket op that would block, and
 *    only a MSG_DONTWAIT from the caller makes it complete with -EAGAIN.
 *
 * Quirks of the readiness path:
 *  - watch() only records the interest and puts the fd on a dirty list; the
 *    poll SQEs are made and submitted by the next poll(), in the same
 *    io_uring_enter that waits. Changes take effect when the hub next polls.
 *    The one exception is forgetting an fd whose poll is in flight: the
 *    POLL_REMOVE is submitted at once, because the in-flight poll holds a
 *    reference to the file and the hub closes the fd right after forgetting
 *    it — without the eager submit a socket's close would not send FIN until
 *    the next poll.
 *  - io_uring poll is edge-like: a single-shot poll completes once, a
 *    multishot poll posts a CQE per wakeup, never for "still readable". To be
 *    level-triggered as the hub sees it, a single-shot poll is re-armed (at
 *    the next poll(), if the fd is still watched) after each completion; arming
 *    checks the current state, so an undrained fd completes again at once. In
 *    multishot mode each report is followed by a POLL_UPDATE of the same mask
 *    at the next poll(), which makes the kernel re-check the level.
 *  - Single-shot is the default: under level-triggered semantics multishot
 *    saves nothing (every report still costs one SQE for the re-check) and
 *    costs a POLL_REMOVE, its syscall and two CQEs whenever a fired fd is
 *    forgotten, while a completed single-shot poll is forgotten for free.
 *    Measured (6.18, min of 9 runs, ns per write+poll round): watch-fire-
 *    forget 6500 vs 8600, persistent watch drained 8000 vs 9600 (with 500
 *    idle fds 9900 vs 8700: noise level), undrained 2500 vs 2600.
 *    GREENHUB_IO_URING_POLL=multishot (read at init) selects multishot where
 *    the kernel has it (5.13+, probed at init with an eventfd); any other
 *    value, or none, is single-shot.
 *  - The kernel's poll cannot mask EPOLLRDHUP (nor ERR, HUP, NVAL): it is
 *    always in the poll's events. So a half-closed socket watched for
 *    GH_WRITE only, with a full send buffer, completes a single-shot poll at
 *    once with nothing to report (RDHUP is GH_READ), at every re-arm: a spin
 *    inside poll(). An fd whose single-shot poll completes with nothing to
 *    report gets multishot polls from then on (until it is forgotten), which
 *    post a CQE only at a wakeup. On kernels without multishot that fd still
 *    spins while the half-close lasts.
 *  - user_data carries fd and a 30-bit per-fd generation of the poll in
 *    flight; a CQE of a removed, replaced or forgotten poll does not match and
 *    is dropped. Remove/update/probe CQEs carry a tag in the top bits and are
 *    ignored, as is liburing's own timeout CQE on kernels without EXT_ARG.
 *  - CQEs are first gathered per fd (so one fd is reported once per poll
 *    even if several CQEs name it) and then dispatched, re-checking each fd's
 *    interest: callbacks may forget or change any fd.
 *  - POLLERR, POLLHUP and POLLNVAL are reported as every watched direction;
 *    POLLRDHUP (asked for with GH_READ: the peer's half-close) as GH_READ
 *    only, so a writer waiting on a full send buffer is not woken by it.
 *  - A poll that fails with -EBADF (fd closed behind our back) is reported as
 *    every watched direction and re-armed, so it stays "ready", as POLLNVAL.
 *    But a poll already in flight when the fd is closed without being
 *    forgotten keeps the file open (a socket sends no FIN) until the fd is
 *    forgotten or its number is watched again as new (old_events 0).
 *  - Regular files and directories are always ready, as with poll(2): a poll
 *    on one completes at once with POLLIN|POLLOUT (checked on 6.18), and is
 *    re-armed like any other. caps GH_BACKEND_FILES_READY.
 *  - Every wait costs a re-arm, an SQE in the next submission: caps
 *    GH_BACKEND_READ_FIRST, so the hub reads before it waits even after a
 *    short read (see hub/io.c).
 *  - A full SQ is submitted and the SQE taken again. The CQ is 4096 entries;
 *    an overflowed CQ (kernel keeps the CQEs, IORING_FEAT_NODROP) is flushed.
 *  - init returns -EPERM when /proc/sys/kernel/io_uring_disabled is 2, and
 *    io_uring_setup's own error (-ENOSYS, -EPERM, -ENOMEM for RLIMIT_MEMLOCK
 *    on kernels before 5.12) when the kernel refuses a ring; -ENOSYS when the
 *    probe says POLL_ADD/POLL_REMOVE are missing.
 *  - The wait uses io_uring_submit_and_wait_timeout (nanosecond timespec;
 *    EXT_ARG on 5.11+, a timeout SQE before). poll waits once: any CQE ends
 *    the wait, so one whose CQEs were all stale or ignored (a POLL_REMOVE's,
 *    say) returns 0 early, as does EINTR, and the hub polls again with its
 *    own re-computed timeout.
 */
#include <errno.h>
#include <liburing.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "greenhub_backend.h"

#define URING_SQ_ENTRIES 256
#define URING_CQ_ENTRIES 4096
#define URING_GEN_MASK   0x3fffffffu
/* user_data of SQEs whose CQEs we ignore (remove, update, probe, cancel). */
#define URING_UD_OTHER (1ull << 62)
/* user_data of an op's SQE: the gh_backend_op's address below this tag. */
#define URING_UD_OP   (2ull << 62)
#define URING_UD_KIND (3ull << 62)

/** Per-fd bookkeeping, indexed by fd. */
typedef struct uring_fd {
    uint8_t interest; /* GH_READ|GH_WRITE as the hub watches it, 0 = not watched */
    uint8_t armed;    /* directions of the poll in flight, 0 = none */
    uint8_t dirty;    /* on the dirty list */
    uint8_t recheck;  /* multishot: reported, re-check the level at the next flush */
    uint8_t pending;  /* events gathered from CQEs, not yet dispatched */
    uint8_t queued;   /* on the batch list */
    uint8_t multi;    /* multishot polls for this fd even in single-shot mode (uring_cqe) */
    uint32_t gen;     /* generation of the poll in flight */
} uring_fd;

typedef struct uring_state {
    struct io_uring ring;
    int multishot;    /* arm IORING_POLL_ADD_MULTI polls */
    int multishot_ok; /* the kernel keeps multishot polls armed (probed at init) */
    uring_fd *fds;    /* indexed by fd, nfds long */
    int nfds;
    int *dirty; /* fds whose kernel poll must change at the next flush; cap nfds */
    int ndirty;
    int *batch; /* fds with pending events; cap 2 * nfds (see uring_dispatch) */
    int nbatch;
    int ops_ok;               /* the kernel has every op submit may make (probed at init) */
    int poll_first_ok;        /* IORING_RECVSEND_POLL_FIRST is known (5.19+, with OP_SOCKET) */
    gh_backend_op *done_head; /* finished ops, not yet reported (FIFO) */
    gh_backend_op **done_tail;
} uring_state;

static uint64_t uring_ud(int fd, uint32_t gen)
{
    return (uint64_t)(gen & URING_GEN_MASK) << 32 | (uint32_t)fd;
}

static unsigned uring_poll_mask(int events)
{
    return ((events & GH_READ) ? POLLIN | POLLRDHUP : 0) | ((events & GH_WRITE) ? POLLOUT : 0);
}

/* Grow the fd table and, with it, the dirty and batch lists, so that pushing
 * onto them never fails (each fd is on each list at most once per round). */
static int uring_grow_fds(uring_state *s, int fd)
{
    if (fd < s->nfds)
        return 0;
    int n = s->nfds ? s->nfds : 64;
    while (n <= fd) {
        if (n > INT_MAX / 4)
            return -ENOMEM;
        n *= 2;
    }
    int *dirty = realloc(s->dirty, (size_t)n * sizeof(*dirty));
    if (!dirty)
        return -ENOMEM;
    s->dirty = dirty;
    int *batch = realloc(s->batch, (size_t)n * 2 * sizeof(*batch));
    if (!batch)
        return -ENOMEM;
    s->batch = batch;
    uring_fd *fds = realloc(s->fds, (size_t)n * sizeof(*fds));
    if (!fds)
        return -ENOMEM;
    memset(fds + s->nfds, 0, (size_t)(n - s->nfds) * sizeof(*fds));
    s->fds = fds;
    s->nfds = n;
    return 0;
}

static void uring_mark_dirty(uring_state *s, int fd)
{
    if (!s->fds[fd].dirty) {
        s->fds[fd].dirty = 1;
        s->dirty[s->ndirty++] = fd;
    }
}

/* Account one CQE: a matching poll completion adds to the fd's pending events. */
static void uring_cqe(uring_state *s, uint64_t ud, int res, unsigned flags)
{
    if ((ud & URING_UD_KIND) == URING_UD_OP) {
        /* Reported at dispatch, in order: a done callback may submit again. */
        gh_backend_op *op = (gh_backend_op *)(uintptr_t)(ud & ~URING_UD_KIND);
        op->result = res;
        op->next = NULL;
        *s->done_tail = op;
        s->done_tail = &op->next;
        return;
    }
    if (ud & URING_UD_KIND)
        return;
    int fd = (int)(uint32_t)ud;
    if (fd >= s->nfds)
        return;
    uring_fd *e = &s->fds[fd];
    if (!e->armed || e->gen != (uint32_t)(ud >> 32))
        return; /* a late CQE of a removed or replaced poll */

    int more = (flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
        e->armed = 0;
        e->recheck = 0;
        if (e->interest)
            uring_mark_dirty(s, fd); /* re-arm at the next flush */
    }
    int events;
    if (res == -ECANCELED)
        return; /* not cancelled by us (we change gen or armed first): re-arm */
    if (res < 0 || (res & (POLLERR | POLLHUP | POLLNVAL)))
        events = e->interest;
    else /* POLLRDHUP, the peer's half-close, is GH_READ only (greenhub_backend.h) */
        events = (((res & (POLLIN | POLLRDHUP)) ? GH_READ : 0) | ((res & POLLOUT) ? GH_WRITE : 0)) &
                 e->interest;
    if (!events) {
        /* Only bits the interest does not map (RDHUP with GH_WRITE only): a
         * single-shot re-arm would complete at once again. See the top. */
        if (!more && s->multishot_ok)
            e->multi = 1;
        return;
    }
    if (!e->queued) {
        e->queued = 1;
        s->batch[s->nbatch++] = fd;
    }
    e->pending |= (uint8_t)events;
    if (more) {
        e->recheck = 1; /* the multishot poll will not tell us "still ready" */
        uring_mark_dirty(s, fd);
    }
}

static void uring_harvest(uring_state *s)
{
    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            seen++;
            uring_cqe(s, cqe->user_data, cqe->res, cqe->flags);
        }
        io_uring_cq_advance(&s->ring, seen);
        /* CQEs the kernel kept aside on overflow come back only on enter. */
        if (!(IO_URING_READ_ONCE(*s->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
            return;
        if (io_uring_get_events(&s->ring) < 0)
            return;
        if (!seen && io_uring_cq_ready(&s->ring) == 0)
            return;
    }
}

/* An SQE, submitting what is queued when the SQ is full. NULL if none. */
static struct io_uring_sqe *uring_get_sqe(uring_state *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe)
        return sqe;
    if (io_uring_submit(&s->ring) < 0)
        uring_harvest(s); /* -EBUSY on old kernels: the CQ needs room */
    return io_uring_get_sqe(&s->ring);
}

/* Turn the dirty list into SQEs (not submitted). -EBUSY if the SQ stayed full. */
static int uring_flush(uring_state *s)
{
    int i;
    for (i = 0; i < s->ndirty; i++) {
        int fd = s->dirty[i];
        uring_fd *e = &s->fds[fd];
        struct io_uring_sqe *sqe;
        if (e->armed && e->armed != e->interest) {
            if (!(sqe = uring_get_sqe(s)))
                break;
            io_uring_prep_poll_remove(sqe, uring_ud(fd, e->gen));
            io_uring_sqe_set_data64(sqe, URING_UD_OTHER);
            e->armed = 0;
            e->recheck = 0;
        }
        if (e->interest && !e->armed) {
            if (!(sqe = uring_get_sqe(s)))
                break;
            e->gen = (e->gen + 1) & URING_GEN_MASK;
            if (s->multishot || e->multi)
                io_uring_prep_poll_multishot(sqe, fd, uring_poll_mask(e->interest));
            else
                io_uring_prep_poll_add(sqe, fd, uring_poll_mask(e->interest));
            io_uring_sqe_set_data64(sqe, uring_ud(fd, e->gen));
            e->armed = e->interest;
            e->recheck = 0;
        } else if (e->interest && e->recheck) {
            if (!(sqe = uring_get_sqe(s)))
                break;
            /* Same mask (new user_data must be 0 without UPDATE_USER_DATA): the
             * kernel re-arms the poll, re-checking the level. */
            io_uring_prep_poll_update(sqe, uring_ud(fd, e->gen), 0, uring_poll_mask(e->interest),
                                      IORING_POLL_UPDATE_EVENTS);
            io_uring_sqe_set_data64(sqe, URING_UD_OTHER);
            e->recheck = 0;
        }
        e->dirty = 0;
    }
    if (i == s->ndirty) {
        s->ndirty = 0;
        return 0;
    }
    memmove(s->dirty, s->dirty + i, (size_t)(s->ndirty - i) * sizeof(*s->dirty));
    s->ndirty -= i;
    return -EBUSY;
}

/* Report the gathered events. Callbacks may call watch(), which may (rarely,
 * on a full SQ) harvest more CQEs onto the batch: entries past the first
 * `todo` stay for the next poll. So the list holds at most nfds dispatched
 * plus nfds new entries: hence its 2 * nfds capacity. */
static int uring_dispatch(uring_state *s, gh_backend_ready_fn ready, void *ctx)
{
    int todo = s->nbatch, reported = 0;
    for (int i = 0; i < todo; i++) {
        int fd = s->batch[i];
        uring_fd *e = &s->fds[fd];
        int events = e->pending & e->interest;
        e->pending = 0;
        e->queued = 0;
        if (events) {
            ready(ctx, fd, events);
            reported++;
        }
    }
    if (s->nbatch > todo)
        memmove(s->batch, s->batch + todo, (size_t)(s->nbatch - todo) * sizeof(*s->batch));
    s->nbatch -= todo;
    /* Ops finished so far; one that a callback submits and finishes waits for the next poll. */
    gh_backend_op *op = s->done_head;
    s->done_head = NULL;
    s->done_tail = &s->done_head;
    while (op) {
        gh_backend_op *next = op->next;
        op->next = NULL;
        op->done(op, op->result);
        reported++;
        op = next;
    }
    return reported;
}

/* Does the kernel keep a multishot poll armed? Arm one on a readable eventfd. */
static int uring_probe_multishot(uring_state *s)
{
    int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return 0;
    const uint64_t probe_ud = URING_UD_OTHER | 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    int ok = 0;
    if (sqe) {
        io_uring_prep_poll_multishot(sqe, efd, POLLIN);
        io_uring_sqe_set_data64(sqe, probe_ud);
        struct io_uring_cqe *cqe = NULL;
        struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
        if (io_uring_submit(&s->ring) == 1 && io_uring_wait_cqe_timeout(&s->ring, &cqe, &ts) == 0) {
            ok = cqe->user_data == probe_ud && cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE);
            io_uring_cqe_seen(&s->ring, cqe);
        }
        if (ok && (sqe = io_uring_get_sqe(&s->ring))) {
            /* Its remaining CQEs carry URING_UD_OTHER and are ignored later. */
            io_uring_prep_poll_remove(sqe, probe_ud);
            io_uring_sqe_set_data64(sqe, URING_UD_OTHER);
            io_uring_submit(&s->ring);
        }
    }
    close(efd);
    return ok;
}

static int uring_backend_init(void **state)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    if (f) {
        int disabled = 0;
        int got = fscanf(f, "%d", &disabled);
        fclose(f);
        if (got == 1 && disabled == 2)
            return -EPERM;
    }

    uring_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    /*
     * Task work without an interrupt (COOP_TASKRUN, 5.19+): the hub's thread
     * enters the kernel at every poll anyway, and runs it then. Not
     * DEFER_TASKRUN: it holds task work back until the next reaping enter,
     * and with it the file reference of a removed poll or cancelled op, so a
     * close would not send FIN until the next poll (and multishot polls stop
     * re-checking the level). An older kernel refuses flags it lacks with
     * -EINVAL: then the next set. GREENHUB_IO_URING_SETUP=plain skips it.
     */
    static const unsigned setups[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_CQSIZE, 0, /* no CQSIZE before 5.5 */
    };
    const char *setup = getenv("GREENHUB_IO_URING_SETUP");
    size_t first = setup && strcmp(setup, "plain") == 0 ? 1 : 0;
    struct io_uring_params p;
    int ret = -EINVAL;
    for (size_t i = first; i < sizeof setups / sizeof setups[0]; i++) {
        memset(&p, 0, sizeof(p));
        p.flags = setups[i];
        p.cq_entries = URING_CQ_ENTRIES;
        ret = io_uring_queue_init_params(URING_SQ_ENTRIES, &s->ring, &p);
        if (ret != -EINVAL && ret != -ENOMEM) /* -ENOMEM: memlock, before 5.12 */
            break;
    }
    if (ret < 0) {
        free(s);
        return ret;
    }

    struct io_uring_probe *probe = io_uring_get_probe_ring(&s->ring);
    if (probe) { /* no probe before 5.6, where POLL_ADD/REMOVE (5.1) exist */
        int ok = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
                 io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE);
        io_uring_free_probe(probe);
        if (!ok) {
            io_uring_queue_exit(&s->ring);
            free(s);
            return -ENOSYS;
        }
    }

    probe = io_uring_get_probe_ring(&s->ring);
    if (probe) {
        static const int needed[] = {IORING_OP_RECV,        IORING_OP_SEND,   IORING_OP_RECVMSG,
                                     IORING_OP_SENDMSG,     IORING_OP_ACCEPT, IORING_OP_CONNECT,
                                     IORING_OP_ASYNC_CANCEL};
        s->ops_ok = 1;
        for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
            s->ops_ok &= io_uring_opcode_supported(probe, needed[i]) != 0;
        /* Older kernels refuse a recv whose ioprio is not 0: 5.19 brought both. */
        s->poll_first_ok = io_uring_opcode_supported(probe, IORING_OP_SOCKET) != 0;
        io_uring_free_probe(probe);
    }
    s->done_tail = &s->done_head;
    s->multishot_ok = uring_probe_multishot(s);
    const char *mode = getenv("GREENHUB_IO_URING_POLL");
    if (mode && strcmp(mode, "multishot") == 0)
        s->multishot = s->multishot_ok;
    *state = s;
    return 0;
}

static void uring_backend_destroy(void *state)
{
    uring_state *s = state;
    if (!s)
        return;
    io_uring_queue_exit(&s->ring); /* cancels every poll in flight */
    free(s->fds);
    free(s->dirty);
    free(s->batch);
    free(s);
}

static int uring_backend_watch(void *state, int fd, int old_events, int new_events)
{
    uring_state *s = state;
    if (fd < 0)
        return -EBADF;
    if ((old_events | new_events) & ~(GH_READ | GH_WRITE))
        return -EINVAL;

    if (new_events == 0) {
        if (fd >= s->nfds)
            return 0;
        uring_fd *e = &s->fds[fd];
        e->interest = 0;
        e->pending = 0;
        e->multi = 0;
        if (e->armed) {
            struct io_uring_sqe *sqe = uring_get_sqe(s);
            if (!sqe) {
                uring_mark_dirty(s, fd); /* the next flush removes it */
                return 0;
            }
            io_uring_prep_poll_remove(sqe, uring_ud(fd, e->gen));
            io_uring_sqe_set_data64(sqe, URING_UD_OTHER);
            e->armed = 0;
            e->recheck = 0;
            /* Drop the poll's file reference before the hub closes fd. A failure
             * leaves the SQE queued for the next poll(), which is still correct. */
            io_uring_submit(&s->ring);
        }
        return 0;
    }

    int err = uring_grow_fds(s, fd);
    if (err)
        return err;
    uring_fd *e = &s->fds[fd];
    if (old_events == 0 && e->armed) {
        /* The hub says fd is new: a poll in flight is on a file closed behind
         * our back, whose number was reused. Replace it. */
        struct io_uring_sqe *sqe = uring_get_sqe(s);
        if (!sqe)
            return -EBUSY;
        io_uring_prep_poll_remove(sqe, uring_ud(fd, e->gen));
        io_uring_sqe_set_data64(sqe, URING_UD_OTHER);
        e->armed = 0;
        e->recheck = 0;
        e->pending = 0;
        e->multi = 0;
    }
    e->interest = (uint8_t)new_events;
    uring_mark_dirty(s, fd);
    return 0;
}

static int uring_backend_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    uring_state *s = state;
    if (timeout_ns < -1)
        return -EINVAL;
    int err = uring_flush(s);
    int ret;
    if (err || timeout_ns == 0) {
        /* Enter even with nothing to submit: runs pending task work, so
         * completions already due are posted before we look. */
        ret = io_uring_submit_and_get_events(&s->ring);
    } else if (timeout_ns < 0) {
        ret = io_uring_submit_and_wait(&s->ring, 1);
    } else {
        struct __kernel_timespec ts = {
            .tv_sec = timeout_ns / 1000000000,
            .tv_nsec = timeout_ns % 1000000000,
        };
        struct io_uring_cqe *cqe;
        ret = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, &ts, NULL);
    }
    uring_harvest(s);
    int reported = uring_dispatch(s, ready, ctx);

    if (reported || ret == -EINTR)
        return reported;
    if (err)
        return err;
    /* -ETIME is the timeout; -EBUSY/-EAGAIN a full CQ or a busy ring: the
     * hub's next poll flushes and enters again. */
    if (ret < 0 && ret != -ETIME && ret != -EBUSY && ret != -EAGAIN)
        return ret;
    return 0;
}

static int uring_backend_submit(void *state, gh_backend_op *op)
{
    uring_state *s = state;
    if (op->code < GH_OP_RECV || op->code > GH_OP_CONNECT || ((uintptr_t)op & URING_UD_KIND))
        return -EINVAL;
    if (!s->ops_ok)
        return -ENOSYS;
    struct io_uring_sqe *sqe = uring_get_sqe(s);
    if (!sqe)
        return -EBUSY;
    switch (op->code) {
    case GH_OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
        /* The socket was drained: arm the kernel's poll without a recv bound to fail. */
        if ((op->hints & GH_OP_POLL_FIRST) && s->poll_first_ok)
            sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
        break;
    case GH_OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, op->flags);
        break;
    case GH_OP_RECVMSG:
        io_uring_prep_recvmsg(sqe, op->fd, op->buf, (unsigned)op->flags);
        break;
    case GH_OP_SENDMSG:
        io_uring_prep_sendmsg(sqe, op->fd, op->buf, (unsigned)op->flags);
        break;
    case GH_OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, NULL, NULL, op->flags);
        break;
    default: /* GH_OP_CONNECT */
        io_uring_prep_connect(sqe, op->fd, op->buf, (socklen_t)op->len);
        break;
    }
    io_uring_sqe_set_data64(sqe, URING_UD_OP | (uint64_t)(uintptr_t)op);
    return 0;
}

static int uring_backend_cancel(void *state, gh_backend_op *op)
{
    uring_state *s = state;
    struct io_uring_sqe *sqe = uring_get_sqe(s);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_cancel64(sqe, URING_UD_OP | (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(sqe, URING_UD_OTHER);
    /* Now, not at the next poll: the hub may close the fd next, and the op holds the file. */
    int ret = io_uring_submit(&s->ring);
    return ret < 0 ? ret : 0;
}

const gh_backend_ops gh_backend_io_uring = {
    .abi = GH_BACKEND_ABI,
    .name = "io_uring",
    .caps = GH_BACKEND_FILES_READY | GH_BACKEND_READ_FIRST | GH_BACKEND_COMPLETION,
    .init = uring_backend_init,
    .destroy = uring_backend_destroy,
    .watch = uring_backend_watch,
    .poll = uring_backend_poll,
    .submit = uring_backend_submit,
    .cancel = uring_backend_cancel,
};
