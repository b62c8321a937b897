/*
 * handoff.c — //bench:handoff: cross-thread handoff into a hub (issue 3).
 *
 *   throughput   plain producer threads call gh_spawn_on(hub, fn, arg) with
 *                a trivial fn onto one runtime hub, 1 -> 1 and 2 -> 1;
 *                handoffs per second, counted when the last fn has run;
 *   wake-up      a sleeping hub: the producer reads gh_now(), hands off a
 *                task that records gh_now() - t0, then waits ~1 ms so the
 *                hub is asleep again; p50 / p99 of 10,000 samples.
 *
 * References, same shapes, same run: a mutex + condition-variable queue
 * feeding a plain consumer thread, in two builds (see below): the textbook
 * list with a malloc'd node per item, and a preallocated ring. The
 * greenhub side does more per item: every handoff becomes a green task
 * with its own stack, run and reclaimed; a reference item is only a call.
 *
 * Targets: throughput >= 2x the reference; per item, a handoff that
 * becomes a full task <= 2x the ring's bare call; 2 -> 1 no slower than
 * 1 -> 1; p50 wake-up no worse than the reference.
 *
 *   ./bazelw run //bench:handoff
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>

#include "bench/bench.h"
#include "greenhub.h"

#ifndef TP_TOTAL
#define TP_TOTAL 1000000 /* handoffs per throughput run, split among the producers */
#endif
#ifndef TP_REPS
#define TP_REPS 5
#endif
#ifndef LAT_SAMPLES
#define LAT_SAMPLES 10000
#endif
#define LAT_GAP_NS 1000000 /* ~1 ms between samples: the consumer is asleep each time */

/* ------------------------------------------------- completion counting */

/* Written by the one consumer thread only; read by nobody until done is posted. */
static long tp_count, tp_total;
static int64_t tp_end;
static sem_t tp_done;

static void tp_fn(void *arg)
{
    (void)arg;
    if (++tp_count == tp_total) {
        tp_end = gh_now();
        sem_post(&tp_done);
    }
}

/* ------------------------------------------------ the reference queues */

/*
 * Two builds of the same mutex + condition-variable queue feeding a plain
 * consumer thread, which pops one item per lock and calls fn(arg); a
 * producer signals only when the consumer waits. They differ in where an
 * item lives:
 *   list  the textbook work queue: each item a malloc'd node, freed by the
 *         consumer (what most C thread pools do);
 *   ring  a preallocated ring large enough never to fill (no allocation
 *         at all: the strongest form of the reference).
 */
typedef struct ref_node {
    struct ref_node *next;
    void (*fn)(void *);
    void *arg;
} ref_node;

#define REF_CAP (1u << 21) /* ring slots, > TP_TOTAL: producers never wait for room */

typedef struct ref_queue {
    const char *name;
    bool ring_mode;
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    ref_node *ring;         /* ring mode: slots (next unused) */
    uint64_t head, tail;    /* ring mode: pop at head, push at tail */
    ref_node *first, *last; /* list mode */
    bool consumer_waiting;
    bool stop;
    pthread_t thread;
} ref_queue;

static void ref_push(ref_queue *q, void (*fn)(void *), void *arg)
{
    ref_node *n = NULL;
    if (!q->ring_mode) {
        n = malloc(sizeof *n);
        BENCH_CHECK(n, "malloc");
        n->next = NULL;
        n->fn = fn;
        n->arg = arg;
    }
    pthread_mutex_lock(&q->lock);
    if (q->ring_mode) {
        BENCH_CHECK(q->tail - q->head < REF_CAP, "reference ring full");
        ref_node *slot = &q->ring[q->tail++ & (REF_CAP - 1)];
        slot->fn = fn;
        slot->arg = arg;
    } else {
        if (q->last)
            q->last->next = n;
        else
            q->first = n;
        q->last = n;
    }
    if (q->consumer_waiting)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

static bool ref_empty(const ref_queue *q)
{
    return q->ring_mode ? q->head == q->tail : q->first == NULL;
}

static void *ref_consumer(void *arg)
{
    ref_queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (ref_empty(q) && !q->stop) {
            q->consumer_waiting = true;
            pthread_cond_wait(&q->not_empty, &q->lock);
            q->consumer_waiting = false;
        }
        if (ref_empty(q)) {
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        if (q->ring_mode) {
            ref_node it = q->ring[q->head++ & (REF_CAP - 1)];
            pthread_mutex_unlock(&q->lock);
            it.fn(it.arg);
        } else {
            ref_node *n = q->first;
            q->first = n->next;
            if (!q->first)
                q->last = NULL;
            pthread_mutex_unlock(&q->lock);
            n->fn(n->arg);
            free(n);
        }
    }
}

static void ref_start(ref_queue *q, const char *name, bool ring_mode)
{
    memset(q, 0, sizeof *q);
    q->name = name;
    q->ring_mode = ring_mode;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    if (ring_mode) {
        q->ring = malloc(REF_CAP * sizeof *q->ring);
        BENCH_CHECK(q->ring, "malloc");
        memset(q->ring, 0, REF_CAP * sizeof *q->ring); /* no page faults in the timing */
    }
    BENCH_CHECK(pthread_create(&q->thread, NULL, ref_consumer, q) == 0, "pthread_create");
}

static void ref_stop(ref_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    free(q->ring);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->lock);
}

/* ---------------------------------------------------------- throughput */

typedef struct producer {
    pthread_t thread;
    pthread_barrier_t *go;
    gh_hub *hub; /* greenhub target, or NULL for the reference */
    ref_queue *ref;
    long n;
    int64_t start;
} producer;

static void *producer_main(void *arg)
{
    producer *p = arg;
    pthread_barrier_wait(p->go);
    p->start = gh_now();
    if (p->hub) {
        for (long i = 0; i < p->n; i++) {
            int err = gh_spawn_on(p->hub, tp_fn, NULL);
            BENCH_CHECK(err == 0, "gh_spawn_on: %s", gh_strerror(err));
        }
    } else {
        for (long i = 0; i < p->n; i++)
            ref_push(p->ref, tp_fn, NULL);
    }
    return NULL;
}

/* Handoffs per second with @nprod producers into @hub (or @ref). */
static double run_throughput(int nprod, gh_hub *hub, ref_queue *ref)
{
    producer prods[2];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)nprod);
    tp_count = 0;
    tp_total = TP_TOTAL;
    for (int i = 0; i < nprod; i++) {
        prods[i] = (producer){.go = &go, .hub = hub, .ref = ref, .n = TP_TOTAL / nprod};
        BENCH_CHECK(pthread_create(&prods[i].thread, NULL, producer_main, &prods[i]) == 0,
                    "pthread_create");
    }
    for (int i = 0; i < nprod; i++)
        pthread_join(prods[i].thread, NULL);
    while (sem_wait(&tp_done) != 0)
        ;
    int64_t start = prods[0].start;
    for (int i = 1; i < nprod; i++)
        if (prods[i].start < start)
            start = prods[i].start;
    pthread_barrier_destroy(&go);
    return (double)TP_TOTAL * 1e9 / (double)(tp_end - start);
}

/* ------------------------------------------------------------- latency */

typedef struct lat_sample {
    int64_t t0;
    int64_t lat;
    atomic_bool done;
} lat_sample;

static void lat_fn(void *arg)
{
    lat_sample *s = arg;
    s->lat = gh_now() - s->t0;
    atomic_store_explicit(&s->done, true, memory_order_release);
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Wait for a sample, leaving the consumer time to fall asleep again. */
static void lat_wait(lat_sample *s)
{
    sleep_ns(LAT_GAP_NS);
    while (!atomic_load_explicit(&s->done, memory_order_acquire))
        sleep_ns(100000);
}

static void lat_stats(lat_sample *s, int n, double *p50, double *p99)
{
    int64_t *v = malloc((size_t)n * sizeof *v);
    BENCH_CHECK(v, "malloc");
    for (int i = 0; i < n; i++)
        v[i] = s[i].lat;
    qsort(v, (size_t)n, sizeof *v, bench_cmp_i64);
    *p50 = (double)bench_pct_sorted(v, (size_t)n, 50) / 1e3;
    *p99 = (double)bench_pct_sorted(v, (size_t)n, 99) / 1e3;
    free(v);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    int64_t begin = gh_now();
    gh_runtime *rt;
    gh_runtime_config cfg = {.threads = 1};
    int err = gh_runtime_start(&rt, &cfg);
    BENCH_CHECK(err == 0, "gh_runtime_start: %s", gh_strerror(err));
    gh_hub *hub = gh_runtime_hub(rt, 0);
    ref_queue refs[2];
    ref_start(&refs[0], "mutex+condvar list -> thread", false);
    ref_start(&refs[1], "mutex+condvar ring -> thread", true);
    sem_init(&tp_done, 0, 0);
    printf("greenhub //bench:handoff  (runtime hub on %s; throughput: median of %d runs of %d "
           "handoffs;\n  latency: %d greenhub samples ~1 ms apart, %d of each reference; all take "
           "turns, so drift hits all alike)\n",
           gh_hub_backend(hub), TP_REPS, TP_TOTAL, LAT_SAMPLES, LAT_SAMPLES / 2);

    static double tp[2][3][TP_REPS]; /* [shape][greenhub, list, ring][rep] */
    for (int r = 0; r < TP_REPS; r++)
        for (int shape = 0; shape < 2; shape++) {
            tp[shape][0][r] = run_throughput(shape + 1, hub, NULL);
            tp[shape][1][r] = run_throughput(shape + 1, NULL, &refs[0]);
            tp[shape][2][r] = run_throughput(shape + 1, NULL, &refs[1]);
        }

    /*
     * Wake-up latency: a greenhub sample, then one of a reference (list and
     * ring by turns: their wake-up is the same condition variable), and so on.
     */
    lat_sample *lat[3];
    for (int k = 0; k < 3; k++) {
        lat[k] = calloc(LAT_SAMPLES, sizeof *lat[k]);
        BENCH_CHECK(lat[k], "calloc");
    }
    for (int i = 0; i < LAT_SAMPLES; i++) {
        lat[0][i].t0 = gh_now();
        err = gh_spawn_on(hub, lat_fn, &lat[0][i]);
        BENCH_CHECK(err == 0, "gh_spawn_on: %s", gh_strerror(err));
        lat_wait(&lat[0][i]);
        lat_sample *r = &lat[1 + i % 2][i / 2];
        r->t0 = gh_now();
        ref_push(&refs[i % 2], lat_fn, r);
        lat_wait(r);
    }
    double p50[3], p99[3];
    lat_stats(lat[0], LAT_SAMPLES, &p50[0], &p99[0]);
    for (int k = 1; k < 3; k++)
        lat_stats(lat[k], LAT_SAMPLES / 2, &p50[k], &p99[k]);

    gh_hub_stats st;
    gh_hub_get_stats(hub, &st);
    err = gh_runtime_stop(rt, GH_SEC);
    BENCH_CHECK(err == 0, "gh_runtime_stop: %s", gh_strerror(err));
    gh_runtime_destroy(rt);
    for (int k = 0; k < 2; k++)
        ref_stop(&refs[k]);

    bench_table_header("handoff: gh_spawn_on into a runtime hub");
    for (int shape = 0; shape < 2; shape++) {
        double g = bench_median(tp[shape][0], TP_REPS);
        for (int k = 0; k < 2; k++) {
            double f = bench_median(tp[shape][k + 1], TP_REPS);
            bench_row(
                shape == 0 ? "throughput, 1 producer -> 1 hub" : "throughput, 2 producers -> 1 hub",
                g, "/s", refs[k].name, f, "/s", g / f, ">= 2.00x", g / f >= 2.0 ? "ok" : "MISS");
        }
    }
    /*
     * Per item: a handoff that becomes a full task against the bare ring's
     * call (<= 2x), and two producers against one (no slower).
     */
    for (int shape = 0; shape < 2; shape++) {
        double g_ns = 1e9 / bench_median(tp[shape][0], TP_REPS);
        double r_ns = 1e9 / bench_median(tp[shape][2], TP_REPS);
        bench_row(shape == 0 ? "ns per handoff, 1 -> 1 (a full task)"
                             : "ns per handoff, 2 -> 1 (a full task)",
                  g_ns, "ns", "ring: ns per item", r_ns, "ns", g_ns / r_ns, "<= 2.00x",
                  g_ns / r_ns <= 2.0 ? "ok" : "MISS");
    }
    double g1 = bench_median(tp[0][0], TP_REPS), g2 = bench_median(tp[1][0], TP_REPS);
    bench_row("throughput, 2 producers -> 1 hub", g2, "/s", "greenhub 1 producer -> 1 hub", g1,
              "/s", g2 / g1, ">= 1.00x", g2 >= g1 ? "ok" : "MISS");
    for (int k = 0; k < 2; k++)
        bench_row("wake-up latency of a sleeping hub, p50", p50[0], "us", refs[k].name, p50[k + 1],
                  "us", p50[0] / p50[k + 1], "<= 1.00x", p50[0] <= p50[k + 1] ? "ok" : "MISS");
    for (int k = 0; k < 2; k++)
        bench_row("wake-up latency of a sleeping hub, p99", p99[0], "us", refs[k].name, p99[k + 1],
                  "us", p99[0] / p99[k + 1], "", "");
    printf("\nratio = greenhub / reference (throughput: higher is better; latency: lower is "
           "better).\nEach greenhub handoff becomes a green task (a task struct, a stack, a "
           "context); a reference item is a call.\nhub counters: %llu handoffs in, %llu "
           "wakeup-fd writes, %llu loop iterations.\n",
           (unsigned long long)st.handoffs_in, (unsigned long long)st.wakeups_written,
           (unsigned long long)st.loop_iterations);

    for (int k = 0; k < 3; k++)
        free(lat[k]);
    sem_destroy(&tp_done);
    err = gh_hub_close(); /* this thread never made a hub: nothing to free */
    BENCH_CHECK(err == 0, "gh_hub_close: %s", gh_strerror(err));
    printf("done in %.1f s\n", (double)(gh_now() - begin) / 1e9);
    return 0;
}
