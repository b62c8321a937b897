#!/usr/bin/env bash
# .ci/aarch64.sh: greenhub on AArch64, built with Debian's cross compiler and
# run under qemu-user on this x86-64 machine. The library is built the way
# Bazel builds it (same sources, same strict flags) with the epoll, poll and
# select backends (io_uring, libev and libevent are compiled out: their
# arm64 -dev packages are not needed to show the switch and the hub work),
# then each test below runs once, on the epoll backend unless it picks its
# own. Prints one line per test, "ok NAME" or "FAIL NAME: why", for .ci/run.
#
# Installs what it needs (as root, or with sudo): gcc-aarch64-linux-gnu,
# qemu-user, and cmocka for arm64 (Debian multiarch).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CC=aarch64-linux-gnu-gcc
CMOCKA=/usr/lib/aarch64-linux-gnu/libcmocka.so

install_tools() {
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $sudo dpkg --add-architecture arm64
    fi
    $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            gcc-aarch64-linux-gnu qemu-user libcmocka-dev:arm64 >/dev/null
}
if ! command -v "$CC" >/dev/null || ! command -v qemu-aarch64 >/dev/null || [ ! -e "$CMOCKA" ]; then
    install_tools || { echo "FAIL aarch64 tools: could not install the cross compiler, qemu-user or cmocka:arm64"; exit 0; }
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/greenhub-aarch64.XXXXXX")
trap 'rm -rf "$out"' EXIT

# The flags of //bazel:copts.bzl (GH_COPTS), optimized as Bazel's default -c opt.
CFLAGS=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter
    -fstack-clash-protection -fno-omit-frame-pointer -O2 -g
    -I. -Iinclude -DGH_WITH_IO_URING=0 -DGH_WITH_LIBEV=0 -DGH_WITH_LIBEVENT=0)

# The library: every layer's sources but the three optional backends.
srcs=()
for f in sched/*.c sched/*.S backends/*.c hub/*.c io/*.c sync/*.c; do
    case $f in
    backends/io_uring.c | backends/libev.c | backends/libevent.c) continue ;;
    esac
    srcs+=("$f")
done
objs=()
build_log="$out/build.log"
for f in "${srcs[@]}"; do
    o="$out/obj/${f//\//_}.o"
    mkdir -p "$out/obj"
    if ! "$CC" "${CFLAGS[@]}" -c "$f" -o "$o" >>"$build_log" 2>&1; then
        echo "FAIL aarch64 build: $f: $(grep -m1 error "$build_log")"
        exit 0
    fi
    objs+=("$o")
done
ar rcs "$out/libgreenhub.a" "${objs[@]}"
if ! "$CC" -c "${CFLAGS[@]}" -x c - -o /dev/null <<<'#include "sched/context.h"
#ifdef GH_CONTEXT_UCONTEXT
#error ucontext chosen on aarch64
#endif' >>"$build_log" 2>&1; then
    echo "FAIL aarch64 build: the native AArch64 switch is not the one chosen"
    exit 0
fi
echo "ok aarch64 build: ${#srcs[@]} sources, the native context switch"

# The tests: the switch itself, then tasks, timers, sync, channels, fds and
# sockets, many hubs and tasks moving between them. Each gets 300 s: qemu
# runs them 5-20x slower than the host. Left out: net_test and fork_test,
# which fork a multi-threaded process; qemu-user 7.2 (Debian 12) aborts the
# child there ("cpu == current_cpu" assertion), an emulator bug; and
# swap_test and backend_ops_test, which check all six backends, where this
# build has three.
TESTS=(context_test task_test timer_test sync_test chan_test pool_test
    wait_any_test loop_test embed_test fd_test dgram_test net_many_test
    runtime_test xhub_test tpool_test signal_test reader_test observe_test
    stack_overflow_test sched_stress_test conformance)

run_one() {
    local t=$1 bin=$out/$1
    if ! "$CC" "${CFLAGS[@]}" "tests/$t.c" "$out/libgreenhub.a" -L/usr/lib/aarch64-linux-gnu \
        -lcmocka -pthread -o "$bin" >"$bin.build.log" 2>&1; then
        echo "FAIL aarch64 $t: does not build: $(grep -m1 error "$bin.build.log")"
        return
    fi
    # The loader and libc of Debian's libc6:arm64 (multiarch, under /): the
    # ones cmocka:arm64 was built against. The cross toolchain's own copies
    # under /usr/aarch64-linux-gnu are an older build: mixed with these,
    # pthread_create hangs under qemu.
    if GREENHUB_HUB=epoll QEMU_LD_PREFIX=/ timeout 300 qemu-aarch64 "$bin" >"$bin.log" 2>&1; then
        echo "ok aarch64 $t: $(grep -m1 -o 'PASSED.*' "$bin.log")"
    else
        echo "FAIL aarch64 $t: $(grep -m3 -E 'FAILED|ERROR|error|Timeout' "$bin.log" | tr '\n' ' ')"
    fi
}
export -f run_one
export CC out
export CFLAGS_STR="${CFLAGS[*]}"
# Two at a time: the machine has two cores.
printf '%s\n' "${TESTS[@]}" |
    xargs -P 2 -I{} bash -c 'read -r -a CFLAGS <<<"$CFLAGS_STR"; run_one {}'
