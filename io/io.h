/*
 * io.h — the io layer's internal interface: the shared steps of every green
 * fd call (io.c), used by the socket calls (net.c) and the resolver.
 */
#ifndef GH_IO_IO_H
#define GH_IO_IO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "hub/hub.h"

struct sockaddr_storage;

/*
 * The prologue of a green fd call: checks @fd and @timeout_ns, gets the hub,
 * refuses from MAINLOOP or a killed task, and puts @fd into O_NONBLOCK once.
 * The steps below take no hub: each reads the calling thread's afresh,
 * since a task parked in one of them may be moved (gh_task_move) and
 * resume on another hub's thread.
 */
int gh__io_enter(int fd, int64_t timeout_ns, gh_hub **hp);
/*
 * After a syscall failed with errno: 0 to retry now (EINTR, or the fd became
 * ready for @events before @deadline), else the negative errno to return.
 */
int gh__io_retry(int fd, int events, int64_t timeout_ns, int64_t deadline);
/*
 * Before a read: when the last read of @fd was short (a stream drained),
 * wait for readability first instead of paying a syscall for EAGAIN.
 * 0 to go on and read, else the negative errno to return.
 */
int gh__io_read_prewait(int fd, int64_t timeout_ns, int64_t deadline);
/* A read handed to the backend: GH_OP_POLL_FIRST when the last one drained @fd. */
unsigned gh__io_read_hints(int fd);
/* After a read of @asked bytes returned @got >= 0: remember whether it drained @fd. */
void gh__io_read_done(int fd, ssize_t got, size_t asked);
/* Parse an IP literal or "localhost" into @ss (never blocks); -EINVAL otherwise. */
int gh__sock_addr(const char *host, int port, bool passive, struct sockaddr_storage *ss,
                  unsigned int *len);

#endif /* GH_IO_IO_H */
