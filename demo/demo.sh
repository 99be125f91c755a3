#!/bin/sh
# demo/demo.sh - the demo `make demo` and setup.sh run: the small model
# train/ made (demo/base with its PEFT adapters demo/tools and demo/shell)
# compiled q4 with a calibration set into one .duet file, then three short
# runs a person can read.
#   sh demo/demo.sh [DUET [OUT.duet]]
set -e
DUET=${1:-build/duet}
OUT=${2:-build/demo.duet}
D=$(dirname "$0")
[ -x "$DUET" ] || { echo "demo: $DUET not found (run make first)" >&2; exit 1; }

cat <<'EOF'
== duet demo ==
The model below is a SMALL DEMO MODEL that duet trained itself (train/README.md):
7.4M parameters, trained for a few minutes on this kind of machine's man pages
and Python/Debian docs. It proves the whole flow (HF checkpoint + PEFT LoRA
folders -> one quantized .duet -> chat, tool calls) but knows little. For real
use, fine-tune and run a real checkpoint the same way, e.g. Qwen2.5-1.5B-Instruct:
    duet compile Qwen2.5-1.5B-Instruct/ --lora mine=my-lora/ --quant q4 -o model.duet
    duet chat model.duet --adapter mine

-- compile: base + adapters tools and shell, q4, calibrated on demo/calib.jsonl --
EOF
"$DUET" compile "$D/base" --lora tools="$D/tools" --lora shell="$D/shell" --quant q4 \
    --calib "$D/calib.jsonl" -o "$OUT"

Q="How hot is the CPU, in Fahrenheit? And what is the load average?"
echo
echo "-- adapter tools: a device assistant with the built-in tools (docs/TOOLS.md) --"
echo "user: $Q"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/duet-demo-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
printf '[{"role":"user","content":"%s"}]\n' "$Q" >"$TMP/m.json"
"$DUET" template "$OUT" --messages "$TMP/m.json" --tools "$D/tools.json" >"$TMP/prompt.txt"
"$DUET" generate "$OUT" --adapter tools --prompt "$(cat "$TMP/prompt.txt")" --greedy --max-tokens 80 >"$TMP/out.txt"
echo "model:"
sed 's/^/    /' "$TMP/out.txt"
echo "parsed tool calls:"
tr -d '\n' <"$TMP/out.txt" | sed 's#</tool_call>#\n#g' | sed -n 's#.*<tool_call> *{"name": "\([a-z_]*\)", "arguments": \(.*\)} *$#    \1(\2)#p'
echo
echo "-- duet agent --builtin: the same question; the tools run on this machine ([tool] lines), the model answers --"
"$DUET" agent "$OUT" --adapter tools --builtin --ask "$Q" 2>&1 || echo "(the agent failed: see the message above)"

echo
echo "-- adapter tools: answering from a tool result --"
cat >"$TMP/m2.json" <<EOF
[{"role":"user","content":"How long has this machine been up?"},
 {"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"get_uptime","arguments":{}}}]},
 {"role":"tool","name":"get_uptime","content":"{\"seconds\":$(cut -d. -f1 /proc/uptime 2>/dev/null || echo 93784),\"text\":\"(this machine)\"}"}]
EOF
up=$(cut -d. -f1 /proc/uptime 2>/dev/null || echo 93784)
txt="$((up % 86400 / 3600)) hours, $((up % 3600 / 60)) minutes"
[ "$up" -ge 86400 ] && txt="$((up / 86400)) days, $txt"
sed -i "s/(this machine)/$txt/" "$TMP/m2.json"
echo "tool result: $(sed -n 's/.*"content":"\({.*}\)"}]$/\1/p' "$TMP/m2.json" | sed 's/\\"/"/g')"
"$DUET" template "$OUT" --messages "$TMP/m2.json" --tools "$D/tools.json" >"$TMP/prompt2.txt"
printf 'model: '
"$DUET" generate "$OUT" --adapter tools --prompt "$(cat "$TMP/prompt2.txt")" --greedy --max-tokens 60
echo

echo
echo "-- adapter shell: explains commands --"
for q in "What does \`tar -xzf\` do?" "How do I find files larger than 100M in /var/log?"; do
    echo "user: $q"
    printf 'model: '
    "$DUET" generate "$OUT" --adapter shell --chat "$q" --greedy --max-tokens 60
    echo
done

echo
echo "-- base model: continuing a man page --"
P="NAME
       ls - list directory contents

SYNOPSIS
       ls [OPTION]... [FILE]...

DESCRIPTION
      "
printf '%s' "$P"
"$DUET" generate "$OUT" --prompt "$P" --greedy --max-tokens 60
echo
echo
echo "== done: $OUT holds the base and both adapters; try: $DUET chat $OUT --adapter shell =="
