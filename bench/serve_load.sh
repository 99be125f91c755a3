#!/bin/sh
# The full load run of duet serve (make test runs a smaller one): CLIENTS
# concurrent clients x REQUESTS requests each, mixed adapters, half
# streaming, greedy; every answer must equal the same request run alone
# (whatever batch it rode in, whether its prefix came from the cache); 503s
# are retried; RSS after the run within 5% of RSS after a warm-up round.
#   sh bench/serve_load.sh [CLIENTS] [REQUESTS] [MODEL_DIR]   (default 32 20 demo)
DUET=${DUET:-build/duet}
c=${1:-32}; n=${2:-20}; D=${3:-demo}
T=$(mktemp -d "${TMPDIR:-/tmp}/duet-serveload.XXXXXX")
trap 'kill $SRV 2>/dev/null; rm -rf "$T"' EXIT
: > "$T/log"
$DUET serve $D/base --name demo --lora tools=$D/tools --lora shell=$D/shell --port 0 --api-key k \
    --parallel 8 --queue 16 --queue-timeout 5 --ctx 1024 --quiet 2>"$T/log" &
SRV=$!
i=0
while [ $i -lt 100 ] && ! grep -q 'on http://' "$T/log"; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log")
[ -n "$PORT" ] || { cat "$T/log"; exit 1; }
node tests/serve/api.mjs "http://127.0.0.1:$PORT" k $SRV --load-only "$c" "$n"
