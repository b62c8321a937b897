/*
 * reader.c — gh_reader, a buffered reader on an fd.
 *
 * One fixed buffer, given at init, holds the unread bytes buf[start, end);
 * it never grows, so a peer cannot make the reader use more memory than the
 * caller chose, whatever it sends. A line longer than readline's limit is
 * reported at once (-EMSGSIZE) without waiting for its end; the reader then
 * remembers to skip the rest of it, through its '\n', before the next read
 * of any kind, so a line protocol can answer the error and carry on.
 *
 * All waiting is gh_read's, with the call's deadline carried through every
 * refill. readline keeps how far it has already searched for '\n' (scan),
 * so a line that arrives one byte per read costs O(n), not O(n^2).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "io/io.h"

#define READER_DEFAULT_SIZE (16 * 1024)
#define READER_MAX_SIZE     ((size_t)1 << 30)

int gh_reader_init(gh_reader *r, int fd, size_t bufsize)
{
    if (!r)
        return -EINVAL;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (fd < 0)
        return -EBADF;
    if (bufsize == 0)
        bufsize = READER_DEFAULT_SIZE;
    if (bufsize > READER_MAX_SIZE)
        return -EINVAL;
    r->buf = malloc(bufsize);
    if (!r->buf)
        return -ENOMEM;
    r->fd = fd;
    r->cap = bufsize;
    return 0;
}

void gh_reader_destroy(gh_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

size_t gh_reader_buffered(const gh_reader *r)
{
    return r && r->buf ? r->end - r->start : 0;
}

/* What is left of @deadline as a timeout for gh_read: 0 once it passed (poll). */
static int64_t reader_left(int64_t deadline)
{
    if (deadline < 0)
        return GH_FOREVER;
    int64_t d = deadline - gh_now();
    return d > 0 ? d : 0;
}

static void reader_consume(gh_reader *r, size_t n)
{
    r->start += n;
    r->scan = 0;
    if (r->start == r->end)
        r->start = r->end = 0;
}

/* Move the unread bytes to the front of the buffer. */
static void reader_compact(gh_reader *r)
{
    if (r->start == 0)
        return;
    memmove(r->buf, r->buf + r->start, r->end - r->start);
    r->end -= r->start;
    r->start = 0;
}

/* One read into the free tail of the buffer. @return bytes (0 = EOF) or -errno. */
static ssize_t reader_fill(gh_reader *r, int64_t deadline)
{
    if (r->end == r->cap)
        reader_compact(r);
    GH_ASSERT(r->end < r->cap);
    ssize_t n = gh_read(r->fd, r->buf + r->end, r->cap - r->end, reader_left(deadline));
    if (n > 0)
        r->end += (size_t)n;
    else if (n == 0)
        r->eof = 1;
    return n;
}

/* Finish skipping an overlong line: drop bytes through its '\n' (or to EOF). */
static int reader_skip(gh_reader *r, int64_t deadline)
{
    while (r->skipping) {
        if (r->start < r->end) {
            char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
            if (nl) {
                reader_consume(r, (size_t)(nl - (r->buf + r->start)) + 1);
                r->skipping = 0;
                break;
            }
            r->start = r->end = 0;
            r->scan = 0;
        }
        if (r->eof) {
            r->skipping = 0;
            break;
        }
        ssize_t n = reader_fill(r, deadline);
        if (n < 0)
            return (int)n;
    }
    return 0;
}

static int reader_check(gh_reader *r, int64_t timeout_ns)
{
    if (!r || !r->buf)
        return -EINVAL;
    if (timeout_ns < GH_FOREVER)
        return -EINVAL;
    return 0;
}

ssize_t gh_reader_readline(gh_reader *r, const char **line, size_t max_len, int64_t timeout_ns)
{
    int err = reader_check(r, timeout_ns);
    if (err)
        return err;
    if (!line || max_len == 0 || max_len > r->cap)
        return -EINVAL;
    *line = NULL;
    int64_t deadline = gh__deadline(timeout_ns);
    err = reader_skip(r, deadline);
    if (err)
        return err;
    for (;;) {
        size_t avail = r->end - r->start;
        size_t limit = avail < max_len ? avail : max_len;
        if (r->scan < limit) {
            char *p = r->buf + r->start;
            char *nl = memchr(p + r->scan, '\n', limit - r->scan);
            if (nl) {
                size_t len = (size_t)(nl - p) + 1;
                *line = p;
                reader_consume(r, len);
                return (ssize_t)len;
            }
            r->scan = limit;
        }
        if (avail >= max_len) {
            /* max_len bytes and no '\n': report now, skip the rest later. */
            reader_consume(r, max_len);
            r->skipping = 1;
            return -EMSGSIZE;
        }
        if (r->eof) {
            if (avail == 0)
                return 0;
            /* The last line, without its '\n'. */
            *line = r->buf + r->start;
            reader_consume(r, avail);
            return (ssize_t)avail;
        }
        /* The line must fit between start and the end of the buffer. */
        if (r->start + max_len > r->cap)
            reader_compact(r);
        ssize_t n = reader_fill(r, deadline);
        if (n < 0)
            return n;
    }
}

static size_t reader_take(gh_reader *r, void *buf, size_t n)
{
    size_t avail = r->end - r->start;
    if (n > avail)
        n = avail;
    memcpy(buf, r->buf + r->start, n);
    reader_consume(r, n);
    return n;
}

ssize_t gh_reader_read_exact(gh_reader *r, void *buf, size_t n, int64_t timeout_ns)
{
    int err = reader_check(r, timeout_ns);
    if (err)
        return err;
    if (!buf && n)
        return -EINVAL;
    if (n > (size_t)SSIZE_MAX)
        return -EINVAL;
    int64_t deadline = gh__deadline(timeout_ns);
    err = reader_skip(r, deadline);
    if (err)
        return err;
    if (n <= r->cap) {
        /* Gather all n in the buffer first, so an error consumes nothing. */
        while (r->end - r->start < n && !r->eof) {
            if (r->start + n > r->cap)
                reader_compact(r);
            ssize_t got = reader_fill(r, deadline);
            if (got < 0)
                return got;
        }
        return (ssize_t)reader_take(r, buf, n);
    }
    /* Larger than the buffer: what is buffered, then straight into @buf. */
    size_t done = reader_take(r, buf, n);
    while (done < n && !r->eof) {
        ssize_t got = gh_read(r->fd, (char *)buf + done, n - done, reader_left(deadline));
        if (got < 0)
            return got;
        if (got == 0)
            r->eof = 1;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

ssize_t gh_reader_read_some(gh_reader *r, void *buf, size_t n, int64_t timeout_ns)
{
    int err = reader_check(r, timeout_ns);
    if (err)
        return err;
    if (!buf && n)
        return -EINVAL;
    if (n == 0)
        return 0;
    if (n > (size_t)SSIZE_MAX)
        n = (size_t)SSIZE_MAX;
    int64_t deadline = gh__deadline(timeout_ns);
    err = reader_skip(r, deadline);
    if (err)
        return err;
    if (r->end > r->start)
        return (ssize_t)reader_take(r, buf, n);
    if (r->eof)
        return 0;
    if (n >= r->cap) {
        /* The buffer would only add a copy. */
        ssize_t got = gh_read(r->fd, buf, n, reader_left(deadline));
        if (got == 0)
            r->eof = 1;
        return got;
    }
    ssize_t got = reader_fill(r, deadline);
    if (got <= 0)
        return got;
    return (ssize_t)reader_take(r, buf, n);
}
