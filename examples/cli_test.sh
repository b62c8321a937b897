#!/usr/bin/env bash
# cli_test.sh EXAMPLE...
#
# Every example answers --help on stdout with exit 0, names itself without
# Bazel's execroot path, and refuses an unknown option (usage on stderr,
# exit 2); the servers refuse a port that is not a number.
set -uo pipefail
tmp=${TEST_TMPDIR:-$(mktemp -d)}
failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

for bin in "$@"; do
    name=$(basename "$bin")
    "$bin" --help >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$name --help: exit $rc"
    grep -q "^usage: $name" "$tmp/out" || fail "$name --help: no 'usage: $name' on stdout"
    "$bin" --no-such-option >"$tmp/out" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 2 ] || fail "$name --no-such-option: exit $rc, want 2"
    grep -q "^usage: $name" "$tmp/err" || fail "$name --no-such-option: no usage on stderr"
    case $name in
    echo_multicore | echo_server | http_hello | rebalance | embed_libuv)
        "$bin" --port abc >"$tmp/out" 2>"$tmp/err"
        rc=$?
        [ "$rc" -eq 2 ] || fail "$name --port abc: exit $rc, want 2 (was: a random port)"
        ;;
    esac
done
[ "$failures" -eq 0 ] || exit 1
echo "cli_test: $# examples ok"
