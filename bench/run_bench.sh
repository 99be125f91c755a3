#!/bin/sh
# run_bench.sh - builds bench_kern from the kernel sources alone (no other
# libraries needed) into $B, one binary per PREFETCH distance given, e.g.
#   sh bench/run_bench.sh /tmp/b 2048 4096
set -e
B=${1:-build/bench}; shift || true
mkdir -p "$B"
F="-std=c11 -O2 -D_GNU_SOURCE -Isrc -pthread"
for f in kern cpu pool quant kern_scalar kern_ref; do cc $F -c src/kern/$f.c -o "$B/$f.o"; done
cc $F -c src/util/err.c -o "$B/err.o" 2>/dev/null
cc $F -mavx2 -mfma -mf16c -c src/kern/kern_avx2.c -o "$B/kern_avx2.o"
for pf in ${@:-4096}; do
    cc $F -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16 \
        -DPREFETCH=$pf -c src/kern/kern_avx512.c -o "$B/kern_avx512.o"
    cc $F -o "$B/bench_kern_$pf" bench/bench_kern.c "$B"/*.o -lm
done
