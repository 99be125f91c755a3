#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ with clang (ASan + UBSan).
# Usage: sh fuzz/build.sh && build-fuzz/fuzz_safetensors -max_total_time=300 fuzz/corpus/safetensors
set -e
mkdir -p build-fuzz/obj
CFLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer-no-link,address,undefined"
OBJS=""
for s in $(find src -name '*.c' ! -path 'src/cli/*' ! -path 'src/serve/*' ! -name '*_avx2.c' ! -name '*_avx512.c' ! -name '*_neon.c' | sort); do
    o=build-fuzz/obj/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')
    clang $CFLAGS -c -o "$o" "$s"
    OBJS="$OBJS $o"
done
rm -f build-fuzz/libduet.a
ar rcs build-fuzz/libduet.a $OBJS
# duet serve's request parsing and response mapping: no model code, no HTTP library
clang -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined -o build-fuzz/fuzz_serve \
    fuzz/fuzz_serve.c src/serve/serve_req.c src/serve/serve_resp.c -lcjson -lm
for t in fuzz/fuzz_*.c; do
    name=$(basename "$t" .c)
    [ "$name" = fuzz_serve ] && continue
    clang -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -fsanitize=fuzzer,address,undefined \
        -o "build-fuzz/$name" "$t" build-fuzz/libduet.a -lcjson -lpcre2-8 -lutf8proc -lxxhash -lm -pthread
done
echo "built: $(ls build-fuzz | grep fuzz_)"
