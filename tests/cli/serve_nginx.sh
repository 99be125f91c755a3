#!/bin/sh
# Three duet serve replicas behind nginx on localhost, routed by the request's
# "model" (the nginx.conf of docs/DEPLOY.md, with ports filled in): routing,
# and failover when a replica is killed (tests/serve/route.mjs).
# Skipped (0 passed, 0 failed) without node or nginx.
DUET=${DUET:-build/duet}
D=demo
pass=0; fail=0
ok() { if [ "$1" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2"; fi; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if ! command -v node >/dev/null 2>&1 || [ ! -x "$NGINX" ]; then
    echo "serve_nginx: skipped (node or nginx is absent)"; echo "serve_nginx: 0 passed, 0 failed"; exit 0
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/duet-nginx.XXXXXX")
PIDS=""
trap 'for p in $PIDS; do kill $p 2>/dev/null; done; rm -rf "$T"' EXIT
URLS=""; SERVERS=""
for r in 1 2 3; do
    : > "$T/r$r.log"
    $DUET serve $D/base --name demo --lora tools=$D/tools --lora shell=$D/shell \
        --port 0 --ctx 512 --parallel 2 --threads 1 --quiet 2>"$T/r$r.log" &
    PIDS="$PIDS $!"
done
for r in 1 2 3; do
    i=0
    while [ $i -lt 100 ] && ! grep -q 'on http://' "$T/r$r.log"; do sleep 0.1; i=$((i + 1)); done
    p=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/r$r.log")
    [ -n "$p" ]; ok $? "replica $r starts"
    URLS="$URLS${URLS:+,}http://127.0.0.1:$p"
    SERVERS="$SERVERS        server 127.0.0.1:$p max_fails=1 fail_timeout=30s;\n"
done
LB=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
mkdir -p "$T/nginx"
sed -e "s|@PREFIX@|$T/nginx|g" -e "s|@LISTEN@|127.0.0.1:$LB|" -e "s|@SERVERS@|$SERVERS|" docs/deploy/nginx.conf > "$T/nginx/nginx.conf"
"$NGINX" -p "$T/nginx" -c "$T/nginx/nginx.conf" -e "$T/nginx/error.log" 2>"$T/nginx.err" &
PIDS="$PIDS $!"
i=0
while [ $i -lt 50 ] && ! node -e 'require("net").connect(process.argv[1],"127.0.0.1").on("connect",()=>process.exit(0)).on("error",()=>process.exit(1))' "$LB"; do sleep 0.1; i=$((i + 1)); done
[ $i -lt 50 ]; ok $? "nginx starts ($(cat "$T/nginx.err"))"
set -- $PIDS
node tests/serve/route.mjs "http://127.0.0.1:$LB" "$URLS" "$1,$2,$3" > "$T/out" 2>&1
ok $? "route.mjs"
grep -E '^(FAIL|serve_route:)' "$T/out"
p=$(sed -nE 's/^serve_route: ([0-9]+) passed.*/\1/p' "$T/out"); pass=$((pass + ${p:-0}))
[ $fail -ne 0 ] && tail -n 5 "$T/nginx/error.log"
echo "serve_nginx: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
