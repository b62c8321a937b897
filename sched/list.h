/*
 * list.h — the one intrusive doubly-linked list of greenhub.
 *
 * An object joins a list through a gh__link embedded in it and is found back
 * from the link with GH__CONTAINER_OF, so push, pop and removal from the
 * middle (a timeout, a kill) are O(1) with no allocation. An object is in at
 * most one list per link, and a removed link reads NULL/NULL.
 *
 * The list head is the public header's gh_waiters: public structs (gh_event,
 * gh_sem, gh_queue) embed their waiter lists by value, so the head's layout
 * must be visible there. Any other list of links uses the same head type.
 */
#ifndef GH_SCHED_LIST_H
#define GH_SCHED_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "greenhub.h"

typedef struct gh__link {
    struct gh__link *prev, *next;
} gh__link;

/* head and tail are NULL when empty. */
typedef gh_waiters gh__list;

/* The @type whose @member is the link (or other field) at @ptr. */
#define GH__CONTAINER_OF(ptr, type, member)                                                        \
    ((type *)(void *)((char *)(ptr) - (offsetof(type, member))))

static inline void gh__list_init(gh__list *l)
{
    l->head = l->tail = NULL;
}

static inline bool gh__list_empty(const gh__list *l)
{
    return !l->head;
}

/* The oldest link of @l, or NULL. */
static inline gh__link *gh__list_first(const gh__list *l)
{
    return l->head;
}

static inline void gh__list_push_back(gh__list *l, gh__link *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
}

/* Take @n, which is in @l, out of it. */
static inline void gh__list_remove(gh__list *l, gh__link *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

/* Take the oldest link off @l, or NULL. */
static inline gh__link *gh__list_pop_front(gh__list *l)
{
    gh__link *n = l->head;
    if (n)
        gh__list_remove(l, n);
    return n;
}

#endif /* GH_SCHED_LIST_H */
