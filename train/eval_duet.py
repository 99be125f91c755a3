#!/usr/bin/env python3
"""eval_duet.py - the CPU half of the evaluation: the same held-out sets that
train.py measured with transformers + PEFT on the GPU, run through duet.

    python3 train/eval_duet.py EVAL_DIR [--duet build/duet] [--demo demo] [--work DIR] [--prompts N]

EVAL_DIR is train.py's eval/ folder (evalsets.json, hf_nll.json,
tool_prompts.json). Measures:
  - held-out NLL (nats per token) of base, tools and shell on the docs, tools
    and shell sets, with duet on the checkpoint folders (f32) and on .duet
    files compiled q8 and q4 (calibration set demo/calib.jsonl), beside HF's;
  - the tool-call match of the `tools` adapter in the q4 .duet: each held-out
    prompt rendered by `duet template`, answered by `duet generate --greedy`,
    its <tool_call> blocks parsed: valid = right tool names and arguments
    valid against the tool's schema; exact = the expected arguments too.
Prints a Markdown table (for train/README.md) and writes EVAL_DIR/duet.json.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import parse_calls, score_calls  # noqa: E402  (no torch needed for these)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd[:3]), p.stderr.strip()[-400:]))
    return p.stdout


def nll_duet(duet, model_args, items, work):
    """Mean masked NLL of items through `duet logits --all`."""
    tot = cnt = 0.0
    out = os.path.join(work, "lg.f32")
    for it in items:
        ids = it["ids"]
        run([duet, "logits"] + model_args + ["--ids", ",".join(map(str, ids)), "--all", "-o", out])
        lg = np.fromfile(out, dtype="<f4").reshape(len(ids), -1).astype(np.float64)
        m = lg.max(-1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(lg - m).sum(-1)))[:-1]
        tgt = np.array(ids[1:])
        nl = lse - lg[np.arange(len(ids) - 1), tgt]
        mk = np.array(it["mask"][1:], dtype=np.float64)
        tot += float((nl * mk).sum())
        cnt += float(mk.sum())
    return tot / max(cnt, 1)


def toolcalls_served(duet, model, prompts):
    """The tool prompts as a user's client sends them: POST /v1/chat/completions
    to `duet serve MODEL` (model "tools", temperature 0, the tools array), where
    the call's JSON is constrained to the tools' schemas. Counts valid/exact
    as score_calls does and sorts the failures by kind."""
    import socket
    import urllib.request
    with socket.socket() as so:
        so.bind(("127.0.0.1", 0))
        port = so.getsockname()[1]
    srv = subprocess.Popen([duet, "serve", model, "--port", str(port)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d/v1/chat/completions" % port
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/v1/models" % port, timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        r = {"prompts": len(prompts), "valid": 0, "exact": 0, "wrong_tool": 0, "extra_call": 0, "missing_call": 0}
        for p in prompts:
            body = {"model": "tools", "messages": p["messages"], "tools": p["tools"], "temperature": 0,
                    "max_tokens": 96}
            req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
            msg = json.load(urllib.request.urlopen(req, timeout=300))["choices"][0]["message"]
            got = [{"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                   for c in (msg.get("tool_calls") or [])]
            e, v = score_calls(got, p["calls"])
            r["exact"] += e
            r["valid"] += v
            if not v:
                k = len(got) - len(p["calls"])
                r["extra_call" if k > 0 else "missing_call" if k < 0 else "wrong_tool"] += 1
        return r
    finally:
        srv.terminate()
        srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("eval_dir")
    ap.add_argument("--duet", default="build/duet")
    ap.add_argument("--demo", default="demo")
    ap.add_argument("--work", default=None)
    ap.add_argument("--prompts", type=int, default=0, help="tool prompts to run (0: all)")
    ap.add_argument("--sets", type=int, default=0, help="items per NLL set (0: all)")
    ap.add_argument("--serve", action="store_true",
                    help="also run the tool prompts through `duet serve` (OpenAI API, tool calls constrained to the schemas)")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="duet-eval-")
    os.makedirs(work, exist_ok=True)
    ev = json.load(open(os.path.join(a.eval_dir, "evalsets.json")))
    hf = json.load(open(os.path.join(a.eval_dir, "hf_nll.json")))
    if a.sets:
        ev = {k: v[:a.sets] for k, v in ev.items()}
        # HF's mean over the same items
        items = json.load(open(os.path.join(a.eval_dir, "hf_nll_items.json")))
        hf = {ad: {dom: sum(s for s, _ in v[:a.sets]) / sum(c for _, c in v[:a.sets]) for dom, v in d.items()}
              for ad, d in items.items()}
    base, tools, shell = (os.path.join(a.demo, n) for n in ("base", "tools", "shell"))
    calib = os.path.join(a.demo, "calib.jsonl")
    res = {"hf": hf, "duet": {}}
    t0 = time.time()
    files = {}
    for q in ("q8", "q4"):  # q4 as setup.sh makes it (calibrated), q8 plain
        files[q] = os.path.join(work, "demo-%s.duet" % q)
        run([a.duet, "compile", base, "--lora", "tools=" + tools, "--lora", "shell=" + shell, "--quant", q] +
            (["--calib", calib] if q == "q4" else []) + ["-o", files[q]])
    print("compiled q8 and q4 in %.1fs" % (time.time() - t0), file=sys.stderr)
    variants = {"f32": lambda ad: [base] + ([] if ad == "base" else ["--lora", "%s=%s" % (ad, os.path.join(a.demo, ad)),
                                                                     "--adapter", ad]),
                "q8": lambda ad: [files["q8"]] + ([] if ad == "base" else ["--adapter", ad]),
                "q4": lambda ad: [files["q4"]] + ([] if ad == "base" else ["--adapter", ad])}
    for v, margs in variants.items():
        res["duet"][v] = {}
        for ad in ("base", "tools", "shell"):
            res["duet"][v][ad] = {dom: nll_duet(a.duet, margs(ad), items, work) for dom, items in ev.items()}
            print("duet %s %-5s %s (%.0fs)" % (v, ad, " ".join("%s %.4f" % kv for kv in res["duet"][v][ad].items()),
                                                time.time() - t0), file=sys.stderr)
    # tool calls, q4
    prompts = json.load(open(os.path.join(a.eval_dir, "tool_prompts.json")))
    if a.prompts:
        prompts = prompts[:a.prompts]
    ex = va = 0
    fails = []
    for i, p in enumerate(prompts):
        mf, tf = os.path.join(work, "m.json"), os.path.join(work, "t.json")
        json.dump(p["messages"], open(mf, "w"))
        json.dump(p["tools"], open(tf, "w"))
        text = run([a.duet, "template", files["q4"], "--messages", mf, "--tools", tf])
        out = run([a.duet, "generate", files["q4"], "--adapter", "tools", "--prompt", text, "--greedy",
                   "--max-tokens", "96"])
        e, v = score_calls(parse_calls(out), p["calls"])
        ex += e
        va += v
        if not v:
            fails.append({"q": p["messages"][-1]["content"], "want": p["calls"], "got": out})
    res["toolcall_q4"] = {"prompts": len(prompts), "valid": va, "exact": ex, "fails": fails[:30]}
    if a.serve:
        res["toolcall_q4_serve"] = toolcalls_served(a.duet, files["q4"], prompts)
        print("tool calls through duet serve (constrained): %(valid)d valid, %(exact)d exact; "
              "failures: %(wrong_tool)d wrong tool, %(extra_call)d extra call, %(missing_call)d missing call"
              % res["toolcall_q4_serve"], file=sys.stderr)
    print("tool calls (q4 .duet): %d/%d valid, %d/%d exact (%.0fs)" % (va, len(prompts), ex, len(prompts),
                                                                       time.time() - t0), file=sys.stderr)
    json.dump(res, open(os.path.join(a.eval_dir, "duet.json"), "w"), indent=1)
    # the table
    print("| model | set | HF f32 | duet f32 | duet q8 | duet q4 |")
    print("|---|---|---|---|---|---|")
    for ad in ("base", "tools", "shell"):
        for dom in ev:
            print("| %s | %s | %.4f | %.4f | %.4f | %.4f |" % (ad, dom, hf[ad][dom], res["duet"]["f32"][ad][dom],
                                                             res["duet"]["q8"][ad][dom], res["duet"]["q4"][ad][dom]))


if __name__ == "__main__":
    main()
