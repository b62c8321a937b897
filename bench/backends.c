/*
 * backends.c — //bench:backends: echo round trips per second per backend
 * (issue 6).
 *
 * Server: one runtime hub on the backend under test, a task per connection
 * (gh_read, gh_write_all). Clients: this (main) thread, a hand-written
 * epoll loop, the same for every row: 64 active connections, each with one
 * 64-byte message in flight, echoed back and sent again. Then the same with
 * 1,000 idle connections open beside the 64 active, each with a task of the
 * server waiting to read it (where poll and select fall away: they hand the
 * kernel every fd on each call).
 *
 * Reference, same scenario, same run: a raw epoll echo server (a minimal
 * hand-written epoll loop on a plain thread) with its own clients, up for
 * the whole scenario (with its own 1,000 idle connections in the second).
 * Each row drives greenhub and the reference in turn: 0.1 s warm-up each,
 * then 5 segments of 0.25 s each, alternating, so both see the same noise
 * (this machine is shared); the median segment of each is printed.
 *
 * select cannot hold an fd >= FD_SETSIZE: with 4,000+ sockets in this
 * process its idle row cannot be run and is printed as n/a.
 *
 *   ./bazelw run //bench:backends
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench.h"
#include "greenhub.h"

#define N_ACTIVE   64
#define N_IDLE     1000
#define MSG        64
#define WARMUP_NS  (100 * 1000000LL)
#define SEGMENTS   5
#define SEGMENT_NS (250 * 1000000LL)

/* ------------------------------------------------ the greenhub server */

typedef struct gh_server {
    gh_runtime *rt;
    gh_hub *hub;
    int lfd, port;
    atomic_int accepted;
    atomic_int einval; /* a connection the backend could not watch (select: fd >= FD_SETSIZE) */
} gh_server;

static void srv_conn(void *arg)
{
    gh_server *s = *(gh_server **)arg;
    int fd = (int)(intptr_t)((void **)arg)[1];
    free(arg);
    atomic_fetch_add(&s->accepted, 1);
    char buf[256];
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n == -EINVAL)
            atomic_store(&s->einval, 1);
        if (n <= 0)
            break;
        if (gh_write_all(fd, buf, (size_t)n, GH_FOREVER) < 0)
            break;
    }
    gh_close(fd);
}

static void srv_acceptor(void *arg)
{
    gh_server *s = arg;
    for (;;) {
        int fd = gh_accept(s->lfd, GH_FOREVER);
        if (fd == -EBADF || fd == -ECANCELED)
            return;
        if (fd < 0) {
            fprintf(stderr, "bench: gh_accept: %s\n", gh_strerror(fd));
            gh_sleep(GH_MSEC);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        void **a = malloc(2 * sizeof *a);
        BENCH_CHECK(a, "malloc");
        a[0] = s;
        a[1] = (void *)(intptr_t)fd;
        BENCH_CHECK(gh_spawn_n(srv_conn, a) == 0, "gh_spawn_n");
    }
}

static void *srv_setup(void *arg)
{
    gh_server *s = arg;
    s->lfd = gh_listen("127.0.0.1", 0, 4096);
    if (s->lfd < 0)
        return (void *)(intptr_t)s->lfd;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(s->lfd, (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
    return (void *)(intptr_t)gh_spawn_n(srv_acceptor, s);
}

static void *srv_close_listener(void *arg)
{
    gh_server *s = arg;
    return (void *)(intptr_t)gh_close(s->lfd);
}

/* Returns 0, or -EINVAL when the backend cannot hold even the hub's own wakeup fd. */
static int gh_server_start(gh_server *s, const char *backend)
{
    memset(s, 0, sizeof *s);
    const char *backends[1] = {backend};
    gh_runtime_config cfg = {.threads = 1, .backends = backends};
    int err = gh_runtime_start(&s->rt, &cfg);
    if (err == -EINVAL)
        return err;
    BENCH_CHECK(err == 0, "gh_runtime_start(%s): %s", backend, gh_strerror(err));
    s->hub = gh_runtime_hub(s->rt, 0);
    void *r = NULL;
    err = gh_call_on(s->hub, srv_setup, s, &r, 5 * GH_SEC);
    BENCH_CHECK(err == 0 && r == NULL, "server setup on %s failed", backend);
    return 0;
}

static void gh_server_stop(gh_server *s)
{
    void *r = NULL;
    int err = gh_call_on(s->hub, srv_close_listener, s, &r, 5 * GH_SEC);
    BENCH_CHECK(err == 0, "gh_call_on: %s", gh_strerror(err));
    err = gh_runtime_stop(s->rt, 5 * GH_SEC);
    BENCH_CHECK(err == 0, "gh_runtime_stop: %s", gh_strerror(err));
    gh_runtime_destroy(s->rt);
}

/* ------------------------------------------- the raw epoll reference */

typedef struct raw_server {
    pthread_t thread;
    int lfd, port, epfd, stopfd;
    atomic_int accepted, closed;
} raw_server;

static void *raw_main(void *arg)
{
    raw_server *s = arg;
    struct epoll_event evs[256];
    char buf[256];
    for (;;) {
        int n = epoll_wait(s->epfd, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == s->stopfd)
                return NULL;
            if (fd == s->lfd) {
                int c;
                while ((c = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(s->epfd, EPOLL_CTL_ADD, c, &ev);
                    atomic_fetch_add(&s->accepted, 1);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) {
                if (write(fd, buf, (size_t)r) == r)
                    continue;
            } else if (r < 0 && errno == EAGAIN) {
                continue;
            }
            epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            atomic_fetch_add(&s->closed, 1);
        }
    }
}

static void raw_server_start(raw_server *s)
{
    memset(s, 0, sizeof *s);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    BENCH_CHECK(s->lfd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    BENCH_CHECK(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind");
    BENCH_CHECK(listen(s->lfd, 4096) == 0, "listen");
    socklen_t len = sizeof sa;
    getsockname(s->lfd, (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    BENCH_CHECK(s->epfd >= 0 && s->stopfd >= 0, "epoll/eventfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->lfd};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev);
    ev.data.fd = s->stopfd;
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stopfd, &ev);
    BENCH_CHECK(pthread_create(&s->thread, NULL, raw_main, s) == 0, "pthread_create");
}

static void raw_server_stop(raw_server *s)
{
    uint64_t one = 1;
    BENCH_CHECK(write(s->stopfd, &one, sizeof one) == sizeof one, "eventfd write");
    pthread_join(s->thread, NULL);
    close(s->epfd);
    close(s->stopfd);
    close(s->lfd);
}

/* ---------------------------------------------------------- the client */

typedef struct clients {
    int fds[N_ACTIVE + N_IDLE];
    int n;    /* connections open */
    int epfd; /* the active ones */
    int got[N_ACTIVE];
} clients;

static const char client_msg[MSG] =
    "greenhub echo round trip .......................................";

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BENCH_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    BENCH_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
                strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Open @idle idle connections, then the active ones (so the active fds are the newest). */
static void clients_open(clients *c, int port, int idle)
{
    for (int i = 0; i < idle; i++)
        c->fds[N_ACTIVE + i] = client_connect(port);
    for (int i = 0; i < N_ACTIVE; i++)
        c->fds[i] = client_connect(port);
    c->n = N_ACTIVE + idle;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    BENCH_CHECK(c->epfd >= 0, "epoll_create1");
    for (int i = 0; i < N_ACTIVE; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        BENCH_CHECK(epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->fds[i], &ev) == 0, "epoll_ctl");
    }
}

static void clients_close(clients *c)
{
    for (int i = 0; i < c->n; i++)
        close(c->fds[i]);
    close(c->epfd);
    c->n = 0;
}

/*
 * Drive the active connections for @ns: one message in flight on each,
 * sent again as soon as it is back. Returns round trips per second. The
 * messages still in flight at the end are read back, untimed, so the next
 * segment (on this or the other server) starts from quiet sockets.
 */
static double clients_segment(clients *c, int64_t ns)
{
    char buf[256];
    struct epoll_event evs[N_ACTIVE];
    long count = 0;
    int64_t start = bench_now(), end = start + ns, now = start;
    for (int i = 0; i < N_ACTIVE; i++) {
        c->got[i] = 0;
        BENCH_CHECK(write(c->fds[i], client_msg, MSG) == MSG, "write");
    }
    while (now < end) {
        int n = epoll_wait(c->epfd, evs, N_ACTIVE, 100);
        BENCH_CHECK(n >= 0 || errno == EINTR, "epoll_wait: %s", strerror(errno));
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            ssize_t r = read(c->fds[i], buf, sizeof buf);
            BENCH_CHECK(r > 0, "client read: %s", r == 0 ? "EOF" : strerror(errno));
            c->got[i] += (int)r;
            if (c->got[i] >= MSG) {
                c->got[i] -= MSG;
                count++;
                BENCH_CHECK(write(c->fds[i], client_msg, MSG) == MSG, "write");
            }
        }
        now = bench_now();
    }
    for (int i = 0; i < N_ACTIVE; i++) {
        while (c->got[i] < MSG) {
            ssize_t r = read(c->fds[i], buf, sizeof buf);
            BENCH_CHECK(r > 0, "client drain: %s", r == 0 ? "EOF" : strerror(errno));
            c->got[i] += (int)r;
        }
    }
    return (double)count * 1e9 / (double)(now - start);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- rows */

/*
 * One row: greenhub on @backend and the raw epoll server (already up, with
 * its clients @rc), segment by segment in turn, so both see the same noise.
 * Returns false (n/a) when the backend could not watch a connection.
 */
static bool measure_row(const char *backend, int idle, clients *rc, double *gh_rate,
                        double *ref_rate)
{
    gh_server s;
    clients c;
    if (gh_server_start(&s, backend) != 0) {
        /* select, past FD_SETSIZE fds: the hub's own wakeup fd is out of its reach. */
        double r[SEGMENTS];
        for (int i = 0; i < SEGMENTS; i++)
            r[i] = clients_segment(rc, SEGMENT_NS);
        *gh_rate = NAN;
        *ref_rate = bench_median(r, SEGMENTS);
        return false;
    }
    clients_open(&c, s.port, idle);
    /* Every connection's task waits to read (plus the acceptor): the server is set. */
    for (;;) {
        gh_hub_stats st;
        gh_hub_get_stats(s.hub, &st);
        if (atomic_load(&s.einval) ||
            (atomic_load(&s.accepted) == c.n && st.fd_waiters >= (uint64_t)c.n + 1))
            break;
        sleep_ms(1);
    }
    bool ok = !atomic_load(&s.einval);
    if (ok) {
        double g[SEGMENTS], r[SEGMENTS];
        clients_segment(&c, WARMUP_NS);
        clients_segment(rc, WARMUP_NS);
        for (int i = 0; i < SEGMENTS; i++) {
            g[i] = clients_segment(&c, SEGMENT_NS);
            r[i] = clients_segment(rc, SEGMENT_NS);
        }
        *gh_rate = bench_median(g, SEGMENTS);
        *ref_rate = bench_median(r, SEGMENTS);
    } else {
        /* Still drive the reference, so the row has its figure. */
        double r[SEGMENTS];
        for (int i = 0; i < SEGMENTS; i++)
            r[i] = clients_segment(rc, SEGMENT_NS);
        *gh_rate = NAN;
        *ref_rate = bench_median(r, SEGMENTS);
    }
    clients_close(&c);
    gh_server_stop(&s);
    return ok;
}

/*
 * The blocking detector's cost: one epoll server, its segments taken in
 * turn with the detector on (a 20 ms threshold: a look every 5 ms) and off.
 */
static void measure_detector(void)
{
    gh_server s;
    clients c;
    BENCH_CHECK(gh_server_start(&s, "epoll") == 0, "epoll server");
    clients_open(&c, s.port, 0);
    for (;;) {
        gh_hub_stats st;
        gh_hub_get_stats(s.hub, &st);
        if (atomic_load(&s.accepted) == c.n && st.fd_waiters >= (uint64_t)c.n + 1)
            break;
        sleep_ms(1);
    }
    enum { N = 3 * SEGMENTS }; /* a 1% effect needs more turns than a backend row */
    double on[N], off[N];
    clients_segment(&c, WARMUP_NS);
    for (int i = 0; i < N; i++) {
        /* Which goes first alternates, so drift favours neither. */
        for (int k = 0; k < 2; k++) {
            bool detector = (i + k) % 2 == 0;
            BENCH_CHECK(gh_set_block_threshold(detector ? 20 * GH_MSEC : 0) == 0, "detector");
            (detector ? on : off)[i] = clients_segment(&c, SEGMENT_NS);
        }
    }
    BENCH_CHECK(gh_set_block_threshold(0) == 0, "detector off");
    clients_close(&c);
    gh_server_stop(&s);
    double r_on = bench_median(on, N), r_off = bench_median(off, N);
    bench_table_header("blocking detector: echo round trips/s, 64 active connections, epoll");
    bench_row("epoll, detector on (20 ms)", r_on, "/s", "the same, detector off", r_off, "/s",
              r_on / r_off, ">= 0.99x", r_on / r_off >= 0.99 ? "ok" : "MISS");
}

int main(void)
{
    static const char *const names[] = {"epoll", "poll", "select", "io_uring", "libev", "libevent"};
    const int nb = (int)(sizeof names / sizeof names[0]);
    int64_t begin = bench_now();
    printf("greenhub //bench:backends  (echo, %d-byte messages, one in flight per connection; "
           "server: one runtime hub; clients: one epoll thread;\n  each figure the median of %d "
           "segments of %.2f s, greenhub and the raw epoll server taking turns)\n",
           MSG, SEGMENTS, SEGMENT_NS / 1e9);

    for (int scenario = 0; scenario < 2; scenario++) {
        int idle = scenario ? N_IDLE : 0;
        raw_server rs;
        clients rc;
        raw_server_start(&rs);
        clients_open(&rc, rs.port, idle);
        while (atomic_load(&rs.accepted) < rc.n)
            sleep_ms(1);

        double rate[8], ref[8];
        bool ok[8];
        for (int b = 0; b < nb; b++)
            ok[b] = measure_row(names[b], idle, &rc, &rate[b], &ref[b]);

        clients_close(&rc);
        /* Every connection closed by the server too, so no fd outlives the scenario. */
        while (atomic_load(&rs.closed) < atomic_load(&rs.accepted))
            sleep_ms(1);
        raw_server_stop(&rs);

        char title[128];
        snprintf(title, sizeof title, "backends: echo round trips/s, %d active connections%s",
                 N_ACTIVE, idle ? " + 1,000 idle" : "");
        bench_table_header(title);
        for (int b = 0; b < nb; b++) {
            char m[64];
            snprintf(m, sizeof m, "%s, %d active%s", names[b], N_ACTIVE,
                     idle ? " + 1000 idle" : "");
            if (!ok[b])
                bench_row_na(m, "n/a (fd >= FD_SETSIZE)", "raw epoll echo loop", ref[b], "/s", "");
            else
                bench_row(m, rate[b], "/s", "raw epoll echo loop", ref[b], "/s", rate[b] / ref[b],
                          "", "");
        }
    }
    measure_detector();
    printf("\nratio = greenhub / raw epoll, each row against the reference segments taken in "
           "turn with it (higher is better).\n");
    int err = gh_hub_close(); /* this thread never made a hub: nothing to free */
    BENCH_CHECK(err == 0, "gh_hub_close: %s", gh_strerror(err));
    printf("done in %.1f s\n", (double)(bench_now() - begin) / 1e9);
    return 0;
}
