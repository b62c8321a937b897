/*
 * reader_test.c — gh_reader, the buffered reader: readline (with lines cut
 * in every place, overlong lines, the last line at EOF, timeouts that
 * consume nothing), read_exact, read_some, mixing them, kill, and the
 * memory bound. Run once per backend (the waits are gh_read's).
 *
 * Tasks record failures (TCHECK) for the root to assert: cmocka's longjmp
 * must not cross task stacks. Every test ends with a clean gh_hub_close.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

#define HUB_CLOSES_CLEAN() assert_int_equal(gh_hub_close(), 0)

static int task_fail_line;
static char task_fail_what[200];

#define TCHECK(cond)                                                                               \
    do {                                                                                           \
        if (!(cond) && !task_fail_line) {                                                          \
            task_fail_line = __LINE__;                                                             \
            snprintf(task_fail_what, sizeof task_fail_what, "%s", #cond);                          \
        }                                                                                          \
    } while (0)

#define TASKS_OK()                                                                                 \
    do {                                                                                           \
        if (task_fail_line)                                                                        \
            fail_msg("check in a task failed at line %d: %s", task_fail_line, task_fail_what);     \
    } while (0)

static int setup(void **state)
{
    (void)state;
    task_fail_line = 0;
    return 0;
}

static void sock_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

/* A writer task: sends @data in @chunk-byte pieces, yielding between them, then closes. */
typedef struct feeder {
    int fd;
    const char *data;
    size_t len;
    size_t chunk;
    int64_t pause; /* sleep between pieces (0 = yield) */
    bool keep_open;
} feeder;

static void feeder_task(void *arg)
{
    feeder *f = arg;
    for (size_t off = 0; off < f->len;) {
        size_t n = f->len - off < f->chunk ? f->len - off : f->chunk;
        TCHECK(gh_write_all(f->fd, f->data + off, n, 10 * GH_SEC) == (ssize_t)n);
        off += n;
        gh_sleep(f->pause);
    }
    if (!f->keep_open)
        TCHECK(gh_close(f->fd) == 0);
}

static void expect_line(gh_reader *r, size_t max, const char *want)
{
    const char *line = NULL;
    ssize_t n = gh_reader_readline(r, &line, max, 5 * GH_SEC);
    if (n != (ssize_t)strlen(want))
        fail_msg("readline: %zd, want %zu (\"%s\")", n, strlen(want), want);
    assert_memory_equal(line, want, strlen(want));
}

/* ----------------------------------------------------------- readline */

static void test_reader_readline_any_split(void **state)
{
    (void)state;
    static const char text[] = "alpha\nbe\n\ngamma delta\nlast without newline";
    const char *want[] = {"alpha\n", "be\n", "\n", "gamma delta\n", "last without newline"};
    /* The same text cut into pieces of every size from 1 byte up. */
    for (size_t chunk = 1; chunk <= sizeof text; chunk++) {
        int sv[2];
        sock_pair(sv);
        feeder f = {sv[1], text, sizeof text - 1, chunk, 0, false};
        gh_task *t = gh_spawn(feeder_task, &f);
        gh_reader r;
        assert_int_equal(gh_reader_init(&r, sv[0], 64), 0);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            expect_line(&r, 32, want[i]);
        const char *line;
        assert_int_equal(gh_reader_readline(&r, &line, 32, GH_SEC), 0);
        assert_int_equal(gh_reader_readline(&r, &line, 32, GH_SEC), 0); /* EOF stays */
        assert_int_equal(gh_join(t, GH_SEC), 0);
        gh_task_release(t);
        gh_reader_destroy(&r);
        gh_close(sv[0]);
    }
    TASKS_OK();
    HUB_CLOSES_CLEAN();
}

static void test_reader_readline_overlong(void **state)
{
    (void)state;
    /* Limits: a line of exactly max_len (newline counted) is fine, one more byte is not. */
    char text[512];
    snprintf(text, sizeof text, "%s\n%s\n%s\nok\n%s", "0123456789abcde" /* 15 + \n = 16 */,
             "0123456789abcdef" /* 17 */,
             "a much longer line than sixteen bytes, going on and on and on", "tail-is-too-long");
    int sv[2];
    sock_pair(sv);
    feeder f = {sv[1], text, strlen(text), 5, 0, false};
    gh_task *t = gh_spawn(feeder_task, &f);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 32), 0);
    const char *line;
    expect_line(&r, 16, "0123456789abcde\n");
    assert_int_equal(gh_reader_readline(&r, &line, 16, GH_SEC), -EMSGSIZE);
    assert_int_equal(gh_reader_readline(&r, &line, 16, GH_SEC), -EMSGSIZE);
    expect_line(&r, 16, "ok\n");
    /* An overlong last line without a newline: -EMSGSIZE, then EOF. */
    assert_int_equal(gh_reader_readline(&r, &line, 16, GH_SEC), -EMSGSIZE);
    assert_int_equal(gh_reader_readline(&r, &line, 16, GH_SEC), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(r.cap, 32);
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    TASKS_OK();
    HUB_CLOSES_CLEAN();
}

/* -EMSGSIZE comes as soon as max_len bytes are in, without waiting for the line's end. */
static void test_reader_overlong_reported_early(void **state)
{
    (void)state;
    int sv[2];
    sock_pair(sv);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 64), 0);
    char x[40];
    memset(x, 'x', sizeof x);
    assert_int_equal(gh_write_all(sv[1], x, sizeof x, GH_SEC), (ssize_t)sizeof x);
    const char *line;
    assert_int_equal(gh_reader_readline(&r, &line, 32, GH_SEC), -EMSGSIZE);
    /* The rest of that line arrives later; it is skipped, and the next line read. */
    assert_int_equal(gh_reader_readline(&r, &line, 32, 20 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_write_all(sv[1], "yyyy\nnext\n", 10, GH_SEC), 10);
    expect_line(&r, 32, "next\n");
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    gh_close(sv[1]);
    HUB_CLOSES_CLEAN();
}

/* A peer that sends megabytes without a newline: the reader's memory does not grow. */
static void test_reader_memory_bounded(void **state)
{
    (void)state;
    const size_t huge = 8 * 1024 * 1024;
    char *data = malloc(huge + 16);
    assert_non_null(data);
    memset(data, 'z', huge);
    memcpy(data + huge, "\nafter\n", 7);
    int sv[2];
    sock_pair(sv);
    feeder f = {sv[1], data, huge + 7, 256 * 1024, 0, false};
    gh_task *t = gh_spawn(feeder_task, &f);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 256), 0);
    char *buf_before = r.buf;
    const char *line;
    assert_int_equal(gh_reader_readline(&r, &line, 100, 5 * GH_SEC), -EMSGSIZE);
    expect_line(&r, 100, "after\n");
    assert_int_equal(gh_reader_readline(&r, &line, 100, 5 * GH_SEC), 0);
    assert_int_equal(r.cap, 256);
    assert_ptr_equal(r.buf, buf_before);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    free(data);
    TASKS_OK();
    HUB_CLOSES_CLEAN();
}

static void test_reader_readline_timeout_consumes_nothing(void **state)
{
    (void)state;
    int sv[2];
    sock_pair(sv);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 0), 0);
    assert_int_equal(r.cap, 16 * 1024);
    assert_int_equal(gh_write_all(sv[1], "par", 3, GH_SEC), 3);
    const char *line;
    int64_t t0 = gh_now();
    assert_int_equal(gh_reader_readline(&r, &line, 100, 30 * GH_MSEC), -ETIMEDOUT);
    assert_true(gh_now() - t0 >= 30 * GH_MSEC);
    assert_int_equal(gh_reader_readline(&r, &line, 100, 0), -ETIMEDOUT);
    assert_int_equal(gh_reader_buffered(&r), 3);
    assert_int_equal(gh_write_all(sv[1], "tial\nrest", 9, GH_SEC), 9);
    expect_line(&r, 100, "partial\n");
    assert_int_equal(gh_reader_buffered(&r), 4);

    /* Argument errors. */
    assert_int_equal(gh_reader_readline(&r, &line, 0, GH_SEC), -EINVAL);
    assert_int_equal(gh_reader_readline(&r, &line, r.cap + 1, GH_SEC), -EINVAL);
    assert_int_equal(gh_reader_readline(&r, NULL, 10, GH_SEC), -EINVAL);
    assert_int_equal(gh_reader_readline(&r, &line, 10, -2), -EINVAL);
    gh_reader_destroy(&r);
    gh_reader_destroy(&r); /* twice is harmless */
    assert_int_equal(gh_reader_readline(&r, &line, 10, GH_SEC), -EINVAL);
    assert_int_equal(gh_reader_init(&r, -1, 0), -EBADF);
    assert_int_equal(gh_reader_init(NULL, sv[0], 0), -EINVAL);
    gh_close(sv[0]);
    gh_close(sv[1]);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------- read_exact / read_some */

static void test_reader_read_exact_and_some(void **state)
{
    (void)state;
    /* A header line, then a body bigger than the buffer, then a small trailer. */
    const size_t body = 10000;
    size_t total = 6 + body + 5;
    char *data = malloc(total);
    assert_non_null(data);
    memcpy(data, "LEN 9\n", 6);
    for (size_t i = 0; i < body; i++)
        data[6 + i] = (char)('a' + i % 26);
    memcpy(data + 6 + body, "TRAIL", 5);
    int sv[2];
    sock_pair(sv);
    feeder f = {sv[1], data, total, 777, GH_MSEC, false};
    gh_task *t = gh_spawn(feeder_task, &f);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 1024), 0);
    expect_line(&r, 64, "LEN 9\n");
    char small[9];
    assert_int_equal(gh_reader_read_exact(&r, small, sizeof small, 5 * GH_SEC), 9);
    assert_memory_equal(small, "abcdefghi", 9);
    char *big = malloc(body);
    /* Larger than the buffer: buffered bytes, then straight from the socket. */
    assert_int_equal(gh_reader_read_exact(&r, big, body - 9, 5 * GH_SEC), (ssize_t)(body - 9));
    for (size_t i = 0; i < body - 9; i++)
        assert_int_equal(big[i], (char)('a' + (i + 9) % 26));
    /* read_some hands out what is there, at least one byte. */
    char tr[16];
    size_t got = 0;
    while (got < 5) {
        ssize_t n = gh_reader_read_some(&r, tr + got, sizeof tr - got, 5 * GH_SEC);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(tr, "TRAIL", 5);
    assert_int_equal(gh_reader_read_some(&r, tr, sizeof tr, GH_SEC), 0);
    assert_int_equal(gh_reader_read_exact(&r, tr, sizeof tr, GH_SEC), 0);
    assert_int_equal(gh_reader_read_some(&r, tr, 0, GH_SEC), 0);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    free(big);
    free(data);
    TASKS_OK();
    HUB_CLOSES_CLEAN();
}

static void test_reader_read_exact_short_at_eof_and_timeout(void **state)
{
    (void)state;
    int sv[2];
    sock_pair(sv);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 64), 0);
    char buf[32];
    assert_int_equal(gh_write_all(sv[1], "12345", 5, GH_SEC), 5);
    /* Not all there yet: -ETIMEDOUT, and the five bytes are still buffered. */
    assert_int_equal(gh_reader_read_exact(&r, buf, 8, 20 * GH_MSEC), -ETIMEDOUT);
    assert_int_equal(gh_reader_buffered(&r), 5);
    assert_int_equal(gh_write_all(sv[1], "678", 3, GH_SEC), 3);
    assert_int_equal(gh_reader_read_exact(&r, buf, 8, GH_SEC), 8);
    assert_memory_equal(buf, "12345678", 8);
    /* EOF before n: the bytes there are returned, fewer than asked. */
    assert_int_equal(gh_write_all(sv[1], "xyz", 3, GH_SEC), 3);
    gh_close(sv[1]);
    assert_int_equal(gh_reader_read_exact(&r, buf, 10, GH_SEC), 3);
    assert_memory_equal(buf, "xyz", 3);
    assert_int_equal(gh_reader_read_exact(&r, buf, 10, GH_SEC), 0);
    /* Argument errors. */
    assert_int_equal(gh_reader_read_exact(&r, NULL, 3, GH_SEC), -EINVAL);
    assert_int_equal(gh_reader_read_some(&r, NULL, 3, GH_SEC), -EINVAL);
    assert_int_equal(gh_reader_read_some(&r, buf, 3, -4), -EINVAL);
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    HUB_CLOSES_CLEAN();
}

/* After an overlong line, read_exact and read_some skip its rest first, too. */
static void test_reader_skip_before_any_read(void **state)
{
    (void)state;
    int sv[2];
    sock_pair(sv);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 16), 0);
    const char *text = "this line is far too long\nBODY";
    assert_int_equal(gh_write_all(sv[1], text, strlen(text), GH_SEC), (ssize_t)strlen(text));
    const char *line;
    assert_int_equal(gh_reader_readline(&r, &line, 8, GH_SEC), -EMSGSIZE);
    char buf[4];
    assert_int_equal(gh_reader_read_exact(&r, buf, 4, GH_SEC), 4);
    assert_memory_equal(buf, "BODY", 4);
    /* And read_some. */
    assert_int_equal(gh_write_all(sv[1], "\nanother long line!\nX", 21, GH_SEC), 21);
    expect_line(&r, 8, "\n");
    assert_int_equal(gh_reader_readline(&r, &line, 8, GH_SEC), -EMSGSIZE);
    assert_int_equal(gh_reader_read_some(&r, buf, sizeof buf, GH_SEC), 1);
    assert_int_equal(buf[0], 'X');
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    gh_close(sv[1]);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------ kill, errors */

typedef struct line_waiter {
    gh_reader *r;
    ssize_t result;
} line_waiter;

static void line_waiter_task(void *arg)
{
    line_waiter *w = arg;
    const char *line;
    w->result = gh_reader_readline(w->r, &line, 64, 10 * GH_SEC);
}

static void test_reader_kill_and_reset(void **state)
{
    (void)state;
    int sv[2];
    sock_pair(sv);
    gh_reader r;
    assert_int_equal(gh_reader_init(&r, sv[0], 128), 0);
    line_waiter w = {&r, 1};
    gh_task *t = gh_spawn(line_waiter_task, &w);
    assert_int_equal(gh_sleep(10 * GH_MSEC), 0);
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(w.result, -ECANCELED);
    gh_reader_destroy(&r);
    gh_close(sv[0]);
    gh_close(sv[1]);

    /* A TCP peer that resets: the reader reports -ECONNRESET. */
    int l = gh_listen("127.0.0.1", 0, 4);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getsockname(l, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    int c = gh_connect("127.0.0.1", port, GH_SEC);
    int s = gh_accept(l, GH_SEC);
    assert_true(c >= 0 && s >= 0);
    gh_close(l);
    assert_int_equal(gh_reader_init(&r, c, 128), 0);
    assert_int_equal(gh_write_all(s, "half a li", 9, GH_SEC), 9);
    struct linger lg = {1, 0};
    setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    gh_close(s);
    const char *line;
    assert_int_equal(gh_reader_readline(&r, &line, 64, GH_SEC), -ECONNRESET);
    gh_reader_destroy(&r);
    gh_close(c);
    HUB_CLOSES_CLEAN();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_reader_readline_any_split, setup),
        cmocka_unit_test_setup(test_reader_readline_overlong, setup),
        cmocka_unit_test_setup(test_reader_overlong_reported_early, setup),
        cmocka_unit_test_setup(test_reader_memory_bounded, setup),
        cmocka_unit_test_setup(test_reader_readline_timeout_consumes_nothing, setup),
        cmocka_unit_test_setup(test_reader_read_exact_and_some, setup),
        cmocka_unit_test_setup(test_reader_read_exact_short_at_eof_and_timeout, setup),
        cmocka_unit_test_setup(test_reader_skip_before_any_read, setup),
        cmocka_unit_test_setup(test_reader_kill_and_reset, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
