#!/bin/sh
# arm64.sh - cross-compiles the kernel tests for aarch64 and runs it under qemu as a
# Cortex-A76 (the Raspberry Pi 5's core: NEON + dot product, no SVE / i8mm), so
# the NEON backend is checked on an x86 box. Run from the repository root.
# As root with CI=true it installs the cross compiler and qemu if missing.
# Prints the test's summary line; exits non-zero if anything failed.
set -e
missing=
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
    command -v $tool >/dev/null 2>&1 || missing=yes
done
if [ -n "$missing" ] && [ "$CI" = true ] && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user-static >/dev/null
fi
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
    command -v $tool >/dev/null 2>&1 || { echo "arm64.sh: $tool missing (run as root with CI=true to install)"; exit 2; }
done
# Linked statically: Debian 12's qemu-user 7.2 hangs in pthread_create of a
# dynamically linked aarch64 program on this host. test_kern needs only libm
# from the system (the archive's objects that use cJSON & co. are not pulled
# in), so no arm64 -dev packages are needed; the full duet binary would need
# `dpkg --add-architecture arm64` and libcjson-dev:arm64 libpcre2-dev:arm64
# libutf8proc-dev:arm64 libxxhash-dev:arm64.
# The kernel tests: the backends (test_kern), the LoRA products with the
# NEON lora_b (test_kern_lora).
tests="test_kern test_kern_lora"
rc=0
for t in $tests; do
    rm -f build-arm64/tests/$t
    make -s CC=aarch64-linux-gnu-gcc BUILD=build-arm64 LDFLAGS="-static -pthread" LDLIBS=-lm build-arm64/tests/$t
    trc=0
    out=$(QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64-static -cpu cortex-a76 build-arm64/tests/$t 2>&1) || trc=$?
    printf '%s\n' "$out" | grep '^FAIL' | head -n 20 || true
    printf '%s\n' "$out" | tail -n 1
    [ $trc -eq 0 ] || rc=$trc
done
exit $rc
