/*
 * thread.h — one thread's greenhub state, in one place (libdill's ctx shape).
 *
 * Built on the thread's first greenhub call that needs it and torn down by
 * one pthread key destructor at thread exit, in a fixed order: the hub (a
 * runtime's hub outlives its thread as a tombstone), then the message pool
 * the thread posted handoffs from. A forked child runs one handler that
 * calls each module in a fixed order too (gh__fork_child_add for the layers
 * above the hub).
 *
 * The stack-overflow handler's view of the running stack stays in
 * sched/stack.c: a signal handler of the lowest layer reads it.
 */
#ifndef GH_HUB_THREAD_H
#define GH_HUB_THREAD_H

#include <stdbool.h>

struct gh_hub;
struct gh__msg_pool;

typedef struct gh__thread {
    struct gh_hub *hub;        /* this thread's hub, NULL until first use */
    struct gh__msg_pool *pool; /* the pool this thread takes message nodes from (inbox.c) */
    bool armed;                /* thread exit will tear this down */
} gh__thread;

extern _Thread_local gh__thread gh__self;

/* Make thread exit tear the calling thread's state down (cheap once armed). */
void gh__thread_arm(void);

/*
 * Register a forked child's handler of a layer above the hub (the resolver,
 * thread pools, signals); each runs once per fork, after the hub's own, in
 * the order registered. Registering the same function twice is a no-op.
 */
void gh__fork_child_add(void (*fn)(void));

#endif /* GH_HUB_THREAD_H */
