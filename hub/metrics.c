/*
 * metrics.c — gh_runtime_metrics: every hub's counters in the Prometheus
 * text exposition format, built from gh_hub_get_stats (so any thread may
 * ask, and no hub is disturbed).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "hub/hub.h"

typedef struct metrics_buf {
    char *buf;
    size_t len, used;
    bool full;
} metrics_buf;

static void metrics_put(metrics_buf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void metrics_put(metrics_buf *m, const char *fmt, ...)
{
    if (m->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->buf + m->used, m->len - m->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= m->len - m->used)
        m->full = true;
    else
        m->used += (size_t)n;
}

typedef enum { METRIC_U64, METRIC_SECONDS } metric_unit;

typedef struct metric {
    const char *name, *type, *help;
    size_t offset; /* of a uint64_t in gh_hub_stats */
    metric_unit unit;
} metric;

#define METRIC(n, t, field, u, h)                                                                  \
    {                                                                                              \
        n, t, h, offsetof(gh_hub_stats, field), u                                                  \
    }

static const metric metrics[] = {
    METRIC("greenhub_tasks_live", "gauge", tasks_live, METRIC_U64,
           "Tasks spawned on the hub and not finished."),
    METRIC("greenhub_tasks_ready", "gauge", tasks_ready, METRIC_U64,
           "Tasks in the run queue at the hub's last poll."),
    METRIC("greenhub_tasks_blocked", "gauge", tasks_blocked, METRIC_U64,
           "Live tasks waiting on an fd, a timer, an event or another thread."),
    METRIC("greenhub_tasks_spawned_total", "counter", tasks_spawned, METRIC_U64,
           "Tasks ever spawned on the hub."),
    METRIC("greenhub_switches_total", "counter", switches, METRIC_U64, "Stack switches."),
    METRIC("greenhub_loop_iterations_total", "counter", loop_iterations, METRIC_U64,
           "MAINLOOP iterations."),
    METRIC("greenhub_handoffs_in_total", "counter", handoffs_in, METRIC_U64,
           "Tasks handed to the hub by other threads."),
    METRIC("greenhub_wakeups_written_total", "counter", wakeups_written, METRIC_U64,
           "Writes of the hub's wakeup fd by other threads."),
    METRIC("greenhub_inbox_depth", "gauge", inbox_depth, METRIC_U64,
           "Messages waiting in the hub's inbox behind its last drain (0 when it keeps up)."),
    METRIC("greenhub_timers_pending", "gauge", timers_pending, METRIC_U64,
           "Callback timers scheduled on the hub."),
    METRIC("greenhub_fd_waiters", "gauge", fd_waiters, METRIC_U64,
           "Tasks waiting on an fd direction."),
    METRIC("greenhub_busy_seconds_total", "counter", busy_ns, METRIC_SECONDS,
           "Time the hub's thread spent running tasks and callbacks."),
    METRIC("greenhub_idle_seconds_total", "counter", idle_ns, METRIC_SECONDS,
           "Time the hub's thread spent asleep in its backend's poll."),
    METRIC("greenhub_timer_lag_seconds", "gauge", timer_lag_ns, METRIC_SECONDS,
           "How late the hub's last due timers fired."),
    METRIC("greenhub_timer_lag_max_seconds", "gauge", timer_lag_max_ns, METRIC_SECONDS,
           "The worst timer lag since the hub was made."),
};

int gh_runtime_metrics(gh_runtime *rt, char *buf, size_t len)
{
    if (!rt || !buf || len == 0)
        return -EINVAL;
    int n = gh_runtime_threads(rt);
    if (n <= 0)
        return -EINVAL;
    gh_hub_stats *st = calloc((size_t)n, sizeof *st);
    if (!st)
        return -ENOMEM;
    for (int i = 0; i < n; i++)
        gh_hub_get_stats(gh_runtime_hub(rt, i), &st[i]);
    metrics_buf m = {buf, len, 0, false};
    for (size_t k = 0; k < sizeof metrics / sizeof metrics[0]; k++) {
        const metric *me = &metrics[k];
        metrics_put(&m, "# HELP %s %s\n# TYPE %s %s\n", me->name, me->help, me->name, me->type);
        for (int i = 0; i < n; i++) {
            uint64_t v = *(const uint64_t *)((const char *)&st[i] + me->offset);
            if (me->unit == METRIC_SECONDS)
                metrics_put(&m, "%s{hub=\"%d\",backend=\"%s\"} %.9f\n", me->name, i,
                            st[i].backend ? st[i].backend : "", (double)v / 1e9);
            else
                metrics_put(&m, "%s{hub=\"%d\",backend=\"%s\"} %llu\n", me->name, i,
                            st[i].backend ? st[i].backend : "", (unsigned long long)v);
        }
    }
    free(st);
    if (m.full) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return (int)m.used;
}
