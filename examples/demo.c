/*
 * demo.c — greenhub's main job, in one program (README: ./bazelw run //examples:demo).
 *
 * A server runtime with one hub per core (at least 2), on mixed backends,
 * serves the multi-core echo server of echo_multicore.c: hub 0 accepts and
 * deals connections round-robin to every hub with gh_spawn_on. A second
 * runtime, one hub, runs the clients: 64 green tasks, each on its own
 * connection, doing 64-byte write/read round trips for about 3 seconds and
 * checking every byte that comes back. Then a table per hub and the total
 * round trips per second.
 *
 *   ./demo [--seconds N] [--connections C]
 *
 * Exit status 0 when every connection worked and every byte matched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"

#define MAX_HUBS 64
#define MSG      64

/* ---------------------------------------------------------- the server */

typedef struct conn {
    int fd;
    struct conn *prev, *next;
} conn;

typedef struct hub_ctx {
    gh_hub *hub;
    int lfd;     /* hub 0 only */
    int closing; /* set by shutdown_task on this hub */
    conn *conns; /* this hub's open connections */
    unsigned long served;
} hub_ctx;

static hub_ctx srv[MAX_HUBS];
static int nsrv;

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

static void echo_task(void *arg)
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
    char buf[4096];
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

static void acceptor_task(void *arg)
{
    hub_ctx *ctx = arg;
    unsigned next = 0;
    gh_task_set_name(NULL, "acceptor");
    for (;;) {
        int fd = gh_accept(ctx->lfd, GH_FOREVER);
        if (fd == -EBADF || fd == -ECANCELED)
            break;
        if (fd < 0) {
            fprintf(stderr, "accept: %s\n", gh_strerror(fd));
            gh_sleep(10 * GH_MSEC);
            continue;
        }
        /* Round-robin over every hub, this one included; on refusal the fd is still ours. */
        hub_ctx *to = &srv[next++ % (unsigned)nsrv];
        handoff *ho = malloc(sizeof *ho);
        if (ho) {
            ho->ctx = to;
            ho->fd = fd;
        }
        if (!ho || gh_spawn_on(to->hub, echo_task, ho) != 0) {
            free(ho);
            close(fd);
        }
    }
}

static void shutdown_task(void *arg)
{
    hub_ctx *ctx = arg;
    ctx->closing = 1;
    if (ctx->lfd >= 0) {
        gh_close(ctx->lfd);
        ctx->lfd = -1;
    }
    for (conn *c = ctx->conns; c; c = c->next) {
        gh_close(c->fd);
        c->fd = -1;
    }
}

/* ---------------------------------------------------------- the clients */

typedef struct client_run {
    int port, connections;
    int64_t seconds_ns;
    int ready;               /* clients connected (or failed): timing starts when all are */
    int64_t start, deadline; /* 0 until then */
    unsigned long round_trips, mismatches, failures;
} client_run;

typedef struct client {
    client_run *run;
    int id;
    unsigned long round_trips, mismatches;
    int failed; /* connect/read/write error */
} client;

static void client_task(void *arg)
{
    client *cl = arg;
    int fd = gh_connect("127.0.0.1", cl->run->port, 10 * GH_SEC);
    cl->run->ready++;
    if (fd < 0) {
        fprintf(stderr, "client %d: connect: %s\n", cl->id, gh_strerror(fd));
        cl->failed = 1;
        return;
    }
    /* The clock starts once every client is connected (all tasks of one hub: no locks). */
    while (!cl->run->deadline)
        gh_sleep(GH_MSEC);
    unsigned char out[MSG], in[MSG];
    for (uint32_t round = 0; gh_now() < cl->run->deadline; round++) {
        for (int i = 0; i < MSG; i++)
            out[i] = (unsigned char)(cl->id * 31 + round * 7 + (uint32_t)i);
        if (gh_write_all(fd, out, MSG, 10 * GH_SEC) != MSG) {
            cl->failed = 1;
            break;
        }
        size_t got = 0;
        while (got < MSG) {
            ssize_t n = gh_read(fd, in + got, MSG - got, 10 * GH_SEC);
            if (n <= 0) {
                cl->failed = 1;
                break;
            }
            got += (size_t)n;
        }
        if (cl->failed)
            break;
        if (memcmp(in, out, MSG) != 0)
            cl->mismatches++;
        cl->round_trips++;
    }
    gh_close(fd);
}

/* On the client hub: start every client task and wait for them all (green joins). */
static void *run_clients(void *arg)
{
    client_run *run = arg;
    client *cls = calloc((size_t)run->connections, sizeof *cls);
    gh_task **tasks = calloc((size_t)run->connections, sizeof *tasks);
    if (!cls || !tasks) {
        free(cls);
        free(tasks);
        run->failures = (unsigned long)run->connections;
        return run;
    }
    for (int i = 0; i < run->connections; i++) {
        cls[i] = (client){.run = run, .id = i};
        tasks[i] = gh_spawn(client_task, &cls[i]);
        if (!tasks[i]) {
            run->failures++;
            run->ready++;
        }
    }
    while (run->ready < run->connections)
        gh_sleep(GH_MSEC);
    run->start = gh_now();
    run->deadline = run->start + run->seconds_ns;
    for (int i = 0; i < run->connections; i++) {
        if (!tasks[i])
            continue;
        gh_join(tasks[i], GH_FOREVER);
        gh_task_release(tasks[i]);
        run->round_trips += cls[i].round_trips;
        run->mismatches += cls[i].mismatches;
        run->failures += (unsigned long)cls[i].failed;
    }
    free(cls);
    free(tasks);
    return run;
}

/* ---------------------------------------------------------------- main */

static int backend_works(const char *name)
{
    int err = gh_use_hub(name);
    if (err == 0)
        gh_hub_close();
    return err == 0;
}

static void print_row(const char *who, gh_hub *h)
{
    gh_hub_stats st;
    gh_hub_get_stats(h, &st);
    double life = (double)(st.busy_ns + st.idle_ns);
    printf("%-8s %-9s %6.1f%% %10llu %12llu %12llu %10llu %12llu\n", who, st.backend,
           life > 0 ? 100.0 * (double)st.busy_ns / life : 0.0, (unsigned long long)st.tasks_spawned,
           (unsigned long long)st.switches, (unsigned long long)st.handoffs_in,
           (unsigned long long)st.wakeups_written, (unsigned long long)st.loop_iterations);
}

int main(int argc, char **argv)
{
    long seconds = 3, connections = 64;
    const ex_opt opts[] = {
        {"--seconds", "N", "how long the clients run", EX_LONG, &seconds, 1, 3600},
        {"--connections", "C", "client connections, dealt round-robin to the hubs", EX_LONG,
         &connections, 1, 10000},
    };
    int rc = ex_args_parse(argc, argv,
                           "A multi-core echo server on mixed backends, driven by its own clients.",
                           opts, EX_COUNT(opts));
    if (rc >= 0)
        return rc;

    /* Mixed backends: as many different ones as there are hubs (those this kernel allows). */
    static const char *const order[] = {"epoll", "io_uring", "poll", "libev", "select", "libevent"};
    const char *usable[6];
    int nusable = 0;
    for (int i = 0; i < 6; i++)
        if (backend_works(order[i]))
            usable[nusable++] = order[i];
    if (nusable == 0) {
        fprintf(stderr, "no backend works here\n");
        return 1;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    nsrv = ncpu < 2 ? 2 : ncpu > MAX_HUBS ? MAX_HUBS : (int)ncpu;
    const char *backends[MAX_HUBS];
    for (int i = 0; i < nsrv; i++)
        backends[i] = usable[i % nusable];

    int lfd = gh_listen("127.0.0.1", 0, 1024);
    if (lfd < 0) {
        fprintf(stderr, "listen: %s\n", gh_strerror(lfd));
        return 1;
    }
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    if (getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
        perror("getsockname");
        return 1;
    }
    int port = ntohs(sa.sin_port);

    gh_runtime *server = NULL, *clients = NULL;
    gh_runtime_config scfg = {.threads = nsrv, .backends = backends};
    int err = gh_runtime_start(&server, &scfg);
    if (err) {
        fprintf(stderr, "server runtime: %s\n", gh_strerror(err));
        return 1;
    }
    for (int i = 0; i < nsrv; i++)
        srv[i] = (hub_ctx){.hub = gh_runtime_hub(server, i), .lfd = i == 0 ? lfd : -1};
    const char *const cbackend[] = {usable[0]};
    gh_runtime_config ccfg = {.threads = 1, .backends = cbackend};
    err = gh_runtime_start(&clients, &ccfg);
    if (err) {
        fprintf(stderr, "client runtime: %s\n", gh_strerror(err));
        return 1;
    }
    err = gh_spawn_on(srv[0].hub, acceptor_task, &srv[0]);
    if (err) {
        fprintf(stderr, "gh_spawn_on: %s\n", gh_strerror(err));
        return 1;
    }
    printf("greenhub demo: echo server on 127.0.0.1:%d, %d server hubs (", port, nsrv);
    for (int i = 0; i < nsrv; i++)
        printf("%s%s", i ? ", " : "", gh_hub_backend(srv[i].hub));
    printf("); %ld clients on another hub for %ld s\n", connections, seconds);
    fflush(stdout);

    /* The clients' hub does the work; this (plain) thread just waits for its answer. */
    client_run run = {.port = port, .connections = (int)connections};
    run.seconds_ns = (int64_t)seconds * GH_SEC;
    void *res = NULL;
    err = gh_call_on(gh_runtime_hub(clients, 0), run_clients, &run, &res,
                     run.seconds_ns + 120 * GH_SEC);
    /* From the first round trip to the last client's end. */
    double elapsed = run.start ? (double)(gh_now() - run.start) / (double)GH_SEC : 1;
    if (err)
        fprintf(stderr, "clients: %s\n", gh_strerror(err));

    for (int i = 0; i < nsrv; i++)
        gh_spawn_on(srv[i].hub, shutdown_task, &srv[i]);
    int serr = gh_runtime_stop(server, 5 * GH_SEC);
    int cerr = gh_runtime_stop(clients, 5 * GH_SEC);

    printf("\n%-8s %-9s %7s %10s %12s %12s %10s %12s\n", "hub", "backend", "busy", "tasks",
           "switches", "handoffs_in", "wakeups", "loop_iters");
    unsigned long served = 0;
    for (int i = 0; i < nsrv; i++) {
        char who[32];
        snprintf(who, sizeof who, "server%d", i);
        print_row(who, srv[i].hub);
        served += srv[i].served;
    }
    print_row("client", gh_runtime_hub(clients, 0));
    gh_runtime_destroy(server);
    gh_runtime_destroy(clients);

    printf("\n%lu connections served, %lu round trips of %d bytes in %.2f s: %.0f round "
           "trips/s\n",
           served, run.round_trips, MSG, elapsed, (double)run.round_trips / elapsed);
    printf("mismatched replies: %lu, failed clients: %lu\n", run.mismatches, run.failures);
    if (err || serr || cerr || run.mismatches || run.failures || run.round_trips == 0 ||
        served != (unsigned long)connections) {
        printf("FAILED\n");
        return 1;
    }
    printf("ok\n");
    return 0;
}
