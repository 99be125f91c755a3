#!/bin/sh
# duet serve and llama-server side by side on the same weights, one after the
# other on the same machine, through bench/serve_bench.mjs (1 / 4 / 16
# streams, then the 10-turn conversation behind a 1k-token tools prompt).
#   sh bench/serve_vs_llama.sh MODEL.duet MODEL.gguf LLAMA_SERVER [THREADS] [TOKENS]
# MODEL.duet and MODEL.gguf: the same checkpoint (duet compile --quant q4 /
# hf_to_gguf.py + llama-quantize q4_0, see bench/README.md). Both get 16
# slots of 2048 positions and THREADS threads (default 2).
set -e
DUET=${DUET:-build/duet}
duetf=$1; gguf=$2; llama=$3; th=${4:-2}; tok=${5:-32}
[ -f "$duetf" ] && [ -f "$gguf" ] && [ -x "$llama" ] || { echo "usage: $0 MODEL.duet MODEL.gguf LLAMA_SERVER [THREADS] [TOKENS]" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/duet-servebench.XXXXXX")
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$T"' EXIT
port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})'; }
wait_up() { # URL
    i=0
    while [ $i -lt 600 ]; do
        node -e 'fetch(process.argv[1]+"/health").then(r=>process.exit(r.status===200?0:1)).catch(()=>process.exit(1))' "$1" && return 0
        sleep 0.5; i=$((i + 1))
    done
    return 1
}

p=$(port)
$DUET serve "$duetf" --name m --port "$p" --threads "$th" --parallel 16 --ctx 2048 --quiet 2>"$T/duet.log" &
pid=$!
wait_up "http://127.0.0.1:$p" || { cat "$T/duet.log"; exit 1; }
node bench/serve_bench.mjs "http://127.0.0.1:$p" m --label duet --tokens "$tok"
kill $pid; wait $pid 2>/dev/null || true; pid=""

p=$(port)
"$llama" -m "$gguf" --port "$p" -t "$th" -tb "$th" -np 16 -c 32768 --no-webui >"$T/llama.log" 2>&1 &
pid=$!
wait_up "http://127.0.0.1:$p" || { tail -n 20 "$T/llama.log"; exit 1; }
node bench/serve_bench.mjs "http://127.0.0.1:$p" m --label llama-server --tokens "$tok"
kill $pid; wait $pid 2>/dev/null || true; pid=""
