/*
 * stack_overflow_test.c — a task that overflows its stack is reported by
 * name, then the process aborts; a fault anywhere else is not ours.
 *
 * Each case runs in a forked child with stderr on a pipe. The parent checks
 * how the child died and that its stderr is exactly the overflow line:
 *   - guard page (the default): unbounded recursion hits the PROT_NONE page;
 *   - canary (guard budget 0, as past ~30,000 live tasks): the task writes
 *     down to the bottom of its stack and is caught at its next switch;
 *   - any other fault in a task (a PROT_NONE page that is no guard) is
 *     chained to the previous handler: the default action (SIGSEGV), or the
 *     program's own handler.
 *
 * Plain build and UBSan only: ASan and TSan own SIGSEGV (greenhub installs
 * no handler under them).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

/* Internal (sched/stack.c): shrink the guarded-stack budget (tests only). */
void gh__stack_set_guard_budget(long budget);

/* UBSan must not take SIGSEGV over: the chained default action is what we check. */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
    return "handle_segv=0:handle_sigbus=0:handle_abort=0";
}

#define STACK_BYTES 262144 /* the default task stack */

typedef struct child_result {
    int status;     /* from waitpid */
    char err[4096]; /* the child's whole stderr */
    uint64_t task_id;
    int have_id;
} child_result;

/* Run @fn in a child with stderr (and a side pipe for the task id) captured. */
static void run_child(void (*fn)(int idfd), child_result *r)
{
    int errp[2], idp[2];
    assert_int_equal(pipe(errp), 0);
    assert_int_equal(pipe(idp), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(errp[0]);
        close(idp[0]);
        /* cmocka catches SIGSEGV/SIGABRT for its own reports: give the child the defaults. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        dup2(errp[1], STDERR_FILENO);
        close(errp[1]);
        fn(idp[1]);
        _exit(99); /* not reached when the case works */
    }
    close(errp[1]);
    close(idp[1]);
    memset(r, 0, sizeof *r);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(errp[0], r->err + len, sizeof r->err - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    r->err[len] = '\0';
    /* Under qemu-user (.ci/aarch64.sh) the emulator adds its own line for a fatal signal. */
    char *q = strstr(r->err, "qemu: uncaught target signal");
    if (q) {
        char *eol = strchr(q, '\n');
        memmove(q, eol ? eol + 1 : q + strlen(q), strlen(eol ? eol + 1 : q + strlen(q)) + 1);
    }
    r->have_id = read(idp[0], &r->task_id, sizeof r->task_id) == (ssize_t)sizeof r->task_id;
    close(errp[0]);
    close(idp[0]);
    assert_int_equal(waitpid(pid, &r->status, 0), pid);
}

static void send_id(int idfd, gh_task *t)
{
    uint64_t id = gh_task_id(t);
    ssize_t w = write(idfd, &id, sizeof id);
    (void)w;
}

static void expect_overflow_report(const child_result *r)
{
    char want[128];
    assert_true(r->have_id);
    assert_true(r->task_id >= 1);
    snprintf(want, sizeof want, "greenhub: stack overflow in task %llu (stack %d bytes)\n",
             (unsigned long long)r->task_id, STACK_BYTES);
    if (!WIFSIGNALED(r->status) || WTERMSIG(r->status) != SIGABRT)
        print_message("child status %#x, stderr: %s\n", r->status, r->err);
    assert_true(WIFSIGNALED(r->status));
    assert_int_equal(WTERMSIG(r->status), SIGABRT);
    assert_string_equal(r->err, want);
}

/* ---------------------------------------------------------- guard page */

static volatile int sink;
static volatile int depth_limit = 1 << 30; /* far past any stack; opaque to the compiler */

static int __attribute__((noinline)) recurse_forever(int depth)
{
    volatile char frame[1024];
    memset((char *)frame, depth & 0xff, sizeof frame);
    if (depth > depth_limit)
        return 0;
    /* Use the result after the call, so it is not a tail call. */
    int r = recurse_forever(depth + 1);
    return r + frame[depth % sizeof frame];
}

static void overflow_task(void *arg)
{
    (void)arg;
    sink = recurse_forever(0);
}

static void noop_task(void *arg)
{
    (void)arg;
}

static void sleeper_task(void *arg)
{
    (void)arg;
    gh_sleep(GH_FOREVER);
}

static void child_guard(int idfd)
{
    /* Tasks that ran before, so the overflowing one is not task 1 by accident. */
    gh_spawn_n(noop_task, NULL);
    gh_spawn_n(noop_task, NULL);
    gh_yield();
    gh_task *t = gh_spawn(overflow_task, NULL);
    send_id(idfd, t);
    gh_join(t, GH_FOREVER);
}

static void test_stack_overflow_guard_page(void **state)
{
    (void)state;
    child_result r;
    run_child(child_guard, &r);
    expect_overflow_report(&r);
    assert_int_equal(gh_hub_close(), 0);
}

/* -------------------------------------------------------------- canary */

/*
 * Overwrite the stack from here down to its lowest byte, where an unguarded
 * stack keeps its canary. The stack's top is page aligned (the mapping's end)
 * and a task's first frame sits within a page of it.
 */
static char *task_stack_top;

static void __attribute__((noinline)) smash_to_bottom(void)
{
    volatile char here;
    char *lo = task_stack_top - STACK_BYTES;
    volatile char *p = (volatile char *)&here - 256; /* below our own frame */
    while (p >= (volatile char *)lo)
        *p-- = (char)0xA5;
}

static void canary_task(void *arg)
{
    (void)arg;
    volatile char first;
    task_stack_top = (char *)(((uintptr_t)&first | 4095) + 1);
    smash_to_bottom();
    /* The canary is checked when the task switches away. */
    gh_yield();
    /* Not reached: the switch reports the overflow and aborts. */
    ssize_t w = write(STDERR_FILENO, "canary missed\n", 14);
    (void)w;
}

static void child_canary(int idfd)
{
    gh__stack_set_guard_budget(0);
    gh_task *t = gh_spawn(canary_task, NULL);
    send_id(idfd, t);
    gh_join(t, GH_FOREVER);
}

static void test_stack_overflow_canary(void **state)
{
    (void)state;
    child_result r;
    run_child(child_canary, &r);
    expect_overflow_report(&r);
    assert_int_equal(gh_hub_close(), 0);
}

/* ------------------------------------------- faults that are not overflows */

/*
 * A read of a PROT_NONE page that is no stack's guard. (Not a null pointer:
 * UBSan would report that itself before any SIGSEGV.)
 */
static void *no_access_page(void)
{
    void *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(98);
    return p;
}

static void bad_read_task(void *arg)
{
    volatile int *volatile p = arg;
    sink = *p;
}

static void child_bad_read(int idfd)
{
    gh_task *t = gh_spawn(bad_read_task, no_access_page());
    send_id(idfd, t);
    gh_join(t, GH_FOREVER);
}

static void test_stack_fault_elsewhere_default_action(void **state)
{
    (void)state;
    child_result r;
    run_child(child_bad_read, &r);
    assert_true(r.have_id);
    assert_true(WIFSIGNALED(r.status));
    assert_int_equal(WTERMSIG(r.status), SIGSEGV);
    assert_null(strstr(r.err, "stack overflow"));
    assert_string_equal(r.err, "");
    assert_int_equal(gh_hub_close(), 0);
}

static void own_handler(int sig)
{
    static const char msg[] = "own handler\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(sig == SIGSEGV ? 42 : 43);
}

static void child_own_handler(int idfd)
{
    /* The program's handler, installed before greenhub starts. */
    signal(SIGSEGV, own_handler);
    gh_task *t = gh_spawn(bad_read_task, no_access_page());
    send_id(idfd, t);
    gh_join(t, GH_FOREVER);
}

static void test_stack_fault_elsewhere_chained(void **state)
{
    (void)state;
    child_result r;
    run_child(child_own_handler, &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 42);
    assert_string_equal(r.err, "own handler\n");
    assert_int_equal(gh_hub_close(), 0);
}

/* Without the fault, the same child code runs to the end: the harness itself is sound. */
static void child_clean(int idfd)
{
    gh_task *t = gh_spawn(sleeper_task, NULL);
    send_id(idfd, t);
    gh_yield();
    gh_kill(t);
    gh_join(t, GH_FOREVER);
    gh_task_release(t);
    _exit(gh_hub_close() == 0 ? 7 : 8);
}

static void test_stack_harness_clean_child(void **state)
{
    (void)state;
    child_result r;
    run_child(child_clean, &r);
    assert_true(WIFEXITED(r.status));
    assert_int_equal(WEXITSTATUS(r.status), 7);
    assert_string_equal(r.err, "");
    assert_int_equal(gh_hub_close(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_overflow_guard_page),
        cmocka_unit_test(test_stack_overflow_canary),
        cmocka_unit_test(test_stack_fault_elsewhere_default_action),
        cmocka_unit_test(test_stack_fault_elsewhere_chained),
        cmocka_unit_test(test_stack_harness_clean_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
