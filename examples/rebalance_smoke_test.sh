#!/usr/bin/env bash
# rebalance_smoke_test.sh REBALANCE
#
# 16 clients for 2 s against rebalance's skewed server (every connection
# accepted on hub 0): it must exit 0 (every echo checked, every hub serving
# some connections at the end) and report moves.
set -euo pipefail
out=$("$1" --threads 2 --clients 16 --seconds 2)
echo "$out"
moves=$(echo "$out" | sed -n 's/.*failures, \([0-9]*\) moves.*/\1/p')
[ -n "$moves" ] && [ "$moves" -gt 0 ] || { echo "FAIL: no connection moved" >&2; exit 1; }
echo "$out" | grep -q " 0 failures" || { echo "FAIL: failures" >&2; exit 1; }
