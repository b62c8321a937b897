/*
 * test_util.h — helpers the cmocka tests share. Include after <cmocka.h>
 * and "greenhub.h".
 */
#ifndef GH_TESTS_TEST_UTIL_H
#define GH_TESTS_TEST_UTIL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "greenhub_backend.h"

/* Every test ends with this: the calling thread's hub (if any) closes clean. */
static inline void end_clean(void)
{
    assert_int_equal(gh_hub_close(), 0);
}

/*
 * The calling thread's hub hands socket calls to its backend (a completion
 * backend, unless GREENHUB_COMPLETION=0 says to wait for readiness).
 */
static inline bool hub_uses_ops(void)
{
    const gh_backend_ops *ops = gh_backend_find(gh_hub_backend(gh_get_hub()));
    const char *env = getenv("GREENHUB_COMPLETION");
    return ops && (ops->caps & GH_BACKEND_COMPLETION) && !(env && strcmp(env, "0") == 0);
}

/* Sleep the thread (not green): for plain threads and for making a hub wait. */
static inline void sleep_ns(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / GH_SEC), (long)(ns % GH_SEC)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Poll (from a plain thread) until *v >= want or @timeout_ns passes. */
static inline bool wait_at_least_int(atomic_int *v, int want, int64_t timeout_ns)
{
    int64_t end = gh_now() + timeout_ns;
    while (atomic_load(v) < want) {
        if (gh_now() > end)
            return false;
        sleep_ns(GH_MSEC);
    }
    return true;
}

static inline bool wait_at_least_ulong(atomic_ulong *v, unsigned long want, int64_t timeout_ns)
{
    int64_t end = gh_now() + timeout_ns;
    while (atomic_load(v) < want) {
        if (gh_now() > end)
            return false;
        sleep_ns(GH_MSEC);
    }
    return true;
}

#define wait_at_least(v, want, timeout_ns)                                                         \
    _Generic((v), atomic_int *                                                                     \
             : wait_at_least_int, atomic_ulong *                                                   \
             : wait_at_least_ulong)((v), (want), (timeout_ns))

#endif /* GH_TESTS_TEST_UTIL_H */
