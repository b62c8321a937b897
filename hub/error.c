/* error.c — names for the negative errno values greenhub returns. */
#include <errno.h>
#include <string.h>

#include "greenhub.h"

const char *gh_strerror(int err)
{
    /*
     * What each error means in any call, with greenhub's most common cause
     * after a semicolon where one helps; each call's own doc says what it
     * means there.
     */
    switch (err) {
    case 0:
        return "success";
    case -ETIMEDOUT:
        return "timed out (ETIMEDOUT)";
    case -ECANCELED:
        return "canceled: the calling task was killed (ECANCELED)";
    case -EBADF:
        return "bad file descriptor: closed, or never open (EBADF)";
    case -ENOENT:
        return "no such entry (ENOENT)";
    case -EBUSY:
        return "busy: in use by another task, or still holding work (EBUSY)";
    case -ESHUTDOWN:
        return "shut down: the hub is stopping and refuses new work (ESHUTDOWN)";
    case -EINVAL:
        return "invalid argument (EINVAL)";
    case -EDEADLK:
        return "would wait forever: nothing can wake the caller (EDEADLK)";
    case -EPERM:
        return "operation not permitted here; a blocking call from a callback (EPERM)";
    case -EAGAIN:
        return "resource temporarily unavailable; try again (EAGAIN)";
    case -ENOMEM:
        return "out of memory (ENOMEM)";
    case -ENOSYS:
        return "not supported by this system or kernel (ENOSYS)";
    case -EPIPE:
        return "broken pipe: the other end is closed (EPIPE)";
    case -ECONNRESET:
        return "connection reset by peer (ECONNRESET)";
    case -EMSGSIZE:
        return "message too long for the limit (EMSGSIZE)";
    case -EOVERFLOW:
        return "value too large: beyond a bound (EOVERFLOW)";
    case -EALREADY:
        return "already done: it happened before (EALREADY)";
    case -ENOSPC:
        return "no space left: the buffer is too small (ENOSPC)";
    default:
        break;
    }
    if (err < 0) {
        /* strerror's table is static and read-only in glibc: safe from any thread. */
        return strerror(-err);
    }
    return "not an error code";
}
