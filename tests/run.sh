#!/bin/sh
# Runs every test program in $BUILD/tests and the CLI tests, then prints the
# closing line "N passed, N failed". A program that crashes counts one failure.
# A test that cannot run here prints "NAME: skipped (WHY)"; it is listed, not
# counted. The output of a failing test is shown once, its summary line last.
BUILD=${BUILD:-build}
pass=0; fail=0; skipped=""
summary='^[a-z_0-9]+: [0-9]+ passed, [0-9]+ failed$'
# NAME OUTPUT RC: adds up one test's summary line
tally() {
    if skip=$(printf '%s\n' "$2" | grep -E '^[a-z_0-9]+: skipped' | tail -n 1) && [ -n "$skip" ] && [ "$3" -eq 0 ]; then
        echo "$skip"; skipped="$skipped $1"; return
    fi
    line=$(printf '%s\n' "$2" | grep -E "$summary" | tail -n 1)
    p=$(echo "$line" | sed -nE 's/.*: ([0-9]+) passed.*/\1/p'); p=${p:-0}
    f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed/\1/p'); f=${f:-0}
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ "$f" -ne 0 ]; then printf '%s\n' "$2" | grep -vE "$summary" | tail -n 30; fi
    echo "${line:-$1: crashed (exit $3)}"
    pass=$((pass + p)); fail=$((fail + f))
}
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1); rc=$?
    tally "$(basename "$t")" "$out" $rc
done
for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    out=$(DUET="$BUILD/duet" sh "$t" 2>&1); rc=$?
    tally "$(basename "$t" .sh)" "$out" $rc
done
[ -n "$skipped" ] && echo "skipped:$skipped"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
