/*
 * dgram.c — green datagram calls: gh_udp_bind, gh_recvfrom, gh_sendto.
 *
 * io.c's pattern: try the syscall, wait on EAGAIN until the fd is ready or
 * the call's deadline passes, try again. A datagram read is one whole
 * message whatever its size, so the stream heuristics of gh_read (a short
 * read means drained) do not apply: every call tries first.
 */
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/io.h"

int gh_udp_bind(const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = gh__sock_addr(host, port, true, &ss, &len);
    if (err)
        return err;
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

ssize_t gh_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                    socklen_t *fromlen, int64_t timeout_ns)
{
    if ((!buf && n) || (from && !fromlen))
        return -EINVAL;
    gh_hub *h;
    int err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    socklen_t cap = fromlen ? *fromlen : 0;
    for (;;) {
        if (fromlen)
            *fromlen = cap; /* recvfrom overwrites it, even on EAGAIN */
        ssize_t r = recvfrom(fd, buf, n, flags, from, fromlen);
        if (r >= 0)
            return r;
        err = gh__io_retry(fd, GH_READ, timeout_ns, deadline);
        if (err)
            return err;
    }
}

ssize_t gh_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
                  socklen_t tolen, int64_t timeout_ns)
{
    if ((!buf && n) || (!to && tolen))
        return -EINVAL;
    gh_hub *h;
    int err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    for (;;) {
        ssize_t r = sendto(fd, buf, n, flags | MSG_NOSIGNAL, to, tolen);
        if (r >= 0)
            return r;
        err = gh__io_retry(fd, GH_WRITE, timeout_ns, deadline);
        if (err)
            return err;
    }
}
