#!/bin/sh
# install.sh - `make install PREFIX=DIR` puts the binary, libduet.so,
# libduet.a, duet.h and duet.pc under DIR, and a program built with
# pkg-config against them links and reports duet_version().
BUILD=${BUILD:-build}
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL install.sh: $1"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/duet-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
make -s install BUILD="$BUILD" PREFIX="$tmp/p" > "$tmp/log" 2>&1 && ok || bad "make install: $(cat "$tmp/log")"
for f in bin/duet lib/libduet.so lib/libduet.a include/duet.h lib/pkgconfig/duet.pc; do
    [ -s "$tmp/p/$f" ] && ok || bad "$f not installed"
done
v=$(sed -n 's/^#define DUET_VERSION "\(.*\)"$/\1/p' include/duet.h)
[ "$("$tmp/p/bin/duet" --version)" = "duet $v" ] && ok || bad "installed duet --version"
printf '#include <duet.h>\n#include <stdio.h>\nint main(void) { puts(duet_version()); return 0; }\n' > "$tmp/t.c"
export PKG_CONFIG_PATH="$tmp/p/lib/pkgconfig"
# under the sanitizers (make asan) the libraries need the ASan runtime: link checks left out
if command -v pkg-config > /dev/null 2>&1 && ! ldd "$BUILD/libduet.so" 2>/dev/null | grep -q libasan; then
    ${CC:-cc} "$tmp/t.c" $(pkg-config --cflags --libs duet) -Wl,-rpath,"$tmp/p/lib" -o "$tmp/t" 2> "$tmp/log" \
        && [ "$("$tmp/t")" = "$v" ] && ok || bad "a program against libduet.so via pkg-config: $(cat "$tmp/log")"
    ${CC:-cc} "$tmp/t.c" $(pkg-config --cflags duet) "$tmp/p/lib/libduet.a" $(pkg-config --static --libs-only-l duet | sed 's/-lduet //') \
        -o "$tmp/ts" 2> "$tmp/log" && [ "$("$tmp/ts")" = "$v" ] && ok || bad "a program against libduet.a: $(cat "$tmp/log")"
fi
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
