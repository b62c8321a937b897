/*
 * greenhub.h — green tasks on per-thread hubs, for multi-core C servers.
 *
 * Every OS thread owns a hub: an event loop run by its own MAINLOOP task on a
 * backend the thread chooses (epoll, poll, select, io_uring, libev, libevent).
 * Tasks are stackful coroutines that block on fds, timers and events without
 * blocking the thread. Any thread may hand work to any hub (gh_spawn_on).
 *
 * Conventions:
 *  - Calls return 0, a count, or a negative errno; gh_strerror() names it.
 *    Calls that return a pointer return NULL and set errno; they never block.
 *  - Times are int64_t nanoseconds on gh_now()'s monotonic clock. A timeout
 *    of GH_FOREVER (-1) waits forever, 0 polls, any other negative is -EINVAL.
 *    Nothing fires early.
 *  - Unless a function says otherwise it acts on the calling thread's hub and
 *    must be called from that thread. A blocking call made from a timer
 *    callback (which runs on MAINLOOP) returns -EPERM.
 *  - Kill is sticky: once a task is killed, its current and every later
 *    blocking call returns -ECANCELED.
 */
#ifndef GREENHUB_H
#define GREENHUB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "greenhub_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles, declared first so that every section may use them. */
typedef struct gh_hub gh_hub;
typedef struct gh_task gh_task;
typedef struct gh_timer gh_timer;
typedef struct gh_runtime gh_runtime;
typedef struct gh_watcher gh_watcher;
typedef struct gh_tick gh_tick;

/* -------------------------------------------------------------------------------------- version */

/* The version of this header; gh_version() says the library's (they match unless mislinked). */
#define GH_VERSION_MAJOR 0
#define GH_VERSION_MINOR 2
#define GH_VERSION_PATCH 0

/** The library's version, "MAJOR.MINOR.PATCH". Any thread. */
const char *gh_version(void);

/* ------------------------------------------------------------------------------ errors and time */

#define GH_FOREVER ((int64_t)-1)
#define GH_USEC    ((int64_t)1000)
#define GH_MSEC    ((int64_t)1000000)
#define GH_SEC     ((int64_t)1000000000)

/** Name a negative errno (or 0) returned by greenhub. Any thread; never NULL. */
const char *gh_strerror(int err);

/** Monotonic time in nanoseconds. Any thread. */
int64_t gh_now(void);

/* ----------------------------------------------------------------------------------------- hubs */

/**
 * This thread's hub, created on first use with the default backend
 * (GREENHUB_HUB, else epoll, poll, select). Freed when the thread exits. In
 * a forked child it carries on with a backend instance and wakeup fd of its
 * own (docs/runtime.md, "fork()").
 * @return the hub, or NULL with errno set (ENOMEM, EMFILE, ...).
 */
gh_hub *gh_get_hub(void);

/**
 * Switch this thread's hub to the built-in backend @backend ("epoll", "poll",
 * "select", "io_uring", "libev", "libevent"; NULL = the default order).
 * Every fd waiter and timer is carried over to the new backend (a waiter whose
 * fd was closed with close() behind the hub's back may be woken with -EBADF).
 * @return 0; -ENOENT for an unknown name; -ENOSYS/-EPERM when the kernel
 *         refuses the mechanism; -EINVAL if a watched fd cannot be held by the
 *         new backend; -EPERM from a timer callback. On any error the hub
 *         keeps its backend, with every waiter intact.
 */
int gh_use_hub(const char *backend);

/** As gh_use_hub, with a third-party backend table (which must outlive the hub). */
int gh_use_hub_backend(const gh_backend_ops *ops);

/** The registry name of @hub's backend. Any thread. */
const char *gh_hub_backend(const gh_hub *hub);

/**
 * Run this thread's hub from the root task until only the root is left: no
 * other task (one waiting on an fd counts), timer (but those gh_timer_unref
 * let go) or pending handoff.
 * @return 0; -EINTR after gh_hub_break; -EPERM if not called from the root
 *         task; -ECANCELED if killed.
 */
int gh_hub_run(void);

/**
 * Drive this thread's hub from another loop (libuv's UV_RUN_ONCE / NOWAIT):
 * run every task, timer, watcher and handoff ready now, and if nothing was
 * ready, wait up to @timeout_ns (GH_FOREVER: until something is) for an fd
 * event, a due timer or a handoff, and run it. With nothing pending at all it
 * still waits the whole timeout, so the caller sets its own pace. With 0 it
 * never waits, but still collects the fd events ready now.
 * @return how many tasks and callbacks it ran (>= 0); -EINTR after
 *         gh_hub_break; -EPERM if not called from the root task; -ECANCELED
 *         if the root was killed; -EINVAL for @timeout_ns < GH_FOREVER.
 */
int gh_hub_run_once(int64_t timeout_ns);

/**
 * An fd that is readable whenever this thread's hub has work (a ready task,
 * a due timer, an fd event, a handoff from another thread), on every
 * backend: give it to another loop (GLib, libuv, your own epoll) and call
 * gh_hub_run_once(0) when it fires. The same fd every time; the hub owns it
 * (gh_close refuses it) and closes it when the hub is freed. Work the root
 * makes between two gh_hub_run_once calls (a spawn, a timer) makes it
 * readable too. A forked child asks for it again: the parent's is not shared.
 * @return the fd; -ENOMEM, -EMFILE. Calling thread's hub, any task.
 */
int gh_hub_fd(void);

/**
 * Make @hub's gh_hub_run return -EINTR soon (libuv's uv_stop): the run in
 * progress at its hub's next loop iteration, or else the next one at once.
 * Its tasks are left as they are. @return 0; -EINVAL. Any thread.
 */
int gh_hub_break(gh_hub *hub);

/**
 * Free this thread's hub (the next greenhub call makes a new one).
 * @return 0; -EBUSY while it holds tasks, timers or fd waiters; -EPERM from
 *         a task other than the root; -EBUSY for a runtime's hub.
 */
int gh_hub_close(void);

/* ---------------------------------------------------------------------------------------- tasks */

/**
 * Schedule fn(arg) as a new task on this thread's hub. It first runs when the
 * caller blocks or yields. Its stack is taken when it first runs.
 * @return a handle to pass to gh_task_release exactly once, or NULL with
 *         errno (ENOMEM).
 */
gh_task *gh_spawn(void (*fn)(void *), void *arg);

/** As gh_spawn without a handle. @return 0 or -ENOMEM / -EINVAL. */
int gh_spawn_n(void (*fn)(void *), void *arg);

/** As gh_spawn, but the task is first ready @delay_ns from now. */
gh_task *gh_spawn_after(int64_t delay_ns, void (*fn)(void *), void *arg);

/**
 * Wait for @t, a task of any hub, to finish. Any task (it waits green) or
 * plain thread (it blocks). From another hub the wait is a message through
 * @t's hub: a task whose hub is gone (closed, or a stopped runtime's) has
 * finished.
 * @return 0 once t has finished (repeatable); -ETIMEDOUT; -ECANCELED if the
 *         caller was killed; -EDEADLK when joining yourself, or when the
 *         root waits and nothing can ever wake it; -EPERM from a timer
 *         callback; -EINVAL; -ENOMEM. Any thread.
 */
int gh_join(gh_task *t, int64_t timeout_ns);

/**
 * Kill @t, a task of any hub: its current and every later blocking call
 * returns -ECANCELED. A task that has not started yet still starts, already
 * cancelled. From another thread the kill is a message through @t's hub,
 * acted on at its next loop iteration.
 * @return 0 (also for a finished task); -EINVAL for NULL. Any thread.
 */
int gh_kill(gh_task *t);

/**
 * Drop a handle from gh_spawn, gh_spawn_after or gh_spawn_task_on. Exactly
 * once, joined or not, from any thread; also after the task's hub was
 * closed (the finished task was kept for its handle). Any thread.
 */
void gh_task_release(gh_task *t);

/**
 * The hub @t runs on, or NULL once that hub is gone (gh_hub_close, thread
 * exit). Any thread.
 */
gh_hub *gh_task_hub(const gh_task *t);

/**
 * Move the calling task to @target's hub: it stops here and goes on there,
 * on @target's thread, with its stack, its name and its handle (join, kill
 * and release follow it; a task of this hub joining it keeps waiting). Its
 * stack goes to @target's cache when it ends. Call it between waits: the
 * task holds no fd wait or timeout while it runs. Code that keeps the
 * address of a _Thread_local variable across this call keeps the old
 * thread's.
 * @return 0 once it runs on @target (at once if @target is its hub);
 *         -ESHUTDOWN if @target is stopping or gone; -EPERM from the root
 *         task, a timer callback or a thread with no hub; -ECANCELED if
 *         killed; -EINVAL for NULL. A task of a hub.
 */
int gh_migrate(gh_hub *target);

/**
 * Move @t, a task of any hub, to @target's hub, with the wait it is in: a
 * task that has not started yet, one in gh_sleep or gh_yield, or one
 * waiting on an fd (gh_read, gh_accept, gh_write_all, gh_trampoline, ...)
 * keeps its deadline and wakes on @target for the same fd event or time,
 * never early, never lost. The calling task moves itself (as gh_migrate).
 * The caller waits (green, or blocking a plain thread) until @t's hub has
 * let it go and @target has it: then gh_task_hub(t) is @target. A task
 * waiting on anything else (an event, a semaphore, a queue, a join, a
 * channel, a signal, gh_wait_any), or just woken from it, is accepted at
 * once (0) but stays on that wait, where its waker is, with its deadline:
 * once woken it leaves, and its wait returns on @target (gh_task_hub(t)
 * names the old hub until then). One in gh_pool_spawn's wait for a slot
 * moves after its next wait. If @target has a task waiting on the same fd and
 * direction already, the moved task wakes with -EBUSY there (one waiter per
 * direction per hub).
 * @return 0; -EBUSY for a hub's root task; -ENOENT if it finished; -ESHUTDOWN if @target is
 *         stopping or gone; -ECANCELED if the caller was killed while
 *         waiting (the move may still happen); -EINVAL. Any thread.
 */
int gh_task_move(gh_task *t, gh_hub *target);

/** @t's id: the root task is 0, spawned tasks count from 1 per hub. Any thread. */
uint64_t gh_task_id(const gh_task *t);

/**
 * The running task of the calling thread's hub, or NULL from a timer callback
 * or a thread with no hub.
 */
gh_task *gh_current(void);

/**
 * Name @t (NULL: the running task), for people reading logs and dumps:
 * "acceptor", "conn 10.0.0.7:51234". The name is copied; NULL or "" clears it.
 * @return 0; -EINVAL for another hub's task or from a timer callback with
 *         @t NULL; -ENOMEM. @t's hub's thread.
 */
int gh_task_set_name(gh_task *t, const char *name);

/** @t's name, "" when unnamed (or @t NULL); valid until renamed or released. @t's hub's thread. */
const char *gh_task_name(const gh_task *t);

/**
 * Sleep @ns nanoseconds; 0 runs every task ready now, then returns.
 * @return 0; -ECANCELED; -EINVAL; -EPERM from a timer callback; -EDEADLK when
 *         the root sleeps GH_FOREVER and nothing else can ever wake it;
 *         -ETIMEDOUT when a deadline scope ends before the sleep does.
 * Calling thread's hub.
 */
int gh_sleep(int64_t ns);

/** Same as gh_sleep(0). */
int gh_yield(void);

/*
 * Deadline scopes (Trio's cancel scopes, gevent's Timeout): a budget for a
 * whole stretch of code rather than for one call.
 *
 *     gh_deadline_push(2 * GH_SEC);        // the request gets 2 s in all
 *     n = gh_read(fd, buf, len, GH_FOREVER);
 *     ...more blocking calls...
 *     if (gh_deadline_pop() == -ETIMEDOUT)  // the scope ran out
 *
 * Inside a scope, every blocking call of the task (gh_sleep, gh_join, fd
 * waits, events, channels, calls...) waits at most until the earliest of its
 * own timeout and every open scope's deadline; once that has passed, a call
 * that would have to wait returns -ETIMEDOUT at once (as with a kill, one
 * that can complete without waiting may still do so). Scopes
 * belong to the task (they move with it) and nest; pop them in reverse
 * order. A task that ends with scopes open just drops them.
 */

/**
 * Open a scope on the running task that ends @timeout_ns from now
 * (GH_FOREVER: a scope that adds no deadline).
 * @return 0; -EINVAL for @timeout_ns < GH_FOREVER; -EPERM from a callback
 *         (timer, watcher, hook); -ENOMEM. Calling thread's hub.
 */
int gh_deadline_push(int64_t timeout_ns);

/**
 * Close the innermost scope of the running task.
 * @return 0; -ETIMEDOUT if that scope's own deadline has passed (its calls
 *         were cut short, or would have been); -ENOENT if none is open;
 *         -EPERM from a callback. Calling thread's hub.
 */
int gh_deadline_pop(void);

/* --------------------------------------------------------------------------------------- timers */

/*
 * Timers, kombu style: the callback runs on MAINLOOP and must not block
 * (blocking calls return -EPERM there). Equal deadlines fire in the order the
 * timers were made. A timer belongs to the hub of the thread that made it.
 */

/**
 * Call cb(arg) at @when_ns (gh_now clock). @return handle, or NULL + errno.
 * Calling thread's hub.
 */
gh_timer *gh_call_at(int64_t when_ns, void (*cb)(void *), void *arg);

/**
 * Call cb(arg) @delay_ns from now (>= 0). @return handle, or NULL + errno.
 * Calling thread's hub.
 */
gh_timer *gh_call_after(int64_t delay_ns, void (*cb)(void *), void *arg);

/**
 * Call cb(arg) every @interval_ns (> 0), first one interval from now. Phase
 * is kept (next = last deadline + interval); missed ticks are skipped.
 * @return handle, or NULL + errno. Calling thread's hub.
 */
gh_timer *gh_call_repeatedly(int64_t interval_ns, void (*cb)(void *), void *arg);

/**
 * Cancel @t and free the handle; safe from inside t's own callback, and
 * after its hub was closed (it never fires again then: -ENOENT, freed).
 * @return 0 if it was pending (a repeating timer always is), -ENOENT if a
 *         one-shot had already fired; -EINVAL for NULL or another hub's
 *         timer. @t's hub's thread.
 */
int gh_timer_cancel(gh_timer *t);

/**
 * @t no longer keeps gh_hub_run going (libuv's uv_unref): a hub whose only
 * work is unref'd timers counts as idle. The timer still fires; the handle
 * stays valid (cancel, release, again work as before). @t's hub's thread.
 */
void gh_timer_unref(gh_timer *t);

/**
 * Restart @t from now (libuv's uv_timer_again): a repeating timer's next
 * tick is one interval from now; a one-shot, pending or already fired, fires
 * again after the delay it was first armed with.
 * @return 0; -EBUSY from its own callback; -EINVAL for NULL, a released or
 *         cancelled handle, or another hub's timer; -ENOMEM. @t's hub's thread.
 */
int gh_timer_again(gh_timer *t);

/**
 * Drop the handle, leaving the timer scheduled (freed, if its hub was
 * closed). @t's hub's thread.
 */
void gh_timer_release(gh_timer *t);

/* ------------------------------------------------------------------------- watchers and hooks */

/*
 * Callbacks on MAINLOOP, for code written in the callback style of kombu's
 * Hub or libuv (docs/loop.md says when to use them rather than tasks). Like a
 * timer's, a watcher's or hook's callback must not block: blocking calls
 * return -EPERM there; spawn a task for anything that waits.
 */

/**
 * Call cb(fd, ready, arg) on MAINLOOP while @fd is ready for any of @events
 * (GH_READ, GH_WRITE or both): level-triggered, like kombu's add_reader /
 * add_writer, on every backend. @ready holds the directions that fired. The
 * callbacks of one poll run after it returns, so a callback may watch,
 * unwatch or gh_close any fd, its own included. Several watchers may watch
 * one fd; a task may wait on an fd a watcher watches, and then both are told
 * (the data goes to whoever reads it first: mixing the two on one fd is
 * rarely what you want). An active watcher keeps gh_hub_run going. A
 * gh_close of @fd, on any thread, ends the watch: the callback is not called
 * again, and the handle must still be given to gh_unwatch. Close the fd with
 * gh_close, not close(): a backend may go on reporting a closed number.
 * @return the handle, or NULL with errno EBADF (fd unknown to the kernel),
 *         EINVAL (no callback, bad @events, a hub's own wakeup fd), EPERM (a
 *         regular file on a backend that refuses them: it would always be
 *         ready) or ENOMEM. Calling thread's hub.
 */
gh_watcher *gh_watch(int fd, int events, void (*cb)(int fd, int events, void *arg), void *arg);

/**
 * Stop @w and free it; safe from any callback, its own included (a callback
 * already queued for this poll does not run). From another thread it runs on
 * @w's hub, and the caller waits (as gh_call_on) until it has.
 * @return 0; -EINVAL for NULL; from another thread, what gh_call_on returns
 *         (-EPERM from a callback, -ESHUTDOWN once @w's hub is stopping: then
 *         the hub frees it). Any thread, while @w's hub lives.
 */
int gh_unwatch(gh_watcher *w);

/**
 * Call cb(arg) once per MAINLOOP iteration of the calling thread's hub,
 * before it decides how long to poll (kombu's on_tick, libuv's prepare): to
 * flush what the iteration batched, say. Hooks run in the order they were
 * added. A hook may ready tasks (the poll then does not wait) but does not
 * keep gh_hub_run going by itself.
 * @return the handle, or NULL with errno EINVAL or ENOMEM. Calling thread's hub.
 */
gh_tick *gh_tick_add(void (*cb)(void *arg), void *arg);

/**
 * Remove @k and free it; from a hook too (a hook removed this way does not run
 * again). From another thread, as gh_unwatch.
 * @return 0; -EINVAL for NULL; as gh_unwatch from another thread. Any thread.
 */
int gh_tick_remove(gh_tick *k);

/* ------------------------------------------------------------------------------ fds and sockets */

/*
 * Green I/O: the calling task waits; the thread does not. docs/sockets.md is
 * the user's guide.
 *
 * Each call tries the syscall first and waits only on EAGAIN, except that a
 * gh_read/gh_recv after a short read from a stream socket or pipe waits for
 * readability first (see docs/sockets.md: same results, one syscall less).
 * gh_read and gh_write_all put an fd they have not seen before into
 * O_NONBLOCK mode. At most one task of a hub waits to read and one to write
 * on an fd at a time (a second gets -EBUSY).
 * Close fds that tasks may wait on with gh_close, never close(): an fd
 * belongs to the process, and gh_close tells every hub.
 *
 * gh_recv, gh_send, gh_readv, gh_writev, gh_sendfile, gh_getaddrinfo and the
 * gh_reader calls: each one that can wait takes a timeout (the whole call's
 * budget) and acts on the calling thread's hub; errors are negative errno
 * values: -ETIMEDOUT, -ECANCELED (the task was killed), -ECONNRESET, -EPIPE
 * (peer gone: never SIGPIPE), -EBADF (gh_close meanwhile, or fd < 0), -EBUSY
 * (another task of this hub already waits on that direction), -EPERM (from a
 * timer callback).
 */

struct iovec;
struct addrinfo;

/**
 * Wait until @fd is ready for @events (GH_READ, GH_WRITE or both). Regular
 * files and directories are always ready, on every backend (as poll(2) says).
 * @return 0 when ready; -ETIMEDOUT; -ECANCELED; -EBADF if the fd was closed
 *         with gh_close meanwhile (or fd < 0); -EBUSY if another task already
 *         waits on that direction; -EINVAL for bad events or an fd the
 *         backend cannot hold; -EPERM from a timer callback.
 * Calling thread's hub.
 */
int gh_trampoline(int fd, int events, int64_t timeout_ns);

/**
 * A non-blocking listening TCP socket bound to @host ("0.0.0.0", "::", an IP
 * literal, "localhost", or NULL for any IPv4 address) and @port (0 = any; see
 * getsockname), with SO_REUSEADDR. IPv6 literals may be bracketed ("[::1]")
 * or scoped ("fe80::1%eth0"); IPv6 sockets have IPV6_V6ONLY off, so "::"
 * takes IPv4 clients too. Host names are refused (-EINVAL): listen never waits.
 * @return the fd, or a negative errno (-EINVAL for a bad host or port,
 *         -EADDRINUSE, ...). Never blocks. Any thread (no hub needed).
 */
int gh_listen(const char *host, int port, int backlog);

/** As gh_listen, with SO_REUSEPORT too when @reuseport is non-zero. */
int gh_listen_ex(const char *host, int port, int backlog, int reuseport);

/**
 * Accept a connection. @return a non-blocking fd, or a negative errno.
 * Calling thread's hub, from a task.
 */
int gh_accept(int lfd, int64_t timeout_ns);

/**
 * Connect a TCP socket to @host:@port: an IP literal, "localhost", or a host
 * name, resolved by gh_getaddrinfo on a helper thread; each address is then
 * tried in turn. @timeout_ns covers it all (a name with timeout 0: -ETIMEDOUT).
 * @return a non-blocking connected fd, or a negative errno (-ECONNREFUSED,
 *         -ETIMEDOUT, -ECANCELED, -EINVAL for a bad address or port, -ENOENT
 *         for an unknown host, the last address's error).
 * Calling thread's hub, from a task.
 */
int gh_connect(const char *host, int port, int64_t timeout_ns);

/**
 * A local stream socket listening on @path: a filesystem path (created here;
 * unlink it yourself when done) or, with a leading '@', a Linux abstract
 * name (no file). Accept with gh_accept.
 * @return a non-blocking listening fd; -EINVAL (NULL or empty path),
 *         -ENAMETOOLONG (longer than sun_path holds), -EADDRINUSE, ...
 */
int gh_unix_listen(const char *path, int backlog);

/**
 * Connect to a local stream socket (@path as for gh_unix_listen). A full
 * backlog is waited out (retried within @timeout_ns), not refused.
 * @return a non-blocking connected fd; -ENOENT (no such path),
 *         -ECONNREFUSED (nobody listens: an abstract name, a stale file),
 *         -ETIMEDOUT, -ECANCELED, -EINVAL, -ENAMETOOLONG.
 * Calling thread's hub, from a task.
 */
int gh_unix_connect(const char *path, int64_t timeout_ns);

/**
 * A UDP socket bound to @host:@port (an IP literal, "localhost", NULL or ""
 * for every address; port 0 picks a free one). Non-blocking, close-on-exec.
 * @return the fd, or a negative errno (-EINVAL for a bad address, -EADDRINUSE).
 */
int gh_udp_bind(const char *host, int port);

/**
 * recvfrom(2) green: wait for one datagram (or, on a stream socket, at least
 * one byte). @from / @fromlen as recvfrom's (both NULL, or both set: *@fromlen
 * in, the address's length out).
 * @return its length (a datagram longer than @n is cut, as recvfrom does;
 *         MSG_TRUNC in @flags returns the real length), or a negative errno
 *         (-ETIMEDOUT, -ECANCELED, -EBADF when gh_close'd, -EINVAL).
 * Calling thread's hub, from a task.
 */
ssize_t gh_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                    socklen_t *fromlen, int64_t timeout_ns);

/**
 * sendto(2) green: wait while the socket's send buffer is full (MSG_NOSIGNAL
 * is added). @to NULL with @tolen 0 for a connected socket.
 * @return bytes sent (a datagram goes whole or not at all), or a negative
 *         errno (-ETIMEDOUT, -ECANCELED, -EMSGSIZE, -ECONNREFUSED, -EINVAL, ...).
 * Calling thread's hub, from a task.
 */
ssize_t gh_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
                  socklen_t tolen, int64_t timeout_ns);

/**
 * Read up to @n bytes, waiting until at least one byte or EOF is there.
 * @return bytes read (0 at EOF), or a negative errno.
 * Calling thread's hub, from a task.
 */
ssize_t gh_read(int fd, void *buf, size_t n, int64_t timeout_ns);

/**
 * recv(2) green: wait until at least one byte (or EOF) is there.
 * @flags are recv's (MSG_PEEK, ...; MSG_DONTWAIT makes no difference).
 * @return bytes received (0 at EOF), or a negative errno (-ENOTSOCK for a
 *         non-socket, -ECONNRESET, -ETIMEDOUT, -ECANCELED, -EBADF, ...).
 * Calling thread's hub, from a task (not a timer callback).
 */
ssize_t gh_recv(int fd, void *buf, size_t n, int flags, int64_t timeout_ns);

/**
 * readv(2) green: scatter into @iov, waiting until at least one byte or EOF.
 * @return bytes read (0 at EOF), or a negative errno (-EINVAL for iovcnt
 *         outside 0..IOV_MAX). Calling thread's hub, from a task.
 */
ssize_t gh_readv(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ns);

/**
 * Write all @n bytes, waiting as needed; sockets send with MSG_NOSIGNAL.
 * @return n, or a negative errno (some bytes may have been written).
 * Calling thread's hub, from a task.
 */
ssize_t gh_write_all(int fd, const void *buf, size_t n, int64_t timeout_ns);

/**
 * send(2) green, always with MSG_NOSIGNAL: wait until at least one byte is
 * sent; like send(2) it may send fewer than @n (see gh_write_all for all).
 * @return bytes sent (> 0, or 0 when n is 0), or a negative errno (-EPIPE,
 *         -ECONNRESET, -ETIMEDOUT, -ECANCELED, -ENOTSOCK, ...).
 * Calling thread's hub, from a task.
 */
ssize_t gh_send(int fd, const void *buf, size_t n, int flags, int64_t timeout_ns);

/**
 * Write every byte of @iov (gather), waiting as needed; sockets use
 * sendmsg(MSG_NOSIGNAL), other fds writev. @iov itself is not modified.
 * @return the total length, or a negative errno (some bytes may have been
 *         written): -EPIPE, -ECONNRESET, -ETIMEDOUT, -ECANCELED, -EINVAL.
 * Calling thread's hub, from a task.
 */
ssize_t gh_writev(int fd, const struct iovec *iov, int iovcnt, int64_t timeout_ns);

/**
 * sendfile(2) green: copy @count bytes of @in_fd (a regular file) to
 * @out_fd, waiting on @out_fd as needed. @offset as in sendfile(2): NULL
 * uses and advances in_fd's file offset, else *offset is read and advanced.
 * A peer that went away is -EPIPE, never SIGPIPE (SIGPIPE is blocked in the
 * calling thread for the duration of each sendfile call).
 * @return bytes sent (fewer than @count only at in_fd's EOF), or a negative
 *         errno (some bytes may have been sent; *offset tells how many).
 * Calling thread's hub, from a task.
 */
ssize_t gh_sendfile(int out_fd, int in_fd, off_t *offset, size_t count, int64_t timeout_ns);

/**
 * Close @fd for the whole process. Every task waiting on it, on every hub,
 * wakes with -EBADF, and every backend that watches it forgets it before the
 * number can be reused; a hub that served the old file starts afresh with a
 * new one of that number. Other hubs hear of it through their inboxes: the
 * calling task waits green for them (a kill does not cut this short), a
 * plain thread blocks; from a timer callback the call returns 0 at once and
 * the last hub to let go closes the fd. A task woken with -EBADF must not
 * close the fd again: its number may already belong to another file.
 * @return 0, or a negative errno from close(2); -EBADF for fd < 0, an fd
 *         the kernel does not know (whatever its size), or a hub's own
 *         wakeup fd; -ENOMEM. Any thread.
 */
int gh_close(int fd);

/**
 * getaddrinfo(3) on a helper thread: the calling task waits green (a plain
 * thread blocks) for at most @timeout_ns; the hub thread never blocks in the
 * resolver. Helper threads (at most 4) are made on first use and leave
 * after a few seconds idle. A lookup that outlives its caller's timeout
 * finishes on its own and its result is freed there.
 * @return 0 and *res (free it with freeaddrinfo), or a negative errno:
 *         -ENOENT no such host or service (EAI_NONAME/EAI_NODATA/EAI_FAIL),
 *         -EAGAIN temporary failure (EAI_AGAIN), -EINVAL bad flags, family or
 *         socket type, -ENOMEM, -ETIMEDOUT (at once for a timeout of 0: an
 *         answer always takes a thread hop), -ECANCELED, -EPERM from a timer
 *         callback. Any thread (a hub thread waits green).
 */
int gh_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res, int64_t timeout_ns);

/*
 * A buffered reader on an fd (a socket or pipe), for line protocols. Embed
 * it, gh_reader_init, gh_reader_destroy (which does not close the fd). Its
 * memory is the buffer given to init and never grows. One task at a time.
 */
typedef struct gh_reader {
    int fd;       /* the fd read from (not owned) */
    char *buf;    /* private: cap bytes */
    size_t cap;   /* buffer size: the memory bound and the longest line */
    size_t start; /* private: unread bytes are buf[start, end) */
    size_t end;   /* private */
    size_t scan;  /* private: buf[start, start + scan) holds no newline */
    int eof;      /* private: the fd reported EOF */
    int skipping; /* private: discarding the rest of an overlong line */
} gh_reader;

/**
 * Set up @r on @fd with a @bufsize-byte buffer (0 = 16 KiB).
 * @return 0; -EBADF for fd < 0; -EINVAL; -ENOMEM. Any thread.
 */
int gh_reader_init(gh_reader *r, int fd, size_t bufsize);

/**
 * Free @r's buffer; the fd stays open. Safe on a zeroed or destroyed reader.
 * Any thread, once no task reads from @r.
 */
void gh_reader_destroy(gh_reader *r);

/**
 * Read one line: *@line points at its bytes (the '\n' included, if any),
 * valid until the next call on @r. The last line before EOF may lack '\n'.
 * A line longer than @max_len bytes (the '\n' counted) returns -EMSGSIZE at
 * once; the reader stays usable: the next call first skips the rest of that
 * line, through its '\n'.
 * @return the line's length; 0 at EOF; -EMSGSIZE; -EINVAL if @max_len is 0
 *         or larger than the buffer; -ETIMEDOUT (nothing consumed: the call
 *         may be repeated); -ECANCELED; any gh_read error.
 * Calling thread's hub, from a task.
 */
ssize_t gh_reader_readline(gh_reader *r, const char **line, size_t max_len, int64_t timeout_ns);

/**
 * Read exactly @n bytes into @buf, or fewer only at EOF.
 * @return bytes read (< n only at EOF); a negative errno. On error with
 *         n <= the buffer size nothing was consumed; with a larger n the
 *         bytes already read are lost. Calling thread's hub, from a task.
 */
ssize_t gh_reader_read_exact(gh_reader *r, void *buf, size_t n, int64_t timeout_ns);

/**
 * Read what is buffered, or wait for the fd to give at least one byte.
 * @return 1..n bytes; 0 at EOF (or n == 0); a negative errno.
 * Calling thread's hub, from a task.
 */
ssize_t gh_reader_read_some(gh_reader *r, void *buf, size_t n, int64_t timeout_ns);

/**
 * Bytes buffered and not yet returned (a skipped line's rest included). Never
 * blocks. The thread whose task reads from @r.
 */
size_t gh_reader_buffered(const gh_reader *r);

/* ------------------------------------------------------------------------------ synchronisation */

/*
 * Hub-local primitives: gh_event, gh_sem, gh_queue and gh_pool belong to one
 * hub and cost no atomic operation. Every call must come from a task of that
 * hub (a timer callback may set, release and put/get with timeout 0). A wait
 * returns -EINVAL when tasks of another hub already wait on the object.
 * Waits follow gh_join: what can succeed at once succeeds (even from a timer
 * callback or a killed task); otherwise -EPERM from a timer callback,
 * -ECANCELED for a killed task, -ETIMEDOUT (-EAGAIN for gh_queue) for a
 * timeout of 0, and -EDEADLK when the root would wait and nothing can ever
 * wake it. Waiters are woken in FIFO order.
 *
 * Thread-safe primitives: gh_chan and gh_xevent may be used from any thread,
 * by tasks of any hub and by plain threads (a task waits green, a plain thread
 * blocks). See docs/sync.md.
 */

struct gh__link;

/* Private: the tasks waiting on an embedded object, an intrusive list (sched/list.h). */
typedef struct gh_waiters {
    struct gh__link *head, *tail;
} gh_waiters;

/* Private: a ring buffer of pointers (sched/ring.h). */
typedef struct gh_ring {
    void **slots;          /* cap slots */
    size_t cap, head, len; /* head: the oldest item's slot */
} gh_ring;

/** A one-shot event with a value; many waiters; reset re-arms it. Embed it. */
typedef struct gh_event {
    gh_waiters waiters; /* private: tasks in gh_event_wait */
    void *value;        /* private: the value given to gh_event_set */
    int is_set;         /* private */
} gh_event;

/** Initialise @ev, not set. @return 0 or -EINVAL. Any thread (no hub needed). */
int gh_event_init(gh_event *ev);
/** Tear @ev down. @return 0; -EBUSY while a task waits on it. Its hub's thread. */
int gh_event_destroy(gh_event *ev);
/**
 * Set @ev with @value and wake every waiter (each gets @value, even if the
 * event is reset before it runs). @return 0; -EALREADY if already set;
 * -EINVAL. Its hub's thread (a timer callback too).
 */
int gh_event_set(gh_event *ev, void *value);
/**
 * Wait until @ev is set. @return 0 and *value (@value may be NULL);
 * -ETIMEDOUT; -ECANCELED; -EPERM; -EDEADLK; -EINVAL. Its hub's thread.
 */
int gh_event_wait(gh_event *ev, void **value, int64_t timeout_ns);
/**
 * Clear a set event (waiters already woken keep their value). @return 0 or -EINVAL.
 * Its hub's thread.
 */
int gh_event_reset(gh_event *ev);
/** @return 1 if @ev is set, 0 if not. Its hub's thread. */
int gh_event_is_set(const gh_event *ev);

/** A counting semaphore, bounded or not. Embed it. */
typedef struct gh_sem {
    gh_waiters waiters; /* private: tasks in gh_sem_acquire */
    unsigned count;     /* private: units available */
    unsigned bound;     /* private: most units it may hold; 0 = unbounded */
} gh_sem;

/**
 * Initialise @sem with @count units. @bound > 0 makes it bounded: release
 * beyond @bound fails with -EOVERFLOW (eventlet's BoundedSemaphore).
 * @return 0; -EINVAL if @bound > 0 and @count > @bound. Any thread.
 */
int gh_sem_init(gh_sem *sem, unsigned count, unsigned bound);
/** @return 0; -EBUSY while a task waits on it. Its hub's thread. */
int gh_sem_destroy(gh_sem *sem);
/**
 * Take one unit, waiting while there is none. Units go to waiters in FIFO
 * order (a release hands its unit straight to the first waiter).
 * @return 0; -ETIMEDOUT; -ECANCELED; -EPERM; -EDEADLK; -EINVAL. Its hub's thread.
 */
int gh_sem_acquire(gh_sem *sem, int64_t timeout_ns);
/**
 * Give one unit back (to the first waiter if any).
 * @return 0; -EOVERFLOW if bounded and already at its bound (nothing
 * changes); -EINVAL. Its hub's thread (a timer callback too).
 */
int gh_sem_release(gh_sem *sem);
/** Units available now. Its hub's thread. */
unsigned gh_sem_count(const gh_sem *sem);

/** A bounded FIFO of pointers between tasks of one hub. Embed it. */
typedef struct gh_queue {
    gh_ring ring;       /* private: the items */
    gh_waiters getters; /* private: tasks in gh_queue_get (queue empty) */
    gh_waiters putters; /* private: tasks in gh_queue_put (queue full) */
} gh_queue;

/** Initialise @q for @capacity (>= 1) items. @return 0; -EINVAL; -ENOMEM. Any thread. */
int gh_queue_init(gh_queue *q, size_t capacity);
/**
 * Free @q's buffer (items still in it are dropped). @return 0; -EBUSY while tasks wait.
 * Its hub's thread.
 */
int gh_queue_destroy(gh_queue *q);
/**
 * Append @item, waiting while the queue is full. A waiting getter receives
 * it directly. @return 0; -EAGAIN if full and @timeout_ns is 0; -ETIMEDOUT;
 * -ECANCELED; -EPERM; -EDEADLK; -EINVAL. On error @item was not queued.
 * Its hub's thread.
 */
int gh_queue_put(gh_queue *q, void *item, int64_t timeout_ns);
/**
 * Take the oldest item into *item, waiting while the queue is empty.
 * @return 0; -EAGAIN if empty and @timeout_ns is 0; -ETIMEDOUT;
 * -ECANCELED; -EPERM; -EDEADLK; -EINVAL. Its hub's thread.
 */
int gh_queue_get(gh_queue *q, void **item, int64_t timeout_ns);
/** Items in @q now. Its hub's thread. */
size_t gh_queue_len(const gh_queue *q);

/** eventlet's GreenPool: at most `size` tasks running at once. Heap object. */
typedef struct gh_pool gh_pool;

/**
 * A pool of @size (>= 1) slots on the calling thread's hub.
 * @return the pool, or NULL with errno (EINVAL, ENOMEM). Hub thread.
 */
gh_pool *gh_pool_new(size_t size);
/**
 * Free @pool. @return 0; -EBUSY while it has running or waiting tasks; -EINVAL.
 * Its hub's thread.
 */
int gh_pool_free(gh_pool *pool);
/**
 * Run fn(arg) as a task of the pool, first waiting while every slot is
 * taken. With @out non-NULL, *out is a task handle (gh_task_release it).
 * @return 0; -ETIMEDOUT; -ECANCELED; -EPERM; -EDEADLK; -ENOMEM; -EINVAL
 * (also from another hub's thread). On error fn does not run. Its hub's thread.
 */
int gh_pool_spawn(gh_pool *pool, void (*fn)(void *), void *arg, gh_task **out, int64_t timeout_ns);
/**
 * Wait until no task of the pool is running.
 * @return 0; -ETIMEDOUT; -ECANCELED; -EPERM; -EDEADLK (also when called by
 * a task of the pool itself); -EINVAL. Its hub's thread.
 */
int gh_pool_waitall(gh_pool *pool, int64_t timeout_ns);
/**
 * Change the number of slots (>= 1). Growing lets waiting spawners in at
 * once; shrinking below the running count lets running tasks finish.
 * @return 0 or -EINVAL. Its hub's thread.
 */
int gh_pool_resize(gh_pool *pool, size_t size);
/** Tasks of the pool running now (started or about to). Its hub's thread. */
size_t gh_pool_running(const gh_pool *pool);
/**
 * Slots free now: size - running, 0 when shrunk below the running count.
 * Its hub's thread.
 */
size_t gh_pool_free_slots(const gh_pool *pool);
/** Tasks waiting in gh_pool_spawn for a slot. Its hub's thread. */
size_t gh_pool_waiting(const gh_pool *pool);

/*
 * gh_chan: a bounded channel of pointers between tasks of any hub and plain
 * threads, Go style. A task waits green, a plain thread (no hub) blocks.
 * Items go FIFO, each to exactly one receiver; a waiting receiver gets an
 * item straight from the sender. Close: senders then get -EPIPE (and keep
 * their item), receivers drain what is buffered, then get -EPIPE.
 */
typedef struct gh_chan gh_chan;

/**
 * A channel holding up to @capacity items; 0 makes it unbuffered (a send
 * waits for its receiver). @return the channel or NULL + errno (ENOMEM).
 * Any thread.
 */
gh_chan *gh_chan_new(size_t capacity);
/**
 * Free @c; buffered items are dropped. @return 0; -EBUSY while a task or
 * thread waits on it; -EINVAL. Any thread, once no other one can use @c.
 */
int gh_chan_free(gh_chan *c);
/**
 * Send @item, waiting while the channel is full.
 * @return 0 (a receiver will get it); -EPIPE if closed; -EAGAIN if full and
 * @timeout_ns is 0; -ETIMEDOUT; -ECANCELED; -EPERM from a timer callback;
 * -EINVAL. On error @item was not sent. Any thread.
 */
int gh_chan_send(gh_chan *c, void *item, int64_t timeout_ns);
/**
 * Receive the oldest item into *item, waiting while the channel is empty.
 * @return 0; -EPIPE once closed and drained; -EAGAIN if empty and
 * @timeout_ns is 0; -ETIMEDOUT; -ECANCELED; -EPERM; -EINVAL. Any thread.
 */
int gh_chan_recv(gh_chan *c, void **item, int64_t timeout_ns);
/**
 * Close @c: waiting senders fail with -EPIPE, waiting receivers with -EPIPE
 * (the buffer is empty when they wait); buffered items stay to be received.
 * @return 0; -EALREADY if already closed; -EINVAL. Any thread.
 */
int gh_chan_close(gh_chan *c);
/** Items buffered now (a snapshot). Any thread. */
size_t gh_chan_len(gh_chan *c);

/*
 * A one-shot event with a value: set from any thread, waited on by tasks of
 * any hub or by plain threads. Embed it and call gh_xevent_init.
 */
typedef struct gh_xevent {
    void *impl; /* private */
} gh_xevent;

/** @return 0 or -ENOMEM. Any thread. */
int gh_xevent_init(gh_xevent *ev);
/** Free; no task or thread may still wait on it. Any thread. */
void gh_xevent_destroy(gh_xevent *ev);
/** Set with @value; wakes every waiter. @return 0, -EALREADY if set. Any thread. */
int gh_xevent_set(gh_xevent *ev, void *value);
/**
 * Wait until set. From a task: green; from a plain thread: blocks the thread.
 * @return 0 and *value; -ETIMEDOUT; -ECANCELED. Any thread.
 */
int gh_xevent_wait(gh_xevent *ev, void **value, int64_t timeout_ns);
/** Clear a set event. @return 0. Any thread. */
int gh_xevent_reset(gh_xevent *ev);

/* ------------------------------------------------------------------------- the first of several */

/* What gh_wait_any can wait for. */
enum {
    GH_WAIT_TASK = 1, /* obj is a gh_task * (any hub's): it finished */
    GH_WAIT_EVENT,    /* obj is a gh_event * (this hub's): it is set */
    GH_WAIT_XEVENT,   /* obj is a gh_xevent *: it is set */
    GH_WAIT_CHAN,     /* obj is a gh_chan *: a receive would not wait (an item, a sender, closed) */
};

typedef struct gh_waitable {
    int kind; /* GH_WAIT_* */
    void *obj;
} gh_waitable;

/**
 * Wait until the first of @n items is ready (gevent's wait, Go's select over
 * receives). Nothing is consumed: join, wait or receive with timeout 0
 * afterwards. Of several ready at once, the lowest index is returned.
 * @return the index of a ready item; -ETIMEDOUT; -ECANCELED if killed;
 *         -EINVAL (NULL, @n 0 or above 64, an unknown kind, a NULL object);
 *         -EPERM from a callback; an item's own wait error (-EINVAL for an
 *         event of another hub). A task; a plain thread gets a hub.
 */
int gh_wait_any(const gh_waitable *items, size_t n, int64_t timeout_ns);

/* --------------------------------------------------------------------------------- many threads */

/*
 * A runtime runs a hub on each of its own threads; any thread may hand work to
 * a hub. The thread pool runs blocking calls off the hubs.
 */

typedef struct gh_runtime_config {
    int threads;                 /* hub threads, >= 1 */
    const char *const *backends; /* per-thread backend names; NULL, or a NULL entry, = default */
    size_t stack_size;           /* per task; 0 = default (256 KiB) */
} gh_runtime_config;

/**
 * Start @cfg->threads threads named greenhub-<i>, each running its own hub.
 * @return 0 and *out; -EINVAL for a bad config; -ENOENT for an unknown
 *         backend name; -ENOSYS/-EPERM when a backend is refused; on error
 *         nothing is left running. Any thread.
 */
int gh_runtime_start(gh_runtime **out, const gh_runtime_config *cfg);

/** The hub of thread @index, or NULL + errno EINVAL. Any thread. */
gh_hub *gh_runtime_hub(gh_runtime *rt, int index);

/** Number of hub threads in @rt. Any thread. */
int gh_runtime_threads(const gh_runtime *rt);

/**
 * Run fn(arg) as a new task on @target's hub. Any thread, including
 * @target's own (where it is a plain gh_spawn_n).
 * @return 0, and the task runs exactly once; -ESHUTDOWN if @target is
 *         stopping; -EINVAL; -ENOMEM. On error fn never runs.
 * A runtime's hub stays valid (refusing once stopped) until
 * gh_runtime_destroy. A plain thread's hub runs handoffs only while that
 * thread runs its hub, and is freed when the thread exits (handoffs still
 * queued then are reported on stderr and dropped): hand work to hubs that
 * others post to through a runtime.
 */
int gh_spawn_on(gh_hub *target, void (*fn)(void *), void *arg);

/**
 * As gh_spawn_on, with a handle: join, kill and release it from any thread.
 * Any thread.
 * @return the handle (gh_task_release it exactly once), or NULL with errno
 *         ESHUTDOWN (@target is stopping), ENOMEM or EINVAL.
 */
gh_task *gh_spawn_task_on(gh_hub *target, void (*fn)(void *), void *arg);

/**
 * Run fn(arg) on @target and wait for its result. From a hub thread the
 * calling task waits green; from a plain thread the thread blocks (no hub is
 * made for it). On timeout fn still runs and its result is dropped.
 * @return 0 and *result; -ETIMEDOUT; -ECANCELED; -ESHUTDOWN if @target is
 *         stopping (fn does not run); -EINVAL. Any thread.
 */
int gh_call_on(gh_hub *target, void *(*fn)(void *), void *arg, void **result, int64_t timeout_ns);

/**
 * Stop every hub: each refuses new handoffs with -ESHUTDOWN, runs every
 * handoff it accepted, cancels repeating timers and lets tasks finish. After
 * @drain_timeout_ns it kills what is left (logged). A killed task that never
 * blocks cannot see its kill: one second later the call returns anyway,
 * names that task through the log handler and leaves its thread running;
 * gh_runtime_destroy then waits for it, and nothing it uses may be freed.
 * @return 0; -ETIMEDOUT when some hub had to kill tasks, or gave up on one;
 *         -EDEADLK from a thread of @rt itself. A later or concurrent call
 *         waits for the first to end and returns what it returned.
 * Hub pointers stay valid (refusing) until gh_runtime_destroy. Any thread but
 * the runtime's own.
 */
int gh_runtime_stop(gh_runtime *rt, int64_t drain_timeout_ns);

/**
 * Free @rt (stopping it first if needed), once no thread can call in. After a
 * stop that gave up on a task that never blocks, it waits for that task to
 * return. From a thread of @rt itself it does nothing but log an error (it
 * cannot wait for its own thread).
 */
void gh_runtime_destroy(gh_runtime *rt);

/*
 * gh_tpool: native threads for blocking calls (eventlet's tpool, gevent's
 * threadpool). The calling task waits green; the result comes back through
 * its hub's handoff queue. Threads are made as jobs need them, up to the size.
 */
typedef struct gh_tpool gh_tpool;

/**
 * A private pool of up to @threads (>= 1) native threads, made lazily.
 * @return the pool or NULL + errno (EINVAL, ENOMEM). Any thread.
 */
gh_tpool *gh_tpool_new(int threads);
/**
 * Run every queued job, then stop and join the threads and free @pool.
 * Callers that timed out may still have jobs queued: they run first.
 * Any thread but the pool's own; no thread may submit meanwhile.
 */
void gh_tpool_free(gh_tpool *pool);
/**
 * Set the size of @pool (>= 1); extra threads leave once idle.
 * @return 0 or -EINVAL. Any thread.
 */
int gh_tpool_resize(gh_tpool *pool, int threads);
/**
 * Set the size of the default pool (default 4; made on first gh_tpool_run).
 * @return 0 or -EINVAL. Any thread.
 */
int gh_tpool_set_size(int threads);
/**
 * Run fn(arg) on a thread of @pool and wait for its result. From a task:
 * green; from a plain thread: the thread blocks. On timeout or kill, fn
 * still runs to the end and its result is dropped (nothing is freed early).
 * @return 0 and *result (@result may be NULL); -ETIMEDOUT; -ECANCELED;
 * -EPERM from a timer callback; -ENOMEM; -EAGAIN if a thread cannot be
 * made and none exists; -EINVAL. Any thread.
 */
int gh_tpool_run_on(gh_tpool *pool, void *(*fn)(void *), void *arg, void **result,
                    int64_t timeout_ns);
/** gh_tpool_run_on the default pool (made on first use). Any thread. */
int gh_tpool_run(void *(*fn)(void *), void *arg, void **result, int64_t timeout_ns);

/* -------------------------------------------------------------------------------------- signals */

/*
 * Signals: the first gh_signal_wait for a signal installs greenhub's handler
 * for it (replacing the previous one, which is kept for gh_signal_restore).
 * The handler writes the signal number to a process-wide self-pipe; a router
 * thread wakes every task (on every hub) and plain thread waiting for it.
 * While the handler is installed, a delivery with no waiter is dropped.
 */

/**
 * Wait for the next delivery of @signo (one that arrives after the call).
 * @return 0; -ETIMEDOUT; -ECANCELED; -EPERM from a timer callback; -EINVAL
 * for SIGKILL, SIGSTOP, the fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL)
 * or a bad number; -ENOMEM/-EAGAIN if the router cannot be made. Any thread.
 */
int gh_signal_wait(int signo, int64_t timeout_ns);
/** Tasks and threads waiting for @signo now (>= 0), or -EINVAL. Any thread. */
int gh_signal_waiting(int signo);
/**
 * Put back the handler @signo had before greenhub's.
 * @return 0 (also if greenhub never installed one); -EBUSY while someone
 * waits for @signo; -EINVAL. Any thread.
 */
int gh_signal_restore(int signo);

/* -------------------------------------------------------------------------------- introspection */

/*
 * switches counts stack switches; a task that starts on the stack of one
 * that just returned (a burst of fresh tasks) costs none.
 */
typedef struct gh_hub_stats {
    const char *backend;
    uint64_t tasks_spawned, tasks_live, switches, loop_iterations;
    uint64_t handoffs_in, wakeups_written, timers_pending, fd_waiters;
    uint64_t busy_ns, idle_ns; /* since the hub was made: idle is asleep in the backend's poll */
    uint64_t tasks_ready;      /* in the run queue at the hub's last poll */
    uint64_t tasks_blocked;    /* live and not ready: waiting on an fd, a timer, an event... */
    uint64_t inbox_depth;      /* handoffs and messages waiting behind the hub's last drain
                                  (it takes at most 1,024 an iteration), counted at most every
                                  10 ms and up to 4,096: 0 when it keeps up */
    uint64_t timer_lag_ns;     /* how late the hub's last due timers fired (loop lag) */
    uint64_t timer_lag_max_ns; /* the worst lag since the hub was made */
} gh_hub_stats;

/** Read @hub's counters (relaxed reads). @return 0 or -EINVAL. Any thread. */
int gh_hub_get_stats(const gh_hub *hub, gh_hub_stats *out);

/**
 * Every hub of @rt in the Prometheus text exposition format (HELP and TYPE
 * lines, then one sample per hub labelled hub="<index>" and backend), into
 * @buf of @len bytes, NUL-terminated: serve it from a /metrics handler.
 * @return its length (without the NUL); -ENOSPC when @len is too small
 *         (nothing useful is in @buf then); -EINVAL. Any thread.
 */
int gh_runtime_metrics(gh_runtime *rt, char *buf, size_t len);

/** One task of a hub, as gh_hub_walk copies it out. */
typedef struct gh_task_info {
    uint64_t id;
    char name[48];        /* gh_task_set_name's, truncated; "" when unnamed ("root" for task 0) */
    const char *state;    /* "running", "ready", "waiting", "new", "new (delayed start)" */
    const char *waits_on; /* "fd", "sleep", "join", "event", "channel", "call", ...; "" if not */
    int fd;               /* waits_on "fd": the fd, else -1 */
    int events;           /* waits_on "fd": GH_READ and/or GH_WRITE */
    int64_t waiting_ns;   /* how long it has waited so far (0 when not waiting) */
    int64_t deadline_ns;  /* when its wait times out, on gh_now's clock; -1: never */
    size_t stack_in_use;  /* bytes of its stack in use while suspended (x86-64), else 0 */
    size_t stack_size;    /* its stack's size; 0 before it first ran, and for the root */
} gh_task_info;

/**
 * Call fn(info, arg) for every task of @hub (the root first) until fn
 * returns non-zero, on the caller's thread, from copies taken on the hub's
 * own thread (a message from another thread: the caller waits green, or
 * blocks, at most a second for the hub to come back to its loop).
 * @return 0, fn's non-zero value, -ETIMEDOUT (the hub did not answer: a task
 *         that never yields, or a plain thread's hub whose thread is outside
 *         greenhub), -EINVAL, -ENOMEM. Any thread.
 */
int gh_hub_walk(gh_hub *hub, int (*fn)(const gh_task_info *info, void *arg), void *arg);

/**
 * Write @hub's tasks to @out, one line each: id, name, state, what it waits
 * on (fd and direction, sleep, join, event, channel, call, ...) and for how
 * long, when the wait times out, and its stack in use; a header line with
 * the hub's backend and load first. As gh_hub_walk, it may come from any
 * thread. @return 0, -ETIMEDOUT, -EINVAL, -ENOMEM. Any thread.
 */
int gh_hub_dump(gh_hub *hub, FILE *out);

/** Levels of the messages greenhub logs. */
#define GH_LOG_ERROR 0 /* something was lost or cannot work: a hub freed with handoffs, ... */
#define GH_LOG_WARN  1 /* greenhub carries on, differently: a backend refused, a stop's kill */
#define GH_LOG_INFO  2

/** Receives each message: @msg is one line without a newline, valid during the call. */
typedef void (*gh_log_fn)(int level, const char *msg, void *arg);

/**
 * Route every message greenhub prints through fn(level, msg, arg); NULL
 * restores the default, one line on stderr prefixed "greenhub: ". @fn may
 * be called from any thread, at any time; once this call returns the old
 * handler is never called again (its @arg may be freed). @fn must not call
 * gh_set_log_handler nor greenhub's blocking calls. The one exception is a stack
 * overflow caught by the SIGSEGV handler: it is written to stderr with
 * write(2), the only safe way there, before the process aborts. Any thread.
 */
void gh_set_log_handler(gh_log_fn fn, void *arg);

/**
 * The blocking detector: a watchdog thread (one per process, started the
 * first time this is on) notices a hub whose loop has not come back for
 * longer than @ns while work waits on it: a task computing, or stuck in a
 * blocking call, holds every other task of that hub. It logs one warning
 * per stall (GH_LOG_WARN): the hub, its backend, the task's id and name,
 * how long so far and the task's backtrace, taken on the hub's own thread
 * (a SIGURG to it; a handler the program had for SIGURG still gets its own
 * signals); and one more when the loop comes back, with the stall's length.
 * Hubs pay nothing for it; 0 turns it off. GREENHUB_BLOCK_MS sets it when
 * the first hub is made.
 * @return 0; -EINVAL for @ns < 0; a negative errno if the watchdog thread
 *         cannot start. Any thread.
 */
int gh_set_block_threshold(int64_t ns);

#ifdef __cplusplus
}
#endif

#endif /* GREENHUB_H */
