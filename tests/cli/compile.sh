#!/bin/sh
# compile.sh - `duet compile` options around quantization on the tiny model
# fixture: --round nearest|search give different q4 files that both open,
# a bad --round value is refused, and a calibrated compile prints its
# held-out check and the quality table, which `duet inspect` shows again;
# --tensor-type gives the tensors a group word or pattern names their own
# type, bad values refused;
# --lora-type stores an adapter in q8 or f16.
# Run by tests/run.sh with DUET set to the binary.
DUET=${DUET:-build/duet}
M=tests/fixtures/models/tiny-qwen2
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL compile.sh: $1"; }
if [ ! -x "$DUET" ]; then
    echo "FAIL compile.sh: $DUET not built (make builds it)"
    echo "cli_compile: 0 passed, 1 failed"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CACHE_HOME="$tmp/cache" # the calibration statistics' cache

"$DUET" compile $M --quant q4 --round nearest -o "$tmp/n.duet" > "$tmp/log" 2>&1 && ok || bad "compile --round nearest: $(cat "$tmp/log")"
"$DUET" compile $M --quant q4 --round search -o "$tmp/s.duet" > "$tmp/log" 2>&1 && ok || bad "compile --round search: $(cat "$tmp/log")"
"$DUET" compile $M --quant q4 -o "$tmp/d.duet" > /dev/null 2>&1
cmp -s "$tmp/s.duet" "$tmp/d.duet" && ok || bad "search is the default rounding"
cmp -s "$tmp/n.duet" "$tmp/s.duet" && bad "nearest and search wrote the same file" || ok
out=$("$DUET" generate "$tmp/n.duet" --ids 1,2,3 --max-tokens 2 --greedy 2>&1) && ok || bad "generate from the nearest file: $out"

out=$("$DUET" compile $M --quant q4 --round up -o "$tmp/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'duet: error: --round: expected search or nearest, got "up"' && ok \
    || bad "bad --round value: $out"
[ ! -e "$tmp/x.duet" ] && ok || bad "a refused compile left a file"

out=$("$DUET" compile $M --quant q8 --calib tests/fixtures/calib.jsonl -o "$tmp/c.duet" 2>/dev/null)
[ $? -eq 0 ] && ok || bad "calibrated compile: $out"
echo "$out" | grep -q '^calibration: 12 prompts, .*per matrix.*statistics collected' && ok || bad "calibration line: $out"
echo "$out" | grep -Eq '^  base +[0-9.]+% +[0-9.]+ +[0-9.]+ +[0-9.]+$' && ok || bad "quality row: $out"
ls "$tmp/cache/duet/"calib-*.stats > /dev/null 2>&1 && ok || bad "no statistics cached in \$XDG_CACHE_HOME/duet"
out=$("$DUET" compile $M --quant q8 --calib tests/fixtures/calib.jsonl -v -o "$tmp/c2.duet" 2>/dev/null)
echo "$out" | grep -q '^calibration: .*statistics reused from the cache' && ok || bad "statistics not reused: $out"
echo "$out" | grep -Eq '^peak memory \(RSS\): [0-9.]+ MiB$' && ok || bad "-v: no peak memory: $out"
out=$("$DUET" inspect "$tmp/c.duet" 2>&1)
echo "$out" | grep -q 'calibration: 12 prompts, .*method per matrix' && ok || bad "inspect calibration: $out"

# the output path is checked before any work
out=$("$DUET" compile $M --quant q4 -o "$tmp/missing/dir/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q "missing/dir/x.duet: cannot create the output file: No such file or directory" && ok \
    || bad "missing output folder: $out"
out=$("$DUET" compile $M --quant q4 -q -o "$tmp/q.duet" 2>&1 >/dev/null)
[ -z "$out" ] && ok || bad "-q printed: $out"

# --lora-type: a q4 file's adapter in q8 by default (the compile and inspect
# say so), f16 when asked, a greedy answer from each, a bad value refused
A=tests/fixtures/models/tiny-qwen2-lora-alpha
out=$("$DUET" compile $M --lora alpha=$A --quant q4 -o "$tmp/l8.duet" 2>&1)
echo "$out" | grep -Eq '^adapter alpha: LoRA A and B in q8 \(at q8 its largest product B A changes by [0-9.]+%\)$' && ok \
    || bad "q4 default LoRA q8: $out"
out=$("$DUET" compile $M --lora alpha=$A --quant q4 --lora-type f16 -o "$tmp/l16.duet" 2>&1)
echo "$out" | grep -q '^adapter alpha: LoRA A and B in f16 ' && ok || bad "--lora-type f16: $out"
"$DUET" inspect "$tmp/l8.duet" | grep -Eq '^  alpha .*A and B q8 \([0-9.]+ MiB\)' && ok || bad "inspect: A and B q8"
"$DUET" inspect "$tmp/l16.duet" | grep -Eq '^  alpha .*A and B f16 ' && ok || bad "inspect: A and B f16"
[ "$(wc -c < "$tmp/l8.duet")" -lt "$(wc -c < "$tmp/l16.duet")" ] && ok || bad "8-bit adapter not smaller"
for f in l8 l16; do
    out=$("$DUET" generate "$tmp/$f.duet" --adapter alpha --ids 1,2,3 --max-tokens 4 --greedy 2>&1) && ok \
        || bad "generate from $f with its adapter: $out"
done
out=$("$DUET" compile $M --lora alpha=$A --quant q4 --lora-type q4 -o "$tmp/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'duet: error: --lora-type: expected auto, f16 or q8, got "q4"' && ok \
    || bad "bad --lora-type: $out"

# mixed precision: --tensor-type PATTERN=TYPE (group words and patterns over
# the checkpoint's names, the first rule naming a tensor wins), bad values
"$DUET" compile $M --quant q8 --tensor-type embed=f16 --tensor-type 'layers\.1\.self_attn\.o_proj=q6k' \
    --tensor-type attn=bf16 -o "$tmp/m.duet" > "$tmp/log" 2>&1 \
    && ok || bad "compile --tensor-type: $(cat "$tmp/log")"
out=$("$DUET" inspect "$tmp/m.duet" --json 2>&1)
echo "$out" | tr -d ' \n' | grep -q '"name":"embed","type":"f16"' && ok || bad "embed f16 in inspect: $out"
echo "$out" | tr -d ' \n' | grep -q '"name":"layers.0.o_proj","type":"bf16"' && ok \
    || bad "o_proj bf16 in inspect"
echo "$out" | tr -d ' \n' | grep -q '"name":"layers.1.o_proj","type":"q6k"' && ok \
    || bad "layer 1 o_proj q6k (the pattern before the group) in inspect"
echo "$out" | tr -d ' \n' | grep -q '"name":"layers.0.down_proj","type":"q8"' && ok || bad "down_proj q8 in inspect"
out=$("$DUET" generate "$tmp/m.duet" --ids 1,2,3 --max-tokens 2 --greedy 2>&1) && ok || bad "generate from the mixed file: $out"
out=$("$DUET" compile $M --quant q8 --tensor-type 'blk\.0\.ffn=f16' -o "$tmp/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -qF 'duet: error: tensor type "blk\.0\.ffn=f16": names no tensor of' && ok \
    || bad "a pattern that names no tensor: $out"
out=$("$DUET" compile $M --quant q8 --tensor-type 'mlp.(=f16' -o "$tmp/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'is not a regular expression' && ok || bad "a bad pattern: $out"
out=$("$DUET" compile $M --quant q8 --tensor-type mlp=q3 -o "$tmp/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q '"mlp=q3": expected PATTERN=TYPE' && ok || bad "bad --tensor-type type: $out"
out=$("$DUET" compile $M --quant q8 --tensor-type lm_head=f16 -o "$tmp/x.duet" 2>&1)
[ $? -ne 0 ] && echo "$out" | grep -q 'the lm_head is the embedding (tie_word_embeddings): give its type as embed=TYPE' && ok \
    || bad "lm_head of a tied model: $out"
[ ! -e "$tmp/x.duet" ] && ok || bad "a refused compile left a file"

echo "cli_compile: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
