/*
 * net.c — green socket calls beyond io.c's basics: recv/send, vectored I/O
 * and sendfile.
 *
 * The pattern is io.c's: try the syscall, park on EAGAIN until the fd is
 * ready or the call's deadline passes, try again. A timeout is the budget of
 * the whole call, so a call that loops (gh_writev, gh_sendfile) carries one
 * absolute deadline through all its waits. Sends to sockets use MSG_NOSIGNAL;
 * sendfile has no such flag, so SIGPIPE is blocked around it instead.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io/io.h"

ssize_t gh_recv(int fd, void *buf, size_t n, int flags, int64_t timeout_ns)
{
    gh_hub *h;
    if (!buf && n)
        return -EINVAL;
    int err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    while (gh__op_usable(gh__tls_hub, fd, timeout_ns, deadline)) {
        gh__op op = {.bop = {.code = GH_OP_RECV, .fd = fd, .flags = flags, .buf = buf, .len = n}};
        bool peek = flags & MSG_PEEK; /* a peek drains nothing */
        op.bop.hints = peek ? 0 : gh__io_read_hints(fd);
        int r = gh__op_run(&op, GH_READ, deadline);
        if (r >= 0 && !peek)
            gh__io_read_done(fd, r, n);
        if (r != GH__OP_RETRY)
            return r;
    }
    bool peek = flags & MSG_PEEK; /* a peek drains nothing */
    if (!peek) {
        err = gh__io_read_prewait(fd, timeout_ns, deadline);
        if (err)
            return err;
    }
    for (;;) {
        ssize_t r = recv(fd, buf, n, flags);
        if (r >= 0) {
            if (!peek)
                gh__io_read_done(fd, r, n);
            return r;
        }
        err = gh__io_retry(fd, GH_READ, timeout_ns, deadline);
        if (err)
            return err;
    }
}

ssize_t gh_send(int fd, const void *buf, size_t n, int flags, int64_t timeout_ns)
{
    gh_hub *h;
    if (!buf && n)
        return -EINVAL;
    int err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    while (gh__op_usable(gh__tls_hub, fd, timeout_ns, deadline)) {
        gh__op op = {.bop = {.code = GH_OP_SEND,
                             .fd = fd,
                             .flags = flags | MSG_NOSIGNAL,
                             .buf = (void *)buf,
                             .len = n}};
        int r = gh__op_run(&op, GH_WRITE, deadline);
        if (r != GH__OP_RETRY)
            return r;
    }
    for (;;) {
        ssize_t r = send(fd, buf, n, flags | MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        err = gh__io_retry(fd, GH_WRITE, timeout_ns, deadline);
        if (err)
            return err;
    }
}

static int iov_check(const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX || (!iov && iovcnt))
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (!iov[i].iov_base && iov[i].iov_len)
            return -EINVAL;
        if (iov[i].iov_len > (size_t)SSIZE_MAX - total)
            return -EINVAL;
        total += iov[i].iov_len;
    }
    return 0;
}

ssize_t gh_readv(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ns)
{
    gh_hub *h;
    int err = iov_check(iov, iovcnt);
    if (err)
        return err;
    err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    while (gh__op_usable(gh__tls_hub, fd, timeout_ns, deadline)) {
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
        gh__op op = {.bop = {.code = GH_OP_RECVMSG, .fd = fd, .buf = &mh}};
        int r = gh__op_run(&op, GH_READ, deadline);
        if (r != GH__OP_RETRY)
            return r;
    }
    for (;;) {
        ssize_t r = readv(fd, iov, iovcnt);
        if (r >= 0)
            return r;
        err = gh__io_retry(fd, GH_READ, timeout_ns, deadline);
        if (err)
            return err;
    }
}

/* One gather write; a socket gets MSG_NOSIGNAL, anything else writev. */
static ssize_t net_writev_some(int fd, struct iovec *iov, int iovcnt, bool *is_socket)
{
    if (*is_socket) {
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t r = sendmsg(fd, &mh, MSG_NOSIGNAL);
        if (r >= 0 || errno != ENOTSOCK)
            return r;
        *is_socket = false;
    }
    return writev(fd, iov, iovcnt);
}

#define NET_IOV_STACK 16

ssize_t gh_writev(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ns)
{
    gh_hub *h;
    int err = iov_check(iov, iovcnt);
    if (err)
        return err;
    err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;

    /* A private copy to advance through partial writes; the caller's stays as given. */
    struct iovec stack_iov[NET_IOV_STACK];
    struct iovec *v = stack_iov;
    if (iovcnt > NET_IOV_STACK) {
        v = malloc((size_t)iovcnt * sizeof *v);
        if (!v)
            return -ENOMEM;
    }
    memcpy(v, iov, (size_t)iovcnt * sizeof *v);

    int64_t deadline = gh__deadline(timeout_ns);
    struct iovec *cur = v;
    int left = iovcnt;
    bool is_socket = true;
    ssize_t result = (ssize_t)total;
    while (left > 0) {
        if (cur->iov_len == 0) {
            cur++;
            left--;
            continue;
        }
        ssize_t r;
        if (gh__op_usable(gh__tls_hub, fd, timeout_ns, deadline)) {
            struct msghdr mh = {.msg_iov = cur, .msg_iovlen = (size_t)left};
            gh__op op = {
                .bop = {.code = GH_OP_SENDMSG, .fd = fd, .flags = MSG_NOSIGNAL, .buf = &mh}};
            r = gh__op_run(&op, GH_WRITE, deadline);
            if (r == GH__OP_RETRY)
                continue;
            if (r < 0) {
                result = r;
                break;
            }
        } else if ((r = net_writev_some(fd, cur, left, &is_socket)) < 0) {
            err = gh__io_retry(fd, GH_WRITE, timeout_ns, deadline);
            if (err) {
                result = err;
                break;
            }
            continue;
        }
        size_t done = (size_t)r;
        while (left > 0 && done >= cur->iov_len) {
            done -= cur->iov_len;
            cur++;
            left--;
        }
        if (left > 0) {
            cur->iov_base = (char *)cur->iov_base + done;
            cur->iov_len -= done;
        }
    }
    if (v != stack_iov)
        free(v);
    return result;
}

/*
 * sendfile(2) has no MSG_NOSIGNAL: block SIGPIPE in this thread around it,
 * and if the call raised one (EPIPE) that was not already pending, consume
 * it before unblocking, so the process never sees it.
 */
static ssize_t net_sendfile_nosigpipe(int out_fd, int in_fd, off_t *offset, size_t count)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    ssize_t r = sendfile(out_fd, in_fd, offset, count);
    int e = errno;
    if (r < 0 && e == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

ssize_t gh_sendfile(int out_fd, int in_fd, off_t *offset, size_t count, int64_t timeout_ns)
{
    gh_hub *h;
    if (in_fd < 0)
        return -EBADF;
    if (offset && *offset < 0)
        return -EINVAL;
    int err = gh__io_enter(out_fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    size_t sent = 0;
    while (sent < count) {
        /* sendfile moves at most 0x7ffff000 bytes per call. */
        size_t chunk = count - sent;
        if (chunk > 0x7ffff000)
            chunk = 0x7ffff000;
        ssize_t r = net_sendfile_nosigpipe(out_fd, in_fd, offset, chunk);
        if (r > 0) {
            sent += (size_t)r;
            continue;
        }
        if (r == 0)
            break; /* in_fd's EOF */
        err = gh__io_retry(out_fd, GH_WRITE, timeout_ns, deadline);
        if (err)
            return err;
    }
    return (ssize_t)sent;
}
