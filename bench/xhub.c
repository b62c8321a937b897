/*
 * xhub.c — //bench:xhub: what crossing hubs costs, beside gh_call_on, the
 * round trip a handoff plus its answer costs, in the same run.
 *
 * A driver task on hub 0 of a 2-hub runtime times, per operation, the
 * median of many single operations aimed at hub 1:
 *
 *   gh_call_on             hand fn to hub 1, wait green for its result
 *                          (the reference: one message there, one back);
 *   spawn_task_on + join   gh_spawn_task_on(hub 1), gh_join, release;
 *   gh_migrate there+back  the driver moves itself to hub 1 and back;
 *   gh_task_move           another task, asleep, moved between the hubs;
 *   gh_close, remote       a task of hub 1 waits to read a pipe; the
 *                          driver's gh_close must reach hub 1, which wakes
 *                          its waiter with -EBADF and forgets the fd, and
 *                          come back before the fd is closed;
 *   gh_close, local        the same with the waiter on the driver's hub.
 *
 *   ./bazelw run //bench:xhub
 */
#include <semaphore.h>
#include <stdatomic.h>
#include <unistd.h>

#include "bench/bench.h"
#include "greenhub.h"

#define N_CALL  5000
#define N_CLOSE 1000

static gh_hub *other;
static sem_t done;
static double call_ns[N_CALL], join_ns[N_CALL], migrate_ns[N_CALL], move_ns[N_CALL];
static double close_remote_ns[N_CLOSE], close_local_ns[N_CLOSE];

static void *noop_call(void *arg)
{
    return arg;
}

static void noop_task(void *arg)
{
    (void)arg;
}

typedef struct waiter {
    int fd;
    atomic_int parked;
} waiter;

static void waiter_task(void *arg)
{
    waiter *w = arg;
    char c;
    atomic_store(&w->parked, 1);
    (void)gh_read(w->fd, &c, 1, 10 * GH_SEC);
}

/* One gh_close of a pipe a task of @hub waits to read; returns its cost in ns. */
static double close_once(gh_hub *hub)
{
    int p[2];
    BENCH_CHECK(pipe(p) == 0, "pipe");
    waiter w = {.fd = p[0]};
    gh_task *t = gh_spawn_task_on(hub, waiter_task, &w);
    BENCH_CHECK(t != NULL, "gh_spawn_task_on");
    while (!atomic_load(&w.parked))
        gh_sleep(0);
    gh_sleep(20 * GH_USEC); /* it is parked in its read now */
    int64_t t0 = gh_now();
    int err = gh_close(p[0]);
    int64_t t1 = gh_now();
    BENCH_CHECK(err == 0, "gh_close: %s", gh_strerror(err));
    BENCH_CHECK(gh_join(t, 10 * GH_SEC) == 0, "join");
    gh_task_release(t);
    close(p[1]);
    return (double)(t1 - t0);
}

static void sleep_forever(void *arg)
{
    (void)arg;
    gh_sleep(GH_FOREVER);
}

static void driver(void *arg)
{
    (void)arg;
    gh_hub *self = gh_get_hub();
    for (int i = 0; i < N_CALL; i++) {
        void *res;
        int64_t t0 = gh_now();
        int err = gh_call_on(other, noop_call, NULL, &res, 10 * GH_SEC);
        int64_t t1 = gh_now();
        BENCH_CHECK(err == 0, "gh_call_on: %s", gh_strerror(err));
        gh_task *t = gh_spawn_task_on(other, noop_task, NULL);
        BENCH_CHECK(t != NULL, "gh_spawn_task_on");
        err = gh_join(t, 10 * GH_SEC);
        gh_task_release(t);
        int64_t t2 = gh_now();
        BENCH_CHECK(err == 0, "gh_join: %s", gh_strerror(err));
        call_ns[i] = (double)(t1 - t0);
        join_ns[i] = (double)(t2 - t1);
    }
    /* There and back: two moves, like gh_call_on's two messages. */
    for (int i = 0; i < N_CALL; i++) {
        int64_t t0 = gh_now();
        int err = gh_migrate(other);
        if (err == 0)
            err = gh_migrate(self);
        int64_t t1 = gh_now();
        BENCH_CHECK(err == 0, "gh_migrate: %s", gh_strerror(err));
        migrate_ns[i] = (double)(t1 - t0);
    }
    /* Another task, asleep: moved between the two hubs, from here. */
    gh_task *napper = gh_spawn_task_on(other, sleep_forever, NULL);
    BENCH_CHECK(napper != NULL, "gh_spawn_task_on");
    gh_sleep(GH_MSEC);
    for (int i = 0; i < N_CALL; i++) {
        int64_t t0 = gh_now();
        int err = gh_task_move(napper, i % 2 ? other : self);
        int64_t t1 = gh_now();
        BENCH_CHECK(err == 0, "gh_task_move: %s", gh_strerror(err));
        move_ns[i] = (double)(t1 - t0);
    }
    gh_kill(napper);
    gh_join(napper, GH_FOREVER);
    gh_task_release(napper);
    for (int i = 0; i < N_CLOSE; i++) {
        close_remote_ns[i] = close_once(other);
        close_local_ns[i] = close_once(self);
    }
    sem_post(&done);
}

int main(void)
{
    int64_t begin = gh_now();
    gh_runtime *rt;
    gh_runtime_config cfg = {.threads = 2};
    int err = gh_runtime_start(&rt, &cfg);
    BENCH_CHECK(err == 0, "gh_runtime_start: %s", gh_strerror(err));
    other = gh_runtime_hub(rt, 1);
    sem_init(&done, 0, 0);
    printf("greenhub //bench:xhub  (2 runtime hubs on %s; medians of %d calls and %d closes, "
           "driver on hub 0, target hub 1)\n",
           gh_hub_backend(other), N_CALL, N_CLOSE);
    BENCH_CHECK(gh_spawn_on(gh_runtime_hub(rt, 0), driver, NULL) == 0, "gh_spawn_on");
    sem_wait(&done);

    double call = bench_median(call_ns, N_CALL);
    double join = bench_median(join_ns, N_CALL);
    double migrate = bench_median(migrate_ns, N_CALL);
    double move = bench_median(move_ns, N_CALL);
    double remote = bench_median(close_remote_ns, N_CLOSE);
    double local = bench_median(close_local_ns, N_CLOSE);
    bench_table_header("across hubs: one operation, round trip to hub 1 and back");
    bench_row("gh_spawn_task_on + gh_join + release", join, "ns", "gh_call_on round trip", call,
              "ns", join / call, "", "");
    bench_row("gh_migrate to hub 1 and back", migrate, "ns", "gh_call_on round trip", call, "ns",
              migrate / call, "", "");
    bench_row("gh_task_move of a sleeping task", move, "ns", "gh_call_on round trip", call, "ns",
              move / call, "", "");
    bench_row("gh_close, waiter on another hub", remote, "ns", "gh_call_on round trip", call, "ns",
              remote / call, "", "");
    bench_row("gh_close, waiter on another hub", remote, "ns", "gh_close, waiter on own hub", local,
              "ns", remote / local, "", "");
    printf("\nratio = greenhub / reference (lower is better). 2 cores: each round trip wakes the "
           "other hub's thread.\ndone in %.1f s\n",
           (double)(gh_now() - begin) / 1e9);
    gh_runtime_stop(rt, 5 * GH_SEC);
    gh_runtime_destroy(rt);
    return 0;
}
