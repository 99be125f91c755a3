#!/bin/sh
# duet chat in a terminal (tmux, on a private socket): Ctrl-C stops the answer
# being generated and the chat goes on; Ctrl-C twice at the prompt quits.
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
tm new-session -d -s t -x 160 -y 50 "$DUET chat $M --ignore-eos --max-tokens 0 --ctx 4096; echo EXITED=\$?; sleep 30"
wait_for 'duet chat:' 20; ok $? "chat starts in a terminal"
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
[ $fail -ne 0 ] && screen | tail -n 20
tm kill-server 2>/dev/null
echo "chat_sigint: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
