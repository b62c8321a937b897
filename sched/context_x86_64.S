/*
 * context_x86_64.S — switch between green tasks on x86-64 (System V ABI).
 *
 * void gh__ctx_switch(gh__ctx *from, gh__ctx *to)
 *     rdi = from, rsi = to; gh__ctx holds one word, the saved rsp (offset 0,
 *     checked by _Static_assert in context_x86_64.c).
 *
 * A suspended context's stack, from its saved rsp upward:
 *
 *     rsp + 0x00  r15
 *     rsp + 0x08  r14
 *     rsp + 0x10  r13
 *     rsp + 0x18  r12
 *     rsp + 0x20  rbx
 *     rsp + 0x28  rbp
 *     rsp + 0x30  MXCSR (low 4 bytes), x87 control word (next 2 bytes)
 *     rsp + 0x38  return address
 *
 * Only callee-saved state is kept: the caller of gh__ctx_switch has already
 * spilled everything else. MXCSR and the x87 control word are callee-saved
 * by the ABI too (a task may change rounding modes). No signal mask is saved:
 * that is what makes this ~100x cheaper than swapcontext.
 *
 * The resume address is taken off the stack into rcx (caller-saved, free
 * here) and reached with an indirect jmp, not a ret: the ret of a switch
 * never returns to the call that entered it, so the CPU's return-stack
 * predictor missed on every switch (bench/core: 14.7 ns per switch with ret,
 * 5.4 ns with jmp, where boost.context's jump_fcontext, which jmps too,
 * takes 5.3-5.9 ns).
 *
 * A fresh context (gh__ctx_make) holds the same frame with r12 = entry,
 * r13 = arg, a default MXCSR/FPU word, and gh__ctx_start as return address.
 */
#if defined(__x86_64__) && !defined(GH_CONTEXT_UCONTEXT)

/*
 * Both switches: push @from's frame (above) on its stack, save the stack
 * pointer in *from, take *to's, pop its frame up to the return address,
 * which is left at 0(%rsp): jumped to or returned to.
 */
.macro CTX_SWAP
    leaq    -0x8(%rsp), %rsp
    stmxcsr (%rsp)
    fnstcw  0x4(%rsp)
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ldmxcsr (%rsp)
    fldcw   0x4(%rsp)
    leaq    0x8(%rsp), %rsp
.endm

    .text
    .globl  gh__ctx_switch
    .type   gh__ctx_switch, @function
    .p2align 4
gh__ctx_switch:
    .cfi_startproc
    CTX_SWAP
    popq    %rcx
    jmpq    *%rcx
    .cfi_endproc
    .size   gh__ctx_switch, .-gh__ctx_switch

/*
 * void gh__ctx_switch_ret(gh__ctx *from, gh__ctx *to): the same switch, the
 * same frame, resumed with a ret. For a switch between two tasks suspended
 * at the same call site (two tasks that yield to each other straight,
 * sched/task.c task_switch_next) the return-stack predictor is then right,
 * and stays in step for the rets that follow; the jmp above leaves it one
 * entry off, so the resumed task's next ret missed instead (gh_yield task
 * to task: 21 ns with the jmp, see bench/core).
 */
    .globl  gh__ctx_switch_ret
    .type   gh__ctx_switch_ret, @function
    .p2align 4
gh__ctx_switch_ret:
    .cfi_startproc
    CTX_SWAP
    ret
    .cfi_endproc
    .size   gh__ctx_switch_ret, .-gh__ctx_switch_ret

/* First code run on a fresh stack: call entry(arg); entry never returns. */
    .globl  gh__ctx_start
    .type   gh__ctx_start, @function
    .p2align 4
gh__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r13, %rdi
    callq   *%r12
    ud2
    .cfi_endproc
    .size   gh__ctx_start, .-gh__ctx_start

#endif

    .section .note.GNU-stack,"",@progbits
