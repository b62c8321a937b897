/* error.c — names for the negative errno values greenhub returns. */
#include <errno.h>
#include <string.h>

#include "greenhub.h"

const char *gh_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -ETIMEDOUT:
        return "timed out (ETIMEDOUT)";
    case -ECANCELED:
        return "task was killed (ECANCELED)";
    case -EBADF:
        return "fd closed or invalid (EBADF)";
    case -ENOENT:
        return "no such backend, or timer already fired (ENOENT)";
    case -EBUSY:
        return "busy: another task waits on it, or the hub still holds work (EBUSY)";
    case -ESHUTDOWN:
        return "hub is stopping and refuses new work (ESHUTDOWN)";
    case -EINVAL:
        return "invalid argument (EINVAL)";
    case -EDEADLK:
        return "would wait forever: nothing can wake the caller (EDEADLK)";
    case -EPERM:
        return "not allowed here: blocking call from a timer callback, or wrong task (EPERM)";
    case -EAGAIN:
        return "queue full, try again (EAGAIN)";
    case -ENOMEM:
        return "out of memory (ENOMEM)";
    case -ENOSYS:
        return "not supported by this kernel (ENOSYS)";
    case -EPIPE:
        return "closed: peer gone, or channel closed (EPIPE)";
    case -ECONNRESET:
        return "connection reset by peer (ECONNRESET)";
    case -EMSGSIZE:
        return "line or message longer than the limit (EMSGSIZE)";
    case -EOVERFLOW:
        return "semaphore released beyond its bound (EOVERFLOW)";
    case -EALREADY:
        return "event already set (EALREADY)";
    default:
        break;
    }
    if (err < 0) {
        /* strerror's table is static and read-only in glibc: safe from any thread. */
        return strerror(-err);
    }
    return "not an error code";
}
