#!/bin/sh
# duet agent: the tool list, the demo model answering "What is the CPU
# temperature?" from a fake /sys (the answer holds the sensor's value), a real
# MCP server from npm (installed by .ci/run into build/mcp; "skipped" when it
# is absent), bad tool sources refused. Run by tests/run.sh with DUET set.
DUET=${DUET:-build/duet}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok() { if [ "$1" = 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }

n=$("$DUET" agent --builtin --list-tools | wc -l)
[ "$n" = 9 ]; ok $? "--list-tools prints the 9 built-in tools ($n)"
"$DUET" agent --builtin --list-tools | grep -qx get_cpu_temperature; ok $? "get_cpu_temperature listed"

mkdir -p "$tmp/sysroot/sys/class/thermal/thermal_zone0"
echo 61375 > "$tmp/sysroot/sys/class/thermal/thermal_zone0/temp"
echo cpu-thermal > "$tmp/sysroot/sys/class/thermal/thermal_zone0/type"
if [ -f demo/base/config.json ] && [ -f demo/tools/adapter_config.json ]; then
    "$DUET" agent demo/base --lora tools=demo/tools --adapter tools --builtin --sysroot "$tmp/sysroot" \
        --ask "What is the CPU temperature?" --json > "$tmp/out" 2> "$tmp/err"
    ok $? "demo agent runs: $(cat "$tmp/err")"
    python3 - "$tmp/out" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
assert o["steps"] and o["steps"][0]["tool"] == "get_cpu_temperature", o
assert '"temperature":61.4' in o["steps"][0]["result"], o
assert "61.4" in o["answer"], o
PY
    ok $? "demo: calls get_cpu_temperature and answers with its value: $(cat "$tmp/out")"
    echo "What is the CPU temperature?" | "$DUET" chat demo/base --lora tools=demo/tools --adapter tools --mmap \
        --builtin --sysroot "$tmp/sysroot" > "$tmp/out" 2> "$tmp/err"
    grep -q "61.4" "$tmp/out" && grep -q "^\[tool\] get_cpu_temperature" "$tmp/err"
    ok $? "duet chat --builtin runs the loop: $(cat "$tmp/out" "$tmp/err")"
else
    echo "agent: demo model skipped (demo/base or demo/tools absent)"
fi

mcp=build/mcp/node_modules/.bin/mcp-server-everything
if [ -x "$mcp" ] && command -v node >/dev/null; then
    "$DUET" agent --mcp "$mcp stdio" --list-tools > "$tmp/mcp" 2>&1
    grep -qx echo "$tmp/mcp"; ok $? "MCP server-everything lists echo: $(head -3 "$tmp/mcp")"
    "$DUET" agent tests/fixtures/models/tiny-qwen2 --mcp "$mcp stdio" --tool-choice echo --max-steps 2 \
        --max-tokens 60 --json --ask "say hi" > "$tmp/out" 2> "$tmp/err"
    ok $? "agent with MCP runs: $(cat "$tmp/err")"
    python3 -c "
import json, sys
o = json.load(open('$tmp/out'))
s = o['steps'][0]
assert s['tool'] == 'echo' and isinstance(s['arguments'].get('message'), str), o
assert s['result'].startswith('Echo: '), o
" ; ok $? "a forced call through MCP echo comes back: $(head -c 300 "$tmp/out")"
else
    echo "agent: MCP server-everything skipped (not installed in build/mcp: see .ci/run)"
fi

# --mcp: quotes as sh reads them (a path with a space), or a JSON argv; no shell
mkdir -p "$tmp/dir with space"
cp tests/fixtures/mcp/fake_mcp.py "$tmp/dir with space/fake mcp.py"
"$DUET" agent --mcp "python3 '$tmp/dir with space/fake mcp.py' ok" --list-tools > "$tmp/mcp" 2>&1
grep -qx echo "$tmp/mcp"; ok $? "--mcp with a quoted path holding spaces: $(cat "$tmp/mcp")"
"$DUET" agent --mcp "[\"python3\", \"$tmp/dir with space/fake mcp.py\", \"ok\"]" --list-tools > "$tmp/mcp" 2>&1
grep -qx fail "$tmp/mcp"; ok $? "--mcp as a JSON argv: $(cat "$tmp/mcp")"
"$DUET" agent --mcp "python3 '$tmp/x" --list-tools > /dev/null 2> "$tmp/err"
[ $? -ne 0 ] && grep -q "unterminated ' quote" "$tmp/err"; ok $? "--mcp unterminated quote: $(cat "$tmp/err")"
"$DUET" agent --mcp "$tmp/x;touch $tmp/PWNED" --list-tools > /dev/null 2> "$tmp/err"
[ $? -ne 0 ] && [ ! -e "$tmp/PWNED" ] && grep -q "x;touch: not an executable" "$tmp/err"
ok $? "--mcp never reaches a shell: $(cat "$tmp/err")"

echo '[{"name": "x"' > "$tmp/bad.json"
"$DUET" agent tests/fixtures/models/tiny-qwen2 --tools "$tmp/bad.json" --ask hi 2> "$tmp/err" > /dev/null
[ $? -ne 0 ] && grep -q "^duet: error: .*bad.json" "$tmp/err"; ok $? "malformed tools file: $(cat "$tmp/err")"
"$DUET" agent tests/fixtures/models/tiny-qwen2 --mcp "duet-no-such-server" --ask hi 2> "$tmp/err" > /dev/null
[ $? -ne 0 ] && grep -q "not found in PATH" "$tmp/err"; ok $? "missing MCP server: $(cat "$tmp/err")"
"$DUET" agent tests/fixtures/models/tiny-qwen2 --ask hi 2> "$tmp/err" > /dev/null
[ $? -ne 0 ] && grep -q "no tools" "$tmp/err"; ok $? "no tools refused"
echo "agent_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
