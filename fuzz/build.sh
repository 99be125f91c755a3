#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ with clang (ASan + UBSan).
# Usage: sh fuzz/build.sh [TARGET...]   (default: every fuzz/fuzz_*.c)
#        build-fuzz/fuzz_safetensors -max_total_time=300 fuzz/corpus/safetensors
# The library is built by the Makefile (BUILD=build-fuzz, -O1, the fuzzer's
# sanitizers): ISA kernels get their flags and only what changed is rebuilt.
set -e
CC=${CC:-clang}
SAN="-fsanitize=fuzzer-no-link,address,undefined"
LIBS="-lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread"
# the library through the Makefile: its ISA flags, its dependency files
# (only what changed is rebuilt), into build-fuzz/
make -s -j2 BUILD=build-fuzz CC="$CC" OPT=-O1 SAN="$SAN" build-fuzz/libduet.a
targets="$*"
[ -n "$targets" ] || targets=$(ls fuzz/fuzz_*.c | sed 's|fuzz/||; s|\.c$||')
for name in $targets; do
    if [ "$name" = fuzz_serve ]; then
        # duet serve's request parsing and response mapping: no model code, no HTTP library
        $CC -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz_serve \
            fuzz/fuzz_serve.c src/serve/serve_req.c src/serve/serve_resp.c -lcjson -lm
        continue
    fi
    extra=""
    [ "$name" = fuzz_duet_run ] && extra=tests/duet_image.c # rebuilds images with checksums made right
    $CC -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
        -o "build-fuzz/$name" "fuzz/$name.c" $extra build-fuzz/libduet.a $LIBS
done
echo "built: $(ls build-fuzz | grep fuzz_ | tr '\n' ' ')"
