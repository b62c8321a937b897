/*
 * http_hello.c — an HTTP/1.1 "Hello, World!" server on the greenhub runtime.
 *
 *   ./http_hello [--threads N] [--port P] [--host ADDR] [--backend NAME]
 *                [--timeout MS] [--max-header BYTES]
 *   wrk -t2 -c64 -d5s http://127.0.0.1:8080/
 *
 * N hub threads (gh_runtime), each with its own SO_REUSEPORT listening
 * socket on the same port, so the kernel spreads connections over them; one
 * green task per connection. What it does, and what it refuses:
 *
 *  - keep-alive (HTTP/1.1 by default, HTTP/1.0 with "Connection:
 *    keep-alive"); pipelined requests are answered in order, and answers to
 *    requests that arrived together go out in one write;
 *  - the request head (request line + header fields) is bounded by
 *    --max-header bytes (default 8192) and 100 fields: a longer request line
 *    is 414, more header bytes or fields is 431, then the connection closes;
 *  - anything malformed (request line, field syntax, obs-fold, control
 *    characters, a bad or conflicting Content-Length, HTTP/1.1 without
 *    exactly one Host) is 400 and close; Transfer-Encoding is 501, an
 *    unknown HTTP version 505, a body over 1 MiB 413, all with close;
 *  - slow clients: the whole request (head and body) must arrive within
 *    --timeout ms (default 10000) of its first byte being awaited, else 408
 *    and close; an idle keep-alive connection is closed after the same time;
 *    a client that does not read its answers is dropped after it too;
 *  - GET and HEAD of any path are 200 "Hello, World!\n"; other methods 405.
 *
 * SIGINT/SIGTERM (waited for with gh_signal_wait by two tasks on hub 0):
 * every hub closes its listener and shuts its connections down (each task
 * ends by itself), then the runtime stops. The listening
 * address is printed on stdout first ("listening on http://HOST:PORT/").
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"

#define MAX_FIELDS 100
#define MAX_BODY   (1024 * 1024)
#define OUT_SIZE   (16 * 1024)
#define HELLO      "Hello, World!\n"

typedef struct server_cfg {
    int64_t timeout;   /* request / idle / write timeout */
    size_t max_header; /* request line + fields, bytes */
} server_cfg;

static server_cfg cfg = {10 * GH_SEC, 8192};

typedef struct conn conn;

/* One per hub thread: its listener and its open connections. */
typedef struct hub_state {
    int index;
    int lfd;
    conn *conns; /* doubly linked, for the stop */
    bool stopping;
    uint64_t requests, connections;
} hub_state;

struct conn {
    conn *prev, *next;
    hub_state *hs;
    int fd;
    size_t olen;
    char out[OUT_SIZE];
};

/* ------------------------------------------------------------ output */

static const char *date_now(void)
{
    /* One formatted Date per second per hub thread. */
    static _Thread_local char buf[40];
    static _Thread_local time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

static int conn_flush(conn *c)
{
    if (c->olen == 0)
        return 0;
    ssize_t w = gh_write_all(c->fd, c->out, c->olen, cfg.timeout);
    c->olen = 0;
    return w < 0 ? (int)w : 0;
}

/* Queue one response; flush first if it would not fit. */
static int conn_respond(conn *c, int status, const char *reason, const char *extra_headers,
                        const char *body, bool head_only, bool keep_alive)
{
    size_t blen = strlen(body);
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %d %s\r\nServer: greenhub-http_hello\r\nDate: %s\r\n"
                      "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s%s\r\n",
                      status, reason, date_now(), blen, extra_headers,
                      keep_alive ? "" : "Connection: close\r\n");
    if (hl < 0 || (size_t)hl >= sizeof hdr)
        return -EOVERFLOW;
    size_t need = (size_t)hl + (head_only ? 0 : blen);
    if (c->olen + need > sizeof c->out) {
        int err = conn_flush(c);
        if (err)
            return err;
    }
    memcpy(c->out + c->olen, hdr, (size_t)hl);
    c->olen += (size_t)hl;
    if (!head_only) {
        memcpy(c->out + c->olen, body, blen);
        c->olen += blen;
    }
    return 0;
}

/* ------------------------------------------------------------- parsing */

static bool is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static size_t trim_eol(const char *line, size_t n)
{
    if (n && line[n - 1] == '\n')
        n--;
    if (n && line[n - 1] == '\r')
        n--;
    return n;
}

static bool token_eq(const char *p, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

typedef struct request {
    bool head_only, get_or_head;
    int minor; /* HTTP/1.<minor> */
    bool conn_close, conn_keep_alive;
    int hosts;
    long long content_length; /* -1: none */
} request;

/* Parse "METHOD SP target SP HTTP/1.x". @return 0, or an HTTP status. */
static int parse_request_line(const char *p, size_t n, request *rq)
{
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p)
        return 400;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return 400;
    const char *t = sp1 + 1;
    const char *end = p + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t)
        return 400;
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return 400;
    const char *v = sp2 + 1;
    size_t vl = (size_t)(end - v);
    if (vl != 8 || memcmp(v, "HTTP/", 5) != 0 || !isdigit((unsigned char)v[5]) || v[6] != '.' ||
        !isdigit((unsigned char)v[7]))
        return 400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return 505;
    rq->minor = v[7] - '0';
    size_t ml = (size_t)(sp1 - p);
    rq->head_only = ml == 4 && memcmp(p, "HEAD", 4) == 0;
    rq->get_or_head = rq->head_only || (ml == 3 && memcmp(p, "GET", 3) == 0);
    return 0;
}

/* Parse one "name: value" field. @return 0, or an HTTP status. */
static int parse_field(const char *p, size_t n, request *rq)
{
    if (p[0] == ' ' || p[0] == '\t')
        return 400; /* obs-fold */
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p)
        return 400;
    size_t nl = (size_t)(colon - p);
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)p[i]))
            return 400; /* includes whitespace before the colon */
    const char *v = colon + 1, *end = p + n;
    for (const char *q = v; q < end; q++)
        if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
            return 400;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vl = (size_t)(end - v);

    if (token_eq(p, nl, "host")) {
        rq->hosts++;
    } else if (token_eq(p, nl, "content-length")) {
        if (vl == 0 || vl > 12)
            return 400;
        long long len = 0;
        for (size_t i = 0; i < vl; i++) {
            if (!isdigit((unsigned char)v[i]))
                return 400;
            len = len * 10 + (v[i] - '0');
        }
        if (rq->content_length >= 0 && rq->content_length != len)
            return 400;
        rq->content_length = len;
    } else if (token_eq(p, nl, "transfer-encoding")) {
        return 501;
    } else if (token_eq(p, nl, "connection")) {
        /* A comma-separated list of tokens. */
        const char *q = v;
        while (q < end) {
            const char *comma = memchr(q, ',', (size_t)(end - q));
            const char *te = comma ? comma : end;
            const char *ts = q;
            while (ts < te && (*ts == ' ' || *ts == '\t'))
                ts++;
            const char *tz = te;
            while (tz > ts && (tz[-1] == ' ' || tz[-1] == '\t'))
                tz--;
            if (token_eq(ts, (size_t)(tz - ts), "close"))
                rq->conn_close = true;
            else if (token_eq(ts, (size_t)(tz - ts), "keep-alive"))
                rq->conn_keep_alive = true;
            q = comma ? comma + 1 : end;
        }
    }
    return 0;
}

static const char *status_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Error";
    }
}

static int64_t left_of(int64_t deadline)
{
    int64_t d = deadline - gh_now();
    return d > 0 ? d : 0;
}

/* ---------------------------------------------------------- connection */

/*
 * Read and answer one request. @return 1 to keep going, 0 to close quietly
 * (EOF, idle timeout, an I/O error), or an HTTP error status to send, then close.
 */
static int serve_one(conn *c, gh_reader *r, int *keep)
{
    int64_t deadline = gh_now() + cfg.timeout;
    size_t budget = cfg.max_header;
    const char *line;
    ssize_t n;
    request rq = {.content_length = -1};

    /* The request line; empty lines before it are allowed (RFC 9112 2.2). */
    for (int blanks = 0;; blanks++) {
        n = gh_reader_readline(r, &line, budget, left_of(deadline));
        if (n == -ETIMEDOUT) /* part of a line came (it stays buffered): 408; none: idle */
            return gh_reader_buffered(r) ? 408 : 0;
        if (n == -EMSGSIZE)
            return 414;
        if (n <= 0)
            return 0; /* EOF or an error: nothing to answer */
        if (line[n - 1] != '\n')
            return 0; /* cut off by EOF */
        if (trim_eol(line, (size_t)n) > 0)
            break;
        if (blanks >= 8)
            return 400;
    }
    budget -= (size_t)n;
    int status = parse_request_line(line, trim_eol(line, (size_t)n), &rq);
    if (status)
        return status;

    /* Header fields, within what is left of the budget. */
    for (int fields = 0;; fields++) {
        if (budget == 0 || fields > MAX_FIELDS)
            return 431;
        n = gh_reader_readline(r, &line, budget, left_of(deadline));
        if (n == -ETIMEDOUT)
            return 408;
        if (n == -EMSGSIZE)
            return 431;
        if (n <= 0 || line[n - 1] != '\n')
            return 0;
        budget -= (size_t)n;
        size_t len = trim_eol(line, (size_t)n);
        if (len == 0)
            break;
        status = parse_field(line, len, &rq);
        if (status)
            return status;
    }
    if (rq.minor == 1 && rq.hosts != 1)
        return 400;
    if (rq.content_length > MAX_BODY)
        return 413;

    /* A body is read and dropped, within the same deadline. */
    static _Thread_local char scratch[16 * 1024];
    for (long long left = rq.content_length > 0 ? rq.content_length : 0; left > 0;) {
        size_t want = left < (long long)sizeof scratch ? (size_t)left : sizeof scratch;
        n = gh_reader_read_exact(r, scratch, want, left_of(deadline));
        if (n == -ETIMEDOUT)
            return 408;
        if (n < (ssize_t)want)
            return 0;
        left -= n;
    }

    *keep = rq.minor == 1 ? !rq.conn_close : (rq.conn_keep_alive && !rq.conn_close);
    if (c->hs->stopping)
        *keep = 0;
    const char *extra = rq.minor == 0 && *keep ? "Connection: keep-alive\r\n" : "";
    int err;
    if (rq.get_or_head)
        err = conn_respond(c, 200, "OK", extra, HELLO, rq.head_only, *keep);
    else
        err = conn_respond(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                           "method not allowed\n", false, *keep);
    c->hs->requests++;
    return err ? 0 : 1;
}

/*
 * Close after an error answer without losing it: stop sending, read and
 * drop what the client still sends for a moment, then close (a close with
 * unread input would reset the connection and could destroy the answer).
 */
static void linger_close(int fd)
{
    shutdown(fd, SHUT_WR);
    char buf[4096];
    int64_t deadline = gh_now() + 500 * GH_MSEC;
    for (size_t total = 0; total < 256 * 1024;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, left_of(deadline));
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    gh_close(fd);
}
/* Name the running task "conn <peer address>", as dumps and logs show it. */
static void name_conn_task(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?", name[INET6_ADDRSTRLEN + 16];
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(name, sizeof name, "conn %s:%d", host, port);
    gh_task_set_name(NULL, name);
}

static void conn_task(void *arg)
{
    conn *c = arg;
    hub_state *hs = c->hs;
    gh_reader r;
    name_conn_task(c->fd);
    size_t bufsize = cfg.max_header > 16 * 1024 ? cfg.max_header : 16 * 1024;
    int status = 0;
    if (gh_reader_init(&r, c->fd, bufsize) == 0) {
        for (;;) {
            int keep = 0;
            status = serve_one(c, &r, &keep);
            if (status != 1) {
                if (status == 0)
                    break;
                /* An error answer: after every answer before it, then close. */
                conn_respond(c, status, status_reason(status), "", status_reason(status), false,
                             false);
                break;
            }
            /* Answers to pipelined requests already here go out together. */
            if (!keep || gh_reader_buffered(&r) == 0) {
                if (conn_flush(c) != 0) {
                    status = 0;
                    break;
                }
            }
            if (!keep)
                break;
        }
        conn_flush(c);
        gh_reader_destroy(&r);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        hs->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (status > 1)
        linger_close(c->fd);
    else
        gh_close(c->fd);
    free(c);
}

static void acceptor_task(void *arg)
{
    hub_state *hs = arg;
    gh_task_set_name(NULL, "acceptor");
    while (!hs->stopping) {
        int fd = gh_accept(hs->lfd, GH_FOREVER);
        if (fd < 0) {
            if (fd == -EBADF || fd == -ECANCELED || hs->stopping)
                break;
            if (fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM || fd == -ENOBUFS)
                gh_sleep(10 * GH_MSEC); /* out of fds: let connections end */
            continue;
        }
        conn *c = malloc(sizeof *c);
        if (!c) {
            gh_close(fd);
            continue;
        }
        c->hs = hs;
        c->fd = fd;
        c->olen = 0;
        c->prev = NULL;
        c->next = hs->conns;
        if (hs->conns)
            hs->conns->prev = c;
        hs->conns = c;
        hs->connections++;
        if (gh_spawn_n(conn_task, c) != 0) {
            hs->conns = c->next;
            if (c->next)
                c->next->prev = NULL;
            gh_close(fd);
            free(c);
        }
    }
}

/* Runs on each hub (gh_call_on): stop accepting, end every connection. */
/* Set (with the signal number) by the first stop signal; main waits on it. */
static gh_xevent stop_event;
static gh_task *signal_tasks[2]; /* on hub 0 */

static void signal_task(void *arg)
{
    int sig = (int)(intptr_t)arg;
    if (gh_signal_wait(sig, GH_FOREVER) == 0)
        gh_xevent_set(&stop_event, (void *)(intptr_t)sig);
}

static void *start_signal_tasks(void *arg)
{
    (void)arg;
    signal_tasks[0] = gh_spawn(signal_task, (void *)(intptr_t)SIGINT);
    signal_tasks[1] = gh_spawn(signal_task, (void *)(intptr_t)SIGTERM);
    gh_yield(); /* both reach gh_signal_wait, so the handlers are in place */
    return NULL;
}

static void *hub_stop(void *arg)
{
    hub_state *hs = arg;
    if (hs->index == 0) {
        for (int i = 0; i < 2; i++) {
            gh_kill(signal_tasks[i]);
            gh_task_release(signal_tasks[i]);
        }
    }
    hs->stopping = true;
    if (hs->lfd >= 0) {
        gh_close(hs->lfd); /* wakes the acceptor with -EBADF */
        hs->lfd = -1;
    }
    /* The tasks see EOF (or EPIPE) and end, closing their own fds. */
    for (conn *c = hs->conns; c; c = c->next)
        shutdown(c->fd, SHUT_RDWR);
    return NULL;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long threads = 1, port = 8080, timeout_ms = 10000, max_header = 8192;
    const char *host = "127.0.0.1", *backend = NULL;
    const ex_opt opts[] = {
        {"--threads", "N", "hubs, one thread each", EX_LONG, &threads, 1, 256},
        {"--port", "P", "port to listen on (0: any free one)", EX_LONG, &port, 0, 65535},
        {"--host", "ADDR", "address to listen on", EX_STR, &host, 0, 0},
        {"--backend", "NAME", "epoll, poll, select, io_uring, libev or libevent", EX_STR, &backend,
         0, 0},
        {"--timeout", "MS", "idle keep-alive timeout", EX_LONG, &timeout_ms, 1, 3600 * 1000},
        {"--max-header", "BYTES", "longest request head accepted", EX_LONG, &max_header, 64,
         1024 * 1024},
    };
    int status = ex_args_parse(argc, argv, "An HTTP/1.1 keep-alive hello server on the runtime.",
                               opts, EX_COUNT(opts));
    if (status >= 0)
        return status;
    cfg.timeout = timeout_ms * GH_MSEC;
    cfg.max_header = (size_t)max_header;

    signal(SIGPIPE, SIG_IGN); /* belt and braces: greenhub already sends with MSG_NOSIGNAL */

    hub_state *hs = calloc((size_t)threads, sizeof *hs);
    if (!hs)
        return 1;
    for (long i = 0; i < threads; i++) {
        hs[i].index = (int)i;
        hs[i].lfd = gh_listen_ex(host, (int)port, 1024, 1);
        if (hs[i].lfd < 0) {
            fprintf(stderr, "http_hello: listen on %s:%ld: %s\n", host, port,
                    gh_strerror(hs[i].lfd));
            return 1;
        }
        if (port == 0) {
            /* The first socket picked a port; the others share it. */
            struct sockaddr_storage ss;
            socklen_t len = sizeof ss;
            getsockname(hs[i].lfd, (struct sockaddr *)&ss, &len);
            port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                  : ((struct sockaddr_in *)&ss)->sin_port);
        }
    }

    const char **backends = NULL;
    if (backend) {
        backends = calloc((size_t)threads, sizeof *backends);
        for (long i = 0; backends && i < threads; i++)
            backends[i] = backend;
    }
    gh_runtime_config rc = {.threads = (int)threads, .backends = backends};
    gh_runtime *rt;
    int err = gh_runtime_start(&rt, &rc);
    if (err) {
        fprintf(stderr, "http_hello: runtime: %s\n", gh_strerror(err));
        return 1;
    }
    for (long i = 0; i < threads; i++) {
        err = gh_spawn_on(gh_runtime_hub(rt, (int)i), acceptor_task, &hs[i]);
        if (err) {
            fprintf(stderr, "http_hello: spawn: %s\n", gh_strerror(err));
            return 1;
        }
    }
    gh_xevent_init(&stop_event);
    err = gh_call_on(gh_runtime_hub(rt, 0), start_signal_tasks, NULL, NULL, 5 * GH_SEC);
    if (err) {
        fprintf(stderr, "http_hello: signal tasks: %s\n", gh_strerror(err));
        return 1;
    }
    const char *bname = gh_hub_backend(gh_runtime_hub(rt, 0));
    printf("http_hello: listening on http://%s%s%s:%ld/ (%ld thread%s, %s)\n",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port, threads,
           threads == 1 ? "" : "s", bname ? bname : "?");
    fflush(stdout);

    void *got = NULL;
    gh_xevent_wait(&stop_event, &got, GH_FOREVER); /* a plain thread: blocks */
    int sig = (int)(intptr_t)got;
    printf("http_hello: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    for (long i = 0; i < threads; i++)
        gh_call_on(gh_runtime_hub(rt, (int)i), hub_stop, &hs[i], NULL, 5 * GH_SEC);
    err = gh_runtime_stop(rt, 5 * GH_SEC);
    uint64_t reqs = 0, conns = 0;
    for (long i = 0; i < threads; i++) {
        reqs += hs[i].requests;
        conns += hs[i].connections;
    }
    printf("http_hello: served %llu requests on %llu connections%s\n", (unsigned long long)reqs,
           (unsigned long long)conns, err ? " (some tasks had to be killed)" : "");
    gh_runtime_destroy(rt);
    gh_xevent_destroy(&stop_event);
    free(backends);
    free(hs);
    return err ? 1 : 0;
}
