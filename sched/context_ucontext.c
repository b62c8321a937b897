/*
 * context_ucontext.c — portable fallback switch on ucontext_t, for machines
 * without an assembly switch (or built with GH_CONTEXT_UCONTEXT). It costs a
 * sigprocmask syscall per switch, about 100x the assembly one.
 */
#include "sched/context.h"

#ifdef GH_CONTEXT_UCONTEXT

#include <stdint.h>

static void ctx_trampoline(unsigned hi, unsigned lo, unsigned ahi, unsigned alo)
{
    void (*entry)(void *) = (void (*)(void *))(((uintptr_t)hi << 32) | (uintptr_t)lo);
    void *arg = (void *)(((uintptr_t)ahi << 32) | (uintptr_t)alo);
    entry(arg);
}

void gh__ctx_make(gh__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg)
{
    uint64_t e = (uint64_t)(uintptr_t)entry, a = (uint64_t)(uintptr_t)arg;

    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))ctx_trampoline, 4, (unsigned)(e >> 32), (unsigned)e,
                (unsigned)(a >> 32), (unsigned)a);
}

void gh__ctx_switch(gh__ctx *from, gh__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}

#endif
