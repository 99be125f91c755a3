#!/bin/sh
# python.sh - the Python package's tests (python/tests, pytest) against
# $BUILD/libduet.so and $BUILD/duet. Uses the first python3 that has pytest
# (Debian's python3-pytest). Under the sanitizers the ASan runtime is
# preloaded into the interpreter. Prints "python: N passed, N failed".
BUILD=${BUILD:-build}
PY=
for p in /usr/bin/python3 python3; do
    if "$p" -c "import pytest, jsonschema" >/dev/null 2>&1; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
    echo "python: skipped (no python3 with pytest and jsonschema: apt-get install python3-pytest python3-jsonschema)"
    exit 0
fi
[ -f "$BUILD/libduet.so" ] || { echo "python: $BUILD/libduet.so missing (run make)"; echo "python: 0 passed, 1 failed"; exit 1; }
PRE=
if ldd "$BUILD/libduet.so" 2>/dev/null | grep -q libasan; then
    PRE=$(${CC:-cc} -print-file-name=libasan.so)
    export ASAN_OPTIONS=detect_leaks=0:${ASAN_OPTIONS:-}
fi
cd "$(dirname "$0")/../.." || exit 1
# pytest's tmp_path folders under a folder of this run's, removed after it
# (pytest's default base, /tmp/pytest-of-USER, keeps the last three runs)
base=$(mktemp -d "${TMPDIR:-/tmp}/duet-pytest-XXXXXX") || { echo "python: 0 passed, 1 failed"; exit 1; }
out=$(BUILD="$BUILD" DUET_LIB="$PWD/$BUILD/libduet.so" LD_PRELOAD="$PRE" PYTHONDONTWRITEBYTECODE=1 \
      "$PY" -m pytest -q -p no:cacheprovider --basetemp="$base/t" python/tests 2>&1)
rc=$?
rm -rf "$base"
printf '%s\n' "$out" | tail -n 40
last=" $(printf '%s\n' "$out" | tail -n 1)"
p=$(printf '%s\n' "$last" | sed -nE 's/.*[ ,]([0-9]+) passed.*/\1/p'); p=${p:-0}
f=$(printf '%s\n' "$last" | sed -nE 's/.*[ ,]([0-9]+) failed.*/\1/p'); f=${f:-0}
e=$(printf '%s\n' "$last" | sed -nE 's/.*[ ,]([0-9]+) errors?.*/\1/p'); e=${e:-0}
sk=$(printf '%s\n' "$last" | sed -nE 's/.*[ ,]([0-9]+) skipped.*/\1/p')
[ -n "$sk" ] && echo "python: $sk skipped (see above)"
[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$e" -eq 0 ] && f=1
echo "python: $p passed, $((f + e)) failed"
