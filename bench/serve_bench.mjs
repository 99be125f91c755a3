// serve_bench.mjs - an OpenAI-compatible server under streaming load: for 1,
// 4 and 16 concurrent streams, the aggregate decode throughput and the
// time-to-first-token and inter-token p50 / p99; then a 10-turn conversation
// behind a ~1k-token tools prompt, the TTFT of each turn (prefix reuse makes
// turn N prefill only its new tokens). Works against duet serve and
// llama-server alike (both take "ignore_eos"). Node 18+, no packages.
//
//   node bench/serve_bench.mjs URL MODEL [--label NAME] [--tokens 64] [--streams 1,4,16] [--turns 10] [--key KEY] [--json]
const args = process.argv.slice(2);
const [url, model] = args;
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const label = opt('label', 'server'), nTok = Number(opt('tokens', 64)), turns = Number(opt('turns', 10));
const streams = opt('streams', '1,4,16').split(',').map(Number).filter((c) => c > 0), key = opt('key', '');
const headers = { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) };

// One streaming chat request: arrival-to-first-token, the gaps between
// tokens (one content chunk per token), tokens generated.
async function stream(messages, maxTokens) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers,
    body: JSON.stringify({ model, messages, max_tokens: maxTokens, temperature: 0, stream: true, ignore_eos: true, stream_options: { include_usage: true } }),
  });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const dec = new TextDecoder();
  let buf = '', ttft = null, last = null, n = 0, text = '';
  const gaps = [];
  for await (const chunk of r.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      const c = j.choices?.[0]?.delta?.content;
      if (c) {
        const t = performance.now();
        if (ttft === null) ttft = t - t0;
        else gaps.push(t - last);
        last = t;
        n++;
        text += c;
      }
      if (j.usage) n = j.usage.completion_tokens;
    }
  }
  return { ttft, gaps, n, text, total: performance.now() - t0 };
}

const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))] : NaN; };
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');

const prompts = ['Write a long story about a lighthouse keeper.', 'Describe the water cycle in detail.', 'List facts about Mars.',
  'Explain how a CPU cache works.'];
const results = { label, model, tokens: nTok, streams: [], turns: [] };

// warm-up: the weights paged in, the server's threads started
await stream([{ role: 'user', content: 'hi' }], 4);
for (const c of streams) {
  const t0 = performance.now();
  const rs = await Promise.all([...Array(c).keys()].map((i) => stream([{ role: 'user', content: `${prompts[i % 4]} (${i})` }], nTok)));
  const wall = (performance.now() - t0) / 1000;
  const toks = rs.reduce((a, r) => a + r.n, 0);
  const ttfts = rs.map((r) => r.ttft), gaps = rs.flatMap((r) => r.gaps);
  const row = { streams: c, tok_s: toks / wall, ttft_p50_ms: pct(ttfts, 50), ttft_p99_ms: pct(ttfts, 99), itl_p50_ms: pct(gaps, 50), itl_p99_ms: pct(gaps, 99) };
  results.streams.push(row);
  console.log(`${label} streams=${c}: ${f1(row.tok_s)} tok/s, TTFT p50 ${f1(row.ttft_p50_ms)} p99 ${f1(row.ttft_p99_ms)} ms, inter-token p50 ${f1(row.itl_p50_ms)} p99 ${f1(row.itl_p99_ms)} ms`);
}

// the conversation: a tools prompt of ~1k tokens, then `turns` user turns
const tools = [];
const toolsPrompt = () => `You are the device assistant. You can call these tools; answer with a call when one fits.\n${JSON.stringify(tools)}`;
const count = async (text) => (await (await fetch(`${url}/tokenize`, { method: 'POST', headers, body: JSON.stringify({ content: text }) })).json()).tokens.length;
for (let i = 0; i < 40 && (i < 2 || (await count(toolsPrompt())) < 1000); i++)
  tools.push({ type: 'function', function: { name: `device_tool_${i}`, description: `Reads sensor group ${i} of the board: temperatures, fan speeds, voltages and clock frequencies, with units, for the diagnostics dashboard of the device.`,
    parameters: { type: 'object', properties: { zone: { type: 'string', description: 'which zone to read: cpu, gpu, soc, board or all' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit', 'kelvin'] }, samples: { type: 'integer', description: 'how many samples to average over one second' } }, required: ['zone'] } } });
const system = toolsPrompt();
results.tools_prompt_tokens = await count(system);
const conv = [{ role: 'system', content: system }];
for (let t = 1; t <= turns; t++) {
  conv.push({ role: 'user', content: `Turn ${t}: what does sensor group ${t} say about the cpu zone?` });
  const r = await stream(conv, 16);
  conv.push({ role: 'assistant', content: r.text });
  results.turns.push(r.ttft);
}
console.log(`${label} ${turns}-turn conversation behind a ${results.tools_prompt_tokens}-token tools prompt, TTFT per turn (ms): ${results.turns.map(f1).join(' ')}`);
console.log(`${label} turn 10 / turn 2 TTFT: ${(results.turns[turns - 1] / results.turns[1]).toFixed(2)}`);
if (args.includes('--json')) console.log(JSON.stringify(results));
