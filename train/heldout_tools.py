#!/usr/bin/python3
"""heldout_tools.py DUET MODEL OUT.json - a held-out set of whole tool-call
conversations for the `tools` adapter, tokenized by duet (whose tokenizer and
chat template match HF's byte for byte, tests/test_demo.c): 16 dialogues of
tools_dialogues.eval_dialogues (the EVAL phrasings, never trained on), each
rendered with its tool list, scored from the first user turn on (the tool
list is context). Written as {"sets": {"tools": [{"ids", "mask"}, ...]}},
the layout of the demo's nll.json, for tests/test_demo.c's calibration check,
where nll.json's two tool items score too few positions to rank
quantizations."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tools_dialogues  # noqa: E402

SEED, N = 99, 16


def run(duet, args):
    return subprocess.run([duet] + args, check=True, capture_output=True, text=True).stdout


def main():
    duet, model, out = sys.argv[1:4]
    items = []
    with tempfile.TemporaryDirectory() as tmp:
        mp, tp, xp = (os.path.join(tmp, f) for f in ("m.json", "t.json", "x.txt"))
        for c in tools_dialogues.eval_dialogues(SEED, N):
            json.dump(c["messages"], open(mp, "w"))
            json.dump(c["tools"], open(tp, "w"))
            txt = run(duet, ["template", model, "--messages", mp, "--tools", tp, "--no-generation-prompt"])
            open(xp, "w").write(txt)
            ids = [int(x) for x in run(duet, ["tokenize", model, "--file", xp]).split()]
            k = txt.find("<|im_start|>user")
            open(xp, "w").write(txt[:k])
            n0 = len(run(duet, ["tokenize", model, "--file", xp]).split())
            items.append({"ids": ids, "mask": [0] * n0 + [1] * (len(ids) - n0)})
    with open(out, "w") as f:
        json.dump({"about": "train/heldout_tools.py: tools_dialogues.eval_dialogues(%d, %d)" % (SEED, N),
                   "sets": {"tools": items}}, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
