#!/bin/sh
# duet chat driven from a pipe: it answers, /adapter switches (the answer to
# the same question changes), /reset clears, /save and /load round-trip, and
# bad commands are errors that do not end the chat.
DUET=${DUET:-build/duet}
M=tests/fixtures/models/tiny-qwen2
A=tests/fixtures/models/tiny-qwen2-lora-alpha
T=$(mktemp -d "${TMPDIR:-/tmp}/duet-chat-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok() { if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

chat() { "$DUET" chat "$M" --lora alpha="$A" --max-tokens 12 --greedy "$@"; }

printf 'Hello\n' | chat --adapter base >"$T/base.out" 2>"$T/base.err"
ok $? "chat exits 0"
[ -s "$T/base.out" ] && [ "$(wc -l <"$T/base.out")" -eq 1 ]; ok $? "one answer line from a pipe, no prompt decoration"
grep -q 'tok/s' "$T/base.err"; ok $? "tokens per second on stderr"

printf '/adapter alpha\nHello\n' | chat --adapter base >"$T/alpha.out" 2>"$T/alpha.err"
grep -q 'adapter: alpha' "$T/alpha.err"; ok $? "/adapter alpha reported"
! cmp -s "$T/base.out" "$T/alpha.out"; ok $? "alpha answers differently from base"
printf 'Hello\n' | chat --adapter alpha >"$T/alpha2.out" 2>/dev/null
cmp -s "$T/alpha.out" "$T/alpha2.out"; ok $? "/adapter alpha answers as --adapter alpha"

# one adapter given with --lora is the one used, with or without a name
printf 'Hello\n' | chat >"$T/one.out" 2>/dev/null
cmp -s "$T/alpha.out" "$T/one.out"; ok $? "--lora alpha=DIR given once: chat runs alpha"
printf 'Hello\n' | "$DUET" chat "$M" --lora "$A" --max-tokens 12 --greedy >"$T/noname.out" 2>/dev/null
cmp -s "$T/alpha.out" "$T/noname.out"; ok $? "--lora DIR without a name: chat runs it"

# sampling flags: a seed repeats, another seed differs
samp() { printf 'Hello\n' | "$DUET" chat "$M" --max-tokens 16 --temperature 1.5 --top-k 0 --top-p 1 --min-p 0 \
    --repeat-penalty 1.1 --ignore-eos "$@" 2>/dev/null; }
s1=$(samp --seed 1); s1b=$(samp --seed 1); s2=$(samp --seed 2)
[ -n "$s1" ] && [ "$s1" = "$s1b" ]; ok $? "chat --seed 1 twice: the same answer"
[ "$s1" != "$s2" ]; ok $? "chat --seed 1 and --seed 2: different answers"

printf 'Hello\nSomething else\n/reset\nHello\n' | chat >"$T/reset.out" 2>"$T/reset.err"
grep -q 'context cleared' "$T/reset.err"; ok $? "/reset reported"
[ "$(sed -n 1p "$T/reset.out")" = "$(sed -n 3p "$T/reset.out")" ]; ok $? "after /reset the same question gets the first answer"

printf 'Hello\n/save %s\n' "$T/s.sess" | chat >/dev/null 2>&1
printf 'Hello\nAgain\n' | chat >"$T/two.out" 2>/dev/null
printf '/load %s\nAgain\n' "$T/s.sess" | chat >"$T/load.out" 2>"$T/load.err"
[ "$(sed -n 2p "$T/two.out")" = "$(sed -n 1p "$T/load.out")" ]; ok $? "/load continues the saved conversation"

printf '/adapter nope\nHello\n' | chat >"$T/bad.out" 2>"$T/bad.err"
[ $? -eq 0 ] && grep -q 'no adapter named "nope"' "$T/bad.err" && [ -s "$T/bad.out" ]; ok $? "unknown adapter is an error, chat goes on"

# a piped chat whose message failed (the context is too small) exits 1 and says how to go on
printf 'Hello there, this is a long message\n' | chat --ctx 8 >/dev/null 2>"$T/full.err"
[ $? -eq 1 ] && grep -q 'context is full.*/reset' "$T/full.err"; ok $? "piped chat with a failed message exits 1: $(cat "$T/full.err")"

"$DUET" chat tests/fixtures/no-such-model </dev/null >/dev/null 2>"$T/miss.err"
[ $? -ne 0 ] && grep -q 'duet: error' "$T/miss.err"; ok $? "missing model: one error line, exit 1"

rm -rf "$T"
echo "chat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
