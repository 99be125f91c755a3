#!/bin/sh
# duet chat driven from a pipe: it answers, /adapter switches (the answer to
# the same question changes), /reset clears, /save and /load round-trip, /set
# and /show, """ blocks, a full context drops the oldest turns, Ctrl-C
# during the prompt keeps nothing, and bad commands are errors that do not
# end the chat.
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
[ $? -eq 1 ] && grep -q 'does not fit the context.*not kept.*--ctx' "$T/full.err"; ok $? "piped chat with a failed message exits 1: $(cat "$T/full.err")"

# the conversation outgrows the context: the oldest turns go, the answer comes
printf 'Hello\nHow are you today\nAnd then\n' | chat --adapter base --ctx 40 >"$T/drop.out" 2>"$T/drop.err"
[ $? -eq 0 ] && [ "$(wc -l <"$T/drop.out")" -eq 3 ] && grep -q 'context was full: the 2 oldest messages were dropped' "$T/drop.err"
ok $? "a full context drops the oldest turn and answers: $(cat "$T/drop.err")"
# a message that cannot fit alone is not kept: the history is what it was, the next message is answered
long="this message is much longer than the thirty positions of this context: it goes on and on, word after word, far past the end of what the context holds, so it cannot fit even alone"
printf 'Hello\n%s\n/show\nHello\n' "$long" | chat --adapter base --ctx 30 >"$T/long.out" 2>"$T/long.err"
[ $? -eq 1 ] && grep -q 'not kept' "$T/long.err" && grep -q 'context: [0-9]* of 30 positions in use, 2 messages' "$T/long.err" &&
    [ "$(grep -c 'tok/s' "$T/long.err")" -eq 2 ]
ok $? "a message too long for the context is dropped, the chat goes on: $(cat "$T/long.err")"

# the / commands
printf '/help\n' | chat 2>"$T/help.err" >/dev/null
grep -q '/set NAME VALUE' "$T/help.err" && grep -q '"""' "$T/help.err"; ok $? "/help lists the commands"
printf '/adapter\nHello\n' | chat >"$T/cur.out" 2>"$T/cur.err"
grep -q 'adapter: alpha; in the model: base, alpha' "$T/cur.err" && cmp -s "$T/cur.out" "$T/alpha.out"
ok $? "/adapter alone shows the current adapter and the list, and switches nothing: $(cat "$T/cur.err")"
printf '/set temperature 1.5\n/set parameter top_k 0\n/set top_p 1\n/set min_p 0\n/set repeat_penalty 1.1\n/set seed 1\n/set max_tokens 16\nHello\n' |
    "$DUET" chat "$M" --ignore-eos >"$T/set.out" 2>"$T/set.err"
[ "$(cat "$T/set.out")" = "$s1" ]; ok $? "/set gives what the same flags give: $(cat "$T/set.err")"
printf '/set temprature 1\n/set top_k x\n/set top_p 7\n/set\nHello\n' | chat >"$T/bad_set.out" 2>"$T/bad_set.err"
grep -q 'no such setting; did you mean temperature' "$T/bad_set.err" && grep -q '/set top_k: expected a whole number' "$T/bad_set.err" &&
    grep -q '/set top_p: .*top_p' "$T/bad_set.err" && grep -q 'temperature 0, top_k' "$T/bad_set.err" && [ -s "$T/bad_set.out" ]
ok $? "bad /set values are errors and change nothing: $(cat "$T/bad_set.err")"
printf 'Hello\n/show\n' | chat --system "Be brief" >/dev/null 2>"$T/show.err"
grep -q 'model: tests/fixtures/models/tiny-qwen2' "$T/show.err" && grep -q 'adapter: alpha' "$T/show.err" &&
    grep -q 'context: [1-9][0-9]* of 4096 positions in use, 3 messages, system: Be brief' "$T/show.err"
ok $? "/show: model, adapter, settings, context use: $(cat "$T/show.err")"
printf '/nope\n/sav\nHello\n' | chat >"$T/unk.out" 2>"$T/unk.err"
[ $? -eq 0 ] && grep -q 'unknown command /nope; /help' "$T/unk.err" && grep -q 'did you mean /save' "$T/unk.err" && [ -s "$T/unk.out" ]
ok $? "unknown commands: an error with a suggestion, the chat goes on"

# a message of several lines between """ marks: the same answer as generate --chat with those lines
printf '"""Hello\nthere"""\n' | chat --adapter base >"$T/ml.out" 2>/dev/null
"$DUET" generate "$M" --chat "$(printf 'Hello\nthere')" --greedy -n 12 --kv f16 >"$T/ml.want"
cmp -s "$T/ml.out" "$T/ml.want"; ok $? "\"\"\" joins lines into one message"
printf '"""\nHello\nthere\n"""\n/show\n' | chat --adapter base 2>"$T/ml2.err" | grep -q .
grep -q '2 messages' "$T/ml2.err"; ok $? "\"\"\" on lines of their own: one message"

# Ctrl-C while a long prompt is prefilled: no first token reported, the message not kept, the chat goes on
mkfifo "$T/in"
words=$(awk 'BEGIN { for (i = 0; i < 700; i++) printf "word%d ", i }')
"$DUET" chat demo/base --chunk 1 -t 1 -n 4 --greedy <"$T/in" >"$T/int.out" 2>"$T/int.err" &
pid=$!
exec 3>"$T/in"
printf '%s\n' "$words" >&3
sleep 1.5
kill -INT $pid
sleep 0.3
printf '/show\nHello\n' >&3
exec 3>&-
wait $pid
[ $? -eq 0 ] && grep -q 'stopped before the first token: the message was not kept' "$T/int.err" &&
    ! grep -q 'first token [0-9]* ms.*stopped' "$T/int.err" && grep -q '0 messages' "$T/int.err" && grep -q 'tok/s' "$T/int.err"
ok $? "Ctrl-C during the prompt: $(cat "$T/int.err")"

"$DUET" chat tests/fixtures/no-such-model </dev/null >/dev/null 2>"$T/miss.err"
[ $? -ne 0 ] && grep -q 'duet: error' "$T/miss.err"; ok $? "missing model: one error line, exit 1"

rm -rf "$T"
echo "chat: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
