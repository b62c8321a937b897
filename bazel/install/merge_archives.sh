#!/usr/bin/env bash
# merge_archives.sh OUT INPUT...
#
# One static archive from the layers' archives: the position-independent
# ones among INPUT (.pic.a, or .pic.lo for an alwayslink library): Debian's
# gcc links PIE executables, which cannot take non-PIC objects. A
# cc_library's outputs also hold its .so and non-PIC archive, skipped. In
# dbg and fastbuild modes Bazel builds only PIC objects and names their
# archive .a / .lo: then those are the ones.
# Objects are renamed LAYER_N_NAME.o: two layers may both have a task.o, and
# one archive may hold two members of one name.
set -euo pipefail
out=$1
shift
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
want_pic=0
for a in "$@"; do
    case $a in *.pic.a | *.pic.lo) want_pic=1 ;; esac
done
for a in "$@"; do
    case $a in
    *.pic.a | *.pic.lo) ;;
    *.a | *.lo) [ "$want_pic" = 0 ] || continue ;;
    *) continue ;;
    esac
    layer=$(basename "$a")
    layer=${layer%.pic.*}
    layer=${layer%.a}
    layer=${layer%.lo}
    layer=${layer#lib}
    mkdir "$work/$layer"
    abs=$(cd "$(dirname "$a")" && pwd)/$(basename "$a")
    # Members one at a time: an archive may hold two of one name
    # (context_x86_64.c and context_x86_64.S both make context_x86_64.pic.o).
    declare -A seen=()
    i=0
    while IFS= read -r m; do
        n=$((${seen[$m]:-0} + 1))
        seen[$m]=$n
        i=$((i + 1))
        (cd "$work/$layer" && ar xN "$n" "$abs" "$m" && mv "$m" "../${layer}_${i}_$m")
    done < <(ar t "$abs")
    unset seen
    rmdir "$work/$layer"
done
rm -f "$out"
ar rcsD "$out" "$work"/*.o
