#!/bin/sh
# duet template: renders the qwen3 golden case with tools byte for byte, and
# fails cleanly on bad input. Run by tests/run.sh with DUET set.
DUET=${DUET:-build/duet}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { if [ "$1" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
python3 - "$tmp" <<'PY' || { echo "template_cli: 0 passed, 1 failed"; exit 1; }
import json, sys
g = json.load(open("tests/fixtures/chat_template/golden.json"))
c = g["cases"][16]
d = sys.argv[1]
json.dump(c["messages"], open(d + "/m.json", "w"))
json.dump(c["tools"], open(d + "/t.json", "w"))
open(d + "/want", "w", encoding="utf-8", newline="").write(c["expected"])
PY
"$DUET" template tests/fixtures/tokenizer --messages "$tmp/m.json" --tools "$tmp/t.json" > "$tmp/got"
ok $? "render exit status"
cmp -s "$tmp/got" "$tmp/want"; ok $? "rendered prompt differs from golden case 16"
"$DUET" template tests/fixtures/tokenizer --messages tests/fixtures/tokenizer/tokenizer_config.json 2> "$tmp/err" >/dev/null
[ $? -ne 0 ] && grep -q "^duet: error: .*expected a JSON array" "$tmp/err"; ok $? "messages not an array"
# a message without content or role is blamed on the messages file, not on the template
echo '[{"role":"user","content":"hi"},{"role":"user"}]' >"$tmp/nocontent.json"
"$DUET" template tests/fixtures/tokenizer --messages "$tmp/nocontent.json" 2> "$tmp/err" >/dev/null
[ $? -ne 0 ] && grep -q "^duet: error: .*nocontent.json: message 1: field \"content\" is missing" "$tmp/err"
ok $? "missing content named in the file: $(cat "$tmp/err")"
echo '[{"content":"hi"}]' >"$tmp/norole.json"
"$DUET" template tests/fixtures/tokenizer --messages "$tmp/norole.json" 2> "$tmp/err" >/dev/null
[ $? -ne 0 ] && grep -q "norole.json: message 0: field \"role\"" "$tmp/err"; ok $? "missing role named in the file"
"$DUET" template /no/such/model --messages "$tmp/m.json" 2> "$tmp/err" >/dev/null
[ $? -ne 0 ] && grep -q "^duet: error:" "$tmp/err"; ok $? "missing model"
echo "template_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
