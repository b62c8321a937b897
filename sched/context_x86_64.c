/* context_x86_64.c — lays out a fresh frame for context_x86_64.S. */
#include "sched/context.h"

#if defined(__x86_64__) && !defined(GH_CONTEXT_UCONTEXT)

#include <stddef.h>
#include <stdint.h>
#include <string.h>

_Static_assert(offsetof(gh__ctx, sp) == 0, "context_x86_64.S stores rsp at offset 0");

enum {
    SLOT_R15,
    SLOT_R14,
    SLOT_R13,
    SLOT_R12,
    SLOT_RBX,
    SLOT_RBP,
    SLOT_FPU, /* MXCSR in the low 4 bytes, x87 control word above */
    SLOT_RET,
    SLOT_PAD0, /* two pad words: rsp is 16-byte aligned when gh__ctx_start runs */
    SLOT_PAD1, /* (so entry is called with the ABI's alignment) */
    SLOT_COUNT
};
_Static_assert(SLOT_FPU * 8 == 0x30 && SLOT_RET * 8 == 0x38, "slot map matches the .S comment");
_Static_assert((SLOT_COUNT - SLOT_RET - 1) * 8 % 16 == 0, "rsp after ret is 16-byte aligned");

void gh__ctx_start(void);

void gh__ctx_make(gh__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    uint64_t *frame = (uint64_t *)top - SLOT_COUNT;
    uint32_t mxcsr = 0x1f80; /* ABI default: all exceptions masked, round to nearest */
    uint16_t fpucw = 0x037f; /* ABI default x87 control word */

    memset(frame, 0, SLOT_COUNT * sizeof *frame);
    frame[SLOT_R12] = (uint64_t)(uintptr_t)entry;
    frame[SLOT_R13] = (uint64_t)(uintptr_t)arg;
    memcpy(&frame[SLOT_FPU], &mxcsr, sizeof mxcsr);
    memcpy((char *)&frame[SLOT_FPU] + 4, &fpucw, sizeof fpucw);
    frame[SLOT_RET] = (uint64_t)(uintptr_t)gh__ctx_start;
    ctx->sp = frame;
}

#endif
