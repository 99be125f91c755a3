// fim.mjs - fill in the middle (`suffix`) on a model with FIM tokens
// (tests/fixtures/models/tiny-qwen2, Qwen2.5's <|fim_*|> markers), through
// the openai and ollama npm clients. Usage: node fim.mjs URL MODEL
// Prints "serve_fim: N passed, N failed".
import OpenAI from 'openai';
import { Ollama } from 'ollama';

const [url, model] = process.argv.slice(2);
let passed = 0, failed = 0;
function check(ok, msg) {
  if (ok) passed++;
  else { failed++; console.log(`FAIL ${msg}`); }
}
const oa = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
const ol = new Ollama({ host: url });
try {
  const prefix = 'def add(a, b):\n    ', suffix = '\n    return c\n';
  const tok = await (await fetch(`${url}/tokenize`, { method: 'POST', body: JSON.stringify({ content: `<|fim_prefix|>${prefix}<|fim_suffix|>${suffix}<|fim_middle|>` }) })).json();
  const r = await oa.completions.create({ model, prompt: prefix, suffix, temperature: 0, max_tokens: 6 });
  check(r.usage.prompt_tokens === tok.count && r.choices[0].text.length > 0, `suffix: the prompt is <|fim_prefix|>P<|fim_suffix|>S<|fim_middle|> (${r.usage.prompt_tokens} tokens, want ${tok.count})`);
  const plain = await oa.completions.create({ model, prompt: prefix, temperature: 0, max_tokens: 6 });
  check(plain.usage.prompt_tokens < tok.count, 'without suffix the prompt is not wrapped');
  const s = await oa.completions.create({ model, prompt: prefix, suffix, temperature: 0, max_tokens: 6, stream: true });
  let t = '';
  for await (const c of s) t += c.choices[0]?.text ?? '';
  check(t === r.choices[0].text, 'suffix streamed equals non-streamed');
  const g = await ol.generate({ model, prompt: prefix, suffix, options: { temperature: 0, num_predict: 6 } });
  check(g.response === r.choices[0].text && g.prompt_eval_count === tok.count, `ollama generate with suffix: ${JSON.stringify(g.response)}`);
  const sh = await ol.show({ model });
  check(sh.capabilities?.includes('insert'), `ollama show: insert capability (${sh.capabilities})`);
} catch (e) {
  failed++;
  console.log(`FAIL exception: ${e.stack || e}`);
}
console.log(`serve_fim: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
