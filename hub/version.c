/* version.c — gh_version: the version the library was built as (see CHANGELOG.md). */
#include "greenhub.h"

#define GH_STR_(x) #x
#define GH_STR(x)  GH_STR_(x)

const char *gh_version(void)
{
    return GH_STR(GH_VERSION_MAJOR) "." GH_STR(GH_VERSION_MINOR) "." GH_STR(GH_VERSION_PATCH);
}
