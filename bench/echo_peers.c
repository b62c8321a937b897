/*
 * echo_peers.c — //bench:echo_peers: greenhub's epoll and io_uring hubs
 * beside a raw epoll echo loop and a raw liburing echo loop, by server CPU
 * time per round trip (issue 15).
 *
 * Every server runs on one thread of its own (greenhub: gh_use_hub, one task
 * per connection, gh_read + gh_write_all); the load is one io_uring client
 * thread (bench/echo_load.c) keeping one 64-byte message in flight on each of
 * 64 connections. It costs less per round trip than every server but the raw
 * liburing loop (about the same as that one); its CPU % is printed beside
 * every run. Then the same with 1,000 idle connections open beside the 64.
 *
 * Nothing is pinned: the scheduler often runs server and load in turn on one
 * CPU (each wakes the other), sometimes side by side on both, and each run
 * line says which. Round trips/s then depends on both; the server's CPU per
 * round trip, from its own thread's clock, is the figure to compare.
 *
 * All four servers are up at once, each with its own connections; rounds
 * run each of them once, in an order that rotates from round to round, so
 * drift and noise (this machine is shared) favour none. Every run is
 * printed, then the medians, with ratios to the raw loops.
 *
 *   ./bazelw run //bench:echo_peers
 *   ./bazelw run //bench:echo_peers -- --rounds 9 --ms 500
 *   ./bazelw run //bench:echo_peers -- --only "greenhub io_uring" --ms 10000   (for perf)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/echo_load.h"
#include "greenhub.h"

enum { MAX_PEERS = 8, MAX_ROUNDS = 64 };

typedef struct peer {
    const char *name;
    echo_kind kind;
    const char *backend;
} peer;

static const peer main_peers[] = {
    {"raw epoll", ECHO_RAW_EPOLL, NULL},
    {"raw liburing", ECHO_RAW_URING, NULL},
    {"greenhub epoll", ECHO_GREENHUB, "epoll"},
    {"greenhub io_uring", ECHO_GREENHUB, "io_uring"},
};

/* --variants: the raw liburing loop's variants (echo_load.c) side by side. */
static const peer variant_peers[] = {
    {"raw epoll", ECHO_RAW_EPOLL, NULL},           {"raw liburing", ECHO_RAW_URING, NULL},
    {"liburing coop", ECHO_RAW_URING, "coop"},     {"liburing plain", ECHO_RAW_URING, "plain"},
    {"liburing single", ECHO_RAW_URING, "single"}, {"liburing ipi", ECHO_RAW_URING, "ipi"},
};

static const peer *peers = main_peers;
static int N_PEERS = sizeof main_peers / sizeof main_peers[0];
static echo_server servers[MAX_PEERS];
static echo_load loads[MAX_PEERS];
static echo_result results[2][MAX_PEERS][MAX_ROUNDS];

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_peers [--rounds N] [--ms MS] [--idle-only|--active-only] "
            "[--only NAME] [--variants]\n  NAME: raw epoll, raw liburing, greenhub epoll, greenhub "
            "io_uring\n");
    exit(2);
}

static double field(const echo_result *e, int f)
{
    return f == 0 ? e->rate : f == 1 ? e->server_ns / 1e3 : f == 2 ? e->client_pct : e->server_pct;
}

/* Median over the rounds of @f: 0 rate, 1 server us/rt, 2 client CPU %, 3 server CPU %. */
static double med(int scenario, int peer, int rounds, int f)
{
    double v[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        v[r] = field(&results[scenario][peer][r], f);
    return bench_median(v, rounds);
}

/*
 * Median over the rounds of @peer's figure / @ref's in the same round: where
 * the scheduler put the two threads (one CPU or two) can change from one
 * round to the next and moves every server's figures alike.
 */
static double ratio(int scenario, int peer, int ref, int rounds, int f)
{
    double v[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        v[r] = field(&results[scenario][peer][r], f) / field(&results[scenario][ref][r], f);
    return bench_median(v, rounds);
}

static void print_run(const char *name, int idle, int round, const echo_result *e)
{
    /* Server + client CPU over 100%: they ran side by side, on both CPUs. */
    printf("  round %d  %-18s %-22s %7.1f k/s  server %5.2f us/rt  CPU: server %3.0f%% client "
           "%3.0f%% (%s)  %5.1f rt/loop",
           round, name, idle ? "1,000 idle + 64 active" : "64 active", e->rate / 1e3,
           e->server_ns / 1e3, e->server_pct, e->client_pct,
           e->server_pct + e->client_pct > 110 ? "side by side" : "in turn", e->per_iter);
    /* Work on the process's other threads (io-wq...) would flatter the server thread's clock. */
    if (e->other_pct > 2)
        printf("  (+%.0f%% on other threads)", e->other_pct);
    printf("\n");
    fflush(stdout);
}

static void cpu_row(int sc, int p, int ref, int rounds, const char *target, double bound)
{
    char m[96];
    snprintf(m, sizeof m, "%s, server CPU per round trip", peers[p].name);
    double x = ratio(sc, p, ref, rounds, 1);
    bench_row(m, med(sc, p, rounds, 1), "us", peers[ref].name, med(sc, ref, rounds, 1), "us", x,
              target,
              !*target     ? ""
              : x <= bound ? "ok"
                           : "MISS");
}

static void rate_row(int sc, int p, int ref, int rounds, const char *target, double bound)
{
    char m[96];
    snprintf(m, sizeof m, "%s, round trips/s", peers[p].name);
    double x = ratio(sc, p, ref, rounds, 0);
    bench_row(m, med(sc, p, rounds, 0), "/s", peers[ref].name, med(sc, ref, rounds, 0), "/s", x,
              target,
              !*target     ? ""
              : x >= bound ? "ok"
                           : "MISS");
}

static void table(int sc, int rounds)
{
    char title[200], m[96];
    snprintf(title, sizeof title,
             "echo_peers: %s, medians of %d rounds; ratio: the median of the per-round ratios "
             "(server CPU per round trip: lower is better)",
             sc ? "1,000 idle + 64 active" : "64 active", rounds);
    bench_table_header(title);
    enum { EPOLL = 0, URING = 1 };
    for (int p = 0; p < N_PEERS; p++) {
        bool gh_epoll = peers == main_peers && p == 2, gh_uring = peers == main_peers && p == 3;
        /* Issue 15's targets: the epoll hub within 3% of raw epoll (CPU and rate), the
         * io_uring hub within 5% of raw liburing and 15% under raw epoll. */
        if (p == EPOLL)
            cpu_row(sc, p, URING, rounds, "", 0);
        else
            cpu_row(sc, p, EPOLL, rounds,
                    gh_epoll   ? "<= 1.03x"
                    : gh_uring ? "<= 0.85x"
                               : "",
                    gh_epoll ? 1 / 0.97 : 0.85);
        if (p > URING && !gh_epoll)
            cpu_row(sc, p, URING, rounds, gh_uring ? "<= 1.05x" : "", 1.05);
        rate_row(sc, p, p == EPOLL ? URING : EPOLL, rounds, gh_epoll ? ">= 0.97x" : "", 0.97);
        snprintf(m, sizeof m, "%s, CPU: server / client", peers[p].name);
        double sv = med(sc, p, rounds, 3), cl = med(sc, p, rounds, 2);
        printf("%-58s %7.0f%% / %2.0f%%   (%s)\n", m, sv, cl,
               sv + cl > 110 ? "side by side, on both CPUs" : "mostly on one CPU, in turn");
    }
}

int main(int argc, char **argv)
{
    int rounds = 5, ms = 400, only = -1, first = 0, last = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
            ms = atoi(argv[++i]);
        else if (strcmp(argv[i], "--variants") == 0) {
            peers = variant_peers;
            N_PEERS = sizeof variant_peers / sizeof variant_peers[0];
        } else if (strcmp(argv[i], "--active-only") == 0)
            last = 0;
        else if (strcmp(argv[i], "--idle-only") == 0)
            first = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            const char *n = argv[++i];
            for (int p = 0; p < N_PEERS; p++)
                if (strcmp(n, peers[p].name) == 0)
                    only = p;
            if (only < 0)
                usage();
        } else {
            usage();
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS || ms < 1)
        usage();
    int64_t begin = bench_now();
    printf("greenhub //bench:echo_peers  (echo, %d-byte messages, %d in flight per connection, "
           "server reads <= %d bytes; every server on one thread,\n  the load one io_uring "
           "thread; %d rounds of %d ms per server, in rotating order)\n",
           ECHO_MSG, ECHO_DEPTH, ECHO_BUF, rounds, ms);
    for (int scenario = first; scenario <= last; scenario++) {
        int idle = scenario ? ECHO_IDLE : 0;
        for (int p = 0; p < N_PEERS; p++) {
            if (only >= 0 && p != only)
                continue;
            int err = echo_server_start(&servers[p], peers[p].kind, peers[p].backend);
            BENCH_CHECK(err == 0, "%s: %s", peers[p].name, strerror(-err));
            BENCH_CHECK(echo_load_open(&loads[p], &servers[p], idle), "%s: a connection refused",
                        peers[p].name);
            echo_load_run(&loads[p], &servers[p], 100 * 1000000LL); /* warm-up */
        }
        printf("\n");
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < N_PEERS; k++) {
                int p = (r + k) % N_PEERS;
                if (only >= 0 && p != only)
                    continue;
                results[scenario][p][r] =
                    echo_load_run(&loads[p], &servers[p], (int64_t)ms * 1000000);
                print_run(peers[p].name, idle, r, &results[scenario][p][r]);
            }
        }
        for (int p = 0; p < N_PEERS; p++) {
            if (only >= 0 && p != only)
                continue;
            echo_load_close(&loads[p]);
            echo_server_stop(&servers[p]);
        }
        if (only < 0)
            table(scenario, rounds);
    }
    printf("\ndone in %.1f s\n", (double)(bench_now() - begin) / 1e9);
    return 0;
}
