#!/bin/sh
# help.sh - the command line explains itself: duet --help lists every
# command, `duet help CMD` and `duet CMD --help` print each one's options with
# a description, misspelt commands and options get a suggestion, --version
# matches the header and what compile writes; sampling defaults come from the
# model's generation_config.json (else llama.cpp's), the seed is random unless
# given, --greedy makes a run repeatable; errors say what to do (Ollama's and
# llama.cpp's command names point at duet's), docs/CLI.md is the help.
DUET=${DUET:-build/duet}
M=tests/fixtures/models/tiny-qwen2
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL help.sh: $1"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/duet-help.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

"$DUET" --help > "$tmp/top" 2>&1 && ok || bad "duet --help exits non-zero"
cmds=$(sed -n '/^commands:/,/^$/p' "$tmp/top" | awk 'NF > 1 {print $1}')
[ "$(echo "$cmds" | wc -w)" -ge 10 ] && ok || bad "duet --help lists $(echo "$cmds" | wc -w) commands"
for c in $cmds; do
    "$DUET" help "$c" > "$tmp/h1" 2>&1 || bad "duet help $c fails"
    "$DUET" "$c" --help > "$tmp/h2" 2>&1 || bad "duet $c --help fails"
    cmp -s "$tmp/h1" "$tmp/h2" && ok || bad "duet help $c and duet $c --help differ"
    head -n 1 "$tmp/h1" | grep -q "^usage: duet $c " && ok || bad "duet help $c: no usage line"
    # every option line: the flag, then a description
    n=$(grep -cE '^  -' "$tmp/h1")
    d=$(grep -E '^  -' "$tmp/h1" | grep -cE '^  -[^ ]*( [^ ]+)?(, -[^ ]*( [^ ]+)?)? {2,}[A-Za-z"(]')
    w=$(grep -cE '^  -[^ ]+ [^ ]+$' "$tmp/h1") # long "--isa a|b|c" lines have their text on the next line
    [ "$n" -ge 2 ] && [ $((d + w)) -eq "$n" ] && ok || bad "duet help $c: $n option lines, $d with a description"
done
"$DUET" help generate | grep -q -- '--max-tokens N .*(default 128)' && ok || bad "generate --help: --max-tokens default"
for f in --top-k --min-p --repeat-penalty --greedy --chunk --isa --temperature --seed --lora --adapter; do
    "$DUET" chat --help | grep -q -- "$f" && ok || bad "chat --help lacks $f"
done
"$DUET" help compile | grep -A1 -- '--quant f32|bf16|f16|q8|q6|q5|q4|q4s|q3' | grep -q '(default bf16)' && ok || bad "compile --help: --quant default"

# misspellings
"$DUET" generate "$M" --max-token 3 --ids 1 2> "$tmp/err" && bad "--max-token accepted"
grep -q '^duet: error: generate: unknown option "--max-token" (did you mean --max-tokens?)$' "$tmp/err" && ok \
    || bad "did you mean for a flag: $(cat "$tmp/err")"
"$DUET" chat "$M" --temprature 0.5 < /dev/null 2> "$tmp/err" && bad "--temprature accepted"
grep -q 'did you mean --temperature?' "$tmp/err" && ok || bad "did you mean in chat: $(cat "$tmp/err")"
"$DUET" genrate 2> "$tmp/err" && bad "genrate accepted"
grep -q '^duet: error: unknown command "genrate" (did you mean generate?)$' "$tmp/err" && ok \
    || bad "did you mean for a command: $(cat "$tmp/err")"
"$DUET" inspect a.duet --zzzzzz 2> "$tmp/err"
grep -q '^duet: error: inspect: unknown option "--zzzzzz" (duet inspect --help lists the options)$' "$tmp/err" && ok \
    || bad "unknown option without a suggestion: $(cat "$tmp/err")"
# one wording for unknown options, in every command
for c in $cmds; do
    "$DUET" "$c" --no-such-flag > /dev/null 2> "$tmp/err"
    grep -q "^duet: error: $c: unknown option \"--no-such-flag\"" "$tmp/err" && ok || bad "$c: $(cat "$tmp/err")"
done
"$DUET" tokenize "$M" "$M" --text hi 2> "$tmp/err"
grep -q '^duet: error: tokenize: unexpected argument' "$tmp/err" && ok || bad "second positional: $(cat "$tmp/err")"
"$DUET" generate "$M" --max-tokens=2 --ids 1,2 --greedy > /dev/null 2> "$tmp/err" && ok || bad "--name=value: $(cat "$tmp/err")"

# --version: the header's, the library's and the generator compile writes
v=$("$DUET" --version)
h=$(sed -n 's/^#define DUET_VERSION "\(.*\)"$/\1/p' include/duet.h)
[ "$v" = "duet $h" ] && ok || bad "--version says '$v', duet.h says '$h'"

# sampling defaults
mkdir "$tmp/m"
for f in "$M"/*; do ln -s "$PWD/$f" "$tmp/m/"; done
rm "$tmp/m/generation_config.json"
line() { "$DUET" generate "$@" --ids 1,2,3 --max-tokens 1 -v 2>&1 >/dev/null | grep '^sampling:'; }
line "$tmp/m" | grep -q 'temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1,' && ok \
    || bad "no generation_config.json: llama.cpp's defaults: $(line "$tmp/m")"
printf '{"do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "repetition_penalty": 1.1, "eos_token_id": 151645}' \
    > "$tmp/m/generation_config.json"
line "$tmp/m" | grep -q 'temperature 0.7, top_k 20, top_p 0.8, min_p 0, repeat_penalty 1.1,' && ok \
    || bad "generation_config.json: $(line "$tmp/m")"
line "$tmp/m" --temperature 0.3 --top-k 5 | grep -q 'temperature 0.3, top_k 5, top_p 0.8,' && ok \
    || bad "flags over generation_config.json: $(line "$tmp/m" --temperature 0.3 --top-k 5)"
line "$tmp/m" --greedy | grep -q "temperature 0, .*repeat_penalty 1," && ok || bad "--greedy: $(line "$tmp/m" --greedy)"
"$DUET" compile "$tmp/m" --quant f16 -o "$tmp/g.duet" > /dev/null 2>&1
line "$tmp/g.duet" | grep -q 'temperature 0.7, top_k 20, top_p 0.8, min_p 0, repeat_penalty 1.1,' && ok \
    || bad "a .duet keeps generation_config.json: $(line "$tmp/g.duet")"
"$DUET" inspect "$tmp/g.duet" --json | grep -q "\"generator\":[ ]*\"duet $h\"" && ok || bad "generator is not duet $h"
printf '{"do_sample": false, "temperature": 0.7, "repetition_penalty": 1.2}' > "$tmp/m/generation_config.json"
line "$tmp/m" | grep -q 'temperature 0, .*repeat_penalty 1.2,' && ok || bad "do_sample false: $(line "$tmp/m")"
printf '{"temperature": "hot"}' > "$tmp/m/generation_config.json"
"$DUET" generate "$tmp/m" --ids 1 2> "$tmp/err" > /dev/null
grep -q 'generation_config.json: field "temperature": expected a number' "$tmp/err" && ok || bad "bad temperature: $(cat "$tmp/err")"
# the seed: random unless given (printed with -v); a given seed repeats
s1=$(line "$M" | sed 's/.*seed //'); s2=$(line "$M" | sed 's/.*seed //')
[ -n "$s1" ] && [ "$s1" != "$s2" ] && ok || bad "two runs got the seeds '$s1' and '$s2'"
g() { "$DUET" generate "$M" --ids 1,2,3 --max-tokens 12 --ignore-eos --print-ids --temperature 1.5 --top-k 0 "$@" 2>/dev/null; }
a=$(g --seed 5); b=$(g --seed 5); c=$(g --seed 6)
[ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] && ok || bad "seeds: '$a' '$b' '$c'"

# errors that say what to pass instead
A=tests/fixtures/models/tiny-qwen2-lora-alpha
err() { "$DUET" "$@" < /dev/null > /dev/null 2> "$tmp/err"; [ $? -ne 0 ] && cat "$tmp/err"; }
err inspect "$M" | grep -q 'is a folder; inspect takes a .duet file' && ok || bad "inspect of a folder: $(cat "$tmp/err")"
err generate "$A" --ids 1 | grep -q 'is a PEFT adapter, not a model; .*--lora' && ok || bad "generate of a PEFT folder: $(cat "$tmp/err")"
err chat "$A" | grep -q 'is a PEFT adapter, not a model; .*--lora' && ok || bad "chat of a PEFT folder: $(cat "$tmp/err")"
err compile "$tmp/g.duet" -o "$tmp/x.duet" | grep -q 'compile takes a checkpoint folder.*already compiled' && ok \
    || bad "compile of a .duet: $(cat "$tmp/err")"
# generate --max-tokens past what fits: a warning with the number that will come, then that many tokens
"$DUET" generate "$M" --ids 1,2 --max-tokens 100 --ctx 10 --greedy --ignore-eos --print-ids > "$tmp/out" 2> "$tmp/err"
grep -q '^duet: warning: --max-tokens 100: the prompt (2 tokens) and the answer do not fit --ctx (10 positions): at most 9 tokens$' \
    "$tmp/err" && [ "$(wc -w < "$tmp/out")" -eq 9 ] && ok || bad "--max-tokens past --ctx: $(cat "$tmp/err") $(wc -w < "$tmp/out") ids"
mkdir "$tmp/p" # the model with 64 positions
for f in "$M"/*; do ln -s "$PWD/$f" "$tmp/p/"; done
rm "$tmp/p/config.json"
sed 's/"max_position_embeddings": 4096/"max_position_embeddings": 64/' "$M/config.json" > "$tmp/p/config.json"
"$DUET" generate "$tmp/p" --ids 1,2 --max-tokens 5000 --greedy --ignore-eos --print-ids > "$tmp/out" 2> "$tmp/err"
grep -q "do not fit the model's positions (64 positions): at most 63 tokens" "$tmp/err" && [ "$(wc -w < "$tmp/out")" -eq 63 ] && ok \
    || bad "--max-tokens past the model's positions: $(cat "$tmp/err")"
"$DUET" generate "$M" --ids 1,2 --max-tokens 5 --greedy > /dev/null 2> "$tmp/err"
[ ! -s "$tmp/err" ] && ok || bad "a warning when everything fits: $(cat "$tmp/err")"

# what a user of Ollama or llama.cpp types first
"$DUET" run "$M" 2> "$tmp/err"
grep -q 'unknown command "run": use duet chat MODEL (as ollama run)' "$tmp/err" && ok || bad "duet run: $(cat "$tmp/err")"
"$DUET" show x.duet 2> "$tmp/err"
grep -q 'use duet inspect FILE.duet' "$tmp/err" && ok || bad "duet show: $(cat "$tmp/err")"
for c in "inspect $tmp/none.duet" "generate $tmp/none --ids 1" "chat $tmp/none" "compile $tmp/none -o $tmp/x.duet"; do
    "$DUET" $c < /dev/null 2> "$tmp/err"
    grep -q "^duet: error: $tmp/none[.a-z]*: no such file or folder$" "$tmp/err" && ok || bad "$c: $(cat "$tmp/err")"
done
"$DUET" logits "$M" --ids 1,2,3 --all -o "$tmp/l.f32" 2> "$tmp/err"
grep -q "^wrote $tmp/l.f32: 3 x 151936 float32 logits (every position), 1823232 bytes$" "$tmp/err" && \
    [ "$(wc -c < "$tmp/l.f32")" -eq 1823232 ] && ok || bad "logits says what it wrote: $(cat "$tmp/err")"
echo '{"type": "object",' > "$tmp/bad_schema.json"
"$DUET" generate "$M" --chat hi --json-schema "$tmp/bad_schema.json" 2> "$tmp/err" > /dev/null
grep -q "^duet: error: $tmp/bad_schema.json: " "$tmp/err" && ok || bad "a bad schema names its file: $(cat "$tmp/err")"

# docs/CLI.md is the help as the binary prints it
if DUET="$DUET" sh docs/cli.sh --stdout | cmp -s - docs/CLI.md; then ok; else bad "docs/CLI.md is out of date: run sh docs/cli.sh"; fi

echo "help: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
