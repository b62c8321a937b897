/*
 * stack.h — task stacks: mmap'd, a guard page below each (a guard region
 * marker where the kernel has them, else PROT_NONE while the process's
 * mapping budget lasts, a canary word past it); cached per hub.
 */
#ifndef GH_SCHED_STACK_H
#define GH_SCHED_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GH__STACK_DEFAULT ((size_t)256 * 1024)
#define GH__STACK_MIN     ((size_t)16 * 1024)

typedef struct gh__stack {
    void *map;     /* start of the mapping (the guard page when guarded) */
    size_t maplen; /* whole mapping */
    void *lo;      /* lowest usable byte; the canary lives here */
    size_t size;   /* usable bytes, lo .. lo + size */
    bool guarded;  /* a guard page (PROT_NONE or a guard region) sits just below lo */
    struct gh__stack *next_cached;
    void *tsan_fiber;   /* TSan builds: the fiber of the tasks that run on it (task.c) */
    unsigned tsan_uses; /* tasks it has served */
} gh__stack;

/* A per-hub cache of free stacks of one size. */
typedef struct gh__stack_cache {
    gh__stack *head;
    size_t count;
    size_t max;
    size_t stack_size; /* usable size of the stacks this cache hands out */
} gh__stack_cache;

void gh__stack_cache_init(gh__stack_cache *c, size_t stack_size);
/* Unmap every cached stack. */
void gh__stack_cache_term(gh__stack_cache *c);

/* A stack of c->stack_size usable bytes, from the cache or newly mapped; NULL on ENOMEM. */
gh__stack *gh__stack_get(gh__stack_cache *c);
/* Return a stack that no code runs on any more. */
void gh__stack_put(gh__stack_cache *c, gh__stack *s);

/* True while the canary at the bottom of an unguarded stack is intact. */
static inline bool gh__stack_canary_ok(const gh__stack *s)
{
    return s->guarded || *(const volatile uint64_t *)s->lo == 0x9e3779b97f4a7c15ull;
}

/*
 * Install the process's SIGSEGV handler (once) and this thread's sigaltstack.
 * The handler reports "greenhub: stack overflow in task <id> (stack N bytes)"
 * when the fault hits the guard page of the running task's stack and chains
 * to the previous handler otherwise.
 */
int gh__stack_thread_init(void);
void gh__stack_thread_term(void);

/*
 * What the overflow handler reads: the running task's id and stack, per
 * thread. Inline: every switch sets them.
 */
extern _Thread_local uint64_t gh__stack_running_id;
extern _Thread_local const gh__stack *gh__stack_running;
static inline void gh__stack_set_running(uint64_t task_id, const gh__stack *s)
{
    gh__stack_running_id = task_id;
    gh__stack_running = s;
}

/*
 * Report an overflow of task @id's stack and abort: through the log handler
 * (a canary found broken at a switch), or, from the SIGSEGV handler
 * (gh__stack_overflow_in_signal), straight to stderr with write(2), the one
 * async-signal-safe way.
 */
_Noreturn void gh__stack_overflow(uint64_t id, const gh__stack *s);

/* Live guarded stacks in the process, and the budget past which stacks are canary-only. */
long gh__stack_guarded_live(void);
long gh__stack_guard_budget(void);

#endif /* GH_SCHED_STACK_H */
