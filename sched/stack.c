/*
 * stack.c — task stacks and the stack-overflow report.
 *
 * Where the kernel has guard regions (MADV_GUARD_INSTALL, Linux 6.13), a
 * stack's guard page is a marker in its page table: no mapping of its own,
 * so adjacent stacks merge into one kernel mapping and every stack, 100,000
 * of them too, gets a guard.
 *
 * Elsewhere each guarded stack is two kernel mappings (the PROT_NONE guard
 * page and the stack), and vm.max_map_count is 65530 by default, so the
 * process keeps a budget of guarded stacks. Past it, stacks are mapped
 * without a guard page and carry a canary word at their lowest address,
 * checked at every switch away from the task (sched/task.c). Adjacent
 * unguarded stacks may merge into one kernel mapping, which is what lets
 * 100,000+ tasks live at once. The canary costs a resident page per stack
 * (its lowest one, besides the top page the frames use): an idle task costs
 * two pages there, one with guard regions.
 */
#include "sched/stack.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sched/log.h"
#include "sched/sanitizer.h"

#define STACK_CANARY 0x9e3779b97f4a7c15ull

/* <asm-generic/mman-common.h> of Linux 6.13; older headers lack them. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static atomic_long stack_guarded_live;
static atomic_long stack_guard_budget = -1;
static size_t stack_page;
static bool stack_light_guard; /* MADV_GUARD_INSTALL works: guards cost no mapping */
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;

_Thread_local uint64_t gh__stack_running_id;
_Thread_local const gh__stack *gh__stack_running;
static _Thread_local void *stack_altstack;

static struct sigaction stack_prev_segv, stack_prev_bus;

static void stack_write_str(const char *s)
{
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void stack_write_u64(uint64_t v)
{
    char buf[24];
    int i = (int)sizeof buf;

    buf[--i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    stack_write_str(&buf[i]);
}

_Noreturn void gh__stack_overflow(uint64_t id, const gh__stack *s)
{
    gh__log(GH_LOG_ERROR, "stack overflow in task %llu (stack %zu bytes)", (unsigned long long)id,
            s ? s->size : 0);
    signal(SIGABRT, SIG_DFL);
    abort();
}

/* The same from the SIGSEGV handler: only async-signal-safe calls. */
static _Noreturn void stack_overflow_in_signal(uint64_t id, const gh__stack *s)
{
    stack_write_str("greenhub: stack overflow in task ");
    stack_write_u64(id);
    stack_write_str(" (stack ");
    stack_write_u64(s ? s->size : 0);
    stack_write_str(" bytes)\n");
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void stack_chain(int sig, siginfo_t *info, void *uctx, const struct sigaction *prev)
{
    if (prev->sa_flags & SA_SIGINFO) {
        if (prev->sa_sigaction) {
            prev->sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (prev->sa_handler == SIG_IGN) {
        return;
    } else if (prev->sa_handler != SIG_DFL) {
        prev->sa_handler(sig);
        return;
    }
    /* Default action: restore it and return, so the fault re-raises and kills. */
    signal(sig, SIG_DFL);
}

static __attribute__((unused)) void stack_on_fault(int sig, siginfo_t *info, void *uctx)
{
    const gh__stack *s = gh__stack_running;
    char *addr = info ? (char *)info->si_addr : NULL;

    if (s && s->guarded && addr >= (char *)s->map && addr < (char *)s->lo)
        stack_overflow_in_signal(gh__stack_running_id, s);
    stack_chain(sig, info, uctx, sig == SIGBUS ? &stack_prev_bus : &stack_prev_segv);
}

static void stack_once_init(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    long budget;
    FILE *f;

    stack_page = pg > 0 ? (size_t)pg : 4096;
    /* Leave half the map count, less a margin, for everything else in the process. */
    budget = 65530;
    f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &budget) != 1)
            budget = 65530;
        fclose(f);
    }
    budget = (budget - 4096) / 2;
    if (budget < 0)
        budget = 0;
    /*
     * Guard regions cost no mapping, so no budget then (a test may still set
     * one, to reach the canary path). An older kernel says EINVAL, once here.
     */
    void *probe = mmap(NULL, 2 * stack_page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe != MAP_FAILED) {
        /*
         * Installed, and really there: a syscall reading a guard region
         * fails with EFAULT. An emulator (qemu-user 7.2) may answer 0 to
         * an advice it does not know and install nothing.
         */
        int p[2];
        if (madvise(probe, stack_page, MADV_GUARD_INSTALL) == 0 && pipe(p) == 0) {
            stack_light_guard = write(p[1], probe, 1) < 0 && errno == EFAULT;
            close(p[0]);
            close(p[1]);
        }
        munmap(probe, 2 * stack_page);
    }
    if (stack_light_guard)
        budget = LONG_MAX;
    long expected = -1;
    atomic_compare_exchange_strong(&stack_guard_budget, &expected, budget);

#if !GH_ASAN && !GH_TSAN
    /* The sanitizers own SIGSEGV; under them they report overflows themselves. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = stack_on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &stack_prev_segv);
    sigaction(SIGBUS, &sa, &stack_prev_bus);
#endif
}

int gh__stack_thread_init(void)
{
    pthread_once(&stack_once, stack_once_init);
#if !GH_ASAN && !GH_TSAN
    stack_t old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return 0; /* someone (the embedding program) already gave this thread one */
    size_t len = 64 * 1024;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    stack_t ss = {.ss_sp = p, .ss_size = len, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        int err = -errno;
        munmap(p, len);
        return err;
    }
    stack_altstack = p;
#endif
    return 0;
}

void gh__stack_thread_term(void)
{
    if (!stack_altstack)
        return;
    stack_t ss = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(stack_altstack, 64 * 1024);
    stack_altstack = NULL;
}

long gh__stack_guarded_live(void)
{
    return atomic_load_explicit(&stack_guarded_live, memory_order_relaxed);
}

long gh__stack_guard_budget(void)
{
    pthread_once(&stack_once, stack_once_init);
    return atomic_load_explicit(&stack_guard_budget, memory_order_relaxed);
}

/* For tests: force the canary path by shrinking the budget. */
void gh__stack_set_guard_budget(long budget)
{
    pthread_once(&stack_once, stack_once_init);
    atomic_store(&stack_guard_budget, budget);
}

static gh__stack *stack_map(size_t size)
{
    gh__stack *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    bool guard = atomic_fetch_add(&stack_guarded_live, 1) <
                 atomic_load_explicit(&stack_guard_budget, memory_order_relaxed);
    if (!guard)
        atomic_fetch_sub(&stack_guarded_live, 1);
    size_t len = size + (guard ? stack_page : 0);
    /* NORESERVE: 256 KiB reserved per task, pages committed only when touched. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        goto fail;
    if (guard && stack_light_guard && madvise(p, stack_page, MADV_GUARD_INSTALL) != 0) {
        /* No memory for the page table that holds the marker: a canary stack, one page lower. */
        atomic_fetch_sub(&stack_guarded_live, 1);
        guard = false;
        p = (char *)p + stack_page;
        len -= stack_page;
        munmap((char *)p - stack_page, stack_page);
    } else if (guard && !stack_light_guard && mprotect(p, stack_page, PROT_NONE) != 0) {
        munmap(p, len);
        goto fail;
    }
    s->map = p;
    s->maplen = len;
    s->lo = (char *)p + (guard ? stack_page : 0);
    s->size = size;
    s->guarded = guard;
    s->next_cached = NULL;
    s->tsan_fiber = NULL;
    s->tsan_uses = 0;
    if (!guard)
        *(uint64_t *)s->lo = STACK_CANARY;
    return s;
fail:
    if (guard)
        atomic_fetch_sub(&stack_guarded_live, 1);
    free(s);
    errno = ENOMEM;
    return NULL;
}

static void stack_unmap(gh__stack *s)
{
    /*
     * ASan's shadow keeps the redzones of the frames that ran here; the kernel
     * may hand the range to the next mmap (an io_uring ring, say), where they
     * would turn legitimate writes into "stack-buffer-underflow" reports.
     */
    GH_ASAN_UNPOISON(s->lo, s->size);
#if GH_TSAN
    if (s->tsan_fiber)
        __tsan_destroy_fiber(s->tsan_fiber);
#endif
    if (s->guarded)
        atomic_fetch_sub(&stack_guarded_live, 1);
    munmap(s->map, s->maplen);
    free(s);
}

void gh__stack_cache_init(gh__stack_cache *c, size_t stack_size)
{
    pthread_once(&stack_once, stack_once_init);
    if (stack_size == 0)
        stack_size = GH__STACK_DEFAULT;
    if (stack_size < GH__STACK_MIN)
        stack_size = GH__STACK_MIN;
    stack_size = (stack_size + stack_page - 1) & ~(stack_page - 1);
    c->head = NULL;
    c->count = 0;
    c->max = 1024;
    c->stack_size = stack_size;
}

void gh__stack_cache_term(gh__stack_cache *c)
{
    while (c->head) {
        gh__stack *s = c->head;
        c->head = s->next_cached;
        stack_unmap(s);
    }
    c->count = 0;
}

gh__stack *gh__stack_get(gh__stack_cache *c)
{
    gh__stack *s = c->head;
    if (s) {
        c->head = s->next_cached;
        c->count--;
        s->next_cached = NULL;
        /* A recycled stack may hold poisoned frames of the task that ran on it. */
        GH_ASAN_UNPOISON(s->lo, s->size);
        return s;
    }
    return stack_map(c->stack_size);
}

void gh__stack_put(gh__stack_cache *c, gh__stack *s)
{
    if (!s->guarded && *(uint64_t *)s->lo != STACK_CANARY) {
        /* Overflowed on its way out, after the last switch check. */
        gh__stack_overflow(0, s);
    }
    if (c->count >= c->max || s->size != c->stack_size) {
        stack_unmap(s); /* full, or a task that moved here from a hub with other stacks */
        return;
    }
    s->next_cached = c->head;
    c->head = s;
    c->count++;
}
