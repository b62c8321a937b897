/* assert.c — what GH_ASSERT does when an invariant breaks. */
#include "sched/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void gh__assert_fail(const char *what, const char *file, int line)
{
    fprintf(stderr, "greenhub: internal error: %s (%s:%d)\n", what, file, line);
    abort();
}
