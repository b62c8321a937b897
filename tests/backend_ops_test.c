/*
 * backend_ops_test.c — every built-in backend's ops, driven directly with real
 * pipes and socketpairs: no hub, no task. One cmocka group per backend (plus
 * io_uring in multishot mode); a backend the system refuses (-ENOSYS/-EPERM
 * from init) has its group skipped.
 *
 * The fixture keeps its own model of the interest it gave each fd, and the
 * ready callback checks every report against it: an fd is reported at most
 * once per poll, with a non-empty subset of the directions it is watched for
 * at the moment of the report (watch() calls made by callbacks included).
 *
 * ABI 2: a poll waits once and may return 0 early (only stale events, EINTR);
 * where a test needs "nothing for this long" it polls as the hub does, again
 * with the time left (poll_quiet), and bounds how many polls that took. Each
 * backend's caps are checked against what it really does with a regular file
 * and a directory. A last group drives a hub: an ABI 1 table is refused, and
 * a backend that returns early at every turn never makes a sleep or a timer
 * end early.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "greenhub_backend.h"

#define MAX_FD     65536
#define MAX_REPORT 4096
#define MS         1000000LL
/* Timing checks never allow early; late is allowed generously (sanitizers, noisy CI). */
#define LATE_NS (800 * MS)
/* Polls poll_quiet may take for one quiet stretch: a few early returns (a
 * stale event, a removal's CQE) are fine; a timeout rounded down to nothing
 * would take hundreds. */
#define QUIET_MAX_POLLS 8

/** A group: one backend, maybe in a mode chosen through the environment. */
typedef struct backend_case {
    const gh_backend_ops *ops;
    const char *env_name; /* set to env_value for init, or NULL */
    const char *env_value;
    char label[64];
} backend_case;

typedef struct report {
    int fd;
    int events;
} report;

typedef struct fixture fixture;
typedef void (*hook_fn)(fixture *f, int fd, int events);

struct fixture {
    const backend_case *bc;
    void *st; /* backend state, NULL when the backend is unavailable */
    int init_err;
    int open_fds_before;      /* to check that destroy and the test leak no fd */
    uint8_t interest[MAX_FD]; /* our model of what each fd is watched for */
    int owned[4096];          /* fds the test opened, closed at teardown */
    int nowned;
    report got[MAX_REPORT]; /* reports of the last poll */
    int ngot;
    hook_fn hook;    /* called from the ready callback */
    int hook_fds[4]; /* hook parameters */
    int hook_done;
};

/* ---- helpers ---------------------------------------------------------- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

static int is_select(const fixture *f)
{
    return strcmp(f->bc->ops->name, "select") == 0;
}

static int is_libevent(const fixture *f)
{
    return strcmp(f->bc->ops->name, "libevent") == 0;
}

static void own(fixture *f, int fd)
{
    assert_true(f->nowned < (int)(sizeof(f->owned) / sizeof(f->owned[0])));
    f->owned[f->nowned++] = fd;
}

static void disown(fixture *f, int fd)
{
    for (int i = 0; i < f->nowned; i++) {
        if (f->owned[i] == fd) {
            f->owned[i] = f->owned[--f->nowned];
            return;
        }
    }
}

static void close_fd(fixture *f, int fd)
{
    disown(f, fd);
    assert_int_equal(close(fd), 0);
}

static void make_pipe(fixture *f, int p[2])
{
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    own(f, p[0]);
    own(f, p[1]);
}

static void make_socketpair(fixture *f, int s[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
    own(f, s[0]);
    own(f, s[1]);
}

static void put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

/* Change fd's interest, passing the old interest from our model. */
static int watch(fixture *f, int fd, int events)
{
    int old = fd >= 0 && fd < MAX_FD ? f->interest[fd] : 0;
    int r = f->bc->ops->watch(f->st, fd, old, events);
    if (r == 0 && fd >= 0 && fd < MAX_FD)
        f->interest[fd] = (uint8_t)events;
    return r;
}

static void watch_ok(fixture *f, int fd, int events)
{
    assert_int_equal(watch(f, fd, events), 0);
}

static void on_ready(void *ctx, int fd, int events)
{
    fixture *f = ctx;
    assert_true(fd >= 0 && fd < MAX_FD);
    assert_true(events != 0);
    assert_int_equal(events & ~(GH_READ | GH_WRITE), 0);
    /* Only directions watched right now. */
    assert_int_equal(events & ~f->interest[fd], 0);
    for (int i = 0; i < f->ngot; i++)
        assert_int_not_equal(f->got[i].fd, fd); /* at most once per poll */
    assert_true(f->ngot < MAX_REPORT);
    f->got[f->ngot++] = (report){fd, events};
    if (f->hook)
        f->hook(f, fd, events);
}

/* One poll; checks that its return value counts the reports. */
static int poll_for(fixture *f, int64_t timeout_ns)
{
    f->ngot = 0;
    int r = f->bc->ops->poll(f->st, timeout_ns, on_ready, f);
    assert_true(r >= 0);
    assert_int_equal(r, f->ngot);
    return r;
}

/* The events reported for fd by the last poll, 0 if none. */
static int got(const fixture *f, int fd)
{
    for (int i = 0; i < f->ngot; i++)
        if (f->got[i].fd == fd)
            return f->got[i].events;
    return 0;
}

/*
 * Poll as the hub does until @timeout_ns has passed on our clock: an early
 * return (0, allowed) is followed by a poll for the time left. Nothing may be
 * reported. Fails if that took more than QUIET_MAX_POLLS polls (a spin).
 * @return the number of polls.
 */
static int poll_quiet(fixture *f, int64_t timeout_ns)
{
    int64_t deadline = now_ns() + timeout_ns;
    int polls = 0;
    for (int64_t left = timeout_ns; left > 0; left = deadline - now_ns()) {
        assert_int_equal(poll_for(f, left), 0);
        if (++polls > QUIET_MAX_POLLS)
            fail_msg("%s: %d polls and %lld ns still left of %lld", f->bc->label, polls,
                     (long long)left, (long long)timeout_ns);
    }
    return polls;
}

/* Poll until fd is reported (a backend may wake for other reasons), at most 2s. */
static int poll_until(fixture *f, int fd)
{
    int64_t end = now_ns() + 2000 * MS;
    do {
        poll_for(f, 500 * MS);
        if (got(f, fd))
            return got(f, fd);
    } while (now_ns() < end);
    return 0;
}

/* ---- fixture ---------------------------------------------------------- */

static int setup(void **state)
{
    const backend_case *bc = *state;
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->bc = bc;
    f->open_fds_before = count_open_fds();
    if (bc->env_name)
        setenv(bc->env_name, bc->env_value, 1);
    f->init_err = bc->ops->init(&f->st);
    if (bc->env_name)
        unsetenv(bc->env_name);
    if (f->init_err) {
        /* Only "the system refuses this mechanism" may skip a backend. */
        assert_true(f->init_err == -ENOSYS || f->init_err == -EPERM);
        f->st = NULL;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->st)
        f->bc->ops->destroy(f->st);
    while (f->nowned)
        close(f->owned[--f->nowned]);
    int leaked = count_open_fds() - f->open_fds_before;
    *state = (void *)f->bc;
    free(f);
    if (leaked != 0) {
        fprintf(stderr, "fd leak: %d\n", leaked);
        return -1;
    }
    return 0;
}

#define NEED_BACKEND(f)                                                                            \
    do {                                                                                           \
        if (!(f)->st) {                                                                            \
            print_message("[ SKIP ] %s: init returned %d\n", (f)->bc->label, (f)->init_err);       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- tests ------------------------------------------------------------ */

static void test_backend_init_destroy(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    assert_int_equal(f->bc->ops->abi, GH_BACKEND_ABI);
    int p[2];
    make_pipe(f, p);
    for (int i = 0; i < 3; i++) {
        void *st = NULL;
        assert_int_equal(f->bc->ops->init(&st), 0);
        assert_non_null(st);
        assert_int_equal(f->bc->ops->watch(st, p[0], 0, GH_READ), 0);
        assert_int_equal(f->bc->ops->watch(st, p[1], 0, GH_WRITE), 0);
        f->bc->ops->destroy(st);
        /* destroy does not close watched fds */
        assert_true(fcntl(p[0], F_GETFD) >= 0);
        assert_true(fcntl(p[1], F_GETFD) >= 0);
    }
}

static void test_backend_read_after_write(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    assert_int_equal(poll_for(f, 0), 0);
    assert_int_equal(poll_for(f, 30 * MS), 0);
    put_byte(p[1]);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, p[0]), GH_READ);
}

static void test_backend_level_triggered(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    put_byte(p[1]);
    /* Not drained: reported by every poll, whatever its timeout. */
    for (int i = 0; i < 4; i++) {
        int64_t t0 = now_ns();
        assert_int_equal(poll_for(f, i % 2 ? 0 : 1000 * MS), 1);
        assert_int_equal(got(f, p[0]), GH_READ);
        assert_true(now_ns() - t0 < 500 * MS);
    }
    drain(p[0]);
    assert_int_equal(poll_for(f, 0), 0);
    assert_int_equal(poll_for(f, 20 * MS), 0);
    /* And again after new data. */
    put_byte(p[1]);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(poll_for(f, 0), 1);
}

static void test_backend_write_ready_at_once(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[1], GH_WRITE);
    int64_t t0 = now_ns();
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, p[1]), GH_WRITE);
    assert_true(now_ns() - t0 < 500 * MS);
    assert_int_equal(poll_for(f, 0), 1); /* level-triggered for writing too */

    /* Full pipe: not writable; room again: writable. */
    static char chunk[4096];
    while (write(p[1], chunk, sizeof(chunk)) > 0) {
    }
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(poll_for(f, 30 * MS), 0);
    drain(p[0]);
    assert_int_equal(poll_until(f, p[1]), GH_WRITE);
}

static void test_backend_change_interest(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int s[2];
    make_socketpair(f, s);
    /* Writable only: no GH_READ, whatever happens. */
    watch_ok(f, s[0], GH_WRITE);
    put_byte(s[1]);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, s[0]), GH_WRITE);

    watch_ok(f, s[0], GH_READ | GH_WRITE);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, s[0]), GH_READ | GH_WRITE);

    watch_ok(f, s[0], GH_READ);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, s[0]), GH_READ);

    drain(s[0]);
    assert_int_equal(poll_for(f, 20 * MS), 0);
    watch_ok(f, s[0], GH_READ | GH_WRITE);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, s[0]), GH_WRITE);
}

static void test_backend_forget(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    put_byte(p[1]);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    watch_ok(f, p[0], 0);
    /* The kernel may still hold a stale event for it (libev forgets lazily):
     * a poll may end early, reporting nothing. */
    poll_quiet(f, 30 * MS);
    assert_int_equal(poll_for(f, 0), 0);
    /* Forgetting twice, or an fd never watched, is harmless. */
    watch_ok(f, p[0], 0);
    watch_ok(f, p[1], 0);
    /* And it can be watched again. */
    watch_ok(f, p[0], GH_READ);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, p[0]), GH_READ);
}

static void test_backend_forget_close_reuse(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int a[2], b[2];
    make_pipe(f, a);
    watch_ok(f, a[0], GH_READ);
    put_byte(a[1]); /* the old file is ready: no stale report may leak out */
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    watch_ok(f, a[0], 0);
    int old = a[0];
    close_fd(f, a[0]);
    close_fd(f, a[1]);
    make_pipe(f, b);
    assert_int_equal(b[0], old); /* the lowest free number comes back */
    watch_ok(f, b[0], GH_READ);
    assert_int_equal(poll_for(f, 0), 0);
    assert_int_equal(poll_for(f, 30 * MS), 0);
    put_byte(b[1]);
    assert_int_equal(poll_until(f, b[0]), GH_READ);
}

/* The fd is closed without being forgotten, its number reused, and the hub
 * (which lost track) watches the new fd as new: the backend must cope. */
static void test_backend_close_behind_back_reuse(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int a[2], b[2];
    make_pipe(f, a);
    watch_ok(f, a[0], GH_READ);
    assert_int_equal(poll_for(f, 0), 0); /* registered in the kernel by now */
    int old = a[0];
    close_fd(f, a[0]);
    close_fd(f, a[1]);
    make_pipe(f, b);
    assert_int_equal(b[0], old);
    f->interest[b[0]] = 0; /* the hub thinks it is new: old_events = 0 */
    watch_ok(f, b[0], GH_READ);
    assert_int_equal(poll_for(f, 30 * MS), 0);
    put_byte(b[1]);
    assert_int_equal(poll_until(f, b[0]), GH_READ);
    watch_ok(f, b[0], 0);
}

/* After watch(fd, old, 0) the backend holds no reference to the file: closing
 * the fd really closes it (the peer sees EOF without another poll). */
static void test_backend_close_after_forget_releases(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int s[2];
    make_socketpair(f, s);
    watch_ok(f, s[0], GH_READ);
    assert_int_equal(poll_for(f, 0), 0); /* in flight in the kernel */
    watch_ok(f, s[0], 0);
    close_fd(f, s[0]);
    char c;
    assert_int_equal(recv(s[1], &c, 1, MSG_DONTWAIT), 0);
    assert_int_equal(poll_for(f, 0), 0);
}

static void test_backend_hangup_readable(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2], s[2], t[2], q[2];
    make_pipe(f, p);
    make_socketpair(f, s);
    make_socketpair(f, t);
    make_pipe(f, q);
    watch_ok(f, p[0], GH_READ);
    watch_ok(f, s[0], GH_READ);
    watch_ok(f, t[0], GH_READ);
    watch_ok(f, q[0], GH_READ | GH_WRITE); /* a read end is never writable... */
    assert_int_equal(poll_for(f, 20 * MS), 0);

    close_fd(f, p[1]);
    close_fd(f, s[1]);
    assert_int_equal(shutdown(t[1], SHUT_WR), 0);
    close_fd(f, q[1]);
    int64_t end = now_ns() + 2000 * MS;
    int seen_p = 0, seen_s = 0, seen_t = 0, seen_q = 0;
    while ((!seen_p || !seen_s || !seen_t || !seen_q) && now_ns() < end) {
        poll_for(f, 500 * MS);
        seen_p |= got(f, p[0]);
        seen_s |= got(f, s[0]);
        seen_t |= got(f, t[0]);
        seen_q |= got(f, q[0]);
    }
    assert_int_equal(seen_p, GH_READ);
    assert_int_equal(seen_s, GH_READ);
    assert_int_equal(seen_t, GH_READ);
    /* ...but a hang-up is reported as every watched direction (select cannot
     * tell a hang-up from readability: readable only). */
    assert_int_equal(seen_q, is_select(f) ? GH_READ : GH_READ | GH_WRITE);
    /* Still reported: level-triggered. */
    assert_int_equal(poll_for(f, 1000 * MS), 4);
}

static void fill_send_buffer(int fd)
{
    static char chunk[4096];
    while (send(fd, chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
    }
    assert_int_equal(errno, EAGAIN);
    while (send(fd, chunk, 1, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
    }
}

/* The peer shuts its write side (RDHUP) while our send buffer is full: that
 * is GH_READ only. Reporting GH_WRITE too would wake a writer waiting on the
 * full buffer at every poll, to meet EAGAIN again: a busy loop. A full
 * hang-up (the peer closes) is still every watched direction. */
static void test_backend_half_close_read_only(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int s[2];
    make_socketpair(f, s);
    fill_send_buffer(s[0]);
    watch_ok(f, s[0], GH_READ | GH_WRITE);
    assert_int_equal(poll_for(f, 30 * MS), 0); /* full, nothing to read */

    assert_int_equal(shutdown(s[1], SHUT_WR), 0);
    assert_int_equal(poll_until(f, s[0]), GH_READ);
    /* Level-triggered, and never GH_WRITE while the buffer stays full. */
    for (int i = 0; i < 6; i++) {
        assert_int_equal(poll_for(f, i % 2 ? 0 : 1000 * MS), 1);
        assert_int_equal(got(f, s[0]), GH_READ);
    }
    char c;
    assert_int_equal(recv(s[0], &c, 1, MSG_DONTWAIT), 0); /* EOF */

    /* Watched for writing only (the hub drops read interest nobody waits
     * on): the half-close reports nothing at all, and the poll sleeps
     * rather than spins (io_uring's poll always includes RDHUP: a
     * single-shot re-arm completed at once, again and again). */
    watch_ok(f, s[0], GH_WRITE);
    int64_t cpu0 = thread_cpu_ns();
    int polls = poll_quiet(f, 100 * MS); /* early returns allowed, a spin is not */
    int64_t cpu = thread_cpu_ns() - cpu0;
    if (cpu > 25 * MS)
        fail_msg("%s: 100 ms of polls (%d) used %lld ms of CPU", f->bc->label, polls,
                 (long long)(cpu / MS));

    /* The peer reads: room again, and that is GH_WRITE. */
    drain(s[1]);
    assert_int_equal(poll_until(f, s[0]), GH_WRITE);

    /* Full again, then the peer closes: both directions are gone. */
    watch_ok(f, s[0], GH_READ | GH_WRITE);
    fill_send_buffer(s[0]);
    close_fd(f, s[1]);
    int seen = poll_until(f, s[0]);
    /* select has no hang-up bit: readable, and writable only if the kernel
     * says so (it may: the peer's queue was freed). */
    if (is_select(f))
        assert_true(seen & GH_READ);
    else
        assert_int_equal(seen, GH_READ | GH_WRITE);
    watch_ok(f, s[0], 0);
}

/* Polled as the hub does (poll_quiet), a quiet stretch lasts its timeout, give
 * or take LATE_NS, in a few polls. An early return is allowed (io_uring's
 * first wait may end on init's own CQEs), a timeout rounded down is not: it
 * leaves a remainder below the mechanism's resolution that rounds down to
 * zero-length waits, a spin that poll_quiet stops. */
static void check_timeout(fixture *f, int64_t timeout_ns)
{
    int64_t t0 = now_ns();
    poll_quiet(f, timeout_ns);
    int64_t took = now_ns() - t0;
    if (took < timeout_ns)
        fail_msg("%s: poll(%lld ns) returned after %lld ns", f->bc->label, (long long)timeout_ns,
                 (long long)took);
    if (took > timeout_ns + LATE_NS)
        fail_msg("%s: poll(%lld ns) took %lld ns", f->bc->label, (long long)timeout_ns,
                 (long long)took);
}

static void test_backend_timeout_never_early(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    check_timeout(f, 20 * MS); /* nothing watched at all */
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    const int64_t timeouts[] = {1, 1000, 999999, 1 * MS, 1500000, 2 * MS + 1, 20 * MS, 20 * MS};
    for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
        check_timeout(f, timeouts[i]);
}

static void test_backend_timeout_zero_does_not_sleep(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    int64_t t0 = now_ns();
    for (int i = 0; i < 100; i++)
        assert_int_equal(poll_for(f, 0), 0);
    int64_t took = now_ns() - t0;
    if (took > 300 * MS)
        fail_msg("100 polls with timeout 0 took %lld ms", (long long)(took / MS));
}

static void test_backend_forever_returns_when_ready(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    put_byte(p[1]);
    assert_int_equal(poll_for(f, -1), 1);
    assert_int_equal(got(f, p[0]), GH_READ);
}

static void test_backend_bad_arguments(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    assert_int_equal(f->bc->ops->watch(f->st, p[0], 0, 4), -EINVAL);
    assert_true(f->bc->ops->watch(f->st, -1, 0, GH_READ) < 0);
    f->ngot = 0;
    assert_int_equal(f->bc->ops->poll(f->st, -2, on_ready, f), -EINVAL);
}

static void test_backend_high_fd(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    int high = rl.rlim_cur > 10001 ? 10000 : (int)rl.rlim_cur - 1;
    if (high < FD_SETSIZE) {
        print_message("[ SKIP ] RLIMIT_NOFILE %ld leaves no fd >= FD_SETSIZE\n", (long)rl.rlim_cur);
        skip();
    }
    int p[2];
    make_pipe(f, p);
    assert_int_equal(dup2(p[0], high), high);
    own(f, high);
    if (is_select(f)) {
        assert_int_equal(watch(f, high, GH_READ), -EINVAL);
        assert_int_equal(watch(f, FD_SETSIZE, GH_READ), -EINVAL);
        assert_int_equal(watch(f, -1, GH_READ), -EINVAL);
        watch_ok(f, p[0], GH_READ); /* an fd below FD_SETSIZE still works */
        put_byte(p[1]);
        assert_int_equal(poll_for(f, 1000 * MS), 1);
        return;
    }
    watch_ok(f, high, GH_READ);
    assert_int_equal(poll_for(f, 0), 0);
    put_byte(p[1]);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, high), GH_READ);
    watch_ok(f, high, 0);
}

/* Hook: the first time one of hook_fds[0..1] is reported, forget the other. */
static void hook_forget_other(fixture *f, int fd, int events)
{
    if (f->hook_done)
        return;
    f->hook_done = 1;
    int other = fd == f->hook_fds[0] ? f->hook_fds[1] : f->hook_fds[0];
    watch_ok(f, other, 0);
}

/* Hook: forget the other, close its pipe, open a new pipe that takes its
 * number (hook_fds[2] gets the new write end) and watch the new read end. */
static void hook_forget_close_reuse_other(fixture *f, int fd, int events)
{
    if (f->hook_done)
        return;
    f->hook_done = 1;
    int which = fd == f->hook_fds[0] ? 1 : 0;
    int other = f->hook_fds[which];
    int other_w = f->hook_fds[2 + which];
    watch_ok(f, other, 0);
    close_fd(f, other);
    close_fd(f, other_w);
    int n[2];
    make_pipe(f, n);
    assert_int_equal(n[0], other);
    f->hook_fds[which] = n[0];
    f->hook_fds[2 + which] = n[1];
    watch_ok(f, n[0], GH_READ); /* empty: must not be reported */
}

/* Hook: switch the other (a pipe's read end) from GH_READ to GH_WRITE. */
static void hook_switch_other_to_write(fixture *f, int fd, int events)
{
    if (f->hook_done)
        return;
    f->hook_done = 1;
    int other = fd == f->hook_fds[0] ? f->hook_fds[1] : f->hook_fds[0];
    watch_ok(f, other, GH_WRITE);
}

static void reentrant_case(fixture *f, hook_fn hook)
{
    int a[2], b[2];
    make_pipe(f, a);
    make_pipe(f, b);
    watch_ok(f, a[0], GH_READ);
    watch_ok(f, b[0], GH_READ);
    put_byte(a[1]);
    put_byte(b[1]);
    /* Let both be ready in the backend before the poll that dispatches them. */
    f->hook = hook;
    f->hook_done = 0;
    f->hook_fds[0] = a[0];
    f->hook_fds[1] = b[0];
    f->hook_fds[2] = a[1];
    f->hook_fds[3] = b[1];
    assert_int_equal(poll_for(f, 1000 * MS), 1); /* the other one: not reported */
    int first = f->got[0].fd;
    assert_true(first == a[0] || first == b[0]);
    f->hook = NULL;
    int other = first == f->hook_fds[0] ? f->hook_fds[1] : f->hook_fds[0];
    /* Level-triggered: the first one again; the other per its new interest. */
    assert_int_equal(poll_for(f, 20 * MS), 1);
    assert_int_equal(got(f, first), GH_READ);
    assert_int_equal(got(f, other), 0);
}

static void test_backend_reentrant_forget(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    reentrant_case(f, hook_forget_other);
}

static void test_backend_reentrant_forget_close_reuse(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    reentrant_case(f, hook_forget_close_reuse_other);
}

static void test_backend_reentrant_change(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    reentrant_case(f, hook_switch_other_to_write);
}

/* Hook: forget the fd being reported, re-watch it at once (same number). */
static void hook_forget_self_rewatch(fixture *f, int fd, int events)
{
    watch_ok(f, fd, 0);
    watch_ok(f, fd, GH_READ);
}

static void test_backend_reentrant_self(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    put_byte(p[1]);
    f->hook = hook_forget_self_rewatch;
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    f->hook = NULL;
    assert_int_equal(poll_until(f, p[0]), GH_READ);
}

static void test_backend_many_fds(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    enum { NPIPES = 500, NWRITE = 10 };
    static int rd[NPIPES], wr[NPIPES];
    int npipes = NPIPES;
    for (int i = 0; i < npipes; i++) {
        int p[2];
        make_pipe(f, p);
        if (is_select(f) && p[1] >= FD_SETSIZE) {
            npipes = i; /* select holds fds below FD_SETSIZE only */
            break;
        }
        rd[i] = p[0];
        wr[i] = p[1];
        watch_ok(f, rd[i], GH_READ);
    }
    assert_true(npipes >= 400);
    assert_int_equal(poll_for(f, 0), 0);

    unsigned seed = (unsigned)now_ns();
    print_message("many_fds: %d pipes, seed %u\n", npipes, seed);
    srand(seed);
    int chosen[NWRITE];
    for (int k = 0; k < NWRITE; k++) {
        int i, dup;
        do {
            i = rand() % npipes;
            dup = 0;
            for (int j = 0; j < k; j++)
                dup |= chosen[j] == i;
        } while (dup);
        chosen[k] = i;
        put_byte(wr[i]);
    }
    for (int round = 0; round < 2; round++) {
        assert_int_equal(poll_for(f, round ? 0 : 1000 * MS), NWRITE);
        for (int k = 0; k < NWRITE; k++)
            assert_int_equal(got(f, rd[chosen[k]]), GH_READ);
    }
    for (int k = 0; k < NWRITE / 2; k++)
        drain(rd[chosen[k]]);
    assert_int_equal(poll_for(f, 1000 * MS), NWRITE - NWRITE / 2);
    for (int k = NWRITE / 2; k < NWRITE; k++)
        assert_int_equal(got(f, rd[chosen[k]]), GH_READ);
    for (int i = 0; i < npipes; i++)
        watch_ok(f, rd[i], 0);
    assert_int_equal(poll_for(f, 0), 0);
}

/* An fd closed without being forgotten must not break the backend. Where the
 * mechanism can see it (poll: POLLNVAL, select: EBADF, io_uring: the poll
 * armed after the close fails, libev: EV_ERROR), it is reported as every
 * watched direction, and again at the next poll; epoll and libevent
 * registered the fd at watch() and the kernel dropped it silently. */
static void test_backend_closed_fd_not_fatal(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2], q[2];
    make_pipe(f, p);
    make_pipe(f, q);
    watch_ok(f, q[0], GH_READ);
    watch_ok(f, p[0], GH_READ | GH_WRITE);
    int closed = p[0];
    close_fd(f, p[0]);
    put_byte(q[1]);
    const char *name = f->bc->ops->name;
    int visible = !strcmp(name, "poll") || !strcmp(name, "select") || !strcmp(name, "io_uring") ||
                  !strcmp(name, "libev");
    int64_t end = now_ns() + 1000 * MS;
    int seen = 0;
    do {
        poll_for(f, 100 * MS);
        seen |= got(f, closed);
    } while (visible && !seen && now_ns() < end);
    if (visible) {
        assert_int_equal(seen, GH_READ | GH_WRITE);
        assert_int_equal(poll_for(f, 1000 * MS), 2); /* still: level-triggered */
        assert_int_equal(got(f, closed), GH_READ | GH_WRITE);
    }
    assert_int_equal(got(f, q[0]), GH_READ); /* the others keep working */
    watch_ok(f, closed, 0);
    assert_int_equal(poll_for(f, 1000 * MS), 1);
    assert_int_equal(got(f, q[0]), GH_READ);
}

/* Many ready fds forgotten at once, their data left unread: whatever the
 * kernel still holds for them is stale. A poll may end early on it (ABI 2),
 * reporting nothing; polling again as the hub does stays quiet, no spin. */
static void test_backend_stale_only_is_quiet(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    enum { NPIPES = 50 };
    int rd[NPIPES];
    for (int i = 0; i < NPIPES; i++) {
        int p[2];
        make_pipe(f, p);
        rd[i] = p[0];
        watch_ok(f, p[0], GH_READ);
        put_byte(p[1]);
    }
    /* All reported (libevent's event buffer starts at 32: maybe over polls). */
    static uint8_t seen_fd[MAX_FD];
    memset(seen_fd, 0, sizeof(seen_fd));
    int seen = 0;
    for (int round = 0; round < 10 && seen < NPIPES; round++) {
        poll_for(f, 1000 * MS);
        for (int k = 0; k < f->ngot; k++) {
            assert_int_equal(f->got[k].events, GH_READ);
            seen += !seen_fd[f->got[k].fd];
            seen_fd[f->got[k].fd] = 1;
        }
    }
    assert_int_equal(seen, NPIPES);
    for (int i = 0; i < NPIPES; i++)
        watch_ok(f, rd[i], 0);
    int64_t t0 = now_ns();
    poll_quiet(f, 50 * MS);
    int64_t took = now_ns() - t0;
    assert_true(took >= 50 * MS && took < 50 * MS + LATE_NS);
    /* Still forgotten for good: a new byte on one of them is not reported. */
    assert_int_equal(poll_for(f, 0), 0);
}

/* GH_BACKEND_FILES_READY is declared exactly when it is true: watch() takes a
 * regular file and a directory and poll reports them ready for every watched
 * direction, again and again; without it watch() refuses them with -EPERM. */
static void test_backend_caps_match_files(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    unsigned caps = f->bc->ops->caps;
    assert_int_equal(
        caps & ~(GH_BACKEND_FILES_READY | GH_BACKEND_READ_FIRST | GH_BACKEND_COMPLETION), 0u);

    const char *dir = getenv("TEST_TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/backend_ops_file_XXXXXX", dir ? dir : "/tmp");
    int file = mkstemp(path);
    assert_true(file >= 0);
    own(f, file);
    assert_int_equal(unlink(path), 0);
    int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    own(f, dfd);

    int rf = watch(f, file, GH_READ | GH_WRITE);
    int rd = watch(f, dfd, GH_READ);
    if (!(caps & GH_BACKEND_FILES_READY)) {
        if (rf != -EPERM || rd != -EPERM)
            fail_msg("%s: no GH_BACKEND_FILES_READY, but watch() of a regular file says %d, "
                     "of a directory %d (want -EPERM)",
                     f->bc->label, rf, rd);
        assert_int_equal(poll_for(f, 0), 0);
        return;
    }
    if (rf != 0 || rd != 0)
        fail_msg("%s: GH_BACKEND_FILES_READY, but watch() of a regular file says %d, of a "
                 "directory %d",
                 f->bc->label, rf, rd);
    for (int round = 0; round < 3; round++) {
        int64_t t0 = now_ns();
        assert_int_equal(poll_for(f, round == 1 ? 0 : 1000 * MS), 2);
        assert_true(now_ns() - t0 < 500 * MS);
        assert_int_equal(got(f, file), GH_READ | GH_WRITE);
        assert_int_equal(got(f, dfd), GH_READ);
    }
    watch_ok(f, file, 0);
    watch_ok(f, dfd, 0);
    poll_quiet(f, 20 * MS);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
    alarms++;
}

static void test_backend_eintr_returns_zero(void **state)
{
    fixture *f = *state;
    NEED_BACKEND(f);
    int p[2];
    make_pipe(f, p);
    watch_ok(f, p[0], GH_READ);
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old_sa), 0);
    struct itimerval it = {{0, 50000}, {0, 50000}}, off = {{0, 0}, {0, 0}};
    alarms = 0;
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    /* libevent restarts its wait after EINTR (a documented quirk): it returns
     * at the timeout instead, so give it a short one. */
    int64_t timeout = is_libevent(f) ? 300 * MS : 3000 * MS;
    int64_t t0 = now_ns();
    /* A poll may also end early on a stale event (io_uring: init's CQEs):
     * poll again, as the hub would, until the signal has come. */
    int polls = 0;
    do
        assert_int_equal(poll_for(f, timeout), 0);
    while (alarms == 0 && ++polls < QUIET_MAX_POLLS);
    int64_t took = now_ns() - t0;
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old_sa, NULL);
    assert_true(alarms > 0);
    if (!is_libevent(f) && took >= 1500 * MS)
        fail_msg("%s: EINTR did not end the poll (%lld ms)", f->bc->label, (long long)(took / MS));
}

/* ---- main ------------------------------------------------------------- */

static const struct {
    const char *name;
    CMUnitTestFunction fn;
} test_list[] = {
#define T(fn)                                                                                      \
    {                                                                                              \
#fn, fn                                                                                    \
    }
    T(test_backend_init_destroy),
    T(test_backend_read_after_write),
    T(test_backend_level_triggered),
    T(test_backend_write_ready_at_once),
    T(test_backend_change_interest),
    T(test_backend_forget),
    T(test_backend_forget_close_reuse),
    T(test_backend_close_behind_back_reuse),
    T(test_backend_close_after_forget_releases),
    T(test_backend_hangup_readable),
    T(test_backend_half_close_read_only),
    T(test_backend_timeout_never_early),
    T(test_backend_timeout_zero_does_not_sleep),
    T(test_backend_forever_returns_when_ready),
    T(test_backend_bad_arguments),
    T(test_backend_high_fd),
    T(test_backend_reentrant_forget),
    T(test_backend_reentrant_forget_close_reuse),
    T(test_backend_reentrant_change),
    T(test_backend_reentrant_self),
    T(test_backend_many_fds),
    T(test_backend_closed_fd_not_fatal),
    T(test_backend_eintr_returns_zero),
    T(test_backend_stale_only_is_quiet),
    T(test_backend_caps_match_files),
#undef T
};
#define NTESTS (sizeof(test_list) / sizeof(test_list[0]))

static void test_registry(void **state)
{
    static const char *const order[] = {"epoll", "poll", "select", "io_uring", "libev", "libevent"};
    /* What each declares (test_backend_caps_match_files checks FILES_READY
     * against what each really does with a regular file). */
    static const unsigned caps[] = {
        0,                      /* epoll: -EPERM */
        GH_BACKEND_FILES_READY, /* poll */
        GH_BACKEND_FILES_READY, /* select */
        GH_BACKEND_FILES_READY | GH_BACKEND_READ_FIRST |
            GH_BACKEND_COMPLETION, /* io_uring: a wait is a re-arm; it runs socket ops */
        GH_BACKEND_FILES_READY,    /* libev: its own EPERM fallback */
        0,                         /* libevent (on epoll): -EPERM */
    };
    assert_int_equal(GH_BACKEND_ABI, 3);
    const gh_backend_ops *const *list = gh_backend_list();
    size_t n = 0;
    for (; list[n]; n++) {
        assert_true(n < 6);
        assert_string_equal(list[n]->name, order[n]);
        assert_int_equal(list[n]->abi, GH_BACKEND_ABI);
        assert_int_equal(list[n]->caps, caps[n]);
        assert_ptr_equal(gh_backend_find(order[n]), list[n]);
        assert_non_null(list[n]->init);
        assert_non_null(list[n]->destroy);
        assert_non_null(list[n]->watch);
        assert_non_null(list[n]->poll);
        /* submit and cancel exactly where the completion path is declared */
        int completion = (list[n]->caps & GH_BACKEND_COMPLETION) != 0;
        assert_int_equal(list[n]->submit != NULL, completion);
        assert_int_equal(list[n]->cancel != NULL, completion);
    }
    assert_int_equal(n, 6);
    errno = 0;
    assert_null(gh_backend_find("kqueue"));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(gh_backend_find(NULL));
    assert_int_equal(errno, EINVAL);
}

/* ---- the hub side: ABI check, a backend that returns early ------------ */

/*
 * "early": a wrapper over a built-in backend (captured at init) that returns
 * early, as ABI 2 allows. EARLY_EVERY_OTHER: every other poll with a timeout
 * returns 0 at once, without waiting. EARLY_SHORT: every poll waits at most
 * EARLY_SHORT_NS of its timeout, so it returns 0 early at every turn while
 * time passes. The hub must re-poll and still never end a sleep or fire a
 * timer early.
 */
enum { EARLY_EVERY_OTHER, EARLY_SHORT };
#define EARLY_SHORT_NS (3 * MS)

static const gh_backend_ops *early_inner; /* what the next init wraps */
static int early_mode;
static unsigned long early_polls, early_returns;

typedef struct early_state {
    const gh_backend_ops *ops; /* the wrapped backend */
    void *st;
    unsigned long calls;
} early_state;

static int early_init(void **state)
{
    early_state *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->ops = early_inner;
    int err = s->ops->init(&s->st);
    if (err) {
        free(s);
        return err;
    }
    *state = s;
    return 0;
}

static void early_destroy(void *state)
{
    early_state *s = state;
    s->ops->destroy(s->st);
    free(s);
}

static int early_watch(void *state, int fd, int old_events, int new_events)
{
    early_state *s = state;
    return s->ops->watch(s->st, fd, old_events, new_events);
}

static int early_poll(void *state, int64_t timeout_ns, gh_backend_ready_fn ready, void *ctx)
{
    early_state *s = state;
    early_polls++;
    if (early_mode == EARLY_EVERY_OTHER) {
        if (timeout_ns != 0 && s->calls++ % 2 == 0) {
            early_returns++;
            return 0;
        }
        return s->ops->poll(s->st, timeout_ns, ready, ctx);
    }
    if (timeout_ns >= 0 && timeout_ns <= EARLY_SHORT_NS)
        return s->ops->poll(s->st, timeout_ns, ready, ctx);
    int n = s->ops->poll(s->st, EARLY_SHORT_NS, ready, ctx);
    early_returns += n == 0;
    return n;
}

/* Not const: caps is copied from the wrapped backend before each hub is made. */
static gh_backend_ops early_ops = {
    .abi = GH_BACKEND_ABI,
    .name = "early",
    .init = early_init,
    .destroy = early_destroy,
    .watch = early_watch,
    .poll = early_poll,
};

static void test_hub_refuses_abi_1(void **state)
{
    (void)state;
    static gh_backend_ops v1, v3;
    v1 = gh_backend_poll;
    v1.abi = 1;
    v3 = gh_backend_poll;
    v3.abi = GH_BACKEND_ABI + 1;
    /* No hub yet: none is made. */
    assert_int_equal(gh_use_hub_backend(&v1), -EINVAL);
    /* A live hub keeps its backend. */
    assert_int_equal(gh_use_hub("poll"), 0);
    assert_int_equal(gh_use_hub_backend(&v1), -EINVAL);
    assert_int_equal(gh_use_hub_backend(&v3), -EINVAL);
    assert_string_equal(gh_hub_backend(gh_get_hub()), "poll");
    /* The same table at ABI 3 is taken, and at ABI 2 (no completion path) too. */
    static gh_backend_ops v2, cur;
    cur = gh_backend_poll;
    cur.name = "poll-copy";
    assert_int_equal(gh_use_hub_backend(&cur), 0);
    assert_string_equal(gh_hub_backend(gh_get_hub()), "poll-copy");
    v2 = gh_backend_poll;
    v2.abi = 2;
    v2.name = "poll-abi2";
    assert_int_equal(gh_use_hub_backend(&v2), 0);
    assert_string_equal(gh_hub_backend(gh_get_hub()), "poll-abi2");
    assert_int_equal(gh_hub_close(), 0);
}

static int64_t timer_fired_at;
static int pipe_w = -1;
static int64_t pipe_written_at;

static void on_timer(void *arg)
{
    (void)arg;
    timer_fired_at = gh_now();
}

static void on_write_timer(void *arg)
{
    (void)arg;
    pipe_written_at = gh_now();
    assert_int_equal(write(pipe_w, "!", 1), 1);
}

static void early_case(const gh_backend_ops *inner, int mode)
{
    early_inner = inner;
    early_mode = mode;
    early_ops.caps = inner->caps;
    int err = gh_use_hub_backend(&early_ops);
    if (err == -ENOSYS || err == -EPERM) {
        print_message("[ SKIP ] early over %s: init returned %d\n", inner->name, err);
        return;
    }
    assert_int_equal(err, 0);
    const char *label = mode == EARLY_SHORT ? "short" : "every other";

    /* A sleep and a timer under it: neither ends early, both end. */
    early_polls = early_returns = 0;
    timer_fired_at = 0;
    int64_t t0 = gh_now();
    gh_timer_release(gh_call_after(15 * MS, on_timer, NULL));
    assert_int_equal(gh_sleep(20 * MS), 0);
    int64_t took = gh_now() - t0;
    if (took < 20 * MS || took > 20 * MS + LATE_NS)
        fail_msg("early (%s) over %s: gh_sleep(20 ms) took %lld us", label, inner->name,
                 (long long)(took / 1000));
    if (timer_fired_at == 0 || timer_fired_at - t0 < 15 * MS)
        fail_msg("early (%s) over %s: a 15 ms timer fired after %lld us", label, inner->name,
                 (long long)((timer_fired_at - t0) / 1000));
    /* The wrapper really returned early and the hub polled again. (In
     * EARLY_SHORT mode the last early return may end at the deadline.) */
    assert_true(early_returns >= 1);
    assert_true(early_polls >= 2);

    /* I/O still wakes its task, not before the byte is there. */
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    pipe_w = p[1];
    pipe_written_at = 0;
    gh_timer_release(gh_call_after(10 * MS, on_write_timer, NULL));
    char c = 0;
    assert_int_equal(gh_read(p[0], &c, 1, 2 * GH_SEC), 1);
    assert_int_equal(c, '!');
    assert_true(pipe_written_at != 0);
    assert_int_equal(gh_close(p[0]), 0);
    assert_int_equal(gh_close(p[1]), 0);
    pipe_w = -1;

    assert_int_equal(gh_hub_close(), 0);
}

static void test_hub_early_returns_never_early_timers(void **state)
{
    (void)state;
    for (const gh_backend_ops *const *ops = gh_backend_list(); *ops; ops++) {
        early_case(*ops, EARLY_EVERY_OTHER);
        early_case(*ops, EARLY_SHORT);
    }
}

/* Whatever a backend's caps, a wait on a regular file or a directory is
 * answered at once on every backend: by the backend (FILES_READY) or by the
 * hub itself. */
static void test_hub_files_ready_everywhere(void **state)
{
    (void)state;
    const char *dir = getenv("TEST_TMPDIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/backend_ops_hubfile_XXXXXX", dir ? dir : "/tmp");
    for (const gh_backend_ops *const *ops = gh_backend_list(); *ops; ops++) {
        int err = gh_use_hub_backend(*ops);
        if (err == -ENOSYS || err == -EPERM) {
            print_message("[ SKIP ] files on %s: init returned %d\n", (*ops)->name, err);
            continue;
        }
        assert_int_equal(err, 0);
        char name[4096];
        snprintf(name, sizeof(name), "%s", path);
        int file = mkstemp(name);
        assert_true(file >= 0);
        assert_int_equal(unlink(name), 0);
        int dfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(dfd >= 0);
        int64_t t0 = gh_now();
        for (int i = 0; i < 3; i++) {
            if ((err = gh_trampoline(file, GH_READ | GH_WRITE, GH_SEC)) != 0)
                fail_msg("%s: wait on a regular file: %d", (*ops)->name, err);
            if ((err = gh_trampoline(dfd, GH_READ, GH_SEC)) != 0)
                fail_msg("%s: wait on a directory: %d", (*ops)->name, err);
        }
        assert_true(gh_now() - t0 < 500 * MS);
        assert_int_equal(gh_close(file), 0);
        assert_int_equal(gh_close(dfd), 0);
        assert_int_equal(gh_hub_close(), 0);
    }
}

int main(void)
{
    /* Pipes fill up and peers close: never die of SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    int failed = 0;
    const struct CMUnitTest registry_tests[] = {cmocka_unit_test(test_registry)};
    failed += cmocka_run_group_tests_name("registry", registry_tests, NULL, NULL);
    const struct CMUnitTest hub_tests[] = {
        cmocka_unit_test(test_hub_refuses_abi_1),
        cmocka_unit_test(test_hub_early_returns_never_early_timers),
        cmocka_unit_test(test_hub_files_ready_everywhere),
    };
    failed += cmocka_run_group_tests_name("hub", hub_tests, NULL, NULL);

    static backend_case cases[16];
    size_t ncases = 0;
    for (const gh_backend_ops *const *ops = gh_backend_list(); *ops; ops++) {
        backend_case *bc = &cases[ncases++];
        bc->ops = *ops;
        snprintf(bc->label, sizeof(bc->label), "%s", (*ops)->name);
        if (strcmp((*ops)->name, "io_uring") == 0) {
            /* io_uring's default is single-shot; run its multishot mode as well. */
            backend_case *ms = &cases[ncases++];
            *ms = *bc;
            ms->env_name = "GREENHUB_IO_URING_POLL";
            ms->env_value = "multishot";
            snprintf(ms->label, sizeof(ms->label), "io_uring/multishot");
        }
    }

    for (size_t c = 0; c < ncases; c++) {
        struct CMUnitTest tests[NTESTS];
        for (size_t i = 0; i < NTESTS; i++) {
            tests[i] = (struct CMUnitTest){
                .name = test_list[i].name,
                .test_func = test_list[i].fn,
                .setup_func = setup,
                .teardown_func = teardown,
                .initial_state = &cases[c],
            };
        }
        print_message("[==========] backend %s\n", cases[c].label);
        failed += _cmocka_run_group_tests(cases[c].label, tests, NTESTS, NULL, NULL);
    }
    return failed ? 1 : 0;
}
