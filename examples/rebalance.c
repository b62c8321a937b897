/*
 * rebalance.c — a multi-core echo server that evens out skewed load by
 * moving connections between hubs.
 *
 * One listener, on hub 0, accepts every connection: left alone, hub 0 serves
 * them all while the other cores idle (a long-lived keep-alive client, a
 * single acceptor, a hash that keeps landing on one core...). A balancer task
 * reads every hub's busy time each 100 ms (gh_hub_get_stats) and, when the
 * busiest hub is clearly busier than the idlest, tells half the difference
 * in connections to move. A connection moves itself, between two requests,
 * with gh_migrate: its task, stack and fd go on on the new hub's thread.
 *
 *   ./bazelw run //examples:rebalance -- --port 6000            serve until Ctrl-C
 *   ./bazelw run //examples:rebalance -- --clients 16 --seconds 2
 *        drive itself with 16 clients for 2 s and print where the connections
 *        ended up (exit 0 if every hub serves some)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"

#define MAX_HUBS  64
#define MAX_CONNS 4096
#define WORK_US   20 /* CPU per request: a server that does some work */

typedef struct conn {
    int fd;
    _Atomic(gh_hub *) where; /* the hub it runs on (or last ran on) */
    atomic_bool closed;
    _Atomic(gh_hub *) move_to; /* set by the balancer; the connection moves itself */
} conn;

static gh_hub *hubs[MAX_HUBS];
static int nhubs;
static conn *conns[MAX_CONNS];
static atomic_int nconns, moves, stopping;

static void busy_work(void)
{
    int64_t end = gh_now() + WORK_US * GH_USEC;
    while (gh_now() < end) {
    }
}

static void conn_task(void *arg)
{
    conn *c = arg;
    char buf[4096];
    gh_task_set_name(NULL, "conn");
    for (;;) {
        ssize_t n = gh_read(c->fd, buf, sizeof buf, 60 * GH_SEC);
        if (n <= 0)
            break;
        busy_work();
        if (gh_write_all(c->fd, buf, (size_t)n, 10 * GH_SEC) < 0)
            break;
        /* Between two requests: the balancer may have asked us to move. */
        gh_hub *to = atomic_exchange(&c->move_to, NULL);
        if (to && gh_migrate(to) == 0) {
            atomic_store(&c->where, to);
            atomic_fetch_add(&moves, 1);
        }
    }
    gh_close(c->fd);
    atomic_store(&c->closed, true);
}

static void acceptor(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    gh_task_set_name(NULL, "acceptor");
    while (!atomic_load(&stopping)) {
        int fd = gh_accept(lfd, 100 * GH_MSEC);
        if (fd == -ETIMEDOUT)
            continue;
        if (fd < 0)
            break;
        int k = atomic_load(&nconns);
        conn *c = k < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            gh_close(fd);
            continue;
        }
        c->fd = fd;
        atomic_store(&c->where, gh_get_hub());
        conns[k] = c;
        atomic_store(&nconns, k + 1);
        if (gh_spawn_n(conn_task, c) != 0)
            gh_close(fd);
    }
    gh_close(lfd);
}

/* Each 100 ms: move half the difference in connections from the busiest hub to the idlest. */
static void balancer(void *arg)
{
    (void)arg;
    uint64_t last_busy[MAX_HUBS] = {0};
    int64_t last = gh_now();
    gh_task_set_name(NULL, "balancer");
    while (!atomic_load(&stopping) && gh_sleep(100 * GH_MSEC) == 0) {
        int64_t now = gh_now();
        double share[MAX_HUBS];
        int count[MAX_HUBS] = {0};
        for (int i = 0; i < nhubs; i++) {
            gh_hub_stats st;
            gh_hub_get_stats(hubs[i], &st);
            share[i] = (double)(st.busy_ns - last_busy[i]) / (double)(now - last);
            last_busy[i] = st.busy_ns;
        }
        last = now;
        int n = atomic_load(&nconns);
        for (int k = 0; k < n; k++)
            for (int i = 0; i < nhubs; i++)
                count[i] +=
                    !atomic_load(&conns[k]->closed) && atomic_load(&conns[k]->where) == hubs[i];
        int hi = 0, lo = 0;
        for (int i = 1; i < nhubs; i++) {
            hi = share[i] > share[hi] ? i : hi;
            lo = share[i] < share[lo] ? i : lo;
        }
        int excess = (count[hi] - count[lo]) / 2;
        if (hi == lo || share[hi] - share[lo] < 0.15 || excess < 1)
            continue; /* even enough: moving costs a round trip between hubs */
        for (int k = 0; k < n && excess > 0; k++) {
            gh_hub *none = NULL;
            if (!atomic_load(&conns[k]->closed) && atomic_load(&conns[k]->where) == hubs[hi] &&
                atomic_compare_exchange_strong(&conns[k]->move_to, &none, hubs[lo]))
                excess--;
        }
    }
}

/* --clients: tasks on a runtime of their own, each a client sending and checking echoes. */
static int port;
static atomic_long round_trips, failures;

static void client_task(void *arg)
{
    int64_t end = *(int64_t *)arg;
    int fd = gh_connect("127.0.0.1", port, 5 * GH_SEC);
    if (fd < 0) {
        atomic_fetch_add(&failures, 1);
        return;
    }
    char out[64] = "rebalance: a request of 64 bytes, echoed back by the server....", in[64];
    while (gh_now() < end) {
        if (gh_write_all(fd, out, sizeof out, 5 * GH_SEC) < 0)
            break;
        size_t got = 0;
        while (got < sizeof in) {
            ssize_t n = gh_read(fd, in + got, sizeof in - got, 5 * GH_SEC);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got != sizeof in || memcmp(in, out, sizeof in) != 0) {
            atomic_fetch_add(&failures, 1);
            break;
        }
        atomic_fetch_add(&round_trips, 1);
    }
    gh_close(fd);
}

int main(int argc, char **argv)
{
    long threads = 2, want_port = 6000, clients = 0, seconds = 0;
    const ex_opt opts[] = {
        {"--threads", "N", "hubs, one thread each", EX_LONG, &threads, 2, MAX_HUBS},
        {"--port", "P", "port to listen on (0: any free one)", EX_LONG, &want_port, 0, 65535},
        {"--clients", "C", "drive it with C clients of its own, then exit", EX_LONG, &clients, 1,
         1000},
        {"--seconds", "S", "how long those clients run (default 2)", EX_LONG, &seconds, 1, 3600},
    };
    int rc = ex_args_parse(argc, argv,
                           "A multi-core echo server whose balancer moves connections from the "
                           "busiest hub to the idlest.",
                           opts, EX_COUNT(opts));
    if (rc >= 0)
        return rc;
    if (clients && !seconds)
        seconds = 2;

    gh_runtime *rt;
    gh_runtime_config cfg = {.threads = (int)threads};
    int err = gh_runtime_start(&rt, &cfg);
    if (err) {
        fprintf(stderr, "runtime: %s\n", gh_strerror(err));
        return 1;
    }
    nhubs = (int)threads;
    for (int i = 0; i < nhubs; i++)
        hubs[i] = gh_runtime_hub(rt, i);
    int lfd = gh_listen("127.0.0.1", clients ? 0 : (int)want_port, 1024);
    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", gh_strerror(lfd));
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    gh_spawn_on(hubs[0], acceptor, (void *)(intptr_t)lfd); /* every connection lands on hub 0 */
    gh_spawn_on(hubs[nhubs - 1], balancer, NULL);
    printf("rebalance: echo on 127.0.0.1:%d, %d hubs, one listener on hub 0\n", port, nhubs);
    fflush(stdout);

    if (clients) {
        gh_runtime *crt;
        gh_runtime_config ccfg = {.threads = 1};
        if ((err = gh_runtime_start(&crt, &ccfg)) != 0) {
            fprintf(stderr, "client runtime: %s\n", gh_strerror(err));
            return 1;
        }
        int64_t end = gh_now() + seconds * GH_SEC;
        for (long i = 0; i < clients; i++)
            gh_spawn_on(gh_runtime_hub(crt, 0), client_task, &end);
        gh_runtime_stop(crt, (seconds + 10) * GH_SEC);
        gh_runtime_destroy(crt);
    } else {
        gh_signal_wait(SIGINT, GH_FOREVER); /* this thread waits for Ctrl-C; the hubs serve */
    }
    atomic_store(&stopping, 1);

    int on[MAX_HUBS] = {0}, spread = 1;
    for (int k = 0; k < atomic_load(&nconns); k++)
        for (int i = 0; i < nhubs; i++)
            on[i] += atomic_load(&conns[k]->where) == hubs[i];
    printf("%ld round trips, %ld failures, %d moves; connections served per hub at the end:",
           atomic_load(&round_trips), atomic_load(&failures), atomic_load(&moves));
    for (int i = 0; i < nhubs; i++) {
        printf(" %d", on[i]);
        spread &= on[i] > 0;
    }
    printf("\n");
    gh_runtime_stop(rt, 5 * GH_SEC);
    gh_runtime_destroy(rt);
    for (int k = 0; k < atomic_load(&nconns); k++)
        free(conns[k]);
    if (clients)
        return atomic_load(&failures) == 0 && atomic_load(&round_trips) > 0 && spread ? 0 : 1;
    return 0;
}
