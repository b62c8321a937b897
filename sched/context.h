/*
 * context.h — the machine context switch, the one piece of greenhub that is
 * not C. A context is just the saved stack pointer of a suspended task: the
 * switch pushes the callee-saved state onto the task's own stack (see
 * context_x86_64.S and context_aarch64.S for the slot maps), so saving
 * costs no memory elsewhere. Elsewhere than x86-64 and AArch64 (or with
 * GH_CONTEXT_UCONTEXT) a ucontext_t is used.
 */
#ifndef GH_SCHED_CONTEXT_H
#define GH_SCHED_CONTEXT_H

#include <stddef.h>

#if !defined(__x86_64__) && !defined(__aarch64__) && !defined(GH_CONTEXT_UCONTEXT)
#define GH_CONTEXT_UCONTEXT 1
#endif

#ifdef GH_CONTEXT_UCONTEXT
#include <ucontext.h>
typedef struct gh__ctx {
    ucontext_t uc;
} gh__ctx;
#else
typedef struct gh__ctx {
    void *sp; /* saved stack pointer; the slots it points at are in the .S file */
} gh__ctx;
#endif

/*
 * Prepare @ctx so that the first switch to it calls entry(arg) on the stack
 * [stack_lo, stack_lo + size). entry must never return.
 */
void gh__ctx_make(gh__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg);

/* Save the running context in @from and resume @to. Returns when @from is resumed. */
void gh__ctx_switch(gh__ctx *from, gh__ctx *to);

/*
 * The same, for a switch between two contexts suspended at the same call
 * site, where a return predicts right (context_x86_64.S); elsewhere the
 * same function.
 */
#if defined(__x86_64__) && !defined(GH_CONTEXT_UCONTEXT)
void gh__ctx_switch_ret(gh__ctx *from, gh__ctx *to);
#else
#define gh__ctx_switch_ret gh__ctx_switch
#endif

#endif /* GH_SCHED_CONTEXT_H */
