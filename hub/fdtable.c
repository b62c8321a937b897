/*
 * fdtable.c — what the whole process knows about an fd number, and the
 * registry of live hubs by id.
 *
 * An fd belongs to the process, not to a hub. Per fd number the table keeps
 * which hubs have it in their backend (a bit per hub id) and a generation
 * that every gh_close bumps, in the manner of Go's pollDesc sequence
 * numbers. A hub's own slot remembers the generation it cached its flags
 * under (O_NONBLOCK set, stream or not, drained), so a number closed on any
 * thread and reused is never served from the old file's state; and a close
 * reaches every hub whose backend watches the fd, through that hub's inbox,
 * before the number can be reused (hub/fd.c).
 *
 * The table is two-level, so a lookup never races a reallocation: a fixed
 * array of chunk pointers (address space only, untouched until used) and
 * chunks of 4096 entries made on first use, never freed.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>

#include "hub/hub.h"

#define FDT_CHUNK_BITS 12
#define FDT_CHUNK      (1u << FDT_CHUNK_BITS)
#define FDT_NCHUNKS    (((unsigned)INT_MAX >> FDT_CHUNK_BITS) + 1)

static _Atomic(gh__fdent *) fdt_chunks[FDT_NCHUNKS];

gh__fdent *gh__fdent_find(int fd)
{
    if (fd < 0)
        return NULL;
    gh__fdent *c =
        atomic_load_explicit(&fdt_chunks[(unsigned)fd >> FDT_CHUNK_BITS], memory_order_acquire);
    return c ? &c[(unsigned)fd & (FDT_CHUNK - 1)] : NULL;
}

gh__fdent *gh__fdent_make(int fd)
{
    gh__fdent *e = gh__fdent_find(fd);
    if (e || fd < 0)
        return e;
    gh__fdent *c = calloc(FDT_CHUNK, sizeof *c);
    if (!c)
        return NULL;
    gh__fdent *expect = NULL;
    _Atomic(gh__fdent *) *slot = &fdt_chunks[(unsigned)fd >> FDT_CHUNK_BITS];
    if (!atomic_compare_exchange_strong(slot, &expect, c)) {
        free(c); /* another thread made it first */
        c = expect;
    }
    return &c[(unsigned)fd & (FDT_CHUNK - 1)];
}

uint32_t gh__fd_gen(int fd)
{
    gh__fdent *e = gh__fdent_find(fd);
    return e ? atomic_load_explicit(&e->gen, memory_order_acquire) : 0;
}

/* ------------------------------------------------------- hubs by id */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static gh_hub **reg_hubs; /* by id; NULL where free */
static uint32_t reg_cap;

int gh__hub_register(gh_hub *h)
{
    pthread_mutex_lock(&reg_lock);
    uint32_t id = 0;
    while (id < reg_cap && reg_hubs[id])
        id++;
    if (id == reg_cap) {
        uint32_t cap = reg_cap ? reg_cap * 2 : 64;
        gh_hub **hubs = realloc(reg_hubs, cap * sizeof *hubs);
        if (!hubs) {
            pthread_mutex_unlock(&reg_lock);
            return -ENOMEM;
        }
        for (uint32_t i = reg_cap; i < cap; i++)
            hubs[i] = NULL;
        reg_hubs = hubs;
        reg_cap = cap;
    }
    reg_hubs[id] = h;
    h->id = id;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

void gh__hub_unregister(gh_hub *h)
{
    pthread_mutex_lock(&reg_lock);
    if (h->id < reg_cap && reg_hubs[h->id] == h)
        reg_hubs[h->id] = NULL;
    pthread_mutex_unlock(&reg_lock);
}

void gh__hubs_each(void (*fn)(gh_hub *h, void *arg), void *arg)
{
    pthread_mutex_lock(&reg_lock);
    for (uint32_t id = 0; id < reg_cap; id++)
        if (reg_hubs[id])
            fn(reg_hubs[id], arg);
    pthread_mutex_unlock(&reg_lock);
}

void gh__fdtable_after_fork(gh_hub *keep)
{
    /* Only the forking thread exists: no lock is held, no other hub runs. */
    pthread_mutex_init(&reg_lock, NULL);
    for (uint32_t id = 0; id < reg_cap; id++)
        if (reg_hubs[id] != keep)
            reg_hubs[id] = NULL;
    uint64_t keep_bits = keep ? gh__hub_bit(keep) : 0;
    for (unsigned c = 0; c < FDT_NCHUNKS; c++) {
        gh__fdent *chunk = atomic_load_explicit(&fdt_chunks[c], memory_order_relaxed);
        for (unsigned i = 0; chunk && i < FDT_CHUNK; i++)
            atomic_fetch_and(&chunk[i].hubs, keep_bits);
    }
}

int gh__hubs_call(uint64_t mask, const gh_hub *self, void (*call)(gh_hub *, void *), void *arg,
                  int (*count)(void *arg, int n))
{
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    /* Count first, so the receivers never see a short count. */
    for (uint32_t id = 0; id < reg_cap; id++) {
        gh_hub *h = reg_hubs[id];
        if (h && h != self && (mask & gh__hub_bit(h)))
            n++;
    }
    count(arg, n);
    for (uint32_t id = 0; id < reg_cap; id++) {
        gh_hub *h = reg_hubs[id];
        if (h && h != self && (mask & gh__hub_bit(h))) {
            int err = gh__post_call_msg(h, gh__msg_alloc_retry(), call, arg);
            GH_ASSERT(err == 0); /* a registered hub is not gone */
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return n;
}

int gh__hub_post_if_alive(gh_hub *h, void (*call)(gh_hub *, void *), void *arg)
{
    int err = -ESHUTDOWN;
    pthread_mutex_lock(&reg_lock);
    /* By address, never through @h: it may have been freed. */
    for (uint32_t id = 0; id < reg_cap; id++) {
        if (reg_hubs[id] == h) {
            gh__msg *m = gh__msg_alloc_retry();
            err = gh__post_call_msg(h, m, call, arg);
            if (err)
                gh__msg_free(m);
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return err;
}

bool gh__hub_alive(const gh_hub *h)
{
    bool alive = false;
    pthread_mutex_lock(&reg_lock);
    for (uint32_t id = 0; id < reg_cap; id++) {
        if (reg_hubs[id] == h) {
            /* Registered: not freed while we hold the lock, so safe to read. */
            alive = !gh__inbox_closed((gh__inbox *)&h->inbox);
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return alive;
}
