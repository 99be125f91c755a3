// api.mjs - duet serve through the official openai and ollama npm clients,
// raw HTTP faults, and a small load run. Usage:
//   node api.mjs URL API_KEY SERVER_PID [--load | --load-only CLIENTS REQUESTS]
// The server runs the demo model (demo/base named "demo", adapters "tools"
// and "shell"), --lora-dir demo, --max-body 1M, --timeout 2, --parallel 2
// --queue 8; the env can name others: DUET_BASE, DUET_A, DUET_B, and
// DUET_A_DIR (A's folder under --lora-dir). Prints "serve_api: N passed, N failed".
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import net from 'node:net';
import fs from 'node:fs';

const [url, key, pidArg] = process.argv.slice(2);
const pid = Number(pidArg);
const BASE = process.env.DUET_BASE || 'demo';
const A = process.env.DUET_A || 'tools', B = process.env.DUET_B || 'shell', A_DIR = process.env.DUET_A_DIR || 'tools';
let passed = 0, failed = 0;
function check(ok, msg) {
  if (ok) passed++;
  else { failed++; console.log(`FAIL ${msg}`); }
}
const oa = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
const ol = new Ollama({ host: url, headers: { Authorization: `Bearer ${key}` } });
const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
const msgs = (t) => [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: t }];
const greedy = { temperature: 0, max_tokens: 12, ignore_eos: true };

async function post(path, body, headers = auth) {
  const r = await fetch(url + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text, headers: r.headers };
}

async function chatText(model, text, stream, extra = {}) {
  if (!stream) {
    const r = await oa.chat.completions.create({ model, messages: msgs(text), ...greedy, ...extra });
    return { content: r.choices[0].message.content, usage: r.usage, finish: r.choices[0].finish_reason, r };
  }
  const s = await oa.chat.completions.create({ model, messages: msgs(text), ...greedy, ...extra, stream: true, stream_options: { include_usage: true } });
  let content = '', usage = null, finish = null, first = null;
  for await (const c of s) {
    if (c.usage) usage = c.usage;
    if (c.choices.length) {
      if (first === null) first = c.choices[0].delta.role;
      content += c.choices[0].delta.content ?? '';
      if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    }
  }
  return { content, usage, finish, first };
}

async function basics() {
  const models = await oa.models.list();
  const ids = models.data.map((m) => m.id);
  check(ids.includes(BASE) && ids.includes(A) && ids.includes(B), `models list: ${ids}`);
  check(models.data.find((m) => m.id === A)?.parent === BASE, 'adapter models name the base as parent');

  const a = await chatText(BASE, 'What is the CPU temp?', false);
  check(typeof a.content === 'string' && a.content.length > 0, 'chat returns content');
  check(a.usage.prompt_tokens > 10 && a.usage.completion_tokens === 12 && a.finish === 'length', `usage ${JSON.stringify(a.usage)} finish ${a.finish}`);
  check(a.r.id.startsWith('chatcmpl-') && a.r.object === 'chat.completion', 'chat.completion object');
  const s = await chatText(BASE, 'What is the CPU temp?', true);
  check(s.content === a.content, `stream equals non-stream: ${JSON.stringify(s.content)} vs ${JSON.stringify(a.content)}`);
  check(s.first === 'assistant' && s.usage?.completion_tokens === 12 && s.finish === 'length', 'stream: role first, usage chunk, finish reason');
  const again = await chatText(BASE, 'What is the CPU temp?', false);
  check(again.content === a.content, 'repeat gives the same greedy answer');
  check(again.usage.prompt_tokens_details?.cached_tokens >= again.usage.prompt_tokens - 1, `cached_tokens ${JSON.stringify(again.usage)}`);

  const al = await chatText(A, 'What is the CPU temp?', false);
  const be = await chatText(B, 'What is the CPU temp?', false);
  check(new Set([a.content, al.content, be.content]).size >= 2, 'the adapters change the answer');
  check(al.usage.prompt_tokens_details.cached_tokens === 0, 'a prefix cached under the base is not reused for another adapter');
  const al2 = await chatText(A, 'What is the CPU temp?', true);
  check(al2.content === al.content, 'an adapter streamed equals it non-streamed');

  // a conversation: turn 2 reuses turn 1's tokens
  const t1 = await oa.chat.completions.create({ model: B, messages: msgs('Hello there'), ...greedy });
  const conv = [...msgs('Hello there'), t1.choices[0].message, { role: 'user', content: 'And then?' }];
  const t2 = await oa.chat.completions.create({ model: B, messages: conv, ...greedy });
  check(t2.usage.prompt_tokens_details.cached_tokens >= t1.usage.prompt_tokens, `turn 2 reuses turn 1: ${JSON.stringify(t2.usage)}`);

  const c = await oa.completions.create({ model: A, prompt: 'The capital of France is', temperature: 0, max_tokens: 5 });
  check(c.object === 'text_completion' && typeof c.choices[0].text === 'string' && c.usage.completion_tokens === 5, 'completions');
  const cs = await oa.completions.create({ model: A, prompt: 'The capital of France is', temperature: 0, max_tokens: 5, stream: true });
  let ct = '';
  for await (const ch of cs) ct += ch.choices[0]?.text ?? '';
  check(ct === c.choices[0].text, 'completions streamed equals non-streamed');

  const lp = await oa.chat.completions.create({ model: BASE, messages: msgs('hi'), temperature: 0, max_tokens: 3, logprobs: true, top_logprobs: 3 });
  const e0 = lp.choices[0].logprobs?.content?.[0];
  check(e0 && e0.logprob <= 0 && e0.top_logprobs.length === 3 && e0.top_logprobs[0].token === e0.token, 'logprobs: greedy token is the top one');

  const seeded = async () => (await oa.chat.completions.create({ model: BASE, messages: msgs('hi'), temperature: 0.9, seed: 7, max_tokens: 8 })).choices[0].message.content;
  check((await seeded()) === (await seeded()), 'same seed, same sample');
  const st = await oa.chat.completions.create({ model: BASE, messages: msgs('What is the CPU temp?'), ...greedy, stop: [a.content.slice(2, 6)] });
  check(st.choices[0].finish_reason === 'stop' && !st.choices[0].message.content.includes(a.content.slice(2, 6)), 'stop string ends the answer');
}

async function errors() {
  const expectErr = async (p, status, what) => {
    try { await p; check(false, `${what}: no error`); }
    catch (e) { check(e.status === status, `${what}: status ${e.status}, expected ${status}`); return e; }
  };
  const e1 = await expectErr(oa.chat.completions.create({ model: 'nope', messages: msgs('hi') }), 404, 'unknown model');
  check(e1?.code === 'model_not_found' && e1?.error?.type, 'unknown model: error object with code');
  const e2 = await expectErr(oa.chat.completions.create({ model: BASE, messages: msgs('hi'), temperature: 'hot' }), 400, 'wrong type');
  check(e2?.param === 'temperature', 'wrong type names the param');
  await expectErr(oa.chat.completions.create({ model: BASE, messages: [] }), 400, 'empty messages');
  await expectErr(oa.chat.completions.create({ model: BASE, messages: [{ role: 'wizard', content: 'x' }] }), 400, 'bad role');
  await expectErr(oa.chat.completions.create({ model: BASE, messages: msgs('hi'), max_tokens: 0 }), 400, 'max_tokens 0');
  await expectErr(oa.chat.completions.create({ model: BASE, messages: msgs('hi'), n: 33 }), 400, 'n past 32');
  const e3 = await expectErr(oa.completions.create({ model: BASE, prompt: 'def f(', suffix: 'return x' }), 400, 'suffix on a model without fill-in-the-middle tokens');
  check(e3?.param === 'suffix' && /fill-in-the-middle/.test(e3?.message), `suffix refused clearly: ${e3?.message}`);
  await expectErr(oa.completions.create({ model: BASE, prompt: 'x', echo: true, logprobs: 2 }), 400, 'echo with logprobs');
  await expectErr(oa.chat.completions.create({ model: BASE, messages: msgs('hi'), logit_bias: { 5: 100 } }), 400, 'logit_bias refused, not ignored');
  await expectErr(oa.completions.create({ model: BASE, prompt: [[1, 99999999]] }), 400, 'a token id outside the vocabulary');
  await expectErr(oa.chat.completions.create({ model: BASE, messages: msgs('x'.repeat(30000)) }), 400, 'prompt past the context');
  const noKey = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await expectErr(noKey.models.list(), 401, 'wrong API key');
  const r = await fetch(`${url}/v1/models`);
  check(r.status === 401, 'no API key: 401');
  check((await fetch(`${url}/health`)).status === 200, '/health needs no key');
}

async function adapters() {
  const r1 = await post('/v1/load_lora_adapter', { lora_name: 'gamma', lora_path: A_DIR });
  check(r1.status === 200, `load gamma: ${r1.status} ${r1.text}`);
  const ids = (await oa.models.list()).data.map((m) => m.id);
  check(ids.includes('gamma'), 'gamma listed after load');
  const g = await chatText('gamma', 'What is the CPU temp?', false);
  const a = await chatText(A, 'What is the CPU temp?', false);
  check(g.content === a.content, `gamma (${A}'s folder) answers as ${A}`);
  check((await post('/v1/load_lora_adapter', { lora_name: 'gamma', lora_path: A_DIR })).status === 400, 'loading a used name: 400');
  check((await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: '/etc' })).status === 400, 'a path outside --lora-dir: 400');
  check((await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: '../../..' })).status === 400, 'escaping --lora-dir: 400');
  check((await post('/v1/load_lora_adapter', { lora_name: 'x', lora_path: '.' })).status === 400, 'a folder that is not an adapter: 400');
  // an unload while a request of gamma streams: the request keeps its adapter
  const gs = await oa.chat.completions.create({ model: 'gamma', messages: msgs('What is the CPU temp?'), ...greedy, max_tokens: 40, stream: true });
  const it = gs[Symbol.asyncIterator]();
  const lr = { content: '', finish: null };
  const take = (c) => { lr.content += c.choices[0]?.delta?.content ?? ''; lr.finish = c.choices[0]?.finish_reason ?? lr.finish; };
  take((await it.next()).value); // generating now
  const u = await post('/v1/unload_lora_adapter', { lora_name: 'gamma' });
  check(u.status === 200, `unload gamma: ${u.status}`);
  for (let x = await it.next(); !x.done; x = await it.next()) take(x.value);
  const ref = await chatText(A, 'What is the CPU temp?', false, { max_tokens: 40 });
  check(lr.content === ref.content && lr.finish === 'length', 'a request in flight keeps the adapter it started with');
  check(!(await oa.models.list()).data.some((m) => m.id === 'gamma'), 'gamma gone after unload');
  try { await chatText('gamma', 'hi', false); check(false, 'gamma after unload'); } catch (e) { check(e.status === 404, 'gamma after unload: 404'); }
  check((await post('/v1/unload_lora_adapter', { lora_name: 'gamma' })).status === 404, 'unloading twice: 404');
}

async function ollama() {
  const tags = await ol.list();
  check(tags.models.some((m) => m.name === A) && tags.models.some((m) => m.name === BASE), 'ollama list');
  const c = await ol.chat({ model: A, messages: msgs('What is the CPU temp?'), options: { temperature: 0, num_predict: 12 } });
  const ref = await chatText(A, 'What is the CPU temp?', false);
  check(c.message.content === ref.content && c.done && c.eval_count === 12, 'ollama chat equals the OpenAI answer');
  let st = '', last = null;
  for await (const p of await ol.chat({ model: A, messages: msgs('What is the CPU temp?'), stream: true, options: { temperature: 0, num_predict: 12 } })) {
    st += p.message.content;
    last = p;
  }
  check(st === ref.content && last.done && last.done_reason === 'length', 'ollama chat stream');
  const g = await ol.generate({ model: `${BASE}:latest`, prompt: 'Hello', options: { temperature: 0, num_predict: 5 } });
  check(typeof g.response === 'string' && g.eval_count === 5, 'ollama generate (with :latest)');
  const sh = await ol.show({ model: B });
  check(sh.details?.parent_model === BASE, 'ollama show');
  check((await ol.ps()).models.length >= 3, 'ollama ps');
  check(typeof (await ol.version()).version === 'string', 'ollama version');
  check(sh.capabilities?.includes('tools') && sh.capabilities?.includes('completion'), `ollama show capabilities ${sh.capabilities}`);
  const ld = await ol.generate({ model: BASE, prompt: '' });
  check(ld.done && ld.done_reason === 'load' && ld.response === '', `ollama: an empty prompt loads the model (${JSON.stringify(ld)})`);
  // keep_alive 0 unloads: the model's cached prefixes are dropped
  const q = { model: B, messages: msgs('Is the disk full?'), options: { temperature: 0, num_predict: 4 } };
  await ol.chat(q);
  const warm = await ol.chat(q);
  const ul = await ol.chat({ model: B, messages: [], keep_alive: 0 });
  const cold = await ol.chat(q);
  check(ul.done_reason === 'unload' && warm.prompt_eval_count > 0 && cold.message.content === warm.message.content, `ollama keep_alive 0: ${ul.done_reason}`);
  const usage = async () => (await chatText(B, 'Is the disk full?', false, { max_tokens: 4 })).usage.prompt_tokens_details.cached_tokens;
  const c0 = await usage();
  await ol.generate({ model: B, prompt: '', keep_alive: '0s' });
  const c1 = await usage();
  check(c0 > 0 && c1 === 0, `keep_alive 0 drops the cached prefixes (cached ${c0} -> ${c1})`);
  await usage();
  await ol.chat({ ...q, keep_alive: 0 });
  const c2 = await usage();
  check(c2 === 0, `keep_alive 0 on a chat: its prefixes are not kept (cached ${c2})`);
  try { await ol.chat({ model: A, messages: [{ role: 'user', content: 'what is this?', images: ['aGVsbG8='] }] }); check(false, 'ollama image refused'); }
  catch (e) { check(e.status_code === 400 && /images: not supported/.test(e.error ?? e.message), `ollama image refused: ${e.status_code}`); }
  try { await ol.chat({ model: 'nope', messages: msgs('x') }); check(false, 'ollama unknown model'); }
  catch (e) { check(e.status_code === 404 && /model "nope" not found/.test(e.error ?? e.message), `ollama unknown model: ${e.status_code} ${e.error ?? e.message}`); }
}

// n > 1 (choices keyed by index, each its own sample), several prompts,
// token-id prompts, echo; the stream helper of the SDK assembles them
async function choices() {
  const one = await chatText(BASE, 'What is the CPU temp?', false);
  const r = await oa.chat.completions.create({ model: BASE, messages: msgs('What is the CPU temp?'), ...greedy, n: 3 });
  check(r.choices.length === 3 && r.choices.every((c, i) => c.index === i && c.message.content === one.content && c.finish_reason === 'length'),
    `n 3 greedy: three choices equal to n 1: ${JSON.stringify(r.choices.map((c) => c.message.content))}`);
  check(r.usage.prompt_tokens === one.usage.prompt_tokens && r.usage.completion_tokens === 36, `n 3 usage: the prompt once, completions summed ${JSON.stringify(r.usage)}`);
  const samp = { model: BASE, messages: msgs('What is the CPU temp?'), temperature: 1, max_tokens: 16 };
  const many = await oa.chat.completions.create({ ...samp, seed: 41, n: 2 });
  const s41 = await oa.chat.completions.create({ ...samp, seed: 41 });
  const s42 = await oa.chat.completions.create({ ...samp, seed: 42 });
  check(many.choices[0].message.content === s41.choices[0].message.content && many.choices[1].message.content === s42.choices[0].message.content,
    'n 2 sampled with seed S: choice i is the sample of seed S + i');
  const drawn = await Promise.all([0, 1, 2].map(async () => (await oa.chat.completions.create({ ...samp, max_tokens: 24 })).choices[0].message.content));
  check(new Set(drawn).size > 1, `no seed: each request draws its own (${JSON.stringify(drawn)})`);
  const st = await oa.chat.completions.stream({ ...samp, seed: 41, n: 2, stream_options: { include_usage: true } }).finalChatCompletion();
  check(st.choices.length === 2 && st.choices.every((c, i) => c.message.content === many.choices[i].message.content && c.message.role === 'assistant' && c.finish_reason === many.choices[i].finish_reason),
    `n 2 streamed (SDK stream helper) equals non-streamed: ${JSON.stringify(st.choices.map((c) => c.message.content))}`);
  check(st.usage?.completion_tokens === many.usage.completion_tokens, 'n 2 streamed: usage');
  // stop strings hold in a stream as in the whole answer
  const cut = one.content.slice(3, 7);
  const whole = await oa.chat.completions.create({ model: BASE, messages: msgs('What is the CPU temp?'), ...greedy, stop: [cut] });
  const parts = await chatText(BASE, 'What is the CPU temp?', true, { stop: [cut] });
  check(parts.content === whole.choices[0].message.content && !parts.content.includes(cut) && parts.finish === 'stop', `stop in a stream: ${JSON.stringify(parts.content)}`);

  const p1 = 'The capital of France is', p2 = 'Hello';
  const c1 = await oa.completions.create({ model: A, prompt: p1, temperature: 0, max_tokens: 5 });
  const c2 = await oa.completions.create({ model: A, prompt: p2, temperature: 0, max_tokens: 5 });
  const cm = await oa.completions.create({ model: A, prompt: [p1, p2], n: 2, temperature: 0, max_tokens: 5, echo: true });
  const want = [p1 + c1.choices[0].text, p1 + c1.choices[0].text, p2 + c2.choices[0].text, p2 + c2.choices[0].text];
  check(cm.choices.length === 4 && cm.choices.every((c, i) => c.index === i && c.text === want[i]),
    `completions: 2 prompts x n 2 with echo, prompt p at index p * n + k: ${JSON.stringify(cm.choices.map((c) => c.text))}`);
  check(cm.usage.prompt_tokens === c1.usage.prompt_tokens + c2.usage.prompt_tokens && cm.usage.completion_tokens === 20, `completions usage ${JSON.stringify(cm.usage)}`);
  const ids = (await post('/tokenize', { content: p1 })).json.tokens;
  const ci = await oa.completions.create({ model: A, prompt: ids, temperature: 0, max_tokens: 5, echo: true });
  check(ci.choices[0].text === p1 + c1.choices[0].text, `a prompt of token ids answers as its text, echoed: ${JSON.stringify(ci.choices[0].text)}`);
  const ce = await oa.completions.create({ model: A, prompt: p1, temperature: 0, max_tokens: 5, echo: true, stream: true });
  let et = '';
  for await (const ch of ce) et += ch.choices[0]?.text ?? '';
  check(et === p1 + c1.choices[0].text, 'completions echo streamed');
}

async function misc() {
  const t = await post('/tokenize', { content: 'Hello world' });
  check(t.status === 200 && t.json.tokens.length >= 1 && t.json.count === t.json.tokens.length, `tokenize ${t.text}`);
  const d = await post('/detokenize', { tokens: t.json.tokens });
  check(d.json?.content === 'Hello world', 'detokenize round trip');
  check((await post('/detokenize', { tokens: [-1] })).status === 400, 'detokenize: bad id 400');
  const m = await (await fetch(`${url}/metrics`, { headers: auth })).text();
  check(new RegExp(`duet_requests_total\\{model="${A}",status="200"\\} \\d+`).test(m) && /duet_time_to_first_token_seconds_bucket/.test(m) && /duet_kv_bytes_in_use \d+/.test(m), 'metrics');
  check((await fetch(`${url}/nowhere`, { headers: auth })).status === 404, 'unknown path 404');
  // --cors http://ui.example: a preflight needs no key; responses name the origin allowed, and only it
  const pre = await fetch(`${url}/v1/chat/completions`, { method: 'OPTIONS', headers: { Origin: 'http://ui.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' } });
  check(pre.status === 204 && pre.headers.get('access-control-allow-origin') === 'http://ui.example' && /authorization/.test(pre.headers.get('access-control-allow-headers')), `CORS preflight: ${pre.status}`);
  const cm = await fetch(`${url}/v1/models`, { headers: { ...auth, Origin: 'http://ui.example' } });
  const other = await fetch(`${url}/v1/models`, { headers: { ...auth, Origin: 'http://evil.example' } });
  check(cm.headers.get('access-control-allow-origin') === 'http://ui.example' && other.headers.get('access-control-allow-origin') === null, 'CORS: the allowed origin only');
  const bare = new OpenAI({ baseURL: url, apiKey: key, maxRetries: 0 });
  const bm = await bare.models.list();
  const bc = await bare.chat.completions.create({ model: BASE, messages: msgs('hi'), temperature: 0, max_tokens: 2 });
  check(bm.data.length >= 3 && bc.choices[0].message.content.length > 0, 'the OpenAI paths answer without /v1 too');
  check((await fetch(`${url}/v1/chat/completions`, { headers: auth })).status === 405, 'GET on a POST route 405');
}

async function tools() {
  const tdefs = [
    { type: 'function', function: { name: 'get_cpu_temperature', description: 'Read the CPU temperature', parameters: { type: 'object', properties: { unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, required: ['unit'] } } },
    { type: 'function', function: { name: 'list_disks', description: 'List the disks', parameters: { type: 'object', properties: {} } } },
  ];
  const ask = [{ role: 'user', content: 'What is the CPU temp?' }];
  const base = { model: A, messages: ask, tools: tdefs, temperature: 0, max_tokens: 64 };
  const r = await oa.chat.completions.create({ ...base, tool_choice: 'required' });
  const c = r.choices[0].message.tool_calls?.[0];
  check(r.choices[0].finish_reason === 'tool_calls' && c && c.id && c.type === 'function' && tdefs.some((t) => t.function.name === c.function.name), `tool_choice required gives a call: ${JSON.stringify(r.choices[0].message)}`);
  const args = JSON.parse(c?.function?.arguments ?? 'null');
  check(c?.function?.name !== 'get_cpu_temperature' || ['celsius', 'fahrenheit'].includes(args?.unit), `arguments follow the schema: ${c?.function?.arguments}`);
  const named = await oa.chat.completions.create({ ...base, model: BASE, tool_choice: { type: 'function', function: { name: 'list_disks' } } });
  check(named.choices[0].message.tool_calls?.[0]?.function?.name === 'list_disks', `named tool_choice honoured: ${JSON.stringify(named.choices[0].message)}`);
  // streamed: calls as deltas keyed by index, ids never empty; the SDK's helper assembles them
  const s = await oa.chat.completions.create({ ...base, tool_choice: 'required', stream: true });
  const calls = [];
  let fin = null;
  for await (const ch of s) {
    for (const d of ch.choices[0]?.delta?.tool_calls ?? []) {
      calls[d.index] ??= { id: '', name: '', arguments: '' };
      if (d.id) calls[d.index].id = d.id;
      calls[d.index].name += d.function?.name ?? '';
      calls[d.index].arguments += d.function?.arguments ?? '';
    }
    fin = ch.choices[0]?.finish_reason ?? fin;
  }
  check(fin === 'tool_calls' && calls.length >= 1 && calls.every((x) => x.id && x.name) && calls[0].name === c?.function?.name && calls[0].arguments === c?.function?.arguments, `streamed tool calls equal the non-streamed ones: ${JSON.stringify(calls)}`);
  // the SDK's stream helper checks each chunk (a role, ids, names) and assembles the message
  const fc = await oa.chat.completions.stream({ ...base, tool_choice: 'required' }).finalChatCompletion();
  const fm = fc.choices[0].message;
  check(fm.role === 'assistant' && fm.tool_calls?.[0]?.function?.name === c?.function?.name && fm.tool_calls[0].function.arguments === c?.function?.arguments && fc.choices[0].finish_reason === 'tool_calls',
    `tool calls through the SDK's stream helper: ${JSON.stringify(fm)}`);
  // the result goes back and the model answers
  const follow = await oa.chat.completions.create({ model: A, tools: tdefs, temperature: 0, max_tokens: 24, tool_choice: 'none',
    messages: [...ask, r.choices[0].message, { role: 'tool', tool_call_id: c?.id, content: '{"celsius": 48.5}' }] });
  check(typeof follow.choices[0].message.content === 'string' && !follow.choices[0].message.tool_calls?.length, 'tool_choice none after a tool result: text, no call');
  const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city', 'days'] };
  const js = await oa.chat.completions.create({ model: BASE, messages: [{ role: 'user', content: 'Plan a trip.' }], temperature: 0, max_tokens: 64,
    response_format: { type: 'json_schema', json_schema: { name: 'trip', schema, strict: true } } });
  let obj = null;
  try { obj = JSON.parse(js.choices[0].message.content); } catch { /* checked below */ }
  check(obj && typeof obj.city === 'string' && Number.isInteger(obj.days), `json_schema answer parses and follows the schema: ${js.choices[0].message.content}`);
  const jo = await ol.chat({ model: A, messages: ask, tools: tdefs, options: { temperature: 0, num_predict: 64 } });
  check(Array.isArray(jo.message.tool_calls) ? jo.message.tool_calls.every((t) => t.function?.name && typeof t.function.arguments === 'object') : typeof jo.message.content === 'string', 'ollama chat with tools');
  const of = await ol.chat({ model: BASE, messages: [{ role: 'user', content: 'Plan a trip.' }], format: schema, options: { temperature: 0, num_predict: 64 } });
  let o2 = null;
  try { o2 = JSON.parse(of.message.content); } catch { /* checked below */ }
  check(o2 && typeof o2.city === 'string', `ollama format schema: ${of.message.content}`);
  try { await oa.chat.completions.create({ ...base, tool_choice: { type: 'function', function: { name: 'nope' } } }); check(false, 'unknown tool name'); }
  catch (e) { check(e.status === 400 && e.param === 'tool_choice', 'tool_choice naming an unknown tool: 400'); }
}

// raw socket: send bytes, return the status line (or '' when closed without one)
function raw(bytes, { delayMs = 0, chunks = null, closeAfterMs = 0 } = {}) {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname);
    let got = '';
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.on('connect', async () => {
      if (chunks) {
        for (const c of chunks) { if (s.destroyed) break; s.write(c); await new Promise((r) => setTimeout(r, delayMs)); }
      } else s.write(bytes);
      if (closeAfterMs) setTimeout(() => s.destroy(), closeAfterMs);
    });
    setTimeout(() => s.destroy(), 8000);
  });
}

function req(body, extra = '') {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${b.length}\r\nConnection: close\r\n${extra}\r\n`), b]);
}

async function faults() {
  const status = (s) => Number((s.match(/^HTTP\/1\.1 (\d+)/) || [])[1] || 0);
  let r = await raw(req('{"model": "tiny-qwen2", "messages": ['));
  check(status(r) === 400 && /"type":"invalid_request_error"/.test(r), 'malformed JSON: 400 with an error object');
  r = await raw(req(Buffer.from([0x7b, 0x22, 0x6d, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])));
  check(status(r) === 400 && /UTF-8/.test(r), 'invalid UTF-8: 400');
  r = await raw(req('{"model": 5, "messages": "hi"}'));
  check(status(r) === 400 && /"param":"model"/.test(r), 'wrong types: 400 naming the field');
  r = await raw(req('[1,2,3]'));
  check(status(r) === 400, 'a non-object body: 400');
  const big = Buffer.alloc(2 << 20, 0x61);
  r = await raw(req(big));
  check(status(r) === 413, `huge body: 413 (${status(r)})`);
  r = await raw(Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: 99999999999\r\n\r\n`));
  check(status(r) === 413, 'huge Content-Length: 413');
  // slowloris: a body that trickles in past --timeout (2 s) is cut off
  const t0 = Date.now();
  const body = JSON.stringify({ model: BASE, messages: msgs('hi'), max_tokens: 2 });
  const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Length: ${body.length}\r\n\r\n`;
  r = await raw(null, { chunks: [head, ...body.slice(0, 8).split('')], delayMs: 700 });
  const took = (Date.now() - t0) / 1000;
  check(status(r) !== 200 && took < 7.5, `slow body cut off (${status(r) || 'closed'} after ${took.toFixed(1)} s)`);
  // a client that disconnects mid-stream: its generation stops
  const m0 = await (await fetch(`${url}/metrics`, { headers: auth })).text();
  const ab0 = Number(m0.match(/duet_aborted_total (\d+)/)[1]);
  const sbody = JSON.stringify({ model: BASE, messages: msgs('tell me a story'), max_tokens: 900, temperature: 0, ignore_eos: true, stream: true });
  await raw(req(sbody), { closeAfterMs: 150 });
  let ab1 = ab0;
  for (let i = 0; i < 40 && ab1 === ab0; i++) {
    await new Promise((res) => setTimeout(res, 100));
    ab1 = Number((await (await fetch(`${url}/metrics`, { headers: auth })).text()).match(/duet_aborted_total (\d+)/)[1]);
  }
  check(ab1 === ab0 + 1, `disconnect mid-stream aborts the generation (${ab0} -> ${ab1})`);
  const after = await chatText(BASE, 'What is the CPU temp?', false);
  check(after.content.length > 0, 'the server keeps serving after the faults');
}

function rss() {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}

// clients x requests, mixed adapters, half streaming, greedy: every answer
// equals the same request run alone; 503s (deliberate) are retried.
async function load(clients, requests) {
  const models = [BASE, A, B];
  const prompts = ['What is the CPU temp?', 'List the disks.', 'How much memory is free?', 'Say hi.'];
  const job = (c, i) => ({ model: models[(c + i) % 3], text: prompts[(c * 7 + i) % 4], stream: (c + i) % 2 === 1, max_tokens: 6 + ((c + i) % 5) });
  const keyOf = (j) => `${j.model}|${j.text}|${j.max_tokens}`;
  const alone = new Map();
  for (let c = 0; c < clients; c++)
    for (let i = 0; i < requests; i++) {
      const j = job(c, i);
      if (!alone.has(keyOf(j))) alone.set(keyOf(j), (await chatText(j.model, j.text, false, { max_tokens: j.max_tokens })).content);
    }
  let bad = 0, n503 = 0, done = 0, rss0 = 0;
  const round = () => Promise.all([...Array(clients).keys()].map(async (c) => {
    for (let i = 0; i < requests; i++) {
      const j = job(c, i);
      for (;;) {
        try {
          const r = await chatText(j.model, j.text, j.stream, { max_tokens: j.max_tokens });
          if (r.content !== alone.get(keyOf(j))) { bad++; console.log(`mismatch ${keyOf(j)} stream=${j.stream}: ${JSON.stringify(r.content)} vs ${JSON.stringify(alone.get(keyOf(j)))}`); }
          done++;
          break;
        } catch (e) {
          if (e.status === 503) { n503++; await new Promise((res) => setTimeout(res, 50)); continue; }
          bad++; console.log(`load error: ${e.status} ${e.message}`); break;
        }
      }
    }
  }));
  await round(); // warm-up: the threads, arenas and idle sessions of a full round
  rss0 = rss();
  bad = 0; n503 = 0; done = 0;
  await round();
  const rss1 = rss();
  check(bad === 0 && done === clients * requests, `load ${clients}x${requests}: ${done} done, ${bad} wrong or failed, ${n503} deliberate 503s`);
  // under ASan freed blocks wait in its quarantine, so RSS says nothing there
  if (process.env.DUET_ASAN) console.log('RSS check skipped: the server runs under ASan');
  else check(rss1 <= rss0 * 1.05, `RSS after the load ${rss1} kB within 5% of after warm-up ${rss0} kB`);
  console.log(`load: ${clients} clients x ${requests} requests, ${done} identical to alone, ${n503} 503s retried, RSS ${rss0} -> ${rss1} kB`);
}

async function overload() {
  // far more requests at once than --parallel 2 + --queue: some get 503 + Retry-After
  const body = { model: BASE, messages: msgs('Count.'), temperature: 0, max_tokens: 30 };
  const rs = await Promise.all([...Array(80).keys()].map(() => post('/v1/chat/completions', body)));
  const n503 = rs.filter((r) => r.status === 503).length, n200 = rs.filter((r) => r.status === 200).length;
  check(n503 > 0 && n200 > 0 && n503 + n200 === 80, `overload: ${n200} x 200, ${n503} x 503`);
  const one = rs.find((r) => r.status === 503);
  check(one && one.headers.get('retry-after') === '1' && one.json?.error?.message, '503 has Retry-After and an error object');
}

const args = process.argv.slice(5);
try {
  if (args[0] === '--load-only') {
    await load(Number(args[1]), Number(args[2]));
    console.log(`serve_api: ${passed} passed, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  }
  await basics();
  await errors();
  await adapters();
  await ollama();
  await tools();
  await choices();
  await misc();
  await faults();
  if (args[0] === '--load') await load(Number(args[1]), Number(args[2]));
  else await load(8, 3);
  await overload();
} catch (e) {
  failed++;
  console.log(`FAIL exception: ${e.stack || e}`);
}
console.log(`serve_api: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
