/*
 * greenhub_backend.h — the interface between a hub and its I/O backend.
 *
 * A backend is a table of four functions over a private state pointer, in the
 * manner of Redis's ae_epoll.c: it knows nothing of hubs or tasks. The hub
 * tells it which fds it cares about (watch) and asks it to wait (poll); the
 * backend reports readiness through a callback. Everything a backend does goes
 * through this table, destroy included, so adding one is adding a file.
 *
 * Semantics every backend must follow (the conformance suite checks them):
 *
 *  - Interest is level-triggered as seen by the hub: while an fd is watched
 *    for GH_READ and is readable, every poll reports it. A backend built on an
 *    edge-like mechanism (io_uring multishot poll) re-arms to keep this true.
 *  - Errors and full hang-ups (POLLERR/EPOLLERR, POLLHUP/EPOLLHUP: both
 *    directions are gone) are reported as every direction the fd is watched
 *    for, so the waiting task retries its syscall and sees the real error.
 *    A half-close (POLLRDHUP/EPOLLRDHUP: the peer shut its write side) is
 *    GH_READ only: the read returns EOF, while writing may still work and
 *    blocks as before. Reporting GH_WRITE there would wake a writer waiting
 *    on a full send buffer at every poll, to meet EAGAIN again: a busy loop.
 *  - watch(fd, old, 0) forgets the fd completely; the hub calls it before it
 *    closes an fd, so no library keeps a stale registration.
 *  - poll never reports an fd that is not watched for that direction at the
 *    time of the report, and never reports a direction that was not asked for.
 *  - The hub owns the clock and the deadlines. poll waits once, for up to its
 *    timeout, and returns. It may return 0 early (EINTR, a wake-up that found
 *    only stale events, a spurious wake-up): the hub reads its clock,
 *    re-computes the timeout and polls again. So a backend keeps no clock and
 *    never loops to wait out the rest of a timeout. An early return comes
 *    from a wake-up, never from the timeout itself: the mechanism is given
 *    the timeout rounded up to its resolution, never down (rounded down, the
 *    hub's re-poll for the remainder would spin through zero-length waits).
 *  - A timeout of 0 never sleeps.
 *  - Where backends differ in a way the hub must know, the backend says so in
 *    gh_backend_ops.caps (GH_BACKEND_FILES_READY, GH_BACKEND_READ_FIRST): the
 *    hub tests those bits, never which backend it drives.
 *  - No backend function may abort the process: failures are negative errno.
 */
#ifndef GREENHUB_BACKEND_H
#define GREENHUB_BACKEND_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Interest and readiness bits, shared with the public API's gh_trampoline. */
#define GH_READ  0x1
#define GH_WRITE 0x2

/**
 * Version of this interface; a backend sets gh_backend_ops.abi to it.
 * 2: gh_backend_ops.caps added after name; poll waits once (see the top).
 * 3: submit and cancel added at the end, for GH_BACKEND_COMPLETION.
 * A hub takes a table of version 2 or 3 (a version 2 table has no
 * completion path) and refuses any other, 1 included.
 */
#define GH_BACKEND_ABI 3

/*
 * Capability bits of gh_backend_ops.caps: what a backend declares about
 * itself, so that the hub never has to check which backend it drives.
 */

/**
 * watch() accepts regular files and directories, and poll reports them ready
 * for every watched direction, always (as poll(2) does). Without this bit
 * watch() may refuse them with -EPERM (epoll does), and the hub then answers
 * a wait on such an fd with poll(2) itself; with it, -EPERM from watch() is a
 * real error.
 */
#define GH_BACKEND_FILES_READY 0x1u
/**
 * Every wait costs the backend a re-arm or a submission (io_uring's one-shot
 * polls), so the hub tries a read before waiting even right after a short
 * read, where it would otherwise wait for readability first.
 */
#define GH_BACKEND_READ_FIRST 0x2u
/**
 * The backend runs socket operations itself (submit, cancel: io_uring's
 * IORING_OP_RECV, SEND, ACCEPT, ...), and the hub's green socket calls hand
 * them over instead of waiting for readiness and making the syscall. Only
 * in a version 3 table with submit and cancel set.
 */
#define GH_BACKEND_COMPLETION 0x4u

/**
 * Called by poll once per ready fd. @events is a non-empty subset of the
 * interest the fd is watched for (GH_READ, GH_WRITE or both). The callback may
 * call watch() on the same backend, for any fd, before it returns.
 */
typedef void (*gh_backend_ready_fn)(void *ctx, int fd, int events);

/** What a gh_backend_op does; each is the syscall of the same name. */
enum gh_backend_opcode {
    GH_OP_RECV = 1, /* recv(fd, buf, len, flags) */
    GH_OP_SEND,     /* send(fd, buf, len, flags) */
    GH_OP_RECVMSG,  /* recvmsg(fd, buf as struct msghdr *, flags) */
    GH_OP_SENDMSG,  /* sendmsg(fd, buf as struct msghdr *, flags) */
    GH_OP_ACCEPT,   /* accept4(fd, NULL, NULL, flags) */
    GH_OP_CONNECT,  /* connect(fd, buf as struct sockaddr *, len) */
};

/** gh_backend_op.hints: what the hub believes, which a backend may use or ignore. */
#define GH_OP_POLL_FIRST 0x1u /* nothing to read now (the last read was short): wait, then try */

typedef struct gh_backend_op gh_backend_op;
/** Called by poll once per finished op: @result is the syscall's return, or -errno. */
typedef void (*gh_backend_done_fn)(gh_backend_op *op, int result);

/**
 * One operation handed to a completion backend. The hub fills it and keeps
 * it (and whatever buf points to) alive and unmoved until done is called;
 * the backend reads it at submit and may keep a pointer to it.
 */
struct gh_backend_op {
    int code;                /**< enum gh_backend_opcode */
    int fd;                  /**< the socket */
    int flags;               /**< MSG_* for RECV/SEND/RECVMSG/SENDMSG; SOCK_* for ACCEPT */
    unsigned hints;          /**< GH_OP_* hints, 0 for none */
    void *buf;               /**< data, or the struct msghdr / struct sockaddr the code names */
    size_t len;              /**< bytes of data, or the sockaddr's length */
    gh_backend_done_fn done; /**< told the result, from poll, exactly once */
    gh_backend_op *next;     /**< the backend's own while it holds the op */
    int result;              /**< the backend's own while it holds the op */
};

typedef struct gh_backend_ops {
    /** GH_BACKEND_ABI; a hub refuses a table with another value (-EINVAL). */
    int abi;
    /** Registry name, e.g. "epoll"; what gh_hub_backend() returns. */
    const char *name;
    /**
     * GH_BACKEND_* capability bits the backend declares, 0 for none. Fixed
     * for the table: it holds for every state init makes.
     */
    unsigned caps;
    /**
     * Create the backend's private state in *state.
     * @return 0, or a negative errno (-ENOSYS / -EPERM when the kernel refuses
     *         the mechanism, -ENOMEM, ...). On failure *state is untouched.
     */
    int (*init)(void **state);
    /** Free everything init created. Watched fds are not closed. */
    void (*destroy)(void *state);
    /**
     * Change the interest for @fd from @old_events to @new_events (each a
     * subset of GH_READ|GH_WRITE). old 0 means the backend does not know the
     * fd yet; new 0 means forget it.
     * @return 0, or a negative errno: -EINVAL for an fd the backend cannot hold
     *         (select: fd >= FD_SETSIZE), -EPERM for a regular file or a
     *         directory (only without GH_BACKEND_FILES_READY), -EBADF,
     *         -ENOMEM, ...
     */
    int (*watch)(void *state, int fd, int old_events, int new_events);
    /**
     * Wait once, up to @timeout_ns nanoseconds (-1 forever, 0 do not sleep),
     * for a watched fd to become ready, then call @ready for each ready fd.
     * Rounds the timeout up, never down, to the mechanism's resolution. May
     * return 0 before the timeout (EINTR, only stale events, a spurious
     * wake-up): the hub computes a new timeout and calls again; a backend
     * never re-waits for the rest of the timeout itself.
     * A completion backend also calls op->done here for every finished op.
     * @return the number of fds and ops reported (0 at the timeout or on an
     *         early wake-up), or a negative errno. -EINVAL for @timeout_ns < -1.
     */
    int (*poll)(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx);
    /*
     * Version 3, GH_BACKEND_COMPLETION only (NULL otherwise):
     */
    /**
     * Start @op. It is submitted to the kernel at the next poll at the
     * latest, and a later poll calls op->done with its result: exactly once,
     * whatever happens to its fd (a close gives the kernel's answer).
     * @return 0, or a negative errno and op->done is never called: -EINVAL
     *         for an unknown code, -ENOSYS when the kernel lacks the
     *         operation (the hub then waits for readiness instead), -EBUSY.
     */
    int (*submit)(void *state, gh_backend_op *op);
    /**
     * Ask the kernel to end @op early, now (not at the next poll: the hub may
     * close the fd next). op->done is still called, later, with the op's
     * own result if it finished first, else -ECANCELED.
     * @return 0, or a negative errno (the op then ends on its own).
     */
    int (*cancel)(void *state, gh_backend_op *op);
} gh_backend_ops;

/** The built-in backends. io_uring, libev and libevent exist only in builds
 *  that include them (see gh_backend_find, which answers ENOENT otherwise). */
extern const gh_backend_ops gh_backend_epoll;
extern const gh_backend_ops gh_backend_poll;
extern const gh_backend_ops gh_backend_select;
extern const gh_backend_ops gh_backend_io_uring;
extern const gh_backend_ops gh_backend_libev;
extern const gh_backend_ops gh_backend_libevent;

/**
 * Look a built-in backend up by name.
 * @return the ops table, or NULL with errno ENOENT. Any thread.
 */
const gh_backend_ops *gh_backend_find(const char *name);

/**
 * The built-in backends, in the default order of preference (epoll, poll,
 * select, then io_uring, libev, libevent), NULL-terminated. Any thread.
 */
const gh_backend_ops *const *gh_backend_list(void);

#ifdef __cplusplus
}
#endif

#endif /* GREENHUB_BACKEND_H */
