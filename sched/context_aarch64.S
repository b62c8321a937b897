/*
 * context_aarch64.S — switch between green tasks on AArch64 (AAPCS64), for
 * ARM servers (Graviton, Ampere Altra, Neoverse).
 *
 * void gh__ctx_switch(gh__ctx *from, gh__ctx *to)
 *     x0 = from, x1 = to; gh__ctx holds one word, the saved sp (offset 0,
 *     checked by _Static_assert in context_aarch64.c).
 *
 * A suspended context's stack, from its saved sp upward (0xb0 bytes, so sp
 * stays 16-byte aligned as the ABI requires at every instruction):
 *
 *     sp + 0x00  d8,  d9       low halves of v8-v15: the only callee-saved
 *     sp + 0x10  d10, d11      SIMD/FP state
 *     sp + 0x20  d12, d13
 *     sp + 0x30  d14, d15
 *     sp + 0x40  x19, x20
 *     sp + 0x50  x21, x22
 *     sp + 0x60  x23, x24
 *     sp + 0x70  x25, x26
 *     sp + 0x80  x27, x28
 *     sp + 0x90  x29 (fp), x30 (lr)
 *     sp + 0xa0  resume address, pad
 *
 * Only callee-saved state is kept: the caller has already spilled the rest.
 * FPCR is not saved (neither does Boost.Context): writing it can serialize
 * the pipeline, and a task that changes rounding modes restores them itself.
 * No signal mask is saved: that is what makes this cheaper than swapcontext
 * by two orders of magnitude.
 *
 * The switch resumes with an indirect br, not ret, for the reason given in
 * context_x86_64.S: the ret of a switch never returns to the call that
 * entered it, so the return-stack predictor would miss every time.
 *
 * A fresh context (gh__ctx_make) holds the same frame with x19 = entry,
 * x20 = arg, fp = lr = 0 (the end of the frame chain for unwinders) and
 * gh__ctx_start as resume address.
 */
#if defined(__aarch64__) && !defined(GH_CONTEXT_UCONTEXT)

    .text
    .globl  gh__ctx_switch
    .type   gh__ctx_switch, %function
    .p2align 4
gh__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #0xb0
    stp     d8, d9, [sp, #0x00]
    stp     d10, d11, [sp, #0x10]
    stp     d12, d13, [sp, #0x20]
    stp     d14, d15, [sp, #0x30]
    stp     x19, x20, [sp, #0x40]
    stp     x21, x22, [sp, #0x50]
    stp     x23, x24, [sp, #0x60]
    stp     x25, x26, [sp, #0x70]
    stp     x27, x28, [sp, #0x80]
    stp     x29, x30, [sp, #0x90]
    str     x30, [sp, #0xa0]
    mov     x9, sp
    str     x9, [x0]
    ldr     x9, [x1]
    mov     sp, x9
    ldp     d8, d9, [sp, #0x00]
    ldp     d10, d11, [sp, #0x10]
    ldp     d12, d13, [sp, #0x20]
    ldp     d14, d15, [sp, #0x30]
    ldp     x19, x20, [sp, #0x40]
    ldp     x21, x22, [sp, #0x50]
    ldp     x23, x24, [sp, #0x60]
    ldp     x25, x26, [sp, #0x70]
    ldp     x27, x28, [sp, #0x80]
    ldp     x29, x30, [sp, #0x90]
    ldr     x9, [sp, #0xa0]
    add     sp, sp, #0xb0
    br      x9
    .cfi_endproc
    .size   gh__ctx_switch, .-gh__ctx_switch

/* First code run on a fresh stack: call entry(arg); entry never returns. */
    .globl  gh__ctx_start
    .type   gh__ctx_start, %function
    .p2align 4
gh__ctx_start:
    .cfi_startproc
    .cfi_undefined x30
    mov     x0, x20
    blr     x19
    brk     #0x1
    .cfi_endproc
    .size   gh__ctx_start, .-gh__ctx_start

#endif

#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",%progbits
#endif
