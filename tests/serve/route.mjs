// route.mjs - three duet serve replicas behind nginx, which routes by the
// request's "model" (docs/DEPLOY.md). Usage:
//   node route.mjs NGINX_URL REPLICA_URL,REPLICA_URL,REPLICA_URL PID,PID,PID
// Checks: each model's requests all reach one replica, answers through nginx
// equal a replica's own, and when the replica holding a model is killed its
// requests go on being served by another. Prints "serve_route: N passed, N failed".
const [lb, replicasArg, pidsArg] = process.argv.slice(2);
const replicas = replicasArg.split(','), pids = pidsArg.split(',').map(Number);
let passed = 0, failed = 0;
const check = (ok, msg) => { if (ok) passed++; else { failed++; console.log(`FAIL ${msg}`); } };
const models = ['demo', 'tools', 'shell'];

async function chat(base, model) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'What is the CPU temp?' }], temperature: 0, max_tokens: 8 }),
  });
  return { status: r.status, json: await r.json().catch(() => null) };
}

async function counts(base) {
  try {
    const m = await (await fetch(`${base}/metrics`)).text();
    const out = {};
    for (const mo of models) out[mo] = Number((m.match(new RegExp(`duet_requests_total\\{model="${mo}",status="200"\\} (\\d+)`)) || [0, 0])[1]);
    return out;
  } catch { return null; }
}

try {
  const direct = {};
  for (const mo of models) direct[mo] = (await chat(replicas[0], mo)).json.choices[0].message.content;
  const before = await Promise.all(replicas.map(counts));
  let ok = true;
  for (let i = 0; i < 4; i++)
    for (const mo of models) {
      const r = await chat(lb, mo);
      ok &&= r.status === 200 && r.json.choices[0].message.content === direct[mo] && r.json.model === mo;
    }
  check(ok, 'through nginx: 200 and the same answers as a replica alone');
  const after = await Promise.all(replicas.map(counts));
  const home = {};
  for (const mo of models) {
    const got = after.map((c, i) => c[mo] - before[i][mo]);
    check(got.filter((n) => n === 4).length === 1 && got.filter((n) => n === 0).length === 2, `${mo}: all 4 requests on one replica (${got})`);
    home[mo] = got.indexOf(4);
  }
  // kill the replica that holds tools: its requests fail over to another
  const dead = home.tools;
  process.kill(pids[dead], 'SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  let ok2 = true;
  for (let i = 0; i < 4; i++) {
    const r = await chat(lb, 'tools');
    ok2 &&= r.status === 200 && r.json.choices[0].message.content === direct.tools;
  }
  check(ok2, 'tools after its replica was killed: 200 and the same answer');
  const last = await Promise.all(replicas.map(counts));
  const moved = last.map((c, i) => (c && i !== dead ? c.tools - after[i].tools : 0));
  check(moved.filter((n) => n === 4).length === 1, `tools' requests moved to one live replica (${moved})`);
  let ok3 = true;
  for (const mo of models) ok3 &&= (await chat(lb, mo)).status === 200;
  check(ok3, 'every model still served with one replica down');
} catch (e) {
  failed++;
  console.log(`FAIL exception: ${e.stack || e}`);
}
console.log(`serve_route: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
