/*
 * embed_libuv.c — a greenhub echo server living inside a libuv loop.
 *
 * The program is a libuv program: uv_run owns the thread. greenhub's hub is
 * one more fd to it (gh_hub_fd), watched with a uv_poll_t; when it fires,
 * gh_hub_run_once(0) runs what is ready — green tasks accepting and echoing
 * with plain blocking-style code — and returns to libuv. A libuv timer
 * prints what both sides did each second, from the same thread.
 *
 *   ./embed_libuv [--port N] [--seconds S] [--backend NAME]
 *   nc localhost 6001
 *
 * --seconds 0 (the default) runs until SIGINT or SIGTERM (a libuv signal
 * handle). Stopping closes the listener and every connection with gh_close,
 * lets the tasks finish through gh_hub_run_once, and closes both loops.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "args.h"
#include "greenhub.h"

#define MAX_CLIENTS 1024

static int listen_fd = -1;
static int clients[MAX_CLIENTS];
static int nclients;
static unsigned long echoes, runs, run_once_calls;
static pthread_t loop_thread;
static bool same_thread = true; /* every task ran on libuv's thread */

static void client_remove(int fd)
{
    for (int i = 0; i < nclients; i++) {
        if (clients[i] == fd) {
            clients[i] = clients[--nclients];
            gh_close(fd);
            return;
        }
    }
}

/* One green task per connection: blocking-style reads and writes. */
static void conn_task(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    same_thread &= pthread_equal(pthread_self(), loop_thread) != 0;
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0 || gh_write_all(fd, buf, (size_t)n, 5 * GH_SEC) < 0)
            break;
        echoes++;
    }
    client_remove(fd); /* a stop already took it off the list and closed it */
}

static void accept_task(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = gh_accept(listen_fd, GH_FOREVER);
        if (fd == -EBADF)
            return; /* stopped */
        if (fd < 0) {
            fprintf(stderr, "embed_libuv: accept: %s\n", gh_strerror(fd));
            gh_sleep(100 * GH_MSEC);
            continue;
        }
        if (nclients == MAX_CLIENTS || gh_spawn_n(conn_task, (void *)(intptr_t)fd) != 0) {
            gh_close(fd);
            continue;
        }
        clients[nclients++] = fd;
    }
}

/* libuv says the hub fd is readable: let greenhub run what is ready. */
static void on_hub_ready(uv_poll_t *handle, int status, int events)
{
    (void)handle;
    (void)events;
    if (status < 0)
        return;
    int n = gh_hub_run_once(0);
    run_once_calls++;
    if (n > 0)
        runs += (unsigned long)n;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    printf("tick: %lu echoes, %d clients, %lu greenhub runs in %lu run_once calls\n", echoes,
           nclients, runs, run_once_calls);
    fflush(stdout);
}

static uv_poll_t hub_poll;
static uv_timer_t tick_timer, stop_timer;
static uv_signal_t sigint, sigterm;

static void stop(void)
{
    printf("stopping\n");
    fflush(stdout);
    gh_close(listen_fd); /* the accept task wakes with -EBADF */
    while (nclients > 0)
        gh_close(clients[--nclients]); /* each connection task wakes with -EBADF */
    uv_close((uv_handle_t *)&hub_poll, NULL);
    uv_close((uv_handle_t *)&tick_timer, NULL);
    uv_close((uv_handle_t *)&stop_timer, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
}

static void on_stop_timer(uv_timer_t *t)
{
    (void)t;
    stop();
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    stop();
}

int main(int argc, char **argv)
{
    long port = 6001, seconds = 0;
    const char *backend = NULL;
    const ex_opt opts[] = {
        {"--port", "N", "port to listen on (0: any free one)", EX_LONG, &port, 0, 65535},
        {"--seconds", "S", "stop after S seconds (0: at SIGINT/SIGTERM)", EX_LONG, &seconds, 0,
         86400},
        {"--backend", "NAME", "epoll, poll, select, io_uring, libev or libevent", EX_STR, &backend,
         0, 0},
    };
    int rc = ex_args_parse(argc, argv, "A greenhub echo server inside a libuv loop.", opts,
                           EX_COUNT(opts));
    if (rc >= 0)
        return rc;
    if (backend) {
        int err = gh_use_hub(backend);
        if (err) {
            fprintf(stderr, "%s: backend %s: %s\n", ex_prog(argv[0]), backend, gh_strerror(err));
            return 1;
        }
    }
    loop_thread = pthread_self();

    listen_fd = gh_listen("127.0.0.1", (int)port, 128);
    if (listen_fd < 0) {
        fprintf(stderr, "%s: listen: %s\n", ex_prog(argv[0]), gh_strerror(listen_fd));
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    getsockname(listen_fd, (struct sockaddr *)&sin, &len);
    printf("listening on port %d (backend %s, inside libuv %s)\n", ntohs(sin.sin_port),
           gh_hub_backend(gh_get_hub()), uv_version_string());
    fflush(stdout);
    gh_spawn_n(accept_task, NULL);

    uv_loop_t *loop = uv_default_loop();
    int hub_fd = gh_hub_fd();
    if (hub_fd < 0) {
        fprintf(stderr, "%s: gh_hub_fd: %s\n", ex_prog(argv[0]), gh_strerror(hub_fd));
        return 1;
    }
    uv_poll_init(loop, &hub_poll, hub_fd);
    uv_poll_start(&hub_poll, UV_READABLE, on_hub_ready);
    uv_timer_init(loop, &tick_timer);
    uv_timer_start(&tick_timer, on_tick, 1000, 1000);
    uv_timer_init(loop, &stop_timer);
    if (seconds > 0)
        uv_timer_start(&stop_timer, on_stop_timer, (uint64_t)seconds * 1000, 0);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);

    /* libuv is done; let every task see its closed fd and finish. */
    for (int i = 0; i < 100 && gh_hub_run_once(10 * GH_MSEC) != 0; i++) {
    }
    int err = gh_hub_close();
    uv_loop_close(loop);
    printf("bye: %lu echoes, tasks %s libuv's thread, hub close %s\n", echoes,
           same_thread ? "all ran on" : "did NOT all run on", err ? gh_strerror(err) : "ok");
    return err == 0 && same_thread ? 0 : 1;
}
