#!/usr/bin/env bash
# embed_libuv_smoke_test.sh EMBED_LIBUV
#
# The greenhub echo server inside a libuv loop, once per backend: two clients
# echo through it while libuv's own timer ticks on the same thread, then
# SIGTERM (a libuv signal handle) stops both loops cleanly, exit 0.
set -euo pipefail

bin=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

run() {
    local backend=$1 out=$tmp/embed_$1.out
    : >"$out"
    "$bin" --port 0 --backend "$backend" >"$out" 2>&1 &
    local pid=$!
    local port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/^listening on port \([0-9]*\).*/\1/p' "$out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "$backend: died at start"; }
        sleep 0.05
    done
    [ -n "$port" ] || fail "$backend: no start line"
    grep -q "(backend $backend, inside libuv" "$out" || fail "$backend: $(head -1 "$out")"

    exec 3<>"/dev/tcp/127.0.0.1/$port"
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    local line
    for i in 1 2 3; do
        printf 'ping %s from 3\n' "$i" >&3
        printf 'ping %s from 4\n' "$i" >&4
        IFS= read -r -t 10 line <&3 || fail "$backend: no echo on 3"
        [ "$line" = "ping $i from 3" ] || fail "$backend: 3 got '$line'"
        IFS= read -r -t 10 line <&4 || fail "$backend: no echo on 4"
        [ "$line" = "ping $i from 4" ] || fail "$backend: 4 got '$line'"
    done
    # libuv's timer ticks while greenhub serves: both loops share the thread.
    for _ in $(seq 1 60); do
        grep -q "^tick: 6 echoes, 2 clients" "$out" && break
        sleep 0.05
    done
    grep -q "^tick: 6 echoes, 2 clients" "$out" || { cat "$out" >&2; fail "$backend: no tick"; }

    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    exec 3>&- 4>&-
    [ "$status" -eq 0 ] || { cat "$out" >&2; fail "$backend: exit status $status"; }
    grep -q "^bye: 6 echoes, tasks all ran on libuv's thread, hub close ok" "$out" ||
        { cat "$out" >&2; fail "$backend: no clean end"; }
    echo "embed_libuv on $backend: ok (port $port)"
}

for backend in epoll poll select io_uring libev libevent; do
    run "$backend"
done
