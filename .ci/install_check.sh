#!/usr/bin/env bash
# .ci/install_check.sh — greenhub used from outside Bazel, as the README says.
#
# Installs into a temporary prefix with `./bazelw run //:install`, checks the
# shared library (SONAME follows GH_VERSION_MAJOR, only gh_* exported),
# builds examples/echo_server.c with pkg-config against the shared library
# and (--static) the archive, and echoes a line through each; then builds
# with the optional backends left out and checks nothing of theirs is
# linked and greenhub.pc follows; builds and tests examples/consumer, a
# workspace depending on greenhub, and checks a backend typo is refused. Prints one line per check:
#   ok NAME   |   FAIL NAME: why
# and exits non-zero if any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/greenhub-install.XXXXXX")
prefix=$tmp/prefix
failed=0
ok() { echo "ok $1"; }
fail() {
    echo "FAIL $1: $2"
    failed=1
}

# echo_check NAME BINARY [ENV...]: start it on a free port, echo one line, SIGTERM, exit 0.
echo_check() {
    local name=$1 bin=$2 out=$tmp/$1.out port="" line status=0
    shift 2
    env "$@" "$bin" --port 0 >"$out" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do
        port=$(sed -n 's/^server socket listening on port \([0-9]*\).*/\1/p' "$out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        kill "$pid" 2>/dev/null
        fail "$name" "no start line: $(head -3 "$out")"
        return
    fi
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'hello installed greenhub\n' >&3
    IFS= read -r -t 10 line <&3 || line="(nothing)"
    exec 3>&-
    kill -TERM "$pid"
    wait "$pid" || status=$?
    if [ "$line" != "hello installed greenhub" ] || [ "$status" -ne 0 ]; then
        fail "$name" "echoed '$line', exit $status"
    else
        ok "$name"
    fi
}

if ./bazelw run //:install -- "$prefix" >"$tmp/install.log" 2>&1; then
    ok "install"
else
    fail "install" "$(tail -5 "$tmp/install.log")"
    exit 1
fi

major=$(sed -n 's/^#define GH_VERSION_MAJOR \([0-9]*\).*/\1/p' include/greenhub.h)
so=$prefix/lib/libgreenhub.so.$major
soname=$(readelf -d "$so" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
leaked=$(nm -D --defined-only "$so" 2>/dev/null | awk '$2 ~ /^[A-Z]$/ && $3 !~ /^gh_[a-z0-9]/ {print $3}')
exported=$(nm -D --defined-only "$so" 2>/dev/null | grep -c ' T gh_[a-z0-9]')
if [ "$soname" = "libgreenhub.so.$major" ] && [ -z "$leaked" ] && [ "$exported" -gt 100 ]; then
    ok "shared library: SONAME $soname, $exported gh_* functions and nothing else"
else
    fail "shared library" "SONAME '$soname', exported beyond gh_*: $leaked"
fi

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# The README's two lines: shared, and static (the archive instead of the .so).
if cc -std=c11 -O2 -Iexamples -o "$tmp/echo_shared" examples/echo_server.c \
    $(pkg-config --cflags --libs greenhub) 2>"$tmp/cc_shared.log"; then
    echo_check "pkg-config shared build echoes" "$tmp/echo_shared" LD_LIBRARY_PATH="$prefix/lib"
else
    fail "pkg-config shared build" "$(head -5 "$tmp/cc_shared.log")"
fi
if cc -std=c11 -O2 -Iexamples -o "$tmp/echo_static" examples/echo_server.c \
    $(pkg-config --cflags greenhub) \
    $(pkg-config --static --libs greenhub | sed 's/-lgreenhub/-Wl,-Bstatic -lgreenhub -Wl,-Bdynamic/') \
    2>"$tmp/cc_static.log"; then
    if ldd "$tmp/echo_static" | grep -q libgreenhub; then
        fail "pkg-config --static build" "still needs libgreenhub.so"
    else
        echo_check "pkg-config --static build echoes" "$tmp/echo_static"
    fi
else
    fail "pkg-config --static build" "$(head -5 "$tmp/cc_static.log")"
fi

# Only epoll, poll and select: nothing of liburing, libev or libevent linked.
defs=(--define=gh_io_uring=off --define=gh_libev=off --define=gh_libevent=off)
if ./bazelw build "${defs[@]}" //:libgreenhub.so //examples:echo_server //bazel/install:greenhub_pc \
    >"$tmp/minimal.log" 2>&1; then
    needed=$(readelf -d bazel-bin/libgreenhub.so bazel-bin/examples/echo_server |
        grep -E 'liburing|libev|libevent' || true)
    private=$(sed -n 's/^Libs.private: //p' bazel-bin/bazel/install/greenhub.pc)
    if [ -z "$needed" ] && [ "$private" = "-pthread" ] &&
        ! bazel-bin/examples/echo_server --port 0 --backend io_uring >/dev/null 2>&1; then
        ok "build without io_uring, libev, libevent"
    else
        fail "build without io_uring, libev, libevent" "needed: $needed; Libs.private: $private"
    fi
else
    fail "build without io_uring, libev, libevent" "$(grep -m3 ERROR "$tmp/minimal.log")"
fi
# Another Bazel workspace depending on greenhub, offline (README's snippet).
if (cd examples/consumer && ../../bazelw test //... && ../../bazelw run //:hello) \
    >"$tmp/consumer.log" 2>&1 && grep -q "greenhub .* done" "$tmp/consumer.log" &&
    [ "$(grep -c 'hello_test_.* PASSED' "$tmp/consumer.log")" -eq 6 ]; then
    ok "consumer workspace: build, run, test on every backend"
else
    fail "consumer workspace" "$(grep -E 'ERROR|FAILED' "$tmp/consumer.log" | head -5)"
fi
# A backend name greenhub does not have fails at load time, naming it.
mkdir -p examples/consumer/typo_check
printf 'load("@greenhub//bazel:defs.bzl", "greenhub_backend_test")\ngreenhub_backend_test(name = "t", srcs = ["t.c"], backends = ["iouring"])\n' \
    >examples/consumer/typo_check/BUILD
if (cd examples/consumer && ../../bazelw query //typo_check:all) >"$tmp/typo.log" 2>&1; then
    fail "backend typo refused" "a test on backend \"iouring\" was accepted"
elif grep -q 'unknown backend "iouring"' "$tmp/typo.log"; then
    ok "backend typo refused at load time"
else
    fail "backend typo refused" "$(grep -m2 ERROR "$tmp/typo.log")"
fi
rm -rf examples/consumer/typo_check
(cd examples/consumer && bazel shutdown) >/dev/null 2>&1 || true

# Back to the default configuration for whatever runs next.
./bazelw build //:libgreenhub.so >/dev/null 2>&1 || true
rm -rf "$tmp"
exit "$failed"
