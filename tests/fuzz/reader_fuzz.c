/*
 * reader_fuzz.c — fuzz target for gh_reader: LLVMFuzzerTestOneInput.
 *
 * The input is a small program and a byte stream:
 *
 *   byte 0      buffer size: 4 + b % 125 (small, to hit every boundary)
 *   byte 1      writer piece size: 1 + b % 32 (the stream arrives in pieces)
 *   byte 2      number of operations: 1 + b % 32
 *   2 per op    kind (readline, read_exact, read_some) and its argument
 *   the rest    the stream, at most 16 KiB
 *
 * A writer task sends the stream over a socketpair in pieces, yielding
 * between them, then closes; the root runs the operations on a gh_reader
 * and checks each result against a plain model of the stream (readline's
 * limit and skipping, read_exact's count, read_some's bounds, the bytes
 * themselves), that the reader's memory never grows, and at the end that
 * the rest of the stream up to EOF is exactly what the model has left. Any
 * difference aborts. Built two ways: with clang -fsanitize=fuzzer,address as a real
 * libFuzzer target (tests/fuzz/libfuzzer_test.sh), and with gcc against
 * replay_main.c, which replays the committed corpus plus generated inputs.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "greenhub.h"

#define FUZZ_MAX_STREAM (16 * 1024)
#define FUZZ_TIMEOUT    (10 * GH_SEC)

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "reader_fuzz: check failed at line %d: %s\n", __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef struct fuzz_writer {
    int fd;
    const uint8_t *data;
    size_t len, piece;
} fuzz_writer;

static void fuzz_writer_task(void *arg)
{
    fuzz_writer *w = arg;
    for (size_t off = 0; off < w->len;) {
        size_t n = w->len - off < w->piece ? w->len - off : w->piece;
        FUZZ_CHECK(gh_write_all(w->fd, w->data + off, n, FUZZ_TIMEOUT) == (ssize_t)n);
        off += n;
        FUZZ_CHECK(gh_yield() == 0);
    }
    FUZZ_CHECK(gh_close(w->fd) == 0);
}

/* The model: what a correct reader returns, from the whole stream at once. */
typedef struct fuzz_model {
    const uint8_t *data;
    size_t len, pos;
    int skipping;
} fuzz_model;

static void model_skip(fuzz_model *m)
{
    if (!m->skipping)
        return;
    const uint8_t *nl = memchr(m->data + m->pos, '\n', m->len - m->pos);
    m->pos = nl ? (size_t)(nl - m->data) + 1 : m->len;
    m->skipping = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 3)
        return 0;
    size_t cap = 4 + in[0] % 125;
    size_t piece = 1 + in[1] % 32;
    size_t nops = 1 + in[2] % 32;
    if (size < 3 + 2 * nops)
        return 0;
    const uint8_t *ops = in + 3;
    const uint8_t *stream = ops + 2 * nops;
    size_t len = size - 3 - 2 * nops;
    if (len > FUZZ_MAX_STREAM)
        len = FUZZ_MAX_STREAM;

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    fuzz_writer w = {sv[1], stream, len, piece};
    gh_task *t = gh_spawn(fuzz_writer_task, &w);
    FUZZ_CHECK(t != NULL);

    gh_reader r;
    FUZZ_CHECK(gh_reader_init(&r, sv[0], cap) == 0);
    char *const buf0 = r.buf;
    fuzz_model m = {stream, len, 0, 0};
    uint8_t *out = malloc(2 * cap + 1);
    FUZZ_CHECK(out != NULL);

    for (size_t i = 0; i < nops; i++) {
        unsigned kind = ops[2 * i] % 3, arg = ops[2 * i + 1];
        if (kind == 0) {
            size_t max = 1 + arg % cap;
            const char *line = NULL;
            ssize_t n = gh_reader_readline(&r, &line, max, FUZZ_TIMEOUT);
            model_skip(&m);
            size_t left = m.len - m.pos;
            size_t look = left < max ? left : max;
            const uint8_t *nl = memchr(m.data + m.pos, '\n', look);
            if (nl) {
                size_t want = (size_t)(nl - (m.data + m.pos)) + 1;
                FUZZ_CHECK(n == (ssize_t)want);
                FUZZ_CHECK(memcmp(line, m.data + m.pos, want) == 0);
                m.pos += want;
            } else if (left >= max) {
                FUZZ_CHECK(n == -EMSGSIZE);
                m.pos += max;
                m.skipping = 1;
            } else {
                FUZZ_CHECK(n == (ssize_t)left); /* the last line, or 0 at EOF */
                FUZZ_CHECK(left == 0 || memcmp(line, m.data + m.pos, left) == 0);
                m.pos += left;
            }
        } else if (kind == 1) {
            size_t want_n = arg % (2 * cap + 1); /* beyond the buffer too */
            ssize_t n = gh_reader_read_exact(&r, out, want_n, FUZZ_TIMEOUT);
            model_skip(&m);
            size_t left = m.len - m.pos;
            size_t want = want_n < left ? want_n : left;
            FUZZ_CHECK(n == (ssize_t)want);
            FUZZ_CHECK(memcmp(out, m.data + m.pos, want) == 0);
            m.pos += want;
        } else {
            size_t want_n = 1 + arg % (2 * cap);
            ssize_t n = gh_reader_read_some(&r, out, want_n, FUZZ_TIMEOUT);
            model_skip(&m);
            size_t left = m.len - m.pos;
            if (left == 0) {
                FUZZ_CHECK(n == 0);
            } else {
                FUZZ_CHECK(n >= 1 && (size_t)n <= want_n && (size_t)n <= left);
                FUZZ_CHECK(memcmp(out, m.data + m.pos, (size_t)n) == 0);
                m.pos += (size_t)n;
            }
        }
        /* Memory never grows: same buffer, same size, unread bytes inside it. */
        FUZZ_CHECK(r.buf == buf0 && r.cap == cap);
        FUZZ_CHECK(r.start <= r.end && r.end <= r.cap);
        FUZZ_CHECK(gh_reader_buffered(&r) <= cap);
    }

    /* The rest of the stream, to EOF, must be exactly what the model has left. */
    model_skip(&m);
    for (;;) {
        ssize_t n = gh_reader_read_some(&r, out, 2 * cap + 1, FUZZ_TIMEOUT);
        FUZZ_CHECK(n >= 0);
        if (n == 0)
            break;
        FUZZ_CHECK((size_t)n <= m.len - m.pos);
        FUZZ_CHECK(memcmp(out, m.data + m.pos, (size_t)n) == 0);
        m.pos += (size_t)n;
    }
    FUZZ_CHECK(m.pos == m.len);
    FUZZ_CHECK(gh_join(t, FUZZ_TIMEOUT) == 0);
    gh_task_release(t);
    gh_reader_destroy(&r);
    FUZZ_CHECK(gh_close(sv[0]) == 0);
    free(out);
    FUZZ_CHECK(gh_hub_close() == 0);
    return 0;
}
