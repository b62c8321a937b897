/*
 * echo_load.c — echo servers and the io_uring load generator shared by
 * //bench:backends and //bench:echo_peers (see echo_load.h).
 *
 * Fairness: every server reads at most ECHO_BUF bytes at a time and writes
 * back what it read; every listener has TCP_NODELAY, which accepted sockets
 * inherit (with several messages in flight, Nagle would hold echoes back).
 * The server's CPU is read from its thread's clock; the CPU of any other
 * thread of the process (io_uring's io-wq workers, say) is reported beside
 * it, so work pushed off the server thread cannot pass for a cheaper server.
 */
#include "bench/echo_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench.h"
#include "greenhub.h"

static int64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    BENCH_CHECK(clock_gettime(clock, &ts) == 0, "clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static int local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    BENCH_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0, "getsockname");
    return ntohs(sa.sin_port);
}

static void set_nodelay(int fd)
{
    int one = 1;
    BENCH_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0, "TCP_NODELAY");
}

static int raw_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    BENCH_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    BENCH_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind: %s", strerror(errno));
    BENCH_CHECK(listen(fd, 4096) == 0, "listen: %s", strerror(errno));
    set_nodelay(fd);
    return fd;
}

/* --------------------------------------------------------- raw epoll */

static void *raw_epoll_main(void *arg)
{
    echo_server *s = arg;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    BENCH_CHECK(epfd >= 0, "epoll_create1");
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = s->lfd};
    BENCH_CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, s->lfd, &ev) == 0, "epoll_ctl");
    ev.data.fd = s->stopfd;
    BENCH_CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, s->stopfd, &ev) == 0, "epoll_ctl");
    atomic_store(&s->started, 1);
    struct epoll_event evs[256];
    char buf[ECHO_BUF];
    for (;;) {
        int n = epoll_wait(epfd, evs, 256, -1);
        atomic_fetch_add_explicit(&s->iterations, 1, memory_order_relaxed);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == s->stopfd) {
                close(epfd);
                return NULL;
            }
            if (fd == s->lfd) {
                int c;
                while ((c = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    BENCH_CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev) == 0, "epoll_ctl");
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
            epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            atomic_fetch_add(&s->closed, 1);
        }
    }
}

/* ------------------------------------------------------ raw liburing */

/*
 * As fast as we could make it on 6.18: a ring with SINGLE_ISSUER |
 * DEFER_TASKRUN, multishot accept into fixed (direct) files, one multishot
 * recv per connection into a provided buffer ring, the echo sent from that
 * buffer (fixed file) and the buffer handed back on the send's completion,
 * one io_uring_submit_and_wait per iteration. The variants measured against
 * it (echo_server_start's @backend names one; `echo_peers --variants` runs
 * them side by side), as server CPU per round trip over the default's, the
 * median of per-round ratios, 64 active and 1,000 idle + 64, four runs of
 * 7-9 rounds:
 *   "coop"    COOP_TASKRUN instead of DEFER_TASKRUN: 1.01-1.07x with server
 *             and load side by side on two CPUs, but 0.90-0.98x when they
 *             take turns on one CPU (it batches ~26 round trips per wait
 *             against ~16): no clear winner; DEFER_TASKRUN kept for the case
 *             this benchmark is about, a server that is the bottleneck
 *   "plain"   no fixed files (accept into ordinary fds): 0.94-1.05x, no
 *             measurable difference
 *   "single"  single-shot recv into a per-connection buffer, the send linked
 *             to the next recv (IOSQE_IO_LINK), its own CQE skipped:
 *             0.98-1.05x
 *   "ipi"     neither COOP_ nor DEFER_TASKRUN: ~1.35x on two CPUs
 */
enum { URING_NBUF = 1024, URING_FILES = 8192, URING_CONNS = 8192 };
enum { TAG_ACCEPT = 1, TAG_RECV, TAG_SEND, TAG_STOP, TAG_CLOSE };

#define UD(tag, bid, conn) (((uint64_t)(tag) << 56) | ((uint64_t)(bid) << 32) | (uint32_t)(conn))
#define UD_TAG(ud)         ((int)((ud) >> 56))
#define UD_BID(ud)         ((int)(((ud) >> 32) & 0xffffff))
#define UD_CONN(ud)        ((int)(uint32_t)(ud))

typedef struct uring_srv {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    int fixed, multishot;
    char (*cbuf)[ECHO_BUF]; /* "single": a buffer per connection */
} uring_srv;

static struct io_uring_sqe *uring_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    BENCH_CHECK(sqe, "io_uring_get_sqe");
    return sqe;
}

static void uring_arm_accept(uring_srv *u, echo_server *s)
{
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    if (u->fixed)
        io_uring_prep_multishot_accept_direct(sqe, s->lfd, NULL, NULL, 0);
    else
        io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(TAG_ACCEPT, 0, 0));
}

static void uring_arm_recv(uring_srv *u, int conn)
{
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    if (u->multishot) {
        io_uring_prep_recv_multishot(sqe, conn, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = 0;
    } else {
        io_uring_prep_recv(sqe, conn, u->cbuf[conn], ECHO_BUF, 0);
    }
    if (u->fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, UD(TAG_RECV, 0, conn));
}

static void uring_close(uring_srv *u, echo_server *s, int conn)
{
    if (u->fixed) {
        struct io_uring_sqe *sqe = uring_sqe(&u->ring);
        io_uring_prep_close_direct(sqe, (unsigned)conn);
        io_uring_sqe_set_data64(sqe, UD(TAG_CLOSE, 0, conn));
    } else {
        close(conn);
    }
    atomic_fetch_add(&s->closed, 1);
}

static void *raw_uring_main(void *arg)
{
    echo_server *s = arg;
    uring_srv *u = calloc(1, sizeof *u);
    BENCH_CHECK(u, "calloc");
    const char *v = s->backend ? s->backend : "";
    u->fixed = strcmp(v, "plain") != 0;
    u->multishot = strcmp(v, "single") != 0;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_CQSIZE;
    if (strcmp(v, "coop") == 0)
        p.flags |= IORING_SETUP_COOP_TASKRUN;
    else if (strcmp(v, "ipi") != 0)
        p.flags |= IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 16384;
    int err = io_uring_queue_init_params(1024, &u->ring, &p);
    BENCH_CHECK(err == 0, "io_uring_queue_init_params: %s", strerror(-err));
    if (u->fixed) {
        err = io_uring_register_files_sparse(&u->ring, URING_FILES);
        BENCH_CHECK(err == 0, "io_uring_register_files_sparse: %s", strerror(-err));
    }
    if (u->multishot) {
        /* liburing 2.3 has no io_uring_setup_buf_ring: the ring is registered by hand. */
        size_t len = URING_NBUF * sizeof(struct io_uring_buf);
        BENCH_CHECK(posix_memalign((void **)&u->br, 4096, len) == 0, "posix_memalign");
        u->bufs = malloc((size_t)URING_NBUF * ECHO_BUF);
        BENCH_CHECK(u->bufs, "malloc");
        struct io_uring_buf_reg reg = {
            .ring_addr = (uint64_t)(uintptr_t)u->br, .ring_entries = URING_NBUF, .bgid = 0};
        err = io_uring_register_buf_ring(&u->ring, &reg, 0);
        BENCH_CHECK(err == 0, "io_uring_register_buf_ring: %s", strerror(-err));
        io_uring_buf_ring_init(u->br);
        for (int i = 0; i < URING_NBUF; i++)
            io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * ECHO_BUF, ECHO_BUF,
                                  (unsigned short)i, io_uring_buf_ring_mask(URING_NBUF), i);
        io_uring_buf_ring_advance(u->br, URING_NBUF);
    } else {
        u->cbuf = malloc((size_t)URING_CONNS * ECHO_BUF);
        BENCH_CHECK(u->cbuf, "malloc");
    }
    uring_arm_accept(u, s);
    uint64_t stopval;
    struct io_uring_sqe *sqe = uring_sqe(&u->ring);
    io_uring_prep_read(sqe, s->stopfd, &stopval, sizeof stopval, 0);
    io_uring_sqe_set_data64(sqe, UD(TAG_STOP, 0, 0));
    atomic_store(&s->started, 1);

    const int mask = io_uring_buf_ring_mask(URING_NBUF);
    for (bool stop = false; !stop;) {
        err = io_uring_submit_and_wait(&u->ring, 1);
        atomic_fetch_add_explicit(&s->iterations, 1, memory_order_relaxed);
        BENCH_CHECK(err >= 0 || err == -EINTR, "io_uring_submit_and_wait: %s", strerror(-err));
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        int recycled = 0;
        io_uring_for_each_cqe(&u->ring, head, cqe)
        {
            seen++;
            uint64_t ud = cqe->user_data;
            int conn = UD_CONN(ud), res = cqe->res;
            switch (UD_TAG(ud)) {
            case TAG_ACCEPT:
                if (res >= 0) {
                    BENCH_CHECK(u->fixed || res < URING_CONNS, "fd %d past the table", res);
                    atomic_fetch_add(&s->accepted, 1);
                    uring_arm_recv(u, res);
                }
                if (!(cqe->flags & IORING_CQE_F_MORE))
                    uring_arm_accept(u, s);
                break;
            case TAG_RECV:
                if (res > 0) {
                    struct io_uring_sqe *sq = uring_sqe(&u->ring);
                    if (u->multishot) {
                        int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
                        io_uring_prep_send(sq, conn, u->bufs + (size_t)bid * ECHO_BUF, (size_t)res,
                                           0);
                        io_uring_sqe_set_data64(sq, UD(TAG_SEND, bid, conn));
                    } else {
                        io_uring_prep_send(sq, conn, u->cbuf[conn], (size_t)res, 0);
                        io_uring_sqe_set_data64(sq, UD(TAG_SEND, 0, conn));
                        /* The next recv reuses the buffer: it must wait for the send. */
                        sq->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
                    }
                    if (u->fixed)
                        sq->flags |= IOSQE_FIXED_FILE;
                    if (!u->multishot)
                        uring_arm_recv(u, conn);
                    else if (!(cqe->flags & IORING_CQE_F_MORE))
                        uring_arm_recv(u, conn);
                } else if (res == -ENOBUFS) {
                    uring_arm_recv(u, conn);
                } else if (u->multishot ? !(cqe->flags & IORING_CQE_F_MORE) : true) {
                    uring_close(u, s, conn); /* EOF or error */
                }
                break;
            case TAG_SEND:
                if (u->multishot) {
                    io_uring_buf_ring_add(u->br, u->bufs + (size_t)UD_BID(ud) * ECHO_BUF, ECHO_BUF,
                                          (unsigned short)UD_BID(ud), mask, recycled);
                    recycled++;
                }
                /* A failed send: the recv behind it sees the reset, or EOF, and closes. */
                break;
            case TAG_STOP:
                stop = true;
                break;
            default: /* TAG_CLOSE */
                break;
            }
        }
        io_uring_cq_advance(&u->ring, seen);
        if (recycled)
            io_uring_buf_ring_advance(u->br, recycled);
    }
    io_uring_queue_exit(&u->ring);
    free(u->br);
    free(u->bufs);
    free(u->cbuf);
    free(u);
    return NULL;
}

/* ---------------------------------------------------------- greenhub */

static void gh_conn(void *arg)
{
    echo_server *s = *(echo_server **)arg;
    int fd = (int)(intptr_t)((void **)arg)[1];
    free(arg);
    atomic_fetch_add(&s->accepted, 1);
    char buf[ECHO_BUF];
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
    atomic_fetch_add(&s->closed, 1);
}

static void gh_acceptor(void *arg)
{
    echo_server *s = arg;
    for (;;) {
        int fd = gh_accept(s->lfd, GH_FOREVER);
        if (fd == -EBADF || fd == -ECANCELED)
            return;
        if (fd < 0) {
            fprintf(stderr, "bench: gh_accept: %s\n", gh_strerror(fd));
            gh_sleep(GH_MSEC);
            continue;
        }
        void **a = malloc(2 * sizeof *a);
        BENCH_CHECK(a, "malloc");
        a[0] = s;
        a[1] = (void *)(intptr_t)fd;
        BENCH_CHECK(gh_spawn_n(gh_conn, a) == 0, "gh_spawn_n");
    }
}

/* Closing the listener ends the acceptor; the hub's run ends with the last connection. */
static void gh_stopper(void *arg)
{
    echo_server *s = arg;
    uint64_t v;
    ssize_t n = gh_read(s->stopfd, &v, sizeof v, GH_FOREVER);
    BENCH_CHECK(n == sizeof v, "stop read: %s", gh_strerror((int)n));
    gh_close(s->lfd);
}

static void *gh_main(void *arg)
{
    echo_server *s = arg;
    int err = gh_use_hub(s->backend);
    if (err < 0) {
        atomic_store(&s->started, err);
        return NULL;
    }
    s->lfd = gh_listen("127.0.0.1", 0, 4096);
    BENCH_CHECK(s->lfd >= 0, "gh_listen: %s", gh_strerror(s->lfd));
    set_nodelay(s->lfd);
    s->port = local_port(s->lfd);
    atomic_store(&s->hub, gh_get_hub());
    BENCH_CHECK(gh_spawn_n(gh_acceptor, s) == 0 && gh_spawn_n(gh_stopper, s) == 0, "gh_spawn_n");
    atomic_store(&s->started, 1);
    err = gh_hub_run();
    BENCH_CHECK(err == 0, "gh_hub_run: %s", gh_strerror(err));
    err = gh_hub_close();
    BENCH_CHECK(err == 0, "gh_hub_close: %s", gh_strerror(err));
    return NULL;
}

/* ------------------------------------------------------------ server */

int echo_server_start(echo_server *s, echo_kind kind, const char *backend)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->backend = backend;
    s->lfd = -1;
    /* io_uring would fail a read of an O_NONBLOCK eventfd with -EAGAIN rather than wait. */
    s->stopfd = eventfd(0, EFD_CLOEXEC | (kind == ECHO_RAW_URING ? 0 : EFD_NONBLOCK));
    BENCH_CHECK(s->stopfd >= 0, "eventfd: %s", strerror(errno));
    void *(*fn)(void *) = gh_main;
    if (kind != ECHO_GREENHUB) {
        s->lfd = raw_listener();
        s->port = local_port(s->lfd);
        fn = kind == ECHO_RAW_EPOLL ? raw_epoll_main : raw_uring_main;
    }
    BENCH_CHECK(pthread_create(&s->thread, NULL, fn, s) == 0, "pthread_create");
    /* perf report --comm echo-server / echo-load: the server's profile apart from the load's. */
    pthread_setname_np(s->thread, "echo-server");
    pthread_setname_np(pthread_self(), "echo-load");
    int st;
    while ((st = atomic_load(&s->started)) == 0)
        sleep_ms(1);
    if (st < 0) {
        pthread_join(s->thread, NULL);
        close(s->stopfd);
        return st;
    }
    BENCH_CHECK(pthread_getcpuclockid(s->thread, &s->cpu_clock) == 0, "pthread_getcpuclockid");
    return 0;
}

void echo_server_stop(echo_server *s)
{
    int64_t deadline = bench_now() + 10 * 1000000000LL;
    while (atomic_load(&s->closed) < atomic_load(&s->accepted)) {
        BENCH_CHECK(bench_now() < deadline, "%s server: %d of %d connections closed",
                    s->backend ? s->backend : "raw", atomic_load(&s->closed),
                    atomic_load(&s->accepted));
        sleep_ms(1);
    }
    uint64_t one = 1;
    BENCH_CHECK(write(s->stopfd, &one, sizeof one) == sizeof one, "eventfd write");
    pthread_join(s->thread, NULL);
    close(s->stopfd);
    if (s->kind != ECHO_GREENHUB)
        close(s->lfd);
}

int64_t echo_server_cpu_ns(const echo_server *s)
{
    return cpu_ns(s->cpu_clock);
}

static int64_t server_iterations(echo_server *s)
{
    if (s->kind != ECHO_GREENHUB)
        return atomic_load(&s->iterations);
    gh_hub_stats st;
    BENCH_CHECK(gh_hub_get_stats(atomic_load(&s->hub), &st) == 0, "gh_hub_get_stats");
    return (int64_t)st.loop_iterations;
}

/* -------------------------------------------------------------- load */

static char send_buf[ECHO_BUF];

static int client_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BENCH_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    BENCH_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s",
                strerror(errno));
    set_nodelay(fd);
    return fd;
}

enum { LOAD_NBUF = 256 };

/* Multishot, into the provided buffer ring: no SQE per echo, only when the recv stops. */
static void load_recv(echo_load *l, int i)
{
    struct io_uring_sqe *sqe = uring_sqe(&l->ring);
    io_uring_prep_recv_multishot(sqe, i, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, UD(TAG_RECV, 0, i));
}

static void load_send(echo_load *l, int i, int len)
{
    struct io_uring_sqe *sqe = uring_sqe(&l->ring);
    /* MSG_WAITALL: io_uring retries a short send itself; only a failure posts a CQE. */
    io_uring_prep_send(sqe, i, send_buf, (size_t)len, MSG_WAITALL);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, UD(TAG_SEND, 0, i));
    l->inflight[i] += len;
}

static bool server_ready(echo_server *s, int n)
{
    if (atomic_load(&s->accepted) < n)
        return false;
    if (s->kind != ECHO_GREENHUB)
        return true;
    /* Every connection's task waits to read, beside the acceptor and the stopper. */
    gh_hub_stats st;
    BENCH_CHECK(gh_hub_get_stats(atomic_load(&s->hub), &st) == 0, "gh_hub_get_stats");
    return st.fd_waiters >= (uint64_t)n + 2;
}

bool echo_load_open(echo_load *l, echo_server *s, int idle)
{
    memset(send_buf, 'g', sizeof send_buf);
    memset(l->inflight, 0, sizeof l->inflight);
    for (int i = 0; i < idle; i++)
        l->fds[ECHO_ACTIVE + i] = client_connect(s->port);
    for (int i = 0; i < ECHO_ACTIVE; i++)
        l->fds[i] = client_connect(s->port);
    l->n = ECHO_ACTIVE + idle;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int err = io_uring_queue_init_params(256, &l->ring, &p);
    BENCH_CHECK(err == 0, "io_uring_queue_init_params: %s", strerror(-err));
    err = io_uring_register_files(&l->ring, l->fds, ECHO_ACTIVE);
    BENCH_CHECK(err == 0, "io_uring_register_files: %s", strerror(-err));
    BENCH_CHECK(posix_memalign((void **)&l->br, 4096, LOAD_NBUF * sizeof(struct io_uring_buf)) == 0,
                "posix_memalign");
    l->bufs = malloc((size_t)LOAD_NBUF * ECHO_BUF);
    BENCH_CHECK(l->bufs, "malloc");
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)l->br, .ring_entries = LOAD_NBUF, .bgid = 0};
    err = io_uring_register_buf_ring(&l->ring, &reg, 0);
    BENCH_CHECK(err == 0, "io_uring_register_buf_ring: %s", strerror(-err));
    io_uring_buf_ring_init(l->br);
    for (int i = 0; i < LOAD_NBUF; i++)
        io_uring_buf_ring_add(l->br, l->bufs + (size_t)i * ECHO_BUF, ECHO_BUF, (unsigned short)i,
                              io_uring_buf_ring_mask(LOAD_NBUF), i);
    io_uring_buf_ring_advance(l->br, LOAD_NBUF);
    for (int i = 0; i < ECHO_ACTIVE; i++)
        load_recv(l, i);
    io_uring_submit(&l->ring);
    int64_t deadline = bench_now() + 20 * 1000000000LL;
    while (!server_ready(s, l->n)) {
        if (atomic_load(&s->einval))
            return false;
        BENCH_CHECK(bench_now() < deadline, "server took %d of %d connections",
                    atomic_load(&s->accepted), l->n);
        sleep_ms(1);
    }
    return !atomic_load(&s->einval);
}

void echo_load_close(echo_load *l)
{
    io_uring_queue_exit(&l->ring); /* cancels the recvs in flight, drops the fixed files */
    free(l->br);
    free(l->bufs);
    for (int i = 0; i < l->n; i++)
        close(l->fds[i]);
    l->n = 0;
}

echo_result echo_load_run(echo_load *l, echo_server *s, int64_t ns)
{
    int64_t c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), p0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    int64_t s0 = echo_server_cpu_ns(s), i0 = server_iterations(s);
    int64_t start = bench_now(), end = start + ns, now = start, window_ns = 0;
    int64_t bytes = 0, window_bytes = 0, inflight = 0, last_progress = start, recvs = 0;
    for (int i = 0; i < ECHO_ACTIVE; i++) {
        load_send(l, i, ECHO_DEPTH * ECHO_MSG);
        inflight += ECHO_DEPTH * ECHO_MSG;
    }
    bool sending = true;
    while (sending || inflight > 0) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000};
        struct io_uring_cqe *cqe;
        int err = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
        BENCH_CHECK(err >= 0 || err == -ETIME || err == -EINTR, "client wait: %s", strerror(-err));
        unsigned head, seen = 0;
        int recycled = 0;
        io_uring_for_each_cqe(&l->ring, head, cqe)
        {
            seen++;
            int i = UD_CONN(cqe->user_data), res = cqe->res;
            if (res == -ENOBUFS) {
                load_recv(l, i);
                continue;
            }
            BENCH_CHECK(UD_TAG(cqe->user_data) == TAG_RECV && res > 0, "client %s: %s",
                        UD_TAG(cqe->user_data) == TAG_RECV ? "recv" : "send",
                        res == 0 ? "EOF" : strerror(-res));
            int bid = (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
            /* What came back is what was sent, and no more: a server that echoes
             * garbage, or too much, fails here rather than posting a figure. */
            BENCH_CHECK(memcmp(l->bufs + (size_t)bid * ECHO_BUF, send_buf, (size_t)res) == 0 &&
                            res <= l->inflight[i],
                        "client %d: %d bytes back, %lld owed, not what was sent", i, res,
                        (long long)l->inflight[i]);
            io_uring_buf_ring_add(l->br, l->bufs + (size_t)bid * ECHO_BUF, ECHO_BUF,
                                  (unsigned short)bid, io_uring_buf_ring_mask(LOAD_NBUF),
                                  recycled++);
            bytes += res;
            recvs++;
            l->inflight[i] -= res;
            inflight -= res;
            if (sending) {
                load_send(l, i, res);
                inflight += res;
            }
            if (!(cqe->flags & IORING_CQE_F_MORE))
                load_recv(l, i);
        }
        io_uring_cq_advance(&l->ring, seen);
        io_uring_buf_ring_advance(l->br, recycled);
        now = bench_now();
        if (seen)
            last_progress = now;
        BENCH_CHECK(now - last_progress < 5 * 1000000000LL, "no echo for 5 s (%lld bytes owed)",
                    (long long)inflight);
        if (sending && now >= end) {
            sending = false;
            window_bytes = bytes;
            window_ns = now - start;
        }
    }
    io_uring_submit(&l->ring); /* the recvs re-armed by the last completions */
    int64_t s1 = echo_server_cpu_ns(s), i1 = server_iterations(s), wall = bench_now() - start;
    int64_t c1 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), p1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    double rts = (double)bytes / ECHO_MSG;
    echo_result r = {
        .rate = (double)window_bytes / ECHO_MSG * 1e9 / (double)window_ns,
        .server_ns = (double)(s1 - s0) / rts,
        .client_pct = 100.0 * (double)(c1 - c0) / (double)wall,
        .server_pct = 100.0 * (double)(s1 - s0) / (double)wall,
        .other_pct = 100.0 * (double)((p1 - p0) - (c1 - c0) - (s1 - s0)) / (double)(s1 - s0),
        .per_recv = rts / (double)recvs,
        .per_iter = rts / (double)(i1 > i0 ? i1 - i0 : 1),
    };
    return r;
}
