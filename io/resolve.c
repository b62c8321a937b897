/*
 * resolve.c — getaddrinfo on helper threads, so a hub thread never blocks in
 * the resolver (DNS, NSS modules, /etc/hosts reads).
 *
 * A small process-wide pool: threads are made when a lookup finds none idle
 * (at most RESOLVE_MAX_THREADS) and leave after RESOLVE_IDLE_NS without
 * work, so an idle process keeps none. Each lookup is a heap record shared by
 * the caller and the worker, with a reference count of two: whoever drops
 * the last reference frees the record and any result still in it. A caller
 * that times out (or is killed) just drops its reference and marks the
 * record abandoned, so a worker that has not started on it yet skips the
 * lookup, and one that has finished it frees the addrinfo list itself.
 *
 * The caller waits on a gh_xevent: green from a task, blocking from a plain
 * thread, in both cases with the call's timeout.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "hub/hub.h"
#include "io/resolve.h"

#define RESOLVE_MAX_THREADS 4
#define RESOLVE_IDLE_NS     (5 * GH_SEC)

typedef struct resolve_req {
    struct resolve_req *next; /* queue link */
    atomic_int refs;          /* caller + worker; the last one frees */
    atomic_bool abandoned;    /* the caller stopped waiting */
    char *host, *service;     /* private copies (the caller may return first) */
    struct addrinfo hints;
    bool has_hints;
    int rc;                  /* getaddrinfo's return value */
    int sys_errno;           /* errno, for EAI_SYSTEM */
    struct addrinfo *result; /* owned by the record until the caller takes it */
    gh_xevent done;
} resolve_req;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    resolve_req *head, *tail;
    int queued;  /* records in the queue */
    int threads; /* alive */
    int idle;    /* waiting for work */
} resolve_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0};

/* Tests replace this to make a lookup slow or fail on purpose. */
gh__getaddrinfo_fn gh__resolve_getaddrinfo = getaddrinfo;

static void resolve_req_unref(resolve_req *q)
{
    if (atomic_fetch_sub_explicit(&q->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (q->result)
        freeaddrinfo(q->result);
    gh_xevent_destroy(&q->done);
    free(q->host);
    free(q->service);
    free(q);
}

static void resolve_run(resolve_req *q)
{
    if (!atomic_load_explicit(&q->abandoned, memory_order_acquire)) {
        struct addrinfo *res = NULL;
        int rc =
            gh__resolve_getaddrinfo(q->host, q->service, q->has_hints ? &q->hints : NULL, &res);
        q->sys_errno = rc == EAI_SYSTEM ? errno : 0;
        q->rc = rc;
        q->result = rc == 0 ? res : NULL;
    } else {
        q->rc = EAI_AGAIN;
    }
    /* The xevent's lock orders these stores before the caller's reads. */
    gh_xevent_set(&q->done, q);
    resolve_req_unref(q);
}

static void *resolve_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&resolve_pool.lock);
    for (;;) {
        resolve_req *q = resolve_pool.head;
        if (q) {
            resolve_pool.head = q->next;
            if (!resolve_pool.head)
                resolve_pool.tail = NULL;
            resolve_pool.queued--;
            pthread_mutex_unlock(&resolve_pool.lock);
            resolve_run(q);
            pthread_mutex_lock(&resolve_pool.lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t until = (int64_t)ts.tv_sec * GH_SEC + ts.tv_nsec + RESOLVE_IDLE_NS;
        ts.tv_sec = until / GH_SEC;
        ts.tv_nsec = until % GH_SEC;
        resolve_pool.idle++;
        int r = 0;
        while (!resolve_pool.head && r != ETIMEDOUT)
            r = pthread_cond_timedwait(&resolve_pool.cond, &resolve_pool.lock, &ts);
        resolve_pool.idle--;
        if (!resolve_pool.head)
            break;
    }
    resolve_pool.threads--;
    pthread_mutex_unlock(&resolve_pool.lock);
    return NULL;
}

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void resolve_make_cond(void)
{
    /* The idle timeout is measured on the monotonic clock. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&resolve_pool.cond, &ca);
    pthread_condattr_destroy(&ca);
}

/*
 * In a forked child only the forking thread exists: the helpers are gone and
 * the lock may have been held by one of them. Start over with no threads;
 * lookups still queued get a helper with the next lookup.
 */
static void resolve_atfork_child(void)
{
    pthread_mutex_init(&resolve_pool.lock, NULL);
    resolve_make_cond();
    resolve_pool.threads = 0;
    resolve_pool.idle = 0;
}

static void resolve_init_cond(void)
{
    pthread_cond_destroy(&resolve_pool.cond);
    resolve_make_cond();
    gh__fork_child_add(resolve_atfork_child);
}

/* Queue @q (holding the worker's reference); start a thread if none is idle. */
static int resolve_submit(resolve_req *q)
{
    pthread_once(&resolve_once, resolve_init_cond);
    pthread_mutex_lock(&resolve_pool.lock);
    int err = 0;
    /*
     * One more thread unless an idle one is free for this record (idle
     * threads not yet woken for records queued before it do not count), so
     * a slow lookup does not hold up the next one while the pool can grow.
     */
    if (resolve_pool.queued >= resolve_pool.idle && resolve_pool.threads < RESOLVE_MAX_THREADS) {
        pthread_t tid;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        /* The resolver needs little stack, but NSS modules may want some. */
        pthread_attr_setstacksize(&attr, 256 * 1024);
        /* Block every signal in the helper: they belong to the application's threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int r = pthread_create(&tid, &attr, resolve_thread, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (r == 0)
            resolve_pool.threads++;
        else if (resolve_pool.threads == 0)
            err = -r; /* no thread will ever run it */
    }
    if (!err) {
        q->next = NULL;
        if (resolve_pool.tail)
            resolve_pool.tail->next = q;
        else
            resolve_pool.head = q;
        resolve_pool.tail = q;
        resolve_pool.queued++;
        pthread_cond_signal(&resolve_pool.cond);
    }
    pthread_mutex_unlock(&resolve_pool.lock);
    return err;
}

static int resolve_error(int rc, int sys_errno)
{
    switch (rc) {
    case 0:
        return 0;
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
    case EAI_FAIL:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_OVERFLOW:
        return -EOVERFLOW;
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_SYSTEM:
        return sys_errno ? -sys_errno : -EIO;
    default: /* EAI_BADFLAGS, EAI_FAMILY, EAI_SOCKTYPE */
        return -EINVAL;
    }
}

int gh_getaddrinfo(const char *host, const char *service, const struct addrinfo *hints,
                   struct addrinfo **res, int64_t timeout_ns)
{
    if (!res || (!host && !service) || timeout_ns < GH_FOREVER)
        return -EINVAL;
    *res = NULL;
    gh_hub *h;
    int err = gh__caller_can_block(&h);
    if (err)
        return err;
    /* A lookup always takes a thread hop: a zero budget cannot be met. */
    if (timeout_ns == 0)
        return -ETIMEDOUT;
    resolve_req *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    err = gh_xevent_init(&q->done);
    if (err) {
        free(q);
        return err;
    }
    atomic_init(&q->refs, 2);
    atomic_init(&q->abandoned, false);
    q->host = host ? strdup(host) : NULL;
    q->service = service ? strdup(service) : NULL;
    if ((host && !q->host) || (service && !q->service)) {
        err = -ENOMEM;
        goto fail;
    }
    if (hints) {
        /* Only the four input fields; the pointers in a hints struct must be NULL. */
        q->hints.ai_flags = hints->ai_flags;
        q->hints.ai_family = hints->ai_family;
        q->hints.ai_socktype = hints->ai_socktype;
        q->hints.ai_protocol = hints->ai_protocol;
        q->has_hints = true;
    }
    err = resolve_submit(q);
    if (err)
        goto fail;

    err = gh__xevent_wait(&q->done, NULL, timeout_ns, "resolver");
    if (err == 0) {
        err = resolve_error(q->rc, q->sys_errno);
        *res = q->result;
        q->result = NULL; /* the caller owns it now */
    } else {
        atomic_store_explicit(&q->abandoned, true, memory_order_release);
    }
    resolve_req_unref(q);
    return err;

fail:
    gh_xevent_destroy(&q->done);
    free(q->host);
    free(q->service);
    free(q);
    return err;
}
