#!/bin/sh
# run_bench.sh - builds bench_kern from the kernel sources alone (no other
# libraries needed) into $B, one binary per PREFETCH distance given, e.g.
#   sh bench/run_bench.sh /tmp/b 2048 4096
set -e
B=${1:-build/bench}; shift || true
mkdir -p "$B"
F="-std=c11 -O2 -D_GNU_SOURCE -Isrc -pthread"
for f in kern cpu pool quant kern_scalar kern_ref kern_lora lora8; do cc $F -c src/kern/$f.c -o "$B/$f.o"; done
cc $F -c src/util/err.c -o "$B/err.o"
X512="-mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx512bf16"
for f in src/kern/*_avx2.c; do cc $F -mavx2 -mfma -mf16c -c "$f" -o "$B/$(basename "$f" .c).o"; done
for f in src/kern/*_avx512.c; do
    case "$f" in */kern_avx512.c) ;; *) cc $F $X512 -c "$f" -o "$B/$(basename "$f" .c).o" ;; esac
done
for pf in ${@:-4096}; do
    cc $F $X512 -DPREFETCH=$pf -c src/kern/kern_avx512.c -o "$B/kern_avx512.o"
    cc $F -o "$B/bench_kern_$pf" bench/bench_kern.c "$B"/*.o -lm
done
