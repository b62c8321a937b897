/*
 * echo_server.c — eventlet's echo server, on greenhub.
 *
 * Listens on port 6000 (or --port N; 0 picks a free port) and echoes back
 * every byte a client sends, as it arrives, so telnet/nc lines come back
 * whole. One green task per client; a client that leaves ends its task.
 * SIGINT or SIGTERM stops it cleanly: no new clients, every connection
 * closed, the hub closed.
 *
 *   ./echo_server [--port N] [--backend epoll|poll|select|io_uring|libev|libevent]
 *   telnet localhost 6000
 */
/* pipe2; this file is also built outside Bazel (README, "Use greenhub from your project"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"

#define MAX_CLIENTS 4096

/* Open client connections, so a stop can close them (and so end their tasks). */
static int clients[MAX_CLIENTS];
static int nclients;
static int listen_fd = -1;
static int stop_pipe[2] = {-1, -1};

static void client_add(int fd)
{
    if (nclients < MAX_CLIENTS)
        clients[nclients++] = fd;
}

static int client_remove(int fd)
{
    for (int i = 0; i < nclients; i++) {
        if (clients[i] == fd) {
            clients[i] = clients[--nclients];
            return 1;
        }
    }
    return 0;
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

static void handle(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];

    name_conn_task(fd);
    printf("client connected\n");
    fflush(stdout);
    for (;;) {
        ssize_t n = gh_read(fd, buf, sizeof buf, GH_FOREVER);
        if (n <= 0)
            break; /* 0: the client left; <0: an error, or the server is stopping */
        if (gh_write_all(fd, buf, (size_t)n, GH_FOREVER) < 0)
            break;
    }
    /* A stop closes the fd itself (and takes it off the list); otherwise we do. */
    if (client_remove(fd))
        gh_close(fd);
    printf("client disconnected\n");
    fflush(stdout);
}

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t w = write(stop_pipe[1], "x", 1);
    (void)w;
    errno = saved;
}

/* Waits for a signal, then stops the accept loop and every client. */
static void stopper(void *arg)
{
    (void)arg;
    char c;
    if (gh_read(stop_pipe[0], &c, 1, GH_FOREVER) != 1)
        return;
    printf("stopping\n");
    fflush(stdout);
    gh_close(listen_fd); /* wakes the accept loop with -EBADF */
    while (nclients > 0)
        gh_close(clients[--nclients]); /* wakes each client task with -EBADF */
}

int main(int argc, char **argv)
{
    long port = 6000;
    const char *backend = NULL;
    const ex_opt opts[] = {
        {"--port", "N", "port to listen on (0: any free one)", EX_LONG, &port, 0, 65535},
        {"--backend", "NAME", "epoll, poll, select, io_uring, libev or libevent", EX_STR, &backend,
         0, 0},
    };
    int rc = ex_args_parse(argc, argv, "eventlet's echo server: one green task per client.", opts,
                           EX_COUNT(opts));
    if (rc >= 0)
        return rc;

    if (backend) {
        int err = gh_use_hub(backend);
        if (err) {
            fprintf(stderr, "echo_server: backend %s: %s\n", backend, gh_strerror(err));
            return 1;
        }
    }

    if (pipe2(stop_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        perror("echo_server: pipe");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    listen_fd = gh_listen("0.0.0.0", (int)port, 128);
    if (listen_fd < 0) {
        fprintf(stderr, "echo_server: listen on port %ld: %s\n", port, gh_strerror(listen_fd));
        return 1;
    }
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(listen_fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    printf("server socket listening on port %ld (backend %s)\n", port,
           gh_hub_backend(gh_get_hub()));
    fflush(stdout);

    gh_spawn_n(stopper, NULL);
    for (;;) {
        int fd = gh_accept(listen_fd, GH_FOREVER);
        if (fd == -EBADF)
            break; /* stopped */
        if (fd < 0) {
            fprintf(stderr, "echo_server: accept: %s\n", gh_strerror(fd));
            if (fd == -EMFILE || fd == -ENFILE)
                gh_sleep(100 * GH_MSEC); /* let some clients leave */
            continue;
        }
        client_add(fd);
        if (gh_spawn_n(handle, (void *)(intptr_t)fd) != 0) {
            client_remove(fd);
            gh_close(fd);
        }
    }

    /* Let every client task see its closed fd and finish, then free the hub. */
    int err = gh_hub_run();
    gh_close(stop_pipe[0]);
    close(stop_pipe[1]);
    if (err == 0)
        err = gh_hub_close();
    printf("bye\n");
    return err == 0 ? 0 : 1;
}
