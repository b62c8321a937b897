/*
 * log.h — every message greenhub prints goes through gh__log, and so
 * through the handler a program installs with gh_set_log_handler (by
 * default one line on stderr with a "greenhub: " prefix).
 */
#ifndef GH_SCHED_LOG_H
#define GH_SCHED_LOG_H

#include "greenhub.h"

/* Format one message (no trailing newline) and hand it to the log handler. Any thread. */
void gh__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* In a forked child: the lock as if no other thread had ever held it. */
void gh__log_after_fork(void);

#endif /* GH_SCHED_LOG_H */
