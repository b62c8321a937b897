/* hello_test.c — a consumer's own test, run on every backend by greenhub_backend_test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "greenhub.h"

static int turns;

static void worker(void *arg)
{
    for (int i = 0; i < 3; i++) {
        turns++;
        gh_sleep(GH_MSEC);
    }
}

static void test_tasks_run_on_the_chosen_backend(void **state)
{
    gh_task *t = gh_spawn(worker, NULL);
    assert_non_null(t);
    assert_int_equal(gh_join(t, 5 * GH_SEC), 0);
    gh_task_release(t);
    assert_int_equal(turns, 3);
    const char *want = getenv("GREENHUB_HUB");
    assert_non_null(want);
    assert_string_equal(gh_hub_backend(gh_get_hub()), want);
    assert_int_equal(gh_hub_close(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tasks_run_on_the_chosen_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
