/* hello.c — the smallest program on greenhub: two tasks taking turns. */
#include <stdio.h>

#include "greenhub.h"

static void worker(void *arg)
{
    for (int i = 0; i < 3; i++) {
        printf("%s %d\n", (const char *)arg, i);
        gh_yield();
    }
}

int main(void)
{
    gh_spawn_n(worker, "ping");
    gh_spawn_n(worker, "pong");
    int err = gh_hub_run();
    printf("greenhub %s on %s: %s\n", gh_version(), gh_hub_backend(gh_get_hub()),
           err ? gh_strerror(err) : "done");
    return err ? 1 : 0;
}
