/* context_aarch64.c — lays out a fresh frame for context_aarch64.S. */
#include "sched/context.h"

#if defined(__aarch64__) && !defined(GH_CONTEXT_UCONTEXT)

#include <stddef.h>
#include <stdint.h>
#include <string.h>

_Static_assert(offsetof(gh__ctx, sp) == 0, "context_aarch64.S stores sp at offset 0");

enum {
    SLOT_D8, /* d8-d15: eight slots */
    SLOT_X19 = SLOT_D8 + 8,
    SLOT_X20,
    SLOT_FP = SLOT_X19 + 10, /* x29, after x19-x28 */
    SLOT_LR,
    SLOT_PC, /* the resume address */
    SLOT_PAD,
    SLOT_COUNT
};
_Static_assert(SLOT_X19 * 8 == 0x40 && SLOT_FP * 8 == 0x90 && SLOT_PC * 8 == 0xa0,
               "slot map matches the .S comment");
_Static_assert(SLOT_COUNT * 8 == 0xb0 && SLOT_COUNT * 8 % 16 == 0, "sp stays 16-byte aligned");

void gh__ctx_start(void);

void gh__ctx_make(gh__ctx *ctx, void *stack_lo, size_t size, void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    uint64_t *frame = (uint64_t *)top - SLOT_COUNT;

    memset(frame, 0, SLOT_COUNT * sizeof *frame);
    frame[SLOT_X19] = (uint64_t)(uintptr_t)entry;
    frame[SLOT_X20] = (uint64_t)(uintptr_t)arg;
    frame[SLOT_PC] = (uint64_t)(uintptr_t)gh__ctx_start;
    ctx->sp = frame;
}

#endif
