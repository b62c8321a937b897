/*
 * unix.c — local stream sockets: gh_unix_listen and gh_unix_connect.
 *
 * A path that starts with '@' names a Linux abstract socket (no file; gone
 * when the last fd closes); any other is a filesystem path, which listen
 * creates and the caller unlinks. A full listener's backlog makes a
 * non-blocking AF_UNIX connect fail with EAGAIN rather than EINPROGRESS, and
 * no poll event says when room appears: the connect is retried after short
 * green sleeps (1 ms, doubling to 50 ms) until its deadline.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "io/io.h"

/* @path as a sockaddr_un: -EINVAL (NULL, empty), -ENAMETOOLONG. */
static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    if (!path || !path[0] || (path[0] == '@' && !path[1]))
        return -EINVAL;
    size_t n = strlen(path);
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    if (path[0] == '@') {
        sun->sun_path[0] = 0; /* abstract: the name is the bytes after the NUL, unterminated */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

int gh_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sun;
    socklen_t len;
    int err = unix_addr(path, &sun, &len);
    if (err)
        return err;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sun, len) != 0 || listen(fd, backlog) != 0) {
        err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

int gh_unix_connect(const char *path, int64_t timeout_ns)
{
    struct sockaddr_un sun;
    socklen_t len;
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    int err = unix_addr(path, &sun, &len);
    if (err)
        return err;
    gh_hub *h = gh__hub();
    if (!h)
        return -errno;
    err = gh__can_block(&h->sched);
    if (err)
        return err;
    int64_t deadline = gh__deadline(timeout_ns);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int64_t pause = GH_MSEC;
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sun, len) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno == EINPROGRESS) { /* not on Linux today, but allowed by POSIX */
            err = gh__fd_wait(fd, GH_WRITE, deadline);
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0)
                err = -soerr;
            if (err)
                goto fail;
            break;
        }
        if (errno != EAGAIN) {
            err = -errno;
            goto fail;
        }
        /* The backlog is full: try again a little later, within the deadline. */
        int64_t now = gh_now();
        if (timeout_ns == 0 || (deadline >= 0 && now >= deadline)) {
            err = -ETIMEDOUT;
            goto fail;
        }
        int64_t nap = deadline >= 0 && deadline - now < pause ? deadline - now : pause;
        err = gh_sleep(nap);
        if (err)
            goto fail;
        if (pause < 50 * GH_MSEC)
            pause *= 2;
    }
    h = gh__tls_hub; /* after a wait, maybe another hub's (a moved task) */
    if (gh__fd_slot_reserve(h, fd) == 0)
        h->fds[fd].nonblock_known = true;
    return fd;

fail:
    gh_close(fd);
    return err;
}
