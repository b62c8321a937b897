/*
 * assert.h — the always-on invariant check every layer uses.
 */
#ifndef GH_SCHED_ASSERT_H
#define GH_SCHED_ASSERT_H

/* A broken invariant is a bug in greenhub: stop loudly, always (not only in debug). */
#define GH_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            gh__assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)

_Noreturn void gh__assert_fail(const char *what, const char *file, int line);

#endif /* GH_SCHED_ASSERT_H */
