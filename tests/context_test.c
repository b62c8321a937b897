/*
 * context_test.c — the machine context switch itself (sched/context.h), on
 * whichever implementation this build uses: context_x86_64.S,
 * context_aarch64.S or ucontext. Callee-saved integer and floating-point
 * values survive switches in both directions, a fresh context gets its
 * argument and an ABI-aligned stack, deep recursion runs on the task's
 * stack, and many contexts interleave. .ci/aarch64.sh runs it under
 * qemu-aarch64 with the AArch64 switch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sched/context.h"

#define STACK_SIZE (256 * 1024)

static gh__ctx main_ctx;

typedef struct coro {
    gh__ctx ctx;
    void *stack;
    long rounds;
    long seen; /* what the coroutine saw */
    int done;
} coro;

static void coro_init(coro *c, void (*entry)(void *))
{
    c->stack = aligned_alloc(16, STACK_SIZE);
    assert_non_null(c->stack);
    gh__ctx_make(&c->ctx, c->stack, STACK_SIZE, entry, c);
}

/* Ping-pong: the coroutine counts, main checks it sees every step. */
static void counter_entry(void *arg)
{
    coro *c = arg;
    for (long i = 0; i < c->rounds; i++) {
        c->seen = i;
        gh__ctx_switch(&c->ctx, &main_ctx);
    }
    c->done = 1;
    gh__ctx_switch(&c->ctx, &main_ctx);
    abort(); /* never resumed after done */
}

static void test_ping_pong(void **state)
{
    (void)state;
    coro c = {.rounds = 100000};
    coro_init(&c, counter_entry);
    for (long i = 0; i < c.rounds; i++) {
        gh__ctx_switch(&main_ctx, &c.ctx);
        assert_int_equal(c.seen, i);
    }
    gh__ctx_switch(&main_ctx, &c.ctx);
    assert_true(c.done);
    free(c.stack);
}

/*
 * Many live integers and doubles across a switch: at -O1 and above the
 * compiler keeps them in callee-saved registers (x19-x28 and d8-d15 on
 * AArch64; rbx, rbp, r12-r15 on x86-64), so a switch that loses one shows
 * here. The other side fills the same registers with different values.
 */
typedef struct regs {
    gh__ctx ctx;
    void *stack;
    volatile long seed;
    long isum;
    double dsum;
} regs;

static regs *other;

__attribute__((noinline)) static void clobber_and_back(volatile long seed, gh__ctx *self)
{
    long a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11, e = seed * 13, f = seed * 17,
         g = seed * 19, h = seed * 23, i = seed * 29, j = seed * 31;
    double x = seed * 0.5, y = seed * 0.25, z = seed * 0.125, w = seed * 1.5, u = seed * 2.5,
           v = seed * 3.5, p = seed * 4.5, q = seed * 5.5;
    gh__ctx_switch(self, &main_ctx);
    other->isum = a + b + c + d + e + f + g + h + i + j;
    other->dsum = x + y + z + w + u + v + p + q;
}

static void regs_entry(void *arg)
{
    regs *r = arg;
    for (;;)
        clobber_and_back(r->seed, &r->ctx);
}

__attribute__((noinline)) static void keep_across(long seed, regs *r)
{
    long a = seed + 1, b = seed + 2, c = seed + 3, d = seed + 4, e = seed + 5, f = seed + 6,
         g = seed + 7, h = seed + 8, i = seed + 9, j = seed + 10;
    double x = seed + 0.5, y = seed + 1.5, z = seed + 2.5, w = seed + 3.5, u = seed + 4.5,
           v = seed + 5.5, p = seed + 6.5, q = seed + 7.5;
    gh__ctx_switch(&main_ctx, &r->ctx); /* the other side fills registers and comes back */
    gh__ctx_switch(&main_ctx, &r->ctx); /* and once more, after it summed its own */
    assert_int_equal(a + b + c + d + e + f + g + h + i + j, 10 * seed + 55);
    assert_true(x + y + z + w + u + v + p + q == 8 * (double)seed + 32.0);
}

static void test_callee_saved_survive(void **state)
{
    (void)state;
    regs r = {.seed = 1000};
    other = &r;
    r.stack = aligned_alloc(16, STACK_SIZE);
    assert_non_null(r.stack);
    gh__ctx_make(&r.ctx, r.stack, STACK_SIZE, regs_entry, &r);
    for (long s = 1; s < 200; s++) {
        r.seed = s * 1009;
        keep_across(s, &r);
        assert_int_equal(r.isum, r.seed * (3 + 5 + 7 + 11 + 13 + 17 + 19 + 23 + 29 + 31));
        assert_true(r.dsum == r.seed * (0.5 + 0.25 + 0.125 + 1.5 + 2.5 + 3.5 + 4.5 + 5.5));
    }
    free(r.stack);
}

/* A fresh context: its argument, an aligned stack (varargs with long double), recursion. */
static long recurse(long n, volatile char *prev)
{
    volatile char pad[1024];
    pad[0] = (char)n;
    pad[1023] = prev ? prev[0] : 0;
    return n == 0 ? pad[0] : recurse(n - 1, pad) + 1;
}

static void fresh_entry(void *arg)
{
    coro *c = arg;
    char buf[64];
    long double ld = 1.25L;
    snprintf(buf, sizeof buf, "%.2Lf %.3f", ld, 2.5);
    c->seen = strcmp(buf, "1.25 2.500") == 0 ? 1 : -1;
    /* 16-byte alignment of the frame is what the ABI promises a callee. */
    if (((uintptr_t)__builtin_frame_address(0) & 15) != 0)
        c->seen = -2;
    c->rounds = recurse(100, NULL); /* ~100 KiB of this task's stack */
    c->done = 1;
    gh__ctx_switch(&c->ctx, &main_ctx);
    abort();
}

static void test_fresh_context(void **state)
{
    (void)state;
    /* Stacks at every 16-byte offset of a misaligned top: make aligns it. */
    for (size_t skew = 0; skew < 16; skew++) {
        coro c = {0};
        c.stack = aligned_alloc(16, STACK_SIZE + 16);
        assert_non_null(c.stack);
        gh__ctx_make(&c.ctx, c.stack, STACK_SIZE + skew, fresh_entry, &c);
        gh__ctx_switch(&main_ctx, &c.ctx);
        assert_true(c.done);
        assert_int_equal(c.seen, 1);
        assert_int_equal(c.rounds, 100);
        free(c.stack);
    }
}

/* Many contexts round-robin, each switching straight to the next, not via main. */
#define RING 64
static coro ring[RING];

static void ring_entry(void *arg)
{
    coro *c = arg;
    size_t me = (size_t)(c - ring);
    for (;;) {
        c->seen++;
        if (me == RING - 1)
            gh__ctx_switch(&c->ctx, &main_ctx);
        else
            gh__ctx_switch(&c->ctx, &ring[me + 1].ctx);
    }
}

static void test_ring(void **state)
{
    (void)state;
    for (size_t i = 0; i < RING; i++)
        coro_init(&ring[i], ring_entry);
    for (int lap = 0; lap < 100; lap++)
        gh__ctx_switch(&main_ctx, &ring[0].ctx);
    for (size_t i = 0; i < RING; i++) {
        assert_int_equal(ring[i].seen, 100);
        free(ring[i].stack);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_callee_saved_survive),
        cmocka_unit_test(test_fresh_context),
        cmocka_unit_test(test_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
