#!/usr/bin/env bash
# multicore_smoke_test.sh DEMO PER_THREAD_BACKENDS ECHO_MULTICORE
#
# Runs the demo for one second and per_thread_backends to completion and
# checks their exit status and output; then runs echo_multicore in both modes
# (acceptor + round-robin, and --reuseport), talks to it with bash's
# /dev/tcp from several clients at once, stops it with SIGTERM while clients
# are still connected and checks it exits 0.
set -euo pipefail

demo=$1
per_thread=$2
echo_mc=$3
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# -------------------------------------------------------------------- demo
out=$tmp/demo.out
status=0
"$demo" --seconds 1 >"$out" 2>&1 || status=$?
cat "$out"
[ "$status" -eq 0 ] || fail "demo exited with $status"
grep -q '^mismatched replies: 0, failed clients: 0$' "$out" || fail "demo: mismatches or failures"
grep -q '^64 connections served' "$out" || fail "demo: not every connection was served"
rate=$(sed -n 's/.* \([0-9][0-9]*\) round trips\/s$/\1/p' "$out")
[ -n "$rate" ] && [ "$rate" -gt 0 ] || fail "demo: no round trip rate"
grep -q '^server0 ' "$out" || fail "demo: no row for server0"
grep -q '^server1 ' "$out" || fail "demo: at least two server hubs"
grep -q '^client ' "$out" || fail "demo: no row for the client hub"
# Every server hub ran connection tasks handed to it (hub 0 hands to itself without a handoff).
handoffs=$(awk '$1 == "server1" { print $5 }' "$out")
[ "$handoffs" -gt 0 ] || fail "demo: server1 got no handoffs"
echo "demo: ok ($rate round trips/s)"

# ------------------------------------------------------ per_thread_backends
out=$tmp/per_thread.out
status=0
"$per_thread" >"$out" 2>&1 || status=$?
cat "$out"
[ "$status" -eq 0 ] || fail "per_thread_backends exited with $status"
[ "$(grep -c '^hop .* pipe read ok$' "$out")" -eq 18 ] || fail "per_thread_backends: 18 good hops"
for b in epoll poll select io_uring libev libevent; do
    grep -q "backend $b " "$out" || grep -q "note: backend $b refused" "$out" ||
        fail "per_thread_backends: backend $b neither ran nor was reported refused"
done
grep -q '^done: 18 hops over 6 backends' "$out" || fail "per_thread_backends: no clean end"
echo "per_thread_backends: ok"

# ---------------------------------------------------------- echo_multicore
run_mc() {
    local name=$1
    shift
    local out=$tmp/mc_$name.out
    : >"$out" # exists before the server starts: the first sed must not race its creation
    "$echo_mc" --port 0 "$@" >"$out" 2>&1 &
    local pid=$!
    local port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/^listening on port \([0-9]*\).*/\1/p' "$out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "$name: died at start"; }
        sleep 0.05
    done
    [ -n "$port" ] || fail "$name: no start line"
    local fds=(5 6 7 8 9)
    for fd in "${fds[@]}"; do
        eval "exec $fd<>/dev/tcp/127.0.0.1/$port"
    done
    local line
    for round in 1 2 3; do
        for fd in "${fds[@]}"; do
            printf 'client %s round %s\n' "$fd" "$round" >&"$fd"
        done
        for fd in "${fds[@]}"; do
            IFS= read -r -t 10 line <&"$fd" || fail "$name: no echo on client $fd"
            [ "$line" = "client $fd round $round" ] || fail "$name: client $fd got '$line'"
        done
    done
    # SIGTERM with every client still connected: each sees EOF, exit status 0.
    kill -TERM "$pid"
    for fd in "${fds[@]}"; do
        if IFS= read -r -t 10 line <&"$fd"; then
            fail "$name: client $fd got data after the stop: '$line'"
        fi
    done
    local status=0
    wait "$pid" || status=$?
    for fd in "${fds[@]}"; do
        eval "exec $fd>&-"
    done
    cat "$out"
    [ "$status" -eq 0 ] || fail "$name: exit status $status"
    grep -q '^SIGTERM: stopping$' "$out" || fail "$name: no stop line"
    # The connections column adds up to the 5 clients.
    local total
    total=$(awk '$1 ~ /^[0-9]+$/ && NF == 6 { s += $3 } END { print s + 0 }' "$out")
    [ "$total" -eq 5 ] || fail "$name: $total connections counted, want 5"
    echo "echo_multicore $name: ok (port $port)"
}

run_mc acceptor --threads 3 --backends epoll,poll,libevent
grep -q '^hub 1: poll$' "$tmp/mc_acceptor.out" || fail "acceptor: hub 1 should run poll"
run_mc reuseport --threads 2 --reuseport --backends select,libev

# Bad arguments are refused.
if "$echo_mc" --threads 2 --backends epoll,poll,select >"$tmp/bad.out" 2>&1; then
    fail "more backends than threads was accepted"
fi
if "$echo_mc" --port 0 --backends no-such-backend >"$tmp/bad2.out" 2>&1; then
    fail "an unknown backend was accepted"
fi
echo "all ok"
