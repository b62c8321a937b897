/*
 * clock.h — greenhub's one clock (gh_now: CLOCK_MONOTONIC in nanoseconds) and
 * the deadline every wait is computed from. Backends never read a clock.
 */
#ifndef GH_SCHED_CLOCK_H
#define GH_SCHED_CLOCK_H

#include <stdint.h>

#include "greenhub.h"

/* Deadline from a timeout: -1 forever (GH_FOREVER, or too far to represent). */
static inline int64_t gh__deadline(int64_t timeout_ns)
{
    if (timeout_ns == GH_FOREVER)
        return -1;
    int64_t now = gh_now();
    if (timeout_ns > INT64_MAX - now)
        return -1;
    return now + timeout_ns;
}

#endif /* GH_SCHED_CLOCK_H */
