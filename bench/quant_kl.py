#!/usr/bin/python3
"""quant_kl.py - quality of quantized models against the unquantized one, per
adapter and held-out domain: mean KL(f32 || quantized) per position and the
quantized model's NLL, for duet files and llama.cpp GGUFs of the same weights.

    python3 bench/quant_kl.py texts OUT_DIR              # held-out texts (needs train/, man pages)
    python3 bench/quant_kl.py duet REF.duet TEXT_DIR ADAPTERS MODEL.duet...   # ADAPTERS: a,b or -
    python3 bench/quant_kl.py gguf LLAMA_BIN REF.gguf Q.gguf TEXT_DIR [NAME=LORA.gguf...]
    python3 bench/quant_kl.py bits FILE                  # bits/weight over the 2-D weights

Domains: man pages the demo's training held out (train.py's heldout_doc):
`cmd` (sections 1 and 8) and `lib` (section 3); plain text, so llama.cpp's
tokenizer, which does not parse special tokens here, sees the same tokens. Each text is cut into CHUNKS chunks of CTX
tokens; as llama-perplexity does, the second half of every chunk is scored
(the first half is context). duet: `duet logits --all` per chunk, KL and NLL
here; llama.cpp: llama-perplexity --kl-divergence against logits saved from
the f32 GGUF with the same adapter. Prints one JSON line per (adapter,
domain). DUET is the duet binary (build/duet).
"""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

CTX, CHUNKS = 256, 12
DOMAINS = tuple(os.environ.get("DOMAINS", "cmd,lib").split(","))


def texts(out):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "train"))
    import corpus
    import hashlib

    os.makedirs(out, exist_ok=True)
    held = {"cmd": [], "lib": []}
    for src, path in corpus.man_pages():
        dom = "lib" if src.startswith("man3/") else "cmd" if src[:4] in ("man1", "man8") else None
        if not dom or sum(len(t) for t in held[dom]) > 60000:
            continue
        if int(hashlib.sha256(src.encode()).hexdigest(), 16) % 100 < 2:
            try:
                t = corpus.render_man(path)
            except Exception:
                continue
            if t:
                held[dom].append(t)
    for dom, ts in held.items():
        with open(os.path.join(out, dom + ".txt"), "w") as f:
            f.write("\n\n".join(ts))


def chunks(duet, model, text_path):
    ids = subprocess.run([duet, "tokenize", model, "--file", text_path], check=True, capture_output=True,
                         text=True).stdout.split()
    ids = [int(x) for x in ids]
    if len(ids) < CTX * CHUNKS:
        sys.exit("%s: %d tokens, %d needed" % (text_path, len(ids), CTX * CHUNKS))
    return [ids[i * CTX:(i + 1) * CTX] for i in range(CHUNKS)]


def logits(duet, model, ids, adapter, tmp):
    out = os.path.join(tmp, "l.bin")
    cmd = [duet, "logits", model, "--all", "--ids", ",".join(map(str, ids)), "-o", out, "--threads", "1"]
    if adapter:
        cmd += ["--adapter", adapter]
    subprocess.run(cmd, check=True, capture_output=True)
    a = np.fromfile(out, dtype=np.float32)
    return a.reshape(len(ids), -1).astype(np.float64)


def logsoftmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def duet_kl(duet, models, ref, text_dir, adapters):
    cache = {}
    with tempfile.TemporaryDirectory() as tmp:
      for model in models:
        for ad in [None] + adapters:
            for dom in DOMAINS:
                kls, nll, nll_ref = [], [], []
                for ci, ch in enumerate(chunks(duet, ref, os.path.join(text_dir, dom + ".txt"))):
                    key = (ad, dom, ci)
                    if key not in cache:
                        cache[key] = logsoftmax(logits(duet, ref, ch, ad, tmp))[CTX // 2:CTX - 1]
                    lp = cache[key]
                    lq = logsoftmax(logits(duet, model, ch, ad, tmp))[CTX // 2:CTX - 1]
                    nxt = np.array(ch[CTX // 2 + 1:])
                    kls.append((np.exp(lp) * (lp - lq)).sum(axis=1))
                    nll.append(-lq[np.arange(len(nxt)), nxt])
                    nll_ref.append(-lp[np.arange(len(nxt)), nxt])
                kl = np.concatenate(kls)
                print(json.dumps({"model": os.path.basename(model), "adapter": ad or "base", "domain": dom,
                                  "positions": len(kl), "kl": round(float(kl.mean()), 6),
                                  "nll": round(float(np.concatenate(nll).mean()), 5),
                                  "nll_f32": round(float(np.concatenate(nll_ref).mean()), 5)}), flush=True)


def gguf_kl(bindir, ref, q, text_dir, loras):
    ppl = os.path.join(bindir, "llama-perplexity")
    with tempfile.TemporaryDirectory() as tmp:
        for name, lora in [("base", None)] + [tuple(x.split("=", 1)) for x in loras]:
            for dom in DOMAINS:
                base = os.path.join(tmp, "%s-%s.kld" % (name, dom))
                common = ["-f", os.path.join(text_dir, dom + ".txt"), "-c", str(CTX), "--chunks", str(CHUNKS), "-t", "1",
                          "-b", str(CTX)]
                if lora:
                    common += ["--lora", lora]
                subprocess.run([ppl, "-m", ref, "--kl-divergence-base", base] + common, check=True, capture_output=True)
                log = os.path.join(tmp, "ppl.log")  # its statistics reach a log file, not always stdout
                subprocess.run([ppl, "-m", q, "--kl-divergence-base", base, "--kl-divergence", "--log-file", log] + common,
                               check=True, capture_output=True)
                kl = nll = None
                with open(log, errors="replace") as f:  # the last chunk's running means (the summary may be lost)
                    for line in f:
                        w = line.split()
                        if len(w) > 9 and w[0] == str(CHUNKS - 1) and w[2] == "\u00b1":
                            nll, kl = math.log(float(w[1])), float(w[7])
                os.remove(log)
                print(json.dumps({"model": os.path.basename(q), "adapter": name, "domain": dom, "kl": kl, "nll": nll}),
                      flush=True)


def bits(path):
    """Bits per weight over the 2-D weight matrices of a .duet or a GGUF."""
    if path.endswith(".gguf"):
        sys.path.insert(0, os.environ.get("GGUF_PY", ""))
        import gguf
        r = gguf.GGUFReader(path)
        b = n = 0
        for t in r.tensors:
            if len([d for d in t.shape if d > 1]) == 2:
                n += int(t.n_elements)
                b += int(t.n_bytes) * 8
        return b / n
    with open(path, "rb") as f:
        head = f.read(64)
        ms = struct.unpack("<Q", head[24:32])[0]
        meta = json.loads(f.read(ms).rstrip(b"\0"))
    b = n = 0
    for t in meta["tensors"]:
        if t["rows"] > 1 and not t["name"].startswith("lora."):
            n += t["rows"] * t["cols"]
            b += (t["data_size"] + t.get("scales_size", 0)) * 8
    return b / n


def main():
    duet = os.environ.get("DUET", "build/duet")
    if len(sys.argv) >= 3 and sys.argv[1] == "texts":
        texts(sys.argv[2])
    elif len(sys.argv) >= 6 and sys.argv[1] == "duet":
        ads = [] if sys.argv[4] == "-" else sys.argv[4].split(",")
        duet_kl(duet, sys.argv[5:], sys.argv[2], sys.argv[3], ads)
    elif len(sys.argv) >= 6 and sys.argv[1] == "gguf":
        gguf_kl(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:])
    elif len(sys.argv) == 3 and sys.argv[1] == "bits":
        print("%.3f" % bits(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
