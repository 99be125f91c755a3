#!/bin/sh
# duet serve on the demo model (demo/base as "demo" + tools + shell), driven by the
# official openai and ollama npm clients and raw sockets (tests/serve/api.mjs):
# chat, streaming, adapters per request and loaded at run time, errors,
# faults, a small load run with every answer checked against the same
# request alone; then SIGTERM drains a request in flight and exits 0; last,
# fill in the middle (suffix) on tiny-qwen2, which has FIM tokens (fim.mjs).
# Skipped (0 passed, 0 failed) when node is not installed.
DUET=${DUET:-build/duet}
D=demo
pass=0; fail=0
ok() { if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
if ! command -v node >/dev/null 2>&1; then echo "serve: skipped (node is absent)"; echo "serve: 0 passed, 0 failed"; exit 0; fi
if [ ! -d tests/serve/node_modules ]; then
    (cd tests/serve && npm ci --no-audit --no-fund --loglevel=error) >/dev/null 2>&1
    ok $? "npm ci in tests/serve (the openai and ollama clients)"
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/duet-serve.XXXXXX")
trap 'kill $SRV 2>/dev/null; [ -n "$KEEP" ] || rm -rf "$T"' EXIT
KEY=test-key-$$
: > "$T/log"
$DUET serve $D/base --name demo --lora tools=$D/tools --lora shell=$D/shell \
    --lora-dir $D --port 0 --api-key "$KEY" --cors http://ui.example --parallel 2 --queue 8 --max-body 1M --timeout 2 --ctx 1024 \
    --threads 1 2>"$T/log" &
SRV=$!
i=0
while [ $i -lt 100 ] && ! grep -q 'on http://' "$T/log"; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log")
[ -n "$PORT" ]; ok $? "the server starts and says its port"
if [ -n "$PORT" ]; then
    asan=""
    grep -q __asan_init "$DUET" 2>/dev/null && asan=1
    DUET_ASAN=$asan node tests/serve/api.mjs "http://127.0.0.1:$PORT" "$KEY" $SRV > "$T/out" 2>&1
    ok $? "api.mjs"
    grep -E '^(FAIL|load:|serve_api:)' "$T/out"
    line=$(grep -E '^serve_api: [0-9]+ passed, [0-9]+ failed$' "$T/out")
    p=$(echo "$line" | sed -nE 's/.*: ([0-9]+) passed.*/\1/p'); pass=$((pass + ${p:-0}))
    [ -n "$line" ] || tail -n 20 "$T/out"
    # SIGTERM while a request streams: it completes, then the server exits 0
    node -e '
      const [u, k] = process.argv.slice(1);
      fetch(u + "/v1/chat/completions", {method: "POST", headers: {Authorization: "Bearer " + k},
        body: JSON.stringify({model: "tools", messages: [{role: "user", content: "hi"}], max_tokens: 200, temperature: 0, ignore_eos: true, stream: true})})
      .then(async (r) => { console.log("STARTED"); const t = await r.text(); console.log(t.includes("[DONE]") && t.includes("\"finish_reason\":\"length\"") ? "DRAINED" : "CUT"); });
    ' "http://127.0.0.1:$PORT" "$KEY" > "$T/drain" 2>&1 &
    CL=$!
    i=0
    while [ $i -lt 100 ] && ! grep -q STARTED "$T/drain"; do sleep 0.05; i=$((i + 1)); done
    kill -TERM $SRV
    wait $SRV; rc=$?
    wait $CL
    [ $rc -eq 0 ]; ok $? "SIGTERM: the server exits 0 (got $rc)"
    grep -q DRAINED "$T/drain"; ok $? "SIGTERM: the request in flight finishes ($(cat "$T/drain"))"
fi
# fill in the middle on a model with FIM tokens (the demo model has none: refused above)
$DUET serve tests/fixtures/models/tiny-qwen2 --port 0 --parallel 2 --threads 1 --quiet 2>"$T/log2" &
SRV=$!
i=0
while [ $i -lt 100 ] && ! grep -q 'on http://' "$T/log2"; do sleep 0.1; i=$((i + 1)); done
PORT=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log2")
node tests/serve/fim.mjs "http://127.0.0.1:$PORT" tiny-qwen2 > "$T/fim" 2>&1
ok $? "fim.mjs"
grep -E '^FAIL' "$T/fim"
p=$(sed -nE 's/^serve_fim: ([0-9]+) passed.*/\1/p' "$T/fim"); pass=$((pass + ${p:-0}))
kill -TERM $SRV; wait $SRV
ok $? "the second server exits 0 (no leak reports under ASan)"
[ $fail -ne 0 ] && tail -n 15 "$T/log"
echo "serve: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
