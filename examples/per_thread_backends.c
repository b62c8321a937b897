/*
 * per_thread_backends.c — six threads, six backends, one program.
 *
 * A runtime of six hubs, each on a different backend (epoll, poll, select,
 * io_uring, libev, libevent; a backend the kernel refuses is replaced by
 * poll, and said so). A baton task travels hub to hub with gh_spawn_on,
 * three laps; on every hop it does real work on that hub's backend (a green
 * read on a pipe that a sibling task fills after a short sleep) and prints
 * which hub, thread and backend ran it. Each hub then asks its neighbour for
 * its backend's name with gh_call_on. The last hop sets a gh_xevent the main
 * thread waits on; then the runtime stops and each hub's counters are printed.
 *
 *   ./per_thread_backends          (ends by itself, exit status 0 on success)
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "greenhub.h"

#define NHUBS 6
#define LAPS  3

static const char *const wanted[NHUBS] = {"epoll",    "poll",  "select",
                                          "io_uring", "libev", "libevent"};
static gh_hub *hubs[NHUBS];
static gh_xevent finished;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int hub_index(const gh_hub *h)
{
    for (int i = 0; i < NHUBS; i++)
        if (hubs[i] == h)
            return i;
    return -1;
}

/* The sibling: sleeps a moment (a timer), then writes one byte (an fd event on the reader). */
static void pipe_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    gh_sleep(GH_MSEC);
    gh_write_all(fd, "!", 1, GH_SEC);
}

typedef struct baton {
    int hop;
    int errors;
} baton;

static void baton_task(void *arg)
{
    baton *b = arg;
    gh_hub *me = gh_get_hub();
    int idx = hub_index(me);
    char thread[16] = "?";
    pthread_getname_np(pthread_self(), thread, sizeof thread);

    /* Real work on this hub's backend: wait green for a pipe to become readable. */
    int p[2];
    char c = 0;
    int ok = pipe(p) == 0;
    if (ok) {
        ok = gh_spawn_n(pipe_writer, (void *)(intptr_t)p[1]) == 0 &&
             gh_read(p[0], &c, 1, 5 * GH_SEC) == 1 && c == '!';
        gh_close(p[0]);
        gh_close(p[1]);
    }
    if (!ok || idx != b->hop % NHUBS)
        b->errors++;

    pthread_mutex_lock(&out_lock);
    printf("hop %2d: hub %d  thread %-11s  backend %-8s  pipe read %s\n", b->hop, idx, thread,
           gh_hub_backend(me), ok ? "ok" : "FAILED");
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);

    b->hop++;
    if (b->hop == LAPS * NHUBS) {
        gh_xevent_set(&finished, b);
        return;
    }
    int err = gh_spawn_on(hubs[b->hop % NHUBS], baton_task, b);
    if (err) {
        fprintf(stderr, "gh_spawn_on: %s\n", gh_strerror(err));
        b->errors++;
        gh_xevent_set(&finished, b);
    }
}

static void *backend_name_here(void *arg)
{
    (void)arg;
    return (void *)gh_hub_backend(gh_get_hub());
}

/* On hub i: ask hub i+1 what it runs on; the caller waits green. */
static void *ask_neighbour(void *arg)
{
    int i = (int)(intptr_t)arg;
    void *name = NULL;
    int err = gh_call_on(hubs[(i + 1) % NHUBS], backend_name_here, NULL, &name, 5 * GH_SEC);
    return err ? NULL : name;
}

/* Is @name usable here? (io_uring can be refused by the kernel or a seccomp filter.) */
static int backend_works(const char *name)
{
    int err = gh_use_hub(name);
    if (err == 0)
        gh_hub_close();
    return err;
}

int main(int argc, char **argv)
{
    int rc = ex_args_parse(
        argc, argv, "One hub per thread, each on another backend, handing work to each other.",
        NULL, 0);
    if (rc >= 0)
        return rc; /* no options: --help, or a mistake */
    const char *backends[NHUBS];
    for (int i = 0; i < NHUBS; i++) {
        int err = backend_works(wanted[i]);
        backends[i] = err ? "poll" : wanted[i];
        if (err)
            printf("note: backend %s refused here (%s); thread %d uses poll\n", wanted[i],
                   gh_strerror(err), i);
    }
    gh_hub_close(); /* gh_use_hub made this thread a hub; the runtime does not need it */

    gh_runtime *rt = NULL;
    gh_runtime_config cfg = {.threads = NHUBS, .backends = backends};
    int err = gh_runtime_start(&rt, &cfg);
    if (err) {
        fprintf(stderr, "gh_runtime_start: %s\n", gh_strerror(err));
        return 1;
    }
    for (int i = 0; i < NHUBS; i++) {
        hubs[i] = gh_runtime_hub(rt, i);
        printf("hub %d: thread greenhub-%d, backend %s\n", i, i, gh_hub_backend(hubs[i]));
    }

    gh_xevent_init(&finished);
    baton b = {0};
    int failed = 0;
    if (gh_spawn_on(hubs[0], baton_task, &b) != 0 ||
        gh_xevent_wait(&finished, NULL, 30 * GH_SEC) != 0) {
        fprintf(stderr, "the baton did not come back\n");
        failed = 1;
    }

    /* Each hub asks its neighbour (hub to hub gh_call_on); this thread asks hub i. */
    for (int i = 0; i < NHUBS && !failed; i++) {
        void *name = NULL;
        err = gh_call_on(hubs[i], ask_neighbour, (void *)(intptr_t)i, &name, 10 * GH_SEC);
        const char *want = gh_hub_backend(hubs[(i + 1) % NHUBS]);
        printf("hub %d asked hub %d: \"%s\"\n", i, (i + 1) % NHUBS, name ? (char *)name : "?");
        if (err || !name || strcmp(name, want) != 0)
            failed = 1;
    }

    err = gh_runtime_stop(rt, 5 * GH_SEC);
    printf("%-4s %-9s %8s %9s %12s %8s\n", "hub", "backend", "tasks", "switches", "handoffs_in",
           "wakeups");
    for (int i = 0; i < NHUBS; i++) {
        gh_hub_stats st;
        gh_hub_get_stats(hubs[i], &st);
        printf("%-4d %-9s %8llu %9llu %12llu %8llu\n", i, st.backend,
               (unsigned long long)st.tasks_spawned, (unsigned long long)st.switches,
               (unsigned long long)st.handoffs_in, (unsigned long long)st.wakeups_written);
    }
    gh_runtime_destroy(rt);
    gh_xevent_destroy(&finished);
    if (failed || err || b.errors || b.hop != LAPS * NHUBS) {
        printf("FAILED (%d errors, %d hops)\n", b.errors, b.hop);
        return 1;
    }
    printf("done: %d hops over %d backends, every one ran where it was sent\n", b.hop, NHUBS);
    return 0;
}
