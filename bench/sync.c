/*
 * sync.c — //bench:sync: gh_chan throughput (issue 5).
 *
 *   hub -> hub       a producer task on runtime hub 0 sends N pointers into a
 *                    gh_chan, a consumer task on hub 1 receives them; items
 *                    per second, from the first send to the last receive;
 *   thread -> hub    a plain producer thread, a consumer task on a hub;
 *   thread -> thread two plain threads through the same kind of channel.
 *
 * Reference, same run, same capacity: a textbook bounded queue between two
 * plain threads — a ring under one mutex, with "not empty" and "not full"
 * condition variables signalled only when the other side waits.
 *
 * Each figure is the median of REPS runs. Target: gh_chan across hubs at
 * least 0.5x the reference (it parks tasks and wakes them through the hubs'
 * handoff queues instead of futexes, and every receive also runs a MAINLOOP
 * step when the channel runs dry).
 *
 *   ./bazelw run //bench:sync
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "bench/bench.h"
#include "greenhub.h"

#ifndef CH_ITEMS
#define CH_ITEMS 1000000
#endif
#ifndef CH_CAP
#define CH_CAP 256
#endif
#ifndef REPS
#define REPS 5
#endif

/* ------------------------------------------------------ the reference */

typedef struct ref_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void *ring[CH_CAP];
    size_t head, len;
    int waiting_get, waiting_put;
} ref_queue;

static void ref_put(ref_queue *q, void *item)
{
    pthread_mutex_lock(&q->lock);
    while (q->len == CH_CAP) {
        q->waiting_put++;
        pthread_cond_wait(&q->not_full, &q->lock);
        q->waiting_put--;
    }
    q->ring[(q->head + q->len) % CH_CAP] = item;
    q->len++;
    if (q->waiting_get)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}

static void *ref_get(ref_queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->len == 0) {
        q->waiting_get++;
        pthread_cond_wait(&q->not_empty, &q->lock);
        q->waiting_get--;
    }
    void *item = q->ring[q->head];
    q->head = (q->head + 1) % CH_CAP;
    q->len--;
    if (q->waiting_put)
        pthread_cond_signal(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return item;
}

static void *ref_producer(void *arg)
{
    ref_queue *q = arg;
    for (intptr_t i = 1; i <= CH_ITEMS; i++)
        ref_put(q, (void *)i);
    return NULL;
}

static double ref_run(void)
{
    ref_queue q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.lock, NULL);
    pthread_cond_init(&q.not_empty, NULL);
    pthread_cond_init(&q.not_full, NULL);
    pthread_t th;
    int64_t t0 = bench_now();
    BENCH_CHECK(pthread_create(&th, NULL, ref_producer, &q) == 0, "pthread_create");
    intptr_t sum = 0;
    for (long i = 0; i < CH_ITEMS; i++)
        sum += (intptr_t)ref_get(&q);
    int64_t t1 = bench_now();
    pthread_join(th, NULL);
    BENCH_CHECK(sum == (intptr_t)CH_ITEMS * (CH_ITEMS + 1) / 2, "reference lost items");
    pthread_mutex_destroy(&q.lock);
    pthread_cond_destroy(&q.not_empty);
    pthread_cond_destroy(&q.not_full);
    return CH_ITEMS / ((double)(t1 - t0) / 1e9);
}

/* --------------------------------------------------------- gh_chan side */

typedef struct ch_run {
    gh_chan *c;
    int64_t t0, t1;
    intptr_t sum;
    sem_t done; /* posted by the consumer and by the producer */
} ch_run;

static void ch_produce(ch_run *r)
{
    for (intptr_t i = 1; i <= CH_ITEMS; i++)
        BENCH_CHECK(gh_chan_send(r->c, (void *)i, GH_FOREVER) == 0, "gh_chan_send");
    sem_post(&r->done);
}

static void ch_consume(ch_run *r)
{
    intptr_t sum = 0;
    for (long i = 0; i < CH_ITEMS; i++) {
        void *item;
        BENCH_CHECK(gh_chan_recv(r->c, &item, GH_FOREVER) == 0, "gh_chan_recv");
        sum += (intptr_t)item;
    }
    r->t1 = bench_now();
    r->sum = sum;
    sem_post(&r->done);
}

static void ch_produce_task(void *arg)
{
    ch_produce(arg);
}
static void ch_consume_task(void *arg)
{
    ch_consume(arg);
}
static void *ch_produce_thread(void *arg)
{
    ch_produce(arg);
    return NULL;
}
static void *ch_consume_thread(void *arg)
{
    ch_consume(arg);
    return NULL;
}

enum { SHAPE_HUB_HUB, SHAPE_THREAD_HUB, SHAPE_THREAD_THREAD };

static double ch_run_shape(gh_runtime *rt, int shape)
{
    ch_run r;
    memset(&r, 0, sizeof r);
    r.c = gh_chan_new(CH_CAP);
    BENCH_CHECK(r.c, "gh_chan_new");
    sem_init(&r.done, 0, 0);
    pthread_t prod, cons;
    r.t0 = bench_now();
    if (shape == SHAPE_THREAD_THREAD)
        BENCH_CHECK(pthread_create(&cons, NULL, ch_consume_thread, &r) == 0, "pthread_create");
    else
        BENCH_CHECK(gh_spawn_on(gh_runtime_hub(rt, 1), ch_consume_task, &r) == 0, "spawn_on");
    if (shape == SHAPE_HUB_HUB)
        BENCH_CHECK(gh_spawn_on(gh_runtime_hub(rt, 0), ch_produce_task, &r) == 0, "spawn_on");
    else
        BENCH_CHECK(pthread_create(&prod, NULL, ch_produce_thread, &r) == 0, "pthread_create");
    /* Both sides returned from their last call: nobody can use the channel now. */
    for (int side = 0; side < 2; side++)
        while (sem_wait(&r.done) != 0) {
        }
    if (shape != SHAPE_HUB_HUB)
        pthread_join(prod, NULL);
    if (shape == SHAPE_THREAD_THREAD)
        pthread_join(cons, NULL);
    BENCH_CHECK(r.sum == (intptr_t)CH_ITEMS * (CH_ITEMS + 1) / 2, "gh_chan lost items");
    BENCH_CHECK(gh_chan_free(r.c) == 0, "gh_chan_free");
    sem_destroy(&r.done);
    return CH_ITEMS / ((double)(r.t1 - r.t0) / 1e9);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = 2};
    BENCH_CHECK(gh_runtime_start(&rt, &cfg) == 0, "gh_runtime_start");

    static const char *const names[] = {
        "gh_chan, task on hub 0 -> task on hub 1",
        "gh_chan, plain thread -> task on hub 1",
        "gh_chan, plain thread -> plain thread",
    };
    double ref[REPS], ch[3][REPS];
    /* Interleave the sides so that machine noise hits them alike. */
    for (int rep = 0; rep < REPS; rep++) {
        ref[rep] = ref_run();
        for (int s = 0; s < 3; s++)
            ch[s][rep] = ch_run_shape(rt, s);
    }
    BENCH_CHECK(gh_runtime_stop(rt, 10 * GH_SEC) == 0, "gh_runtime_stop");
    gh_runtime_destroy(rt);

    char title[160];
    snprintf(title, sizeof title,
             "sync: gh_chan throughput, %d items, capacity %d, median of %d (higher is better)",
             CH_ITEMS, CH_CAP, REPS);
    bench_table_header(title);
    double r = bench_median(ref, REPS);
    for (int s = 0; s < 3; s++) {
        double v = bench_median(ch[s], REPS);
        double ratio = v / r;
        bench_row(names[s], v, "/s", "mutex+condvar queue, 2 threads", r, "/s", ratio,
                  s == SHAPE_HUB_HUB ? ">= 0.5x" : "",
                  s == SHAPE_HUB_HUB ? (ratio >= 0.5 ? "ok" : "MISS") : "");
    }
    return 0;
}
