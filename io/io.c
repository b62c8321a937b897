/*
 * io.c — green fd operations: read, write, listen, accept, connect, and the
 * steps every green fd call shares (io.h).
 *
 * Each call tries the syscall first and parks the task only on EAGAIN
 * (gh__fd_wait in hub/fd.c), as eventlet's green sockets do. At most one
 * task waits per direction per fd; interest stays with the backend after a
 * wake (see gh__fd_ready in hub/fd.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

/* gh_read and gh_write_all put an fd into O_NONBLOCK the first time they see it. */
static int fd_make_nonblocking(gh_hub *h, int fd)
{
    int err = gh__fd_slot_reserve(h, fd);
    if (err)
        return err;
    if (h->fds[fd].nonblock_known)
        return 0;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    h->fds[fd].nonblock_known = true;
    return 0;
}

int gh__io_enter(int fd, int64_t timeout_ns, gh_hub **hp)
{
    if (fd < 0)
        return -EBADF;
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    err = fd_make_nonblocking(h, fd);
    if (err)
        return err;
    *hp = h;
    return 0;
}

int gh__io_retry(int fd, int events, int64_t timeout_ns, int64_t deadline)
{
    int e = errno;
    if (e == EINTR)
        return 0;
    if (e != EAGAIN && e != EWOULDBLOCK)
        return -e;
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    return gh__fd_wait(fd, events, deadline);
}

/*
 * Read-first costs a syscall that fails with EAGAIN each time a task reads
 * faster than its peer writes (request/response: every round trip). But a
 * read that returned less than it asked, from a stream socket or a pipe,
 * emptied the kernel's buffer at that moment (Tokio reasons the same on
 * epoll), so the next read of that fd waits for readability first.
 * Readiness is level-triggered on every backend, so waiting first is always
 * correct: data that came meanwhile reports the fd ready at the next poll.
 * A poll that finds the fd readable while no task waits on it clears the
 * mark (gh__fd_ready), so data that came while its task was busy is read at
 * once, not after a re-registration and another poll.
 * Datagram sockets and other fds keep read-first: one short read says
 * nothing about the next datagram. So does a backend that declares
 * GH_BACKEND_READ_FIRST, io_uring (hub->read_prewait):
 * its one-shot polls make each wait cost a re-arm in the ring, and echo
 * round trips fell from 0.85x to 0.55x a raw epoll loop with the wait
 * first, where epoll, poll, select, libev and libevent rose to 0.97-1.0x.
 */
void gh__io_read_done(int fd, ssize_t got, size_t asked)
{
    gh__fdslot *s = &gh__tls_hub->fds[fd];
    if (got <= 0 || (size_t)got >= asked) {
        s->drained = false; /* EOF stays EOF; a full read may have left more */
        return;
    }
    uint8_t kind = gh__fd_kind(gh__tls_hub, fd);
    s->drained = kind == GH__FD_STREAM || kind == GH__FD_PIPE;
}

unsigned gh__io_read_hints(int fd)
{
    gh__fdslot *s = &gh__tls_hub->fds[fd];
    if (!s->drained)
        return 0;
    s->drained = false;
    return GH_OP_POLL_FIRST;
}

int gh__io_read_prewait(int fd, int64_t timeout_ns, int64_t deadline)
{
    gh_hub *h = gh__tls_hub;
    gh__fdslot *s = &h->fds[fd];
    if (!s->drained || timeout_ns == 0 || !h->read_prewait)
        return 0;
    s->drained = false;
    int err = gh__fd_wait(fd, GH_READ, deadline);
    /*
     * Killed, or the fd closed under the wait: that is the answer. Anything
     * else (the deadline passed, another reader waits, the backend cannot
     * hold the fd) is for the read below to meet as read-first would.
     */
    return err == -ECANCELED || err == -EBADF ? err : 0;
}

ssize_t gh_read(int fd, void *buf, size_t n, int64_t timeout_ns)
{
    gh_hub *h;
    if (!buf && n)
        return -EINVAL;
    int err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    while (gh__op_usable(gh__tls_hub, fd, timeout_ns, deadline)) {
        gh__op op = {.bop = {.code = GH_OP_RECV, .fd = fd, .buf = buf, .len = n}};
        op.bop.hints = gh__io_read_hints(fd);
        int r = gh__op_run(&op, GH_READ, deadline);
        if (r >= 0)
            gh__io_read_done(fd, r, n);
        if (r != GH__OP_RETRY)
            return r;
    }
    err = gh__io_read_prewait(fd, timeout_ns, deadline);
    if (err)
        return err;
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0) {
            gh__io_read_done(fd, r, n);
            return r;
        }
        err = gh__io_retry(fd, GH_READ, timeout_ns, deadline);
        if (err)
            return err;
    }
}

static ssize_t fd_write_some(int fd, const void *buf, size_t n, bool *is_socket)
{
    if (*is_socket) {
        ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0 || errno != ENOTSOCK)
            return r;
        *is_socket = false;
    }
    return write(fd, buf, n);
}

ssize_t gh_write_all(int fd, const void *buf, size_t n, int64_t timeout_ns)
{
    gh_hub *h;
    if (!buf && n)
        return -EINVAL;
    int err = gh__io_enter(fd, timeout_ns, &h);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    const char *p = buf;
    size_t left = n;
    while (left > 0 && gh__op_usable(gh__tls_hub, fd, timeout_ns, deadline)) {
        gh__op op = {.bop = {.code = GH_OP_SEND,
                             .fd = fd,
                             .flags = MSG_NOSIGNAL,
                             .buf = (void *)p,
                             .len = left}};
        int r = gh__op_run(&op, GH_WRITE, deadline);
        if (r == GH__OP_RETRY)
            continue;
        if (r < 0)
            return r;
        p += r;
        left -= (size_t)r;
    }
    bool is_socket = true; /* send(MSG_NOSIGNAL) so a closed peer is -EPIPE, not SIGPIPE */
    while (left > 0) {
        ssize_t r = fd_write_some(fd, p, left, &is_socket);
        if (r >= 0) {
            p += r;
            left -= (size_t)r;
            continue;
        }
        err = gh__io_retry(fd, GH_WRITE, timeout_ns, deadline);
        if (err)
            return err;
    }
    return (ssize_t)n;
}

/* ---------------------------------------------------------------- sockets */

/*
 * Parse an IP literal ("127.0.0.1", "::1", "[::1]", "fe80::1%eth0"), "localhost",
 * or NULL/"" (any IPv4 address when @passive, else 127.0.0.1) into @ss.
 * Never blocks: names other than "localhost" are -EINVAL here (gh_connect
 * sends them to the resolver threads).
 */
int gh__sock_addr(const char *host, int port, bool passive, struct sockaddr_storage *ss,
                  socklen_t *len)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    memset(ss, 0, sizeof *ss);
    if (!host || !*host)
        host = passive ? "0.0.0.0" : "127.0.0.1";
    else if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    char tmp[INET6_ADDRSTRLEN + IF_NAMESIZE + 4];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        if (hl - 2 >= sizeof tmp)
            return -EINVAL;
        memcpy(tmp, host + 1, hl - 2);
        tmp[hl - 2] = 0;
        host = tmp;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *len = sizeof *in4;
        return 0;
    }
    const char *scope = strchr(host, '%');
    if (scope) {
        /* A scoped link-local literal: the address before '%', the interface after. */
        size_t al = (size_t)(scope - host);
        if (al >= INET6_ADDRSTRLEN)
            return -EINVAL;
        char addr[INET6_ADDRSTRLEN];
        memcpy(addr, host, al);
        addr[al] = 0;
        unsigned idx = if_nametoindex(scope + 1);
        if (!idx) {
            char *end;
            unsigned long v = strtoul(scope + 1, &end, 10);
            if (!scope[1] || *end || v == 0 || v > UINT32_MAX)
                return -EINVAL;
            idx = (unsigned)v;
        }
        if (inet_pton(AF_INET6, addr, &in6->sin6_addr) != 1)
            return -EINVAL;
        in6->sin6_scope_id = idx;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
        return -EINVAL;
    }
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    *len = sizeof *in6;
    return 0;
}

int gh_listen_ex(const char *host, int port, int backlog, int reuseport)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = gh__sock_addr(host, port, true, &ss, &len);
    if (err)
        return err;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    /* "::" takes IPv4 too, whatever net.ipv6.bindv6only says. */
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int gh_listen(const char *host, int port, int backlog)
{
    return gh_listen_ex(host, port, backlog, 0);
}

int gh_accept(int lfd, int64_t timeout_ns)
{
    if (lfd < 0)
        return -EBADF;
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    for (;;) {
        int fd;
        if (gh__op_usable(gh__tls_hub, lfd, timeout_ns, deadline)) {
            gh__op op = {
                .bop = {.code = GH_OP_ACCEPT, .fd = lfd, .flags = SOCK_NONBLOCK | SOCK_CLOEXEC}};
            fd = gh__op_run(&op, GH_READ, deadline);
            if (fd == GH__OP_RETRY || fd == -ECONNABORTED || fd == -EINTR)
                continue;
            if (fd < 0)
                return fd;
        } else {
            fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        }
        if (fd >= 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            h = gh__tls_hub; /* after a wait, maybe another hub's (a moved task) */
            if (gh__fd_slot_reserve(h, fd) == 0)
                h->fds[fd].nonblock_known = true;
            return fd;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (timeout_ns == 0)
            return -ETIMEDOUT;
        err = gh__fd_wait(lfd, GH_READ, deadline);
        if (err)
            return err;
    }
}

/* Connect to one address, with an absolute @deadline (0 timeout: @poll_only). */
static int connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline, bool poll_only)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    gh_hub *h = gh__tls_hub;
    while (!poll_only && gh__op_usable(h, fd, -1, deadline)) {
        gh__op op = {.bop = {.code = GH_OP_CONNECT, .fd = fd, .buf = (void *)sa, .len = len}};
        int err = gh__op_run(&op, GH_WRITE, deadline);
        h = gh__tls_hub; /* a moved task goes on on its new hub */
        if (err == GH__OP_RETRY)
            continue; /* the handshake goes on: connect() below says EALREADY or EISCONN */
        if (err == -EINPROGRESS || err == -EALREADY)
            break; /* the kernel would not wait for it: readiness does */
        if (err) {
            gh_close(fd);
            return err;
        }
        if (gh__fd_slot_reserve(h, fd) == 0)
            h->fds[fd].nonblock_known = true;
        return fd;
    }
    /* Again after a cancelled op: EALREADY while it is under way, EISCONN once done. */
    if (connect(fd, sa, len) != 0 && errno != EISCONN) {
        int err;
        if (errno != EINPROGRESS && errno != EALREADY) {
            err = -errno;
            close(fd);
            return err;
        }
        err = poll_only ? -ETIMEDOUT : gh__fd_wait(fd, GH_WRITE, deadline);
        if (!err) {
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
                soerr = errno;
            err = -soerr;
        }
        if (err) {
            gh_close(fd);
            return err;
        }
    }
    h = gh__tls_hub; /* after a wait, maybe another hub's (a moved task) */
    if (gh__fd_slot_reserve(h, fd) == 0)
        h->fds[fd].nonblock_known = true;
    return fd;
}

int gh_connect(const char *host, int port, int64_t timeout_ns)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (timeout_ns < GH_FOREVER || port <= 0 || port > 65535)
        return -EINVAL;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    int err = gh__can_block(&h->sched);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    if (gh__sock_addr(host, port, false, &ss, &len) == 0)
        return connect_addr((struct sockaddr *)&ss, len, deadline, timeout_ns == 0);

    /* A host name: resolve on a helper thread, then try each address in turn. */
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    err = gh_getaddrinfo(host, service, &hints, &res, timeout_ns);
    if (err)
        return err;
    err = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        int64_t now = gh_now();
        bool expired = deadline >= 0 && deadline <= now;
        int fd = connect_addr(ai->ai_addr, ai->ai_addrlen, deadline, expired);
        if (fd >= 0) {
            freeaddrinfo(res);
            return fd;
        }
        err = fd;
        if (err == -ECANCELED || err == -ETIMEDOUT || err == -EPERM)
            break;
    }
    freeaddrinfo(res);
    return err;
}
