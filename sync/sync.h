/*
 * sync.h — the sync layer's internal interface between its files: what
 * gh_wait_any (wait_any.c) needs of channels (chan.c).
 */
#ifndef GH_SYNC_SYNC_H
#define GH_SYNC_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "greenhub.h"

/* A receive on @c would not wait: an item, a waiting sender, or closed. Any thread. */
bool gh__chan_ready(gh_chan *c);
/* Wait until gh__chan_ready, consuming nothing: 0, -ETIMEDOUT, -ECANCELED, -EPERM. */
int gh__chan_wait_ready(gh_chan *c, int64_t timeout_ns);

#endif /* GH_SYNC_SYNC_H */
