#!/usr/bin/env bash
# custom_backend_test.sh CUSTOM_BACKEND
#
# Runs examples/custom_backend (a third-party backend, "tiny-epoll", plugged
# in with gh_use_hub_backend) and checks that it served its echo workload on
# that backend, swapped live to poll and back, and ended clean.
set -euo pipefail

bin=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

status=0
timeout 60 "$bin" >"$tmp/out" 2>&1 || status=$?
cat "$tmp/out"
[ "$status" -eq 0 ] || fail "exit status $status"
grep -qx 'backend: tiny-epoll' "$tmp/out" || fail "not on tiny-epoll at start"
grep -q '^swapped live to poll (success)$' "$tmp/out" || fail "no live swap to poll"
grep -q '^swapped live back to tiny-epoll (success)$' "$tmp/out" || fail "no swap back"
grep -q '^echo: 4 clients x 100 lines, 400 came back whole$' "$tmp/out" || fail "echo lines lost"
grep -q '^pipe reader woke on ' "$tmp/out" || fail "the pipe reader never woke"
polls=$(sed -n 's/.*; \([0-9]*\) polls through tiny-epoll$/\1/p' "$tmp/out")
[ -n "$polls" ] && [ "$polls" -gt 0 ] || fail "the hub never polled through tiny-epoll"
grep -qx 'done (success)' "$tmp/out" || fail "no clean end"
grep -q 'FAILED' "$tmp/out" && fail "a check failed"
echo "custom_backend: ok ($polls polls through tiny-epoll)"
