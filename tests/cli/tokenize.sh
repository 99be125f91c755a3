#!/bin/sh
# tokenize.sh - `duet tokenize` / `duet detokenize` against the Qwen2 tokenizer
# of the tiny model fixture. Run by tests/run.sh with DUET set to the binary.
DUET=${DUET:-build/duet}
M=tests/fixtures/models/tiny-qwen2
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL tokenize.sh: $1"; }
if [ ! -x "$DUET" ]; then
    echo "FAIL tokenize.sh: $DUET not built (make builds it)"
    echo "cli_tokenize: 0 passed, 1 failed"
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$DUET" tokenize $M --text 'Hello, world!')
[ "$out" = "9707 11 1879 0" ] && ok || bad "tokenize --text: got '$out'"

out=$("$DUET" tokenize $M --text '<|im_start|>user
hi<|im_end|>')
[ "$out" = "151644 872 198 6023 151645" ] && ok || bad "tokenize added tokens: got '$out'"

printf 'caf\303\251 123' > "$tmp/in.txt"
a=$("$DUET" tokenize $M --file "$tmp/in.txt")
b=$("$DUET" tokenize $M --text "$(cat "$tmp/in.txt")")
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "tokenize --file equals --text: '$a' vs '$b'"

"$DUET" detokenize $M --ids 9707,11,1879,0 > "$tmp/out.txt"
printf 'Hello, world!' | cmp -s - "$tmp/out.txt" && ok || bad "detokenize prints the text with no newline"

"$DUET" detokenize $M --ids "$a" > "$tmp/rt.txt"
cmp -s "$tmp/in.txt" "$tmp/rt.txt" && ok || bad "detokenize(tokenize(x)) == x"

printf 'ab\200' > "$tmp/bad.txt"
if "$DUET" tokenize $M --file "$tmp/bad.txt" > /dev/null 2> "$tmp/err"; then bad "invalid UTF-8 accepted"
else grep -q '^duet: error: .*invalid UTF-8 at byte offset 2' "$tmp/err" && ok || bad "invalid UTF-8 message: $(cat "$tmp/err")"; fi

if "$DUET" detokenize $M --ids 1,99999999 > /dev/null 2> "$tmp/err"; then bad "out-of-range id accepted"
else grep -q '^duet: error: .*99999999' "$tmp/err" && ok || bad "bad id message: $(cat "$tmp/err")"; fi

if "$DUET" tokenize /nonexistent --text hi > /dev/null 2> "$tmp/err"; then bad "missing model accepted"
else grep -q '^duet: error: ' "$tmp/err" && ok || bad "missing model message"; fi

echo "cli_tokenize: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
