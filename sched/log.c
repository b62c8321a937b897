/*
 * log.c — the log handler (see log.h).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/log.h"

/*
 * The handler and its argument, under a read-write lock: messages take it
 * shared, a change takes it exclusive, so once gh_set_log_handler returns
 * the old handler is never called again and its argument may be freed.
 * Messages are rare; the lock is not on any hot path.
 */
static pthread_rwlock_t log_lock = PTHREAD_RWLOCK_INITIALIZER;
static gh_log_fn log_fn;
static void *log_arg;

void gh__log_after_fork(void)
{
    pthread_rwlock_init(&log_lock, NULL); /* only the forking thread exists now */
}

void gh_set_log_handler(gh_log_fn fn, void *arg)
{
    pthread_rwlock_wrlock(&log_lock);
    log_fn = fn;
    log_arg = fn ? arg : NULL;
    pthread_rwlock_unlock(&log_lock);
}

/* The default: one write(2) per message, so lines from several threads never interleave. */
static void log_stderr(const char *msg)
{
    char line[600];
    int n = snprintf(line, sizeof line, "greenhub: %s\n", msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (len == sizeof line - 1)
        line[len - 1] = '\n';
    ssize_t r = write(STDERR_FILENO, line, len);
    (void)r;
}

void gh__log(int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_rwlock_rdlock(&log_lock);
    if (log_fn)
        log_fn(level, msg, log_arg);
    else
        log_stderr(msg);
    pthread_rwlock_unlock(&log_lock);
}
