/* clock.c — gh_now: the monotonic clock every deadline is measured on. */
#include <time.h>

#include "sched/clock.h"

int64_t gh_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * GH_SEC + ts.tv_nsec;
}
