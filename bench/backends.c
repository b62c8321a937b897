/*
 * backends.c — //bench:backends: echo round trips per second and server CPU
 * time per round trip, per backend (issues 6 and 15).
 *
 * Server: greenhub on the backend under test, one hub on a thread of its
 * own, a task per connection (gh_read, gh_write_all). Load: one io_uring
 * client thread (bench/echo_load.c), the same for every row: 64 active
 * connections, each with one 64-byte message in flight, echoed back and sent
 * again. Then the same with 1,000 idle connections open beside the 64 active,
 * each with a task of the server waiting to read it (where poll and select
 * fall away: they hand the kernel every fd on each call).
 *
 * Server CPU per round trip is read from the server thread's own CPU clock
 * (the load's cost is not in it); the load generator's CPU % is printed
 * beside it. The scheduler often keeps the two threads on one CPU (each wakes
 * the other), so round trips/s is then bounded by server + client CPU, and
 * a cheaper server shows up in it only in part: server CPU per round trip is
 * the figure to compare.
 *
 * Reference, same scenario, same run: a raw epoll echo loop on a plain thread
 * with its own connections, up for the whole scenario (with its own 1,000
 * idle connections in the second). Each row drives greenhub and the
 * reference in turn: 0.1 s warm-up each, then 5 segments of 0.25 s each,
 * alternating, so both see the same noise (this machine is shared); the
 * median segment of each is printed.
 *
 * select cannot hold an fd >= FD_SETSIZE: with 4,000+ sockets in this
 * process its idle row cannot be run and is printed as n/a.
 *
 *   ./bazelw run //bench:backends
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "bench/bench.h"
#include "bench/echo_load.h"
#include "greenhub.h"

#define WARMUP_NS  (100 * 1000000LL)
#define SEGMENTS   5
#define SEGMENT_NS (250 * 1000000LL)

/*
 * Medians of a row's segments, greenhub's and the reference's, and of the
 * ratios of each pair of segments taken one after the other: where the
 * scheduler put the server and the load (one CPU or both) can change from
 * one pair to the next, and moves both figures of a pair alike.
 */
typedef struct row {
    bool ok;
    double rate, ref_rate, rate_ratio, cpu, ref_cpu, cpu_ratio, client, ref_client;
} row;

static double seg_median(const echo_result *a, const echo_result *b, int n, int f)
{
    double v[3 * SEGMENTS];
    for (int i = 0; i < n; i++) {
        const echo_result *e = &a[i];
        double x = f == 0 ? e->rate : f == 1 ? e->server_ns : e->client_pct;
        if (b)
            x /= f == 0 ? b[i].rate : b[i].server_ns;
        v[i] = x;
    }
    return bench_median(v, n);
}

static void medians(row *w, const echo_result *g, const echo_result *r, int n)
{
    w->rate = seg_median(g, NULL, n, 0);
    w->cpu = seg_median(g, NULL, n, 1);
    w->client = seg_median(g, NULL, n, 2);
    w->ref_rate = seg_median(r, NULL, n, 0);
    w->ref_cpu = seg_median(r, NULL, n, 1);
    w->ref_client = seg_median(r, NULL, n, 2);
    w->rate_ratio = seg_median(g, r, n, 0);
    w->cpu_ratio = seg_median(g, r, n, 1);
}

/*
 * One row: greenhub on @backend and the raw epoll server @rs (already up,
 * with its load @rl), segment by segment in turn, so both see the same noise.
 * ok is false (n/a) when the backend could not watch a connection.
 */
static row measure_row(const char *backend, int idle, echo_server *rs, echo_load *rl)
{
    static echo_load l;
    echo_server s;
    echo_result g[SEGMENTS], r[SEGMENTS];
    row w = {.ok = false};
    bool up = echo_server_start(&s, ECHO_GREENHUB, backend) == 0;
    /* select, past FD_SETSIZE fds: the hub's own wakeup fd, or a connection, is out of reach. */
    if (up)
        w.ok = echo_load_open(&l, &s, idle);
    if (w.ok) {
        echo_load_run(&l, &s, WARMUP_NS);
        echo_load_run(rl, rs, WARMUP_NS);
    }
    for (int i = 0; i < SEGMENTS; i++) {
        if (w.ok)
            g[i] = echo_load_run(&l, &s, SEGMENT_NS);
        else
            g[i] = (echo_result){.rate = NAN, .server_ns = NAN, .client_pct = NAN};
        r[i] = echo_load_run(rl, rs, SEGMENT_NS); /* the reference has its figure either way */
    }
    if (up) {
        echo_load_close(&l);
        echo_server_stop(&s);
    }
    bool ok = w.ok;
    medians(&w, g, r, SEGMENTS);
    w.ok = ok;
    return w;
}

/*
 * The blocking detector's cost: one epoll server, its segments taken in
 * turn with the detector on (a 20 ms threshold: a look every 5 ms) and off.
 */
static void measure_detector(void)
{
    static echo_load l;
    echo_server s;
    BENCH_CHECK(echo_server_start(&s, ECHO_GREENHUB, "epoll") == 0, "epoll server");
    BENCH_CHECK(echo_load_open(&l, &s, 0), "epoll server: a connection refused");
    enum { N = 3 * SEGMENTS }; /* a 1% effect needs more turns than a backend row */
    echo_result on[N], off[N];
    echo_load_run(&l, &s, WARMUP_NS);
    for (int i = 0; i < N; i++) {
        /* Which goes first alternates, so drift favours neither. */
        for (int k = 0; k < 2; k++) {
            bool detector = (i + k) % 2 == 0;
            BENCH_CHECK(gh_set_block_threshold(detector ? 20 * GH_MSEC : 0) == 0, "detector");
            (detector ? on : off)[i] = echo_load_run(&l, &s, SEGMENT_NS);
        }
    }
    BENCH_CHECK(gh_set_block_threshold(0) == 0, "detector off");
    echo_load_close(&l);
    echo_server_stop(&s);
    row w;
    medians(&w, on, off, N);
    bench_table_header("blocking detector: echo, 64 active connections, epoll");
    bench_row("epoll, detector on (20 ms), round trips/s", w.rate, "/s", "the same, detector off",
              w.ref_rate, "/s", w.rate_ratio, ">= 0.99x", w.rate_ratio >= 0.99 ? "ok" : "MISS");
    bench_row("epoll, detector on (20 ms), server CPU per round trip", w.cpu / 1e3, "us",
              "the same, detector off", w.ref_cpu / 1e3, "us", w.cpu_ratio, "", "");
}

int main(void)
{
    static const char *const names[] = {"epoll", "poll", "select", "io_uring", "libev", "libevent"};
    enum { NB = sizeof names / sizeof names[0] };
    static echo_load rl;
    int64_t begin = bench_now();
    printf("greenhub //bench:backends  (echo, %d-byte messages, %d in flight per connection; "
           "server: one hub on a thread of its own;\n  load: one io_uring thread; each figure "
           "the median of %d segments of %.2f s, greenhub and the raw epoll server taking "
           "turns)\n",
           ECHO_MSG, ECHO_DEPTH, SEGMENTS, SEGMENT_NS / 1e9);

    for (int scenario = 0; scenario < 2; scenario++) {
        int idle = scenario ? ECHO_IDLE : 0;
        echo_server rs;
        BENCH_CHECK(echo_server_start(&rs, ECHO_RAW_EPOLL, NULL) == 0, "raw epoll server");
        BENCH_CHECK(echo_load_open(&rl, &rs, idle), "raw epoll server: a connection refused");

        row rows[NB];
        for (int b = 0; b < NB; b++)
            rows[b] = measure_row(names[b], idle, &rs, &rl);

        echo_load_close(&rl);
        echo_server_stop(&rs);

        const char *sc = idle ? "1,000 idle + 64 active" : "64 active";
        char title[160], m[96], cl[32];
        snprintf(title, sizeof title,
                 "backends: echo, %s connections (round trips/s: higher is "
                 "better; server CPU per round trip: lower is better)",
                 sc);
        bench_table_header(title);
        for (int b = 0; b < NB; b++) {
            row *w = &rows[b];
            snprintf(m, sizeof m, "%s, %s, round trips/s", names[b], sc);
            if (!w->ok)
                bench_row_na(m, "n/a (fd >= FD_SETSIZE)", "raw epoll echo loop", w->ref_rate, "/s",
                             "");
            else
                bench_row(m, w->rate, "/s", "raw epoll echo loop", w->ref_rate, "/s", w->rate_ratio,
                          "", "");
            snprintf(m, sizeof m, "%s, %s, server CPU per round trip", names[b], sc);
            if (!w->ok) {
                bench_row_na(m, "n/a (fd >= FD_SETSIZE)", "raw epoll echo loop", w->ref_cpu / 1e3,
                             "us", "");
            } else {
                /* The load's CPU, greenhub's segments / the reference's: below 100%, it kept up. */
                snprintf(cl, sizeof cl, "client %.0f%%/%.0f%%", w->client, w->ref_client);
                bench_row(m, w->cpu / 1e3, "us", "raw epoll echo loop", w->ref_cpu / 1e3, "us",
                          w->cpu_ratio, "", cl);
            }
        }
    }
    measure_detector();
    printf("\nratio = greenhub / raw epoll: the median of the ratios of segments taken in turn; "
           "client = the load generator's CPU %%,\n  greenhub's / the reference's segments "
           "(server CPU per round trip is the figure to compare: see bench/backends.c).\n");
    printf("done in %.1f s\n", (double)(bench_now() - begin) / 1e9);
    return 0;
}
