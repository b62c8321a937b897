"""Test macros for greenhub.

Load as `//bazel:defs.bzl` inside the workspace or `@greenhub//bazel:defs.bzl`
from another one. Every label below is built with Label(), so it names the
greenhub repository whichever workspace calls the macro.

    greenhub_test(
        name = "timer_test",
        srcs = ["timer_test.c"],
    )

    greenhub_backend_test(
        name = "io_test",
        srcs = ["io_test.c"],
    )  # io_test_epoll, io_test_poll, ... and a test_suite "io_test"

Both macros link cmocka (Debian's libcmocka-dev) and, unless `lib` says
otherwise, //:greenhub. Any other cc_test attribute (size, timeout, tags,
data, local_defines, ...) passes through. `copts` are added after
`-std=c11 -D_GNU_SOURCE` in a consumer's workspace, and after greenhub's
strict GH_COPTS (-Werror included) in greenhub's own. A backend name that
greenhub does not have fails at load time.
"""

load("//bazel:copts.bzl", "GH_COPTS")

# Every backend greenhub ships, in the registry's default order.
GH_BACKENDS = ["epoll", "poll", "select", "io_uring", "libev", "libevent"]

# Backends with a completion path (GH_BACKEND_COMPLETION): `both_paths` tests
# them once more with GREENHUB_COMPLETION=0, on their readiness path.
GH_COMPLETION_BACKENDS = ["io_uring"]

_GREENHUB = Label("//:greenhub")

# greenhub's own tests build with its strict flags (-Wall -Wextra -Werror); a
# consumer's tests get only what the API needs, and their own copts.
_OWN_WORKSPACE = _GREENHUB.workspace_name == ""
_CONSUMER_COPTS = ["-std=c11", "-D_GNU_SOURCE"]

def _test_kwargs(deps, lib, copts, linkopts):
    all_deps = list(deps)
    if lib != None:
        all_deps.append(lib)
    return dict(
        copts = (GH_COPTS if _OWN_WORKSPACE else _CONSUMER_COPTS) + copts,
        deps = all_deps,
        linkopts = linkopts + ["-lcmocka"],
    )

def greenhub_test(
        name,
        srcs,
        deps = [],
        lib = _GREENHUB,
        copts = [],
        linkopts = [],
        **kwargs):
    """A cmocka cc_test against greenhub.

    Args:
      name: target name.
      srcs: test sources.
      deps: extra dependencies.
      lib: the greenhub library target to link (default //:greenhub; for
        instance "//:greenhub_pipe_wakeup"), or None for no library.
      copts: extra compiler options, after GH_COPTS.
      linkopts: extra linker options; -lcmocka is always added.
      **kwargs: any other cc_test attribute.
    """
    native.cc_test(
        name = name,
        srcs = srcs,
        **dict(kwargs, **_test_kwargs(deps, lib, copts, linkopts))
    )

def greenhub_backend_test(
        name,
        srcs,
        deps = [],
        backends = GH_BACKENDS,
        lib = _GREENHUB,
        copts = [],
        linkopts = [],
        tags = [],
        env = {},
        both_paths = False,
        **kwargs):
    """One cmocka cc_test per backend, plus a test_suite `name` over them all.

    Test `<name>_<backend>` runs with GREENHUB_HUB=<backend> in its
    environment and carries the tags "backend" and "<backend>", so
    `bazel test --test_tag_filters=io_uring //...` runs one backend.

    Args:
      name: name of the test_suite; the tests are `<name>_<backend>`.
      srcs: test sources, shared by every backend.
      deps: extra dependencies.
      backends: backend names (default: all of GH_BACKENDS).
      lib: the greenhub library target to link, or None (see greenhub_test).
      copts: extra compiler options, after GH_COPTS.
      linkopts: extra linker options; -lcmocka is always added.
      tags: extra tags for every test.
      env: extra environment for every test; GREENHUB_HUB is set here.
      both_paths: also `<name>_<backend>_readiness` for each backend of
        GH_COMPLETION_BACKENDS, with GREENHUB_COMPLETION=0.
      **kwargs: any other cc_test attribute.
    """
    for backend in backends:
        if backend not in GH_BACKENDS:
            fail("greenhub_backend_test %s: unknown backend \"%s\" (greenhub has %s)" %
                 (name, backend, ", ".join(GH_BACKENDS)))
    variants = []
    for backend in backends:
        variants.append((backend, "%s_%s" % (name, backend), {}))
        if both_paths and backend in GH_COMPLETION_BACKENDS:
            variants.append((backend, "%s_%s_readiness" % (name, backend), {"GREENHUB_COMPLETION": "0"}))
    tests = []
    for backend, test_name, extra_env in variants:
        test_env = dict(env)
        test_env.update(extra_env)
        test_env["GREENHUB_HUB"] = backend
        native.cc_test(
            name = test_name,
            srcs = srcs,
            env = test_env,
            tags = tags + ["backend", backend],
            **dict(kwargs, **_test_kwargs(deps, lib, copts, linkopts))
        )
        tests.append(":" + test_name)

    native.test_suite(
        name = name,
        tests = tests,
        # A suite is expanded by `bazel test //...`; keep manual tests out.
        tags = ["manual"] if "manual" in tags else [],
        visibility = kwargs.get("visibility"),
    )
