#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ with clang (ASan + UBSan).
# Usage: sh fuzz/build.sh [TARGET...]   (default: every fuzz/fuzz_*.c)
#        build-fuzz/fuzz_safetensors -max_total_time=300 fuzz/corpus/safetensors
# Objects are rebuilt only when their source, or any header under src/ or
# include/, is newer. ISA kernels (*_avx2.c, *_avx512.c, *_neon.c) get the
# Makefile's flags, as in the library (kern.c picks one after a CPU check).
set -e
CC=${CC:-clang}
mkdir -p build-fuzz/obj
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer-no-link,address,undefined"
LIBS="-lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread"
case $($CC -dumpmachine) in
    x86_64*) ISA='*_avx2.c *_avx512.c' ;;
    aarch64*) ISA='*_neon.c' ;;
    *) ISA='' ;;
esac
newest_h=$(find src include -name '*.h' -newer build-fuzz/libduet.a 2>/dev/null | head -1)
[ -f build-fuzz/libduet.a ] || newest_h=all
OBJS=""
for s in $(find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/serve/*' | sort); do
    flags=""
    case $s in
        *_avx2.c) flags="-mavx2 -mfma -mf16c" ;;
        *_avx512.c) flags="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16" ;;
        *_neon.c) flags="-march=armv8.2-a+dotprod+fp16" ;;
    esac
    case $s in
        *_avx2.c|*_avx512.c|*_neon.c)
            keep=""
            for p in $ISA; do case $s in $p) keep=1 ;; esac; done
            [ -n "$keep" ] || continue ;;
    esac
    o=build-fuzz/obj/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')
    if [ -n "$newest_h" ] || [ ! -f "$o" ] || [ "$s" -nt "$o" ]; then
        $CC $CFLAGS $flags -c -o "$o" "$s"
    fi
    OBJS="$OBJS $o"
done
rm -f build-fuzz/libduet.a
ar rcs build-fuzz/libduet.a $OBJS
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
