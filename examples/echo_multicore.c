/*
 * echo_multicore.c — a multi-core echo server: one hub per thread.
 *
 * Default: hub 0 runs the acceptor, which hands every accepted connection
 * round-robin to the hubs (hub 0 included) with gh_spawn_on; each connection
 * is then a green task on its hub, echoing what it reads.
 * --reuseport: every hub runs its own listener on the same port
 * (SO_REUSEPORT) and accepts for itself; the kernel spreads the connections.
 *
 * SIGINT/SIGTERM stop it gracefully: two tasks on hub 0 wait for them with
 * gh_signal_wait and set an event the main thread waits on; main then hands
 * each hub a task that closes its listener and connections (and, on hub 0,
 * kills the signal tasks), and stops the runtime, which runs every accepted
 * handoff first.
 *
 *   ./echo_multicore [--threads N] [--backends epoll,poll,...] [--reuseport] [--port P]
 *   (--port 0 picks a free port; the port is printed as "listening on port P")
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"

#define MAX_THREADS 256

typedef struct conn {
    int fd;
    struct conn *prev, *next;
} conn;

/* One per hub; touched only by tasks of that hub (after setup). */
typedef struct hub_ctx {
    int index;
    gh_hub *hub;
    int lfd;     /* this hub's listener, or -1 */
    int closing; /* the shutdown task ran: new connections are closed at once */
    conn *conns; /* open connections of this hub */
    unsigned long served;
} hub_ctx;

static hub_ctx hubs[MAX_THREADS];
static int nhubs;

/* Set (with the signal number) by whichever stop signal comes first. */
static gh_xevent stop_event;
static gh_task *signal_tasks[2]; /* on hub 0 */

static void signal_task(void *arg)
{
    int sig = (int)(intptr_t)arg;
    if (gh_signal_wait(sig, GH_FOREVER) == 0)
        gh_xevent_set(&stop_event, (void *)(intptr_t)sig);
    /* else: killed by the shutdown task, or the handler could not be installed */
}

static void *start_signal_tasks(void *arg)
{
    (void)arg;
    signal_tasks[0] = gh_spawn(signal_task, (void *)(intptr_t)SIGINT);
    signal_tasks[1] = gh_spawn(signal_task, (void *)(intptr_t)SIGTERM);
    /* Let both reach gh_signal_wait (and install the handlers) before main goes on. */
    gh_yield();
    return NULL;
}

static void conn_task(void *arg);

typedef struct handoff {
    hub_ctx *ctx;
    int fd;
} handoff;
/* Name the running task "conn <peer address>", as dumps and logs show it. */
static void name_conn_task(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?", name[INET6_ADDRSTRLEN + 16];
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(name, sizeof name, "conn %s:%d", host, port);
    gh_task_set_name(NULL, name);
}

/* On the connection's hub: echo until EOF, an error, or shutdown closes the fd. */
static void conn_task(void *arg)
{
    handoff *ho = arg;
    hub_ctx *ctx = ho->ctx;
    conn c = {.fd = ho->fd};
    free(ho);
    name_conn_task(c.fd);
    if (ctx->closing) {
        gh_close(c.fd);
        return;
    }
    c.next = ctx->conns;
    if (ctx->conns)
        ctx->conns->prev = &c;
    ctx->conns = &c;
    ctx->served++;

    char buf[16384];
    for (;;) {
        ssize_t n = gh_read(c.fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0 || gh_write_all(c.fd, buf, (size_t)n, 30 * GH_SEC) < 0)
            break;
    }
    if (c.prev)
        c.prev->next = c.next;
    else
        ctx->conns = c.next;
    if (c.next)
        c.next->prev = c.prev;
    if (c.fd >= 0)
        gh_close(c.fd);
}

/* Start conn_task for @fd on @ctx's hub; closes the fd if the hub refuses. */
static void hand_to(hub_ctx *ctx, int fd)
{
    handoff *ho = malloc(sizeof *ho);
    int err = ho ? 0 : -ENOMEM;
    if (ho) {
        ho->ctx = ctx;
        ho->fd = fd;
        err = gh_spawn_on(ctx->hub, conn_task, ho);
    }
    if (err) {
        /* -ESHUTDOWN: we are stopping. The task never runs, so the fd is ours. */
        free(ho);
        close(fd);
    }
}

/* Hub 0 (default mode): accept and deal connections round-robin to every hub. */
static void acceptor_task(void *arg)
{
    hub_ctx *ctx = arg;
    unsigned next = 0;
    gh_task_set_name(NULL, "acceptor");
    for (;;) {
        int fd = gh_accept(ctx->lfd, GH_FOREVER);
        if (fd == -EBADF || fd == -ECANCELED)
            break; /* the shutdown task closed the listener, or stop killed us */
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", gh_strerror(fd));
            gh_sleep(10 * GH_MSEC); /* EMFILE and friends: do not spin */
            continue;
        }
        hand_to(&hubs[next++ % (unsigned)nhubs], fd);
    }
}

/* --reuseport: each hub accepts on its own listener and keeps what it gets. */
static void local_acceptor_task(void *arg)
{
    hub_ctx *ctx = arg;
    gh_task_set_name(NULL, "acceptor (reuseport)");
    for (;;) {
        int fd = gh_accept(ctx->lfd, GH_FOREVER);
        if (fd == -EBADF || fd == -ECANCELED)
            break;
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", gh_strerror(fd));
            gh_sleep(10 * GH_MSEC);
            continue;
        }
        hand_to(ctx, fd); /* its own hub: a plain spawn */
    }
}

/* On each hub at shutdown: close its listener and every connection (their tasks see -EBADF). */
static void shutdown_task(void *arg)
{
    hub_ctx *ctx = arg;
    ctx->closing = 1;
    if (ctx->index == 0) {
        for (int i = 0; i < 2; i++) {
            gh_kill(signal_tasks[i]);
            gh_task_release(signal_tasks[i]);
        }
    }
    if (ctx->lfd >= 0) {
        gh_close(ctx->lfd);
        ctx->lfd = -1;
    }
    for (conn *c = ctx->conns; c; c = c->next) {
        gh_close(c->fd);
        c->fd = -1;
    }
}

static int listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int main(int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long threads_arg = ncpu > 0 ? ncpu : 2, port_arg = 6000;
    bool reuseport = false;
    const char *blist_arg = NULL;
    const char *backends[MAX_THREADS] = {0};
    int nbackends = 0;

    const ex_opt opts[] = {
        {"--threads", "N", "hubs, one thread each", EX_LONG, &threads_arg, 1, MAX_THREADS},
        {"--backends", "LIST", "epoll,poll,...: one per thread, in order (the rest: the default)",
         EX_STR, &blist_arg, 0, 0},
        {"--reuseport", NULL, "one SO_REUSEPORT listener per hub instead of one shared", EX_FLAG,
         &reuseport, 0, 0},
        {"--port", "P", "port to listen on (0: any free one)", EX_LONG, &port_arg, 0, 65535},
    };
    int rc = ex_args_parse(argc, argv,
                           "A multi-core echo server: one hub per thread, each on its backend.",
                           opts, EX_COUNT(opts));
    if (rc >= 0)
        return rc;
    int threads = (int)threads_arg, port = (int)port_arg;
    char *blist = (char *)blist_arg; /* argv's own string: writable, strtok_r splits it */
    if (blist) {
        for (char *save = NULL, *tok = strtok_r(blist, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            if (nbackends == threads) {
                fprintf(stderr, "--backends names more backends than --threads %d\n", threads);
                return 2;
            }
            backends[nbackends++] = tok;
        }
    }

    /* Listeners first, so a bad port fails before any thread starts. */
    nhubs = threads;
    for (int i = 0; i < nhubs; i++)
        hubs[i] = (hub_ctx){.index = i, .lfd = -1};
    int nlisteners = reuseport ? nhubs : 1;
    for (int i = 0; i < nlisteners; i++) {
        int fd = gh_listen_ex("0.0.0.0", port, 1024, reuseport);
        if (fd < 0) {
            fprintf(stderr, "listen on port %d: %s\n", port, gh_strerror(fd));
            return 1;
        }
        if (port == 0)
            port = listen_port(fd); /* the others (--reuseport) join the port the first got */
        hubs[i].lfd = fd;
    }

    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = threads, .backends = nbackends ? backends : NULL};
    int err = gh_runtime_start(&rt, &cfg);
    if (err) {
        fprintf(stderr, "gh_runtime_start: %s\n", gh_strerror(err));
        return 1;
    }
    for (int i = 0; i < nhubs; i++) {
        hubs[i].hub = gh_runtime_hub(rt, i);
        printf("hub %d: %s\n", i, gh_hub_backend(hubs[i].hub));
    }
    gh_xevent_init(&stop_event);
    err = gh_call_on(hubs[0].hub, start_signal_tasks, NULL, NULL, 5 * GH_SEC);
    if (err) {
        fprintf(stderr, "starting the signal tasks: %s\n", gh_strerror(err));
        return 1;
    }
    for (int i = 0; i < nlisteners; i++) {
        err = gh_spawn_on(hubs[i].hub, reuseport ? local_acceptor_task : acceptor_task, &hubs[i]);
        if (err) {
            fprintf(stderr, "gh_spawn_on: %s\n", gh_strerror(err));
            return 1;
        }
    }
    printf("listening on port %d (%d threads, %s)\n", port, threads,
           reuseport ? "a listener per hub, SO_REUSEPORT" : "one acceptor, round-robin");
    fflush(stdout);

    void *got = NULL;
    gh_xevent_wait(&stop_event, &got, GH_FOREVER); /* a plain thread: blocks */
    int sig = (int)(intptr_t)got;
    printf("%s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);

    /* Each hub closes its own fds (gh_close acts on the calling thread's hub). */
    for (int i = 0; i < nhubs; i++)
        gh_spawn_on(hubs[i].hub, shutdown_task, &hubs[i]);
    err = gh_runtime_stop(rt, 5 * GH_SEC);
    if (err)
        fprintf(stderr, "gh_runtime_stop: %s\n", gh_strerror(err));

    printf("%-4s %-9s %12s %12s %12s %12s\n", "hub", "backend", "connections", "tasks",
           "handoffs_in", "wakeups");
    for (int i = 0; i < nhubs; i++) {
        gh_hub_stats st;
        gh_hub_get_stats(hubs[i].hub, &st);
        printf("%-4d %-9s %12lu %12llu %12llu %12llu\n", i, st.backend, hubs[i].served,
               (unsigned long long)st.tasks_spawned, (unsigned long long)st.handoffs_in,
               (unsigned long long)st.wakeups_written);
    }
    gh_runtime_destroy(rt);
    gh_xevent_destroy(&stop_event);
    return err ? 1 : 0;
}
