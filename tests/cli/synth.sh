#!/bin/sh
# synth.sh - `duet synth` and `duet bench` on the hidden tiny shape: the
# checkpoint and its LoRA folder load with duet's own loaders, the adapter
# changes what generate produces, synth is deterministic in its seed, bench
# --json prints one well-formed object with the documented keys, and bad
# arguments give "duet: error:" lines. Needs only sh, grep, awk, cmp.
DUET=${DUET:-build/duet}
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL synth.sh: $1"; }
if [ ! -x "$DUET" ]; then
    echo "FAIL synth.sh: $DUET not built (make builds it)"
    echo "synth: 0 passed, 1 failed"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$DUET" synth --like tiny -o "$tmp/m" --lora a=8 --seed 7 > "$tmp/log" 2>&1 && ok || bad "synth tiny: $(cat "$tmp/log")"
for f in m/config.json m/generation_config.json m/model.safetensors m-lora-a/adapter_config.json \
         m-lora-a/adapter_model.safetensors; do
    [ -s "$tmp/$f" ] && ok || bad "synth wrote no $f"
done
grep -q '"peft_type": "LORA"' "$tmp/m-lora-a/adapter_config.json" && grep -q '"r": 8,' "$tmp/m-lora-a/adapter_config.json" \
    && grep -q '"lora_alpha": 16,' "$tmp/m-lora-a/adapter_config.json" && ok || bad "adapter_config.json fields"
grep -q 'base_model.model.model.layers.1.mlp.down_proj.lora_B.weight' "$tmp/m-lora-a/adapter_model.safetensors" \
    && ok || bad "adapter tensor names"

# the same seed gives the same bytes; another seed does not
"$DUET" synth --like tiny -o "$tmp/m2" --seed 7 > /dev/null 2>&1
cmp -s "$tmp/m/model.safetensors" "$tmp/m2/model.safetensors" && ok || bad "synth is not deterministic"
"$DUET" synth --like tiny -o "$tmp/m3" --seed 8 > /dev/null 2>&1
cmp -s "$tmp/m/model.safetensors" "$tmp/m3/model.safetensors" && bad "--seed changes nothing" || ok

# small shards: several files plus the index, and the folder still loads
"$DUET" synth --like tiny -o "$tmp/sh" --seed 7 --shard-mb 0.1 > /dev/null 2>&1
n=$(ls "$tmp/sh" | grep -c '^model-0000[0-9]-of-0000[0-9].safetensors$')
[ -s "$tmp/sh/model.safetensors.index.json" ] && [ "$n" -ge 2 ] && ok || bad "--shard-mb 0.1: no shards: $(ls "$tmp/sh")"
g0=$("$DUET" generate "$tmp/m" --ids 1,2,3 --max-tokens 12 --greedy --ignore-eos --print-ids 2> "$tmp/err")
g1=$("$DUET" generate "$tmp/sh" --ids 1,2,3 --max-tokens 12 --greedy --ignore-eos --print-ids 2>> "$tmp/err")
[ -n "$g0" ] && [ "$g0" = "$g1" ] && ok || bad "sharded checkpoint differs: '$g0' vs '$g1' $(cat "$tmp/err")"

g2=$("$DUET" generate "$tmp/m" --lora "$tmp/m-lora-a" --ids 1,2,3 --max-tokens 12 --greedy --ignore-eos --print-ids 2> "$tmp/err")
n=$(echo "$g2" | wc -w)
[ "$n" -eq 12 ] && ok || bad "generate with the LoRA: '$g2' $(cat "$tmp/err")"
[ "$g0" != "$g2" ] && ok || bad "the LoRA does not change the output: '$g0'"

# bench --json: one object, one member per line, with the keys the README and scripts use
"$DUET" bench "$tmp/m" --lora a="$tmp/m-lora-a" --prompt-tokens 16 --gen-tokens 8 --reps 1 --json > "$tmp/j" 2> "$tmp/err" \
    && ok || bad "bench --json failed: $(cat "$tmp/err")"
awk 'NR == 1 { if ($0 != "{") bad = 1; next }
     { lines[NR] = $0 }
     END {
         if (lines[NR] != "}") bad = 1
         for (i = 2; i < NR; i++) {
             s = lines[i]
             if (s !~ /^  "[a-z_]+": (-?[0-9][0-9.e+-]*|null|"([^"\\]|\\.)*")(,)?$/) bad = 1
             if ((i < NR - 1) != (s ~ /,$/)) bad = 1
         }
         exit bad
     }' "$tmp/j" && ok || bad "bench --json is not one well-formed object: $(cat "$tmp/j")"
for k in prefill_tok_s decode_tok_s ttft_ms bytes_per_token threads decode_tok_s_adapter adapter_slowdown_pct \
         bandwidth_gbs model quant isa; do
    grep -q "^  \"$k\": " "$tmp/j" && ok || bad "bench --json lacks $k"
done
grep -Eq '^  "decode_tok_s_adapter": [0-9]' "$tmp/j" && grep -Eq '^  "bytes_per_token": [1-9]' "$tmp/j" && ok \
    || bad "bench --json values: $(cat "$tmp/j")"
"$DUET" bench --memory --memory-mb 8 --reps 1 --json > "$tmp/j" 2> "$tmp/err"
grep -Eq '^  "bandwidth_gbs": [0-9]' "$tmp/j" && ok || bad "bench --memory --json: $(cat "$tmp/j" "$tmp/err")"

# bad arguments: one "duet: error:" line and a failing status
expect_error() { # WHAT PATTERN ARGS...
    what=$1; pat=$2; shift 2
    if "$DUET" "$@" > /dev/null 2> "$tmp/err"; then bad "$what: accepted"
    else grep -q "^duet: error: .*$pat" "$tmp/err" && ok || bad "$what: message '$(cat "$tmp/err")'"; fi
}
expect_error "unknown shape" 'unknown shape "qwen9"' synth --like qwen9 -o "$tmp/x"
expect_error "synth without -o" '-o DIR' synth --like tiny
expect_error "synth bad --lora" 'NAME=RANK' synth --like tiny -o "$tmp/x" --lora a=0
expect_error "synth unknown arg" 'unknown option "--frob"' synth --like tiny -o "$tmp/x" --frob
expect_error "synth -o into a non-empty folder" 'not empty.*--force' synth --like tiny -o "$tmp/m"
"$DUET" synth --like tiny -o "$tmp/m" --seed 7 --force > /dev/null 2> "$tmp/err" && ok || bad "synth --force: $(cat "$tmp/err")"
expect_error "bench without model" 'MODEL' bench
expect_error "bench --prompt-tokens 0" 'prompt-tokens' bench "$tmp/m" --prompt-tokens 0
expect_error "bench unknown adapter" 'no adapter named "zz"' bench "$tmp/m" --lora a="$tmp/m-lora-a" --adapter zz
expect_error "bench missing model" "$tmp/nope" bench "$tmp/nope"

echo "synth: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
