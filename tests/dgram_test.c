/*
 * dgram_test.c — UDP (gh_udp_bind, gh_recvfrom, gh_sendto) and local stream
 * sockets (gh_unix_listen, gh_unix_connect), on every backend: round trips
 * with addresses checked, timeouts, a full send buffer waited out, kill and
 * a close from another thread during a wait, bad input.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"
#include "test_util.h"

static struct sockaddr_in local_addr(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    return sin;
}

/* ------------------------------------------------------------------ UDP */

static void udp_echo_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;
    ssize_t n = gh_recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen, 5 * GH_SEC);
    assert_true(n > 0);
    assert_int_equal(gh_sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, flen, GH_SEC), n);
}

static void test_udp_round_trip(void **state)
{
    (void)state;
    int a = gh_udp_bind("127.0.0.1", 0), b = gh_udp_bind("127.0.0.1", 0);
    assert_true(a >= 0);
    assert_true(b >= 0);
    struct sockaddr_in aa = local_addr(a), ba = local_addr(b);
    gh_task *t = gh_spawn(udp_echo_task, (void *)(intptr_t)a);
    assert_non_null(t);
    assert_int_equal(gh_sendto(b, "ping", 4, 0, (struct sockaddr *)&aa, sizeof aa, GH_SEC), 4);
    char buf[16];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    assert_int_equal(
        gh_recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen, 5 * GH_SEC), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(flen, sizeof from);
    assert_int_equal(from.sin_port, aa.sin_port); /* the echo came from a */
    assert_int_equal(from.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    assert_int_not_equal(ba.sin_port, 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(gh_close(a), 0);
    assert_int_equal(gh_close(b), 0);
    end_clean();
}

static void test_udp_timeout_and_bad_input(void **state)
{
    (void)state;
    int a = gh_udp_bind(NULL, 0);
    assert_true(a >= 0);
    char buf[8];
    int64_t t0 = gh_now();
    assert_int_equal(gh_recvfrom(a, buf, sizeof buf, 0, NULL, NULL, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_recvfrom(a, buf, sizeof buf, 0, NULL, NULL, 0), -ETIMEDOUT);
    struct sockaddr_in from;
    assert_int_equal(gh_recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, NULL, 0),
                     -EINVAL);
    assert_int_equal(gh_recvfrom(a, NULL, 8, 0, NULL, NULL, 0), -EINVAL);
    assert_int_equal(gh_recvfrom(-1, buf, sizeof buf, 0, NULL, NULL, 0), -EBADF);
    assert_int_equal(gh_sendto(a, buf, 1, 0, NULL, 16, 0), -EINVAL);
    assert_int_equal(gh_recvfrom(a, buf, sizeof buf, 0, NULL, NULL, -2), -EINVAL);
    assert_int_equal(gh_udp_bind("not an address", 0), -EINVAL);
    assert_int_equal(gh_udp_bind("127.0.0.1", 70000), -EINVAL);
    /* A deadline scope cuts a recvfrom short like its own timeout. */
    assert_int_equal(gh_deadline_push(20 * GH_MSEC), 0);
    assert_int_equal(gh_recvfrom(a, buf, sizeof buf, 0, NULL, NULL, GH_FOREVER), -ETIMEDOUT);
    assert_int_equal(gh_deadline_pop(), -ETIMEDOUT);
    assert_int_equal(gh_close(a), 0);
    end_clean();
}

static int recv_result;
static void recv_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8];
    recv_result = (int)gh_recvfrom(fd, buf, sizeof buf, 0, NULL, NULL, 10 * GH_SEC);
}

static void test_udp_kill_during_recvfrom(void **state)
{
    (void)state;
    int a = gh_udp_bind("127.0.0.1", 0);
    assert_true(a >= 0);
    recv_result = 0;
    gh_task *t = gh_spawn(recv_task, (void *)(intptr_t)a);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    assert_int_equal(recv_result, -ECANCELED);
    gh_task_release(t);
    assert_int_equal(gh_close(a), 0);
    end_clean();
}

static void *closer_thread(void *arg)
{
    sleep_ns(20 * GH_MSEC);
    assert_int_equal(gh_close((int)(intptr_t)arg), 0);
    return NULL;
}

static void test_udp_close_from_other_thread(void **state)
{
    (void)state;
    int a = gh_udp_bind("127.0.0.1", 0);
    assert_true(a >= 0);
    recv_result = 0;
    gh_task *t = gh_spawn(recv_task, (void *)(intptr_t)a);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, closer_thread, (void *)(intptr_t)a), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    assert_int_equal(recv_result, -EBADF);
    assert_int_equal(pthread_join(th, NULL), 0);
    gh_task_release(t);
    end_clean();
}

/* A datagram socket whose peer does not read: sendto waits, then times out or goes through. */
static void drain_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[512];
    gh_sleep(20 * GH_MSEC);
    while (gh_recvfrom(fd, buf, sizeof buf, 0, NULL, NULL, 50 * GH_MSEC) > 0) {
    }
}

static void test_sendto_waits_while_full(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    char msg[512] = {0};
    int sent = 0;
    while (gh_sendto(sv[0], msg, sizeof msg, 0, NULL, 0, 0) == (ssize_t)sizeof msg)
        sent++;
    assert_true(sent > 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_sendto(sv[0], msg, sizeof msg, 0, NULL, 0, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    gh_task *t = gh_spawn(drain_task, (void *)(intptr_t)sv[1]);
    assert_int_equal(gh_sendto(sv[0], msg, sizeof msg, 0, NULL, 0, 5 * GH_SEC),
                     (ssize_t)sizeof msg);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(gh_close(sv[0]), 0);
    assert_int_equal(gh_close(sv[1]), 0);
    end_clean();
}

/* ------------------------------------------------------------- AF_UNIX */

static void unix_echo_task(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int fd = gh_accept(lfd, 5 * GH_SEC);
    assert_true(fd >= 0);
    char buf[64];
    ssize_t n;
    while ((n = gh_read(fd, buf, sizeof buf, 5 * GH_SEC)) > 0)
        assert_int_equal(gh_write_all(fd, buf, (size_t)n, GH_SEC), n);
    assert_int_equal(gh_close(fd), 0);
}

static void unix_round_trip(const char *path)
{
    int lfd = gh_unix_listen(path, 8);
    assert_true(lfd >= 0);
    gh_task *t = gh_spawn(unix_echo_task, (void *)(intptr_t)lfd);
    int fd = gh_unix_connect(path, GH_SEC);
    assert_true(fd >= 0);
    assert_int_equal(gh_write_all(fd, "hello", 5, GH_SEC), 5);
    char buf[8] = {0};
    size_t got = 0;
    while (got < 5) {
        ssize_t n = gh_read(fd, buf + got, 5 - got, 5 * GH_SEC);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_string_equal(buf, "hello");
    assert_int_equal(gh_close(fd), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(gh_close(lfd), 0);
}

static void test_unix_path_and_abstract(void **state)
{
    (void)state;
    /* Bazel's TEST_TMPDIR is longer than sun_path holds: a directory of our own. */
    char dir[] = "/tmp/greenhub-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/echo.sock", dir);
    unix_round_trip(path);
    assert_int_equal(gh_unix_listen(path, 8), -EADDRINUSE); /* the file stays */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    char name[64];
    snprintf(name, sizeof name, "@greenhub-test-%d", (int)getpid());
    unix_round_trip(name);
    end_clean();
}

static void test_unix_errors_and_accept_timeout(void **state)
{
    (void)state;
    assert_int_equal(gh_unix_connect("/nonexistent/greenhub.sock", GH_SEC), -ENOENT);
    char name[64];
    snprintf(name, sizeof name, "@greenhub-nobody-%d", (int)getpid());
    assert_int_equal(gh_unix_connect(name, GH_SEC), -ECONNREFUSED);
    assert_int_equal(gh_unix_listen(NULL, 1), -EINVAL);
    assert_int_equal(gh_unix_listen("", 1), -EINVAL);
    assert_int_equal(gh_unix_listen("@", 1), -EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = 0;
    assert_int_equal(gh_unix_listen(longpath, 1), -ENAMETOOLONG);
    assert_int_equal(gh_unix_connect(longpath, GH_SEC), -ENAMETOOLONG);
    assert_int_equal(gh_unix_connect(name, -2), -EINVAL);

    snprintf(name, sizeof name, "@greenhub-idle-%d", (int)getpid());
    int lfd = gh_unix_listen(name, 1);
    assert_true(lfd >= 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_accept(lfd, 20 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 20 * GH_MSEC);
    assert_int_equal(gh_close(lfd), 0);
    end_clean();
}

/* A listener nobody accepts on: connects fill its backlog, then one waits and times out. */
static void test_unix_connect_full_backlog_times_out(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@greenhub-full-%d", (int)getpid());
    int lfd = gh_unix_listen(name, 1);
    assert_true(lfd >= 0);
    int fds[16], n = 0, err = 0;
    while (n < 16 && (err = gh_unix_connect(name, 0)) >= 0)
        fds[n++] = err;
    assert_int_equal(err, -ETIMEDOUT); /* the backlog filled: timeout 0 says so */
    int64_t t0 = gh_now();
    assert_int_equal(gh_unix_connect(name, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    int c = gh_accept(lfd, GH_SEC); /* room again: a waiting connect gets through */
    assert_true(c >= 0);
    int fd = gh_unix_connect(name, 5 * GH_SEC);
    assert_true(fd >= 0);
    assert_int_equal(gh_close(fd), 0);
    assert_int_equal(gh_close(c), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(gh_close(fds[i]), 0);
    assert_int_equal(gh_close(lfd), 0);
    end_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_round_trip),
        cmocka_unit_test(test_udp_timeout_and_bad_input),
        cmocka_unit_test(test_udp_kill_during_recvfrom),
        cmocka_unit_test(test_udp_close_from_other_thread),
        cmocka_unit_test(test_sendto_waits_while_full),
        cmocka_unit_test(test_unix_path_and_abstract),
        cmocka_unit_test(test_unix_errors_and_accept_timeout),
        cmocka_unit_test(test_unix_connect_full_backlog_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
