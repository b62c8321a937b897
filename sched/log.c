/*
 * log.c — the log handler (see log.h).
 *
 * A handler and its argument change together: each gh_set_log_handler call
 * publishes a new pair with one atomic store, and pairs are never freed
 * (they are two words, set a handful of times per process), so a message
 * logged on another thread meanwhile sees either the old pair or the new.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sched/log.h"

typedef struct log_sink {
    gh_log_fn fn;
    void *arg;
    struct log_sink *older; /* every pair ever set stays reachable */
} log_sink;

static _Atomic(log_sink *) log_current;
static pthread_mutex_t log_set_lock = PTHREAD_MUTEX_INITIALIZER;

void gh_set_log_handler(gh_log_fn fn, void *arg)
{
    pthread_mutex_lock(&log_set_lock);
    log_sink *old = atomic_load(&log_current);
    log_sink *s = NULL;
    if (fn) {
        s = malloc(sizeof *s);
        if (s) {
            s->fn = fn;
            s->arg = arg;
            s->older = old;
        }
    }
    if (s || !fn)
        atomic_store(&log_current, s);
    pthread_mutex_unlock(&log_set_lock);
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
    log_sink *s = atomic_load_explicit(&log_current, memory_order_acquire);
    if (s)
        s->fn(level, msg, s->arg);
    else
        log_stderr(msg);
}
