#!/usr/bin/env bash
# examples_smoke_test.sh ECHO_SERVER TIMERS
#
# Runs the echo server on a free port once per backend, talks to it with
# bash's /dev/tcp (two clients at once, one leaving early), stops it with
# SIGTERM and checks it exits 0; then runs the timers demo to completion and
# checks its output and order.
set -euo pipefail

echo_server=$1
timers=$2
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# --------------------------------------------------------------- echo_server
run_echo() {
    local backend=$1 out=$tmp/echo_$1.out
    : >"$out" # exists before the server starts: the first sed must not race its creation
    "$echo_server" --port 0 --backend "$backend" >"$out" 2>&1 &
    local pid=$!
    local port=""
    for _ in $(seq 1 200); do
        port=$(sed -n 's/^server socket listening on port \([0-9]*\).*/\1/p' "$out")
        [ -n "$port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$out" >&2; fail "$backend: server died at start"; }
        sleep 0.05
    done
    [ -n "$port" ] || fail "$backend: no start line"
    grep -q "(backend $backend)" "$out" || fail "$backend: wrong backend: $(head -1 "$out")"

    exec 3<>"/dev/tcp/127.0.0.1/$port"
    exec 4<>"/dev/tcp/127.0.0.1/$port"
    local line
    printf 'hello from 3\n' >&3
    printf 'hello from 4\n' >&4
    IFS= read -r -t 10 line <&3 || fail "$backend: no echo on client 3"
    [ "$line" = "hello from 3" ] || fail "$backend: client 3 got '$line'"
    IFS= read -r -t 10 line <&4 || fail "$backend: no echo on client 4"
    [ "$line" = "hello from 4" ] || fail "$backend: client 4 got '$line'"
    # Bytes echo as they arrive: a line sent in two pieces comes back whole.
    printf 'split ' >&3
    sleep 0.05
    printf 'line\n' >&3
    IFS= read -r -t 10 line <&3 || fail "$backend: no echo of the split line"
    [ "$line" = "split line" ] || fail "$backend: split line came back as '$line'"
    # Client 3 leaves; the server keeps serving client 4.
    exec 3>&-
    for _ in $(seq 1 100); do
        grep -q "client disconnected" "$out" && break
        sleep 0.05
    done
    grep -q "client disconnected" "$out" || fail "$backend: no disconnect seen"
    printf 'still here\n' >&4
    IFS= read -r -t 10 line <&4 || fail "$backend: no echo after the other client left"
    [ "$line" = "still here" ] || fail "$backend: client 4 got '$line'"

    # SIGTERM with a client still connected: a clean exit, status 0.
    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    exec 4>&-
    [ "$status" -eq 0 ] || { cat "$out" >&2; fail "$backend: exit status $status"; }
    [ "$(grep -c '^client connected' "$out")" -eq 2 ] || fail "$backend: connect count"
    [ "$(grep -c '^client disconnected' "$out")" -eq 2 ] || fail "$backend: disconnect count"
    grep -q '^bye$' "$out" || fail "$backend: no clean end"
    echo "echo_server on $backend: ok (port $port)"
}

for backend in epoll poll select io_uring libev libevent; do
    run_echo "$backend"
done

# An unknown backend is refused with a message.
if "$echo_server" --port 0 --backend no-such-backend >"$tmp/bad.out" 2>&1; then
    fail "an unknown backend was accepted"
fi
grep -q "no-such-backend" "$tmp/bad.out" || fail "no message for an unknown backend"

# -------------------------------------------------------------------- timers
start=$(date +%s%N)
"$timers" >"$tmp/timers.out" 2>&1 || { cat "$tmp/timers.out" >&2; fail "timers exited non-zero"; }
ms=$((($(date +%s%N) - start) / 1000000))
cat "$tmp/timers.out"
[ "$ms" -ge 1300 ] || fail "timers ended after $ms ms, before its last timer (1.3 s)"
[ "$ms" -lt 10000 ] || fail "timers took $ms ms"

# The events, in the order they are due.
expected=(
    "call_repeatedly tick 1"
    "call_at fired"
    "call_repeatedly tick 2"
    "call_after(0.5 s) fired"
    "call_repeatedly tick 3"
    "call_repeatedly tick 4"
    "call_repeatedly tick 5"
    "call_repeatedly stopped itself (success)"
    "call_after(1.3 s) fired"
    "done (success)"
)
n=0
while IFS= read -r line; do
    if [ "$n" -lt "${#expected[@]}" ] && [[ "$line" == *"${expected[$n]}"* ]]; then
        n=$((n + 1))
    fi
done <"$tmp/timers.out"
[ "$n" -eq "${#expected[@]}" ] || fail "timers: expected line '${expected[$n]}' (in order)"
grep -q "tick 6" "$tmp/timers.out" && fail "timers: ticked after cancelling itself"
grep -q "should not have" "$tmp/timers.out" && fail "timers: a cancelled timer fired"
grep -q "cancelled the 5 s timer before it fired (success)" "$tmp/timers.out" ||
    fail "timers: cancel did not return 0"
echo "timers: ok ($ms ms)"
