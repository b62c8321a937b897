#!/usr/bin/env bash
# install.sh PREFIX — what `./bazelw run //:install -- PREFIX` runs.
#
# Installs greenhub for use outside Bazel:
#   PREFIX/lib/libgreenhub.a, PREFIX/lib/libgreenhub.so.MAJOR (+ the
#   libgreenhub.so link), PREFIX/include/greenhub.h and greenhub_backend.h,
#   PREFIX/lib/pkgconfig/greenhub.pc
# then:   cc app.c $(PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs greenhub)
# A relative PREFIX is taken from where bazel was run, not from the runfiles.
set -euo pipefail
if [ "$#" -ne 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
    echo "usage: ./bazelw run //:install -- PREFIX" >&2
    [ "$#" -eq 1 ] && exit 0
    exit 2
fi
prefix=$1
case $prefix in
/*) ;;
*) prefix=${BUILD_WORKING_DIRECTORY:-$PWD}/$prefix ;;
esac

# Our files, from the runfiles tree (bazel run) or next to the script.
here=${RUNFILES_DIR:-$0.runfiles}/greenhub
[ -d "$here" ] || here=$(cd "$(dirname "$0")" && pwd)
header=$here/include/greenhub.h
major=$(sed -n 's/^#define GH_VERSION_MAJOR \([0-9]*\).*/\1/p' "$header")
soname=$(readelf -d "$here/libgreenhub.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libgreenhub.so.$major" ]; then
    echo "install: the library's SONAME is '$soname', GH_VERSION_MAJOR says $major" >&2
    exit 1
fi

mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0644 "$here/include/greenhub.h" "$here/include/greenhub_backend.h" "$prefix/include/"
install -m 0644 "$here/libgreenhub.a" "$prefix/lib/libgreenhub.a"
install -m 0755 "$here/libgreenhub.so" "$prefix/lib/$soname"
ln -sfn "$soname" "$prefix/lib/libgreenhub.so"
sed "s|@PREFIX@|$prefix|" "$here/bazel/install/greenhub.pc" >"$prefix/lib/pkgconfig/greenhub.pc"
chmod 0644 "$prefix/lib/pkgconfig/greenhub.pc"
echo "installed greenhub $(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/greenhub.pc") in $prefix"
