/*
 * http_hello_test.c — examples/http_hello as a black box: keep-alive,
 * pipelined requests answered in order, HTTP/1.0, bodies, the header
 * limits (414, 431), malformed requests (400, 501, 505), slow and idle
 * clients timed out (408 / quiet close), many clients over two threads,
 * and a clean SIGTERM exit.
 *
 * The server binary is argv[1]; it runs with --port 0 --threads 2
 * --timeout 500 on the backend named by GREENHUB_HUB. The client side is
 * greenhub itself (gh_connect, gh_write_all, gh_reader), from tasks of this
 * process; each test ends with a clean gh_hub_close.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

#define SERVER_TIMEOUT_MS 500

static const char *server_path;

/* A running http_hello. */
typedef struct server {
    pid_t pid;
    int port;
    FILE *out;
} server;

/* The server the tests talk to (short timeout, for the slow-client tests). */
static server srv = {-1, 0, NULL};
static int server_port;

static int server_start(server *sv, int timeout_ms)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    sv->pid = fork();
    if (sv->pid < 0)
        return -1;
    if (sv->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        char tmo[16];
        snprintf(tmo, sizeof tmo, "%d", timeout_ms);
        const char *backend = getenv("GREENHUB_HUB");
        if (backend)
            execl(server_path, server_path, "--port", "0", "--threads", "2", "--timeout", tmo,
                  "--backend", backend, (char *)NULL);
        else
            execl(server_path, server_path, "--port", "0", "--threads", "2", "--timeout", tmo,
                  (char *)NULL);
        perror("exec http_hello");
        _exit(127);
    }
    close(p[1]);
    sv->out = fdopen(p[0], "r");
    char line[256];
    if (!sv->out || !fgets(line, sizeof line, sv->out)) {
        fprintf(stderr, "http_hello printed nothing\n");
        return -1;
    }
    const char *colon = strrchr(line, ':');
    if (!strstr(line, "listening on http://") || !colon || sscanf(colon + 1, "%d", &sv->port) != 1)
        return -1;
    return 0;
}

/* SIGTERM; the server must exit 0 after printing its count. */
static int server_stop(server *sv)
{
    if (sv->pid <= 0)
        return 0;
    kill(sv->pid, SIGTERM);
    int status = 0;
    if (waitpid(sv->pid, &status, 0) != sv->pid)
        return -1;
    sv->pid = -1;
    char line[256];
    bool served = false;
    while (fgets(line, sizeof line, sv->out))
        if (strstr(line, "served"))
            served = true;
    fclose(sv->out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !served) {
        fprintf(stderr, "http_hello did not stop cleanly (status %d)\n", status);
        return -1;
    }
    return 0;
}

static int start_server(void **state)
{
    (void)state;
    if (server_start(&srv, SERVER_TIMEOUT_MS) != 0)
        return -1;
    server_port = srv.port;
    return 0;
}

static int stop_server(void **state)
{
    (void)state;
    return server_stop(&srv);
}

/* ------------------------------------------------------------ client */

typedef struct response {
    int status;
    bool close;      /* Connection: close */
    bool keep_alive; /* Connection: keep-alive */
    long content_length;
    char body[64];
} response;

static int connect_server(void)
{
    int fd = gh_connect("127.0.0.1", server_port, 5 * GH_SEC);
    assert_true(fd >= 0);
    return fd;
}

static void send_all(int fd, const char *s)
{
    assert_int_equal(gh_write_all(fd, s, strlen(s), 5 * GH_SEC), (ssize_t)strlen(s));
}

/* Read one response; the body is skipped for HEAD (@head). @return 0, or -errno / 0 at EOF. */
static int read_response(gh_reader *r, response *rs, bool head)
{
    memset(rs, 0, sizeof *rs);
    rs->content_length = -1;
    const char *line;
    ssize_t n = gh_reader_readline(r, &line, 1024, 5 * GH_SEC);
    if (n <= 0)
        return n == 0 ? -EPIPE : (int)n;
    if (n < 12 || memcmp(line, "HTTP/1.1 ", 9) != 0)
        return -EBADMSG;
    rs->status = atoi(line + 9);
    for (;;) {
        n = gh_reader_readline(r, &line, 1024, 5 * GH_SEC);
        if (n <= 0)
            return -EBADMSG;
        if (n <= 2 && line[0] != ' ' && (line[0] == '\r' || line[0] == '\n'))
            break;
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            rs->content_length = atol(line + 15);
        if (strncasecmp(line, "Connection: close", 17) == 0)
            rs->close = true;
        if (strncasecmp(line, "Connection: keep-alive", 22) == 0)
            rs->keep_alive = true;
    }
    if (rs->content_length < 0)
        return -EBADMSG;
    if (!head && rs->content_length > 0) {
        size_t want = (size_t)rs->content_length;
        if (want >= sizeof rs->body)
            return -EMSGSIZE;
        if (gh_reader_read_exact(r, rs->body, want, 5 * GH_SEC) != (ssize_t)want)
            return -EBADMSG;
    }
    return 0;
}

/* After a "close" answer, the server closes: EOF, nothing more. */
static void expect_eof(gh_reader *r)
{
    char c;
    assert_int_equal(gh_reader_read_some(r, &c, 1, 5 * GH_SEC), 0);
}

/* One request on a fresh connection; expect @status and a close. */
static void expect_refused(const char *request, int status)
{
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    send_all(fd, request);
    response rs;
    assert_int_equal(read_response(&r, &rs, false), 0);
    if (rs.status != status)
        fail_msg("got %d, want %d, for %.60s", rs.status, status, request);
    assert_true(rs.close);
    expect_eof(&r);
    gh_reader_destroy(&r);
    gh_close(fd);
}

/* ------------------------------------------------------------- tests */

static void test_http_keep_alive(void **state)
{
    (void)state;
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    for (int i = 0; i < 3; i++) {
        send_all(fd, "GET / HTTP/1.1\r\nHost: test\r\n\r\n");
        response rs;
        assert_int_equal(read_response(&r, &rs, false), 0);
        assert_int_equal(rs.status, 200);
        assert_false(rs.close);
        assert_string_equal(rs.body, "Hello, World!\n");
    }
    /* Connection: close is honoured. */
    send_all(fd, "GET /bye HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    response rs;
    assert_int_equal(read_response(&r, &rs, false), 0);
    assert_int_equal(rs.status, 200);
    assert_true(rs.close);
    expect_eof(&r);
    gh_reader_destroy(&r);
    gh_close(fd);
    assert_int_equal(gh_hub_close(), 0);
}

static void test_http_pipelined_in_order(void **state)
{
    (void)state;
    /* 60 requests in one write: GET, HEAD and POST (405, with a body) in a pattern. */
    char *req = malloc(64 * 1024);
    assert_non_null(req);
    size_t len = 0;
    enum { N = 60 };
    for (int i = 0; i < N; i++) {
        switch (i % 3) {
        case 0:
            len += (size_t)sprintf(req + len, "GET /%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
            break;
        case 1:
            len += (size_t)sprintf(req + len, "HEAD /%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
            break;
        default:
            len += (size_t)sprintf(
                req + len, "POST /%d HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde", i);
            break;
        }
    }
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    assert_int_equal(gh_write_all(fd, req, len, 5 * GH_SEC), (ssize_t)len);
    for (int i = 0; i < N; i++) {
        response rs;
        assert_int_equal(read_response(&r, &rs, i % 3 == 1), 0);
        int want = i % 3 == 2 ? 405 : 200;
        if (rs.status != want)
            fail_msg("response %d: %d, want %d", i, rs.status, want);
        if (i % 3 == 0)
            assert_string_equal(rs.body, "Hello, World!\n");
        if (i % 3 == 1)
            assert_int_equal(rs.content_length, 14); /* HEAD: the length, no body */
    }
    /* Nothing more: the next bytes would be a response we did not ask for. */
    char c;
    assert_int_equal(gh_reader_read_some(&r, &c, 1, 100 * GH_MSEC), -ETIMEDOUT);
    gh_reader_destroy(&r);
    gh_close(fd);
    free(req);
    assert_int_equal(gh_hub_close(), 0);
}

static void test_http_1_0(void **state)
{
    (void)state;
    /* HTTP/1.0: close by default, no Host needed. */
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    send_all(fd, "GET / HTTP/1.0\r\n\r\n");
    response rs;
    assert_int_equal(read_response(&r, &rs, false), 0);
    assert_int_equal(rs.status, 200);
    assert_true(rs.close);
    expect_eof(&r);
    gh_reader_destroy(&r);
    gh_close(fd);

    /* ... and keep-alive on request. */
    fd = connect_server();
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    for (int i = 0; i < 2; i++) {
        send_all(fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert_int_equal(read_response(&r, &rs, false), 0);
        assert_int_equal(rs.status, 200);
        assert_true(rs.keep_alive);
        assert_false(rs.close);
    }
    gh_reader_destroy(&r);
    gh_close(fd);
    assert_int_equal(gh_hub_close(), 0);
}

static void test_http_header_limits(void **state)
{
    (void)state;
    /* A request line longer than the whole head budget (8192): 414. */
    char *big = malloc(20000);
    assert_non_null(big);
    strcpy(big, "GET /");
    memset(big + 5, 'a', 9000);
    strcpy(big + 9005, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_refused(big, 414);

    /* Header bytes over the budget: 431. */
    size_t len = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + len, 'b', 9000);
    strcpy(big + len + 9000, "\r\n\r\n");
    expect_refused(big, 431);

    /* Many small fields adding up over the budget: 431. */
    len = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; len < 9500; i++)
        len += (size_t)sprintf(big + len, "X-F%d: %040d\r\n", i, i);
    strcpy(big + len, "\r\n");
    expect_refused(big, 431);

    /* More than 100 fields, each short: 431. */
    len = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 120; i++)
        len += (size_t)sprintf(big + len, "A%d: b\r\n", i);
    strcpy(big + len, "\r\n");
    expect_refused(big, 431);

    /* Just under the budget is fine. */
    len = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\nX-Ok: ");
    size_t pad = 8192 - len - 2 - 2 - 1;
    memset(big + len, 'c', pad);
    strcpy(big + len + pad, "\r\n\r\n");
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    send_all(fd, big);
    response rs;
    assert_int_equal(read_response(&r, &rs, false), 0);
    assert_int_equal(rs.status, 200);
    assert_false(rs.close);
    gh_reader_destroy(&r);
    gh_close(fd);
    free(big);
    assert_int_equal(gh_hub_close(), 0);
}

static void test_http_garbage(void **state)
{
    (void)state;
    expect_refused("GARBAGE\r\n\r\n", 400);
    expect_refused("\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n", 400); /* TLS-ish */
    expect_refused("GET /\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\n\r\n", 400);                       /* no Host */
    expect_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400); /* two */
    expect_refused("GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: t\r\nName : v\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: t\r\nX: a\x01z\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 12x\r\n\r\n", 400);
    expect_refused("GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                   400);
    expect_refused("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
    expect_refused("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   501);
    expect_refused("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n", 413);

    /* Answers before a bad request still come, in order, before the 400. */
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\nNONSENSE\r\n\r\n");
    response rs;
    assert_int_equal(read_response(&r, &rs, false), 0);
    assert_int_equal(rs.status, 200);
    assert_int_equal(read_response(&r, &rs, false), 0);
    assert_int_equal(rs.status, 400);
    expect_eof(&r);
    gh_reader_destroy(&r);
    gh_close(fd);
    assert_int_equal(gh_hub_close(), 0);
}

typedef struct slowloris {
    int fd;
    volatile bool stop;
} slowloris;

/* Sends a request head that never ends, one byte every 100 ms. */
static void slowloris_task(void *arg)
{
    slowloris *sl = arg;
    static const char head[] = "GET / HTTP/1.1\r\nHost: slow\r\nX-Never-Ending: ";
    for (size_t i = 0; !sl->stop; i++) {
        char c = i < sizeof head - 1 ? head[i] : 'z';
        if (gh_write_all(sl->fd, &c, 1, GH_SEC) != 1)
            break; /* the server gave up on us */
        gh_sleep(100 * GH_MSEC);
    }
}

static void test_http_slow_clients_timed_out(void **state)
{
    (void)state;
    /*
     * Half a request, then nothing: 408 after the timeout, and close. (Each
     * t0 is taken before connecting: the server's clock starts after it.)
     */
    int64_t t0 = gh_now();
    int fd = connect_server();
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    send_all(fd, "GET / HTTP/1.1\r\nHo");
    response rs;
    assert_int_equal(read_response(&r, &rs, false), 0);
    int64_t took = gh_now() - t0;
    assert_int_equal(rs.status, 408);
    assert_true(took >= SERVER_TIMEOUT_MS * GH_MSEC);
    assert_true(took < SERVER_TIMEOUT_MS * GH_MSEC + 3 * GH_SEC);
    expect_eof(&r);
    gh_reader_destroy(&r);
    gh_close(fd);

    /* A slowloris, one byte every 100 ms: the deadline is per request, not per byte. */
    t0 = gh_now();
    fd = connect_server();
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    slowloris sl = {fd, false};
    gh_task *t = gh_spawn(slowloris_task, &sl);
    assert_int_equal(read_response(&r, &rs, false), 0);
    took = gh_now() - t0;
    sl.stop = true;
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(rs.status, 408);
    assert_true(took >= SERVER_TIMEOUT_MS * GH_MSEC);
    assert_true(took < SERVER_TIMEOUT_MS * GH_MSEC + 3 * GH_SEC);
    gh_reader_destroy(&r);
    gh_close(fd);

    /* Idle keep-alive: after an answer, silence closes the connection without a word. */
    fd = connect_server();
    assert_int_equal(gh_reader_init(&r, fd, 4096), 0);
    t0 = gh_now(); /* the server waits for the next request after answering this one */
    send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(read_response(&r, &rs, false), 0);
    assert_int_equal(rs.status, 200);
    expect_eof(&r);
    assert_true(gh_now() - t0 >= SERVER_TIMEOUT_MS * GH_MSEC);
    gh_reader_destroy(&r);
    gh_close(fd);
    assert_int_equal(gh_hub_close(), 0);
}

/* Many clients at once, each with its own task, over the server's two threads. */
typedef struct client_arg {
    int port;
    int ok;
    int err; /* the first failure */
} client_arg;

static void client_task(void *arg)
{
    client_arg *ca = arg;
    int fd = gh_connect("127.0.0.1", ca->port, 10 * GH_SEC);
    if (fd < 0) {
        ca->err = fd;
        return;
    }
    gh_reader r;
    if (gh_reader_init(&r, fd, 4096) == 0) {
        for (int i = 0; i < 20; i++) {
            const char *req = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
            ssize_t w = gh_write_all(fd, req, strlen(req), 10 * GH_SEC);
            if (w < 0) {
                ca->err = (int)w;
                break;
            }
            response rs;
            int err = read_response(&r, &rs, false);
            if (err || rs.status != 200 || strcmp(rs.body, "Hello, World!\n") != 0) {
                ca->err = err ? err : -EBADMSG;
                break;
            }
            ca->ok++;
        }
        gh_reader_destroy(&r);
    }
    gh_close(fd);
}

static void test_http_many_clients(void **state)
{
    (void)state;
    /*
     * A server of its own with the default 10 s timeout: 50 clients at once
     * on a slow (sanitized, loaded) machine may take longer than the short
     * timeout between connecting and sending, which the server rightly
     * treats as an idle connection.
     */
    server big = {-1, 0, NULL};
    assert_int_equal(server_start(&big, 10000), 0);
    enum { C = 50 };
    client_arg ca[C];
    for (int i = 0; i < C; i++) {
        ca[i] = (client_arg){big.port, 0, 0};
        assert_int_equal(gh_spawn_n(client_task, &ca[i]), 0);
    }
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(server_stop(&big), 0);
    for (int i = 0; i < C; i++)
        if (ca[i].ok != 20)
            fail_msg("client %d: %d answers, then %s", i, ca[i].ok, gh_strerror(ca[i].err));
    assert_int_equal(gh_hub_close(), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH_TO_HTTP_HELLO\n", argv[0]);
        return 2;
    }
    server_path = argv[1];
    signal(SIGPIPE, SIG_DFL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_keep_alive),
        cmocka_unit_test(test_http_pipelined_in_order),
        cmocka_unit_test(test_http_1_0),
        cmocka_unit_test(test_http_header_limits),
        cmocka_unit_test(test_http_garbage),
        cmocka_unit_test(test_http_slow_clients_timed_out),
        cmocka_unit_test(test_http_many_clients),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server);
}
