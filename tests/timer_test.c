/*
 * timer_test.c — the hub's timers, on every backend (the poll timeout that
 * wakes the hub for the next timer goes through the backend).
 *
 * Timing checks are lower bounds ("never early") with generous upper bounds.
 * Phase and skip behaviour of repeating timers is checked by the order in
 * which they fire relative to one-shot probe timers: timers due together
 * fire in deadline order, so that order does not depend on how late a busy
 * machine wakes the hub.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "greenhub.h"

#define HUB_CLOSES_CLEAN() assert_int_equal(gh_hub_close(), 0)

static void test_timer_backend_is_the_one_asked_for(void **state)
{
    (void)state;
    const char *want = getenv("GREENHUB_HUB");
    assert_non_null(gh_get_hub());
    if (want)
        assert_string_equal(gh_hub_backend(gh_get_hub()), want);
    HUB_CLOSES_CLEAN();
}

/* --------------------------------------------------------- not early */

typedef struct shot {
    int64_t due;
    int64_t fired_at;
    int order;
    int *counter;
} shot;

static void shot_cb(void *arg)
{
    shot *s = arg;
    s->fired_at = gh_now();
    s->order = (*s->counter)++;
}

typedef struct pipe_wait {
    int fd;
    ssize_t result;
} pipe_wait;

static void pipe_wait_task(void *arg)
{
    pipe_wait *p = arg;
    char c;
    p->result = gh_read(p->fd, &c, 1, GH_FOREVER);
}

static void test_timer_not_early(void **state)
{
    (void)state;
    /* An fd watched meanwhile: the backend's poll must still time out for timers. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pipe_wait pw = {pfd[0], -100};
    gh_task *reader = gh_spawn(pipe_wait_task, &pw);
    assert_int_equal(gh_yield(), 0);

    int counter = 0;
    static const int64_t delays_ms[] = {40, 1, 25, 0, 7, 60, 3};
    enum { N = sizeof delays_ms / sizeof delays_ms[0] };
    shot shots[N + 1];
    int64_t t0 = gh_now();
    for (int i = 0; i < N; i++) {
        shots[i] = (shot){t0 + delays_ms[i] * GH_MSEC, 0, -1, &counter};
        gh_timer_release(gh_call_after(delays_ms[i] * GH_MSEC, shot_cb, &shots[i]));
    }
    /* call_at on the absolute clock, between the others. */
    shots[N] = (shot){t0 + 33 * GH_MSEC, 0, -1, &counter};
    gh_timer_release(gh_call_at(shots[N].due, shot_cb, &shots[N]));

    /* The root sleeps through all of them (the hub polls with the timer's timeout). */
    assert_int_equal(gh_sleep(100 * GH_MSEC), 0);
    assert_true(gh_now() - t0 >= 100 * GH_MSEC);
    assert_int_equal(counter, N + 1);
    for (int i = 0; i <= N; i++) {
        assert_true(shots[i].fired_at >= shots[i].due);
        assert_true(shots[i].fired_at < shots[i].due + GH_SEC);
        /* Fired in deadline order. */
        for (int j = 0; j <= N; j++)
            if (shots[j].due < shots[i].due)
                assert_true(shots[j].order < shots[i].order);
    }
    assert_int_equal(pw.result, -100);

    /* A deadline in the past fires at the next iteration. */
    shot past = {0, 0, -1, &counter};
    gh_timer_release(gh_call_at(gh_now() - GH_SEC, shot_cb, &past));
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(gh_yield(), 0);
    assert_int_equal(past.order, N + 1);

    errno = 0;
    assert_null(gh_call_at(-5, shot_cb, &past));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_call_after(-1, shot_cb, &past));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_call_repeatedly(0, shot_cb, &past));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(gh_call_after(GH_MSEC, NULL, NULL));
    assert_int_equal(errno, EINVAL);

    assert_int_equal(write(pfd[1], "x", 1), 1);
    assert_int_equal(gh_join(reader, GH_FOREVER), 0);
    assert_int_equal(pw.result, 1);
    gh_task_release(reader);
    assert_int_equal(gh_close(pfd[0]), 0);
    close(pfd[1]);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------------------------- FIFO */

typedef struct fifo_log {
    int *seq;
    int n;
} fifo_log;

typedef struct fifo_item {
    fifo_log *log;
    int id;
} fifo_item;

static void fifo_cb(void *arg)
{
    fifo_item *it = arg;
    it->log->seq[it->log->n++] = it->id;
}

static void test_timer_equal_deadlines_fifo(void **state)
{
    (void)state;
    enum { N = 1000 };
    static int seq[N];
    static fifo_item items[N];
    fifo_log log = {seq, 0};
    int64_t when = gh_now() + 20 * GH_MSEC;
    for (int i = 0; i < N; i++) {
        items[i] = (fifo_item){&log, i};
        gh_timer *t = gh_call_at(when, fifo_cb, &items[i]);
        assert_non_null(t);
        gh_timer_release(t);
    }
    assert_int_equal(gh_hub_run(), 0);
    assert_true(gh_now() >= when);
    assert_int_equal(log.n, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seq[i], i);

    /* call_after with equal delays made in a row is FIFO too (same or later deadline). */
    log.n = 0;
    for (int i = 0; i < 100; i++)
        gh_timer_release(gh_call_after(5 * GH_MSEC, fifo_cb, &items[i]));
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(log.n, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(seq[i], i);
    HUB_CLOSES_CLEAN();
}

/* --------------------------------------------------- repeating: phase, skip */

#define REP_I (200 * GH_MSEC)

typedef struct rep_state {
    char log[64]; /* 'T' for a tick, 'a'.. for the probes */
    int n;
    int ticks;
    int64_t t0;
    int64_t tick_at[16];
    gh_timer *self;
    int cancel_result;
} rep_state;

static void rep_push(rep_state *r, char c)
{
    if (r->n < (int)sizeof r->log - 1)
        r->log[r->n++] = c;
}

static void rep_tick(void *arg)
{
    rep_state *r = arg;
    int64_t now = gh_now();
    if (r->ticks < 16)
        r->tick_at[r->ticks] = now;
    r->ticks++;
    rep_push(r, 'T');
    if (r->ticks == 2) {
        /* Hold the thread until 5.5 intervals from the start: ticks 3, 4, 5 are missed. */
        int64_t until = r->t0 + 11 * REP_I / 2;
        while (gh_now() < until) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    if (r->ticks == 5)
        r->cancel_result = gh_timer_cancel(r->self); /* from inside its own callback */
}

static void rep_probe(void *arg)
{
    shot *s = arg;
    rep_state *r = (rep_state *)s->counter;
    s->fired_at = gh_now();
    rep_push(r, (char)('a' + s->order));
}

static void test_timer_repeating_keeps_phase_skips_missed(void **state)
{
    (void)state;
    static rep_state r;
    memset(&r, 0, sizeof r);
    r.cancel_result = 1;
    r.t0 = gh_now();
    r.self = gh_call_repeatedly(REP_I, rep_tick, &r);
    assert_non_null(r.self);
    /*
     * Probes between the ticks' phase-kept deadlines (k * I from t0):
     *   a at 5.75 I: after the one late tick that replaces ticks 3..5, before tick 6 I.
     *   b at 6.25 I: after tick 6 I if the phase is kept; a timer re-armed from
     *                the late tick's time (>= 5.5 I) would come at >= 6.5 I.
     *   c at 7.25 I: after tick 7 I, the last one (it cancels itself).
     */
    shot probes[3];
    static const int64_t at_quarters[] = {23, 25, 29};
    for (int i = 0; i < 3; i++) {
        probes[i] = (shot){r.t0 + at_quarters[i] * REP_I / 4, 0, i, (int *)&r};
        gh_timer_release(gh_call_at(probes[i].due, rep_probe, &probes[i]));
    }
    assert_int_equal(gh_hub_run(), 0);
    r.log[r.n] = '\0';
    /* No burst of missed ticks, one late tick, then the original phase. */
    assert_string_equal(r.log, "TTTaTbTc");
    assert_int_equal(r.ticks, 5);
    assert_int_equal(r.cancel_result, 0);
    /* Never early. */
    assert_true(r.tick_at[0] >= r.t0 + 1 * REP_I);
    assert_true(r.tick_at[1] >= r.t0 + 2 * REP_I);
    assert_true(r.tick_at[2] >= r.t0 + 11 * REP_I / 2);
    assert_true(r.tick_at[3] >= r.t0 + 6 * REP_I);
    assert_true(r.tick_at[4] >= r.t0 + 7 * REP_I);
    HUB_CLOSES_CLEAN();
}

/* ---------------------------------------------------------- cancel */

typedef struct self_cancel {
    gh_timer *self;
    int fired;
    int result;
} self_cancel;

static void self_cancel_cb(void *arg)
{
    self_cancel *s = arg;
    s->fired++;
    s->result = gh_timer_cancel(s->self);
}

typedef struct cross_cancel {
    gh_timer *victim;
    int victim_fired;
    int result;
} cross_cancel;

static void victim_cb(void *arg)
{
    cross_cancel *c = arg;
    c->victim_fired++;
}

static void killer_cb(void *arg)
{
    cross_cancel *c = arg;
    c->result = gh_timer_cancel(c->victim);
}

static void count_cb(void *arg)
{
    (*(int *)arg)++;
}

static void test_timer_cancel(void **state)
{
    (void)state;
    int fired = 0;

    /* Pending: 0, and it never fires. */
    gh_timer *t = gh_call_after(10 * GH_MSEC, count_cb, &fired);
    assert_non_null(t);
    assert_int_equal(gh_timer_cancel(t), 0);
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_int_equal(fired, 0);

    /* After it fired: -ENOENT (and the handle is freed either way). */
    t = gh_call_after(GH_MSEC, count_cb, &fired);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    assert_int_equal(fired, 1);
    assert_int_equal(gh_timer_cancel(t), -ENOENT);

    /* A repeating timer is always pending. */
    int ticks = 0;
    t = gh_call_repeatedly(5 * GH_MSEC, count_cb, &ticks);
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_true(ticks >= 1);
    assert_int_equal(gh_timer_cancel(t), 0);
    int seen = ticks;
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    assert_int_equal(ticks, seen);

    /* From inside its own callback: one-shot (already fired) and repeating. */
    self_cancel one = {NULL, 0, 1};
    one.self = gh_call_after(GH_MSEC, self_cancel_cb, &one);
    self_cancel rep = {NULL, 0, 1};
    rep.self = gh_call_repeatedly(2 * GH_MSEC, self_cancel_cb, &rep);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(one.fired, 1);
    assert_int_equal(one.result, -ENOENT);
    assert_int_equal(rep.fired, 1);
    assert_int_equal(rep.result, 0);

    /* One timer cancels another that is due in the same iteration, later in order. */
    int64_t when = gh_now() + 5 * GH_MSEC;
    cross_cancel cc = {NULL, 0, 1};
    gh_timer_release(gh_call_at(when, killer_cb, &cc));
    cc.victim = gh_call_at(when, victim_cb, &cc);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(cc.result, 0);
    assert_int_equal(cc.victim_fired, 0);

    /* Release keeps it scheduled. */
    fired = 0;
    t = gh_call_after(5 * GH_MSEC, count_cb, &fired);
    gh_timer_release(t);
    assert_int_equal(gh_hub_close(), -EBUSY);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(fired, 1);

    /* Release after it fired frees it (ASan/LSan would see a leak or a double free). */
    t = gh_call_after(GH_MSEC, count_cb, &fired);
    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(fired, 2);
    gh_timer_release(t);

    assert_int_equal(gh_timer_cancel(NULL), -EINVAL);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------ heap: 100,000 timers, 10% cancelled */

typedef struct heap_item {
    int64_t when;
    int64_t fired_at;
    int idx;
    int fired;
} heap_item;

typedef struct heap_log {
    int *order;
    int n;
} heap_log;

static heap_log heap_fired;

static void heap_cb(void *arg)
{
    heap_item *it = arg;
    it->fired++;
    it->fired_at = gh_now();
    heap_fired.order[heap_fired.n++] = it->idx;
}

static uint64_t rng_state = 0x853c49e6748fea9bull;

static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static void test_timer_heap_cancel_random(void **state)
{
    (void)state;
    enum { N = 100000, CANCEL = 10000 };
    heap_item *items = calloc(N, sizeof *items);
    gh_timer **handles = calloc(N, sizeof *handles);
    int *perm = calloc(N, sizeof *perm);
    char *cancelled = calloc(N, 1);
    heap_fired.order = calloc(N, sizeof *heap_fired.order);
    heap_fired.n = 0;
    assert_non_null(items);
    assert_non_null(handles);
    assert_non_null(perm);
    assert_non_null(cancelled);
    assert_non_null(heap_fired.order);

    int64_t base = gh_now() + 20 * GH_MSEC;
    for (int i = 0; i < N; i++) {
        /* 200 distinct deadlines over 200 ms: many ties, which must stay FIFO. */
        items[i].when = base + (int64_t)(rng() % 200) * GH_MSEC;
        items[i].idx = i;
        handles[i] = gh_call_at(items[i].when, heap_cb, &items[i]);
        assert_non_null(handles[i]);
        perm[i] = i;
    }
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(rng() % (uint32_t)(i + 1));
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (int k = 0; k < CANCEL; k++) {
        int i = perm[k];
        assert_int_equal(gh_timer_cancel(handles[i]), 0);
        handles[i] = NULL;
        cancelled[i] = 1;
    }
    gh_hub_stats st;
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.timers_pending, N - CANCEL);

    assert_int_equal(gh_hub_run(), 0);
    assert_int_equal(heap_fired.n, N - CANCEL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(items[i].fired, cancelled[i] ? 0 : 1);
        if (!cancelled[i])
            assert_true(items[i].fired_at >= items[i].when);
    }
    for (int k = 1; k < heap_fired.n; k++) {
        const heap_item *a = &items[heap_fired.order[k - 1]];
        const heap_item *b = &items[heap_fired.order[k]];
        assert_true(a->when < b->when || (a->when == b->when && a->idx < b->idx));
    }
    assert_int_equal(gh_hub_get_stats(gh_get_hub(), &st), 0);
    assert_int_equal(st.timers_pending, 0);
    for (int i = 0; i < N; i++)
        if (handles[i])
            assert_int_equal(gh_timer_cancel(handles[i]), -ENOENT);

    free(items);
    free(handles);
    free(perm);
    free(cancelled);
    free(heap_fired.order);
    HUB_CLOSES_CLEAN();
}

/*
 * Handles of fired timers outlive their hub: after gh_hub_close, cancel
 * says -ENOENT and frees the timer, release frees it (LeakSanitizer checks
 * that nothing is left).
 */
static void test_timer_handles_after_hub_close(void **state)
{
    int counter = 0;
    shot a = {.counter = &counter}, b = {.counter = &counter};
    gh_timer *ta = gh_call_after(GH_MSEC, shot_cb, &a);
    gh_timer *tb = gh_call_after(GH_MSEC, shot_cb, &b);
    assert_non_null(ta);
    assert_non_null(tb);
    assert_int_equal(gh_sleep(5 * GH_MSEC), 0);
    assert_int_equal(counter, 2);
    assert_int_equal(gh_hub_close(), 0);
    assert_int_equal(gh_timer_cancel(ta), -ENOENT);
    gh_timer_release(tb);
    HUB_CLOSES_CLEAN();
}

/* ------------------------------------------- unref, again, break */

/* An unref'd repeating timer keeps firing but does not keep gh_hub_run going. */
static void test_timer_unref(void **state)
{
    int ticks = 0, once = 0;
    gh_timer *rep = gh_call_repeatedly(5 * GH_MSEC, count_cb, &ticks);
    assert_non_null(rep);
    gh_timer_unref(rep);
    gh_timer_unref(rep); /* twice is once */
    gh_timer *shot = gh_call_after(40 * GH_MSEC, count_cb, &once);
    assert_non_null(shot);
    int64_t t0 = gh_now();
    assert_int_equal(gh_hub_run(), 0); /* ends when the referenced one-shot has fired */
    int64_t took = gh_now() - t0;
    assert_int_equal(once, 1);
    assert_true(took >= 40 * GH_MSEC && took < 2 * GH_SEC);
    assert_true(ticks >= 1); /* unref'd, it still fired meanwhile (a loaded box skips ticks) */
    assert_int_equal(gh_hub_run(), 0); /* only the unref'd timer is left: nothing to run for */
    assert_int_equal(gh_timer_cancel(rep), 0); /* still pending: the handle works as before */
    assert_int_equal(gh_timer_cancel(shot), -ENOENT);
    HUB_CLOSES_CLEAN();
}

typedef struct again_probe {
    int64_t fired_at;
    int fires;
} again_probe;

static void again_cb(void *arg)
{
    again_probe *p = arg;
    p->fired_at = gh_now();
    p->fires++;
}

/* Sleep in small steps until *count reaches @want (5 s at most); returns it. */
static int wait_fires(const int *count, int want)
{
    int64_t end = gh_now() + 5 * GH_SEC;
    while (*count < want && gh_now() < end)
        gh_sleep(GH_MSEC);
    return *count;
}

/*
 * gh_timer_again restarts a one-shot (pending or fired) and a repeating
 * timer from now. Checked on when each fires, never on how long a sleep
 * took: timers never fire early, so a fire at >= restart + delay shows the
 * restart took (the original deadline was earlier), however loaded the box.
 */
static void test_timer_again(void **state)
{
    again_probe p = {0};
    int64_t t0 = gh_now();
    gh_timer *t = gh_call_after(300 * GH_MSEC, again_cb, &p);
    assert_non_null(t);
    assert_int_equal(gh_sleep(20 * GH_MSEC), 0);
    int64_t restarted = gh_now();
    assert_int_equal(p.fires, 0);
    assert_int_equal(gh_timer_again(t), 0); /* pushed back: 300 ms from now */
    assert_int_equal(wait_fires(&p.fires, 1), 1);
    assert_true(p.fired_at - restarted >= 300 * GH_MSEC);
    assert_true(p.fired_at - t0 >= 320 * GH_MSEC); /* not at the first deadline, t0 + 300 ms */
    /* Fired: again arms it once more. */
    restarted = gh_now();
    int before = p.fires;
    assert_int_equal(gh_timer_again(t), 0);
    assert_int_equal(wait_fires(&p.fires, before + 1), before + 1);
    assert_true(p.fired_at - restarted >= 300 * GH_MSEC);
    assert_int_equal(gh_timer_cancel(t), -ENOENT);

    /* A repeating timer's phase restarts from now: its next fire is a whole period away. */
    again_probe r = {0};
    gh_timer *rep = gh_call_repeatedly(50 * GH_MSEC, again_cb, &r);
    assert_non_null(rep);
    assert_int_equal(gh_sleep(30 * GH_MSEC), 0);
    restarted = gh_now();
    before = r.fires;
    assert_int_equal(gh_timer_again(rep), 0);
    assert_int_equal(wait_fires(&r.fires, before + 1), before + 1);
    assert_true(r.fired_at - restarted >= 50 * GH_MSEC);
    assert_int_equal(gh_timer_cancel(rep), 0);
    assert_int_equal(gh_timer_again(NULL), -EINVAL);
    HUB_CLOSES_CLEAN();
}

static void sleep_long(void *arg)
{
    *(int *)arg = gh_sleep(10 * GH_SEC);
}

static void *break_later(void *arg)
{
    struct timespec ts = {0, 50 * 1000000};
    nanosleep(&ts, NULL);
    gh_hub_break(arg);
    return NULL;
}

static void break_from_task(void *arg)
{
    gh_sleep(20 * GH_MSEC);
    gh_hub_break(arg);
}

/* gh_hub_break ends gh_hub_run with -EINTR: from another thread, from a task, or ahead of it. */
static void test_timer_hub_break(void **state)
{
    int slept = 1;
    gh_task *t = gh_spawn(sleep_long, &slept);
    assert_non_null(t);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, break_later, gh_get_hub()), 0);
    int64_t t0 = gh_now();
    assert_int_equal(gh_hub_run(), -EINTR);
    assert_true(gh_now() - t0 < 2 * GH_SEC);
    pthread_join(th, NULL);
    gh_spawn_n(break_from_task, gh_get_hub());
    assert_int_equal(gh_hub_run(), -EINTR);
    assert_int_equal(gh_hub_break(gh_get_hub()), 0);
    assert_int_equal(gh_hub_run(), -EINTR); /* a break before the run ends it at once */
    assert_int_equal(gh_hub_break(NULL), -EINVAL);
    assert_int_equal(slept, 1); /* the task was left as it was */
    assert_int_equal(gh_kill(t), 0);
    assert_int_equal(gh_join(t, GH_FOREVER), 0);
    assert_int_equal(slept, -ECANCELED);
    gh_task_release(t);
    HUB_CLOSES_CLEAN();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timer_backend_is_the_one_asked_for),
        cmocka_unit_test(test_timer_not_early),
        cmocka_unit_test(test_timer_equal_deadlines_fifo),
        cmocka_unit_test(test_timer_repeating_keeps_phase_skips_missed),
        cmocka_unit_test(test_timer_cancel),
        cmocka_unit_test(test_timer_heap_cancel_random),
        cmocka_unit_test(test_timer_handles_after_hub_close),
        cmocka_unit_test(test_timer_unref),
        cmocka_unit_test(test_timer_again),
        cmocka_unit_test(test_timer_hub_break),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
