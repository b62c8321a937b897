/*
 * greenhub_backend.h — the interface between a hub and its I/O backend.
 *
 * A backend is a table of five functions over a private state pointer, in the
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
 *  - poll returns early (0 events) on EINTR; a timeout of 0 never sleeps.
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

/** Version of this interface; a backend sets gh_backend_ops.abi to it. */
#define GH_BACKEND_ABI 1

/**
 * Called by poll once per ready fd. @events is a non-empty subset of the
 * interest the fd is watched for (GH_READ, GH_WRITE or both). The callback may
 * call watch() on the same backend, for any fd, before it returns.
 */
typedef void (*gh_backend_ready_fn)(void *ctx, int fd, int events);

typedef struct gh_backend_ops {
    /** GH_BACKEND_ABI; a hub refuses a table with another value (-EINVAL). */
    int abi;
    /** Registry name, e.g. "epoll"; what gh_hub_backend() returns. */
    const char *name;
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
     *         (select: fd >= FD_SETSIZE), -EBADF, -ENOMEM, ...
     */
    int (*watch)(void *state, int fd, int old_events, int new_events);
    /**
     * Wait up to @timeout_ns nanoseconds (-1 forever, 0 do not sleep) for a
     * watched fd to become ready, then call @ready for each ready fd.
     * Rounds a timeout up, never down, to the mechanism's resolution.
     * @return the number of fds reported, or a negative errno.
     */
    int (*poll)(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx);
} gh_backend_ops;

/** The built-in backends (those compiled in; see gh_backend_find). */
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
