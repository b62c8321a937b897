/*
 * timers.c — kombu's Timer on greenhub: call_at, call_after, call_repeatedly.
 *
 * A hub is an event loop with a timer heap: every time it is about to wait,
 * it waits only until the next timer is due (kombu's poll_timeout). Timer
 * callbacks run on the hub's loop and must not block. This demo schedules a
 * few of each kind, cancels one, lets a repeating timer stop itself, and
 * returns when gh_hub_run() finds nothing left to do (about 1.3 s).
 *
 *   ./timers
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "greenhub.h"

static int64_t start;
static gh_timer *ticker;
static gh_timer *doomed;

static double elapsed(void)
{
    return (double)(gh_now() - start) / (double)GH_SEC;
}

static void say(void *arg)
{
    printf("[%5.3f s] %s\n", elapsed(), (const char *)arg);
}

static void tick(void *arg)
{
    int *n = arg;
    ++*n;
    printf("[%5.3f s] call_repeatedly tick %d\n", elapsed(), *n);
    if (*n == 5) {
        /* Cancelling a timer from its own callback is fine. */
        int err = gh_timer_cancel(ticker);
        printf("[%5.3f s] call_repeatedly stopped itself (%s)\n", elapsed(), gh_strerror(err));
    }
}

static void cancel_doomed(void *arg)
{
    (void)arg;
    int err = gh_timer_cancel(doomed);
    printf("[%5.3f s] call_at fired; cancelled the 5 s timer before it fired (%s)\n", elapsed(),
           gh_strerror(err));
}

int main(int argc, char **argv)
{
    int rc = ex_args_parse(argc, argv,
                           "call_at, call_after and call_repeatedly on this thread's hub "
                           "(GREENHUB_HUB picks the backend).",
                           NULL, 0);
    if (rc >= 0)
        return rc; /* no options: --help, or a mistake */
    static int ticks;

    start = gh_now();
    printf("timers on the %s backend: call_at, call_after, call_repeatedly\n",
           gh_hub_backend(gh_get_hub()));

    /* kombu: hub.call_repeatedly(0.2, tick) */
    ticker = gh_call_repeatedly(200 * GH_MSEC, tick, &ticks);
    /* kombu: hub.call_at(eta, fn): an absolute time on the gh_now() clock */
    gh_timer_release(gh_call_at(start + 300 * GH_MSEC, cancel_doomed, NULL));
    /* kombu: hub.call_after(0.5, fn) */
    gh_timer_release(gh_call_after(500 * GH_MSEC, say, "call_after(0.5 s) fired"));
    gh_timer_release(gh_call_after(1300 * GH_MSEC, say, "call_after(1.3 s) fired, the last one"));
    /* Cancelled at 0.3 s by the call_at callback: never fires. */
    doomed = gh_call_after(5 * GH_SEC, say, "the 5 s timer fired (it should not have)");
    if (!ticker || !doomed) {
        perror("timers");
        return 1;
    }

    /* Run the loop until no timer is left. */
    int err = gh_hub_run();
    printf("[%5.3f s] done (%s)\n", elapsed(), gh_strerror(err));
    return err == 0 && gh_hub_close() == 0 ? 0 : 1;
}
