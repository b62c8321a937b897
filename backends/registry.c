/*
 * registry.c — the built-in backends by name, in the default order.
 *
 * The order is the one a hub tries when nothing is chosen: epoll, poll and
 * select are always usable; io_uring, libev and libevent follow (a hub asked
 * for one of them by name gets its init error if the system refuses it).
 *
 * The three optional backends can be left out of a build (no liburing, libev
 * or libevent to link): compile this file and leave out that backend's file
 * with -DGH_WITH_IO_URING=0, -DGH_WITH_LIBEV=0 or -DGH_WITH_LIBEVENT=0.
 * gh_backend_find then answers -ENOENT for it, like any unknown name.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "greenhub_backend.h"

#ifndef GH_WITH_IO_URING
#define GH_WITH_IO_URING 1
#endif
#ifndef GH_WITH_LIBEV
#define GH_WITH_LIBEV 1
#endif
#ifndef GH_WITH_LIBEVENT
#define GH_WITH_LIBEVENT 1
#endif

static const gh_backend_ops *const registry_list[] = {
    &gh_backend_epoll,
    &gh_backend_poll,
    &gh_backend_select,
#if GH_WITH_IO_URING
    &gh_backend_io_uring,
#endif
#if GH_WITH_LIBEV
    &gh_backend_libev,
#endif
#if GH_WITH_LIBEVENT
    &gh_backend_libevent,
#endif
    NULL,
};

const gh_backend_ops *gh_backend_find(const char *name)
{
    if (!name) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; registry_list[i]; i++)
        if (strcmp(registry_list[i]->name, name) == 0)
            return registry_list[i];
    errno = ENOENT;
    return NULL;
}

const gh_backend_ops *const *gh_backend_list(void)
{
    return registry_list;
}
