#!/bin/sh
# setup.sh - installs what duet needs to build (Debian / Raspberry Pi OS),
# builds it, and runs the demo (demo/demo.sh): the small model train/ made,
# with its two LoRA adapters, compiled into one .duet file, then a tool call,
# a command explanation and a man page continuation.
set -e
PKGS="gcc make libcjson-dev libpcre2-dev libutf8proc-dev libxxhash-dev libedit-dev libmicrohttpd-dev"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq $missing
fi
make -j"$(nproc)"
make demo
echo
echo "duet is built: build/duet (make install PREFIX=... puts it on your PATH)."
echo "Next, try:  build/duet chat build/demo.duet --adapter shell      (build/duet --help lists the commands)"
