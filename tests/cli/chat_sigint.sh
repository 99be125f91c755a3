#!/bin/sh
# duet chat in a terminal (tmux, on a private socket): line editing and the
# history (Up recalls a line, kept in $HOME/.duet_history), """ blocks;
# Ctrl-C stops the answer being generated and the chat goes on; Ctrl-C twice
# at the prompt quits.
# Prints "chat_sigint: skipped (tmux not installed)" when tmux is missing.
DUET=${DUET:-build/duet}
M=tests/fixtures/models/tiny-qwen2
pass=0; fail=0
ok() { if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
if ! command -v tmux >/dev/null 2>&1; then echo "chat_sigint: skipped (tmux not installed)"; exit 0; fi
S="duet-sigint-$$"
tm() { tmux -L "$S" "$@"; }
screen() { tm capture-pane -p -t t -S -200; }
wait_for() { # PATTERN SECONDS
    i=0
    while [ $i -lt $(($2 * 10)) ]; do
        screen | grep -q "$1" && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
H=$(mktemp -d "${TMPDIR:-/tmp}/duet-chat-tty.XXXXXX")
trap 'rm -rf "$H"' EXIT
tm new-session -d -s t -x 160 -y 50 "HOME=$H $DUET chat $M --ignore-eos --max-tokens 0 --ctx 4096; echo EXITED=\$?; sleep 30"
wait_for 'duet chat:' 20; ok $? "chat starts in a terminal"
# line editing: Up recalls the last line, Left moves into it, typing inserts
tm send-keys -t t '/set max_tokens 3' Enter
wait_for 'max_tokens 3\]' 10; ok $? "/set at the terminal"
tm send-keys -t t '/set seed 11' Enter
wait_for 'seed 11\]' 10
tm send-keys -t t Up Up Left 3 Enter
wait_for 'max_tokens 33\]' 10; ok $? "Up recalls an earlier line, Left and typing edit it"
tm send-keys -t t '"""first line' Enter 'second line"""' Enter
wait_for '3 tokens.*context' 10; ok $? "a \"\"\" block is one message"
tm send-keys -t t '/set max_tokens 0' Enter
tm send-keys -t t 'Tell me a long story' Enter
sleep 1.5
tm send-keys -t t C-c
wait_for 'stopped\]' 10; ok $? "Ctrl-C stops the answer"
tm send-keys -t t '/reset' Enter
wait_for 'context cleared' 10; ok $? "the chat goes on after Ctrl-C"
tm send-keys -t t C-c
sleep 0.3
tm send-keys -t t C-c
wait_for 'EXITED=0' 10; ok $? "Ctrl-C twice at the prompt quits with status 0"
grep -q 'second.040line"""' "$H/.duet_history" && grep -q 'max_tokens.04033' "$H/.duet_history"
ok $? "the lines typed are kept in \$HOME/.duet_history"
rm -rf "$H"
[ $fail -ne 0 ] && screen | tail -n 20
tm kill-server 2>/dev/null
echo "chat_sigint: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
