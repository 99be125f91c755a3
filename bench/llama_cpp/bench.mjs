// bench.mjs MODEL.gguf [prompt] [gen] [threads] [reps]: llama.cpp (the
// prebuilt CPU libraries of node-llama-cpp) timed like `duet bench`: a
// prompt of fixed token ids prefilled in one batch, then greedy decode.
import {getLlama} from "node-llama-cpp";

const [modelPath, np = "128", ng = "128", th = "2", rp = "3"] = process.argv.slice(2);
const nPrompt = +np, nGen = +ng, threads = +th, reps = +rp;
const llama = await getLlama({gpu: false, build: "never", logLevel: "warn"});
console.error("system info:", llama.systemInfo);
const model = await llama.loadModel({modelPath, gpuLayers: 0, useMmap: process.env.NOMMAP ? false : true});
// LORA=FILE.gguf: the adapter applied unmerged (llama.cpp's runtime LoRA), scale 1
const lora = process.env.LORA ? {adapters: [{filePath: process.env.LORA, scale: 1}]} : undefined;
const context = await model.createContext({contextSize: nPrompt + nGen + 16, batchSize: Math.max(nPrompt, 512), threads, lora});
const prompt = Array.from({length: nPrompt}, (_, i) => (i * 7919 + 11) % 150000);
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
const pf = [], dc = [];
for (let r = 0; r <= reps; r++) {
    const seq = context.getSequence();
    let t0 = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    let t1 = performance.now();
    let n = 0;
    let t2 = performance.now();
    if (nGen > 0) {
        for await (const tok of seq.evaluate([prompt[nPrompt - 1]], {temperature: 0})) {
            if (n === 0) t2 = performance.now(); // the first sampled token closes prefill's logits
            if (++n > nGen) break;
        }
    }
    let t3 = performance.now();
    if (r > 0) { // rep 0 warms up
        pf.push(nPrompt / ((t1 - t0) / 1e3));
        if (nGen > 0) dc.push(nGen / ((t3 - t2) / 1e3));
    }
    seq.dispose();
}
console.log(JSON.stringify({impl: "llama.cpp (node-llama-cpp prebuilt)", model: modelPath, threads, mmap: !process.env.NOMMAP, lora: process.env.LORA || null,
    prompt_tokens: nPrompt, gen_tokens: nGen, prefill_tok_s: med(pf), decode_tok_s: nGen ? med(dc) : null,
    prefill_all: pf, decode_all: dc}));
process.exit(0);
