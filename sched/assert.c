/* assert.c — what GH_ASSERT does when an invariant breaks. */
#include "sched/assert.h"

#include <stdlib.h>

#include "sched/log.h"

_Noreturn void gh__assert_fail(const char *what, const char *file, int line)
{
    gh__log(GH_LOG_ERROR, "internal error: %s (%s:%d)", what, file, line);
    abort();
}
