#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ with clang (ASan + UBSan).
# Usage: sh fuzz/build.sh [TARGET...]   (default: every fuzz/fuzz_*.c)
#        build-fuzz/fuzz_safetensors -max_total_time=300 fuzz/corpus/safetensors
# The library is built by the Makefile (BUILD=build-fuzz, -O1, the fuzzer's
# sanitizers; only what changed is rebuilt), the ISA kernels before it with
# their flags and ASan alone.
set -e
CC=${CC:-clang}
SAN="-fsanitize=fuzzer-no-link,address,undefined"
LIBS="-lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread"
# the ISA kernels first, with ASan only (UBSan and coverage on the intrinsics
# take clang half an hour for kern_avx512.c; the fuzzed code is elsewhere)
mkdir -p build-fuzz/src/kern
for src in src/kern/*_avx2.c src/kern/*_avx512.c src/kern/*_neon.c; do
    [ -f "$src" ] || continue
    case "$($CC -dumpmachine):$src" in
        x86_64*_avx2.c) flags="-mavx2 -mfma -mf16c" ;;
        x86_64*_avx512.c) flags="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16" ;;
        aarch64*_neon.c) flags="-march=armv8.2-a+dotprod+fp16" ;;
        *) continue ;;
    esac
    obj=build-fuzz/${src%.c}.o
    [ -f "$obj" ] && [ "$obj" -nt "$src" ] && continue
    $CC -std=c11 -O1 -g -fPIC -pthread -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=address $flags -MMD -MP -c -o "$obj" "$src"
done
# the library through the Makefile: its dependency files (only what changed
# is rebuilt), into build-fuzz/
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
