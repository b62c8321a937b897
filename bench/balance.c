/*
 * balance.c — //bench:balance: skewed load across hubs, with and without a
 * balancer that moves connections (gh_migrate), and with SO_REUSEPORT.
 *
 * Server: a runtime of 2 hubs; each request costs WORK_US of CPU (a server
 * that does work per request, where a second core can help). Skewed: one
 * listener, on hub 0, and every connection it accepts stays there. Balanced:
 * the same, plus a balancer task that every 20 ms reads each hub's busy time
 * (gh_hub_get_stats) and tells connections of the busiest hub to move to the
 * idlest (the connection moves itself with gh_migrate after its next reply).
 * Reuseport: a listener per hub with SO_REUSEPORT, the kernel spreading
 * connections as they come. Clients: this thread, one epoll loop, N_CONN
 * connections with one message in flight each.
 *
 * Each figure is the median of SEGMENTS segments after a warm-up long
 * enough for the balancer to settle; the three servers run one after the
 * other in the same process. On 2 cores the client shares the CPUs with the
 * two hubs, so balancing can at best take the server from one core to what
 * the client leaves of two.
 *
 *   ./bazelw run //bench:balance
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench.h"
#include "greenhub.h"

#define N_HUBS     2
#define N_CONN     32
#define MSG        64
#define WORK_US    20
#define WARMUP_NS  (300 * 1000000LL)
#define SEGMENTS   5
#define SEGMENT_NS (250 * 1000000LL)

typedef enum { MODE_SKEWED, MODE_BALANCED, MODE_REUSEPORT } server_mode;

typedef struct conn conn;
typedef struct server {
    gh_runtime *rt;
    gh_hub *hubs[N_HUBS];
    int lfd[N_HUBS], port;
    server_mode mode;
    atomic_int accepted, stopping, moves;
    conn *conns[N_CONN * 2];
    atomic_int nconns;
} server;

struct conn {
    server *srv;
    int fd;
    _Atomic(gh_hub *) where;   /* the hub it runs on now */
    _Atomic(gh_hub *) move_to; /* set by the balancer; the connection moves itself */
};

static void work(void)
{
    int64_t end = gh_now() + WORK_US * GH_USEC;
    while (gh_now() < end) {
    }
}

static void conn_task(void *arg)
{
    conn *c = arg;
    char buf[MSG * 2];
    for (;;) {
        ssize_t n = gh_read(c->fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0)
            break;
        work();
        if (gh_write_all(c->fd, buf, (size_t)n, 5 * GH_SEC) < 0)
            break;
        gh_hub *to = atomic_exchange(&c->move_to, NULL);
        if (to && gh_migrate(to) == 0) {
            atomic_store(&c->where, to);
            atomic_fetch_add(&c->srv->moves, 1);
        }
    }
    gh_close(c->fd);
}

static void acceptor(void *arg)
{
    server *s = arg;
    gh_hub *self = gh_get_hub();
    int lfd = -1;
    for (int i = 0; i < N_HUBS; i++)
        if (s->hubs[i] == self)
            lfd = s->lfd[i];
    while (!atomic_load(&s->stopping)) {
        int fd = gh_accept(lfd, 50 * GH_MSEC);
        if (fd == -ETIMEDOUT)
            continue;
        if (fd < 0)
            break;
        conn *c = calloc(1, sizeof *c);
        BENCH_CHECK(c != NULL, "calloc");
        c->srv = s;
        c->fd = fd;
        atomic_store(&c->where, self);
        int k = atomic_fetch_add(&s->nconns, 1);
        BENCH_CHECK(k < N_CONN * 2, "too many connections");
        s->conns[k] = c;
        BENCH_CHECK(gh_spawn_n(conn_task, c) == 0, "spawn");
        atomic_fetch_add(&s->accepted, 1);
    }
}

/*
 * Every 20 ms: each hub's busy share since the last look; if the busiest
 * is clearly busier than the idlest, tell half the difference in
 * connections to move from the one to the other.
 */
static void balancer(void *arg)
{
    server *s = arg;
    uint64_t last_busy[N_HUBS] = {0};
    int64_t last = gh_now();
    while (!atomic_load(&s->stopping)) {
        if (gh_sleep(20 * GH_MSEC) != 0)
            break;
        int64_t now = gh_now();
        double share[N_HUBS];
        int count[N_HUBS] = {0};
        for (int i = 0; i < N_HUBS; i++) {
            gh_hub_stats st;
            gh_hub_get_stats(s->hubs[i], &st);
            share[i] = (double)(st.busy_ns - last_busy[i]) / (double)(now - last);
            last_busy[i] = st.busy_ns;
        }
        last = now;
        int n = atomic_load(&s->nconns);
        for (int k = 0; k < n; k++)
            for (int i = 0; i < N_HUBS; i++)
                count[i] += atomic_load(&s->conns[k]->where) == s->hubs[i];
        int hi = 0, lo = 0;
        for (int i = 1; i < N_HUBS; i++) {
            if (share[i] > share[hi])
                hi = i;
            if (share[i] < share[lo])
                lo = i;
        }
        int excess = (count[hi] - count[lo]) / 2;
        if (hi == lo || share[hi] - share[lo] < 0.15 || excess < 1)
            continue;
        for (int k = 0; k < n && excess > 0; k++) {
            conn *c = s->conns[k];
            gh_hub *none = NULL;
            if (atomic_load(&c->where) == s->hubs[hi] &&
                atomic_compare_exchange_strong(&c->move_to, &none, s->hubs[lo]))
                excess--;
        }
    }
}

static void server_start(server *s, server_mode mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    gh_runtime_config cfg = {.threads = N_HUBS};
    BENCH_CHECK(gh_runtime_start(&s->rt, &cfg) == 0, "gh_runtime_start");
    for (int i = 0; i < N_HUBS; i++)
        s->hubs[i] = gh_runtime_hub(s->rt, i);
    int listeners = mode == MODE_REUSEPORT ? N_HUBS : 1;
    s->lfd[0] = gh_listen_ex("127.0.0.1", 0, 1024, mode == MODE_REUSEPORT);
    BENCH_CHECK(s->lfd[0] >= 0, "listen: %s", gh_strerror(s->lfd[0]));
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(s->lfd[0], (struct sockaddr *)&sa, &len);
    s->port = ntohs(sa.sin_port);
    for (int i = 1; i < listeners; i++) {
        s->lfd[i] = gh_listen_ex("127.0.0.1", s->port, 1024, 1);
        BENCH_CHECK(s->lfd[i] >= 0, "listen: %s", gh_strerror(s->lfd[i]));
    }
    for (int i = 0; i < listeners; i++)
        BENCH_CHECK(gh_spawn_on(s->hubs[i], acceptor, s) == 0, "acceptor");
    if (mode == MODE_BALANCED)
        BENCH_CHECK(gh_spawn_on(s->hubs[N_HUBS - 1], balancer, s) == 0, "balancer");
}

static void server_stop(server *s)
{
    atomic_store(&s->stopping, 1);
    gh_runtime_stop(s->rt, 2 * GH_SEC);
    gh_runtime_destroy(s->rt);
    for (int i = 0; i < (s->mode == MODE_REUSEPORT ? N_HUBS : 1); i++)
        close(s->lfd[i]);
    for (int k = 0; k < atomic_load(&s->nconns); k++)
        free(s->conns[k]);
}

/* ---------------------------------------------------------------- clients */

typedef struct clients {
    int epfd, fds[N_CONN], got[N_CONN];
} clients;

static void clients_open(clients *c, int port)
{
    c->epfd = epoll_create1(0);
    BENCH_CHECK(c->epfd >= 0, "epoll_create1");
    for (int i = 0; i < N_CONN; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        BENCH_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
                    strerror(errno));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
        c->fds[i] = fd;
    }
}

static void clients_close(clients *c)
{
    for (int i = 0; i < N_CONN; i++)
        close(c->fds[i]);
    close(c->epfd);
}

/* Round trips per second over @ns, one message in flight per connection. */
static double clients_segment(clients *c, int64_t ns)
{
    static const char msg[MSG] = "greenhub balance bench: 64 bytes of request, echoed back.....";
    char buf[256];
    struct epoll_event evs[N_CONN];
    long count = 0;
    int64_t start = bench_now(), end = start + ns, now = start;
    for (int i = 0; i < N_CONN; i++) {
        c->got[i] = 0;
        BENCH_CHECK(write(c->fds[i], msg, MSG) == MSG, "write");
    }
    while (now < end) {
        int n = epoll_wait(c->epfd, evs, N_CONN, 100);
        BENCH_CHECK(n >= 0 || errno == EINTR, "epoll_wait");
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            ssize_t r = read(c->fds[i], buf, sizeof buf);
            BENCH_CHECK(r > 0, "client read");
            c->got[i] += (int)r;
            if (c->got[i] >= MSG) {
                c->got[i] -= MSG;
                count++;
                BENCH_CHECK(write(c->fds[i], msg, MSG) == MSG, "write");
            }
        }
        now = bench_now();
    }
    for (int i = 0; i < N_CONN; i++)
        while (c->got[i] < MSG) {
            ssize_t r = read(c->fds[i], buf, sizeof buf);
            BENCH_CHECK(r > 0, "client drain");
            c->got[i] += (int)r;
        }
    return (double)count * 1e9 / (double)(now - start);
}

/* One server mode: its round trips per second, and where its connections ended up. */
static double run_mode(server_mode mode, int *on_hub, int *moves)
{
    server s;
    clients c;
    server_start(&s, mode);
    clients_open(&c, s.port);
    while (atomic_load(&s.accepted) < N_CONN) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    clients_segment(&c, WARMUP_NS);
    double r[SEGMENTS];
    for (int i = 0; i < SEGMENTS; i++)
        r[i] = clients_segment(&c, SEGMENT_NS);
    for (int i = 0; i < N_HUBS; i++) {
        on_hub[i] = 0;
        for (int k = 0; k < atomic_load(&s.nconns); k++)
            on_hub[i] += atomic_load(&s.conns[k]->where) == s.hubs[i];
    }
    *moves = atomic_load(&s.moves);
    clients_close(&c);
    server_stop(&s);
    return bench_median(r, SEGMENTS);
}

int main(void)
{
    int64_t begin = bench_now();
    printf("greenhub //bench:balance  (%d hubs on %s; %d connections, %d us of CPU per request; "
           "median of %d segments of %.2f s after %.1f s of warm-up)\n",
           N_HUBS, "the default backend", N_CONN, WORK_US, SEGMENTS, SEGMENT_NS / 1e9,
           WARMUP_NS / 1e9);
    int hubs[3][N_HUBS], moves[3];
    double skewed = run_mode(MODE_SKEWED, hubs[0], &moves[0]);
    double balanced = run_mode(MODE_BALANCED, hubs[1], &moves[1]);
    double reuse = run_mode(MODE_REUSEPORT, hubs[2], &moves[2]);

    bench_table_header("skewed load: every connection accepted on hub 0");
    bench_row("balanced (gh_migrate)", balanced, "/s", "skewed, no balancing", skewed, "/s",
              balanced / skewed, "", "");
    bench_row("SO_REUSEPORT, a listener per hub", reuse, "/s", "skewed, no balancing", skewed, "/s",
              reuse / skewed, "", "");
    bench_row("balanced (gh_migrate)", balanced, "/s", "SO_REUSEPORT", reuse, "/s",
              balanced / reuse, "", "");
    static const char *const names[] = {"skewed", "balanced", "reuseport"};
    printf("\nconnections per hub at the end:");
    for (int m = 0; m < 3; m++) {
        printf("  %s", names[m]);
        for (int i = 0; i < N_HUBS; i++)
            printf(" %d", hubs[m][i]);
        if (m == 1)
            printf(" (%d moves)", moves[m]);
        printf(";");
    }
    printf("\nratio = greenhub / reference (higher is better). 2 cores: the client shares them "
           "with both hubs.\ndone in %.1f s\n",
           (double)(bench_now() - begin) / 1e9);
    return 0;
}
