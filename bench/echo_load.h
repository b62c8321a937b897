/*
 * echo_load.h — what //bench:backends and //bench:echo_peers share: echo
 * servers (a raw epoll loop, a raw liburing loop, greenhub on any backend),
 * each on a thread of its own whose CPU clock is read, and a cheap io_uring
 * load generator (no syscall per message, multishot receives, sends without
 * completions), so that the server's cost can show.
 *
 * A run: the client keeps ECHO_DEPTH messages of ECHO_MSG bytes in flight on
 * each active connection and sends back every byte as soon as it is echoed
 * (round trips are counted by bytes echoed / ECHO_MSG). Every server reads
 * into an ECHO_BUF-byte buffer and writes back what it read.
 *
 * ECHO_DEPTH is 1: with 4 in flight, every echo came back as one 256-byte
 * read and write (the client sends what it got back in one send), so a
 * "round trip" was a quarter of the server's read + write, at a quarter of
 * the cost. One in flight keeps a round trip one request and one reply.
 */
#ifndef GH_BENCH_ECHO_LOAD_H
#define GH_BENCH_ECHO_LOAD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define ECHO_ACTIVE 64
#define ECHO_IDLE   1000
#define ECHO_MSG    64
#define ECHO_DEPTH  1
#define ECHO_BUF    1024

typedef enum echo_kind {
    ECHO_RAW_EPOLL,
    ECHO_RAW_URING,
    ECHO_GREENHUB,
} echo_kind;

typedef struct echo_server {
    echo_kind kind;
    const char *backend; /* ECHO_GREENHUB: the hub's backend; ECHO_RAW_URING: a variant */
    pthread_t thread;
    clockid_t cpu_clock; /* the server thread's CPU clock */
    int lfd, port, stopfd;
    atomic_int accepted, closed;
    atomic_int einval;  /* a connection the backend could not watch (select: fd >= FD_SETSIZE) */
    atomic_int started; /* 1 set up, < 0 failed (a negative errno) */
    atomic_llong iterations; /* raw loops: waits in epoll_wait / io_uring_enter */
    _Atomic(void *) hub;     /* ECHO_GREENHUB: the server thread's hub */
    struct io_uring *ring;   /* ECHO_RAW_URING */
} echo_server;

/*
 * Start @s on a thread of its own. @backend names greenhub's hub backend
 * (ECHO_GREENHUB), or a variant of the raw liburing loop (ECHO_RAW_URING; NULL:
 * the fastest, see echo_load.c). Returns 0; a negative errno when greenhub's backend
 * cannot be used (-EINVAL: select with fds past FD_SETSIZE).
 */
int echo_server_start(echo_server *s, echo_kind kind, const char *backend);

/* Stop after every client connection was closed: waits for the server to close its side. */
void echo_server_stop(echo_server *s);

/* The server thread's CPU time so far, ns. */
int64_t echo_server_cpu_ns(const echo_server *s);

/* The load: ECHO_ACTIVE active connections (+ idle ones) on one io_uring. */
typedef struct echo_load {
    struct io_uring ring;
    int fds[ECHO_ACTIVE + ECHO_IDLE];
    int n;                         /* connections open */
    int64_t inflight[ECHO_ACTIVE]; /* bytes sent and not yet echoed */
    struct io_uring_buf_ring *br;  /* what the multishot recvs fill: the bytes go unread */
    char *bufs;
} echo_load;

/*
 * Open @idle idle connections to @s, then the active ones, and wait until the
 * server holds them all (for greenhub: each task waiting to read). Returns
 * false when the server could not watch a connection (select).
 */
bool echo_load_open(echo_load *l, echo_server *s, int idle);
void echo_load_close(echo_load *l);

typedef struct echo_result {
    double rate;       /* round trips/s over the timed window */
    double server_ns;  /* server thread CPU per round trip, ns */
    double client_pct; /* client thread CPU / wall, % */
    double server_pct; /* server thread CPU / wall, %: with client_pct, over 100 = on two CPUs */
    double other_pct;  /* CPU of the process's other threads (io-wq, ...) / server CPU, % */
    double per_recv;   /* messages per client recv: how much the echoes coalesce */
    double per_iter;   /* round trips per server loop iteration (one wait each) */
} echo_result;

/*
 * Drive @s through @l for @ns. Every message still in flight at the end is
 * echoed back before it returns; the CPU figures cover that tail too, the rate
 * only the timed window.
 */
echo_result echo_load_run(echo_load *l, echo_server *s, int64_t ns);

#endif /* GH_BENCH_ECHO_LOAD_H */
