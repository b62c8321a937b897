#!/usr/bin/env bash
# libfuzzer_test.sh: build tests/fuzz/reader_fuzz.c as a real libFuzzer
# target with clang (-fsanitize=fuzzer,address), from the sources in this
# test's runfiles, and fuzz gh_reader for a bounded time, starting from the
# committed corpus (tests/fuzz/reader_corpus, copied: libFuzzer adds to it).
#
# Bazel's default toolchain here is gcc, which has no libFuzzer, so the
# build is done by hand. clang and libclang-rt-14-dev come with ./bazelw;
# without clang the test says so loudly and passes (the gcc replay test,
# reader_fuzz_replay, still runs the target on the corpus).
#
# Env: FUZZ_SECONDS (default 10), FUZZ_RUNS (default 500000), whichever
# ends first.
set -euo pipefail

root="${TEST_SRCDIR:?}/${TEST_WORKSPACE:?}"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
cc="${CLANG:-clang}"

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "libfuzzer_test: *** clang not installed: libFuzzer run NOT done ***" >&2
    echo "libfuzzer_test: (run ./bazelw, which installs clang and libclang-rt-14-dev)" >&2
    exit 0
fi

srcs=()
for f in "$root"/sched/*.c "$root"/backends/*.c "$root"/hub/*.c "$root"/sync/*.c "$root"/io/*.c; do
    srcs+=("$f")
done
srcs+=("$root/sched/context_x86_64.S" "$root/tests/fuzz/reader_fuzz.c")

echo "libfuzzer_test: building with $("$cc" --version | head -1)"
# One object per source, two compilers at a time (the machine has 2 cores).
mkdir -p "$tmp/obj"
export cc root tmp
printf '%s\n' "${srcs[@]}" | nl -ba -w1 -s' ' | xargs -P 2 -L 1 sh -c '
    "$cc" -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address -I"$root/include" -I"$root" \
        -c "$1" -o "$tmp/obj/$0.o"'
"$cc" -fsanitize=fuzzer,address "$tmp"/obj/*.o -o "$tmp/reader_fuzz" \
    -Wl,--no-as-needed -levent -lev -luring -Wl,--as-needed -pthread -ldl

rm -rf "$tmp/corpus"
mkdir -p "$tmp/corpus"
cp "$root"/tests/fuzz/reader_corpus/* "$tmp/corpus/"
n_seed=$(ls "$tmp/corpus" | wc -l)
if [ "$n_seed" -eq 0 ]; then
    echo "libfuzzer_test: empty corpus" >&2
    exit 1
fi

# A crash, a leak, a timeout (-timeout per input) or a failed model check
# (abort) makes libFuzzer exit non-zero and print the input; set -e fails us.
cd "$tmp"
./reader_fuzz \
    -max_total_time="${FUZZ_SECONDS:-10}" \
    -runs="${FUZZ_RUNS:-500000}" \
    -max_len=4096 \
    -timeout=20 \
    -rss_limit_mb=2048 \
    -print_final_stats=1 \
    "$tmp/corpus" 2>&1 | tail -n 25
status=${PIPESTATUS[0]}
echo "libfuzzer_test: libFuzzer exited $status; corpus $n_seed -> $(ls "$tmp/corpus" | wc -l) inputs"
exit "$status"
