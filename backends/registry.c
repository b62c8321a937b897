/*
 * registry.c — the built-in backends by name, in the default order.
 *
 * The order is the one a hub tries when nothing is chosen: epoll, poll and
 * select are always usable; io_uring, libev and libevent follow (a hub asked
 * for one of them by name gets its init error if the system refuses it).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "greenhub_backend.h"

static const gh_backend_ops *const registry_list[] = {
    &gh_backend_epoll,
    &gh_backend_poll,
    &gh_backend_select,
    &gh_backend_io_uring,
    &gh_backend_libev,
    &gh_backend_libevent,
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
